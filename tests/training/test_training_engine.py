"""The training engine (masterkey.training.engine): reproducible, resumable and data-parallel runs,
the timm objects of a Recipe, and the batches of StepBatches.

The runs are :func:`engine_tasks.run` (a tiny ConvNeXt, 64 random 32x32 images with a random crop
and flip, 6 AdamW updates of batch 16 on one CPU thread).  Runs that must happen in other
processes (two straight runs, the killed runs, the 2-process run) are started once per module;
the runs that compare with them happen in this process.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys

import pandas as pd
import pytest
import timm.data
import timm.loss
import timm.utils
import torch
from engine_tasks import HERE, RECIPE, run, tiny_model
from torch import nn

from conftest import make_image
from masterkey.core.errors import ConfigError, UserError
from masterkey.training.distributed import launch
from masterkey.training.engine import CHECKPOINT, METRICS
from masterkey.training.recipe import Recipe
from masterkey.training.sampling import StepBatches, derive_seed

SGD = {"optimizer": "sgd", "learning_rate": 2e-4}
"""Recipe keys of the runs that check gradient sizes: unlike AdamW, SGD's update scales with the
gradient, so a wrong 1/accumulation or 1/processes factor shows."""


def load(path) -> dict:
    return torch.load(path, weights_only=True)


def assert_identical(first: dict, second: dict) -> None:
    """Two state dicts with the same keys and bit-identical tensors."""
    assert first.keys() == second.keys()
    differing = [name for name in first if not torch.equal(first[name], second[name])]
    assert not differing, f"tensors differ: {differing}"


def assert_close(first: dict, second: dict, atol: float = 1e-6) -> None:
    assert first.keys() == second.keys()
    for name in first:
        torch.testing.assert_close(first[name], second[name], atol=atol, rtol=0, msg=f"{name} differs")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs in two fresh processes at once, each: a straight run (``a``, ``b``: checkpoints every 2
    updates), then a run with the same settings that SIGKILLs itself after update 4 (``kill4``) or
    3 (``kill3``).  Returns the folder of the run directories, ``a.pt`` and ``b.pt``."""
    root = tmp_path_factory.mktemp("engine")
    jobs = {
        "first": [{"out": "a.pt", "run_dir": "a", "checkpoint_every": 2},
                  {"run_dir": "kill4", "checkpoint_every": 2, "kill_at": 4}],
        "second": [{"out": "b.pt", "run_dir": "b", "checkpoint_every": 2},
                   {"run_dir": "kill3", "checkpoint_every": 2, "kill_at": 3}],
    }  # fmt: skip
    processes = {}
    for name, job in jobs.items():
        with open(root / f"{name}.log", "w") as log:
            command = [sys.executable, str(HERE / "engine_tasks.py"), json.dumps(job)]
            processes[name] = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    for name, process in processes.items():
        process.wait(timeout=300)
        output = (root / f"{name}.log").read_text()
        assert process.returncode == -signal.SIGKILL, f"{name}: exit {process.returncode}\n{output[-3000:]}"
    return root


@pytest.fixture(scope="module")
def resumed(runs):
    """The killed runs, resumed in this process: ``{kill_at: (state dicts, the TrainingRun)}``."""
    results = {}
    for kill_at in (4, 3):
        run_dir = runs / f"kill{kill_at}"
        result = run(str(runs / f"resumed{kill_at}.pt"), str(run_dir), checkpoint_every=2)
        results[kill_at] = load(runs / f"resumed{kill_at}.pt"), result
    return results


@pytest.fixture(scope="module")
def sgd_reference(tmp_path_factory):
    """One process, SGD (:data:`SGD`), no accumulation: state dicts and the metrics log."""
    run_dir = tmp_path_factory.mktemp("sgd_reference")
    run(str(run_dir / "weights.pt"), str(run_dir), recipe=SGD)
    return load(run_dir / "weights.pt"), pd.read_csv(run_dir / METRICS)


