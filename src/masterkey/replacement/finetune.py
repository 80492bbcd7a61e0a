"""Fine-tuning a replaced network with its depthwise kernels frozen ([B] Sec. 5; docs/methods.md section 5).

The demo model only: it retrains on the demo's training regions (rule ``finetune_frozen``) and is
then evaluated on the held-out crops and the natural-image set.  Only
the depthwise convolution *weights* are frozen (``requires_grad = False``, so AdamW's weight decay
does not touch them either); their biases, the pointwise layers, norms and the head train with the
demo recipe (:func:`masterkey.nets.demo.fit_demo_recipe`: AdamW, warm-up over the first 10 % of
the steps, cosine decay, label smoothing 0.1) through the project's training loop.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..core.config import DEMO_MODEL
from ..core.errors import ConfigError
from ..data.demo import DemoDataset, DemoSettings, demo_dataset
from ..data.evalcache import EvalSet
from ..nets.demo import fit_demo_recipe
from ..nets.depthwise import find_depthwise_convs
from ..training.evaluate import evaluate
from .build import VariantInputs
from .evaluation import apply_variant, evaluation_metrics, variant_record
from .settings import FinetuneSettings
from .variants import Variant, finetuned_name, parse_variant

__all__ = ["finetune_frozen_depthwise", "finetune_variant"]


def finetune_frozen_depthwise(
    model: nn.Module,
    dataset: DemoDataset,
    settings: FinetuneSettings,
    seed: int,
    weight_decay: float = 0.05,
) -> pd.DataFrame:
    """Retrain ``model`` on the demo's training regions with every depthwise kernel frozen
    (see the module docstring).  Returns the per-step log; the model is left in eval mode."""
    torch.manual_seed(seed)
    frozen = {id(layer.module.weight) for layer in find_depthwise_convs(model)}
    for parameter in model.parameters():
        parameter.requires_grad_(id(parameter) not in frozen)
    log = fit_demo_recipe(
        model,
        [p for p in model.parameters() if p.requires_grad],
        dataset,
        steps=settings.steps,
        learning_rate=settings.learning_rate,
        weight_decay=weight_decay,
        warmup=max(1, settings.steps // 10),
        batch_size=settings.batch_size,
        seed=seed + 2,
        desc="finetune",
    )
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    model.eval()
    return log


def finetune_variant(
    model: nn.Module,
    model_name: str,
    variant: Variant | str,
    inputs: VariantInputs,
    demo: DemoSettings,
    settings: FinetuneSettings,
    seed: int,
    evaluations: Mapping[str, tuple[EvalSet, np.ndarray | None]],
    *,
    batch_size: int = 128,
    max_images: int | None = None,
) -> dict[str, dict]:
    """Replace the kernels by ``variant``, fine-tune with them frozen, then evaluate on every set
    of ``evaluations`` (dataset name -> ``(eval set, reference logits of the unmodified network or
    None)``, e.g. the held-out crops and the natural set).  Returns the record of variant
    ``finetuned-<variant>`` per dataset (the fields of :mod:`masterkey.replacement.evaluation` plus
    ``finetune_steps``, ``train_seconds`` and ``final_train_loss``, the mean loss of the last 10
    steps)."""
    if model_name != DEMO_MODEL:
        raise ConfigError(
            "replacement.finetune", f"fine-tuning trains on the demo's crops; {model_name} is not the demo"
        )
    variant = parse_variant(variant) if isinstance(variant, str) else variant
    summary = apply_variant(model, variant, inputs, seed=seed)
    started = time.perf_counter()
    log = finetune_frozen_depthwise(model, demo_dataset(demo, seed), settings, seed, demo.weight_decay)
    training = {
        "finetune_steps": settings.steps,
        "train_seconds": round(time.perf_counter() - started, 1),
        "final_train_loss": float(log["train_loss"].iloc[-10:].mean()),
    }
    records = {}
    for dataset, (eval_set, reference) in evaluations.items():
        metrics = evaluate(model, eval_set, evaluation_metrics(eval_set, reference), batch_size=batch_size,
                           max_images=max_images)  # fmt: skip
        records[dataset] = {
            **variant_record(model_name, eval_set, finetuned_name(variant), metrics, summary),
            **training,
        }
    return records
