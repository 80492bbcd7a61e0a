"""NIFF runs on the demo data: the demo network's recipe and seed, bit-reproducible on the CPU,
the initial network rebuilt exactly, checkpoints that reload, and a reproducible KMR table."""

import pandas as pd
import pytest
import timm
import torch

from conftest import TINY_DEMO
from masterkey.core.config import ModelSpec
from masterkey.core.errors import ConfigError
from masterkey.data.demo import DemoSettings
from masterkey.nets.checkpoints import load_checkpoint
from masterkey.nets.demo import save_demo_model, train_demo_model
from masterkey.niff import NIFFConv2d, niff_layers
from masterkey.niff.analysis import analyse_run, stage_summary
from masterkey.niff.settings import NiffRun, NiffSettings
from masterkey.niff.training import demo_run_settings, save_initial, train_demo_run
from masterkey.training.runtime import threads

DEMO = DemoSettings.from_section(TINY_DEMO)
RUN = NiffRun(name="niff_convnext_atto", architecture="niff_convnext_atto", dataset="demo", baseline="demo")
NIFF = NiffSettings(runs=(RUN.as_dict(),))


@pytest.fixture(scope="module")
def two_runs(published_filters):
    with threads(2):
        return [train_demo_run(RUN, NIFF, DEMO, 3, published_filters) for _ in range(2)]


def test_run_is_bit_reproducible_with_its_kmr_table(two_runs):
    (first, init_a, settings), (second, init_b, _) = two_runs
    assert settings.architecture == "niff_convnext_atto" and settings.steps == DEMO.steps
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(value, second.model.state_dict()[key], rtol=0, atol=0)
    assert first.log["train_loss"].tolist() == second.log["train_loss"].tolist()
    size = (3, DEMO.crop_size, DEMO.crop_size)
    _, frame_a = analyse_run(first.model, init_a, size)
    _, frame_b = analyse_run(second.model, init_b, size)
    pd.testing.assert_frame_equal(frame_a, frame_b, check_exact=True)
    pd.testing.assert_frame_equal(stage_summary(frame_a), stage_summary(frame_b), check_exact=True)
    assert set(frame_a["state"]) == {"trained", "init"}


def test_initial_network_is_the_trained_ones_start(two_runs, published_filters):
    """The rebuilt initial network is what training started from: the same seed gives the same
    weights, and training moved the NIFF MLPs away from them."""
    (training, initial, settings), _ = two_runs
    torch.manual_seed(3)
    fresh = timm.create_model(
        "niff_convnext_atto", num_classes=training.dataset.num_classes, **settings.model_kwargs
    )
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, initial.state_dict()[key], rtol=0, atol=0)
    moved = [
        not torch.equal(trained.mlp_real[0].weight, start.mlp_real[0].weight)
        for (_, trained), (_, start) in zip(niff_layers(training.model), niff_layers(initial), strict=True)
    ]
    assert all(moved) and len(moved) == 12


def test_same_recipe_and_seed_as_the_plain_demo(two_runs, published_filters):
    """Same seed: at initialisation the NIFF network is the plain demo network with its depthwise
    layers swapped (every other weight equal); same budget and data: the same steps and images."""
    from masterkey.nets.demo import create_demo_network

    (training, initial, _), _ = two_runs
    plain_init = create_demo_network(DEMO, training.dataset.num_classes, 3).state_dict()
    niff_init = initial.state_dict()
    shared = [key for key in plain_init if ".conv_dw." not in key]
    assert len(shared) > 100 and all(torch.equal(plain_init[k], niff_init[k]) for k in shared)
    assert not any(".conv_dw.weight" in key for key in niff_init)
    with threads(2):
        plain = train_demo_model(DEMO, 3, published_filters)
    assert list(training.log["step"]) == list(plain.log["step"])
    assert training.summary["num_train_images_seen"] == plain.summary["num_train_images_seen"]
    assert not any(isinstance(m, NIFFConv2d) for m in plain.model.modules())


def test_checkpoints_reload_with_input_size(two_runs, tmp_path):
    (training, initial, settings), _ = two_runs
    paths = [tmp_path / name for name in ("w.safetensors", "w.json", "log.csv", "i.safetensors", "i.json")]
    meta = save_demo_model(training, settings, 3, *paths[:3], name=RUN.name)
    init_meta = save_initial(initial, meta, *paths[3:])
    assert meta["timm_name"] == "niff_convnext_atto" and meta["input_size"] == [
        3,
        DEMO.crop_size,
        DEMO.crop_size,
    ]
    assert init_meta["state"] == "init" and "training" not in init_meta
    model, loaded = load_checkpoint(paths[0], paths[1])
    x = torch.randn(2, 3, DEMO.crop_size, DEMO.crop_size)
    torch.testing.assert_close(model(x), training.model(x), rtol=0, atol=0)
    assert loaded["model_kwargs"]["niff_coordinates"] == "index"
    start, _ = load_checkpoint(paths[3], paths[4])
    torch.testing.assert_close(start(x), initial(x), rtol=0, atol=0)


def test_demo_run_settings_take_niff_options():
    niff = NiffSettings(coordinates="cycles", padding="zeros", runs=(RUN.as_dict(),))
    settings = demo_run_settings(RUN, niff, DEMO)
    assert settings.model_kwargs == {
        "niff_coordinates": "cycles",
        "niff_padding": "zeros",
        "niff_route": "rfft",
    }
    plain = demo_run_settings(NiffRun(name="plain", architecture="convnext_atto"), niff, DEMO)
    assert plain.model_kwargs == {}
    model = timm.create_model(settings.architecture, num_classes=3, **settings.model_kwargs)
    assert {(m.coordinates, m.padding) for _, m in niff_layers(model)} == {("cycles", "zeros")}


