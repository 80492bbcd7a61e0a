"""A training recipe: the science of a training run, turned into timm's own objects.

:class:`Recipe` holds what a paper states about how a network was trained (optimiser, learning
rate and its scaling rule, schedule, warm-up, weight decay, layer-wise decay, stochastic depth,
label smoothing, mixup/cutmix, random erasing, EMA, gradient clipping, batch size and
accumulation); its ``create_*`` methods build the objects with timm's factories
(``timm.optim.create_optimizer_v2``, ``timm.scheduler.create_scheduler_v2``, ``timm.data.Mixup``,
``timm.loss``, ``timm.utils.ModelEmaV3``, ``timm.data.create_transform``) - nothing of what timm
offers is written again here.  Where the run executes (processes, workers, precision, memory
format, checkpoints) is :class:`masterkey.training.engine.RunSettings`.

Conventions
-----------
* ``batch_size`` is the *effective* batch of one optimiser update: all processes and all
  accumulation micro-steps together.  Per process and micro-step it is
  ``batch_size / (world_size * accumulation)``, which must be a whole number.
* ``learning_rate`` is the base rate; with ``lr_base_size`` set, the rate used is
  ``learning_rate * batch_size / lr_base_size`` (the linear scaling rule of Goyal et al. 2017, as
  ConvNeXt and ConvNeXt V2 state their recipes: "lr = blr x batch / 256").
* The schedule is counted in optimiser updates (``step_on_epochs=False``): ``steps`` updates in
  all, or ``epochs`` passes over the training set when ``steps`` is not given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import timm.data
import timm.loss
import timm.optim
import timm.scheduler
import timm.utils
from torch import nn

from ..core.config import Settings
from ..core.errors import ConfigError

__all__ = ["Recipe"]


@dataclass(frozen=True)
class Recipe(Settings):
    """One training recipe (config: a mapping with these keys; see the module docstring).

    Attributes
    ----------
    steps, epochs
        Length of the run in optimiser updates, or in epochs (one of the two).
    batch_size, accumulation
        Effective batch per update, and the number of micro-steps it is accumulated over.
    optimizer, learning_rate, lr_base_size, weight_decay, layer_decay, momentum
        ``timm.optim.create_optimizer_v2`` arguments (``layer_decay``: layer-wise lr decay of
        BEiT/ConvNeXt V2 fine-tuning, through the model's ``group_matcher``).
    scheduler, warmup_steps, warmup_epochs, warmup_lr, min_lr
        ``timm.scheduler.create_scheduler_v2`` arguments; warm-up from ``warmup_lr``.
    clip_grad
        Gradient norm clipping (``timm.utils.dispatch_clip_grad``); None = none.
    smoothing, mixup, cutmix
        Label smoothing and the mixup/cutmix alphas (``timm.data.Mixup``; 0 = off).
    drop_path
        Stochastic depth rate (passed to the model's constructor).
    reprob, auto_augment, color_jitter, scale
        Training transform (``timm.data.create_transform``) for datasets of images.
    ema_decay
        Decay of the weight EMA (``timm.utils.ModelEmaV3``); None = no EMA.
    eval_every, log_every
        Evaluate every that many updates (0: only at the end), log every that many.
    """

    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64
    accumulation: int = 1
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    lr_base_size: int | None = None
    weight_decay: float = 0.05
    layer_decay: float | None = None
    momentum: float = 0.9
    scheduler: str = "cosine"
    warmup_steps: int = 0
    warmup_epochs: float = 0
    warmup_lr: float = 1e-6
    min_lr: float = 0.0
    clip_grad: float | None = None
    smoothing: float = 0.1
    mixup: float = 0.0
    cutmix: float = 0.0
    drop_path: float = 0.0
    reprob: float = 0.0
    auto_augment: str | None = None
    color_jitter: float = 0.0
    scale: tuple[float, ...] = (0.08, 1.0)
    ema_decay: float | None = None
    eval_every: int = 0
    log_every: int = 1

    def __post_init__(self):
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError(
                "recipe",
                f"give exactly one of steps and epochs (got steps={self.steps}, epochs={self.epochs})",
            )
        if self.batch_size < 1 or self.accumulation < 1 or self.batch_size % self.accumulation:
            raise ConfigError(
                "recipe.batch_size",
                f"{self.batch_size} is not a positive multiple of accumulation={self.accumulation}",
            )

    # -- sizes -------------------------------------------------------------------------------

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimiser updates of the run, given the updates per epoch of its dataset."""
        if self.steps is not None:
            return int(self.steps)
        return max(1, math.ceil(self.epochs * steps_per_epoch))

    def micro_batch(self, world_size: int) -> int:
        """Samples per process and micro-step; ``ConfigError`` when the batch does not divide."""
        parts = world_size * self.accumulation
        if self.batch_size % parts:
            raise ConfigError(
                "recipe.batch_size",
                f"{self.batch_size} does not split into {world_size} process(es) x {self.accumulation} "
                "accumulation step(s); choose a multiple of their product",
            )
        return self.batch_size // parts

    def lr(self) -> float:
        """The learning rate used: the base rate, scaled linearly when ``lr_base_size`` is set."""
        if self.lr_base_size:
            return self.learning_rate * self.batch_size / self.lr_base_size
        return self.learning_rate

    def describe(self, world_size: int) -> str:
        """One line for the run's log: effective batch, its split and the lr scaling rule."""
        split = (
            f"{self.micro_batch(world_size)} per process x {world_size} process(es) "
            f"x {self.accumulation} accumulation"
        )
        if self.lr_base_size:
            rule = (
                f"lr = {self.learning_rate:g} x {self.batch_size}/{self.lr_base_size} = {self.lr():g} "
                "(linear scaling rule)"
            )
        else:
            rule = f"lr = {self.lr():g} (no scaling with the batch size)"
        return f"effective batch {self.batch_size} = {split}; {rule}"

    # -- timm objects --------------------------------------------------------------------------

    def create_optimizer(self, model: nn.Module):
        """``timm.optim.create_optimizer_v2`` over the parameters that require gradients (weight
        decay off for biases and norms, layer-wise decay when set)."""
        kwargs = {"momentum": self.momentum} if self.optimizer in ("sgd", "momentum", "nesterov") else {}
        return timm.optim.create_optimizer_v2(
            model,
            opt=self.optimizer,
            lr=self.lr(),
            weight_decay=self.weight_decay,
            layer_decay=self.layer_decay,
            **kwargs,
        )

    def create_scheduler(self, optimizer, total_steps: int, steps_per_epoch: int):
        """``timm.scheduler.create_scheduler_v2`` stepped per update (call ``step_update(n)``).

        Linear warm-up from ``warmup_lr`` over the warm-up updates, then the schedule (cosine:
        from the peak rate to ``min_lr``) over the remaining ``total_steps - warmup`` updates
        (timm's ``warmup_prefix=True``), as ConvNeXt and ConvNeXt V2 schedule their runs: the
        peak is reached right after the warm-up and the floor at the last update.
        """
        warmup = min(self.warmup_steps + round(self.warmup_epochs * steps_per_epoch), total_steps - 1)
        scheduler, _ = timm.scheduler.create_scheduler_v2(
            optimizer,
            sched=self.scheduler,
            num_epochs=max(1, total_steps - warmup),
            warmup_epochs=warmup,
            warmup_prefix=True,
            warmup_lr=self.warmup_lr,
            min_lr=self.min_lr,
            step_on_epochs=False,
            updates_per_epoch=1,
        )
        return scheduler

    def create_mixup(self, num_classes: int):
        """``timm.data.Mixup`` (which also smooths the labels), or None when both alphas are 0."""
        if not (self.mixup or self.cutmix):
            return None
        return timm.data.Mixup(
            mixup_alpha=self.mixup,
            cutmix_alpha=self.cutmix,
            label_smoothing=self.smoothing,
            num_classes=num_classes,
        )

    def create_loss(self, mixup) -> nn.Module:
        """Soft-target cross-entropy after mixup, else label-smoothing cross-entropy (timm.loss)."""
        if mixup is not None:
            return timm.loss.SoftTargetCrossEntropy()
        if self.smoothing:
            return timm.loss.LabelSmoothingCrossEntropy(smoothing=self.smoothing)
        return nn.CrossEntropyLoss()

    def create_ema(self, model: nn.Module):
        """``timm.utils.ModelEmaV3`` of ``model`` (None without ``ema_decay``)."""
        return None if self.ema_decay is None else timm.utils.ModelEmaV3(model, decay=self.ema_decay)

    def create_transform(self, input_size: int, mean, std):
        """The training transform of image datasets (``timm.data.create_transform``): random
        resized crop (``scale``) and flip, bicubic, colour jitter / RandAugment, random erasing with
        per-pixel noise (ConvNeXt's ``--remode pixel``)."""
        return timm.data.create_transform(
            input_size,
            is_training=True,
            scale=tuple(self.scale),
            color_jitter=self.color_jitter,
            auto_augment=self.auto_augment,
            interpolation="bicubic",
            re_prob=self.reprob,
            re_mode="pixel",
            mean=tuple(mean),
            std=tuple(std),
        )
