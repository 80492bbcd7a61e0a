"""Shared set-ups: repository paths, the bundled published filters, the tiny demo config and one run of it.

The tiny demo config is ``.test/config.yaml`` (a person can run it by hand:
``snakemake --configfile .test/config.yaml``); its ``demo`` section is :data:`TINY_DEMO`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_CONFIG = REPO_ROOT / ".test" / "config.yaml"
TINY_DEMO = yaml.safe_load(TEST_CONFIG.read_text())["demo"]
"""The ``demo`` section of the tiny test config (seconds of training instead of minutes)."""

# Tests never touch the network: the hub works from its cache only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

NO_NETWORK = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
}
"""Environment for subprocesses in which any attempt to reach the network fails at once."""


def make_image(seed: int, height: int, width: int, mode: str = "RGB"):
    """A natural-ish test image (PIL): smooth colour gradients plus fine noise (so resampling matters)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    channels = [np.sin(2 * np.pi * (f * x + g * y) + p) for f, g, p in rng.uniform(0.5, 4, (3, 3))]
    pixels = 127.5 * (1 + np.stack(channels, -1)) * 0.8 + rng.uniform(0, 51, (height, width, 3))
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    return image.convert(mode)


@pytest.fixture
def few_threads():
    """torch on two intra-op threads for the test (restored after it)."""
    from masterkey.training.runtime import threads

    with threads(2):
        yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def published_filters_path() -> Path:
    """The copy of the 8 published filters that ships with the package."""
    from masterkey.data.published import BUNDLED_FILTERS

    return BUNDLED_FILTERS


@pytest.fixture(scope="session")
def published_filters(published_filters_path):
    from masterkey.data.published import load_master_key_filters

    return load_master_key_filters(published_filters_path)


def run_snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None, timeout=None):
    """``snakemake --snakefile <repo>/Snakefile --directory <workdir> *args`` in a subprocess."""
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
               "--directory", str(workdir), *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    """Rule -> number of jobs (and "total"), from the first job stats table of a (dry) run."""
    table = output.split("Job stats:", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:  # after the header and its ruler
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    assert "total" in counts, table[:2000]
    return counts


def write_config(path: Path, **overrides) -> Path:
    """The tiny test config with top-level keys replaced by ``overrides``, written to ``path``."""
    config = {**yaml.safe_load(TEST_CONFIG.read_text()), **overrides}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory) -> Path:
    """The whole demo DAG (`rule all`) on the tiny test config, run once per session in a temporary
    directory. Its config is ``<dir>/config.yaml``. Tests must not change the directory; copy it to mutate.
    """
    workdir = tmp_path_factory.mktemp("tiny_demo")
    shutil.copy(TEST_CONFIG, workdir / "config.yaml")
    run_snakemake(workdir, "--configfile", "config.yaml", "--cores", "2")
    return workdir


CIFAR10_TEST_CLASSES = tuple("airplane automobile bird cat deer dog frog horse ship truck".split())


@pytest.fixture(scope="session")
def tiny_cifar10(tmp_path_factory):
    """CIFAR-10's python batches in the real format (``<root>/cifar-10-batches-py``: data_batch_1..5,
    test_batch, batches.meta), 2 images per class in each batch with planted pixels and labels.

    Returns a namespace: ``root`` (the folder above the batches), ``train_images`` ``(100, 32, 32, 3)``
    uint8 and ``train_labels`` (batches 1..5 in order), ``test_images``, ``test_labels`` (20), ``classes``.
    """
    import pickle
    from types import SimpleNamespace

    import numpy as np

    root = tmp_path_factory.mktemp("cifar10")
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(10)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = rng.permutation(np.repeat(np.arange(10), 2)).tolist()
        images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)  # rows, columns, RGB
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": images.transpose(0, 3, 1, 2).reshape(20, 3072),  # R, G, B planes, row-major
            b"filenames": [f"{name}_{i}.png".encode() for i in range(20)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = (images, labels)
    names = [c.encode() for c in CIFAR10_TEST_CLASSES]
    meta = {b"num_cases_per_batch": 20, b"label_names": names, b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    train = [written[f"data_batch_{i}"] for i in range(1, 6)]
    return SimpleNamespace(
        root=root,
        train_images=np.concatenate([images for images, _ in train]),
        train_labels=[label for _, labels in train for label in labels],
        test_images=written["test_batch"][0],
        test_labels=written["test_batch"][1],
        classes=list(CIFAR10_TEST_CLASSES),
    )


TINY_IMAGE_FOLDER = {"n01440764": 3, "n01443537": 2, "n15075141": 2}
"""Class folders of :func:`tiny_image_folder` (ImageNet-1k WordNet ids 0, 1, 999) and their image counts."""


@pytest.fixture(scope="session")
def tiny_image_folder(tmp_path_factory):
    """A class-folder image set (``root/<wnid>/*.png|*.JPEG``) with :data:`TINY_IMAGE_FOLDER`'s
    classes and counts, 24x20..30 pixel images (PNG and JPEG alternating); returns ``root``."""
    root = tmp_path_factory.mktemp("image_folder")
    for c, (wnid, count) in enumerate(TINY_IMAGE_FOLDER.items()):
        (root / wnid).mkdir()
        for i in range(count):
            image = make_image(100 * c + i, 24, 20 + 5 * i)
            image.save(root / wnid / (f"{wnid}_{i}.png" if i % 2 == 0 else f"{wnid}_{i}.JPEG"))
    return root
