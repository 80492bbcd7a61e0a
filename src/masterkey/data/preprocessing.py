"""timm-style evaluation preprocessing of a checkpoint, and decoding one image with it.

Preprocessing follows timm's evaluation transform of each checkpoint (its ``pretrained_cfg``):
resize, then crop to ``input_size``, then ``x / 255``, then ``(x - mean) / std`` per channel.  The
pixel part (resize and crop, :meth:`Preprocessing.key`) is what an evaluation cache stores
(:mod:`masterkey.data.evalcache`); mean and std are applied at inference.  Images are RGB
``(3, H, W)``.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..core.errors import ConfigError

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CACHE_VERSION",
    "CROP_MODES",
    "INTERPOLATIONS",
    "IMAGENET_1K_CLASSES",
    "Preprocessing",
    "classifier_classes",
    "preprocessing_for_model",
    "preprocessing_with_key",
    "pixel_transform",
    "decode_image",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""The channel statistics of ImageNet (RGB) that most timm checkpoints normalise with."""
CACHE_VERSION = 1  # part of every preprocessing key: bump it when the decoding changes
CROP_MODES = ("center", "squash", "border")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")



@dataclass(frozen=True)
class Preprocessing:
    """timm-style evaluation preprocessing of one checkpoint.

    ``input_size`` is ``(3, H, W)``.  ``crop_mode`` as in timm's eval transform:
    ``center`` resizes the shorter side to ``size / crop_pct`` (each side
    ``floor(size / crop_pct)``; non-square sizes keep the aspect ratio) and
    centre-crops; ``squash`` resizes both sides to ``floor(size / crop_pct)``
    and centre-crops; ``border`` resizes the longer side and pads with the mean
    colour.  ``interpolation`` is a PIL filter name.
    """

    input_size: tuple[int, int, int]
    crop_pct: float
    crop_mode: str = "center"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        size = tuple(int(v) for v in self.input_size)
        if len(size) != 3 or size[0] != 3 or min(size) < 1:
            raise ValueError(f"preprocessing: input_size must be (3, H, W), got {self.input_size}")
        crop_pct = float(self.crop_pct)
        if not (math.isfinite(crop_pct) and crop_pct > 0):
            raise ValueError(f"preprocessing: crop_pct must be a positive number, got {self.crop_pct}")
        crop_mode = self.crop_mode or "center"
        if crop_mode not in CROP_MODES:
            raise ValueError(
                f"preprocessing: crop_mode '{crop_mode}' unknown; use one of {', '.join(CROP_MODES)}"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"preprocessing: interpolation '{self.interpolation}' unknown; "
                f"use one of {', '.join(INTERPOLATIONS)}"
            )
        mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"preprocessing: mean and std need 3 values each, std > 0; got {mean}, {std}")
        for name, value in (
            ("input_size", size),
            ("crop_pct", crop_pct),
            ("crop_mode", crop_mode),
            ("mean", mean),
            ("std", std),
        ):
            object.__setattr__(self, name, value)

    def pixel_fields(self) -> dict:
        """The fields that change the cached uint8 pixels (``border`` pads with the mean colour)."""
        fields = {
            "version": CACHE_VERSION,
            "size": list(self.input_size[1:]),
            "crop_pct": round(self.crop_pct, 6),
            "crop_mode": self.crop_mode,
            "interpolation": self.interpolation,
        }
        if self.crop_mode == "border":
            fields["fill"] = [round(255 * v) for v in self.mean]
        return fields

    def key(self) -> str:
        """12 hex digits of the SHA-256 of :meth:`pixel_fields`; mean and std do not enter it
        (except as the padding colour of ``border``)."""
        text = json.dumps(self.pixel_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def as_dict(self) -> dict:
        return {
            "input_size": list(self.input_size),
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


IMAGENET_1K_CLASSES = 1000


def classifier_classes(model_name: str) -> int:
    """Number of classes of a timm checkpoint's head (0 for headless, e.g. ConvNeXt V2 ``fcmae``;
    21841 / 11821 for ImageNet-22k / -12k heads), from timm's registry; only 1000-class heads can
    be evaluated on the ImageNet-1k validation set."""
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(model_name)
    except RuntimeError:
        cfg = None
    if cfg is None:
        preprocessing_for_model(model_name)  # raises the ConfigError with close matches
    return int(cfg.num_classes or 0)


@lru_cache(maxsize=1024)
def preprocessing_for_model(model_name: str, use_test_size: bool = False) -> Preprocessing:
    """The evaluation preprocessing of a timm checkpoint, from its registered ``pretrained_cfg``.

    Nothing is downloaded (the registry is data inside timm), so this is cheap
    enough for Snakemake's DAG building.  A name without tag resolves to the
    architecture's default tag, as in ``timm.create_model``.  ``use_test_size``
    takes ``test_input_size`` / ``test_crop_pct`` where the checkpoint has them
    (timm's ``validate.py`` default); the default False uses the training
    resolution (``convnext_tiny.fb_in1k``: 224, crop_pct 0.875), as in the papers.
    """
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(model_name)
    except RuntimeError:  # invalid tag of a known architecture
        cfg = None
    if cfg is None:
        import timm

        close = difflib.get_close_matches(model_name, timm.list_pretrained(), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise ConfigError(
            "models",
            f"no timm pretrained configuration for '{model_name}'{hint} "
            "(see timm.list_pretrained() for all checkpoints)",
        )
    data = resolve_data_config(pretrained_cfg=cfg.to_dict(), use_test_size=use_test_size)
    return Preprocessing(
        input_size=tuple(data["input_size"]),
        crop_pct=data["crop_pct"],
        crop_mode=data.get("crop_mode") or "center",
        interpolation=data["interpolation"],
        mean=tuple(data["mean"]),
        std=tuple(data["std"]),
    )


def preprocessing_with_key(model_names: Iterable[str], key: str) -> Preprocessing:
    """The evaluation preprocessing of the first of ``model_names`` whose pixel key
    (:meth:`Preprocessing.key`) is ``key``; ``ValueError`` when none has it."""
    for name in model_names:
        preprocessing = preprocessing_for_model(name)
        if preprocessing.key() == key:
            return preprocessing
    raise ValueError(f"no model has evaluation preprocessing {key}")


def pixel_transform(preprocessing: Preprocessing):
    """timm's eval transform of ``preprocessing`` without normalisation: PIL RGB image ->
    uint8 tensor ``(3, H, W)`` (``timm.data.create_transform(..., use_prefetcher=True)``)."""
    from timm.data import create_transform

    p = preprocessing
    return create_transform(
        p.input_size,
        is_training=False,
        use_prefetcher=True,
        crop_pct=p.crop_pct,
        crop_mode=p.crop_mode,
        interpolation=p.interpolation,
        mean=p.mean,
        std=p.std,
    )


def decode_image(path, transform) -> torch.Tensor:
    """Open ``path`` with PIL, convert to RGB (grey, CMYK, palette, alpha dropped) and apply ``transform``."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data" in a few ImageNet files
        with Image.open(path) as image:
            return transform(image.convert("RGB"))
