"""Training sets of the training engine: ImageNet-1k class folders, CIFAR-10, the demo crops.

Three map-style ``torch.utils.data.Dataset`` builders, registered by name in :data:`TRAINING_SETS`:

* ``imagenet_train`` - :func:`image_folder_dataset`: one folder per class (``train/n01440764/*.JPEG``),
  labelled as the project labels ``imagenet_val`` (:func:`masterkey.data.imagenet.find_imagenet_images`);
* ``cifar10`` - :func:`cifar10_dataset`: CIFAR-10's python batch files (``cifar-10-python.tar.gz``
  extracted), read without torchvision's download checks;
* ``demo`` - :class:`DemoCrops`: random training crops of the embedded demo task
  (:mod:`masterkey.data.demo`), drawn from torch's global RNG.

The two path keys are checked by :func:`require_dataset`: a missing, empty or data-less path is
one :class:`~masterkey.core.errors.ConfigError` naming the config key and its fix.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.errors import ConfigError
from .demo import DemoDataset, random_crop
from .imagenet import IMAGE_SUFFIXES, _imagenet_wnids, _is_image

__all__ = [
    "CIFAR10_FOLDER",
    "CIFAR10Batches",
    "imagenet_class_labels",
    "DemoCrops",
    "cifar10_dataset",
    "image_folder_dataset",
    "require_dataset",
    "TRAINING_SETS",
]

CIFAR10_FOLDER = "cifar-10-batches-py"
"""The folder that ``cifar-10-python.tar.gz`` extracts to."""
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = ("test_batch",)
_CIFAR_META = "batches.meta"

_LAYOUTS = {"imagenet_train": "image_folder", "cifar10": "cifar10"}
_FIXES = {
    "image_folder": "/path/to/ILSVRC2012/train (one folder per class, e.g. train/n01440764/*.JPEG)",
    "cifar10": f"folder with the CIFAR-10 python batches (cifar-10-python.tar.gz extracted: {CIFAR10_FOLDER} "
    "or the folder above it)",
}


def require_dataset(key: str, path, layout: str | None = None) -> Path:
    """The folder of a training set named by config ``key``, after checking that it holds data.

    ``layout`` is ``"image_folder"`` (at least one class folder with an image, suffixes of
    :data:`~masterkey.data.imagenet.IMAGE_SUFFIXES`) or ``"cifar10"`` (CIFAR-10 python batches
    in ``path`` or in ``path/cifar-10-batches-py``); by default it follows from ``key``
    (``imagenet_train``, ``cifar10``); other keys are only checked to be a non-empty folder.
    Returns ``path`` as a :class:`~pathlib.Path` (``~`` expanded); for ``cifar10`` the folder
    that holds the batch files.

    Raises
    ------
    ConfigError
        (naming ``key`` and the fix) when ``path`` is ``None`` or empty, does not exist, is not a
        folder, or holds no data of the layout.
    """
    layout = layout or _LAYOUTS.get(key)
    fix = f"set {key}: {_FIXES.get(layout, 'a folder with the data')}"
    if path is None or not str(path).strip():
        raise ConfigError(key, f"is not set; {fix}")
    root = Path(str(path)).expanduser()
    if not root.exists():
        raise ConfigError(key, f"{root} does not exist; {fix}")
    if not root.is_dir():
        archive = " (an archive: extract it first)" if root.name.endswith((".tar.gz", ".tgz", ".tar")) else ""
        raise ConfigError(key, f"{root} is not a folder{archive}; {fix}")
    if layout == "cifar10":
        for folder in (root, root / CIFAR10_FOLDER):
            if any((folder / name).is_file() for name in (*_CIFAR_TRAIN, *_CIFAR_TEST, _CIFAR_META)):
                return folder
        raise ConfigError(
            key,
            f"{root} holds no CIFAR-10 python batches ({_CIFAR_META}, data_batch_1..5, test_batch), "
            f"neither directly nor in {CIFAR10_FOLDER}/; {fix}",
        )
    with os.scandir(root) as scan:
        entries = [e for e in scan if not e.name.startswith(".")]
    if layout == "image_folder":
        if not any(e.is_dir() and _any_image_below(e.path) for e in entries):
            flat = any(e.is_file() and _is_image(e.name) for e in entries)
            where = " (its images lie directly in it: sort them into one folder per class)" if flat else ""
            raise ConfigError(
                key, f"{root} holds no class folders with images ({', '.join(IMAGE_SUFFIXES)}){where}; {fix}"
            )
    elif not entries:
        raise ConfigError(key, f"{root} is empty; {fix}")
    return root


def _any_image_below(folder: str) -> bool:
    for _, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        if any(_is_image(f) for f in filenames):
            return True
    return False


# ---------------------------------------------------------------------------------------------- CIFAR-10


class CIFAR10Batches(Dataset):
    """CIFAR-10 from its python batch files (see :func:`cifar10_dataset`).

    ``data`` is uint8 ``(N, 32, 32, 3)`` (RGB, rows, columns), ``targets`` the int labels,
    ``classes`` the names of ``batches.meta``, ``root`` the folder of the batch files.
    """

    def __init__(self, root: Path, train: bool, transform=None, key: str = "cifar10"):
        self.root, self.train, self.transform = root, train, transform
        names = _CIFAR_TRAIN if train else _CIFAR_TEST
        missing = [n for n in (_CIFAR_META, *names) if not (root / n).is_file()]
        if missing:
            raise ConfigError(
                key,
                f"{root} lacks the CIFAR-10 file(s) {', '.join(missing)}; set {key}: {_FIXES['cifar10']}",
            )
        meta = _read_batch(root / _CIFAR_META, (b"label_names",), key)
        self.classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[b"label_names"]]
        data, targets = [], []
        for name in names:
            batch = _read_batch(root / name, (b"data", b"labels"), key)
            pixels, labels = np.asarray(batch[b"data"]), [int(v) for v in batch[b"labels"]]
            if pixels.dtype != np.uint8 or pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32:
                raise ConfigError(
                    key, f"{root / name}: data is {pixels.dtype} {pixels.shape}, not uint8 (N, 3072)"
                )
            if len(labels) != len(pixels) or not all(0 <= v < len(self.classes) for v in labels):
                raise ConfigError(
                    key,
                    f"{root / name}: needs one label 0..{len(self.classes) - 1} per image ({len(pixels)})",
                )
            data.append(pixels)
            targets.extend(labels)
        # each row: the red, green, blue 32x32 planes, row-major
        self.data = np.ascontiguousarray(np.concatenate(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        self.targets = targets

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        pixels = self.data[index]
        if self.transform is not None:
            from PIL import Image

            return self.transform(Image.fromarray(pixels)), self.targets[index]
        return torch.from_numpy(pixels).permute(2, 0, 1).contiguous(), self.targets[index]


def _read_batch(path: Path, keys: tuple[bytes, ...], key: str) -> dict:
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
    except Exception as err:  # unpickling a foreign file raises many types
        raise ConfigError(
            key, f"{path} is not a CIFAR-10 python batch ({type(err).__name__}: {err})"
        ) from None
    if not isinstance(batch, dict) or not all(k in batch for k in keys):
        raise ConfigError(
            key, f"{path} is not a CIFAR-10 python batch (no {', '.join(k.decode() for k in keys)})"
        )
    return batch


def cifar10_dataset(root, train: bool = True, transform=None, key: str = "cifar10") -> CIFAR10Batches:
    """CIFAR-10 (training: ``data_batch_1..5`` concatenated in order, 50,000 images; test:
    ``test_batch``) as a map-style dataset.

    ``root`` is the folder ``cifar-10-batches-py`` (``cifar-10-python.tar.gz`` extracted) or the
    folder above it.  The batches are pickles (``encoding="bytes"``) of uint8 ``(N, 3072)`` rows
    (red, green, blue 32x32 planes) and labels 0..9; class names come from ``batches.meta``.
    Items are ``(transform(PIL.Image), label)``, or ``(uint8 tensor (3, 32, 32), label)``
    without ``transform``.  Attributes ``classes``, ``num_classes``, ``data`` ``(N, 32, 32, 3)``,
    ``targets``.  The files are unpickled: point ``root`` only at trusted data.

    Not ``torchvision.datasets.CIFAR10``: its md5 check of every batch file rejects any copy that
    is not byte-identical to the official archive (e.g. the small files the tests write).

    Raises
    ------
    ConfigError
        (naming ``key``) when ``root`` is unset, missing, holds no batches, lacks a file of the
        split, or a file is not a CIFAR-10 batch.
    """
    return CIFAR10Batches(require_dataset(key, root, "cifar10"), train, transform, key)


# ----------------------------------------------------------------------------------- ImageNet-1k folders


def imagenet_class_labels(folder_names) -> tuple[list[str], dict[str, int]]:
    """``(classes, class_to_idx)`` of class folders, as ``imagenet_val`` is labelled: ImageNet-1k
    indices (``classes`` = the 1000 sorted WordNet ids) when every non-hidden folder is an
    ImageNet-1k WordNet id, else positions among the sorted non-hidden folder names."""
    names = sorted(n for n in folder_names if not n.startswith("."))
    wnids = _imagenet_wnids()
    if names and set(names) <= set(wnids):
        index = {wnid: i for i, wnid in enumerate(wnids)}
        return wnids, {name: index[name] for name in names}
    return names, {name: i for i, name in enumerate(names)}


def image_folder_dataset(root, transform=None, key: str = "imagenet_train"):
    """The ImageNet-1k training set (or any set) in class-folder layout: ``root/<class>/.../<image>``.

    A ``torchvision.datasets.ImageFolder`` (files with the suffixes of
    :data:`~masterkey.data.imagenet.IMAGE_SUFFIXES`, hidden entries skipped, empty class folders
    allowed), with the labels :func:`~masterkey.data.imagenet.find_imagenet_images` gives
    ``imagenet_val``, so that a synset has the same label in training and evaluation:

    * every folder an ImageNet-1k WordNet id: the label is the id's index among the 1000 sorted ids
      (``n01440764`` = 0 ... ``n15075141`` = 999, the checkpoints' order), also for a subset of the
      classes (e.g. 100 synsets keep their ImageNet labels); ``classes`` is then the 1000 ids and
      ``num_classes`` 1000;
    * otherwise: the folder's position among the sorted folder names (``ImageFolder``'s own rule);
      ``classes`` the sorted folder names.

    Items are ``(transform(PIL RGB image), label)``, or ``(uint8 tensor (3, H, W), label)``
    without ``transform``; ``classes[label]`` is the folder name of ``label``; ``num_classes``.

    Raises
    ------
    ConfigError
        (naming ``key``) when ``root`` is unset, missing, or holds no class folder with images.
    """
    from torchvision.datasets import ImageFolder  # here: importing torchvision takes seconds
    from torchvision.transforms import PILToTensor

    folder = require_dataset(key, root, "image_folder")
    dataset = ImageFolder(
        str(folder), transform=transform or PILToTensor(), is_valid_file=_is_image_path, allow_empty=True
    )
    # relabel ImageFolder's positions (all sub-folders, sorted) with the imagenet_val convention
    folders = dataset.classes
    classes, class_to_idx = imagenet_class_labels(folders)
    samples = [(path, class_to_idx[folders[t]]) for path, t in dataset.samples if folders[t] in class_to_idx]
    dataset.samples = dataset.imgs = samples
    dataset.targets = [t for _, t in samples]
    dataset.classes, dataset.class_to_idx = classes, class_to_idx
    dataset.num_classes = len(classes)
    return dataset


def _is_image_path(path: str) -> bool:
    return _is_image(os.path.basename(path))


# ------------------------------------------------------------------------------------------------- demo


class DemoCrops(Dataset):
    """Random training crops of the demo task (:class:`~masterkey.data.demo.DemoDataset`), map-style.

    Item ``i`` is ``(float tensor (3, crop, crop), label)``, normalised as the regions are, of class
    ``label = i % num_classes``: a crop of that class's training region at a uniformly random
    position, mirrored left-right with probability 1/2 (as
    :meth:`~masterkey.data.demo.DemoDataset.sample_batch`).  Position and flip come from torch's
    *global* RNG: the training engine seeds it per sample before ``__getitem__``, so that an epoch
    is the same for any number of DataLoader workers.  ``len`` is ``epoch_size`` (default
    ``num_classes * 256``).
    """

    def __init__(self, dataset: DemoDataset, epoch_size: int | None = None):
        self.dataset = dataset
        self.epoch_size = int(epoch_size) if epoch_size is not None else dataset.num_classes * 256
        if self.epoch_size < 1:
            raise ValueError(f"DemoCrops: epoch_size must be positive, got {epoch_size}")
        self.classes = list(dataset.class_names)

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    def __len__(self) -> int:
        return self.epoch_size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < self.epoch_size:
            raise IndexError(f"DemoCrops: index {index} outside 0..{self.epoch_size - 1}")
        label = index % self.num_classes
        crop = random_crop(self.dataset.train_regions[label], self.dataset.crop_size)
        crop = crop.flip(-1) if bool(torch.rand(()) < 0.5) else crop.clone()  # no view of the region
        return crop, label


TRAINING_SETS = {
    "demo": DemoCrops,
    "imagenet_train": image_folder_dataset,
    "cifar10": cifar10_dataset,
}
"""Name -> builder: ``demo`` -> ``DemoCrops(dataset, epoch_size=None)``; ``imagenet_train`` ->
``image_folder_dataset(root, transform=None)``; ``cifar10`` -> ``cifar10_dataset(root, train=True,
transform=None)``.  The path-taking names are the config keys of their root folders."""
