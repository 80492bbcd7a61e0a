"""Finding ImageNet-style evaluation images and their labels on disk.

Two layouts (:func:`find_imagenet_images`): class folders, or one flat folder of images plus a
label file (plain text, Kaggle's ``LOC_val_solution.csv`` or the devkit's ground truth with its
``meta.mat``).  Labels are int64; ImageNet-1k labels are indices into the *sorted* list of the
1000 WordNet ids (``n01440764`` = 0 ... ``n15075141`` = 999), the order timm, torchvision and the
checkpoints use.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..core.errors import ConfigError

__all__ = [
    "IMAGE_SUFFIXES",
    "PLAIN_LABEL_FILES",
    "KAGGLE_LABEL_FILE",
    "DEVKIT_LABEL_FILE",
    "DEVKIT_META_FILE",
    "find_imagenet_images",
    "file_list_fingerprint",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

# Label files of a flat folder of validation images, by kind (see find_imagenet_images).
PLAIN_LABEL_FILES = ("val_labels.txt", "labels.txt", "val.txt")
KAGGLE_LABEL_FILE = "LOC_val_solution.csv"
DEVKIT_LABEL_FILE = "ILSVRC2012_validation_ground_truth.txt"
DEVKIT_META_FILE = "meta.mat"
DEVKIT_DIR = Path("ILSVRC2012_devkit_t12") / "data"
_WNID = re.compile(r"^n\d{8}$")



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


class _DatasetError(Exception):
    """A problem of the image folder or its label file (turned into a ConfigError naming the key)."""


def find_imagenet_images(
    root, labels_file=None, key: str = "imagenet_val"
) -> tuple[list[Path], np.ndarray]:
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

    Any problem of the folder or its label file raises
    :class:`~masterkey.core.errors.ConfigError` naming the config ``key`` that points at the folder.
    """
    try:
        return _find_images(Path(root), labels_file)
    except _DatasetError as err:
        raise ConfigError(key, str(err)) from None


def _find_images(root: Path, labels_file) -> tuple[list[Path], np.ndarray]:
    if not root.exists():
        raise _DatasetError(
            f"evaluation images: {root} does not exist; set it to the folder of ImageNet validation "
            "images (class folders, or one folder plus a label file)",
        )
    if not root.is_dir():
        raise _DatasetError(f"evaluation images: {root} is not a folder; it must name the image folder")
    with os.scandir(root) as scan:
        entries = sorted(scan, key=lambda e: e.name)
    flat = [Path(e.path) for e in entries if e.is_file() and _is_image(e.name)]
    folders = [Path(e.path) for e in entries if e.is_dir() and not e.name.startswith(".")]
    if flat:
        if labels_file is None and any(_images_below(folder) for folder in folders):
            raise _DatasetError(
                f"evaluation images: {root} holds images directly and in subfolders; use either class "
                "folders only or one flat folder plus a label file"
            )
        return _flat_layout(root, flat, labels_file)
    if labels_file is not None:
        raise _DatasetError(
            f"evaluation images: a label file was given but {root} holds no images directly; "
            "it is only used for a flat folder of images"
        )
    return _class_folder_layout(root, folders)


