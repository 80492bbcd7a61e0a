"""Entry point of each torchrun process: ``python -m masterkey.training.worker JOB.json``.

``JOB.json`` holds ``{"task": "module:function", "params": {...}}``
(:func:`masterkey.training.distributed.launch` writes it); the task joins the process group
itself (:func:`masterkey.training.distributed.distributed_context`).
"""

import json
import sys

import torch.distributed as dist

from .distributed import resolve_task


def main(path: str) -> None:
    with open(path) as handle:
        job = json.load(handle)
    try:
        resolve_task(job["task"])(**job["params"])
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
