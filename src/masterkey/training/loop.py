"""The optimisation step over tensors already in memory (the kernel autoencoder).

Networks trained on datasets of images go through the training engine
(:mod:`masterkey.training.engine`: samplers, loaders, processes, checkpoints).  The kernel
autoencoder trains on a few thousand small arrays that live on the device as one tensor; for it
:func:`training_steps` is the whole loop: set the learning rate, forward, loss, ``zero_grad``,
backward, optimiser step, scheduler step.  Batches come from any iterable of
``(inputs, targets)``; all randomness lives in whatever produces them (a seeded generator).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["TrainStep", "training_steps"]


@dataclass(frozen=True)
class TrainStep:
    """One optimisation step: its number (from 1), the learning rate used, the loss (a detached
    0-d tensor on the model's device) and the number of samples."""

    step: int
    lr: float
    loss: torch.Tensor
    size: int


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
