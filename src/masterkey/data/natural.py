"""The offline natural-image set: photographs that ship inside installed packages.

Label-free replacement fidelity (docs/methods.md section 5; spec section 6) needs natural inputs
but no labels.  Nothing is downloaded: the set is built from the photographs bundled with
scikit-image (``skimage.data``), scikit-learn (``sklearn.datasets.load_sample_image``) and
matplotlib (``matplotlib.cbook.get_sample_data``), listed with their source in
:data:`NATURAL_PHOTOS`.  Microscopy, astronomy and medical images, text, clip-art and synthetic
test patterns are left out.

:func:`natural_eval_set` turns them into ``count`` inputs of one model: the first inputs are the
whole photographs, the rest seeded random crops (area and aspect ranges like torchvision's
``RandomResizedCrop``: :data:`CROP_SCALE`, :data:`CROP_RATIO`), cycling through the photographs;
each input then goes through the model's own timm evaluation transform (resize, centre crop:
:func:`~masterkey.data.preprocessing.pixel_transform`), and the mean/std are applied at inference.
The set depends only on ``(preprocessing, count, seed)``, so every variant of a model sees the
same images.  Labels are :data:`UNLABELLED`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..core.errors import UserError
from .preprocessing import Preprocessing, pixel_transform

__all__ = [
    "UNLABELLED",
    "NATURAL_SET",
    "CROP_SCALE",
    "CROP_RATIO",
    "NaturalPhoto",
    "NATURAL_PHOTOS",
    "load_photo",
    "crop_boxes",
    "natural_eval_set",
]

UNLABELLED = -1
"""The label of every input of a set without labels (accuracy metrics refuse it)."""
NATURAL_SET = "natural"
"""The name of the natural-image evaluation set (``EvalSet.name``, file paths, table rows)."""
CROP_SCALE = (0.25, 1.0)
"""Range of a random crop's area, as a fraction of the photograph's."""
CROP_RATIO = (3 / 4, 4 / 3)
"""Range of a random crop's aspect ratio (width / height), sampled log-uniformly."""


@dataclass(frozen=True)
class NaturalPhoto:
    """One bundled photograph: its ``name``, the ``package`` (pip name) that ships it and the
    ``item`` there (a ``skimage.data`` function, or a file name)."""

    name: str
    package: str
    item: str

    @property
    def source(self) -> str:
        """How the photograph is loaded, e.g. ``skimage.data.astronaut()``."""
        return {
            "scikit-image": f"skimage.data.{self.item}()",
            "scikit-learn": f"sklearn.datasets.load_sample_image({self.item!r})",
            "matplotlib": f"matplotlib.cbook.get_sample_data({self.item!r})",
        }[self.package]


NATURAL_PHOTOS = (
    NaturalPhoto("astronaut", "scikit-image", "astronaut"),  # colour portrait (NASA)
    NaturalPhoto("camera", "scikit-image", "camera"),  # grey, man with a camera
    NaturalPhoto("chelsea", "scikit-image", "chelsea"),  # colour, a cat (skimage.data.cat is the same)
    NaturalPhoto("coffee", "scikit-image", "coffee"),  # colour, a cup of coffee
    NaturalPhoto("rocket", "scikit-image", "rocket"),  # colour, a rocket on its launch pad
    NaturalPhoto("motorcycle", "scikit-image", "stereo_motorcycle"),  # colour, left view of the pair
    NaturalPhoto("clock", "scikit-image", "clock"),  # grey, a wall clock
    NaturalPhoto("coins", "scikit-image", "coins"),  # grey, old coins
    NaturalPhoto("moon", "scikit-image", "moon"),  # grey, the lunar surface
    NaturalPhoto("brick", "scikit-image", "brick"),  # grey texture, a brick wall
    NaturalPhoto("grass", "scikit-image", "grass"),  # grey texture
    NaturalPhoto("gravel", "scikit-image", "gravel"),  # grey texture
    NaturalPhoto("china", "scikit-learn", "china.jpg"),  # colour, a temple
    NaturalPhoto("flower", "scikit-learn", "flower.jpg"),  # colour, a flower
    NaturalPhoto("grace_hopper", "matplotlib", "grace_hopper.jpg"),  # colour portrait
)
"""Every photograph of the set, in input order (15: 12 from scikit-image, 2 from scikit-learn,
1 from matplotlib)."""