def test_runs_in_separate_processes_are_bit_identical(runs):
    first, second = load(runs / "a.pt"), load(runs / "b.pt")
    assert_identical(first["model"], second["model"])
    assert_identical(first["ema"], second["ema"])
    assert (runs / "a" / METRICS).read_text() == (runs / "b" / METRICS).read_text()
    initial = tiny_model().state_dict()
    assert not any(torch.equal(initial[name], value) for name, value in first["model"].items())  # it trained


def test_the_log_follows_the_schedule(runs):
    log = pd.read_csv(runs / "a" / METRICS)
    assert log["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert log["epoch"].tolist() == [0, 0, 0, 0, 1, 1]  # 64 samples: 4 updates of 16 per epoch
    assert log["images"].tolist() == [16 * step for step in range(1, 7)]
    lr, warmup_lr = RECIPE["learning_rate"] * 16 / 32, 1e-6  # linear rule; the Recipe's warm-up start
    # warm-up over 2 updates, then cosine over the remaining 4 (warmup_prefix)
    cosine = [0.5 * lr * (1 + math.cos(math.pi * (t - 2) / 4)) for t in range(6)]
    expected = [warmup_lr + t * (lr - warmup_lr) / 2 if t < 2 else cosine[t] for t in range(6)]
    assert log["lr"].tolist() == pytest.approx(expected, rel=1e-12)
    evaluated = log["step"][log["eval_loss"].notna()].tolist()
    assert evaluated == [3, 6] and log["ema_eval_loss"].notna().tolist() == log["eval_loss"].notna().tolist()
    assert log["train_loss"].between(0.5, 3).all()


@pytest.mark.parametrize(("kill_at", "checkpoint_at"), [(4, 4), (3, 2)])
def test_a_killed_run_resumes_exactly(runs, resumed, kill_at, checkpoint_at):
    run_dir = runs / f"kill{kill_at}"
    weights, result = resumed[kill_at]
    assert result.summary["resumed_at"] == checkpoint_at  # the last checkpoint before the kill
    straight = load(runs / "a.pt")
    assert_identical(straight["model"], weights["model"])
    assert_identical(straight["ema"], weights["ema"])
    assert (runs / "a" / METRICS).read_text() == (run_dir / METRICS).read_text()
    assert pd.read_csv(run_dir / METRICS)["step"].tolist() == [1, 2, 3, 4, 5, 6]
    assert torch.load(run_dir / CHECKPOINT, weights_only=False)["step"] == 4  # the last one written: 2, 4


def test_two_processes_equal_one(sgd_reference, tmp_path, capfd, monkeypatch):
    paths = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))  # torchrun's workers import engine_tasks
    out = str(tmp_path / "rank{rank}.pt")
    launch("engine_tasks:run", {"out": out, "run_dir": str(tmp_path), "recipe": SGD, "checkpoint_every": 2},
           nproc=2, threads=2)  # fmt: skip
    printed = capfd.readouterr().out
    assert "torch.distributed.run --standalone --nproc-per-node=2" in printed
    sizes = "6 updates (4 per epoch of 64 samples) on 2 process(es), cpu"
    batch = "effective batch 16 = 8 per process x 2 process(es) x 1 accumulation"
    rule = "lr = 0.0002 x 16/32 = 0.0001 (linear scaling rule)"
    assert f"{sizes}; {batch}; {rule}" in printed, printed[-3000:]
    rank0, rank1 = load(tmp_path / "rank0.pt"), load(tmp_path / "rank1.pt")
    assert_identical(rank0["model"], rank1["model"])  # DDP keeps the replicas in step
    reference, log = sgd_reference
    assert_close(rank0["model"], reference["model"])
    assert_close(rank0["ema"], reference["ema"])
    parallel = pd.read_csv(tmp_path / METRICS)
    assert parallel["step"].tolist() == log["step"].tolist() and parallel["lr"].tolist() == log["lr"].tolist()
    for column in ("train_loss", "eval_loss"):
        assert parallel[column].tolist() == pytest.approx(log[column].tolist(), abs=1e-6, nan_ok=True)


