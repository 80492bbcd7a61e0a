"""Evaluation sets in memory and the decoded uint8 evaluation cache on disk.

An evaluation set (:class:`EvalSet`) holds images ``(N, 3, H, W)`` (RGB) and int64 labels: either
uint8 pixels in ``[0, 255]`` with the ``mean``/``std`` applied at inference, or float32 images
already normalised.  A cache ``X.npy`` (uint8, memory-mappable) comes with ``X.labels.npy`` and
the JSON sidecar ``X.json`` (:func:`eval_cache_files`); all three are written atomically.  The
pixel part of a checkpoint's preprocessing (:class:`~masterkey.data.preprocessing.Preprocessing`)
is decoded once into the cache, so checkpoints that differ only in mean/std share one cache.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from ..core.errors import ConfigError, StaleFileError
from ..core.io import atomic_paths, read_json, write_json
from .imagenet import file_list_fingerprint
from .preprocessing import CACHE_VERSION, Preprocessing, decode_image, pixel_transform

__all__ = [
    "CACHE_FORMAT",
    "EvalCacheFiles",
    "eval_cache_files",
    "build_eval_cache",
    "EvalSet",
    "load_eval_cache",
]

CACHE_FORMAT = "masterkey-eval-cache"



class EvalCacheFiles(NamedTuple):
    images: Path  # X.npy, uint8 or float32 (N, 3, H, W)
    labels: Path  # X.labels.npy, int64 (N,)
    meta: Path  # X.json, the sidecar


def eval_cache_files(path) -> EvalCacheFiles:
    """The three files of the cache ``path`` (which must end in ``.npy``)."""
    path = Path(path)
    if path.suffix != ".npy" or path.name.endswith(".labels.npy"):
        raise ValueError(f"evaluation cache path {path} must end in .npy (not .labels.npy)")
    return EvalCacheFiles(path, path.with_suffix(".labels.npy"), path.with_suffix(".json"))


class _DecodeDataset(torch.utils.data.Dataset):
    """Index -> (uint8 (3, H, W), error message or "")."""

    def __init__(self, paths: list[str], preprocessing: Preprocessing):
        self.paths = paths
        self.shape = (3, *preprocessing.input_size[1:])
        self.transform = pixel_transform(preprocessing)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        try:
            image = decode_image(self.paths[index], self.transform)
            if tuple(image.shape) != self.shape or image.dtype != torch.uint8:
                raise ValueError(f"transform gave {tuple(image.shape)} {image.dtype}")
            return image, ""
        except Exception as err:  # reported by the parent process with the file name
            return torch.zeros(self.shape, dtype=torch.uint8), f"{type(err).__name__}: {err}"


def _write_npy_header(handle, shape: tuple[int, ...], dtype) -> None:
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(handle, header)


def _check_free_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < needed * 1.02 + (64 << 20):
        raise ConfigError(
            "eval_cache",
            f"{needed / 1e9:.1f} GB needed in {folder} but only {free / 1e9:.1f} GB free; "
            "free space or point eval_cache at a larger disk",
        )


def _fingerprint(paths, labels, root, key: str) -> str:
    try:
        return file_list_fingerprint(paths, labels, root)
    except FileNotFoundError as err:
        raise ConfigError(key, f"image {err.filename} disappeared while the cache was built") from None


def build_eval_cache(
    paths: Sequence,
    labels,
    preprocessing: Preprocessing,
    out_path,
    workers: int = 4,
    meta: dict | None = None,
    batch_size: int = 32,
    key: str = "imagenet_val",
) -> Path:
    """Decode every image once with ``preprocessing``'s pixel transform into a uint8 cache.

    Writes ``out_path`` (``.npy``, uint8 ``(N, 3, H, W)``, memory-mappable),
    ``X.labels.npy`` and the sidecar ``X.json`` (``preprocessing``, ``key``,
    ``num_images``, ``source_root``, ``fingerprint`` of the file list, plus
    ``meta``).  The array is streamed to a temporary file batch by batch (never
    held in memory) and the three files are renamed into place only when all
    images decoded.  ``workers`` > 1 decodes in that many processes (torch
    DataLoader).  Returns ``out_path``.  An image that cannot be decoded, or that disappeared,
    raises :class:`ConfigError` naming the config ``key`` of the image folder.
    """
    files = eval_cache_files(out_path)
    paths = [Path(p) for p in paths]
    labels = np.asarray(labels, dtype=np.int64)
    if not paths:
        raise ValueError("evaluation cache: no images to decode")
    if labels.shape != (len(paths),):
        raise ValueError(f"evaluation cache: {len(paths)} images but labels of shape {labels.shape}")
    shape = (len(paths), *preprocessing.input_size)
    files.images.parent.mkdir(parents=True, exist_ok=True)
    _check_free_space(files.images.parent, int(np.prod(shape)))
    source_root = os.path.commonpath([str(p.parent) for p in paths])
    sidecar = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "name": files.images.stem,
        **(meta or {}),
        "preprocessing": preprocessing.as_dict(),
        "key": preprocessing.key(),
        "num_images": len(paths),
        "shape": list(shape),
        "dtype": "uint8",
        "source_root": source_root,
        "fingerprint": _fingerprint(paths, labels, source_root, key),
    }
    dataset = _DecodeDataset([str(p) for p in paths], preprocessing)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=workers if workers > 1 else 0
    )
    started = time.perf_counter()
    with atomic_paths(*files) as (images_temp, labels_temp, meta_temp):
        try:
            with open(images_temp, "wb") as handle:
                _write_npy_header(handle, shape, np.uint8)
                done = 0
                progress = tqdm(total=len(paths), desc="decode", unit="img", mininterval=5)
                for batch, errors in loader:
                    for offset, error in enumerate(errors):
                        if error:
                            message = f"cannot decode {paths[done + offset]} ({error})"
                            raise ConfigError(key, f"{message}; replace or remove the file")
                    handle.write(batch.numpy().tobytes())
                    done += len(batch)
                    progress.update(len(batch))
                progress.close()
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise ConfigError(
                    "eval_cache", f"disk full while writing {files.images}; free space or point it elsewhere"
                ) from None
            raise
        np.save(labels_temp, labels)
        sidecar["decode_seconds"] = round(time.perf_counter() - started, 3)
        write_json(sidecar, meta_temp)
    return files.images


def _dtype_name(array) -> str:
    """``"uint8"``, ``"float32"``, ... for NumPy arrays and torch tensors alike."""
    dtype = array.dtype
    return str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else np.dtype(dtype).name


@dataclass
class EvalSet:
    """An evaluation set in memory or memory-mapped.

    ``images``: uint8 ``(N, 3, H, W)`` pixels with ``mean``/``std`` (applied at
    inference as ``(x / 255 - mean) / std``), or float32 already normalised with
    ``mean = std = None``.  ``labels``: int64 ``(N,)``.
    """

    images: np.ndarray | torch.Tensor
    labels: np.ndarray
    mean: tuple[float, float, float] | None
    std: tuple[float, float, float] | None
    name: str

    def __post_init__(self):
        if isinstance(self.labels, torch.Tensor):
            self.labels = self.labels.cpu().numpy()
        self.labels = np.asarray(self.labels, dtype=np.int64)
        shape = tuple(self.images.shape)
        if len(shape) != 4 or shape[1] != 3:
            raise ValueError(f"evaluation set '{self.name}': images must be (N, 3, H, W), got {shape}")
        if self.labels.shape != (shape[0],):
            raise ValueError(f"evaluation set '{self.name}': {shape[0]} images, labels {self.labels.shape}")
        if self.is_uint8 != (self.mean is not None and self.std is not None):
            raise ValueError(
                f"evaluation set '{self.name}': uint8 images need mean and std, "
                "float (pre-normalised) images take none"
            )
        if _dtype_name(self.images) not in ("uint8", "float32"):
            raise ValueError(f"evaluation set '{self.name}': images must be uint8 or float32")

    @property
    def is_uint8(self) -> bool:
        return _dtype_name(self.images) == "uint8"

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_eval_cache(path, preprocessing: Preprocessing | None = None) -> EvalSet:
    """Open a cache (images memory-mapped, read-only) as an :class:`EvalSet`.

    With ``preprocessing`` its key must equal the cache's (else the cache is
    stale) and its mean/std are the ones applied at inference, so one pixel
    cache serves every checkpoint of the same pixel preprocessing; without,
    the mean/std the cache was built with are used.
    """
    files = eval_cache_files(path)
    for file in files:
        if not file.is_file():
            raise StaleFileError(file, "does not exist (a file of the evaluation cache)")
    sidecar = read_json(files.meta)
    if not isinstance(sidecar, dict) or sidecar.get("format") != CACHE_FORMAT:
        raise StaleFileError(files.meta, "is not an evaluation cache sidecar")
    if sidecar.get("version") != CACHE_VERSION:
        raise StaleFileError(
            files.images,
            f"has cache format version {sidecar.get('version')}, this code reads {CACHE_VERSION}",
        )
    try:
        images = np.load(files.images, mmap_mode="r")
        labels = np.load(files.labels)
    except (ValueError, OSError, EOFError) as err:
        raise StaleFileError(files.images, f"is unreadable ({err})") from None
    if list(images.shape) != sidecar.get("shape") or str(images.dtype) != sidecar.get("dtype"):
        raise StaleFileError(
            files.images,
            f"holds {images.dtype} {list(images.shape)} but its sidecar says "
            f"{sidecar.get('dtype')} {sidecar.get('shape')}",
        )
    if labels.shape != (images.shape[0],) or labels.dtype != np.int64:
        raise StaleFileError(files.labels, "does not match the images of its evaluation cache")
    if sidecar.get("preprocessing") is None:
        raise StaleFileError(files.meta, "names no preprocessing; it is not a uint8 evaluation cache")
    built = Preprocessing.from_dict(sidecar["preprocessing"])
    if built.key() != sidecar.get("key"):
        raise StaleFileError(files.meta, "has a key that does not match its preprocessing")
    if preprocessing is not None:
        if preprocessing.key() != built.key():
            raise StaleFileError(
                files.images,
                f"was built with {built.pixel_fields()} (key {built.key()}), but "
                f"{preprocessing.pixel_fields()} (key {preprocessing.key()}) is asked for",
            )
    source = preprocessing or built
    name = str(sidecar.get("name") or files.images.stem)
    return EvalSet(images=images, labels=labels, mean=tuple(source.mean), std=tuple(source.std), name=name)
