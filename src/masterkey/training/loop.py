"""The one training loop of the project.

:func:`training_steps` is the optimisation step every trainer uses (the demo network, the
frozen-filter fine-tuning, the kernel autoencoder): set the learning rate, forward, loss,
``zero_grad``, backward, optimiser step, scheduler step.  :func:`fit` runs it for a number of
steps with a progress bar, a per-step log and periodic evaluation.  Batches come from any iterable
of ``(inputs, targets)``; all randomness lives in whatever produces them (a seeded generator), so a
run is reproducible from its seeds.

Learning-rate schedules: :func:`warmup_cosine` (linear warm-up, then cosine decay to 0), or any
``torch.optim.lr_scheduler`` stepped once per optimisation step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

__all__ = ["TrainStep", "warmup_cosine", "training_steps", "fit"]


@dataclass(frozen=True)
class TrainStep:
    """One optimisation step: its number (from 1), the learning rate used, the loss (a detached
    0-d tensor on the model's device) and the number of samples."""

    step: int
    lr: float
    loss: torch.Tensor
    size: int


def warmup_cosine(step: int, base: float, warmup: int, total: int) -> float:
    """Learning rate at ``step`` (from 0): linear warm-up to ``base`` over ``warmup`` steps, then
    cosine decay to 0 at ``total``.

    ``lr = base (step + 1) / warmup`` for ``step < warmup``, else
    ``lr = base (1 + cos(pi (step - warmup) / (total - warmup))) / 2``; the schedule of the
    frozen-filter fine-tuning (docs/methods.md section 5) and of the demo network.

    Parameters
    ----------
    step : int
        Optimisation step, from 0.
    base : float
        Peak learning rate.
    warmup : int
        Number of warm-up steps (0: none).
    total : int
        Step at which the rate reaches 0.

    Returns
    -------
    float
        The learning rate.

    The warm-up ends at ``base``, the cosine passes ``base / 2`` half-way and reaches 0 at ``total``:

    >>> [round(warmup_cosine(s, 1.0, 2, 6), 3) for s in range(7)]
    [0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0]
    """
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * progress))


def training_steps(
    model: nn.Module,
    batches: Iterable,
    optimiser: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    lr_at: Callable[[int], float] | None = None,
    scheduler=None,
) -> Iterator[TrainStep]:
    """Optimise ``model`` on every ``(inputs, targets)`` of ``batches``; yield a :class:`TrainStep`
    after each step.

    Per step: the learning rate of every parameter group is set to ``lr_at(step)`` (step from 0)
    when given, the model is put in training mode, ``loss_fn(model(inputs), targets)`` is
    back-propagated, the optimiser steps, then ``scheduler`` (if any).
    """
    for step, (inputs, targets) in enumerate(batches):
        if lr_at is not None:
            for group in optimiser.param_groups:
                group["lr"] = lr_at(step)
        lr = float(optimiser.param_groups[0]["lr"])
        model.train()
        loss = loss_fn(model(inputs), targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if scheduler is not None:
            scheduler.step()
        yield TrainStep(step + 1, lr, loss.detach(), len(targets))


def fit(
    model: nn.Module,
    batches: Iterable,
    optimiser: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    *,
    lr_at: Callable[[int], float] | None = None,
    scheduler=None,
    evaluate_every: int = 0,
    evaluation: Callable[[], dict] | None = None,
    desc: str = "train",
) -> pd.DataFrame:
    """Train for ``steps`` steps of :func:`training_steps`; returns the per-step log.

    The log has one row per step with ``step``, ``lr`` and ``train_loss``, plus the values of
    ``evaluation()`` every ``evaluate_every`` steps and after the last one (when both are given).
    """
    records = []
    progress = tqdm(total=steps, desc=desc, unit="step", mininterval=5)
    for result in training_steps(model, islice(batches, steps), optimiser, loss_fn, lr_at=lr_at,
                                 scheduler=scheduler):  # fmt: skip
        record = {"step": result.step, "lr": result.lr, "train_loss": result.loss.item()}
        due = evaluate_every and (result.step % evaluate_every == 0 or result.step == steps)
        if evaluation is not None and due:
            record.update(evaluation())
            progress.set_postfix({k: f"{v:.3f}" for k, v in record.items() if k not in ("step", "lr")})
        records.append(record)
        progress.update()
    progress.close()
    return pd.DataFrame.from_records(records)
