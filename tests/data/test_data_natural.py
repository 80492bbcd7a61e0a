"""The natural-image set: every bundled photograph loads, seeded crops, the model's preprocessing."""

import numpy as np
import pytest
import torch

from masterkey.core.errors import UserError
from masterkey.data.natural import (
    CROP_RATIO,
    CROP_SCALE,
    NATURAL_PHOTOS,
    NATURAL_SET,
    UNLABELLED,
    NaturalPhoto,
    crop_boxes,
    load_photo,
    natural_eval_set,
)
from masterkey.data.preprocessing import Preprocessing, pixel_transform

SMALL = Preprocessing((3, 40, 48), crop_pct=0.9, interpolation="bilinear", mean=(0.5,) * 3, std=(0.25,) * 3)


def test_every_listed_photograph_loads_from_its_package():
    assert len({p.name for p in NATURAL_PHOTOS}) == len(NATURAL_PHOTOS) == 15
    assert {p.package for p in NATURAL_PHOTOS} == {"scikit-image", "scikit-learn", "matplotlib"}
    colour = set()
    for photo in NATURAL_PHOTOS:
        image = load_photo(photo)
        assert image.mode == "RGB" and min(image.size) >= 256, photo
        pixels = np.asarray(image)
        assert pixels.std() > 10, photo  # a photograph, not a flat image
        if np.abs(np.diff(pixels.astype(int), axis=2)).max() > 0:
            colour.add(photo.name)  # grey photographs have three equal channels
    assert colour == {"astronaut", "chelsea", "coffee", "rocket", "motorcycle", "china", "flower",
                      "grace_hopper"}  # fmt: skip
    assert NATURAL_PHOTOS[0].source == "skimage.data.astronaut()"
    from sklearn.datasets import load_sample_image  # read without importing it: the same pixels

    china = next(p for p in NATURAL_PHOTOS if p.name == "china")
    np.testing.assert_array_equal(np.asarray(load_photo(china)), load_sample_image("china.jpg"))


def test_a_missing_photograph_names_itself_its_package_and_the_fix():
    with pytest.raises(UserError) as err:
        load_photo(NaturalPhoto("lost", "matplotlib", "no_such_photo.jpg"))
    message = str(err.value)
    assert "'lost'" in message and "get_sample_data('no_such_photo.jpg')" in message
    assert "pip install --force-reinstall matplotlib" in message


def test_crop_boxes_are_seeded_inside_the_photo_and_in_range():
    sizes = [(300, 200), (120, 400), (512, 512)]
    boxes = crop_boxes(sizes, 60, seed=3)
    assert boxes == crop_boxes(sizes, 60, seed=3) and boxes != crop_boxes(sizes, 60, seed=4)
    assert boxes[:3] == crop_boxes(sizes, 60, seed=4)[:3] == [(i, i, (0, 0, *sizes[i])) for i in range(3)]
    assert [photo for _, photo, _ in boxes] == [i % 3 for i in range(60)]
    for _, photo, (left, top, right, bottom) in boxes[3:]:
        width, height = sizes[photo]
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        area = (right - left) * (bottom - top) / (width * height)
        # rounding to whole pixels, and torchvision's fallback to a centre crop of clipped ratio
        assert CROP_SCALE[0] * 0.9 <= area <= 1.0
        assert CROP_RATIO[0] * 0.9 <= (right - left) / (bottom - top) <= CROP_RATIO[1] * 1.1 or area > 0.9


def test_natural_set_is_deterministic_and_follows_the_preprocessing():
    eval_set = natural_eval_set(SMALL, 20, seed=0)
    assert eval_set.name == NATURAL_SET and len(eval_set) == 20
    assert eval_set.images.shape == (20, 3, 40, 48) and eval_set.images.dtype == np.uint8
    assert (eval_set.labels == UNLABELLED).all()
    assert (eval_set.mean, eval_set.std) == (SMALL.mean, SMALL.std)
    np.testing.assert_array_equal(natural_eval_set(SMALL, 20, seed=0).images, eval_set.images)
    other = natural_eval_set(SMALL, 20, seed=1).images
    np.testing.assert_array_equal(other[:15], eval_set.images[:15])  # the whole photographs
    assert not np.array_equal(other[15:], eval_set.images[15:])  # the random crops
    # input 0 is the first photograph whole, through timm's eval transform of the preprocessing
    expected = pixel_transform(SMALL)(load_photo(NATURAL_PHOTOS[0]))
    assert torch.equal(torch.from_numpy(eval_set.images[0]), expected)
    first = natural_eval_set(SMALL, 3, seed=0)
    np.testing.assert_array_equal(first.images, eval_set.images[:3])
    large = natural_eval_set(Preprocessing((3, 224, 224), crop_pct=0.875), 2, seed=0)
    assert large.images.shape == (2, 3, 224, 224)
    with pytest.raises(ValueError, match="at least one input"):
        natural_eval_set(SMALL, 0, seed=0)
