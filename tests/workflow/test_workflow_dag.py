"""The Snakemake DAG: the demo on a tiny budget, dry runs of every shipped config, lint, config errors."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from conftest import NO_NETWORK, REPO_ROOT, TEST_CONFIG, job_counts, run_snakemake, write_config
from masterkey.nets.checkpoints import load_checkpoint

pytestmark = pytest.mark.slow

# Rules not in the demo DAG: the timm-only ones (the demo trains its own model and evaluates on its own
# split) and the cluster training of NIFF runs (CIFAR-10 / ImageNet).
NOT_IN_DEMO = {"fetch_weights", "prepare_eval_cache", "train_niff"}


def rule_names() -> set[str]:
    names = set()
    for path in (REPO_ROOT / "workflow" / "rules").glob("*.smk"):
        names |= set(re.findall(r"^rule (\w+):", path.read_text(), re.M))
    return names


def test_demo_dag_end_to_end(tiny_demo_run):
    tmp_path = tiny_demo_run
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
    assert "validation accuracy" in (tmp_path / "logs/nets/train_demo_model.log").read_text()
    # replacement: the learned baseline reproduces the training run's validation accuracy; 11 variants
    # on the held-out split (accuracy and fidelity) and on the natural set (fidelity only)
    # + the 5 fine-tuned variants of .test/config.yaml, their drops against finetuned-learned
    table = pd.read_csv(tmp_path / "results/tables/replacement.csv")
    assert list(table["dataset"]) == ["heldout"] * 16 + ["natural"] * 16
    assert list(table["variant"][:16]) == list(table["variant"][16:]) and table["variant"][0] == "learned"
    finetuned = ["finetuned-learned", "finetuned-idealized-D1", "finetuned-masterkey-published",
                 "finetuned-learnable-D1", "finetuned-learnable-sampled-D1"]  # fmt: skip
    assert list(table["variant"][11:16]) == finetuned
    heldout, natural = table[:11], table[16:27]
    assert heldout["top1"].iloc[0] == pytest.approx(meta["training"]["val_accuracy"])
    assert (heldout["top1_drop"] == heldout["top1"].iloc[0] - heldout["top1"]).all()
    tuned = table[11:16]
    assert (tuned["top1_drop"] == tuned["top1"].iloc[0] - tuned["top1"]).all()
    for variant in ("learned", "idealized-D1", "masterkey-published"):
        tuned_model, tuned_meta = load_checkpoint(
            *(tmp_path / f"results/finetune/demo/{variant}.{ext}" for ext in ("safetensors", "json"))
        )
        assert tuned_meta["training"]["updates"] == 2 and tuned_meta["replacement"]["variant"] == variant
        frozen = tuned_model.stages[0].blocks[0].conv_dw.weight.detach().numpy()[:, 0]
        if variant == "learned":  # frozen: the fine-tuned network keeps the learned kernels bit for bit
            np.testing.assert_array_equal(frozen, arrays["7x7"][:40])
    # [Q]: learned (the demo network) and three frozen settings, trained at the demo's budget
    frozen_table = pd.read_csv(tmp_path / "results/tables/frozen_keys.csv")
    assert list(frozen_table["run"]) == ["learned", "keys-published", "keys-8", "random-8"]
    assert frozen_table["val_accuracy"].iloc[0] == pytest.approx(meta["training"]["val_accuracy"])
    assert (frozen_table["updates"] == 3).all()
    assert natural["top1"].isna().all() and (natural["images"] == 256).all()
    for part in (heldout, natural):  # the unmodified network, evaluated again, agrees exactly
        assert (part["agreement"].iloc[0], part["kl"].iloc[0]) == (1.0, 0.0)
        assert part["agreement"].between(0, 1).all() and (part["kl"] >= 0).all()
    reference = np.load(tmp_path / "results/replacement/demo/natural/reference_logits.npy")
    assert reference.shape == (256, 3) and reference.dtype == np.float32
    stages = pd.read_csv(tmp_path / "results/tables/replacement_stages.csv")
    assert list(stages["stage"]) == [0, 1, 2, 3] * 2
    assert list(stages["dataset"]) == ["heldout"] * 4 + ["natural"] * 4
    again = run_snakemake(tmp_path, "--configfile", "config.yaml", "--cores", "2", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_every_job_of_the_demo_run_wrote_its_log(tiny_demo_run):
    """Each rule's log is under logs/<stage>/ (the rule file's name) and names the rule that finished."""
    logs = sorted((tiny_demo_run / "logs").rglob("*.log"))
    by_rule = {}
    for path in logs:
        parts = path.relative_to(tiny_demo_run / "logs").with_suffix("").parts
        assert parts[0] in ("nets", "scalespace", "clustering", "replacement", "niff", "shiftinv"), path
        by_rule.setdefault(parts[1], []).append(path)
    assert set(by_rule) == rule_names() - NOT_IN_DEMO, sorted(by_rule)
    for rule, paths in by_rule.items():
        for path in paths:
            assert f"rule {rule} finished in" in path.read_text(), path
    for path in ("nets/train_demo_model.log", "nets/extract_kernels/demo.log",
                 "scalespace/fetch_published_filters.log", "clustering/select_master_keys/8.log",
                 "replacement/reference_logits/demo/natural.log",
                 "replacement/replace_and_evaluate/demo/heldout/learned.log"):  # fmt: skip
        assert (tiny_demo_run / "logs" / path).is_file(), path


def test_failed_rule_leaves_nothing_behind(tmp_path):
    missing = tmp_path / "missing.txt"
    config = write_config(tmp_path / "config.yaml", published_filters=str(missing))
    result = run_snakemake(tmp_path, "--configfile", str(config), "--cores", "1", check=False)
    assert result.returncode != 0
    assert f"config key published_filters: file {missing} does not exist" in result.stdout + result.stderr
    assert not (tmp_path / "resources").exists() or not any((tmp_path / "resources").rglob("*.*"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"demo": {"stepz": 3}}, "unknown config key demo.'stepz' (did you mean 'steps'?)"),
        ({"models": ["convnext_tiny.fb_in1kk"]}, "close matches: convnext_tiny.fb_in1k"),
        ({"seed": "x"}, "config key seed: 'x' is not of type 'integer'"),
    ],
)
def test_bad_config_fails_with_one_clear_message(tmp_path, overrides, message):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"models": ["demo"], **overrides}))
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_demo_configs_dry_run(tmp_path):
    """The tiny test config has every rule but the timm-only ones (two models: the demo and the
    NIFF demo run, which is analysed but not replaced); the default config adds EfficientNet-Lite0
    from its package (offline): its fetch_weights job and its share of every per-model job (on the
    natural set only: it has no labelled set)."""
    tiny = job_counts(run_snakemake(tmp_path, "--configfile", str(TEST_CONFIG), "-n", env=NO_NETWORK).stdout)
    assert set(tiny) == (rule_names() - NOT_IN_DEMO) | {"all", "total"}, tiny
    assert tiny["fetch_published_filters"] == tiny["train_demo_model"] == tiny["train_niff_demo"] == 1
    assert tiny["train_shiftinv_demo"] == tiny["shiftinv_dtcwpt"] == 1 and tiny["shiftinv_first_layer"] == 2
    assert tiny["extract_kernels"] == 2 and tiny["reference_logits"] == 2  # demo on 2 sets; niff: none
    result = run_snakemake(tmp_path, "--configfile", str(REPO_ROOT / "config.yaml"), "-n", env=NO_NETWORK)
    counts = job_counts(result.stdout)
    assert "resources/weights/tf_efficientnet_lite0.safetensors" in result.stdout
    per_model = ["extract_kernels", "fit_kernels", "spread_kernels", "table_kernel_shapes"]
    per_model += ["figure_residuals", "figure_fitted_scales", "figure_explained_share"]
    per_model += ["figure_cluster_membership"]
    expected = {
        **tiny,
        "fetch_weights": 1,
        **{rule: tiny[rule] * 3 // 2 for rule in per_model},
        "reference_logits": tiny["reference_logits"] + 1,
        "replace_stages": tiny["replace_stages"] + 1,
        "replace_and_evaluate": tiny["replace_and_evaluate"] * 3 // 2,  # + one model on one set
        # the demo fine-tunes 11 variants (5 in the tiny config), each evaluated on 2 sets
        "finetune_frozen": 11,
        "evaluate_finetuned": 22,
        # [C]: depths 2 and 3 (tiny: 2), m = 2 and 4 (tiny: 2), + EfficientNet-Lite0's first layer
        **{rule: 2 for rule in ("shiftinv_dtcwpt", "figure_shiftinv_dtcwpt", "figure_shiftinv_gamma")},
        **{rule: 3 for rule in ("shiftinv_first_layer", "figure_shiftinv_first_layer")},
    }
    expected["total"] = sum(v for k, v in expected.items() if k != "total")
    assert counts == expected


def test_training_jobs_need_imagenet_train_and_a_recipe(tmp_path):
    """Fine-tuning and [Q] of a timm model join the DAG only with imagenet_train and a recipe; without,
    they are left out with one line and the demo's stay."""
    recipe = {"steps": 10, "batch_size": 8}
    replacement = {"finetune": {"enabled": True, "recipe": recipe}}
    frozen = {"models": ["demo", "convnext_atto.d2_in1k"], "recipe": recipe}
    models = ["demo", "convnext_atto.d2_in1k"]
    settings = {"models": models, "replacement": replacement, "frozen_keys": frozen}
    config = write_config(tmp_path / "config.yaml", **settings)
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    counts = job_counts(result.stdout)
    assert counts["finetune_frozen"] == 3  # learned, idealized-D1, masterkey-published; demo only
    assert counts["evaluate_finetuned"] == 3 * 2  # on the held-out split and the natural set
    assert counts["train_frozen_keys"] == 3  # the demo's learned run is the demo network itself
    for variant in ("learned", "idealized-D1", "masterkey-published"):
        for dataset in ("heldout", "natural"):
            assert f"results/replacement/demo/{dataset}/finetuned-{variant}.json" in result.stdout
        assert f"logs/replacement/finetune_frozen/demo/{variant}.log" in result.stdout
    assert "finetuned-" not in "".join(re.findall(r"convnext_atto\.d2_in1k/\S*", result.stdout))
    assert result.stderr.count("training jobs of 1 timm model(s) are left out") == 1
    paths = {"imagenet_train": str(tmp_path / "train"), "imagenet_val": str(tmp_path / "val")}
    config = write_config(tmp_path / "config.yaml", **settings, imagenet_train=paths["imagenet_train"])
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")  # no imagenet_val: still left out
    assert result.stderr.count("training jobs of 1 timm model(s) are left out") == 1
    config = write_config(tmp_path / "config.yaml", **settings, **paths)
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n", check=False)  # an empty folder
    assert result.returncode != 0 and "config key imagenet_train" in result.stdout + result.stderr
    for split in ("train", "val"):
        (tmp_path / split / "n01440764").mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / split / "n01440764" / "a.JPEG")
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    counts = job_counts(result.stdout)
    assert counts["finetune_frozen"] == 6 and counts["train_frozen_keys"] == 3 + 4
    assert "results/frozen_keys/convnext_atto.d2_in1k/learned.safetensors" in result.stdout
    for dataset in ("natural", "imagenet_val"):
        path = f"results/replacement/convnext_atto.d2_in1k/{dataset}/finetuned-idealized-D1.json"
        assert path in result.stdout
    assert "are left out" not in result.stderr


