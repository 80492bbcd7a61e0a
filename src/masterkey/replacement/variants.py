"""The registry of replacement variants: names, their grammar, the inputs each needs, the builders.

A *variant* says what every depthwise kernel of a network is replaced by ([B] Section 5, [Q];
docs/methods.md section 5).  Kinds register themselves the way timm registers models
(:func:`register_variant`); everything the workflow needs to know about them is derived from the
registry: the grammar of names (:func:`parse_variant`, :func:`variant_pattern`), the inputs a
variant needs beyond the kernels (:func:`variant_needs`), and the default list of a model
(:func:`default_variants`).  The builders live in :mod:`masterkey.replacement.build`.

Grammar (``<method>`` one of :data:`masterkey.scalespace.fitting.METHODS`):

* ``learned`` - the kernels themselves (the baseline);
* ``idealized-<method>`` and ``stage<i>-idealized-<method>`` (stage ``i`` only);
* ``masterkey-<K>`` (own clustering, ``K >= 1``) and ``masterkey-published`` (the published 8);
* ``random``, ``shuffled`` - the controls;
* ``learnable-<method>``, ``learnable-sampled-<method>`` - fine-tuning only
  (``replacement.finetune.variants``): the idealized kernels with learnable scales, built on the
  discrete analogue of the Gaussian or [B]'s sampled Gaussian (:mod:`masterkey.nets.scalespace_conv`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..core.errors import ConfigError

__all__ = [
    "LEARNED",
    "PUBLISHED_KEYS",
    "FINETUNED_PREFIX",
    "INPUTS",
    "Variant",
    "VariantKind",
    "register_variant",
    "variant_kinds",
    "parse_variant",
    "idealized_name",
    "finetuned_name",
    "variant_pattern",
    "is_finetune_only",
    "variant_needs",
    "variant_input_paths",
    "default_variants",
]

LEARNED = "learned"
PUBLISHED_KEYS = "published"
FINETUNED_PREFIX = "finetuned-"
"""Prefix of a variant name after fine-tuning with frozen depthwise kernels (:func:`finetuned_name`)."""
INPUTS = ("fits", "master_keys", "published")
"""Names of the inputs a variant may need beyond the model's kernels and index: the model's fits
table, the own master key filters (``master_keys_<K>.npz``, K per kernel size), the published filters."""


@dataclass(frozen=True)
class Variant:
    """A parsed variant name: its ``kind`` and the parameters its grammar carries."""

    name: str
    kind: str
    method: str | None = None
    num_keys: int | None = None  # None: the published 8
    stage: int | None = None
    gaussian: str | None = None  # learnable kinds: "discrete" or "sampled"


@dataclass(frozen=True)
class VariantKind:
    """A registered kind: ``pattern`` (regex with named groups for the parameters), ``needs``
    (the :data:`INPUTS` a variant of this kind needs) and ``build`` (its kernel builder)."""

    name: str
    pattern: str
    needs: Callable[[Variant], tuple[str, ...]]
    build: Callable
    defaults: Callable[[int], list[str]]
    forms: tuple[str, ...]
    finetune_only: bool = False


_REGISTRY: dict[str, VariantKind] = {}


def register_variant(
    name: str,
    pattern: str,
    needs: tuple[str, ...] | Callable[[Variant], tuple[str, ...]] = (),
    defaults: Callable[[int], list[str]] | None = None,
    forms: tuple[str, ...] | None = None,
    finetune_only: bool = False,
):
    """Decorator registering a builder as the variant kind ``name``.

    ``pattern`` matches the whole variant name; its named groups ``method``, ``keys``, ``stage``
    fill the :class:`Variant`.  ``defaults(num_master_keys)`` lists the names of this kind that a
    model gets when the config lists no variants (registration order is table order); ``forms``
    describe the names for error messages (default: ``name`` itself); a ``finetune_only`` kind
    exists only as a fine-tuned network (its parameters train), never as a zero-shot replacement.
    """
    if callable(needs):
        needs_fn = needs
    else:
        unknown = sorted(set(needs) - set(INPUTS))
        if unknown:
            raise ValueError(f"variant kind {name}: unknown input(s) {unknown}; known: {INPUTS}")
        needs_fn = lambda variant, fixed=tuple(needs): fixed  # noqa: E731

    def decorator(build: Callable) -> Callable:
        _REGISTRY[name] = VariantKind(
            name, pattern, needs_fn, build, defaults or (lambda keys: [name]), forms or (name,), finetune_only
        )
        return build

    return decorator


def variant_kinds() -> dict[str, VariantKind]:
    """The registered kinds, in registration order."""
    from . import build  # noqa: F401 - the builders register themselves on import

    return dict(_REGISTRY)


def _grammar() -> str:
    return ", ".join(form for kind in variant_kinds().values() for form in kind.forms)


def idealized_name(method: str, stage: int | None = None) -> str:
    """The name of the variant that replaces the kernels (of one ``stage``) by their fits of ``method``.

    >>> idealized_name("D1"), idealized_name("C2", stage=3)
    ('idealized-D1', 'stage3-idealized-C2')
    """
    return f"idealized-{method}" if stage is None else f"stage{stage}-idealized-{method}"


def finetuned_name(variant: Variant | str) -> str:
    """The name of a variant after fine-tuning with its depthwise kernels frozen.

    >>> finetuned_name("masterkey-published")
    'finetuned-masterkey-published'
    """
    return f"{FINETUNED_PREFIX}{variant.name if isinstance(variant, Variant) else variant}"


def parse_variant(name: str, key: str = "replacement.variants") -> Variant:
    """Parse a variant name.

    Raises :class:`~masterkey.core.errors.ConfigError` (naming the config ``key``) for an unknown
    name, listing the valid forms.

    >>> parse_variant("stage2-idealized-C1")
    Variant(name='stage2-idealized-C1', kind='idealized', method='C1', num_keys=None, stage=2, gaussian=None)
    """
    for kind in variant_kinds().values():
        match = re.fullmatch(kind.pattern, str(name))
        if match is None:
            continue
        groups = match.groupdict()
        keys = groups.get("keys")
        return Variant(
            str(name),
            kind.name,
            method=groups.get("method"),
            num_keys=None if keys in (None, PUBLISHED_KEYS) else int(keys),
            stage=None if groups.get("stage") is None else int(groups["stage"]),
            gaussian=(groups.get("gaussian") or "discrete") if "gaussian" in kind.pattern else None,
        )
    if re.fullmatch(r"masterkey-\d+", str(name)):
        raise ConfigError(key, f"variant {name!r}: the number of master keys must be >= 1 (no leading zeros)")
    raise ConfigError(key, f"unknown replacement variant {name!r}; valid: {_grammar()}")


def variant_pattern() -> str:
    """A regex (no named groups) matching every valid variant name, for Snakemake's wildcards."""
    patterns = [re.sub(r"\(\?P<\w+>", "(?:", kind.pattern) for kind in variant_kinds().values()]
    return "|".join(f"(?:{pattern})" for pattern in patterns)


