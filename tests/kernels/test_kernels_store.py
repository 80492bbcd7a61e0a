"""The kernel store: .npz arrays plus a parquet index, round trip and stale files."""

import numpy as np
import pandas as pd
import pytest
import timm

from masterkey.core.errors import StaleFileError
from masterkey.kernels.store import (
    INDEX_COLUMNS,
    INDEX_KEYS,
    kernel_key,
    load_index,
    load_kernels,
    save_kernels,
    square_kernel_sizes,
)
from masterkey.nets.depthwise import extract_kernels


def test_round_trip(tmp_path):
    model = timm.create_model("convnext_atto", pretrained=False)
    arrays, index = extract_kernels(model, "convnext_atto")
    save_kernels(arrays, index, tmp_path / "k.npz", tmp_path / "k.parquet")
    loaded = load_kernels(tmp_path / "k.npz")
    assert loaded.keys() == arrays.keys()
    np.testing.assert_array_equal(loaded["7x7"], arrays["7x7"])
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "k.parquet"), index)
    back = load_index(tmp_path / "k.parquet")
    pd.testing.assert_frame_equal(back, index)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.npz", "k.parquet"]  # no temp files left


def test_unreadable_kernel_file(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(StaleFileError) as info:
        load_kernels(missing)
    assert info.value.path == missing and str(info.value) == f"{missing} does not exist"
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(StaleFileError) as info:
        load_kernels(bad)
    assert info.value.path == bad and str(info.value).startswith(f"{bad} is unreadable")


def test_index_without_kernel_columns_is_stale(tmp_path):
    path = tmp_path / "k.parquet"
    pd.DataFrame({"model": ["m"], "layer": ["a"]}).to_parquet(path)
    with pytest.raises(StaleFileError) as info:
        load_index(path)
    assert info.value.path == path and "is not a kernel index (no column stage, block" in str(info.value)
    with pytest.raises(StaleFileError, match="does not exist"):
        load_index(tmp_path / "none.parquet")


def test_keys_and_square_sizes():
    assert kernel_key(7, 7) == "7x7" and kernel_key(1, 11) == "1x11"
    assert INDEX_COLUMNS[: len(INDEX_KEYS) + 1] == ["model", *INDEX_KEYS]
    arrays = {
        "3x3": np.zeros((1, 3, 3)),
        "1x9": np.zeros((1, 1, 9)),
        "9x1": np.zeros((1, 9, 1)),
        "4x4": np.zeros((1, 4, 4)),
        "1x1": np.zeros((1, 1, 1)),
        "7x7": np.zeros((1, 7, 7)),
    }
    assert square_kernel_sizes(arrays) == ["3x3", "7x7"]
