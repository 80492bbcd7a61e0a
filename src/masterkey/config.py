"""Workflow configuration: JSON-schema validation with defaults.

The schema lives in ``workflow/schemas/config.schema.yaml`` (the single source
of keys, types and defaults).  :func:`validate_config` fills defaults in place
and raises :class:`~masterkey.errors.UserError` naming the offending key.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import yaml

from .errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEMO_MODEL = "demo"


@dataclass(frozen=True)
class ModelSpec:
    """One entry of ``config['models']``.

    ``name`` is the wildcard used in file names: ``demo`` or a timm checkpoint
    ``architecture.tag``.  ``weights`` is an optional local checkpoint file.
    """

    name: str
    weights: str | None = None

    @property
    def is_demo(self) -> bool:
        return self.name == DEMO_MODEL


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

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_DefaultFillingValidator = _extend_with_defaults(jsonschema.Draft202012Validator)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "<top level>"


def _describe(error: jsonschema.ValidationError, schema: dict) -> str:
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
        return (
            f"config key {where}: {error.instance!r} is not a model entry; use a name string "
            "('demo' or a timm 'architecture.tag') or a mapping with keys 'name' and optional 'weights'"
        )
    return f"config key {where}: {error.message}"


def validate_config(config: dict, schema: dict | None = None) -> dict:
    """Validate ``config`` against the schema, filling defaults in place.

    Returns the same dict.  Raises :class:`UserError` with the dotted path of
    the first offending key (wrong type, unknown key, missing value ...).
    """
    if not isinstance(config, Mapping):
        raise UserError(f"the config must be a mapping of keys to values, got {type(config).__name__}")
    schema = schema if schema is not None else load_schema()
    validator = _DefaultFillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        raise UserError(_describe(errors[0], schema))
    specs = model_specs(config)
    names = [spec.name for spec in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UserError(f"config key models: {', '.join(duplicates)} listed more than once")
    return config


def model_specs(config: dict) -> list[ModelSpec]:
    """The ``models`` entries of a validated config as :class:`ModelSpec` objects."""
    specs = []
    for entry in config["models"]:
        if isinstance(entry, str):
            specs.append(ModelSpec(name=entry))
        else:
            specs.append(ModelSpec(name=entry["name"], weights=entry.get("weights")))
    return specs


def load_config_file(path: str | Path) -> dict:
    """Read a YAML config file and validate it (see :func:`validate_config`)."""
    path = Path(path)
    try:
        with open(path) as handle:
            config = yaml.safe_load(handle)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise UserError(f"config file {path} is not valid YAML: {err}") from None
    return validate_config(config if config is not None else {})
