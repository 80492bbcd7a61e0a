"""Shared fixtures: repository paths, the shared copy of the 8 published filters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_FILTERS = REPO_ROOT.parent / "shared" / "reference" / "master_key_filters_8.txt"

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
