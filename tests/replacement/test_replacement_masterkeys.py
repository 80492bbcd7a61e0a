"""masterkey-<K> replaces each kernel by the best key of its own size (methods.md section 5)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from masterkey.clustering.master_keys import save_master_keys
from masterkey.kernels.store import save_kernels
from masterkey.replacement.build import VariantInputs, build_variant, masterkey_kernels
from masterkey.replacement.evaluation import load_variant_inputs


def planted(rng, keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` affine images ``a x + b`` (either sign) of the keys; returns them and the key of each."""
    which = rng.integers(0, len(keys), n)
    scale, offset = rng.choice([-1, 1], n) * rng.uniform(0.2, 2, n), rng.normal(size=n)
    return scale[:, None, None] * keys[which] + offset[:, None, None], which


def index_of(arrays: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = [
        pd.DataFrame(
            {
                "model": "m",
                "layer": f"l{key}",
                "stage": stage,
                "block": 0,
                "channel": np.arange(len(a)),
                "kernel_size": key,
                "row": np.arange(len(a)),
                "l2_norm": 1.0,
                "mean": 0.0,
            }
        )
        for stage, (key, a) in enumerate(arrays.items())
    ]
    return pd.concat(rows, ignore_index=True)


def test_each_size_gets_the_keys_of_its_size():
    rng = np.random.default_rng(0)
    keys = {"3x3": rng.normal(size=(3, 3, 3)), "7x7": rng.normal(size=(3, 7, 7))}
    arrays, truth = {}, {}
    for key, n in (("3x3", 30), ("7x7", 20)):
        arrays[key], truth[key] = planted(rng, keys[key], n)
    arrays["5x5"] = rng.normal(size=(6, 5, 5))  # no keys of this size: kept
    arrays["1x7"] = rng.normal(size=(4, 1, 7))  # band kernels: kept
    new, replaced = masterkey_kernels(arrays, keys)
    for key in ("3x3", "7x7"):
        np.testing.assert_allclose(new[key], arrays[key], atol=1e-9)  # each is an affine image of its own key
        assert replaced[key].all()
    for key in ("5x5", "1x7"):
        assert new[key] is arrays[key] and not replaced[key].any()
    _, summary = build_variant("masterkey-3", VariantInputs(arrays, index_of(arrays), master_keys=keys))
    assert (summary["replaced"], summary["kept"]) == (50, 10)
    assert summary["relative_change_mean"] == pytest.approx(0.0, abs=1e-9)
    # a 3x3 kernel never meets a 7x7 key: other 3x3 keys change the 3x3 kernels only
    other = {**keys, "3x3": rng.normal(size=(3, 3, 3))}
    changed, _ = masterkey_kernels(arrays, other)
    assert not np.allclose(changed["3x3"], arrays["3x3"])
    np.testing.assert_array_equal(changed["7x7"], new["7x7"])


def test_no_kernel_of_a_keyed_size_is_no_error(published_filters):
    rng = np.random.default_rng(1)
    arrays = {"3x3": rng.normal(size=(8, 3, 3)), "5x5": rng.normal(size=(4, 5, 5))}
    inputs = VariantInputs(arrays, index_of(arrays), master_keys={"7x7": rng.normal(size=(2, 7, 7))})
    new, summary = build_variant("masterkey-2", inputs)
    assert (summary["replaced"], summary["kept"]) == (0, 12)
    assert all(new[key] is arrays[key] for key in arrays)
    # the published 8 are 7x7: a model without 7x7 kernels keeps all of them
    published = VariantInputs(arrays, index_of(arrays), master_keys=published_filters)
    assert build_variant("masterkey-published", published)[1]["replaced"] == 0
    with pytest.raises(ValueError, match=r"size 3x3 must have shape \(K, kh, kw\), got \(2, 5, 5\)"):
        masterkey_kernels(arrays, {"3x3": np.ones((2, 5, 5))})


def test_master_keys_file_of_every_size_drives_the_variant(tmp_path):
    rng = np.random.default_rng(2)
    keys = {"3x3": rng.normal(size=(4, 3, 3)), "5x5": rng.normal(size=(4, 5, 5))}
    arrays = {key: planted(rng, keys[key], 10)[0].astype(np.float32) for key in keys}
    paths = {
        "kernels": tmp_path / "m.npz",
        "index": tmp_path / "m.parquet",
        "master_keys": tmp_path / "k_4.npz",
    }
    save_kernels(arrays, index_of(arrays), paths["kernels"], paths["index"])
    save_master_keys(keys, paths["master_keys"])
    inputs = load_variant_inputs("masterkey-4", paths)
    assert {key: a.shape for key, a in inputs.master_keys.items()} == {"3x3": (4, 3, 3), "5x5": (4, 5, 5)}
    new, summary = build_variant("masterkey-4", inputs)
    assert summary["replaced"] == 20
    for key in keys:
        np.testing.assert_allclose(new[key], arrays[key], atol=1e-4)  # float32 keys in the file
