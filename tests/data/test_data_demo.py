"""The embedded demo dataset: disjoint splits, seeded validation crops, bad images named."""

import numpy as np
import pytest
import torch

from conftest import TINY_DEMO
from masterkey.core.config import validate_config
from masterkey.core.errors import ConfigError
from masterkey.data.demo import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DemoSettings,
    build_demo_dataset,
    demo_dataset,
    load_bundled_image,
    split_train_val,
)
from masterkey.data.evalcache import EvalSet


def test_train_and_validation_regions_are_disjoint_and_complete():
    image = np.arange(60 * 100 * 3, dtype=np.float32).reshape(60, 100, 3)
    train, val = split_train_val(image, 0.25)
    assert train.shape == (60, 75, 3) and val.shape == (60, 25, 3)
    assert not set(train.ravel()) & set(val.ravel())
    tall_train, tall_val = split_train_val(image.transpose(1, 0, 2), 0.25)
    assert tall_train.shape[0] == 75 and tall_val.shape[0] == 25


def test_bundled_images_load_offline_as_rgb():
    image = load_bundled_image("camera", max_side=128)  # a grey image
    assert image.shape == (128, 128, 3) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1


def test_bad_images_rejected():
    with pytest.raises(ConfigError) as info:
        load_bundled_image("no_such_image", 128)
    assert info.value.key == "demo.images"
    assert str(info.value).startswith(
        "config key demo.images: 'no_such_image' is not an image bundled with scikit-image"
    )
    with pytest.raises(ConfigError) as info:
        build_demo_dataset(
            ["camera", "text"], crop_size=64, val_fraction=0.1, val_crops_per_class=1, max_side=128, seed=0
        )
    assert info.value.key == "demo.crop_size"
    assert "smaller than the crop size 64" in str(info.value) and "demo.val_fraction" in str(info.value)


def test_validation_set_is_seeded():
    a = build_demo_dataset(["camera", "coins"], 32, 0.25, 3, 128, seed=0)
    b = build_demo_dataset(["camera", "coins"], 32, 0.25, 3, 128, seed=0)
    c = build_demo_dataset(["camera", "coins"], 32, 0.25, 3, 128, seed=1)
    torch.testing.assert_close(a.val_images, b.val_images, rtol=0, atol=0)
    assert not torch.equal(a.val_images, c.val_images)
    assert a.val_labels.tolist() == [0, 0, 0, 1, 1, 1]
    images, labels = a.sample_batch(5, torch.Generator().manual_seed(0))
    assert images.shape == (5, 3, 32, 32) and labels.shape == (5,)
    again, again_labels = b.sample_batch(5, torch.Generator().manual_seed(0))
    torch.testing.assert_close(images, again, rtol=0, atol=0)
    assert labels.tolist() == again_labels.tolist()


def test_regions_are_normalised_with_the_imagenet_statistics():
    dataset = build_demo_dataset(["camera", "coins"], 32, 0.25, 1, 128, seed=0)
    train, _ = split_train_val(load_bundled_image("coins", 128), 0.25)
    expected = (
        torch.from_numpy(train).permute(2, 0, 1) - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    ) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(dataset.train_regions[1], expected)


def test_demo_settings_build_the_configured_dataset():
    config = validate_config({"models": ["demo"], "demo": dict(TINY_DEMO)})
    settings = DemoSettings.from_config(config)
    assert settings == DemoSettings.from_section(TINY_DEMO)
    dataset = demo_dataset(settings, seed=7)
    assert dataset.class_names == list(TINY_DEMO["images"]) and dataset.num_classes == 3
    assert dataset.val_images.shape == (3 * TINY_DEMO["val_crops_per_class"], 3, 32, 32)


def test_demo_eval_set_is_the_training_validation_split():
    settings = DemoSettings.from_section(TINY_DEMO)
    reference = build_demo_dataset(
        list(settings.images), settings.crop_size, settings.val_fraction, settings.val_crops_per_class,
        settings.max_image_side, seed=7,
    )  # fmt: skip
    eval_set = demo_dataset(settings, seed=7).eval_set()
    assert isinstance(eval_set, EvalSet) and eval_set.name == "demo" and len(eval_set) == 12
    assert eval_set.mean is None and eval_set.std is None and not eval_set.is_uint8
    torch.testing.assert_close(eval_set.images, reference.val_images, rtol=0, atol=0)
    np.testing.assert_array_equal(eval_set.labels, reference.val_labels.numpy())
    assert eval_set.labels.dtype == np.int64
