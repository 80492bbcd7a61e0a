"""Which samples a training step sees, and the seeds of their random augmentation.

The batches of a run are a pure function of ``(seed, step)``, whatever the number of processes,
data-loading workers or restarts:

* :class:`StepBatches` (a batch sampler) walks a seeded permutation per epoch; optimiser update
  ``s`` takes the next ``batch_size`` indices, cut into ``accumulation`` micro-batches, each
  cut into one contiguous share per process.  A run resumed at update ``s`` starts there, and
  ``N`` processes together see exactly the global batch that one process sees;
* :class:`SeededSamples` seeds Python's, NumPy's and torch's global generators from
  ``(seed, epoch, index)`` before it reads a sample, so a random crop, flip or erasing of a
  sample does not depend on which worker process loads it, or when.

This is what makes exact resume and the 1-vs-N-process equality hold (tests/training).
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["derive_seed", "seed_everything", "SeededSamples", "StepBatches"]


def derive_seed(*keys: int) -> int:
    """A 63-bit seed from non-negative integers (``numpy.random.SeedSequence``), e.g.
    ``derive_seed(seed, epoch, index)``; different key tuples give independent streams (the
    number of keys leads the entropy: SeedSequence pads short entropy with zeros, so without it
    ``(seed, epoch)`` and ``(seed, epoch, 0)`` would give the same seed)."""
    state = np.random.SeedSequence([len(keys), *(int(k) for k in keys)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class SeededSamples(Dataset):
    """``dataset`` read by ``(epoch, index)`` keys, each read preceded by
    :func:`seed_everything` of ``derive_seed(seed, epoch, index)``."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed = dataset, int(seed)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        seed_everything(derive_seed(self.seed, epoch, index))
        return self.dataset[index]


class StepBatches(Sampler):
    """The micro-batches of this process for updates ``start_step .. steps - 1``.

    Parameters
    ----------
    num_samples : int
        Size of the training set.
    batch_size : int
        Effective batch of one update (all processes, all micro-steps).
    accumulation : int
        Micro-steps per update.
    rank, world_size : int
        This process and the number of processes.
    seed : int
        Seed of the per-epoch permutations (``derive_seed(seed, epoch)``).
    steps : int
        Updates of the whole run.
    start_step : int
        First update to yield (a resumed run).

    Yields lists of ``(epoch, index)`` keys (:class:`SeededSamples`).  An epoch holds
    ``num_samples // batch_size`` updates (the last partial batch is dropped).

    Raises
    ------
    ValueError
        When the training set is smaller than one batch or the batch does not split evenly.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        accumulation: int,
        rank: int,
        world_size: int,
        seed: int,
        steps: int,
        start_step: int = 0,
    ):
        if batch_size % (accumulation * world_size):
            raise ValueError(f"batch {batch_size} does not split into {world_size} x {accumulation}")
        if num_samples < batch_size:
            raise ValueError(
                f"training set of {num_samples} samples is smaller than one batch ({batch_size})"
            )
        self.num_samples, self.batch_size, self.accumulation = num_samples, batch_size, accumulation
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.steps, self.start_step = steps, start_step
        self.steps_per_epoch = num_samples // batch_size

    def permutation(self, epoch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
        return torch.randperm(self.num_samples, generator=generator)

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.accumulation

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        micro = self.batch_size // self.accumulation
        share = micro // self.world_size
        epoch, order = None, None
        for step in range(self.start_step, self.steps):
            step_epoch, position = divmod(step, self.steps_per_epoch)
            if step_epoch != epoch:
                epoch, order = step_epoch, self.permutation(step_epoch)
            for part in range(self.accumulation):
                start = position * self.batch_size + part * micro + self.rank * share
                yield [(epoch, int(i)) for i in order[start : start + share]]
