"""[B]'s learnable-scale experiment: baking the layer back into plain convolutions, the scales in the
sidecar, their long frame and the movement table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from masterkey.nets.scalespace_conv import ScaleSpaceConv2d, bake_scalespace, scale_frame
from masterkey.replacement.finetune import _columns
from masterkey.replacement.learnable import MOVED, comparison_variants, learnable_table, scales_frame


def network() -> nn.Module:
    torch.manual_seed(0)
    layer = ScaleSpaceConv2d(["dx", "lap", None, "id-lap"], 5, sigma_x=[1.0, 1.5, 1.0, 0.8],
                             sigma_y=[0.7, 1.5, 1.0, 0.8], alpha=0.4, amplitude=[1, 2, 0, -1], offset=0.1,
                             bias=[0.0, 0.1, 0.2, 0.3], dtype=torch.float64)  # fmt: skip
    return nn.Sequential(nn.Conv2d(1, 4, 1).double(), nn.Sequential(layer), nn.Flatten())


def test_bake_keeps_the_function_and_removes_the_layer():
    model, x = network(), torch.randn(2, 1, 9, 9, dtype=torch.float64)
    before = model(x).detach()
    scales = scale_frame(model)
    assert bake_scalespace(model) == 1 and scale_frame(model).empty
    baked = model[1][0]
    assert type(baked) is nn.Conv2d and baked.groups == 4 and baked.kernel_size == (5, 5)
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-12)
    assert list(scales["type"]) == ["dx", "lap", "constant", "id-lap"]
    np.testing.assert_allclose(scales[["sigma_x", "sigma_y"]].to_numpy()[[0, 1, 3]],
                               [[1.0, 0.7], [1.5, 1.5], [0.8, 0.8]], rtol=1e-12)  # fmt: skip
    assert np.isnan(scales["alpha"].iloc[0]) and scales["alpha"].iloc[3] == pytest.approx(0.4)


def sidecar(initial: pd.DataFrame, trained: pd.DataFrame) -> dict:
    """A sidecar as the fine-tuning writes it (through JSON: NaN -> null)."""
    return json.loads(json.dumps({"scales": {"initial": _columns(initial), "trained": _columns(trained)}}))


def test_scales_frame_and_table_from_planted_movements():
    model = network()
    initial = scale_frame(model)
    with torch.no_grad():
        model[1][0].raw_scale += torch.tensor([[0.5, 0.0], [0.0, 0.0], [0.0, 0.0], [-0.01, 0.0]],
                                              dtype=torch.float64)  # fmt: skip
    trained = scale_frame(model)
    for frame in (initial, trained):
        frame["layer"] = "stages.2.blocks.0.conv_dw"
    scales = scales_frame({("m", "learnable-sampled-D1"): sidecar(initial, trained)})
    # dx: x and y; lap and id-lap: one scale each; the constant channel none
    assert list(scales["type"]) == ["dx", "lap", "id-lap", "dx"] and list(scales["axis"]) == ["x"] * 3 + ["y"]
    assert (scales["stage"] == 2).all() and (scales["gaussian"] == "sampled").all()
    change = (scales["trained"] - scales["initial"]).abs().to_numpy()
    assert change[0] > MOVED and change[2] < MOVED and np.allclose(change[[1, 3]], 0)
    replacement = pd.DataFrame({"model": "m", "dataset": "heldout",
                                "variant": comparison_variants("learnable-sampled-D1"),
                                "top1": [0.8, 0.7, 0.75]})  # fmt: skip
    table = learnable_table(scales, replacement, {"m": "heldout"})
    assert list(table["stage"]) == ["2", "all"]
    total = table[table["stage"] == "all"].iloc[0]
    assert total["channels"] == 3 and total["moved"] == pytest.approx(1 / 4)
    assert (total["top1"], total["top1 idealized frozen"], total["top1 learned frozen"]) == (0.75, 0.7, 0.8)
    assert total["sigma trained min"] == pytest.approx(scales["trained"].min())