@pytest.mark.parametrize(
    "runs, models, key, message",
    [
        ([{"name": "demo", "architecture": "niff_convnext_atto"}], [], "niff.runs[0].name", "demo model"),
        ([{"name": "a", "architecture": "niff_convnext_atto"}] * 2, [], "niff.runs[1].name", "used twice"),
        ([{"name": "a", "architecture": "no_such_net"}], [], "niff.runs[0].architecture", "neither"),
        (
            [{"name": "a", "architecture": "convnext_atto", "dataset": "cifar10"}],
            [],
            "niff.runs[0].recipe",
            "recipe",
        ),
        (
            [{"name": "a", "architecture": "convnext_atto", "baseline": "b"}],
            [],
            "niff.runs[0].baseline",
            "'b'",
        ),
        (
            [
                {
                    "name": "a",
                    "architecture": "convnext_atto",
                    "dataset": "imagenet",
                    "input_size": 64,
                    "recipe": {"steps": 1},
                }
            ],
            [],
            "niff.runs[0].input_size",
            "architecture's input size",
        ),
    ],
)
def test_bad_runs_are_rejected_naming_the_key(runs, models, key, message):
    with pytest.raises(ConfigError) as err:
        NiffSettings(runs=tuple(runs)).run_list(models)
    assert key in str(err.value) and message in str(err.value)


def test_baseline_may_be_a_model_or_a_plain_run_never_a_niff_network():
    runs = ({"name": "n", "architecture": "niff_convnext_atto", "baseline": "demo"},
            {"name": "p", "architecture": "convnext_atto"},
            {"name": "m", "architecture": "niff_convnext_atto", "baseline": "p"})  # fmt: skip
    assert [(r.name, r.baseline) for r in NiffSettings(runs=runs).run_list(["demo"])] == [
        ("n", "demo"), ("p", None), ("m", "p")
    ]  # fmt: skip
    for baseline in ("n", "niff_convnext_atto"):
        bad = (*runs, {"name": "x", "architecture": "niff_convnext_atto", "baseline": baseline})
        with pytest.raises(ConfigError, match=r"niff.runs\[3\].baseline.*NIFF network"):
            NiffSettings(runs=bad).run_list(["demo", "niff_convnext_atto"])


def test_demo_runs_take_no_recipe_and_listed_runs_no_weights():
    demo_recipe = ({"name": "n", "architecture": "niff_convnext_atto", "recipe": {"steps": 5}},)
    with pytest.raises(ConfigError, match=r"niff.runs\[0\].recipe.*demo network's recipe"):
        NiffSettings(runs=demo_recipe).run_list([])
    run = ({"name": "n", "architecture": "niff_convnext_atto"},)
    for spec in (ModelSpec("n", weights="x.safetensors"), ModelSpec("n", model_kwargs={"drop_rate": 0.1})):
        with pytest.raises(ConfigError, match="trained by niff.runs"):
            NiffSettings(runs=run).run_list([spec])


def test_cifar10_run_task_writes_trained_and_initial_networks(tmp_path, tiny_cifar10):
    """The torchrun task of CIFAR-10 / ImageNet runs, in one CPU process: the EMA is stored and its
    final accuracy on the test batch recorded; the initial checkpoint is the seeded network."""
    from masterkey.niff.training import train_run_task
    from masterkey.training.engine import RunSettings

    recipe = {"steps": 2, "batch_size": 4, "ema_decay": 0.9, "eval_every": 1, "warmup_steps": 0}
    run = NiffRun(name="n", architecture="niff_convnext_atto", dataset="cifar10", recipe=recipe)
    outputs = {key: str(tmp_path / name) for key, name in (
        ("weights", "n.safetensors"), ("meta", "n.json"), ("init_weights", "n.init.safetensors"),
        ("init_meta", "n.init.json"), ("metrics", "n.metrics.csv"))}  # fmt: skip
    training = RunSettings(device="cpu", workers=0).as_dict()
    with threads(2):
        train_run_task(run=run.as_dict(), niff=NIFF.as_dict(), training=training, seed=5,
                       paths={"cifar10": str(tiny_cifar10.root)}, run_dir=str(tmp_path / "run"),
                       outputs=outputs)  # fmt: skip
    model, meta = load_checkpoint(outputs["weights"], outputs["meta"])
    initial, init_meta = load_checkpoint(outputs["init_weights"], outputs["init_meta"])
    log = pd.read_csv(outputs["metrics"])
    assert meta["weights"] == "ema" and meta["input_size"] == [3, 32, 32] and meta["dataset"] == "cifar10"
    assert meta["training"]["val_accuracy"] == log["ema_val_accuracy"].iloc[-1]
    assert 0 <= meta["training"]["val_accuracy"] <= 1 and list(log["step"]) == [1, 2]
    assert init_meta["state"] == "init" and "weights" not in init_meta and "training" not in init_meta
    torch.manual_seed(5)
    fresh = timm.create_model("niff_convnext_atto", num_classes=10, **NIFF.model_kwargs())
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, initial.state_dict()[key], rtol=0, atol=0)
    assert not (tmp_path / "run").exists()  # the resumable state is removed once the run is saved
