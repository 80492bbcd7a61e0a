"""The 8 published master key filters ([Q], analysed in [B]).

File format (``8Filters.txt`` of tonylindeberg/masterfiltmodel, CC BY 4.0): a line ``Filter i:``
followed by ``k`` rows of ``k`` numbers, top row first (top row has ``y = +c``), columns left to
right.  The filters are stored exactly in that orientation, i.e. as ``h[row, col]`` arrays in the
convention of docs/methods.md section 1.

A copy ships with the package (:data:`BUNDLED_FILTERS`, with its attribution file
``published_filters/ATTRIBUTION.md``): it is the default of the config key ``published_filters``,
so nothing needs the network.  The public address :data:`PUBLISHED_FILTERS_URL` (or any local
path) can be given instead; :func:`fetch_published_filters` copies and validates either.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError, StaleFileError
from ..core.io import fetch_text_resource
from ..kernels.conventions import check_kernel_size

__all__ = [
    "PUBLISHED_FILTERS_URL",
    "BUNDLED_FILTERS",
    "parse_master_key_filters",
    "load_master_key_filters",
    "fetch_published_filters",
]

BUNDLED_FILTERS = Path(str(files("masterkey.data") / "published_filters" / "8Filters.txt"))
"""The copy of the 8 published filters that ships with the package (CC BY 4.0, see ATTRIBUTION.md)."""

PUBLISHED_FILTERS_URL = (
    "https://raw.githubusercontent.com/tonylindeberg/masterfiltmodel/"
    "e170f53983cedc93c13506070bc73323c179ec9b/model-fitting/8Filters.txt"
)
"""The public copy at the commit the bundled file was taken from (see ATTRIBUTION.md)."""
_HEADER = re.compile(r"^\s*Filter\s+(\d+)\s*:\s*$", re.IGNORECASE)


def parse_master_key_filters(text: str, source: str = "<text>") -> np.ndarray:
    """Parse the ``Filter i:`` text format into an array of shape ``(n, k, k)``.

    Raises ``ValueError`` naming ``source`` if the text is malformed
    (no filters, ragged rows, non-square or even-sized filters, non-finite
    values, or numbering that is not 1..n in order).
    """
    filters: list[list[list[float]]] = []
    numbers: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        header = _HEADER.match(line)
        if header:
            numbers.append(int(header.group(1)))
            filters.append([])
            continue
        if not filters:
            raise ValueError(f"{source}: line {lineno} precedes the first 'Filter i:' header")
        try:
            filters[-1].append([float(v) for v in line.split()])
        except ValueError:
            raise ValueError(
                f"{source}: line {lineno} is not a row of numbers: {line.strip()[:60]!r}"
            ) from None
    if not filters:
        raise ValueError(f"{source}: no 'Filter i:' blocks found; is this the 8Filters.txt file?")
    if numbers != list(range(1, len(numbers) + 1)):
        raise ValueError(f"{source}: filters are numbered {numbers}, expected 1..{len(numbers)} in order")
    k = len(filters[0])
    for number, rows in zip(numbers, filters, strict=True):
        if len(rows) != k or any(len(r) != k for r in rows):
            raise ValueError(f"{source}: filter {number} is not {k}x{k}")
    try:
        check_kernel_size(k)
    except ValueError as err:
        raise ValueError(f"{source}: {err}") from None
    array = np.asarray(filters, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{source}: contains non-finite values")
    return array


def load_master_key_filters(path: str | Path) -> np.ndarray:
    """Read and parse a master key filter file (:func:`parse_master_key_filters`): ``(n, k, k)``.

    A missing or malformed file raises :class:`StaleFileError` naming it (the workflow's copy in
    ``resources/published/`` is checked when it is fetched).
    """
    path = Path(path)
    if not path.is_file():
        raise StaleFileError(path, "does not exist")
    try:
        return parse_master_key_filters(path.read_text(), source=str(path))
    except ValueError as err:
        raise StaleFileError(path, f"is not a master key filter file ({err})") from None


def fetch_published_filters(source: str | Path | None, destination) -> Path:
    """Copy the published filters from ``source`` (URL, local path, or ``None`` for the bundled
    copy) to ``destination``, after checking the format; errors name the config key
    ``published_filters``."""

    def validate(path: Path) -> None:
        try:
            parse_master_key_filters(path.read_text(), source=str(source or BUNDLED_FILTERS))
        except ValueError as err:
            raise ConfigError("published_filters", str(err)) from None

    return fetch_text_resource(source or BUNDLED_FILTERS, destination, "published_filters", validate=validate)
