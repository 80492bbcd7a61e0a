"""Atomic file output and checksums.

Every output is first written to a temporary file beside its destination and
then renamed into place, so an interrupted job never leaves a half-written
file that Snakemake would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths``; rename them all into place on success.

    On an exception every temporary file is removed and no destination is
    touched.  Parent directories are created.
    """
    finals = [Path(p) for p in paths]
    temps = []
    for final in finals:
        final.parent.mkdir(parents=True, exist_ok=True)
        temps.append(final.with_name(f".{final.name}.tmp-{os.getpid()}{''.join(final.suffixes)}"))
    try:
        yield temps
        for temp, final in zip(temps, finals, strict=True):
            os.replace(temp, final)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(data, path: str | Path) -> None:
    """Write ``data`` as indented, key-sorted JSON (atomically)."""
    with atomic_paths(path) as (temp,):
        temp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
