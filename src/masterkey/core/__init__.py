"""Infrastructure every other package builds on: errors, atomic I/O, tables, config, rule glue.

* :mod:`.errors` - :class:`UserError` and its subclasses :class:`ConfigError`, :class:`StaleFileError`;
* :mod:`.io` - atomic writes, checked reads of workflow files, fetching small text resources;
* :mod:`.tables` - one writer for CSV, Markdown and LaTeX tables;
* :mod:`.config` - validation against the JSON schema, model entries, :class:`Settings`;
* :mod:`.rules` - :func:`run_rule`, the boundary between a Snakemake rule and the library.

References
----------
None: this package implements no paper.
"""

from .config import (
    ModelSpec,
    Settings,
    load_schema,
    model_specs,
    validate_config,
)
from .errors import ConfigError, StaleFileError, UserError
from .io import (
    atomic_paths,
    fetch_text_resource,
    read_json,
    read_npy,
    read_parquet,
    sha256_file,
    write_json,
    write_npy,
    write_parquet,
)
from .rules import run_rule
from .tables import format_cell, to_latex_booktabs, to_markdown, write_table

__all__ = [
    "UserError",
    "ConfigError",
    "StaleFileError",
    "atomic_paths",
    "sha256_file",
    "write_json",
    "write_npy",
    "write_parquet",
    "read_json",
    "read_npy",
    "read_parquet",
    "fetch_text_resource",
    "write_table",
    "to_markdown",
    "to_latex_booktabs",
    "format_cell",
    "ModelSpec",
    "Settings",
    "validate_config",
    "model_specs",
    "load_schema",
    "run_rule",
]
