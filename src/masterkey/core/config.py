"""Workflow configuration: JSON-schema validation with defaults, and settings dataclasses.

The schema ``workflow/schemas/config.schema.yaml`` is the single source of keys, types, defaults
and allowed values, and the only validator: :func:`validate_config` fills the defaults in place and
raises :class:`~masterkey.core.errors.ConfigError` naming the first offending key.  Each config
section is then turned, at the workflow boundary, into one frozen :class:`Settings` dataclass
(``ClusteringSettings.from_config(config)``); library functions take those, never config dicts.
The dataclass defaults repeat the schema's so that the library can be used without a config; a
test asserts that both agree.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from .errors import ConfigError, UserError

__all__ = [
    "REPO_ROOT",
    "SCHEMA_PATH",
    "DEMO_MODEL",
    "ModelSpec",
    "Settings",
    "load_schema",
    "validate_config",
    "model_specs",
]

REPO_ROOT = Path(__file__).resolve().parents[3]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEMO_MODEL = "demo"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``config['models']`` (keys and defaults: the schema's ``models`` items).

    ``name`` is the wildcard used in file names: ``demo`` or a timm checkpoint
    ``architecture.tag`` (an architecture alone with ``weights``).  ``weights`` is an optional
    checkpoint file or ``package:<import name>`` (a file shipped by an installed package);
    ``model_kwargs`` are extra ``timm.create_model`` arguments (architecture options);
    ``key_mapping`` is ``names`` or ``positional`` (tensors matched by order, shape-checked);
    ``published_top1`` is the published ImageNet top-1 in percent, carried to the sidecar.
    """

    name: str
    weights: str | None = None
    model_kwargs: dict = dataclasses.field(default_factory=dict)
    key_mapping: str = "names"
    published_top1: float | None = None

    @property
    def is_demo(self) -> bool:
        return self.name == DEMO_MODEL

    def as_dict(self) -> dict:
        """Plain data (``ModelSpec(**spec.as_dict())`` rebuilds it), e.g. for Snakemake params."""
        return dataclasses.asdict(self)


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    with open(path) as handle:
        return yaml.safe_load(handle)


