"""Train the embedded demo model: a small timm ConvNeXt from scratch on the demo dataset.

Deterministic from the config seed on a given machine and thread count
(``torch.use_deterministic_algorithms``; data order from a seeded generator).
Optimiser: AdamW with linear warm-up and cosine decay, label smoothing 0.1.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import timm
import torch
from torch import nn
from tqdm import tqdm

from .conventions import centre_share
from .demo_data import DemoDataset, demo_dataset
from .kernels import find_depthwise_convs
from .similarity import max_abs_cosine


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


@torch.inference_mode()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> dict:
    """Top-1 accuracy and mean cross-entropy of ``model`` on a tensor dataset."""
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size])
        target = labels[start : start + batch_size]
        loss += float(nn.functional.cross_entropy(logits, target, reduction="sum"))
        correct += int((logits.argmax(1) == target).sum())
    return {"val_accuracy": correct / len(images), "val_loss": loss / len(images)}


def learning_rate(step: int, base: float, warmup: int, total: int) -> float:
    """Linear warm-up to ``base`` over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def train_demo_model(demo: dict, seed: int, references: np.ndarray, threads: int = 1):
    """Train the demo model described by the ``demo`` config section.

    Returns ``(model, dataset, log, summary)``: the trained model, the
    :class:`DemoDataset`, a per-step training log (DataFrame) and a summary
    dict (accuracies, chance level, wall time, structure before and after).
    """
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, int(threads)))
    torch.use_deterministic_algorithms(True)
    dataset: DemoDataset = demo_dataset(demo, seed)
    model = timm.create_model(
        demo["architecture"], pretrained=False, num_classes=dataset.num_classes, **demo["model_kwargs"]
    )
    structure_before = depthwise_structure(model, references)
    accuracy_before = evaluate(model, dataset.val_images, dataset.val_labels)["val_accuracy"]

    optimiser = torch.optim.AdamW(
        model.parameters(), lr=demo["learning_rate"], weight_decay=demo["weight_decay"]
    )
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    generator = torch.Generator().manual_seed(seed + 1)
    steps, records = demo["steps"], []
    started = time.perf_counter()
    progress = tqdm(range(steps), desc="train demo", unit="step", mininterval=5)
    for step in progress:
        lr = learning_rate(step, demo["learning_rate"], demo["warmup_steps"], steps)
        for group in optimiser.param_groups:
            group["lr"] = lr
        model.train()
        images, labels = dataset.sample_batch(demo["batch_size"], generator)
        loss = criterion(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        record = {"step": step + 1, "lr": lr, "train_loss": loss.item()}
        if (step + 1) % demo["eval_every"] == 0 or step + 1 == steps:
            record.update(evaluate(model, dataset.val_images, dataset.val_labels))
            progress.set_postfix(loss=f"{record['train_loss']:.3f}", val_acc=f"{record['val_accuracy']:.3f}")
        records.append(record)
    wall = time.perf_counter() - started
    log = pd.DataFrame.from_records(records)
    final = evaluate(model, dataset.val_images, dataset.val_labels)
    summary = {
        "classes": dataset.class_names,
        "num_train_images_seen": steps * demo["batch_size"],
        "num_val_images": int(len(dataset.val_labels)),
        "chance_accuracy": 1.0 / dataset.num_classes,
        "val_accuracy_before": accuracy_before,
        "val_accuracy": final["val_accuracy"],
        "val_loss": final["val_loss"],
        "train_seconds": round(wall, 1),
        "threads": int(threads),
        "structure_before": structure_before,
        "structure_after": depthwise_structure(model, references),
    }
    model.eval()
    return model, dataset, log, summary


def finetune_frozen_depthwise(
    model: nn.Module,
    dataset: DemoDataset,
    steps: int,
    base_lr: float,
    batch_size: int,
    seed: int,
    weight_decay: float = 0.05,
    threads: int = 1,
) -> pd.DataFrame:
    """Retrain ``model`` on the demo's training regions with every depthwise kernel frozen.

    Only the depthwise convolution *weights* are frozen (``requires_grad = False``, so AdamW's
    weight decay does not touch them either); their biases, the pointwise layers, norms and the
    head train as in :func:`train_demo_model` (AdamW, warm-up over the first 10 % of ``steps``,
    cosine decay, label smoothing 0.1).  Returns the per-step log; the model is left in eval mode.
    """
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, int(threads)))
    frozen = {id(layer.module.weight) for layer in find_depthwise_convs(model)}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) not in frozen)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trainable, lr=base_lr, weight_decay=weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=0.1)
    generator = torch.Generator().manual_seed(seed + 2)
    warmup, records = max(1, steps // 10), []
    for step in tqdm(range(steps), desc="finetune", unit="step", mininterval=5):
        lr = learning_rate(step, base_lr, warmup, steps)
        for group in optimiser.param_groups:
            group["lr"] = lr
        model.train()
        images, labels = dataset.sample_batch(batch_size, generator)
        loss = criterion(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        records.append({"step": step + 1, "lr": lr, "train_loss": loss.item()})
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    model.eval()
    return pd.DataFrame.from_records(records)