@pytest.mark.parametrize("recipe", [{}, SGD], ids=["adamw", "sgd"])
def test_gradient_accumulation_equals_the_whole_batch(runs, sgd_reference, tmp_path, recipe):
    """Two micro-batches of 8, each loss divided by 2, sum to the gradient of the mean over 16:
    equal up to float rounding (not bit for bit: the sums are taken in another order)."""
    whole = load(runs / "a.pt") if not recipe else sgd_reference[0]
    whole_log = pd.read_csv(runs / "a" / METRICS) if not recipe else sgd_reference[1]
    result = run(str(tmp_path / "weights.pt"), str(tmp_path), recipe={**recipe, "accumulation": 2})
    assert result.summary["batch_per_process"] == 8 and result.summary["effective_batch"] == 16
    accumulated = load(tmp_path / "weights.pt")
    assert_close(accumulated["model"], whole["model"])
    assert_close(accumulated["ema"], whole["ema"])
    log = pd.read_csv(tmp_path / METRICS)
    assert log["train_loss"].tolist() == pytest.approx(whole_log["train_loss"].tolist(), abs=1e-6)


def test_loader_workers_do_not_change_the_result(runs, tmp_path):
    """Each sample's augmentation is seeded by its (epoch, index): 2 loader processes give the same
    weights as loading in the training process."""
    run(str(tmp_path / "weights.pt"), workers=2)
    assert_identical(load(tmp_path / "weights.pt")["model"], load(runs / "a.pt")["model"])


def test_frozen_parameters_stay_and_the_others_train():
    frozen_prefixes = ("stem.", "stages.0.")
    initial = tiny_model().state_dict()
    result = run(freeze=frozen_prefixes, recipe={"steps": 2})
    names = [name for name, _ in result.model.named_parameters()]
    frozen = [name for name in names if name.startswith(frozen_prefixes)]
    assert frozen and len(frozen) < len(names)
    trained = result.model.state_dict()
    for name in names:
        assert torch.equal(trained[name], initial[name]) == (name in frozen), name
    ema = result.ema.state_dict()
    assert all(torch.equal(ema[name], initial[name]) for name in frozen)


def test_the_log_shows_the_base_lr_under_layer_decay(tmp_path):
    run(run_dir=str(tmp_path), recipe={"steps": 2, "layer_decay": 0.5})
    lr, warmup_lr = RECIPE["learning_rate"] * 16 / 32, 1e-6
    logged = pd.read_csv(tmp_path / METRICS)["lr"].tolist()  # not the lowest layer's 1/32 of it
    # 2 updates: the warm-up is cut to 1 so that the peak rate is reached
    assert logged == pytest.approx([warmup_lr, lr], rel=1e-12)


# -- Recipe -----------------------------------------------------------------------------------------


def test_recipe_optimizer_and_linear_lr_rule():
    recipe = Recipe.from_section({"steps": 10, "batch_size": 512, "learning_rate": 4e-3, "lr_base_size": 256})
    assert recipe.lr() == pytest.approx(8e-3)
    assert "lr = 0.004 x 512/256 = 0.008 (linear scaling rule)" in recipe.describe(4)
    assert "effective batch 512 = 128 per process x 4 process(es) x 1 accumulation" in recipe.describe(4)
    model = tiny_model()
    model.stem.requires_grad_(False)
    optimizer = recipe.create_optimizer(model)
    assert type(optimizer) is torch.optim.AdamW
    groups = optimizer.param_groups
    assert [group["lr"] for group in groups] == pytest.approx([8e-3] * len(groups))
    assert sorted({group["weight_decay"] for group in groups}) == [0.0, 0.05]  # no decay: biases, norms
    given = {id(p) for group in groups for p in group["params"]}
    assert given == {id(p) for p in model.parameters() if p.requires_grad}
    assert Recipe(steps=1, learning_rate=0.1).lr() == 0.1  # no lr_base_size: no scaling
    assert "no scaling" in Recipe(steps=1, learning_rate=0.1).describe(1)


