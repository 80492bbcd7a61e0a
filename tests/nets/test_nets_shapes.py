"""Kernel shapes of a model: band kernels are counted, get spread measures and are never dropped silently.

InceptionNeXt-atto (timm, random init) has, per block, a 3x3 square and a 1x9 and a 9x1 band depthwise
conv on a quarter of the channels each: dims (40, 80, 160, 320), depths (2, 2, 6, 2), so 12 layers and
2*10 + 2*20 + 6*40 + 2*80 = 460 kernels of each shape.
"""

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from masterkey.kernels.shapes import SHAPE_ANALYSES, kernel_shape_table, not_analysed_message
from masterkey.kernels.store import load_index, load_kernels, save_kernels
from masterkey.nets.depthwise import extract_kernels
from masterkey.scalespace.models import spread_model_kernels

KERNELS_PER_SHAPE, LAYERS_PER_SHAPE = 460, 12


@pytest.fixture(scope="module")
def inception_store(tmp_path_factory):
    """The kernel store of a random-init inception_next_atto, written and read back."""
    torch.manual_seed(0)
    arrays, index = extract_kernels(timm.create_model("inception_next_atto", pretrained=False), "inception")
    folder = tmp_path_factory.mktemp("store")
    save_kernels(arrays, index, folder / "k.npz", folder / "k.parquet")
    return load_kernels(folder / "k.npz"), load_index(folder / "k.parquet")


def test_band_kernels_are_extracted_and_counted(inception_store):
    arrays, index = inception_store
    assert {key: array.shape for key, array in arrays.items()} == {
        "3x3": (KERNELS_PER_SHAPE, 3, 3), "1x9": (KERNELS_PER_SHAPE, 1, 9), "9x1": (KERNELS_PER_SHAPE, 9, 1),
    }  # fmt: skip
    table = kernel_shape_table(index)
    assert table["shape"].tolist() == ["3x3", "1x9", "9x1"]  # modelled shapes first
    assert table["layers"].tolist() == [LAYERS_PER_SHAPE] * 3
    assert table["kernels"].tolist() == [KERNELS_PER_SHAPE] * 3 and table["kernels"].sum() == len(index)
    assert table["share"].to_numpy() == pytest.approx([1 / 3] * 3)
    assert (table["spread"] == "yes").all()
    for analysis in set(SHAPE_ANALYSES) - {"spread"}:
        assert table[analysis].tolist() == ["yes", "no", "no"], analysis


def test_the_fit_log_names_the_band_kernels_it_leaves_out(inception_store):
    arrays, _ = inception_store
    assert not_analysed_message(arrays, "fitted") == (
        "920 of 1,380 kernels not fitted (no 2-D scale-space model): 1x9: 460, 9x1: 460"
    )
    # an analysis of one square size names the other squares without claiming they have no model
    assert not_analysed_message({**arrays, "7x7": np.zeros((2, 7, 7))}, "clustered", ["7x7"]) == (
        "1,380 of 1,382 kernels not clustered: 3x3: 460, 1x9: 460, 9x1: 460"
    )


def test_spread_covers_every_kernel_and_bands_spread_along_their_axis(inception_store):
    arrays, index = inception_store
    fits = pd.DataFrame({"kernel_size": "3x3", "filter": range(KERNELS_PER_SHAPE), "type": "T"})
    spread = spread_model_kernels(arrays, index, fits, "inception")
    assert len(spread) == len(index)
    assert spread.groupby("kernel_size").size().to_dict() == {k: KERNELS_PER_SHAPE for k in arrays}
    positions = np.arange(9) - 4.0
    for key, along, across, mean_across in (("1x9", "V_xx", "V_yy", "m_y"), ("9x1", "V_yy", "V_xx", "m_x")):
        part = spread[spread["kernel_size"] == key].sort_values("filter")
        weights = np.abs(arrays[key].reshape(KERNELS_PER_SHAPE, 9).astype(np.float64))
        if key == "9x1":
            weights = weights[:, ::-1]  # the top row is y = +4
        mean = (weights * positions).sum(1) / weights.sum(1)
        variance = (weights * (positions - mean[:, None]) ** 2).sum(1) / weights.sum(1)
        np.testing.assert_allclose(part[along], variance, rtol=1e-9)
        assert (part[across] == 0).all() and (part["V_xy"] == 0).all() and (part[mean_across] == 0).all()
        assert part[["correlation", "type", "Vg_xx", "offset"]].isna().all(axis=None)
    square = spread[spread["kernel_size"] == "3x3"]
    assert square["type"].eq("T").all() and square["Vg_xx"].notna().all()


def test_shape_table_rejects_bad_input():
    with pytest.raises(ValueError, match="empty"):
        kernel_shape_table(pd.DataFrame({"layer": [], "kernel_size": []}))
    with pytest.raises(ValueError, match="not a kernel shape key: '7by7'"):
        kernel_shape_table(pd.DataFrame({"layer": ["a"], "kernel_size": ["7by7"]}))
