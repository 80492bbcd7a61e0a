"""The embedded demo network: a small timm ConvNeXt trained from scratch on the demo dataset.

Deterministic from the config seed on a given machine and thread count
(:func:`masterkey.training.runtime.deterministic`; the batches come from a generator seeded with
``seed + 1``).  Recipe: AdamW with linear warm-up and cosine decay
(:func:`masterkey.training.loop.warmup_cosine`), label smoothing 0.1, through the project's one
training loop (:func:`masterkey.training.loop.fit`); the held-out crops are evaluated every
``eval_every`` steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import timm
import torch
from torch import nn

from ..core.io import atomic_paths
from ..data.demo import DemoDataset, DemoSettings, demo_dataset
from ..kernels.conventions import centre_share
from ..kernels.similarity import max_abs_cosine
from ..training.evaluate import MeanLoss, TopK, evaluate
from ..training.loop import fit, warmup_cosine
from ..training.runtime import deterministic
from .checkpoints import model_metadata, save_checkpoint
from .depthwise import find_depthwise_convs

__all__ = [
    "DemoTraining",
    "depthwise_structure",
    "evaluate_demo",
    "demo_batches",
    "fit_demo_recipe",
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
    """``val_accuracy`` (top-1) and ``val_loss`` (mean cross-entropy) on the held-out crops."""
    metrics = [
        TopK((1,), names=("val_accuracy",)),
        MeanLoss(partial(nn.functional.cross_entropy, reduction="sum"), "val_loss", reduction="sum"),
    ]
    result = evaluate(model, dataset.eval_set(), metrics, batch_size=256, device="cpu", channels_last=False)
    return {"val_accuracy": result["val_accuracy"], "val_loss": result["val_loss"]}


def demo_batches(dataset: DemoDataset, batch_size: int, seed: int):
    """Endless random training batches of the demo (crops, labels) from a generator seeded ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield dataset.sample_batch(batch_size, generator)


def fit_demo_recipe(
    model: nn.Module,
    parameters,
    dataset: DemoDataset,
    *,
    steps: int,
    learning_rate: float,
    weight_decay: float,
    warmup: int,
    batch_size: int,
    seed: int,
    evaluate_every: int = 0,
    desc: str = "train",
) -> pd.DataFrame:
    """Train ``parameters`` of ``model`` with the demo recipe; returns the per-step log of
    :func:`masterkey.training.loop.fit`.

    The recipe: AdamW (``learning_rate``, ``weight_decay``), cross-entropy with label smoothing
    0.1, linear warm-up over ``warmup`` steps then cosine decay
    (:func:`masterkey.training.loop.warmup_cosine`), batches of random crops of the demo's training
    regions from a generator seeded ``seed`` (:func:`demo_batches`), the held-out crops evaluated
    every ``evaluate_every`` steps (0: never).
    """
    optimiser = torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=weight_decay)
    return fit(
        model,
        demo_batches(dataset, batch_size, seed),
        optimiser,
        nn.CrossEntropyLoss(label_smoothing=0.1),
        steps,
        lr_at=partial(warmup_cosine, base=learning_rate, warmup=warmup, total=steps),
        evaluate_every=evaluate_every,
        evaluation=(lambda: evaluate_demo(model, dataset)) if evaluate_every else None,
        desc=desc,
    )


def train_demo_model(settings: DemoSettings, seed: int, references: np.ndarray) -> DemoTraining:
    """Train the demo network of ``settings`` from scratch (see the module docstring).

    ``references`` are the published filters ``(8, 7, 7)``, used only for the structure measures
    recorded before and after training (:func:`depthwise_structure`).  Runs on the CPU with
    torch's current thread count (set from the rule's threads).
    """
    torch.manual_seed(seed)
    with deterministic():
        dataset = demo_dataset(settings, seed)
        model = timm.create_model(
            settings.architecture, pretrained=False, num_classes=dataset.num_classes, **settings.model_kwargs
        )
        structure_before = depthwise_structure(model, references)
        accuracy_before = evaluate_demo(model, dataset)["val_accuracy"]
        started = time.perf_counter()
        log = fit_demo_recipe(
            model,
            model.parameters(),
            dataset,
            steps=settings.steps,
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
            warmup=settings.warmup_steps,
            batch_size=settings.batch_size,
            seed=seed + 1,
            evaluate_every=settings.eval_every,
            desc="train demo",
        )
        wall = time.perf_counter() - started
        final = evaluate_demo(model, dataset)
    summary = {
        "classes": dataset.class_names,
        "num_train_images_seen": settings.steps * settings.batch_size,
        "num_val_images": int(len(dataset.val_labels)),
        "chance_accuracy": 1.0 / dataset.num_classes,
        "val_accuracy_before": accuracy_before,
        "val_accuracy": final["val_accuracy"],
        "val_loss": final["val_loss"],
        "train_seconds": round(wall, 1),
        "threads": torch.get_num_threads(),
        "structure_before": structure_before,
        "structure_after": depthwise_structure(model, references),
    }
    model.eval()
    return DemoTraining(model, dataset, log, summary)


def save_demo_model(training: DemoTraining, settings: DemoSettings, seed: int, weights_path, meta_path,
                    log_path) -> dict:  # fmt: skip
    """Store the trained demo network like any checkpoint (safetensors + sidecar with the training
    summary, the settings and the seed) and its per-step log as CSV; returns the sidecar."""
    kwargs = {"num_classes": len(training.summary["classes"]), **settings.model_kwargs}
    source = "trained from scratch (embedded demo)"
    meta = model_metadata(training.model, "demo", source=source, model_kwargs=kwargs)
    meta.update(licence="same as this repository", training=training.summary, config=settings.as_dict())
    meta["seed"] = seed
    with atomic_paths(log_path) as (temp,):
        training.log.to_csv(temp, index=False)
    return save_checkpoint(training.model, meta, weights_path, meta_path)