def _class_folder_layout(root: Path, folders: list[Path]) -> tuple[list[Path], np.ndarray]:
    per_class = [(folder.name, _images_below(folder)) for folder in folders]
    if not any(images for _, images in per_class):
        raise _DatasetError(
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
        raise _DatasetError(f"{where}: '{token}' is not one of the 1000 ImageNet-1k WordNet ids")
    try:
        label = int(token)
    except ValueError:
        raise _DatasetError(f"{where}: label '{token}' is not an integer 0..999 nor a WordNet id") from None
    if not 0 <= label < 1000:
        raise _DatasetError(f"{where}: label {label} is outside 0..999")
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
            raise _DatasetError(f"{where}: expected '<file name> <label>', got '{line[:80]}'")
        name, token = parts
        if name in table:
            raise _DatasetError(f"{where}: image '{name}' is listed twice")
        table[name] = _wnid_label(token, wnid_index, where)
    return table


def _read_kaggle(path: Path, wnid_index: dict[str, int]) -> dict[str, int]:
    table = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
            raise _DatasetError(
                f"label file {path}: expected the columns ImageId,PredictionString (Kaggle's "
                "LOC_val_solution.csv)"
            )
        for number, row in enumerate(reader, start=2):
            where = f"label file {path}, line {number}"
            tokens = (row["PredictionString"] or "").split()
            if not tokens or not _WNID.match(tokens[0]):
                raise _DatasetError(f"{where}: PredictionString does not start with a WordNet id")
            if row["ImageId"] in table:
                raise _DatasetError(f"{where}: image '{row['ImageId']}' is listed twice")
            table[row["ImageId"]] = _wnid_label(tokens[0], wnid_index, where)
    return table


def _read_devkit(path: Path, wnid_index: dict[str, int]) -> dict[str, int]:
    """ILSVRC2012_val_<i:08d> -> label, from the ground truth file and the devkit's meta.mat."""
    import scipy.io

    meta_path = path.parent / DEVKIT_META_FILE
    if not meta_path.is_file():
        raise _DatasetError(
            f"label file {path} gives ILSVRC2012_IDs, which need the devkit's {DEVKIT_META_FILE} in the "
            f"same folder ({meta_path}) to map them to classes; copy it there from ILSVRC2012_devkit_t12/data"
        )
    try:
        synsets = np.atleast_1d(scipy.io.loadmat(meta_path, squeeze_me=True)["synsets"])
        ids = [int(v) for v in synsets["ILSVRC2012_ID"]]
        wnids = [str(v) for v in synsets["WNID"]]
    except Exception as err:  # loadmat raises many types for a foreign or broken file
        raise _DatasetError(
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
            raise _DatasetError(f"{where}: '{line}' is not an ILSVRC2012_ID (1..1000)") from None
        if ilsvrc_id not in id_to_wnid:
            raise _DatasetError(f"{where}: ILSVRC2012_ID {ilsvrc_id} is not a class of {meta_path}")
        table[f"ILSVRC2012_val_{number:08d}"] = _wnid_label(id_to_wnid[ilsvrc_id], wnid_index, where)
    return table


def _flat_layout(root: Path, images: list[Path], labels_file) -> tuple[list[Path], np.ndarray]:
    if labels_file is not None:
        path = Path(labels_file)
        if not path.is_file():
            raise _DatasetError(f"label file {path} does not exist")
        kind = _label_file_kind(path)
    else:
        candidates = _label_file_candidates(root)
        if not candidates:
            raise _DatasetError(
                f"evaluation images: {root} holds {len(images)} images but no label file was found; "
                f"expected {' / '.join(PLAIN_LABEL_FILES)} ('<file name> <label>' per line) in the folder "
                "or its parent, "
                f"Kaggle's {KAGGLE_LABEL_FILE} up to four folders above, or the devkit's {DEVKIT_LABEL_FILE} "
                f"plus {DEVKIT_META_FILE} - or sort the images into class folders (root/n01440764/...)"
            )
        if len(candidates) > 1:
            listed = ", ".join(str(p) for _, p in candidates)
            raise _DatasetError(f"evaluation images: several label files for {root}: {listed}; keep one")
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
        raise _DatasetError(
            f"evaluation images: {len(unlabeled)} of {len(images)} images in {root} have no entry in the "
            f"label file {path} (e.g. {', '.join(unlabeled[:3])}); the label file must list every image"
        )
    if len(table) != len(images):
        names = {image.stem if by_stem else image.name for image in images}
        missing = [name for name in table if name not in names]
        raise _DatasetError(
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
            raise FileNotFoundError(errno.ENOENT, "image does not exist", str(path)) from None
        digest.update(f"{path.relative_to(root).as_posix()}\t{label}\t{size}\n".encode())
    return digest.hexdigest()