def test_recipe_layer_decay_and_warmup_cosine_schedule():
    recipe = Recipe.from_section({"steps": 100, "batch_size": 512, "learning_rate": 4e-3, "lr_base_size": 256,
                                  "warmup_steps": 10, "min_lr": 1e-5, "layer_decay": 0.5})  # fmt: skip
    optimizer = recipe.create_optimizer(tiny_model())
    scales = sorted({group["lr_scale"] for group in optimizer.param_groups})
    assert len(scales) > 2 and scales[-1] == 1.0 and scales[-2] == 0.5  # the head, the layer below it
    scheduler = recipe.create_scheduler(optimizer, total_steps=100, steps_per_epoch=10)
    lr, warmup_lr, min_lr = 8e-3, 1e-6, 1e-5
    for t in (0, 5, 10, 50, 99):
        scheduler.step_update(t)
        if t < 10:  # linear warm-up from warmup_lr
            expected = warmup_lr + t * (lr - warmup_lr) / 10
        else:  # cosine from the peak right after the warm-up over the remaining 90 updates
            expected = min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * (t - 10) / 90))
        for group in optimizer.param_groups:
            assert group["lr"] == pytest.approx(expected * group["lr_scale"], rel=1e-9), t
    warm_epochs = Recipe(steps=100, warmup_epochs=0.5, learning_rate=1.0, warmup_lr=0.0)
    optimizer = warm_epochs.create_optimizer(nn.Linear(2, 2))
    scheduler = warm_epochs.create_scheduler(optimizer, total_steps=100, steps_per_epoch=10)
    scheduler.step_update(1)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1 / 5)  # 0.5 epochs of 10 updates: 5 warm-up


@pytest.mark.parametrize(("mixup", "cutmix"), [(0.0, 0.0), (0.8, 0.0), (0.0, 1.0), (0.8, 1.0)])
def test_recipe_mixup_and_loss(mixup, cutmix):
    recipe = Recipe(steps=1, mixup=mixup, cutmix=cutmix, smoothing=0.2)
    mix = recipe.create_mixup(num_classes=4)
    loss = recipe.create_loss(mix)
    if mixup or cutmix:
        assert isinstance(mix, timm.data.Mixup) and isinstance(loss, timm.loss.SoftTargetCrossEntropy)
        assert (mix.mixup_alpha, mix.cutmix_alpha, mix.label_smoothing) == (mixup, cutmix, 0.2)
        _, targets = mix(torch.randn(4, 3, 8, 8), torch.arange(4))
        assert targets.shape == (4, 4)  # soft targets
    else:
        assert mix is None
        assert isinstance(loss, timm.loss.LabelSmoothingCrossEntropy) and loss.smoothing == 0.2


