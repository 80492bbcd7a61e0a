"""The training engine: one loop for every network the project trains, from a laptop to N GPUs.

:func:`train` runs a :class:`~masterkey.training.recipe.Recipe` on a map-style dataset with the
runtime of :class:`RunSettings`:

* timm's optimizer, scheduler (stepped per update), mixup/cutmix, loss and EMA (the recipe);
* data-parallel over the processes of :mod:`masterkey.training.distributed` (DDP when there is
  more than one), batches from :class:`~masterkey.training.sampling.StepBatches` with
  ``workers`` loader processes;
* bf16 autocast (or fp16 with a gradient scaler) and channels-last memory on a GPU,
  ``torch.compile`` on request, gradient accumulation and clipping;
* a checkpoint every ``checkpoint_every`` updates, written atomically (``checkpoint.pt`` in the
  run directory): model, optimiser, scheduler, scaler, EMA, every RNG state, the update count
  (the position in the epoch follows from it) and the metrics so far.  A run that finds the file
  resumes from it, and ends with the same weights as a run that was never stopped (on the CPU,
  bit for bit: the randomness of update ``s`` is seeded from ``(seed, s, micro-step, rank)``);
* a progress bar and a metrics log (``metrics.csv``: update, epoch, lr, train loss, images seen,
  and the evaluation's values every ``eval_every`` updates) written by rank 0.

On the CPU the run is deterministic (``torch.use_deterministic_algorithms``) for a given seed,
thread count, machine type and torch version (README, "Reproducibility").
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..core.config import Settings
from ..core.errors import UserError
from ..core.io import atomic_paths
from .distributed import DistributedContext, barrier, distributed_context
from .recipe import Recipe
from .runtime import deterministic
from .sampling import SeededSamples, StepBatches, derive_seed, seed_everything

__all__ = ["RunSettings", "TrainingRun", "train", "CHECKPOINT", "METRICS"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
_STEP_STREAM = 1  # derive_seed(seed, _STEP_STREAM, step, micro-step, rank): the randomness of an update


@dataclass(frozen=True)
class RunSettings(Settings, section="training"):
    """The ``training`` config section: where and how a training job runs (not what it learns).

    ``gpus``: GPUs a training job asks the cluster for; ``processes``: torchrun processes (None:
    one per visible GPU, else 1); ``workers``: data-loading processes per training process;
    ``device``: None = CUDA when present; ``amp``: ``bfloat16``/``float16`` autocast on GPU
    (None = float32); ``channels_last`` and ``compile`` on GPU; ``checkpoint_every``: updates
    between checkpoints (0 = none).
    """

    gpus: int = 1
    processes: int | None = None
    workers: int = 4
    device: str | None = None
    amp: str | None = "bfloat16"
    channels_last: bool = True
    compile: bool = False
    checkpoint_every: int = 1000

    def num_processes(self) -> int:
        """The torchrun processes of a job on this machine (see ``processes``)."""
        if self.processes:
            return self.processes
        return max(1, torch.cuda.device_count()) if self.device != "cpu" else 1


@dataclass
class TrainingRun:
    """Result of :func:`train`: the trained ``model`` (unwrapped, eval mode), the EMA model or
    None, the metrics ``log`` and a ``summary`` (sizes, lr rule, time, throughput)."""

    model: nn.Module
    ema: nn.Module | None
    log: pd.DataFrame
    summary: dict = field(default_factory=dict)


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _autocast(device: torch.device, amp: str | None):
    if device.type != "cuda" or not amp:
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=getattr(torch, amp))


def _write_metrics(records: list[dict], path: Path) -> None:
    with atomic_paths(path) as (temp,):
        pd.DataFrame.from_records(records).to_csv(temp, index=False)


def train(
    model: nn.Module,
    dataset: Dataset,
    recipe: Recipe,
    *,
    num_classes: int,
    seed: int,
    run_dir: str | os.PathLike | None = None,
    settings: RunSettings | None = None,
    evaluation: Callable[[nn.Module], dict] | None = None,
    callbacks: Sequence[Callable[[int, dict], None]] = (),
    context: DistributedContext | None = None,
    desc: str = "train",
) -> TrainingRun:
    """Train ``model`` on ``dataset`` with ``recipe`` (see the module docstring).

    Parameters
    ----------
    model : nn.Module
        The network, built and initialised by the caller (its parameters with
        ``requires_grad=False`` stay frozen: they are not given to the optimiser).
    dataset : Dataset
        Map-style training set of ``(image tensor (3, H, W), int label)``.
    recipe : Recipe
        What to train with; its sizes are checked against the number of processes.
    num_classes : int
        Classes of the head (mixup's one-hot targets).
    seed : int
        The run's seed: data order, augmentation and per-update randomness derive from it.
    run_dir : path, optional
        Directory of ``checkpoint.pt`` and ``metrics.csv``; None = no files (no checkpoints).
    settings : RunSettings, optional
        Runtime settings (default :class:`RunSettings()`).
    evaluation : callable, optional
        ``evaluation(model) -> {name: value}``, run on rank 0 every ``recipe.eval_every`` updates
        and after the last (on the EMA model too when there is one, names prefixed ``ema_``).
    callbacks : sequence of callables
        ``callback(update, record)`` after each update on every process (tests use it to kill a
        run).
    context : DistributedContext, optional
        Default: :func:`~masterkey.training.distributed.distributed_context`.

    Returns
    -------
    TrainingRun
        On rank 0 with the full log; other ranks get the model and an empty log.
    """
    settings = settings or RunSettings()
    context = context or distributed_context(settings.device)
    with contextlib.nullcontext() if context.device.type == "cuda" else deterministic():
        return _train(model, dataset, recipe, num_classes, seed, run_dir, settings, evaluation, callbacks,
                      context, desc)  # fmt: skip


def _train(
    model, dataset, recipe, num_classes, seed, run_dir, settings, evaluation, callbacks, context, desc
):
    device, cuda = context.device, context.device.type == "cuda"
    world, rank = context.world_size, context.rank
    micro = recipe.micro_batch(world)
    steps_per_epoch = len(dataset) // recipe.batch_size
    if steps_per_epoch < 1:
        raise ValueError(
            f"training set of {len(dataset)} samples is smaller than one batch ({recipe.batch_size})"
        )
    total = recipe.total_steps(steps_per_epoch)
    channels_last = cuda and settings.channels_last
    model = model.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    optimizer = recipe.create_optimizer(model)
    scheduler = recipe.create_scheduler(optimizer, total, steps_per_epoch)
    scaler = torch.amp.GradScaler("cuda") if cuda and settings.amp == "float16" else None
    ema = recipe.create_ema(model)
    mixup = recipe.create_mixup(num_classes)
    loss_fn = recipe.create_loss(mixup)
    records: list[dict] = []
    start = 0
    fingerprint = repr((recipe.as_dict(), seed, len(dataset), num_classes))
    run_dir = Path(run_dir) if run_dir is not None else None
    checkpoint_path = run_dir / CHECKPOINT if run_dir is not None else None
    if checkpoint_path is not None and checkpoint_path.exists():
        # RNG states must stay on the CPU; optimizer.load_state_dict moves its state to the parameters
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state.get("fingerprint") != fingerprint:
            raise UserError(
                f"{checkpoint_path} belongs to another run (recipe, seed, dataset size or classes "
                f"changed since it was written); delete {checkpoint_path.parent} to start afresh"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        _set_rng_state(state["rng"][rank] if rank < len(state["rng"]) else state["rng"][0])
        start, records = state["step"], state["records"]
    else:
        scheduler.step_update(0)
    if context.is_main:
        resumed = f", resumed at update {start}" if start else ""
        print(
            f"{desc}: {total} updates ({steps_per_epoch} per epoch of {len(dataset)} samples) on {world} "
            f"process(es), {device}{resumed}; {recipe.describe(world)}",
            flush=True,
        )
    network = model
    if settings.compile:
        network = torch.compile(network)
    if world > 1:
        network = DistributedDataParallel(network, device_ids=[device.index] if cuda else None)
    sampler = StepBatches(
        len(dataset), recipe.batch_size, recipe.accumulation, rank, world, seed, total, start
    )
    loader = DataLoader(
        SeededSamples(dataset, seed),
        batch_sampler=sampler,
        num_workers=settings.workers,
        pin_memory=cuda,
        persistent_workers=False,
    )
    batches = iter(loader)
    parameters = [p for p in model.parameters() if p.requires_grad]
    quiet = {} if context.is_main else {"disable": True}  # TQDM_DISABLE still applies on rank 0
    progress = tqdm(total=total, initial=start, desc=desc, unit="step", mininterval=5, **quiet)
    started = time.perf_counter()
    for step in range(start, total):
        network.train()
        lr = max(float(group["lr"]) for group in optimizer.param_groups)  # layer decay scales groups down
        losses = []
        for part in range(recipe.accumulation):
            inputs, targets = next(batches)
            # after the batch is read: the same stream whether samples load here or in workers
            seed_everything(derive_seed(seed, _STEP_STREAM, step, part, rank))
            inputs = inputs.to(device, non_blocking=True)
            if channels_last:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            targets = targets.to(device, non_blocking=True)
            if mixup is not None:
                inputs, targets = mixup(inputs, targets)
            last = part == recipe.accumulation - 1
            sync = network.no_sync() if world > 1 and not last else contextlib.nullcontext()
            with sync:
                with _autocast(device, settings.amp):
                    loss = loss_fn(network(inputs), targets)
                scaled = loss / recipe.accumulation
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
            losses.append(loss.detach())
        if recipe.clip_grad:
            if scaler is not None:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, recipe.clip_grad)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.update(model, step=step + 1)
        scheduler.step_update(step + 1)
        loss = torch.stack(losses).mean()
        if world > 1:
            dist.all_reduce(loss)
            loss = loss / world
        done = step + 1
        record = {
            "step": done,
            "epoch": step // steps_per_epoch,
            "lr": lr,
            "train_loss": float(loss),
            "images": done * recipe.batch_size,
        }
        due = evaluation is not None and (
            (recipe.eval_every and done % recipe.eval_every == 0) or done == total
        )
        if due and context.is_main:
            record.update(evaluation(model))
            if ema is not None:
                record.update({f"ema_{k}": v for k, v in evaluation(ema.module).items()})
            progress.set_postfix(
                {k: f"{v:.3f}" for k, v in record.items() if k not in ("step", "epoch", "lr", "images")}
            )
        if due:
            barrier(context)
        if done % recipe.log_every == 0 or done == total or due:
            records.append(record)
        progress.update()
        if settings.checkpoint_every and done % settings.checkpoint_every == 0 and done < total and run_dir:
            _save_checkpoint(
                checkpoint_path, model, optimizer, scheduler, scaler, ema, done, records, context, fingerprint
            )
        for callback in callbacks:
            callback(done, record)
    progress.close()
    seconds = time.perf_counter() - started
    model.eval()
    if ema is not None:
        ema.module.eval()
    if context.is_main and run_dir is not None:
        _write_metrics(records, run_dir / METRICS)
    summary = {
        "updates": total,
        "updates_per_epoch": steps_per_epoch,
        "effective_batch": recipe.batch_size,
        "batch_per_process": micro,
        "accumulation": recipe.accumulation,
        "processes": world,
        "device": str(device),
        "lr": recipe.lr(),
        "lr_rule": recipe.describe(world),
        "resumed_at": start,
        "train_seconds": round(seconds, 1),
        "images_per_second": round((total - start) * recipe.batch_size / max(seconds, 1e-9), 1),
        "amp": settings.amp if cuda else None,
        "channels_last": channels_last,
    }
    log = pd.DataFrame.from_records(records) if context.is_main else pd.DataFrame()
    if len(log):
        summary["final_train_loss"] = float(log["train_loss"].iloc[-max(1, len(log) // 10) :].mean())
    return TrainingRun(model, None if ema is None else ema.module, log, summary)


def _save_checkpoint(
    path, model, optimizer, scheduler, scaler, ema, step, records, context, fingerprint
) -> None:
    """Every process's RNG state is gathered; rank 0 writes the file atomically."""
    rng = [_rng_state()]
    if context.world_size > 1:
        rng = [None] * context.world_size
        dist.all_gather_object(rng, _rng_state())
    if context.is_main:
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "ema": ema.state_dict() if ema is not None else None,
            "rng": rng,
            "step": step,
            "records": records,
            "fingerprint": fingerprint,
        }
        with atomic_paths(path) as (temp,):
            torch.save(state, temp)
        _write_metrics(records, path.parent / METRICS)
    barrier(context)
