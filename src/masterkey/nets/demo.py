"""The embedded demo network: a small timm ConvNeXt trained from scratch on the demo dataset.

Deterministic from the config seed on a given machine type, torch version and thread count
(:func:`masterkey.training.runtime.deterministic`; initialisation from ``seed``, data order and
augmentation from ``seed + 1``).  Recipe (:func:`demo_recipe`): AdamW with linear warm-up and
cosine decay, label smoothing 0.1, through the project's training engine
(:func:`masterkey.training.engine.train`); the held-out crops are evaluated every ``eval_every``
updates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import timm
import torch
from torch import nn

from ..core.io import atomic_paths
from ..data.demo import DemoDataset, DemoSettings, demo_dataset
from ..data.training_sets import DemoCrops
from ..kernels.conventions import centre_share
from ..kernels.similarity import max_abs_cosine
from ..training.engine import RunSettings, TrainingRun, train
from ..training.evaluate import MeanLoss, TopK, evaluate
from ..training.recipe import Recipe
from ..training.runtime import deterministic
from .checkpoints import model_metadata, save_checkpoint
from .depthwise import find_depthwise_convs

__all__ = [
    "DemoTraining",
    "depthwise_structure",
    "evaluate_demo",
    "demo_recipe",
    "create_demo_network",
    "train_on_demo",
    "train_demo_model",
    "save_demo_model",
]


@dataclass
class DemoTraining:
    """Result of :func:`train_demo_model`: the trained ``model`` (eval mode), its ``dataset``, the
    per-step ``log`` and the ``summary`` stored in the checkpoint's sidecar."""

    model: nn.Module
    dataset: DemoDataset
    log: pd.DataFrame
    summary: dict

    def report(self) -> str:
        """One line: accuracy against chance, and how the kernels' structure changed."""
        summary = self.summary
        before, after = summary["structure_before"], summary["structure_after"]

        def change(measure: str) -> str:  # None where the network has no kernel of the references' size
            values = [before[measure], after[measure]]
            return " -> ".join("n/a" if v is None else f"{v:.3f}" for v in values)

        return (
            f"validation accuracy {summary['val_accuracy']:.3f} (chance {summary['chance_accuracy']:.3f}); "
            f"central 3x3 share {change('centre_share_mean')}; "
            f"median max |cos| to published 8 {change('max_abs_cosine_median')}; {summary['train_seconds']} s"
        )


def depthwise_structure(model: nn.Module, references: np.ndarray) -> dict:
    """How structured the depthwise kernels are, over kernels of the references' size.

    ``centre_share_mean``: mean share of ``sum |h|`` in the central 3x3;
    ``max_abs_cosine_median``: median over kernels of the largest |cosine|
    (centred kernels) to the reference filters (the published 8).
    """
    k = references.shape[-1]
    kernels = [
        layer.module.weight.detach().cpu().numpy()[:, 0]
        for layer in find_depthwise_convs(model)
        if tuple(layer.module.kernel_size) == (k, k)
    ]
    if not kernels:
        return {"num_kernels": 0, "centre_share_mean": None, "max_abs_cosine_median": None}
    stacked = np.concatenate(kernels).astype(np.float64)
    return {
        "num_kernels": int(len(stacked)),
        "centre_share_mean": float(np.nanmean(centre_share(stacked))),
        "max_abs_cosine_median": float(np.nanmedian(max_abs_cosine(stacked, references))),
    }


def evaluate_demo(model: nn.Module, dataset: DemoDataset) -> dict:
    """``val_accuracy`` (top-1) and ``val_loss`` (mean cross-entropy) on the held-out crops, on the
    device the model is on."""
    metrics = [
        TopK((1,), names=("val_accuracy",)),
        MeanLoss(partial(nn.functional.cross_entropy, reduction="sum"), "val_loss", reduction="sum"),
    ]
    device = next(model.parameters()).device
    result = evaluate(model, dataset.eval_set(), metrics, batch_size=256, device=device, channels_last=False)
    return {"val_accuracy": result["val_accuracy"], "val_loss": result["val_loss"]}