def _extend_with_defaults(validator_class):
    """A validator that also fills ``default`` values of missing properties."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    import jsonschema

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


@functools.cache
def _default_filling_validator():
    """jsonschema's Draft 2020-12 validator that fills defaults (jsonschema is imported here, not
    at module load: the training engine and the GPU check use this module's settings classes
    where only torch, timm and the scientific stack are installed)."""
    import jsonschema

    return _extend_with_defaults(jsonschema.Draft202012Validator)


def _key_path(error) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "<top level>"


def _describe(error, schema: dict) -> str:
    where = _key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        prefix = "" if where == "<top level>" else f"{where}."
        return (
            f"unknown config key {', '.join(prefix + h for h in hints)}; "
            f"allowed keys{'' if where == '<top level>' else ' under ' + where}: {', '.join(allowed)}"
        )
    if error.validator == "oneOf" and where.startswith("models["):
        if isinstance(error.instance, Mapping):  # a mapping entry: say what is wrong inside it
            inner = [e for e in error.context if e.relative_schema_path[0] == 1]
            if inner:
                return _describe(min(inner, key=lambda e: len(e.absolute_path)), schema)
        return (
            f"config key {where}: {error.instance!r} is not a model entry; use a name string "
            "('demo' or a timm 'architecture.tag') or a mapping with key 'name' and optional "
            "'weights', 'model_kwargs', 'key_mapping', 'published_top1'"
        )
    if error.validator == "not" and error.validator_value == {"multipleOf": 2}:
        return f"config key {where}: must be an odd integer, got {error.instance!r}"
    return f"config key {where}: {error.message}"


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` against the schema, filling defaults in place.

    Returns the same dict.  Raises :class:`ConfigError` with the dotted path of
    the first offending key (wrong type, unknown key, missing value ...).
    """
    if not isinstance(config, Mapping):
        raise UserError(f"the config must be a mapping of keys to values, got {type(config).__name__}")
    schema = schema if schema is not None else load_schema()
    validator = _default_filling_validator()(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        raise ConfigError(_key_path(errors[0]), _describe(errors[0], schema), verbatim=True)
    specs = model_specs(config)
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError("models", f"{', '.join(duplicates)} listed more than once")
    for check in _CROSS_FIELD_CHECKS:
        check(config)
    return config


def _master_keys_within_candidates(config: dict) -> None:
    section = config["clustering"]  # defaults are filled in by now
    keys, candidates = section["num_master_keys"], section["num_candidates"]
    if keys > candidates:
        raise ConfigError(
            "clustering.num_master_keys", f"({keys}) must not exceed num_candidates ({candidates})"
        )


_CROSS_FIELD_CHECKS = (_master_keys_within_candidates,)
"""Rules that relate two keys (JSON schema cannot state them); each raises :class:`ConfigError`."""


def model_specs(config: dict) -> list[ModelSpec]:
    """The ``models`` entries of a validated config as :class:`ModelSpec` objects."""
    specs = []
    for i, entry in enumerate(config["models"]):
        spec = ModelSpec(name=entry) if isinstance(entry, str) else ModelSpec(**entry)
        if spec.is_demo and (spec.weights or spec.model_kwargs or spec.key_mapping != "names"):
            why = "the demo model is trained by the workflow: it takes no 'weights' or 'key_mapping'"
            raise ConfigError(f"models[{i}]", f"{why}; its architecture options go in demo.model_kwargs")
        if spec.key_mapping != "names" and spec.weights is None:
            why = f"key_mapping '{spec.key_mapping}' of '{spec.name}' applies to a checkpoint file"
            raise ConfigError(f"models[{i}]", f"{why}: give it in 'weights' (hub files use timm's keys)")
        specs.append(spec)
    return specs


def _is_tuple_hint(hint) -> bool:
    """True for ``tuple[...]`` and ``tuple[...] | None`` (a field whose default may be ``None``)."""
    return any(typing.get_origin(h) is tuple or h is tuple for h in (hint, *typing.get_args(hint)))


class Settings:
    """Base of the frozen dataclasses that hold one validated config section.

    A subclass names its section (``class ClusteringSettings(Settings, section="clustering")``)
    and is registered in :attr:`registry`.  Tuple-typed fields (``tuple[...]``, also ``| None``)
    take lists from the config; fields typed as another :class:`Settings` subclass are built from
    the nested mapping.  No value is checked here: the config was validated against the schema.
    """

    section: ClassVar[str]
    registry: ClassVar[dict[str, type]] = {}

    def __init_subclass__(cls, section: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if section is not None:
            cls.section = section
            Settings.registry[section] = cls

    @classmethod
    def from_section(cls, values: Mapping | None):
        """Settings from the section's mapping (keys the mapping lacks keep their defaults)."""
        values = dict(values or {})
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise TypeError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
        for name, value in values.items():
            hint = hints.get(name)
            if isinstance(hint, type) and issubclass(hint, Settings) and isinstance(value, Mapping):
                values[name] = hint.from_section(value)
            elif isinstance(value, list) and _is_tuple_hint(hint):
                values[name] = tuple(value)
        return cls(**values)

    @classmethod
    def from_config(cls, config: Mapping):
        """Settings from the whole (validated) config: its ``cls.section`` entry."""
        return cls.from_section(config.get(cls.section))

    def as_dict(self) -> dict:
        """Plain-data form (lists for tuples), e.g. for JSON sidecars and Snakemake params."""

        def plain(value):
            if isinstance(value, Settings):
                return value.as_dict()
            if isinstance(value, tuple):
                return [plain(v) for v in value]
            return value

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}
