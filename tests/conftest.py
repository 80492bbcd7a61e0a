"""Shared fixtures: repository paths, the shared copy of the 8 published filters, one tiny demo run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_FILTERS = REPO_ROOT.parent / "shared" / "reference" / "master_key_filters_8.txt"

# The demo on a tiny budget (seconds), shared by the demo, workflow and Slurm tests.
TINY_DEMO = {
    "images": ["camera", "coins", "coffee"],
    "crop_size": 32,
    "val_crops_per_class": 4,
    "max_image_side": 128,
    "steps": 3,
    "batch_size": 8,
    "warmup_steps": 1,
    "eval_every": 2,
}

# Tests never touch the network: the hub works from its cache only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def published_filters_path() -> Path:
    if not PUBLISHED_FILTERS.is_file():
        pytest.skip(f"shared reference copy {PUBLISHED_FILTERS} not present")
    return PUBLISHED_FILTERS


@pytest.fixture(scope="session")
def published_filters(published_filters_path):
    from masterkey.published import load_master_key_filters

    return load_master_key_filters(published_filters_path)


def run_snakemake(workdir: Path, *args: str, check: bool = True, env: dict | None = None):
    """``snakemake --snakefile <repo>/Snakefile --directory <workdir> *args`` in a subprocess."""
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO_ROOT / "Snakefile"),
               "--directory", str(workdir), *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="session")
def tiny_demo_run(tmp_path_factory, published_filters_path) -> Path:
    """The whole demo DAG (`rule all`) on TINY_DEMO, run once per session in a temporary directory.

    Its config is ``<dir>/config.yaml``. Tests must not change the directory; copy it to mutate.
    """
    workdir = tmp_path_factory.mktemp("tiny_demo")
    config = {"models": ["demo"], "demo": dict(TINY_DEMO), "published_filters": str(published_filters_path)}
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    run_snakemake(workdir, "--configfile", "config.yaml", "--cores", "2")
    return workdir
