"""Training runs of the NIFF study ([D]): a network trained from scratch, and its initial state.

Each run (:class:`~.settings.NiffRun`) trains an architecture - ``niff_<ConvNeXt>`` or a plain
one, the baseline - through the project's training engine and stores two checkpoints: the trained
network and the same network at initialisation (same seed), which the kernel mass ratio analysis
compares ([D]: an untrained NIFF is already centred, so only the change from initialisation says
what training learned).

* ``dataset: demo`` (:func:`train_demo_run`): exactly the demo network's recipe, budget, data
  order and seed (:func:`masterkey.nets.demo.train_demo_model`), on the CPU, so that the NIFF
  network and the plain demo ConvNeXt differ only in their depthwise layers;
* ``cifar10`` / ``imagenet`` (:func:`train_run_task`, a torchrun task): the run's recipe with
  timm's training transform at ``input_size``; CIFAR-10 is evaluated on its test batch,
  ImageNet on every 5th image of the ``imagenet_val`` cache while training.

docs/methods.md section 7.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import timm
from torch import nn

from ..data.demo import DemoSettings
from ..data.preprocessing import preprocessing_for_model
from ..nets.checkpoints import model_metadata, save_checkpoint, save_trained
from ..nets.demo import DemoTraining, create_demo_network, train_demo_model
from ..nets.niff_convnext import is_niff_architecture, plain_architecture
from ..training.datasets import cifar10_training_data, imagenet_training_data
from ..training.distributed import distributed_context, launch
from ..training.engine import RunSettings, train
from ..training.recipe import Recipe
from ..training.runtime import deterministic
from ..training.sampling import seed_everything
from .settings import NiffRun, NiffSettings

__all__ = [
    "run_model_kwargs",
    "demo_run_settings",
    "train_demo_run",
    "save_initial",
    "train_run_task",
    "launch_run",
]

CIFAR10_SIZE = 32


def run_model_kwargs(run: NiffRun, niff: NiffSettings, base: dict | None = None) -> dict:
    """``timm.create_model`` options of a run: ``base`` plus the NIFF layer's options for a
    ``niff_*`` architecture."""
    return {**(base or {}), **(niff.model_kwargs() if is_niff_architecture(run.architecture) else {})}


def demo_run_settings(run: NiffRun, niff: NiffSettings, demo: DemoSettings) -> DemoSettings:
    """The demo settings with the run's architecture (and input size, when it sets one)."""
    return dataclasses.replace(
        demo,
        architecture=run.architecture,
        model_kwargs=run_model_kwargs(run, niff, demo.model_kwargs),
        crop_size=run.input_size or demo.crop_size,
    )


def train_demo_run(run: NiffRun, niff: NiffSettings, demo: DemoSettings, seed: int, references: np.ndarray,
                   run_dir=None) -> tuple[DemoTraining, nn.Module, DemoSettings]:  # fmt: skip
    """Train a demo-dataset run like the demo network; returns ``(training, initial network,
    settings)``, the initial network rebuilt from the same seed (:func:`create_demo_network`)."""
    settings = demo_run_settings(run, niff, demo)
    training = train_demo_model(settings, seed, references, run_dir=run_dir)
    with deterministic():
        initial = create_demo_network(settings, training.dataset.num_classes, seed).eval()
    return training, initial, settings


def save_initial(initial: nn.Module, trained_meta: dict, weights_path, meta_path) -> dict:
    """The initial network as a checkpoint whose sidecar is the trained one's, marked ``state:
    init`` (same architecture, options, input size and seed)."""
    meta = {k: v for k, v in trained_meta.items() if k not in ("sha256", "training", "weights")}
    meta.update(state="init", source=f"{trained_meta['source']}; the network before training (same seed)")
    return save_checkpoint(initial, meta, weights_path, meta_path)


def _data(run: NiffRun, recipe: Recipe, paths: dict, input_size: int, workers: int):
    """``(training set, num_classes, evaluation)`` of a CIFAR-10 or ImageNet run."""
    if run.dataset == "cifar10":
        return cifar10_training_data(paths.get("cifar10"), recipe, input_size, workers)
    return imagenet_training_data(plain_architecture(run.architecture), recipe, paths.get("imagenet_train"),
                                  paths.get("eval_cache"))  # fmt: skip


def run_input_size(run: NiffRun) -> int:
    """The run's resolution: its ``input_size``, else 32 on CIFAR-10, else the architecture's."""
    if run.input_size:
        return run.input_size
    if run.dataset == "cifar10":
        return CIFAR10_SIZE
    return preprocessing_for_model(plain_architecture(run.architecture)).input_size[-1]


def train_run_task(*, run: dict, niff: dict, training: dict, paths: dict, seed: int, run_dir: str,
                   outputs: dict) -> None:  # fmt: skip
    """A CIFAR-10 or ImageNet run on every torchrun process (:func:`launch_run`); rank 0 writes
    ``outputs``: ``weights``/``meta`` (the trained network, its EMA when the recipe keeps one),
    ``init_weights``/``init_meta`` and ``metrics`` (CSV).  ``paths``: ``cifar10``,
    ``imagenet_train``, ``eval_cache`` as configured."""
    run_, niff_ = NiffRun.from_section(run), NiffSettings.from_section(niff)
    recipe = Recipe.from_section(run_.recipe)
    settings = RunSettings.from_section(training)
    context = distributed_context(settings.device)
    size = run_input_size(run_)
    dataset, num_classes, evaluation = _data(run_, recipe, paths, size, settings.workers)
    kwargs = run_model_kwargs(run_, niff_, {"num_classes": num_classes})
    seed_everything(seed)
    model = timm.create_model(run_.architecture, pretrained=False, drop_path_rate=recipe.drop_path, **kwargs)
    source = f"trained from scratch on {run_.dataset} (rule train_niff)"
    meta = model_metadata(model, run_.name, source=source, model_kwargs=kwargs)
    meta.update(input_size=[3, size, size], seed=seed, dataset=run_.dataset)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result = train(
        model, dataset, recipe, num_classes=num_classes, seed=seed + 1, run_dir=run_dir,
        settings=settings, evaluation=evaluation, context=context, desc=f"train {run_.name}",
    )  # fmt: skip
    if not context.is_main:
        return
    column = "ema_val_accuracy" if result.ema is not None else "val_accuracy"  # the engine's last evaluation
    final = {"val_accuracy": float(result.log[column].iloc[-1])} if column in result.log else {}
    saved = save_trained(result, meta, outputs, extra_training=final)
    model.load_state_dict(initial)
    save_initial(model, saved, outputs["init_weights"], outputs["init_meta"])
    shutil.rmtree(run_dir, ignore_errors=True)


def launch_run(run: dict, niff: dict, training: dict, paths: dict, seed: int, run_dir: str, outputs: dict,
               threads: int) -> None:  # fmt: skip
    """A rule script's call: :func:`train_run_task` on the runtime's torchrun processes."""
    nproc = RunSettings.from_section(training).num_processes()
    params = dict(
        run=run, niff=niff, training=training, paths=paths, seed=seed, run_dir=run_dir, outputs=outputs
    )
    launch("masterkey.niff.training:train_run_task", params, nproc, threads=threads)
