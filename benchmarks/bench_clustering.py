"""Time and peak memory of each step of the clustering stage on synthetic kernels.

    python benchmarks/bench_clustering.py --n 1000000 [--epochs 2] [--threads 2]

Synthetic data: ``n`` 7x7 kernels, noisy copies (random amplitude, offset and sign) of 12
idealized templates plus 10 % pure noise, split over two "models" of 8 layers each.
Steps (same functions as the rules): normalisation/pooling, autoencoder training (a fixed
number of epochs; the per-epoch time is reported), encoding, k-means on the latent codes,
k-means on the raw normalised kernels (fitted on a subsample of ``--raw-fit`` kernels, all
assigned), prototypes + classified shares, master key selection (decoding 50 candidates, the
``N x 50`` error matrix, greedy removal to 8).  Baselines measured in the same run: a naive
per-kernel Python loop for the master key errors, and a naive greedy removal that recomputes
the mean error for every trial removal, both on ``--naive`` kernels and extrapolated linearly.

Peak memory is the peak resident set size increase of the process during the step
(``ru_maxrss`` can only grow, so it is sampled by a background thread from ``/proc``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np
import pandas as pd
import torch

from masterkey.clustering.autoencoder import decode, encode, train_autoencoder
from masterkey.clustering.clusters import (
    classification_table,
    cluster_pool,
    cosine_to_prototypes,
    kmeans_assign,
    member_prototypes,
)
from masterkey.clustering.master_keys import approximation_errors, decode_candidates, greedy_selection
from masterkey.clustering.pool import pool_arrays
from masterkey.clustering.settings import ClusteringSettings
from masterkey.kernels.similarity import centre_norm
from masterkey.scalespace.templates import TYPE_NAMES, idealized_templates


def rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class PeakMemory:
    """Samples the resident set size every 20 ms; ``peak`` is the largest increase over the start."""

    def __init__(self):
        self.start = rss_mb()
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb() - self.start)
            time.sleep(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb() - self.start)


ROWS: list[dict] = []


@contextmanager
def step(name: str, note: str = ""):
    started = time.perf_counter()
    with PeakMemory() as memory:
        yield
    seconds = time.perf_counter() - started
    ROWS.append({"step": name, "seconds": seconds, "peak_mem_mb": memory.peak, "note": note})
    print(f"  {name}: {seconds:.2f} s, +{memory.peak:.0f} MB {note}", file=sys.stderr, flush=True)


def synthetic_kernels(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    templates = [
        idealized_templates(
            m, 7, 1.0, None if m in ("lap", "id-lap") else 1.2, 0.5 if m == "id-lap" else None
        )
        for m in TYPE_NAMES
    ]
    templates = centre_norm(np.stack(templates)).astype(np.float32)
    per_model = {}
    half = n // 2
    for m, count in (("model_a", half), ("model_b", n - half)):
        which = rng.integers(0, len(templates), count)
        kernels = templates[which] + rng.normal(0, 0.06, (count, 7, 7)).astype(np.float32)
        noise_rows = rng.random(count) < 0.1
        kernels[noise_rows] = rng.normal(0, 0.15, (int(noise_rows.sum()), 7, 7))
        kernels *= (rng.choice([-1, 1], count) * rng.uniform(0.05, 0.5, count)).astype(np.float32)[
            :, None, None
        ]
        layer = np.minimum(np.arange(count) * 8 // count, 7)
        index = pd.DataFrame(
            {
                "model": m,
                "layer": [f"stages.{i // 2}.blocks.{i % 2}.conv_dw" for i in layer],
                "stage": layer // 2,
                "block": layer % 2,
                "channel": np.arange(count) % 4096,
                "kernel_size": "7x7",
                "row": np.arange(count),
            }
        )
        per_model[m] = (kernels, index)
    return per_model


def naive_errors(kernels: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    out = np.empty((len(kernels), len(candidates)))
    for n, kernel in enumerate(kernels):
        h = kernel - kernel.mean()
        h = h / np.sqrt((h * h).sum())
        for c, candidate in enumerate(candidates):
            x = candidate - candidate.mean()
            x = x / np.sqrt((x * x).sum())
            out[n, c] = 1.0 - float((h * x).sum()) ** 2
    return out


def naive_greedy(errors: np.ndarray, num_keep: int) -> list[int]:
    active = list(range(errors.shape[1]))
    while len(active) > num_keep:
        costs = [errors[:, [c for c in active if c != r]].min(axis=1).mean() for r in active]
        active.pop(int(np.argmin(costs)))
    return active


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="number of kernels")
    parser.add_argument("--epochs", type=int, default=2, help="autoencoder epochs (timing only)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument(
        "--raw-fit", type=int, default=100_000, help="raw k-means fitted on this many kernels"
    )
    parser.add_argument("--naive", type=int, default=2000, help="kernels for the naive baselines")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=None, help="also write the table as CSV")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TQDM_DISABLE", "1")
    # exactly --epochs epochs of one autoencoder (min_steps 0, one restart): a timing, not a clustering
    settings = ClusteringSettings(
        k=args.k,
        max_kernels_per_model=None,
        raw_kmeans_max_kernels=args.raw_fit,
        batch_size=args.batch_size,
        kmeans_n_init=4,
        epochs=args.epochs,
        min_steps=0,
        restarts=1,
    )
    print(
        f"n = {args.n:,} kernels, {args.threads} torch threads, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        file=sys.stderr,
    )
    per_model = synthetic_kernels(args.n)
    total = time.perf_counter()

    with step("normalisation + pooling"):
        pool = pool_arrays(per_model, 7, None, 0, False)
    del per_model

    fit = pool.kernels
    with step(f"autoencoder training ({args.epochs} epochs)", f"batch {args.batch_size}, 1 thread"):
        model, history = train_autoencoder(fit, settings, seed=0, progress=False, cpu_threads=1)
    ROWS.append(
        {
            "step": "  per epoch",
            "seconds": float(history["seconds"].mean()),
            "peak_mem_mb": np.nan,
            "note": f"{-(-len(fit) // args.batch_size)} steps",
        }
    )
    with step("encoding"):
        latents = encode(model, pool.kernels)

    with step("k-means on latents", f"k={args.k}, n_init=4, all kernels"):
        kmeans_assign(latents, args.k, 0, 4)
    with step("k-means on raw kernels", f"fitted on {min(args.raw_fit, len(pool)):,}, all assigned"):
        raw_labels, _ = kmeans_assign(pool.kernels, args.k, 0, 4, max_fit=args.raw_fit, order="size")
    with step("prototypes + cosines + shares", "raw clustering"):
        protos = member_prototypes(pool.kernels, raw_labels, args.k)
        cosine = cosine_to_prototypes(pool.kernels, raw_labels, protos)
        table = pool.index.assign(cluster=raw_labels, cosine=cosine, classified=cosine >= 0.5)
        table = table.assign(raw_cosine=cosine, raw_classified=cosine >= 0.5)
        classification_table(table)
    with step("cluster_pool (whole cluster rule)", "both k-means, labels, tables"):
        result = cluster_pool(pool, latents, settings, 0, decode=lambda z: decode(model, z), progress=None)
    del result

    with step("master keys: decode 50 candidates"):
        _, candidates = decode_candidates(model, 50)
    with step("master keys: error matrix N x 50", "float32"):
        errors = approximation_errors(pool.kernels, candidates)
    with step("master keys: greedy removal 50 -> 1"):
        selection = greedy_selection(errors, 8)
    del errors

    subset = pool.kernels[: args.naive]
    with step(f"baseline: vectorised errors, {len(subset):,} kernels"):
        fast = approximation_errors(subset, candidates)
    fast_seconds = ROWS[-1]["seconds"]
    with step(f"baseline: naive per-kernel loop, {len(subset):,} kernels"):
        slow = naive_errors(subset, candidates)
    assert np.allclose(fast, slow, atol=1e-4)
    ROWS[-1]["note"] = f"x{ROWS[-1]['seconds'] / max(fast_seconds, 1e-9):.0f} slower; N={args.n:,}: ~" + (
        f"{ROWS[-1]['seconds'] * args.n / len(subset):.0f} s"
    )
    with step(f"baseline: vectorised greedy, {len(subset):,} kernels"):
        quick = greedy_selection(fast, 8)
    fast_seconds = ROWS[-1]["seconds"]
    with step(f"baseline: naive greedy (recompute all), {len(subset):,} kernels"):
        reference = naive_greedy(fast.astype(np.float64), 8)
    assert sorted(reference) == list(quick.selected)
    ROWS[-1]["note"] = f"x{ROWS[-1]['seconds'] / max(fast_seconds, 1e-9):.0f} slower"

    table = pd.DataFrame(ROWS)
    clustering_steps = ["normalisation + pooling", "encoding", "cluster_pool (whole cluster rule)"]
    clustering_seconds = table[table["step"].isin(clustering_steps)]["seconds"].sum()
    print(f"\nclustering stage without training (pool + encode + cluster rule): {clustering_seconds:.1f} s")
    print(f"all steps: {time.perf_counter() - total:.1f} s; master keys kept {selection.selected.tolist()}")
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
