"""Fetch small text resources (the published filters) from a URL or a local path."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from .errors import UserError
from .io import atomic_paths


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def fetch_text_resource(
    source: str,
    destination,
    config_key: str,
    validate: Callable[[Path], object] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Copy ``source`` (URL or local path) to ``destination`` atomically.

    ``validate(temp_path)`` is called before the file is moved into place and
    may raise :class:`UserError` for malformed content.  Raises
    :class:`UserError` naming ``config_key`` if the URL cannot be downloaded
    (e.g. offline) or the path does not exist.
    """
    destination = Path(destination)
    with atomic_paths(destination) as (temp,):
        if is_url(source):
            try:
                with urllib.request.urlopen(source, timeout=timeout) as response, open(temp, "wb") as out:
                    shutil.copyfileobj(response, out)
            except (urllib.error.URLError, OSError) as err:
                raise UserError(
                    f"cannot download {source} ({getattr(err, 'reason', err)}); without network set the "
                    f"config key '{config_key}' to a local copy (e.g. --config {config_key}=path/to/file)"
                ) from None
        else:
            path = Path(source)
            if not path.is_file():
                raise UserError(f"config key '{config_key}': file {path} does not exist")
            shutil.copyfile(path, temp)
        if validate is not None:
            validate(temp)
    return destination
