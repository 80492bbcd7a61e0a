"""Data-parallel training: one process per GPU (or CPU worker), started by ``torchrun``.

:func:`launch` runs a *training task* (a ``"module:function"`` name and its JSON-able keyword
arguments) on ``nproc`` processes: with one process it calls the task in the current process;
with more it starts ``python -m torch.distributed.run --standalone --nproc-per-node N`` on
:mod:`masterkey.training.worker`, which calls the same task in every process.  Inside the task,
:func:`distributed_context` joins the process group that torchrun's environment describes
(``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``): NCCL on GPUs, gloo on the CPU.  The training code is
the same at 1 and at N processes; only the model is wrapped in ``DistributedDataParallel`` when
there is more than one (:mod:`masterkey.training.engine`).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .runtime import resolve_device

__all__ = ["DistributedContext", "distributed_context", "barrier", "launch", "resolve_task"]


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the run: ``rank`` of ``world_size``, ``local_rank`` on its node,
    and the ``device`` it trains on (``cuda:<local_rank>`` or the CPU)."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True for rank 0, the process that writes files and logs."""
        return self.rank == 0

    @property
    def backend(self) -> str | None:
        """``nccl`` on GPUs, ``gloo`` on the CPU, None for a single process."""
        if self.world_size == 1:
            return None
        return "nccl" if self.device.type == "cuda" else "gloo"


def distributed_context(device: str | None = None) -> DistributedContext:
    """The context of this process, joining torchrun's process group when ``WORLD_SIZE > 1``.

    ``device``: ``"cpu"``, ``"cuda"`` or None (CUDA when present).  Each process of a GPU run
    takes the GPU of its ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device)
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    context = DistributedContext(rank, local, world, device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(context.backend)
    return context


def barrier(context: DistributedContext) -> None:
    """Wait for every process (nothing to wait for in a single-process run)."""
    if context.world_size > 1:
        dist.barrier()


def resolve_task(task: str):
    """The function named ``"package.module:function"``."""
    module, _, name = task.partition(":")
    return getattr(importlib.import_module(module), name)


def launch(task: str, params: Mapping, nproc: int = 1, *, threads: int | None = None) -> None:
    """Run ``task(**params)`` on ``nproc`` processes (see the module docstring).

    Parameters
    ----------
    task : str
        ``"module:function"`` of the training task; every process calls it with ``params``.
    params : mapping
        Its keyword arguments (JSON-able: they travel to the workers as a file).
    nproc : int
        Processes: one per GPU of the job (or CPU processes with gloo).
    threads : int, optional
        CPU threads of the whole job; each of the ``nproc`` processes gets ``threads // nproc``.

    Raises
    ------
    RuntimeError
        When a worker fails (its traceback is in the log, torchrun prints which rank).
    """
    if nproc <= 1:
        resolve_task(task)(**params)
        return
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump({"task": task, "params": dict(params)}, handle)
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(max(1, threads // nproc))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        "-m",
        "masterkey.training.worker",
        handle.name,
    ]
    print("launch:", " ".join(command), flush=True)
    try:
        result = subprocess.run(command, env=env)
    finally:
        os.unlink(handle.name)
    if result.returncode:
        raise RuntimeError(
            f"torchrun of {task} on {nproc} processes failed with exit status {result.returncode}"
        )