def test_paper_dag_resolves_offline(tmp_path, repo_root):
    paper = repo_root / "config/paper.yaml"
    result = run_snakemake(tmp_path, "--configfile", str(paper), "-n", env=NO_NETWORK)
    config = yaml.safe_load(paper.read_text())
    models = [m if isinstance(m, str) else m["name"] for m in config["models"]]
    networks = [n for n in config["shiftinv"]["networks"] if n not in models]  # [C]: first layers only
    counts = job_counts(result.stdout)
    assert counts["extract_kernels"] == len(models) and counts["fetch_weights"] == len(models) + len(networks)
    assert networks and counts["shiftinv_first_layer"] == len(config["shiftinv"]["networks"])
    assert counts["fetch_published_filters"] == 1
    for model in models:
        assert f"resources/weights/{model}.safetensors" in result.stdout


def test_imagenet_evaluation_is_left_out_without_imagenet_val(tmp_path):
    """Without imagenet_val a timm model is still compared with its unmodified self on the natural set."""
    config = write_config(tmp_path / "config.yaml", models=["demo", "convnext_atto.d2_in1k"])
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    assert "imagenet_val is not set" in result.stderr
    assert "results/replacement/convnext_atto.d2_in1k/imagenet_val/" not in result.stdout
    for path in ("convnext_atto.d2_in1k/natural/learned.json", "convnext_atto.d2_in1k/natural/stages.json",
                 "demo/heldout/learned.json", "demo/natural/reference_logits.npy"):  # fmt: skip
        assert f"results/replacement/{path}" in result.stdout, path
    counts = job_counts(result.stdout)
    # demo: held-out + natural; atto: natural only -> 3 (model, set) pairs
    assert counts["reference_logits"] == counts["replace_stages"] == 3
    assert counts["replace_and_evaluate"] == 3 * 11 and "prepare_eval_cache" not in counts
    models = ["demo", "convnext_atto.d2_in1k", "convnext_tiny.fb_in1k", "convnext_nano.d1h_in1k"]
    config = write_config(tmp_path / "config.yaml", models=models, imagenet_val=str(tmp_path / "val"))
    result = run_snakemake(tmp_path, "--configfile", str(config), "-n")
    counts = job_counts(result.stdout)
    # every model on its labelled set (held-out split / imagenet_val) and on the natural set
    assert counts["replace_and_evaluate"] == 4 * 2 * 11 and counts["replace_stages"] == 4 * 2
    assert counts["reference_logits"] == 4 * 2
    # atto.d2 and tiny.fb share 224 px / crop 0.875 / bicubic; nano.d1h crops 0.95: two caches
    assert counts["prepare_eval_cache"] == 2
    assert "imagenet_val is not set" not in result.stderr


def test_lint_is_clean(repo_root):
    result = run_snakemake(repo_root, "--lint", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Congratulations, your workflow is in a good condition!" in output
    assert "Lints for" not in output
