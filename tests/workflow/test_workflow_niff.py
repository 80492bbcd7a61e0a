"""The NIFF stage in the tiny demo DAG: training beside the plain demo, KMR tables and figures, the
central 7x7 kernels through the master-key pipeline, and its config errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import job_counts, run_snakemake, write_config
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.niff import central_kernels, spatial_kernels

pytestmark = pytest.mark.slow
RUN = "niff_convnext_atto"


def test_niff_demo_outputs(tiny_demo_run):
    tmp = tiny_demo_run
    crop = yaml.safe_load((tmp / "config.yaml").read_text())["demo"]["crop_size"]
    model, meta = load_checkpoint(
        tmp / f"resources/weights/{RUN}.safetensors", tmp / f"resources/weights/{RUN}.json"
    )
    _, init_meta = load_checkpoint(tmp / f"resources/weights/{RUN}.init.safetensors",
                                   tmp / f"resources/weights/{RUN}.init.json")  # fmt: skip
    assert meta["input_size"] == [3, crop, crop] and init_meta["state"] == "init"
    demo_log = pd.read_csv(tmp / "resources/weights/demo.training.csv")
    niff_log = pd.read_csv(tmp / f"resources/weights/{RUN}.metrics.csv")
    assert list(niff_log["step"]) == list(demo_log["step"])  # same budget as the plain demo
    # the kernel store: the central 7x7 of the NIFF kernels whose maps are at least 7 (stage 0 at 32 px)
    arrays = np.load(tmp / f"results/kernels/{RUN}.npz")
    expected = central_kernels(spatial_kernels(model, tuple(meta["input_size"])), 7)
    np.testing.assert_array_equal(arrays["7x7"], np.concatenate(list(expected.values())))
    assert arrays["7x7"].shape == (80, 7, 7)  # 2 blocks x 40 channels
    # KMR: trained, init and the plain demo's 7x7 kernels per stage
    table = pd.read_csv(tmp / "results/tables/niff_kmr.csv")
    assert set(table["state"]) == {"trained", "init", "plain"}
    sizes = crop // 4 // np.array([1, 2, 4, 8])
    trained = table[table["state"] == "trained"]
    assert list(trained["kernel_size"]) == [f"{s}x{s}" for s in sizes]
    assert (table[table["state"] == "plain"]["kernel_size"] == "7x7").all()
    assert (table["kmr_3_mean"].dropna().between(0, 1)).all()
    accuracy = pd.read_csv(tmp / "results/tables/niff_accuracy.csv")
    demo_meta = load_checkpoint(
        tmp / "resources/weights/demo.safetensors", tmp / "resources/weights/demo.json"
    )[1]
    assert accuracy["baseline_val_accuracy"].iloc[0] == pytest.approx(demo_meta["training"]["val_accuracy"])
    assert accuracy["val_accuracy"].iloc[0] == pytest.approx(meta["training"]["val_accuracy"])
    for figure in ("kmr", "kernels", "pca"):
        assert (tmp / f"results/figures/niff_{figure}_{RUN}.png").stat().st_size > 10_000
    # through the master-key pipeline as a model of its own
    classification = pd.read_csv(tmp / "results/tables/classification.csv")
    assert RUN in set(classification.astype(str).to_numpy().ravel())
    assert (tmp / f"results/fits/{RUN}.parquet").is_file() and (
        tmp / f"results/spread/{RUN}.parquet"
    ).is_file()
    assert not (tmp / f"results/replacement/{RUN}").exists()  # NIFF layers hold no replaceable kernel


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"models": ["demo", "niff_x"], "niff": {"runs": []}}, "niff_x"),
        (
            {
                "niff": {
                    "runs": [
                        {
                            "name": "niff_convnext_atto",
                            "architecture": "niff_convnext_atto",
                            "baseline": "nope",
                        }
                    ]
                }
            },
            "niff.runs[0].baseline",
        ),
        ({"niff": {"runs": [{"name": "n", "architecture": "niff_convnext_atto", "colour": 1}]}}, "colour"),
        ({"niff": {"crop": 6}}, "niff.crop"),
    ],
)
def test_bad_niff_config_fails_with_one_clear_message(tmp_path, overrides, message):
    config = write_config(tmp_path / "config.yaml", **overrides)
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and message in output and "Traceback" not in output


def test_cluster_runs_join_with_their_data(tmp_path, tiny_cifar10):
    """CIFAR-10 runs are left out (one line) until cifar10 is set; then they are training jobs."""
    recipe = {"steps": 2, "batch_size": 4}
    niff = {"name": "niff_c", "architecture": "niff_convnext_atto", "baseline": "plain_c"}
    plain = {"name": "plain_c", "architecture": "convnext_atto"}
    runs = [{**run, "dataset": "cifar10", "recipe": recipe} for run in (niff, plain)]
    config = write_config(tmp_path / "config.yaml", models=["demo"], niff={"runs": runs})
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert "train_niff" not in job_counts(result.stdout) and "niff_c, plain_c left out" in result.stderr
    config = write_config(
        tmp_path / "config.yaml", models=["demo"], niff={"runs": runs}, cifar10=str(tiny_cifar10.root)
    )
    counts = job_counts(run_snakemake(tmp_path, "--configfile", str(config), "-n").stdout)
    assert counts["train_niff"] == 2 and counts["niff_kernels"] == 1 and counts["extract_kernels"] == 2
