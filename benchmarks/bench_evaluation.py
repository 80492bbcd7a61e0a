"""Throughput of the evaluation layer: decoding into the uint8 cache, and inference with and without it.

Usage::

    python benchmarks/bench_evaluation.py [--images 512] [--inference-images 192]
        [--model convnext_atto.d2_in1k] [--device auto|cpu|cuda] [--workers 2] [--batch-size 64]
        [--threads 2] [--repeats 1] [--skip-demo]

1. A folder of ``--images`` generated JPEGs (500 x 375, quality 90, ten ImageNet class folders) is
   decoded with the checkpoint's timm eval preprocessing into the uint8 cache
   (:func:`masterkey.data.evalcache.build_eval_cache`) with 1 and with ``--workers`` processes.
2. Inference of the model (random weights: speed only) on the first ``--inference-images``:
   from the cache (:func:`masterkey.training.evaluate.evaluate`), against the usual pipeline without a
   cache in the same run - a torch DataLoader with ``--workers`` processes decoding the JPEGs with
   timm's full eval transform (``timm.data.create_transform``, normalised) feeding the same model
   with the same settings (channels-last, bf16 autocast and pinned copies on CUDA).  ``ratio`` is
   cached over uncached throughput; both must agree on top-1 against the folder labels.
3. The demo set (config defaults: 16 classes x 64 crops of 64 x 64): building it
   (``masterkey.data.demo.demo_dataset(settings, seed).eval_set()``) and inference from memory,
   against rebuilding it for every evaluation, with the demo weights when
   ``resources/weights/demo.safetensors`` exists.  (The former third demo timing, inference from a
   float cache file of the demo set, is gone with the float caches: only uint8 pixel caches of
   image folders exist, and the demo set is always built in memory.)

``--device auto`` runs the CPU and, when present, CUDA.  Each timing is the best of ``--repeats``
runs after one warm-up batch.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # the table says it all

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from masterkey.data.evalcache import build_eval_cache, load_eval_cache  # noqa: E402
from masterkey.data.imagenet import find_imagenet_images  # noqa: E402
from masterkey.data.preprocessing import preprocessing_for_model  # noqa: E402
from masterkey.training.evaluate import evaluate, to_model_input, topk_correct  # noqa: E402
from masterkey.training.runtime import resolve_device  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def make_folder(root: Path, count: int, seed: int = 0) -> None:
    """``count`` 500 x 375 JPEGs with smooth structure and noise, spread over ten wnid class folders."""
    from PIL import Image
    from timm.data import ImageNetInfo

    wnids = ImageNetInfo().label_names()[:10]
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:375, 0:500] / 500
    for i in range(count):
        f = rng.uniform(0.5, 6, (3, 3))
        pixels = np.stack([np.sin(2 * np.pi * (a * x + b * y) + c) for a, b, c in f], -1)
        pixels = 100 * (1 + pixels) + rng.uniform(0, 55, (375, 500, 3))
        folder = root / wnids[i % 10]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"img_{i:05d}.JPEG", quality=90)


class FolderDataset(torch.utils.data.Dataset):
    """The no-cache baseline: decode and fully transform (timm, normalised) every image on access."""

    def __init__(self, paths, labels, transform):
        self.paths, self.labels, self.transform = paths, labels, transform

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as image:
            return self.transform(image.convert("RGB")), int(self.labels[i])


def evaluate_uncached(model, paths, labels, preprocessing, device, batch_size, workers) -> dict:
    """Same model settings as :func:`evaluate`, images decoded on the fly by a DataLoader."""
    from timm.data import create_transform

    p = preprocessing
    transform = create_transform(
        p.input_size,
        crop_pct=p.crop_pct,
        crop_mode=p.crop_mode,
        interpolation=p.interpolation,
        mean=p.mean,
        std=p.std,
    )
    cuda = device.type == "cuda"
    dataset = FolderDataset(paths, labels, transform)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, num_workers=workers if workers > 1 else 0, pin_memory=cuda
    )
    model.eval().to(device=device, memory_format=torch.channels_last)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    correct = torch.zeros(2, dtype=torch.int64, device=device)
    started = time.perf_counter()
    with torch.inference_mode(), amp:
        for images, target in loader:
            logits = model(to_model_input(images, None, None, device))
            correct += topk_correct(logits.float(), target.to(device, non_blocking=True))
    if cuda:
        torch.cuda.synchronize(device)
    return timing(len(paths), time.perf_counter() - started, top1=int(correct[0]) / len(paths))


def timing(images: int, seconds: float, **extra) -> dict:
    return {"images": images, "seconds": seconds, "images_per_second": images / seconds, **extra}


def best(repeats: int, *calls) -> list[dict]:
    """The fastest of ``repeats`` runs of each function (no arguments) in ``calls``; the calls take
    turns, so a change in the machine's load hits all of them alike."""
    results = [[] for _ in calls]
    for _ in range(repeats):
        for runs, function in zip(results, calls, strict=True):
            runs.append(function())
    return [min(runs, key=lambda r: r["seconds"]) for runs in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=512, help="generated JPEGs to decode")
    parser.add_argument("--inference-images", type=int, default=192, help="images for the inference timings")
    parser.add_argument(
        "--model", default="convnext_atto.d2_in1k", help="timm checkpoint name (preprocessing)"
    )
    parser.add_argument("--device", default="auto", help="auto (CPU, and CUDA when present), cpu or cuda")
    parser.add_argument("--workers", type=int, default=2, help="decoding processes of the parallel runs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()

    import timm

    torch.set_num_threads(args.threads)
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    if args.device != "auto":
        devices = [resolve_device(args.device)]
    preprocessing = preprocessing_for_model(args.model)
    architecture = args.model.partition(".")[0]
    batch, repeats = args.batch_size, args.repeats
    rows = []

    def row(what, device, workers, result, ratio=None, note=""):
        rows.append((what, str(device), workers, result, ratio, note))

    with tempfile.TemporaryDirectory(prefix="bench_evaluation_") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        make_folder(tmp / "val", args.images)
        print(f"generated {args.images} JPEGs 500x375 in {time.perf_counter() - started:.1f} s", flush=True)
        paths, labels = find_imagenet_images(tmp / "val")
        size = f"{preprocessing.input_size[1]}px {preprocessing.interpolation}"
        for workers in sorted({1, args.workers}):
            started = time.perf_counter()
            cache = build_eval_cache(
                paths, labels, preprocessing, tmp / f"cache{workers}.npy", workers=workers
            )
            row(
                f"decode -> uint8 cache ({size})",
                "cpu",
                workers,
                timing(len(paths), time.perf_counter() - started),
            )
        eval_set = load_eval_cache(cache, preprocessing)
        n = min(args.inference_images, len(paths))
        for device in devices:
            torch.manual_seed(0)
            model = timm.create_model(architecture, pretrained=False)
            evaluate(model, eval_set, batch_size=batch, device=device, max_images=batch)  # warm-up
            run_cached = partial(evaluate, model, eval_set, batch_size=batch, device=device, max_images=n)
            run_uncached = partial(
                evaluate_uncached, model, paths[:n], labels[:n], preprocessing, device, batch, args.workers
            )
            cached, uncached = best(repeats, run_cached, run_uncached)
            agree = "top-1 agrees" if cached["top1"] == uncached["top1"] else "top-1 DIFFERS"
            row(
                f"inference {architecture}, on-the-fly decoding (no cache)",
                device,
                args.workers,
                uncached,
                1.0,
            )
            ratio = cached["images_per_second"] / uncached["images_per_second"]
            row(f"inference {architecture}, from uint8 cache", device, "-", cached, ratio, agree)

        if not args.skip_demo:
            from masterkey.core.config import validate_config
            from masterkey.data.demo import DemoSettings, demo_dataset

            config = validate_config({"models": ["demo"]})
            demo = DemoSettings.from_config(config)
            started = time.perf_counter()
            demo_set = demo_dataset(demo, config["seed"]).eval_set()
            build = timing(len(demo_set), time.perf_counter() - started)
            row("demo set: demo_dataset(...).eval_set()", "cpu", "-", build)
            weights = REPO / "resources" / "weights"
            for device in devices:
                if (weights / "demo.safetensors").is_file():
                    from masterkey.nets.checkpoints import load_checkpoint

                    model, _ = load_checkpoint(weights / "demo.safetensors", weights / "demo.json")
                    note = "trained demo weights"
                else:
                    model = timm.create_model(
                        demo.architecture, num_classes=len(demo.images), **demo.model_kwargs
                    )
                    note = "random weights"
                evaluate(model, demo_set, batch_size=batch, device=device, max_images=batch)  # warm-up
                (memory,) = best(repeats, partial(evaluate, model, demo_set, batch_size=batch, device=device))
                rebuilt = timing(memory["images"], memory["seconds"] + build["seconds"])
                row("demo inference, set rebuilt each time", device, "-", rebuilt, 1.0)
                speedup = memory["images_per_second"] / rebuilt["images_per_second"]
                row(
                    "demo inference, set in memory",
                    device,
                    "-",
                    memory,
                    speedup,
                    f"{note}; top-1 {memory['top1']:.3f}",
                )

    print(f"\nmodel {args.model}: {preprocessing.as_dict()}, key {preprocessing.key()}")
    print(f"torch threads {args.threads}, batch {batch}, best of {repeats}; CPU cores {os.cpu_count()}\n")
    header = ("what", "device", "workers", "images", "seconds", "images/s", "ratio", "note")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for what, device, workers, result, ratio, note in rows:
        ratio = f"{ratio:.2f}" if ratio is not None else ""
        print(
            f"| {what} | {device} | {workers} | {result['images']} | {result['seconds']:.2f} "
            f"| {result['images_per_second']:.1f} | {ratio} | {note} |"
        )


if __name__ == "__main__":
    main()