def test_recipe_plain_loss_ema_and_transform():
    assert type(Recipe(steps=1, smoothing=0.0).create_loss(None)) is nn.CrossEntropyLoss
    assert Recipe(steps=1).create_ema(nn.Linear(2, 2)) is None
    model = nn.Linear(2, 2)
    ema = Recipe(steps=1, ema_decay=0.99).create_ema(model)
    assert isinstance(ema, timm.utils.ModelEmaV3) and ema.decay == 0.99
    assert ema.module is not model and torch.equal(ema.module.weight, model.weight)
    recipe = Recipe.from_section({"steps": 1, "scale": [0.5, 1.0], "reprob": 0.25, "color_jitter": 0.4})
    assert recipe.scale == (0.5, 1.0)
    transform = recipe.create_transform(32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    image = transform(make_image(0, 40, 48))
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32


def test_recipe_sizes_and_their_errors():
    recipe = Recipe.from_section({"steps": 10, "batch_size": 24, "accumulation": 2})
    assert recipe.micro_batch(1) == 12 and recipe.micro_batch(3) == 4 and recipe.micro_batch(4) == 3
    with pytest.raises(ConfigError, match=r"recipe.batch_size: 24 does not split into 5 process\(es\) x 2"):
        recipe.micro_batch(5)
    with pytest.raises(ConfigError, match="not a positive multiple of accumulation=4"):
        Recipe.from_section({"steps": 10, "batch_size": 6, "accumulation": 4})
    for lengths in ({}, {"steps": 10, "epochs": 2}):
        with pytest.raises(ConfigError, match="give exactly one of steps and epochs"):
            Recipe.from_section(lengths)
    assert Recipe(epochs=2.5).total_steps(steps_per_epoch=4) == 10
    assert Recipe(epochs=0.1).total_steps(steps_per_epoch=4) == 1  # at least one update
    assert Recipe(steps=7).total_steps(steps_per_epoch=4) == 7


# -- StepBatches ------------------------------------------------------------------------------------


def updates(sampler: StepBatches):
    """The sampler's keys grouped per update: lists of ``accumulation`` micro-batches."""
    batches, updates = iter(sampler), sampler.steps - sampler.start_step
    return [[next(batches) for _ in range(sampler.accumulation)] for _ in range(updates)]


@pytest.mark.parametrize("accumulation", [1, 2])
def test_step_batches_split_the_one_process_batch(accumulation):
    size, batch, steps = 70, 16, 9  # 4 updates per epoch, 6 samples left out of each epoch
    whole = updates(StepBatches(size, batch, accumulation, 0, 1, seed=7, steps=steps))
    shares = [updates(StepBatches(size, batch, accumulation, r, 2, seed=7, steps=steps)) for r in (0, 1)]
    for step, update in enumerate(whole):
        for part, micro in enumerate(update):
            assert len(micro) == batch // accumulation
            first, second = shares[0][step][part], shares[1][step][part]
            assert len(first) == len(second) == batch // accumulation // 2
            assert sorted(first + second) == sorted(micro)  # together: the 1-process micro-batch
    for epoch in range(3):  # an epoch: distinct samples, in a new order each epoch
        keys = [key for update in whole[4 * epoch : 4 * epoch + 4] for micro in update for key in micro]
        assert {e for e, _ in keys} == {epoch}
        indices = [i for _, i in keys]
        assert len(indices) == len(set(indices)) == (64 if epoch < 2 else 16) and max(indices) < size
    orders = [[i for micro in whole[4 * epoch] for _, i in micro] for epoch in range(3)]
    assert orders[0] != orders[1] != orders[2]


def test_step_batches_resume_with_the_tail():
    full = list(StepBatches(64, 16, 2, 1, 2, seed=3, steps=10))
    for start in (1, 4, 5, 9, 10):
        tail = StepBatches(64, 16, 2, 1, 2, seed=3, steps=10, start_step=start)
        assert len(tail) == 2 * (10 - start) and list(tail) == full[2 * start :]
    other_seed = StepBatches(64, 16, 2, 1, 2, seed=4, steps=10)
    assert list(other_seed) != full
    with pytest.raises(ValueError, match="does not split"):
        StepBatches(64, 16, 3, 0, 1, seed=3, steps=1)
    with pytest.raises(ValueError, match="smaller than one batch"):
        StepBatches(8, 16, 1, 0, 1, seed=3, steps=1)


def test_derived_seeds_differ_per_key_tuple():
    """Tuples that differ only by trailing zeros, or by length, give other seeds (the epoch's order,
    (seed, epoch), is not the augmentation seed of sample 0, (seed, epoch, 0))."""
    keys = [(3,), (3, 0), (3, 0, 0), (3, 1), (3, 1, 0), (3, 1, 0, 0), (3, 1, 0, 0, 0), (3, 0, 1), (4, 1)]
    seeds = [derive_seed(*k) for k in keys]
    assert len(set(seeds)) == len(keys) and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(3, 1, 2) == derive_seed(3, 1, 2)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    """A run directory left by a killed run is resumed only by the same run: another recipe (here a
    longer schedule) would continue with the old optimiser and schedule, so it stops with the fix."""
    run(run_dir=str(tmp_path), recipe={"steps": 3}, checkpoint_every=2)  # leaves the update-2 checkpoint
    assert (tmp_path / CHECKPOINT).exists()
    with pytest.raises(UserError, match=f"belongs to another run.*delete {tmp_path}"):
        run(run_dir=str(tmp_path), recipe={"steps": 4}, checkpoint_every=2)
