"""Throughput of the shift-invariance measures ([C]): images per second of the per-filter analysis
of a filter bank, against the strided convolution of the same filters (the baseline).

Usage::

    python benchmarks/bench_shiftinv.py [--images 32] [--size 320] [--batch 8] [--repeats 3]
        [--device cpu|cuda|auto] [--threads N]

Per filter bank - the DT-CWPT of depth 2 and 3 (32 and 128 complex filters, the equivalent filters
at input resolution) and the first layer of a ResNet-18 (64 RGB 7x7 kernels, stride 2, 3x3/2 max
pooling) - on ``--images`` random ``--size`` x ``--size`` grayscale images, float32:

* ``measures``: :func:`masterkey.shiftinv.analysis.filter_analysis` (descriptors, responses by FFT,
  RMax and CMod on the original and 2 shifted grids, the norms): the workflow's rule job, minus I/O;
* ``DT-CWPT forward`` (DT-CWPT banks only): the separable torch transform of the same images;
* ``strided conv``: ``F.conv2d`` of the images with the real parts of the filters at stride m
  (the baseline, ratio 1.00) - what one forward pass of the layer itself costs.

Time: the median of ``--repeats`` runs after one warm-up, ``torch.cuda.synchronize`` on CUDA.
images/s = images / time; ``ratio`` = time / the baseline's time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import timm  # noqa: E402

from masterkey.shiftinv import DTCWPT, equivalent_filters, filter_analysis  # noqa: E402


def timed(run, repeats: int, device: torch.device) -> float:
    run()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def banks() -> dict[str, tuple[np.ndarray, int]]:
    """Name -> (filters, subsampling m)."""
    torch.manual_seed(0)
    resnet = timm.create_model("resnet18").conv1.weight.detach().double().numpy()
    return {"DT-CWPT J=2": (equivalent_filters(2), 2), "DT-CWPT J=3": (equivalent_filters(3), 4),
            "ResNet-18 conv1": (resnet, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))  # fmt: skip
    images = torch.rand(args.images, args.size, args.size, generator=torch.Generator().manual_seed(0))
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    load = os.getloadavg()[0]
    threads = torch.get_num_threads()
    print(f"device {device} ({gpu}), torch {torch.__version__}, threads {threads}, load {load:.1f}")
    print(f"{args.images} images of {args.size}x{args.size}, float32")
    print(f"| {'filter bank':<16} | {'operation':<16} | {'s':>8} | {'images/s':>9} | {'ratio':>6} |")
    print(f"|{'-' * 18}|{'-' * 18}|{'-' * 10}|{'-' * 11}|{'-' * 8}|")
    gray = images.to(device)[:, None]
    for name, (filters, m) in banks().items():
        real = torch.as_tensor(np.real(filters), dtype=torch.float32)
        weight = (real.sum(1) if real.ndim == 4 else real)[:, None].to(device)  # the filters on a gray input
        runs = {
            "strided conv": partial(F.conv2d, gray, weight, stride=m),
            "measures": partial(
                filter_analysis,
                images,
                filters,
                m,
                device=str(device),
                batch_size=args.batch,
                margin=filters.shape[-1] // 2 + 1,
            ),  # fmt: skip
        }
        if name.startswith("DT-CWPT"):
            runs["DT-CWPT forward"] = partial(DTCWPT(int(name[-1])).to(device), gray)
        base = timed(runs["strided conv"], args.repeats, device)
        for operation, run in runs.items():
            seconds = base if operation == "strided conv" else timed(run, args.repeats, device)
            print(f"| {name:<16} | {operation:<16} | {seconds:8.3f} | {args.images / seconds:9.1f} | "
                  f"{seconds / base:6.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
