"""The 8 published master key filters ([Q], analysed in [B]).

File format (``8Filters.txt`` of tonylindeberg/masterfiltmodel, CC BY 4.0):
a line ``Filter i:`` followed by ``k`` rows of ``k`` numbers, top row first
(top row has ``y = +c``, see :mod:`masterkey.conventions`), columns left to
right.  The filters are stored exactly in that orientation, i.e. as
``h[row, col]`` arrays.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .conventions import check_kernel_size
from .errors import UserError

PUBLISHED_FILTERS_URL = (
    "https://raw.githubusercontent.com/tonylindeberg/masterfiltmodel/main/model-fitting/8Filters.txt"
)
_HEADER = re.compile(r"^\s*Filter\s+(\d+)\s*:\s*$", re.IGNORECASE)


def parse_master_key_filters(text: str, source: str = "<text>") -> np.ndarray:
    """Parse the ``Filter i:`` text format into an array of shape ``(n, k, k)``.

    Raises :class:`UserError` naming ``source`` if the text is malformed
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
            raise UserError(f"{source}: line {lineno} precedes the first 'Filter i:' header")
        try:
            filters[-1].append([float(v) for v in line.split()])
        except ValueError:
            raise UserError(
                f"{source}: line {lineno} is not a row of numbers: {line.strip()[:60]!r}"
            ) from None
    if not filters:
        raise UserError(f"{source}: no 'Filter i:' blocks found; is this the 8Filters.txt file?")
    if numbers != list(range(1, len(numbers) + 1)):
        raise UserError(f"{source}: filters are numbered {numbers}, expected 1..{len(numbers)} in order")
    k = len(filters[0])
    for number, rows in zip(numbers, filters, strict=True):
        if len(rows) != k or any(len(r) != k for r in rows):
            raise UserError(f"{source}: filter {number} is not {k}x{k}")
    try:
        check_kernel_size(k)
    except ValueError as err:
        raise UserError(f"{source}: {err}") from None
    array = np.asarray(filters, dtype=np.float64)
    if not np.isfinite(array).all():
        raise UserError(f"{source}: contains non-finite values")
    return array


def load_master_key_filters(path: str | Path) -> np.ndarray:
    """Read and parse a master key filter file (see :func:`parse_master_key_filters`)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"published filter file {path} does not exist; set the config key "
            "'published_filters' to a local copy or to its public address"
        )
    return parse_master_key_filters(path.read_text(), source=str(path))