def _read(photo: NaturalPhoto):
    from PIL import Image

    if photo.package == "scikit-image":
        import skimage.data

        image = getattr(skimage.data, photo.item)()
        return Image.fromarray(np.asarray(image[0] if isinstance(image, tuple) else image))
    if photo.package == "scikit-learn":  # the file load_sample_image reads, without importing
        spec = importlib.util.find_spec("sklearn")  # sklearn.datasets (2 s)
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("No module named 'sklearn'")
        path = Path(spec.submodule_search_locations[0]) / "datasets" / "images" / photo.item
        with Image.open(path) as image:
            return image.convert("RGB")
    from matplotlib.cbook import get_sample_data

    with get_sample_data(photo.item, asfileobj=True) as handle:
        return Image.open(handle).copy()


@lru_cache(maxsize=len(NATURAL_PHOTOS))
def load_photo(photo: NaturalPhoto):
    """The photograph as an RGB PIL image (grey photographs repeated into three channels).

    Raises :class:`~masterkey.core.errors.UserError` naming the photograph, its package and the
    fix when the package or its bundled file is missing or unreadable.
    """
    try:
        image = _read(photo)
        if image.mode not in ("RGB", "L") or min(image.size) < 32:
            raise ValueError(f"not an 8-bit photograph (mode {image.mode}, size {image.size})")
        return image.convert("RGB")
    except Exception as err:
        raise UserError(
            f"natural image set: photograph '{photo.name}' ({photo.source}) cannot be loaded "
            f"({type(err).__name__}: {err}); install the package with its bundled data "
            f"(pip install --force-reinstall {photo.package})"
        ) from None


def crop_boxes(sizes: list[tuple[int, int]], count: int, seed: int) -> list[tuple[int, int, tuple]]:
    """``count`` crops of photographs of ``sizes`` (``(width, height)`` each).

    Returns ``(input index, photo index, box)`` per input, ``box = (left, top, right, bottom)`` in
    pixels (PIL's convention): input ``i < len(sizes)`` is photograph ``i`` whole; the others
    cycle through the photographs with random crops (torchvision's ``RandomResizedCrop``
    sampling with :data:`CROP_SCALE` and :data:`CROP_RATIO`, from ``seed`` only).
    """
    from torchvision.transforms import RandomResizedCrop

    boxes = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for i in range(count):
            photo = i % len(sizes)
            width, height = sizes[photo]
            if i < len(sizes):
                box = (0, 0, width, height)
            else:
                dummy = torch.empty(1, height, width)
                top, left, h, w = RandomResizedCrop.get_params(dummy, list(CROP_SCALE), list(CROP_RATIO))
                box = (left, top, left + w, top + h)
            boxes.append((i, photo, box))
    return boxes


def natural_eval_set(preprocessing: Preprocessing, count: int, seed: int):
    """``count`` natural inputs for a model with ``preprocessing`` (see the module docstring).

    Returns an :class:`~masterkey.data.evalcache.EvalSet` named :data:`NATURAL_SET`: uint8
    images ``(count, 3, H, W)`` (``H, W`` from ``preprocessing.input_size``), mean/std of
    ``preprocessing``, labels :data:`UNLABELLED`.  ``ValueError`` when ``count < 1``;
    :class:`~masterkey.core.errors.UserError` when a photograph cannot be loaded.
    """
    from .evalcache import EvalSet

    if int(count) < 1:
        raise ValueError(f"the natural image set needs at least one input, got {count}")
    photos = [load_photo(photo) for photo in NATURAL_PHOTOS]
    transform = pixel_transform(preprocessing)
    images = np.empty((int(count), *preprocessing.input_size), dtype=np.uint8)
    for i, photo, box in crop_boxes([p.size for p in photos], int(count), seed):
        images[i] = transform(photos[photo].crop(box)).numpy()
    labels = np.full(len(images), UNLABELLED, dtype=np.int64)
    return EvalSet(images, labels, preprocessing.mean, preprocessing.std, NATURAL_SET)
