"""Evaluation data and inference: ImageNet-style image folders, a decoded pixel cache, top-k accuracy.

Preprocessing follows timm's evaluation transform of each checkpoint (its
``pretrained_cfg``): resize, then crop to ``input_size``, then ``x / 255``,
then ``(x - mean) / std`` per channel.  The pixel part (resize and crop) is
done once per setting and stored as a uint8 cache; mean and std are applied on
the device at inference time, so checkpoints that differ only in mean/std
share one cache.

Conventions:

* images are ``(N, 3, H, W)``, channel order RGB; cached pixels are uint8 in
  ``[0, 255]``, evaluation sets already normalised are float32;
* labels are int64; ImageNet-1k labels are indices into the *sorted* list of
  the 1000 WordNet ids (``n01440764`` = 0 ... ``n15075141`` = 999), the order
  timm, torchvision and the checkpoints use;
* accuracies are fractions in ``[0, 1]``.

A cache ``X.npy`` comes with ``X.labels.npy`` (int64) and the JSON sidecar
``X.json`` (see :func:`eval_cache_files`); all three are written atomically.
"""

from __future__ import annotations

import csv
import difflib
import errno
import hashlib
import json
import math
import os
import queue
import re
import shutil
import threading
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .errors import UserError
from .io import atomic_paths, write_json