def is_finetune_only(variant: Variant | str) -> bool:
    """Whether ``variant`` exists only as a fine-tuned network (see :func:`register_variant`)."""
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    return variant_kinds()[variant.kind].finetune_only


def variant_needs(variant: Variant | str) -> tuple[str, ...]:
    """The :data:`INPUTS` that ``variant`` needs beyond the model's kernels and index."""
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    return variant_kinds()[variant.kind].needs(variant)


def variant_input_paths(variant: Variant | str, patterns: Mapping[str, str], **fields) -> dict[str, str]:
    """The paths of the inputs ``variant`` needs: ``patterns[name]`` (one per name of
    :data:`INPUTS`) formatted with ``fields`` and the variant's ``num_keys``.

    >>> patterns = {"fits": "{model}.parquet", "master_keys": "keys_{num_keys}.npz", "published": "8.txt"}
    >>> variant_input_paths("masterkey-8", patterns, model="m")
    {'master_keys': 'keys_8.npz'}
    """
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    needs = variant_needs(variant)
    return {name: patterns[name].format(num_keys=variant.num_keys, **fields) for name in needs}


def default_variants(num_master_keys: int) -> list[str]:
    """Every variant of a model when the config lists none, in table order.

    >>> default_variants(8)[:3], default_variants(8)[-4:]
    (['learned', 'idealized-A', 'idealized-B'], ['masterkey-8', 'masterkey-published', 'random', 'shuffled'])
    """
    return [name for kind in variant_kinds().values() for name in kind.defaults(num_master_keys)]
