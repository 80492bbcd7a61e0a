"""The Snakemake DAG: the demo on a tiny budget, the paper DAG, lint, config errors."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import TINY_DEMO
from masterkey.weights import load_checkpoint

pytestmark = pytest.mark.slow



def snakemake(repo_root, workdir, *args, check=True):
    env = {**os.environ, "TQDM_DISABLE": "1", "HF_HUB_OFFLINE": "1"}
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(repo_root / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def write_config(path, **overrides):
    config = {"models": ["demo"], "demo": dict(TINY_DEMO), **overrides}
    path.write_text(yaml.safe_dump(config))
    return path


def test_demo_dag_end_to_end(tiny_demo_run, repo_root):
    tmp_path, config = tiny_demo_run, tiny_demo_run / "config.yaml"
    arrays = np.load(tmp_path / "results/kernels/demo.npz")
    index = pd.read_parquet(tmp_path / "results/kernels/demo.parquet")
    assert arrays["7x7"].shape == (1840, 7, 7) and len(index) == 1840
    model, meta = load_checkpoint(
        tmp_path / "resources/weights/demo.safetensors", tmp_path / "resources/weights/demo.json"
    )
    assert meta["num_depthwise_kernels"] == 1840 and meta["model_kwargs"]["num_classes"] == 3
    assert set(meta["training"]["structure_after"]) >= {"centre_share_mean", "max_abs_cosine_median"}
    np.testing.assert_array_equal(
        arrays["7x7"][:40], model.stages[0].blocks[0].conv_dw.weight.detach().numpy()[:, 0]
    )
    log = pd.read_csv(tmp_path / "resources/weights/demo.training.csv")
    assert list(log["step"]) == [1, 2, 3]
    assert "validation accuracy" in (tmp_path / "logs/train_demo_model.log").read_text()
    # replacement: the learned baseline reproduces the training run's validation accuracy
    table = pd.read_csv(tmp_path / "results/tables/replacement.csv")
    assert table["variant"].iloc[0] == "learned" and len(table) == 11
    assert table["top1"].iloc[0] == pytest.approx(meta["training"]["val_accuracy"])
    assert (table["top1_drop"] == table["top1"].iloc[0] - table["top1"]).all()
    stages = pd.read_csv(tmp_path / "results/tables/replacement_stages.csv")
    assert list(stages["stage"]) == [0, 1, 2, 3]
    again = snakemake(repo_root, tmp_path, "--configfile", str(config), "--cores", "2", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_failed_rule_leaves_nothing_behind(tmp_path, repo_root):
    config = write_config(tmp_path / "config.yaml", published_filters=str(tmp_path / "missing.txt"))
    result = snakemake(repo_root, tmp_path, "--configfile", str(config), "--cores", "1", check=False)
    assert result.returncode != 0
    assert f"file {tmp_path / 'missing.txt'} does not exist" in result.stdout + result.stderr
    assert not (tmp_path / "resources").exists() or not any((tmp_path / "resources").rglob("*.*"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"demo": {"stepz": 3}}, "unknown config key demo.'stepz' (did you mean 'steps'?)"),
        ({"models": ["convnext_tiny.fb_in1kk"]}, "close matches: convnext_tiny.fb_in1k"),
        ({"seed": "x"}, "config key seed: 'x' is not of type 'integer'"),
    ],
)
def test_bad_config_fails_with_one_clear_message(tmp_path, repo_root, overrides, message):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"models": ["demo"], **overrides}))
    result = snakemake(repo_root, tmp_path, "--configfile", str(config), "-n", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_paper_dag_resolves_offline(tmp_path, repo_root):
    result = snakemake(
        repo_root,
        tmp_path,
        "--configfile",
        str(repo_root / "config/paper.yaml"),
        "-n",
        "--config",
        "published_filters=/nonexistent/offline.txt",
    )
    models = [
        m if isinstance(m, str) else m["name"]
        for m in yaml.safe_load((repo_root / "config/paper.yaml").read_text())["models"]
    ]
    counts = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    assert counts["fetch_weights"] == len(models) == counts["extract_kernels"]
    for model in models:
        assert f"resources/weights/{model}.safetensors" in result.stdout


def _job_counts(output):
    counts = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_imagenet_evaluation_is_left_out_without_imagenet_val(tmp_path, repo_root):
    config = write_config(tmp_path / "config.yaml", models=["demo", "convnext_atto.d2_in1k"])
    result = snakemake(repo_root, tmp_path, "--configfile", str(config), "-n")
    assert "imagenet_val is not set" in result.stderr
    assert "results/replacement/convnext_atto.d2_in1k/" not in result.stdout
    assert "results/replacement/demo/learned.json" in result.stdout
    models = ["demo", "convnext_atto.d2_in1k", "convnext_tiny.fb_in1k", "convnext_nano.d1h_in1k"]
    config = write_config(tmp_path / "config.yaml", models=models, imagenet_val=str(tmp_path / "val"))
    result = snakemake(repo_root, tmp_path, "--configfile", str(config), "-n")
    counts = _job_counts(result.stdout)
    assert counts["replace_and_evaluate"] == 4 * 11 and counts["replace_stages"] == 4
    # atto.d2 and tiny.fb share 224 px / crop 0.875 / bicubic; nano.d1h crops 0.95: two caches
    assert counts["prepare_eval_cache"] == 2
    assert "imagenet_val is not set" not in result.stderr


def test_lint_is_clean(tmp_path, repo_root):
    result = snakemake(repo_root, repo_root, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output
    assert "Lints for" not in output
