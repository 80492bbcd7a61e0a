"""The embedded demo dataset: random crops of scikit-image's bundled images.

Each bundled natural image is one class.  Every image is split along its
longer side into a training region (the first ``1 - val_fraction``) and a
validation region (the rest), so training and validation crops never share
a pixel.  Training batches are fresh random crops (with random horizontal
flips) drawn from a seeded generator; the validation set is a fixed set of
crops drawn once from the validation regions.

Nothing is downloaded: only images shipped inside the scikit-image wheel are
used (``astronaut``, ``camera``, ``coffee``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..core.config import Settings
from ..core.errors import ConfigError
from .preprocessing import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "DemoSettings",
    "DemoDataset",
    "load_bundled_image",
    "split_train_val",
    "random_crop",
    "demo_dataset",
]

DEMO_IMAGES = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "rocket", "text",
)  # fmt: skip


@dataclass(frozen=True)
class DemoSettings(Settings, section="demo"):
    """The ``demo`` config section: the embedded demo network and its dataset (see the schema)."""

    architecture: str = "convnext_atto"
    model_kwargs: dict = field(default_factory=dict)
    images: tuple[str, ...] = DEMO_IMAGES
    max_image_side: int = 512
    crop_size: int = 64
    val_fraction: float = 0.25
    val_crops_per_class: int = 64
    steps: int = 800
    batch_size: int = 64
    learning_rate: float = 0.004
    weight_decay: float = 0.05
    warmup_steps: int = 100
    eval_every: int = 100




def load_bundled_image(name: str, max_side: int) -> np.ndarray:
    """A scikit-image bundled image as float32 ``(H, W, 3)`` in [0, 1], longer side <= ``max_side``."""
    import skimage.data
    import skimage.transform

    loader = getattr(skimage.data, name, None)
    if loader is None or not callable(loader) or name.startswith("_"):
        raise ConfigError("demo.images", f"'{name}' is not an image bundled with scikit-image (skimage.data)")
    try:
        image = np.asarray(loader())
    except Exception as err:  # images that need a download raise here offline
        raise ConfigError(
            "demo.images",
            f"skimage.data.{name} cannot be loaded offline ({type(err).__name__}); "
            "choose images bundled with scikit-image, e.g. astronaut, camera, coffee",
        ) from None
    if image.dtype == bool:
        image = image.astype(np.float32)
    elif np.issubdtype(image.dtype, np.integer):
        image = image.astype(np.float32) / np.iinfo(image.dtype).max
    else:
        image = image.astype(np.float32)
        image = (image - image.min()) / max(float(np.ptp(image)), 1e-12)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ConfigError("demo.images", f"skimage.data.{name} is not a 2-D grey or colour image")
    image = image[:, :, :3]
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        image = skimage.transform.rescale(image, scale, channel_axis=2, anti_aliasing=True, order=1)
    return np.ascontiguousarray(image, dtype=np.float32)


def split_train_val(image: np.ndarray, val_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split ``image`` along its longer side: first ``1 - val_fraction`` trains, the rest validates."""
    axis = 0 if image.shape[0] >= image.shape[1] else 1
    cut = int(round(image.shape[axis] * (1 - val_fraction)))
    if axis == 0:
        return image[:cut], image[cut:]
    return image[:, :cut], image[:, cut:]


@dataclass
class DemoDataset:
    """Training regions, a fixed validation set and the class names of the demo task."""

    class_names: list[str]
    train_regions: list[torch.Tensor]  # (3, H, W) float32 per class, normalised
    val_images: torch.Tensor  # (N, 3, crop, crop)
    val_labels: torch.Tensor  # (N,)
    crop_size: int

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def sample_batch(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of random training crops (random class, position and horizontal flip)."""
        labels = torch.randint(self.num_classes, (batch_size,), generator=generator)
        crops = torch.empty(batch_size, 3, self.crop_size, self.crop_size)
        flips = torch.rand(batch_size, generator=generator) < 0.5
        for i, label in enumerate(labels.tolist()):
            crop = random_crop(self.train_regions[label], self.crop_size, generator)
            crops[i] = crop.flip(-1) if flips[i] else crop
        return crops, labels

    def eval_set(self):
        """The held-out crops as an :class:`~masterkey.data.evalcache.EvalSet` (float, normalised)."""
        from .evalcache import EvalSet

        return EvalSet(self.val_images, self.val_labels.numpy(), mean=None, std=None, name="demo")


def random_crop(
    region: torch.Tensor, crop_size: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A ``(C, crop_size, crop_size)`` view of ``region`` ``(C, H, W)`` at a uniformly random position.

    Draws the top row, then the left column, from ``generator`` (``None``: torch's global RNG).
    """
    top = int(torch.randint(region.shape[1] - crop_size + 1, (1,), generator=generator))
    left = int(torch.randint(region.shape[2] - crop_size + 1, (1,), generator=generator))
    return region[:, top : top + crop_size, left : left + crop_size]


def _normalise(region: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(region).permute(2, 0, 1).contiguous()
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (tensor - mean) / std


def demo_dataset(settings: DemoSettings, seed: int) -> DemoDataset:
    """The demo dataset of ``settings`` and the config seed (:func:`build_demo_dataset`)."""
    return build_demo_dataset(
        list(settings.images),
        crop_size=settings.crop_size,
        val_fraction=settings.val_fraction,
        val_crops_per_class=settings.val_crops_per_class,
        max_side=settings.max_image_side,
        seed=seed,
    )


def build_demo_dataset(
    images: list[str], crop_size: int, val_fraction: float, val_crops_per_class: int, max_side: int, seed: int
) -> DemoDataset:
    """Load the images, split them into disjoint regions and draw the fixed validation crops."""
    generator = torch.Generator().manual_seed(seed)
    train_regions, val_images, val_labels = [], [], []
    for label, name in enumerate(images):
        train, val = split_train_val(load_bundled_image(name, max_side), val_fraction)
        for part, region in (("training", train), ("validation", val)):
            if min(region.shape[:2]) < crop_size:
                raise ConfigError(
                    "demo.crop_size",
                    f"the {part} region of image '{name}' is {region.shape[0]}x{region.shape[1]} pixels, "
                    f"smaller than the crop size {crop_size}; lower crop_size or change demo.val_fraction",
                )
        train_regions.append(_normalise(train))
        val_region = _normalise(val)
        for _ in range(val_crops_per_class):
            val_images.append(random_crop(val_region, crop_size, generator))
            val_labels.append(label)
    return DemoDataset(
        class_names=list(images),
        train_regions=train_regions,
        val_images=torch.stack(val_images),
        val_labels=torch.tensor(val_labels),
        crop_size=crop_size,
    )