def demo_recipe(settings: DemoSettings, **overrides) -> Recipe:
    """The demo's training recipe: AdamW (``learning_rate``, ``weight_decay``; none on biases and
    norms), linear warm-up over ``warmup_steps`` then cosine decay, label smoothing 0.1, batches of
    ``batch_size`` random crops, evaluation every ``eval_every`` updates.  ``overrides`` replace
    fields (the frozen-filter fine-tuning changes the length and the rate)."""
    fields = dict(steps=settings.steps, batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                  weight_decay=settings.weight_decay, warmup_steps=settings.warmup_steps,
                  eval_every=settings.eval_every, smoothing=0.1)  # fmt: skip
    return Recipe(**{**fields, **overrides})


def create_demo_network(settings: DemoSettings, num_classes: int, seed: int) -> nn.Module:
    """The demo architecture, freshly initialised from ``seed`` (timm ``create_model``)."""
    torch.manual_seed(seed)
    return timm.create_model(settings.architecture, pretrained=False, num_classes=num_classes,
                             **settings.model_kwargs)  # fmt: skip


def train_on_demo(model: nn.Module, dataset: DemoDataset, recipe: Recipe, seed: int, *, run_dir=None,
                  settings: RunSettings | None = None, desc: str = "train demo") -> TrainingRun:  # fmt: skip
    """Train ``model`` on random crops of the demo's training regions
    (:class:`~masterkey.data.training_sets.DemoCrops`) with the engine, evaluating on the held-out
    crops; one CPU process by default (``settings``: :class:`RunSettings` of the run)."""
    settings = settings or RunSettings(device="cpu", workers=0)
    evaluation = lambda m: evaluate_demo(m, dataset)  # noqa: E731
    return train(model, DemoCrops(dataset), recipe, num_classes=dataset.num_classes, seed=seed,
                 run_dir=run_dir, settings=settings, evaluation=evaluation, desc=desc)  # fmt: skip


def train_demo_model(settings: DemoSettings, seed: int, references: np.ndarray, run_dir=None) -> DemoTraining:
    """Train the demo network of ``settings`` from scratch (see the module docstring).

    ``references`` are the published filters ``(8, 7, 7)``, used only for the structure measures
    recorded before and after training (:func:`depthwise_structure`).  Runs on the CPU with
    torch's current thread count (set from the rule's threads); ``run_dir`` keeps the engine's
    checkpoints and metrics (None: none).
    """
    with deterministic():
        dataset = demo_dataset(settings, seed)
        model = create_demo_network(settings, dataset.num_classes, seed)
        structure_before = depthwise_structure(model, references)
        accuracy_before = evaluate_demo(model, dataset)["val_accuracy"]
        run = train_on_demo(model, dataset, demo_recipe(settings), seed + 1, run_dir=run_dir)
        final = evaluate_demo(model, dataset)
    summary = {
        "classes": dataset.class_names,
        "num_train_images_seen": settings.steps * settings.batch_size,
        "num_val_images": int(len(dataset.val_labels)),
        "chance_accuracy": 1.0 / dataset.num_classes,
        "val_accuracy_before": accuracy_before,
        "val_accuracy": final["val_accuracy"],
        "val_loss": final["val_loss"],
        "train_seconds": run.summary["train_seconds"],
        "threads": torch.get_num_threads(),
        "structure_before": structure_before,
        "structure_after": depthwise_structure(model, references),
        "engine": run.summary,
    }
    model.eval()
    return DemoTraining(model, dataset, run.log, summary)


def save_demo_model(training: DemoTraining, settings: DemoSettings, seed: int, weights_path, meta_path,
                    log_path, name: str = "demo") -> dict:  # fmt: skip
    """Store the trained demo network like any checkpoint (safetensors + sidecar with the training
    summary, the settings, the seed and the ``input_size`` it saw) and its per-step log as CSV;
    returns the sidecar.  ``name``: the model's name (another network trained on the demo data)."""
    kwargs = {"num_classes": len(training.summary["classes"]), **settings.model_kwargs}
    source = "trained from scratch (embedded demo)"
    meta = model_metadata(training.model, name, source=source, model_kwargs=kwargs)
    meta["input_size"] = [3, settings.crop_size, settings.crop_size]
    meta.update(licence="same as this repository", training=training.summary, config=settings.as_dict())
    meta["seed"] = seed
    with atomic_paths(log_path) as (temp,):
        training.log.to_csv(temp, index=False)
    return save_checkpoint(training.model, meta, weights_path, meta_path)
