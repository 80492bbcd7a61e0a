"""Shared fixtures: repository paths, the shared copy of the 8 published filters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
