"""The shift-invariance stage ([C]) in the tiny demo DAG: a ResNet-18 trained on the demo crops, the
DT-CWPT and first-layer tables and figures, and its config errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import job_counts, run_snakemake, write_config
from masterkey.nets.checkpoints import load_checkpoint

pytestmark = pytest.mark.slow


def test_shiftinv_demo_outputs(tiny_demo_run):
    tmp = tiny_demo_run
    settings = yaml.safe_load((tmp / "config.yaml").read_text())["shiftinv"]
    images = np.load(tmp / "results/shiftinv/images.npz")
    side = settings["image_size"] + 2 * settings["context"]
    assert images["images"].shape == (settings["images"], side, side)
    assert 0 <= images["images"].min() and images["images"].max() <= 1 and len(images["sources"]) == 2
    # a ResNet-18 trained like the demo network: same budget, its own first layer
    model, meta = load_checkpoint(tmp / "resources/weights/resnet18_demo.safetensors",
                                  tmp / "resources/weights/resnet18_demo.json")  # fmt: skip
    assert meta["architecture"] == "resnet18" and meta["training"]["num_train_images_seen"] > 0
    kernels = np.load(tmp / "results/shiftinv/first_layer/resnet18_demo.npz")["kernels"]
    np.testing.assert_array_equal(kernels, model.conv1.weight.detach().double().numpy())
    resnet = pd.read_parquet(tmp / "results/shiftinv/first_layer/resnet18_demo.parquet")
    demo = pd.read_parquet(tmp / "results/shiftinv/first_layer/demo.parquet")
    assert len(resnet) == 64 and resnet["applies"].all() and resnet["pool"].eq("maxpool").all()
    assert resnet.loc[~resnet["lowpass"], "instability_bound"].notna().all()
    assert len(demo) == 40 and not demo["applies"].any() and demo["instability_bound"].isna().all()
    assert (demo["stride"] == 4).all() and demo["reason"].str.contains("no max pooling").all()
    # the DT-CWPT of depth 2: 32 complex filters, Gabor-like in their pi/m windows
    dtcwpt = pd.read_parquet(tmp / "results/shiftinv/dtcwpt_J2.parquet")
    assert len(dtcwpt) == 32 and (dtcwpt["subsampling"] == 2).all()
    for column in ("discrepancy", "instability", "instability_cmod", "rho"):
        assert np.isfinite(dtcwpt[column]).all() and (dtcwpt[column] >= 0).all(), column
    gabor = pd.read_csv(tmp / "results/tables/shiftinv_gabor.csv")
    assert list(gabor["J"]) == [2] and gabor["filters"].iloc[0] == 32
    assert gabor["rho mean"].iloc[0] == pytest.approx(dtcwpt["rho"].mean())
    bounds = pd.read_csv(tmp / "results/tables/shiftinv_bounds.csv")
    assert list(bounds["filter bank"]) == ["DT-CWPT J=2", "resnet18_demo", "demo"]
    assert bounds["analysed"].iloc[0] > 0 and 0 <= bounds["instability below bound"].iloc[0] <= 1
    assert bounds["analysed"].iloc[2] == 0  # no max pooling: counts only (admissible filters only)
    layers = pd.read_csv(tmp / "results/tables/shiftinv_first_layers.csv")
    assert list(layers["network"]) == ["resnet18_demo", "demo"] and list(layers["theorem applies"]) == [
        True,
        False,
    ]
    for figure in ("gamma_m2", "dtcwpt_J2", "bounds", "first_layer_resnet18_demo", "first_layer_demo"):
        assert (tmp / f"results/figures/shiftinv_{figure}.png").stat().st_size > 10_000, figure


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"shiftinv": {"networks": ["resnet18"]}}, "config key shiftinv.networks"),
        ({"shiftinv": {"runs": [{"name": "demo", "architecture": "resnet18"}]}}, "shiftinv.runs[0].name"),
        (
            {"shiftinv": {"runs": [{"name": "r", "architecture": "resnet_nope"}]}},
            "shiftinv.runs[0].architecture",
        ),
        ({"shiftinv": {"depths": [0]}}, "shiftinv.depths"),
        ({"shiftinv": {"shifts": [[1, 0, 0]]}}, "shiftinv.shifts"),
    ],
)
def test_bad_shiftinv_config_fails_with_one_clear_message(tmp_path, overrides, message):
    config = write_config(tmp_path / "config.yaml", **overrides)
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output and "Traceback" not in output


def test_timm_networks_are_fetched_like_models(tmp_path):
    """A timm checkpoint in shiftinv.networks that is not a model is fetched by fetch_weights and
    only its first layer is analysed (no depthwise extraction)."""
    config = write_config(tmp_path / "config.yaml", shiftinv={"networks": ["resnet18.tv_in1k"]})
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    counts = job_counts(result.stdout)
    assert counts["fetch_weights"] == 1 and counts["shiftinv_first_layer"] == 1
    assert "resources/weights/resnet18.tv_in1k.safetensors" in result.stdout
    assert "results/kernels/resnet18.tv_in1k" not in result.stdout
