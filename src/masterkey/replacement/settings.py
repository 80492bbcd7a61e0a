"""Settings of the replacement stage: the ``replacement`` config section (docs/methods.md section 5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.config import Settings

__all__ = ["FinetuneSettings", "ReplacementSettings"]


@dataclass(frozen=True)
class FinetuneSettings(Settings):
    """``replacement.finetune``: retraining with the replaced depthwise kernels frozen."""

    enabled: bool = False
    variants: tuple[str, ...] = ("learned", "idealized-D1", "masterkey-published")
    steps: int = 300
    learning_rate: float = 0.0005
    batch_size: int = 64


@dataclass(frozen=True)
class ReplacementSettings(Settings, section="replacement"):
    """The ``replacement`` config section (keys, meaning and allowed values: the config schema)."""

    variants: tuple[str, ...] | None = None
    stages: bool = True
    batch_size: int = 128
    decode_workers: int = 8
    max_images: int | None = None
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
