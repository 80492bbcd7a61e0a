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
