"""Settings of the replacement stage: the ``replacement`` config section (docs/methods.md section 5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.config import Settings
from .variants import LEARNED, default_variants, finetuned_name, parse_variant

__all__ = ["FinetuneSettings", "ReplacementSettings"]


@dataclass(frozen=True)
class FinetuneSettings(Settings):
    """``replacement.finetune``: retraining with the replaced depthwise kernels frozen."""

    enabled: bool = False
    variants: tuple[str, ...] = ("learned", "idealized-D1", "masterkey-published")
    steps: int = 300
    learning_rate: float = 0.0005
    batch_size: int = 64

    def variant_names(self) -> list[str]:
        """The variants to fine-tune, checked against the grammar (``ConfigError`` naming
        ``replacement.finetune.variants``)."""
        return [parse_variant(name, key="replacement.finetune.variants").name for name in self.variants]

    def result_names(self) -> list[str]:
        """The names of the fine-tuned results (:func:`~masterkey.replacement.variants.finetuned_name`)."""
        return [finetuned_name(name) for name in self.variant_names()]


@dataclass(frozen=True)
class ReplacementSettings(Settings, section="replacement"):
    """The ``replacement`` config section (keys, meaning and allowed values: the config schema)."""

    variants: tuple[str, ...] | None = None
    stages: bool = True
    batch_size: int = 128
    decode_workers: int = 8
    max_images: int | None = None
    fidelity_images: int = 256
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)

    def variant_names(self, num_master_keys: int) -> list[str]:
        """The variants evaluated per model: the configured ones (default: every registered kind's
        defaults for ``num_master_keys`` own keys), ``learned`` first; ``ConfigError`` naming
        ``replacement.variants`` for a name outside the grammar.

        >>> ReplacementSettings(variants=("random",)).variant_names(8)
        ['learned', 'random']
        """
        names = [parse_variant(name).name for name in (self.variants or default_variants(num_master_keys))]
        return names if LEARNED in names else [LEARNED, *names]