CACHE_FORMAT = "masterkey-eval-cache"
CACHE_VERSION = 1  # part of every preprocessing key: bump it when the decoding changes
CROP_MODES = ("center", "squash", "border")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# Label files of a flat folder of validation images, by kind (see find_imagenet_images).
PLAIN_LABEL_FILES = ("val_labels.txt", "labels.txt", "val.txt")
KAGGLE_LABEL_FILE = "LOC_val_solution.csv"
DEVKIT_LABEL_FILE = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META_FILE = "meta.mat"
DEVKIT_DIR = Path("ILSVRC2012_devkit_t12") / "data"
_WNID = re.compile(r"^n\d{8}$")
_DEVKIT_IMAGE = re.compile(r"^ILSVRC2012_val_(\d{8})$")


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Preprocessing:
    """timm-style evaluation preprocessing of one checkpoint.

    ``input_size`` is ``(3, H, W)``.  ``crop_mode`` as in timm's eval transform:
    ``center`` resizes the shorter side to ``size / crop_pct`` (each side
    ``floor(size / crop_pct)``; non-square sizes keep the aspect ratio) and
    centre-crops; ``squash`` resizes both sides to ``floor(size / crop_pct)``
    and centre-crops; ``border`` resizes the longer side and pads with the mean
    colour.  ``interpolation`` is a PIL filter name.
    """

    input_size: tuple[int, int, int]
    crop_pct: float
    crop_mode: str = "center"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self):
        size = tuple(int(v) for v in self.input_size)
        if len(size) != 3 or size[0] != 3 or min(size) < 1:
            raise UserError(f"preprocessing: input_size must be (3, H, W), got {self.input_size}")
        crop_pct = float(self.crop_pct)
        if not (math.isfinite(crop_pct) and crop_pct > 0):
            raise UserError(f"preprocessing: crop_pct must be a positive number, got {self.crop_pct}")
        crop_mode = self.crop_mode or "center"
        if crop_mode not in CROP_MODES:
            raise UserError(
                f"preprocessing: crop_mode '{crop_mode}' unknown; use one of {', '.join(CROP_MODES)}"
            )
        if self.interpolation not in INTERPOLATIONS:
            raise UserError(
                f"preprocessing: interpolation '{self.interpolation}' unknown; "
                f"use one of {', '.join(INTERPOLATIONS)}"
            )
        mean, std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise UserError(f"preprocessing: mean and std need 3 values each, std > 0; got {mean}, {std}")
        for name, value in (
            ("input_size", size),
            ("crop_pct", crop_pct),
            ("crop_mode", crop_mode),
            ("mean", mean),
            ("std", std),
        ):
            object.__setattr__(self, name, value)

    def pixel_fields(self) -> dict:
        """The fields that change the cached uint8 pixels (``border`` pads with the mean colour)."""
        fields = {
            "version": CACHE_VERSION,
            "size": list(self.input_size[1:]),
            "crop_pct": round(self.crop_pct, 6),
            "crop_mode": self.crop_mode,
            "interpolation": self.interpolation,
        }
        if self.crop_mode == "border":
            fields["fill"] = [round(255 * v) for v in self.mean]
        return fields

    def key(self) -> str:
        """12 hex digits of the SHA-256 of :meth:`pixel_fields`; mean and std do not enter it
        (except as the padding colour of ``border``)."""
        text = json.dumps(self.pixel_fields(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def as_dict(self) -> dict:
        return {
            "input_size": list(self.input_size),
            "crop_pct": self.crop_pct,
            "crop_mode": self.crop_mode,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


IMAGENET_1K_CLASSES = 1000


def classifier_classes(model_name: str) -> int:
    """Number of classes of a timm checkpoint's head (0 for headless, e.g. ConvNeXt V2 ``fcmae``;
    21841 / 11821 for ImageNet-22k / -12k heads), from timm's registry; only 1000-class heads can
    be evaluated on the ImageNet-1k validation set."""
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(model_name)
    except RuntimeError:
        cfg = None
    if cfg is None:
        preprocessing_for_model(model_name)  # raises the UserError with close matches
    return int(cfg.num_classes or 0)


def preprocessing_for_model(model_name: str, use_test_size: bool = False) -> Preprocessing:
    """The evaluation preprocessing of a timm checkpoint, from its registered ``pretrained_cfg``.

    Nothing is downloaded (the registry is data inside timm), so this is cheap
    enough for Snakemake's DAG building.  A name without tag resolves to the
    architecture's default tag, as in ``timm.create_model``.  ``use_test_size``
    takes ``test_input_size`` / ``test_crop_pct`` where the checkpoint has them
    (timm's ``validate.py`` default); the default False uses the training
    resolution (``convnext_tiny.fb_in1k``: 224, crop_pct 0.875), as in the papers.
    """
    from timm.data import resolve_data_config
    from timm.models import get_pretrained_cfg

    try:
        cfg = get_pretrained_cfg(model_name)
    except RuntimeError:  # invalid tag of a known architecture
        cfg = None
    if cfg is None:
        import timm

        close = difflib.get_close_matches(model_name, timm.list_pretrained(), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        raise UserError(
            f"no timm pretrained configuration for '{model_name}'{hint} "
            "(see timm.list_pretrained() for all checkpoints)"
        )
    data = resolve_data_config(pretrained_cfg=cfg.to_dict(), use_test_size=use_test_size)
    return Preprocessing(
        input_size=tuple(data["input_size"]),
        crop_pct=data["crop_pct"],
        crop_mode=data.get("crop_mode") or "center",
        interpolation=data["interpolation"],
        mean=tuple(data["mean"]),
        std=tuple(data["std"]),
    )


def pixel_transform(preprocessing: Preprocessing):
    """timm's eval transform of ``preprocessing`` without normalisation: PIL RGB image ->
    uint8 tensor ``(3, H, W)`` (``timm.data.create_transform(..., use_prefetcher=True)``)."""
    from timm.data import create_transform

    p = preprocessing
    return create_transform(
        p.input_size,
        is_training=False,
        use_prefetcher=True,
        crop_pct=p.crop_pct,
        crop_mode=p.crop_mode,
        interpolation=p.interpolation,
        mean=p.mean,
        std=p.std,
    )


def decode_image(path, transform) -> torch.Tensor:
    """Open ``path`` with PIL, convert to RGB (grey, CMYK, palette, alpha dropped) and apply ``transform``."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "Corrupt EXIF data" in a few ImageNet files
        with Image.open(path) as image:
            return transform(image.convert("RGB"))


# --------------------------------------------------------------------------- finding the images


def _imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k WordNet ids, sorted: position = class index."""
    from timm.data import ImageNetInfo

    wnids = list(ImageNetInfo().label_names())
    assert len(wnids) == 1000 and wnids == sorted(wnids)
    return wnids


def _is_image(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def _images_below(folder: Path) -> list[Path]:
    """All image files below ``folder`` (recursive, hidden entries skipped), sorted by path."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in filenames if _is_image(f))
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def find_imagenet_images(root, labels_file=None) -> tuple[list[Path], np.ndarray]:
    """Image paths (sorted deterministically) and int64 labels of an evaluation set.

    Two layouts:

    (a) class folders: ``root/<class>/.../*.JPEG``.  When every folder name is
        an ImageNet-1k WordNet id the label is that id's ImageNet index (so a
        subset of the classes still gets the checkpoints' labels); otherwise it
        is the folder's position among all sorted folder names (empty ones
        included, as in torchvision's ``ImageFolder``).  Paths are
        sorted by class, then by path inside the class.
    (b) flat: every image directly in ``root`` plus a label file, matched to
        images by file name (``labels_file``, else looked up as below):

        * plain text, ``<file name> <label>`` per line (label 0..999 or a
          WordNet id; ``#`` comments), named ``val_labels.txt``, ``labels.txt``
          or ``val.txt``, in ``root`` or its parent;
        * Kaggle's ``LOC_val_solution.csv`` (``ImageId,PredictionString``, the
          first token of which is the WordNet id), in ``root`` or up to four
          folders above it (Kaggle: ``<top>/ILSVRC/Data/CLS-LOC/val``);
        * the devkit's ``ILSVRC2012_validation_ground_truth.txt`` (line ``i`` =
          ILSVRC2012_ID 1..1000 of ``ILSVRC2012_val_<i:08d>.JPEG``) with the
          devkit's ``meta.mat`` beside it (maps ILSVRC2012_ID to WordNet id), in
          ``root``, its parent, or ``ILSVRC2012_devkit_t12/data/`` in either.

        Paths are sorted by file name.  Every image needs a label and every
        label entry an image; more than one label file found is an error
        (pass ``labels_file``).
    """
    root = Path(root)
    if not root.exists():
        raise UserError(
            f"evaluation images: {root} does not exist; set 'imagenet_val' to the folder of "
            "ImageNet validation images (class folders, or one folder plus a label file)"
        )
    if not root.is_dir():
        raise UserError(
            f"evaluation images: {root} is not a folder; 'imagenet_val' must name the folder "
            "of validation images"
        )
    with os.scandir(root) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    flat = [Path(e.path) for e in entries if e.is_file() and _is_image(e.name)]
    folders = [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]
    if flat:
        if labels_file is None and any(_images_below(folder) for folder in folders):
            raise UserError(
                f"evaluation images: {root} holds images directly and in subfolders; use either class "
                "folders only or one flat folder plus a label file"
            )
        return _flat_layout(root, flat, labels_file)
    if labels_file is not None:
        raise UserError(
            f"evaluation images: a label file was given but {root} holds no images directly; "
            "it is only used for a flat folder of images"
        )
    return _class_folder_layout(root, folders)


def _class_folder_layout(root: Path, folders: list[Path]) -> tuple[list[Path], np.ndarray]:
    per_class = [(folder.name, _images_below(folder)) for folder in folders]
    if not any(images for _, images in per_class):
        raise UserError(
            f"evaluation images: no images ({', '.join(IMAGE_SUFFIXES)}) in {root} or its subfolders; "
            "expected class folders (root/n01440764/*.JPEG) or a flat folder of images plus a label file"
        )
    # Every folder counts for the class index, also an empty one (as in torchvision's ImageFolder).
    names = [name for name, _ in per_class]
    wnids = _imagenet_wnids()
    if all(name in wnids for name in names):
        index = {wnid: i for i, wnid in enumerate(wnids)}
    else:
        index = {name: i for i, name in enumerate(names)}
    paths, labels = [], []
    for name, images in per_class:
        paths.extend(images)
        labels.extend([index[name]] * len(images))
    return paths, np.asarray(labels, dtype=np.int64)


def _label_file_candidates(root: Path) -> list[tuple[str, Path]]:
    """(kind, path) of every known label file near ``root``, in the documented places."""
    found = []
    for folder in (root, root.parent):
        found += [("plain", folder / name) for name in PLAIN_LABEL_FILES if (folder / name).is_file()]
    for folder in [root, *list(root.parents)[:4]]:
        if (folder / KAGGLE_LABEL_FILE).is_file():
            found.append(("kaggle", folder / KAGGLE_LABEL_FILE))
    for folder in (root, root / DEVKIT_DIR, root.parent, root.parent / DEVKIT_DIR):
        if (folder / DEVKIT_LABEL_FILE).is_file():
            found.append(("devkit", folder / DEVKIT_LABEL_FILE))
    unique = {}
    for kind, path in found:
        unique.setdefault(path.resolve(), (kind, path))
    return list(unique.values())


def _label_file_kind(path: Path) -> str:
    if path.name == KAGGLE_LABEL_FILE or path.suffix.lower() == ".csv":
        return "kaggle"
    if path.name == DEVKIT_LABEL_FILE:
        return "devkit"
    return "plain"


def _wnid_label(token: str, wnid_index: dict[str, int], where: str) -> int:
    if token in wnid_index:
        return wnid_index[token]
    if _WNID.match(token):
        raise UserError(f"{where}: '{token}' is not one of the 1000 ImageNet-1k WordNet ids")
    try:
        label = int(token)
    except ValueError:
        raise UserError(f"{where}: label '{token}' is neither an integer 0..999 nor a WordNet id") from None
    if not 0 <= label < 1000:
        raise UserError(f"{where}: label {label} is outside 0..999")
    return label


def _read_plain(path: Path, wnid_index: dict[str, int]) -> dict[str, int]:
    table = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        where = f"label file {path}, line {number}"
        if len(parts) != 2:
            raise UserError(f"{where}: expected '<file name> <label>', got '{line[:80]}'")
        name, token = parts
        if name in table:
            raise UserError(f"{where}: image '{name}' is listed twice")
        table[name] = _wnid_label(token, wnid_index, where)
    return table


def _read_kaggle(path: Path, wnid_index: dict[str, int]) -> dict[str, int]:
    table = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
            raise UserError(
                f"label file {path}: expected the columns ImageId,PredictionString (Kaggle's "
                "LOC_val_solution.csv)"
            )
        for number, row in enumerate(reader, start=2):
            where = f"label file {path}, line {number}"
            tokens = (row["PredictionString"] or "").split()
            if not tokens or not _WNID.match(tokens[0]):
                raise UserError(f"{where}: PredictionString does not start with a WordNet id")
            if row["ImageId"] in table:
                raise UserError(f"{where}: image '{row['ImageId']}' is listed twice")
            table[row["ImageId"]] = _wnid_label(tokens[0], wnid_index, where)
    return table


def _read_devkit(path: Path, wnid_index: dict[str, int]) -> dict[str, int]:
    """ILSVRC2012_val_<i:08d> -> label, from the ground truth file and the devkit's meta.mat."""
    import scipy.io

    meta_path = path.parent / DEVKIT_META_FILE
    if not meta_path.is_file():
        raise UserError(
            f"label file {path} gives ILSVRC2012_IDs, which need the devkit's {DEVKIT_META_FILE} in the "
            f"same folder ({meta_path}) to map them to classes; copy it there from ILSVRC2012_devkit_t12/data"
        )
    try:
        synsets = np.atleast_1d(scipy.io.loadmat(meta_path, squeeze_me=True)["synsets"])
        ids = [int(v) for v in synsets["ILSVRC2012_ID"]]
        wnids = [str(v) for v in synsets["WNID"]]
    except Exception as err:  # loadmat raises many types for a foreign or broken file
        raise UserError(
            f"{meta_path} is not the ILSVRC2012 devkit's meta.mat (a 'synsets' struct with "
            f"ILSVRC2012_ID and WNID): {type(err).__name__}: {err}"
        ) from None
    id_to_wnid = {i: w for i, w in zip(ids, wnids, strict=True) if 1 <= i <= 1000}
    table = {}
    for number, line in enumerate(path.read_text().split(), start=1):
        where = f"label file {path}, entry {number}"
        try:
            ilsvrc_id = int(line)
        except ValueError:
            raise UserError(f"{where}: '{line}' is not an ILSVRC2012_ID (1..1000)") from None
        if ilsvrc_id not in id_to_wnid:
            raise UserError(f"{where}: ILSVRC2012_ID {ilsvrc_id} is not a class of {meta_path}")
        table[f"ILSVRC2012_val_{number:08d}"] = _wnid_label(id_to_wnid[ilsvrc_id], wnid_index, where)
    return table


def _flat_layout(root: Path, images: list[Path], labels_file) -> tuple[list[Path], np.ndarray]:
    if labels_file is not None:
        path = Path(labels_file)
        if not path.is_file():
            raise UserError(f"label file {path} does not exist")
        kind = _label_file_kind(path)
    else:
        candidates = _label_file_candidates(root)
        if not candidates:
            raise UserError(
                f"evaluation images: {root} holds {len(images)} images but no label file was found; "
                f"expected {' / '.join(PLAIN_LABEL_FILES)} ('<file name> <label>' per line) in the folder "
                "or its parent, "
                f"Kaggle's {KAGGLE_LABEL_FILE} up to four folders above, or the devkit's {DEVKIT_LABEL_FILE} "
                f"plus {DEVKIT_META_FILE} - or sort the images into class folders (root/n01440764/...)"
            )
        if len(candidates) > 1:
            listed = ", ".join(str(p) for _, p in candidates)
            raise UserError(f"evaluation images: several label files for {root}: {listed}; keep one of them")
        kind, path = candidates[0]
    wnid_index = {wnid: i for i, wnid in enumerate(_imagenet_wnids())}
    table = {"plain": _read_plain, "kaggle": _read_kaggle, "devkit": _read_devkit}[kind](path, wnid_index)
    # Kaggle and devkit name images without extension; plain files with it.
    by_stem = kind != "plain"
    labels, unlabeled = [], []
    for image in images:
        label = table.get(image.stem if by_stem else image.name)
        if label is None:
            unlabeled.append(image.name)
        labels.append(label)
    if unlabeled:
        raise UserError(
            f"evaluation images: {len(unlabeled)} of {len(images)} images in {root} have no entry in the "
            f"label file {path} (e.g. {', '.join(unlabeled[:3])}); the label file must list every image"
        )
    if len(table) != len(images):
        names = {image.stem if by_stem else image.name for image in images}
        missing = [name for name in table if name not in names]
        raise UserError(
            f"evaluation images: the label file {path} lists {len(table)} images but {root} holds "
            f"{len(images)} (missing e.g. {', '.join(missing[:3])}); copy the missing images or use a "
            "label file of exactly these images"
        )
    return images, np.asarray(labels, dtype=np.int64)


def file_list_fingerprint(paths: Sequence, labels: np.ndarray, root=None) -> str:
    """SHA-256 over ``relative path, label, file size`` of every image (relative to ``root``,
    default their common folder): changes when files are added, removed, relabelled or replaced."""
    paths = [Path(p) for p in paths]
    root = Path(root) if root is not None else Path(os.path.commonpath([str(p.parent) for p in paths]))
    digest = hashlib.sha256()
    for path, label in zip(paths, np.asarray(labels).tolist(), strict=True):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise UserError(f"image {path} does not exist; the image folder changed, rerun the job") from None
        digest.update(f"{path.relative_to(root).as_posix()}\t{label}\t{size}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------- the cache


class EvalCacheFiles(NamedTuple):
    images: Path  # X.npy, uint8 or float32 (N, 3, H, W)
    labels: Path  # X.labels.npy, int64 (N,)
    meta: Path  # X.json, the sidecar


def eval_cache_files(path) -> EvalCacheFiles:
    """The three files of the cache ``path`` (which must end in ``.npy``)."""
    path = Path(path)
    if path.suffix != ".npy" or path.name.endswith(".labels.npy"):
        raise UserError(f"evaluation cache path {path} must end in .npy (not .labels.npy)")
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
        raise UserError(
            f"evaluation cache: {needed / 1e9:.1f} GB needed in {folder} but only {free / 1e9:.1f} GB free; "
            "free space or point the config key 'eval_cache' at a larger disk"
        )


def build_eval_cache(
    paths: Sequence,
    labels,
    preprocessing: Preprocessing,
    out_path,
    workers: int = 4,
    meta: dict | None = None,
    batch_size: int = 32,
) -> Path:
    """Decode every image once with ``preprocessing``'s pixel transform into a uint8 cache.

    Writes ``out_path`` (``.npy``, uint8 ``(N, 3, H, W)``, memory-mappable),
    ``X.labels.npy`` and the sidecar ``X.json`` (``preprocessing``, ``key``,
    ``num_images``, ``source_root``, ``fingerprint`` of the file list, plus
    ``meta``).  The array is streamed to a temporary file batch by batch (never
    held in memory) and the three files are renamed into place only when all
    images decoded.  ``workers`` > 1 decodes in that many processes (torch
    DataLoader).  Returns ``out_path``.
    """
    files = eval_cache_files(out_path)
    paths = [Path(p) for p in paths]
    labels = np.asarray(labels, dtype=np.int64)
    if not paths:
        raise UserError("evaluation cache: no images to decode")
    if labels.shape != (len(paths),):
        raise UserError(f"evaluation cache: {len(paths)} images but labels of shape {labels.shape}")
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
        "fingerprint": file_list_fingerprint(paths, labels, source_root),
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
                            raise UserError(
                                f"evaluation cache: cannot decode {paths[done + offset]} ({error}); "
                                "replace or remove the file"
                            )
                    handle.write(batch.numpy().tobytes())
                    done += len(batch)
                    progress.update(len(batch))
                progress.close()
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise UserError(
                    f"evaluation cache: disk full while writing {files.images}; free space or "
                    "point 'eval_cache' elsewhere"
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
            raise UserError(f"evaluation set '{self.name}': images must be (N, 3, H, W), got {shape}")
        if self.labels.shape != (shape[0],):
            raise UserError(f"evaluation set '{self.name}': {shape[0]} images but labels {self.labels.shape}")
        if self.is_uint8 != (self.mean is not None and self.std is not None):
            raise UserError(
                f"evaluation set '{self.name}': uint8 images need mean and std, "
                "float (pre-normalised) images take none"
            )
        if _dtype_name(self.images) not in ("uint8", "float32"):
            raise UserError(f"evaluation set '{self.name}': images must be uint8 or float32")

    @property
    def is_uint8(self) -> bool:
        return _dtype_name(self.images) == "uint8"

    def __len__(self) -> int:
        return int(self.images.shape[0])


def save_eval_set(eval_set: EvalSet, out_path, meta: dict | None = None) -> Path:
    """Write an in-memory :class:`EvalSet` as a cache readable by :func:`load_eval_cache`
    (e.g. the demo's float split); ``preprocessing`` in the sidecar is None for float sets."""
    files = eval_cache_files(out_path)
    images = eval_set.images
    images = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    sidecar = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "name": eval_set.name,
        **(meta or {}),
        "preprocessing": None,
        "key": None,
        "mean": list(eval_set.mean) if eval_set.mean else None,
        "std": list(eval_set.std) if eval_set.std else None,
        "num_images": len(eval_set),
        "shape": list(images.shape),
        "dtype": str(images.dtype),
    }
    with atomic_paths(*files) as (images_temp, labels_temp, meta_temp):
        np.save(images_temp, np.ascontiguousarray(images))
        np.save(labels_temp, eval_set.labels)
        write_json(sidecar, meta_temp)
    return files.images


def load_eval_cache(path, preprocessing: Preprocessing | None = None) -> EvalSet:
    """Open a cache (images memory-mapped, read-only) as an :class:`EvalSet`.

    With ``preprocessing`` its key must equal the cache's (else the cache is
    stale) and its mean/std are the ones applied at inference, so one pixel
    cache serves every checkpoint of the same pixel preprocessing; without,
    the mean/std the cache was built with are used.
    """
    files = eval_cache_files(path)
    fix = f"delete {files.images.parent}/{files.images.stem}.* and rerun the rule that builds it"
    for file in files:
        if not file.is_file():
            raise UserError(f"evaluation cache file {file} does not exist; {fix}")
    try:
        sidecar = json.loads(files.meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"evaluation cache sidecar {files.meta} is not valid JSON ({err}); {fix}") from None
    if not isinstance(sidecar, dict) or sidecar.get("format") != CACHE_FORMAT:
        raise UserError(f"{files.meta} is not an evaluation cache sidecar; {fix}")
    if sidecar.get("version") != CACHE_VERSION:
        raise UserError(
            f"evaluation cache {files.images} has format version {sidecar.get('version')}, this "
            f"code reads {CACHE_VERSION}; {fix}"
        )
    try:
        images = np.load(files.images, mmap_mode="r")
        labels = np.load(files.labels)
    except (ValueError, OSError, EOFError) as err:
        raise UserError(f"evaluation cache {files.images} is unreadable ({err}); {fix}") from None
    if list(images.shape) != sidecar.get("shape") or str(images.dtype) != sidecar.get("dtype"):
        raise UserError(
            f"evaluation cache {files.images} holds {images.dtype} {list(images.shape)} but its "
            f"sidecar says {sidecar.get('dtype')} {sidecar.get('shape')}; {fix}"
        )
    if labels.shape != (images.shape[0],) or labels.dtype != np.int64:
        raise UserError(f"evaluation cache labels {files.labels} do not match the images; {fix}")
    if sidecar.get("preprocessing") is not None:
        built = Preprocessing.from_dict(sidecar["preprocessing"])
        if built.key() != sidecar.get("key"):
            raise UserError(
                f"evaluation cache {files.images}: sidecar key does not match its preprocessing; {fix}"
            )
    else:
        built = None
    if preprocessing is not None:
        if built is None:
            raise UserError(
                f"evaluation cache {files.images} holds pre-normalised images without a "
                "preprocessing key; load it without a preprocessing"
            )
        if preprocessing.key() != built.key():
            raise UserError(
                f"stale evaluation cache {files.images}: built with {built.pixel_fields()} "
                f"(key {built.key()}), but {preprocessing.pixel_fields()} (key {preprocessing.key()}) "
                f"is asked for; {fix}"
            )
    source = preprocessing or built
    mean = source.mean if source else sidecar.get("mean")
    std = source.std if source else sidecar.get("std")
    return EvalSet(
        images=images,
        labels=labels,
        mean=tuple(mean) if mean else None,
        std=tuple(std) if std else None,
        name=str(sidecar.get("name") or files.images.stem),
    )


def demo_eval_set(demo: dict, seed: int) -> EvalSet:
    """The demo's held-out validation crops exactly as training evaluated them (float, normalised).

    ``demo`` is the validated ``demo`` config section; ``seed`` the config seed.
    """
    from .demo_data import demo_dataset

    return demo_split_eval_set(demo_dataset(demo, seed))


def demo_split_eval_set(dataset) -> EvalSet:
    """The held-out split of an already built :class:`~masterkey.demo_data.DemoDataset`."""
    return EvalSet(
        images=dataset.val_images, labels=dataset.val_labels.numpy(), mean=None, std=None, name="demo"
    )


def write_demo_eval_cache(demo: dict, seed: int, out_path) -> Path:
    """:func:`demo_eval_set` stored as a (float32) cache, for rules that want it as a file."""
    keys = ("images", "crop_size", "val_fraction", "val_crops_per_class", "max_image_side")
    return save_eval_set(
        demo_eval_set(demo, seed), out_path, meta={"demo": {k: demo[k] for k in keys}, "seed": seed}
    )


# --------------------------------------------------------------------------- inference


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Iterable[int] = (1, 5)) -> torch.Tensor:
    """Number of rows whose label is among the ``k`` largest logits, for each ``k`` in ``ks``
    (``k`` capped at the number of classes); int64 tensor ``(len(ks),)`` on ``logits``' device."""
    ks = list(ks)
    num_classes = logits.shape[1]
    kmax = min(max(ks), num_classes)
    top = logits.topk(kmax, dim=1).indices  # (N, kmax), best first
    hits = top == labels.view(-1, 1).to(top.device)
    cumulative = hits.cumsum(dim=1)  # [:, k-1] = label within the first k
    return torch.stack([cumulative[:, min(k, num_classes) - 1].sum() for k in ks]).to(torch.int64)


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device``, or CUDA when present, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device '{device}' asked for but CUDA is not available; use 'cpu' or leave it unset")
    return device


def to_model_input(
    batch: torch.Tensor, mean: Sequence[float] | None, std: Sequence[float] | None, device: torch.device
) -> torch.Tensor:
    """A host batch -> normalised float32 channels-last tensor on ``device``.

    uint8 batches: ``(x / 255 - mean) / std``, computed on the device; float
    batches (``mean = std = None``) are already normalised.
    """
    x = batch.to(device, non_blocking=True)
    if mean is not None:
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        x = (x.float() / 255 - m) / s
    else:
        x = x.float()
    return x.contiguous(memory_format=torch.channels_last)


def _host_batches(eval_set: EvalSet, count: int, batch_size: int, pin: bool) -> Iterator:
    """(images, labels) CPU tensors of ``batch_size``; memory-mapped slices are read into fresh
    (pinned when ``pin``) buffers with a single copy."""
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        images = eval_set.images[start:stop]
        if isinstance(images, torch.Tensor):
            images = images.pin_memory() if pin else images
        else:
            dtype = torch.uint8 if images.dtype == np.uint8 else torch.float32
            buffer = torch.empty(images.shape, dtype=dtype, pin_memory=pin)
            buffer.numpy()[...] = images
            images = buffer
        labels = torch.from_numpy(np.array(eval_set.labels[start:stop], dtype=np.int64))
        yield images, (labels.pin_memory() if pin else labels)


def _prefetch(iterator: Iterator, depth: int = 2) -> Iterator:
    """Run ``iterator`` in a background thread, ``depth`` items ahead (disk reads overlap compute)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce():
        try:
            for item in iterator:
                if not put(item):
                    return
            put(done)
        except BaseException as err:  # handed to the consumer
            put(err)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while (item := items.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def evaluate(
    model: nn.Module,
    eval_set: EvalSet,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    max_images: int | None = None,
    autocast: bool = True,
) -> dict:
    """Top-1 and top-5 accuracy of ``model`` on (the first ``max_images`` of) ``eval_set``.

    The model is set to eval mode and moved to ``device`` (default: CUDA when
    present) in channels-last layout; it stays there.  On CUDA, with
    ``autocast``, the forward pass runs in bfloat16 autocast and batches are
    copied from pinned memory without blocking.  Top-5 uses ``k = min(5,
    classes)``.  Returns ``top1``, ``top5`` (fractions), ``images``,
    ``seconds`` (data loading and inference), ``images_per_second`` and
    ``device``.
    """
    device = resolve_device(device)
    count = len(eval_set) if max_images is None else min(int(max_images), len(eval_set))
    if count < 1:
        raise UserError(f"evaluation set '{eval_set.name}' is empty (or max_images < 1)")
    label_max = int(np.max(eval_set.labels[:count]))
    cuda = device.type == "cuda"
    model.eval()
    model.to(device=device, memory_format=torch.channels_last)
    correct = torch.zeros(2, dtype=torch.int64, device=device)
    started = time.perf_counter()
    amp = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if cuda and autocast
        else torch.autocast("cpu", enabled=False)
    )
    with torch.inference_mode(), amp:
        for images, labels in _prefetch(_host_batches(eval_set, count, batch_size, pin=cuda)):
            logits = model(to_model_input(images, eval_set.mean, eval_set.std, device))
            if logits.shape[1] <= label_max:
                raise UserError(
                    f"evaluation set '{eval_set.name}' has labels up to {label_max} but the model has "
                    f"{logits.shape[1]} classes; evaluate it on a set with its own classes"
                )
            correct += topk_correct(logits.float(), labels.to(device, non_blocking=True), ks=(1, 5))
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    top1, top5 = correct.cpu().tolist()
    return {
        "top1": top1 / count,
        "top5": top5 / count,
        "images": count,
        "seconds": seconds,
        "images_per_second": count / seconds if seconds > 0 else float("inf"),
        "device": str(device),
    }
