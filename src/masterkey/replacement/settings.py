"""Settings of the replacement stage: the ``replacement`` config section (docs/methods.md section 5)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.config import Settings
from ..core.errors import ConfigError
from .variants import LEARNED, default_variants, finetuned_name, is_finetune_only, parse_variant

__all__ = ["FinetuneSettings", "ReplacementSettings", "FrozenKeysSettings", "KEY_SETS"]

KEY_SETS = ("learned", "published", "own", "random")
"""[Q]'s settings: learned filters, the published 8, the own K master keys, K random filters."""


@dataclass(frozen=True)
class FinetuneSettings(Settings):
    """``replacement.finetune``: retraining with the replaced depthwise kernels frozen ([B] Sec. 5).

    ``models``: the models fine-tuned (None: every configured model that can be);
    ``steps``, ``learning_rate``, ``batch_size``: the demo model's recipe (the demo recipe with
    these changed, warm-up over the first 10 %); ``recipe``: the recipe of timm models on
    ``imagenet_train`` (a :class:`~masterkey.training.recipe.Recipe` mapping; None: timm models are
    not fine-tuned).
    """

    enabled: bool = False
    models: tuple[str, ...] | None = None
    variants: tuple[str, ...] = ("learned", "idealized-D1", "masterkey-published")
    steps: int = 300
    learning_rate: float = 0.0005
    batch_size: int = 64
    recipe: dict | None = None

    def variant_names(self) -> list[str]:
        """The variants to fine-tune, checked against the grammar (``ConfigError`` naming
        ``replacement.finetune.variants``); ``learned``, the baseline of the others, first."""
        names = [parse_variant(name, key="replacement.finetune.variants").name for name in self.variants]
        return names if LEARNED in names else [LEARNED, *names]

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
        trained = [name for name in names if is_finetune_only(name)]
        if trained:
            why = f"{', '.join(trained)} train their scales: list them in replacement.finetune.variants"
            raise ConfigError("replacement.variants", why)
        return names if LEARNED in names else [LEARNED, *names]


@dataclass(frozen=True)
class FrozenKeysSettings(Settings, section="frozen_keys"):
    """The ``frozen_keys`` config section: [Q]'s training from scratch with frozen depthwise
    filters (docs/methods.md section 5).

    ``models``: the models whose architecture is trained (None: the demo model when configured);
    ``keys``: the settings compared (:data:`KEY_SETS`); ``num_keys``: K of the own and the random
    keys (None: ``clustering.num_master_keys``); ``assignment``: ``best`` (each channel the key of
    best match to the trained reference network, random keys included) or ``even`` (channel ``c``
    takes key ``c mod K``); ``recipe``: the recipe of timm architectures on
    ``imagenet_train`` (None: they are left out); the demo trains with the demo's own recipe.
    """

    enabled: bool = True
    models: tuple[str, ...] | None = None
    keys: tuple[str, ...] = KEY_SETS
    num_keys: int | None = None
    assignment: str = "best"
    recipe: dict | None = None
