"""The embedded demo network: deterministic training on a tiny budget, structure measures, storage."""

import numpy as np
import pytest
import timm
import torch

from conftest import TINY_DEMO
from masterkey.data.demo import DemoSettings
from masterkey.kernels.conventions import centre_share
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.nets.demo import (
    demo_recipe,
    depthwise_structure,
    evaluate_demo,
    save_demo_model,
    train_demo_model,
)
from masterkey.training.runtime import deterministic, threads

SETTINGS = DemoSettings.from_section(TINY_DEMO)


@pytest.fixture(scope="module")
def two_runs(published_filters):
    """The tiny demo trained twice from the same seed on the same thread count."""
    with threads(2):
        first = train_demo_model(SETTINGS, seed=3, references=published_filters)
        second = train_demo_model(SETTINGS, seed=3, references=published_filters)
    return first, second


def test_tiny_training_is_deterministic(two_runs):
    a, b = two_runs
    for key, value in a.model.state_dict().items():
        torch.testing.assert_close(value, b.model.state_dict()[key], rtol=0, atol=0)
    assert a.log["train_loss"].tolist() == b.log["train_loss"].tolist()
    assert list(a.log["step"]) == [1, 2, 3] and a.log["val_accuracy"].notna().sum() == 2
    assert a.log["val_accuracy"].notna().tolist() == [False, True, True]  # eval_every 2, and the last step
    # timm's schedule per update: one warm-up update from warmup_lr, then cosine over the other 2
    base = SETTINGS.learning_rate
    expected_lr = [demo_recipe(SETTINGS).warmup_lr, base, base * 0.5]
    assert a.log["lr"].tolist() == pytest.approx(expected_lr, rel=1e-9)
    summary = a.summary
    timing = ("train_seconds", "images_per_second")

    def strip(s):
        return {**s, "train_seconds": 0, "engine": {k: v for k, v in s["engine"].items() if k not in timing}}

    assert strip(summary) == strip(b.summary)
    assert summary["engine"]["effective_batch"] == 8 and summary["engine"]["processes"] == 1
    assert summary["chance_accuracy"] == pytest.approx(1 / 3)
    assert summary["num_val_images"] == 12
    assert summary["classes"] == list(TINY_DEMO["images"]) and summary["threads"] == 2
    assert summary["num_train_images_seen"] == 3 * 8
    for when in ("structure_before", "structure_after"):
        assert summary[when]["num_kernels"] == 1840
        assert 0 < summary[when]["centre_share_mean"] < 1
        assert 0 < summary[when]["max_abs_cosine_median"] < 1
    assert not a.model.training


def test_evaluate_demo_matches_a_direct_computation(two_runs):
    training = two_runs[0]
    with threads(2), deterministic():  # as in training: same threads, same reduction order
        result = evaluate_demo(training.model, training.dataset)
    with torch.no_grad():
        logits = training.model(training.dataset.val_images)
    labels = training.dataset.val_labels
    assert result["val_accuracy"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert result["val_loss"] == pytest.approx(loss, rel=1e-5)
    assert result["val_accuracy"] == training.summary["val_accuracy"]
    assert result["val_loss"] == training.summary["val_loss"]
    assert training.log["val_accuracy"].iloc[-1] == training.summary["val_accuracy"]


def test_saved_demo_model_loads_back(two_runs, tmp_path):
    training = two_runs[0]
    paths = tmp_path / "demo.safetensors", tmp_path / "demo.json", tmp_path / "demo.log.csv"
    meta = save_demo_model(training, SETTINGS, 3, *paths)
    model, loaded = load_checkpoint(paths[0], paths[1])
    assert loaded == {**meta, "reparameterized": False}  # a ConvNeXt has nothing to fuse
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, training.model.state_dict()[key], rtol=0, atol=0)
    assert meta["seed"] == 3 and meta["config"] == SETTINGS.as_dict()
    assert meta["training"]["val_accuracy"] == training.summary["val_accuracy"]
    assert meta["model_kwargs"]["num_classes"] == 3 and meta["num_depthwise_kernels"] == 1840
    import pandas as pd

    assert pd.read_csv(paths[2])["step"].tolist() == [1, 2, 3]
    assert "validation accuracy" in training.report() and "chance 0.333" in training.report()


def test_structure_measures_detect_planted_structure(published_filters):
    """A network whose kernels are the published filters scores 1 on the cosine measure."""
    model = timm.create_model("convnext_atto", pretrained=False)
    with torch.no_grad():
        for stage in model.stages:
            for block in stage.blocks:
                weight = block.conv_dw.weight
                weight[:, 0] = torch.from_numpy(published_filters[np.arange(len(weight)) % 8])
    structure = depthwise_structure(model, published_filters)
    assert structure["max_abs_cosine_median"] == pytest.approx(1.0)
    expected_share = np.mean(centre_share(published_filters))
    assert structure["centre_share_mean"] == pytest.approx(expected_share, rel=0.05)
    assert depthwise_structure(model, published_filters[:, 1:-1, 1:-1]) == {
        "num_kernels": 0, "centre_share_mean": None, "max_abs_cosine_median": None,
    }  # fmt: skip


def test_report_of_a_network_without_kernels_of_the_published_size():
    """A demo architecture without 7x7 kernels (e.g. kernel_sizes=3) has no structure measures."""
    from masterkey.nets.demo import DemoTraining

    missing = {"num_kernels": 0, "centre_share_mean": None, "max_abs_cosine_median": None}
    summary = {"val_accuracy": 0.5, "chance_accuracy": 0.25, "train_seconds": 3,
               "structure_before": missing, "structure_after": missing}
    line = DemoTraining(model=None, dataset=None, log=None, summary=summary).report()
    assert "central 3x3 share n/a -> n/a" in line and "published 8 n/a -> n/a" in line
