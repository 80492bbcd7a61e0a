"""Atomic file output, checksums and checked reading of workflow files.

Every output is first written to a temporary file beside its destination and then renamed into
place, so an interrupted job never leaves a half-written file that Snakemake would trust.  Files
written by an earlier rule are read through :func:`read_parquet`, :func:`read_npy` and
:func:`read_json`, which turn a missing or corrupt file into a :class:`StaleFileError` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError, StaleFileError

__all__ = [
    "atomic_paths",
    "sha256_file",
    "write_json",
    "write_json_each",
    "write_npy",
    "write_parquet",
    "read_json",
    "read_npy",
    "read_parquet",
    "is_url",
    "fetch_text_resource",
]


@contextmanager
def atomic_paths(*paths: str | Path) -> Iterator[list[Path]]:
    """Yield temporary paths for ``paths``; rename them all into place on success.

    On an exception every temporary file is removed and no destination is touched.  Parent
    directories are created.
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


def write_json_each(records, paths) -> None:
    """Write ``records[name]`` to ``paths[name]`` for every name of ``records`` (each atomically)."""
    for name, record in records.items():
        write_json(record, paths[name])


def write_npy(array, path: str | Path) -> None:
    """Write one array as ``.npy`` (atomically)."""
    import numpy as np

    with atomic_paths(path) as (temp,), open(temp, "wb") as handle:
        np.save(handle, array)


def write_parquet(table, path: str | Path) -> None:
    """Write a DataFrame as parquet without its index (atomically)."""
    with atomic_paths(path) as (temp,):
        table.to_parquet(temp, index=False)


def _checked_read(path, read: Callable, errors: tuple[type[BaseException], ...]):
    try:
        return read(path)
    except FileNotFoundError:
        raise StaleFileError(path, "does not exist") from None
    except errors as err:
        raise StaleFileError(path, f"is unreadable ({type(err).__name__}: {str(err)[:200]})") from None


def read_parquet(path: str | Path):
    """Read a parquet file; a missing or corrupt file raises :class:`StaleFileError`."""
    import pandas as pd

    return _checked_read(path, pd.read_parquet, (Exception,))  # pyarrow raises several types


def read_npy(path: str | Path):
    """Read an ``.npy`` array; a missing or corrupt file raises :class:`StaleFileError`."""
    import numpy as np

    return _checked_read(path, np.load, (ValueError, OSError, EOFError))


def read_json(path: str | Path):
    """Read a JSON file; a missing or corrupt file raises :class:`StaleFileError`."""

    def read(p):
        return json.loads(Path(p).read_text())

    return _checked_read(path, read, (json.JSONDecodeError, UnicodeDecodeError, OSError))


def is_url(source: str) -> bool:
    return str(source).startswith(("http://", "https://"))


def fetch_text_resource(
    source: str | Path,
    destination,
    config_key: str,
    validate: Callable[[Path], object] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Copy ``source`` (URL or local path) to ``destination`` atomically.

    ``validate(temp_path)`` is called before the file is moved into place and may raise a
    :class:`~masterkey.core.errors.UserError` for malformed content.  Raises :class:`ConfigError`
    naming ``config_key`` when the URL cannot be downloaded (e.g. offline) or the path does not
    exist.
    """
    destination = Path(destination)
    with atomic_paths(destination) as (temp,):
        if is_url(str(source)):
            try:
                with urllib.request.urlopen(str(source), timeout=timeout) as response:
                    temp.write_bytes(response.read())
            except (urllib.error.URLError, OSError) as err:
                raise ConfigError(
                    config_key,
                    f"cannot download {source} ({getattr(err, 'reason', err)}); without network set it to "
                    f"a local copy (--config {config_key}=path/to/file) or leave it unset for the copy "
                    "bundled with the package",
                ) from None
        else:
            path = Path(source)
            if not path.is_file():
                raise ConfigError(config_key, f"file {path} does not exist")
            shutil.copyfile(path, temp)
        if validate is not None:
            validate(temp)
    return destination
