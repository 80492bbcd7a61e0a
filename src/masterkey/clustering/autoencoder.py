"""Autoencoder for normalised depthwise kernels ([A], [Q]; docs/methods.md section 4).

One autoencoder per kernel size (:func:`train_autoencoders`; the pools of
:func:`masterkey.clustering.pool.pool_models`), saved together in one file
(:func:`save_autoencoders`, :func:`load_autoencoders`).

Architecture (:class:`KernelAutoencoder`): a multilayer perceptron on the flattened ``k x k``
kernel.  Encoder ``k^2 -> w_1 -> ... -> w_n -> latent_dim`` with GELU between layers and a
sigmoid on the code, so every latent coordinate lies in ``[0, 1]`` (default ``latent_dim = 1``,
``hidden_widths = (128, 64)``); the decoder mirrors it, ``latent_dim -> w_n -> ... -> w_1 -> k^2``.
The decoder output is centre-normed (mean subtracted, unit l2 norm) because its inputs are, and
because the reconstruction loss only sees directions.

Loss: the cosine reconstruction loss ``1 - <x, x_rec> / (||x|| ||x_rec||)``, averaged over the
batch.  Optimiser: Adam with a cosine-annealed learning rate over all steps, mini-batches from a
seeded permutation per epoch, through the project's training loop
(:func:`masterkey.training.loop.training_steps`).

Restarts: a 1-D code can settle in a local minimum where two kernel types share one stretch of
the latent axis (the decoder then returns their blend); :func:`train_autoencoder` can train several
models from different seeds and keep the one with the lowest reconstruction loss.

Threads: training on the CPU uses one intra-op thread by default (the layers are tiny; more threads
only add synchronisation and were several times slower on a busy 2-core machine).

Determinism: :func:`train_autoencoder` seeds weight initialisation and batch order from ``seed``
(inside :func:`torch.random.fork_rng`, so the caller's RNG state is untouched) and runs with
``torch.use_deterministic_algorithms(True)``; on CPU two runs with the same seed, data and thread
count give bitwise identical weights (:func:`masterkey.training.runtime.deterministic`).  CUDA is
used when available (never required); GPU results
are reproducible up to floating-point reduction order.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.errors import StaleFileError
from ..core.io import atomic_paths
from ..training.evaluate import MeanLoss, evaluate, tensor_batches
from ..training.loop import training_steps
from ..training.runtime import deterministic, resolve_device, threads
from .pool import KernelPool, size_seed
from .settings import ClusteringSettings

__all__ = [
    "KernelAutoencoder",
    "cosine_loss",
    "train_autoencoder",
    "train_autoencoders",
    "encode",
    "decode",
    "save_autoencoders",
    "load_autoencoders",
]

FORMAT = "masterkey-autoencoder-2"


class KernelAutoencoder(nn.Module):
    """MLP autoencoder ``k^2 -> widths -> latent (sigmoid) -> reversed widths -> k^2`` (centre-normed)."""

    def __init__(self, kernel_size: int = 7, latent_dim: int = 1, hidden_widths: Sequence[int] = (128, 64)):
        super().__init__()
        self.kernel_size = int(kernel_size)
        self.latent_dim = int(latent_dim)
        self.hidden_widths = tuple(int(w) for w in hidden_widths)
        size = self.kernel_size**2
        widths = [size, *self.hidden_widths]
        encoder: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            encoder += [nn.Linear(a, b), nn.GELU()]
        encoder += [nn.Linear(widths[-1], self.latent_dim), nn.Sigmoid()]
        decoder: list[nn.Module] = []
        back = [self.latent_dim, *reversed(self.hidden_widths)]
        for a, b in zip(back[:-1], back[1:], strict=True):
            decoder += [nn.Linear(a, b), nn.GELU()]
        decoder.append(nn.Linear(back[-1], size))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)

    def config(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "latent_dim": self.latent_dim,
            "hidden_widths": list(self.hidden_widths),
        }

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, k, k)`` or ``(B, k^2)`` -> latent codes ``(B, latent_dim)`` in [0, 1]."""
        return self.encoder(x.reshape(len(x), -1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latent codes ``(B, latent_dim)`` -> centre-normed kernels ``(B, k, k)``."""
        out = self.decoder(z)
        out = out - out.mean(dim=1, keepdim=True)
        out = out / out.norm(dim=1, keepdim=True).clamp_min(1e-12)
        return out.reshape(len(z), self.kernel_size, self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def cosine_loss(x: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Mean of ``1 - cos(x, x_rec)`` over the batch (flattened kernels)."""
    x = x.reshape(len(x), -1)
    reconstruction = reconstruction.reshape(len(reconstruction), -1)
    return (1.0 - nn.functional.cosine_similarity(x, reconstruction, dim=1, eps=1e-12)).mean()


def _reconstruction_loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return cosine_loss(targets, outputs)


def _as_tensor(kernels: np.ndarray, device: torch.device) -> torch.Tensor:
    kernels = np.asarray(kernels, dtype=np.float32)
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
        raise ValueError(f"kernels must have shape (N, k, k), got {kernels.shape}")
    if not np.isfinite(kernels).all():
        raise ValueError("kernels for the autoencoder contain NaN or inf; centre-norm them first")
    return torch.from_numpy(np.ascontiguousarray(kernels.reshape(len(kernels), -1))).to(device)


def train_autoencoder(
    kernels: np.ndarray,
    settings: ClusteringSettings,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    cpu_threads: int | None = 1,
) -> tuple[KernelAutoencoder, pd.DataFrame]:
    """Train a :class:`KernelAutoencoder` on normalised kernels ``(N, k, k)``.

    Architecture, batch size, learning rate and restarts come from ``settings``; the number of
    epochs is :meth:`ClusteringSettings.epochs_for` the number of kernels.  With ``restarts > 1``
    that many models are trained from the seeds ``seed + 1000 r`` (``r = 0 .. restarts - 1``) and
    the one with the lowest reconstruction loss on all ``kernels`` (eval mode, after training) is
    kept, ties to the first: a 1-D code is prone to local minima in which two kernel types share
    one stretch of the latent axis.

    Returns ``(model, history)`` with the model in eval mode on the CPU and ``history`` one row
    per epoch and restart: ``restart, seed, epoch, loss`` (mean training loss), ``seconds``,
    ``final_loss`` (the selection criterion) and ``selected``.  On the CPU training runs with
    ``cpu_threads`` intra-op threads (default 1: the layers are tiny, so more threads only add
    synchronisation, which is several times slower on a busy machine); ``None`` keeps torch's
    setting.  Raises ``ValueError`` for no kernels or a wrong shape.
    """
    if len(kernels) == 0:
        raise ValueError("no kernels to train the autoencoder on")
    device = resolve_device(device)
    data = _as_tensor(kernels, device)
    epochs = settings.epochs_for(len(kernels))
    best, histories = None, []
    with deterministic(), threads(cpu_threads if device.type == "cpu" else None):
        for restart in range(settings.restarts):
            run_seed = int(seed) + 1000 * restart
            model, rows = _train_once(data, settings, epochs, run_seed, progress)
            metric = MeanLoss(_reconstruction_loss, "loss")
            batches = tensor_batches(data, data, max(settings.batch_size, 65536))
            final = evaluate(model, batches, [metric], device=device, channels_last=False)["loss"]
            history = pd.DataFrame(rows, columns=["epoch", "loss", "seconds"])
            history.insert(0, "seed", run_seed)
            history.insert(0, "restart", restart)
            history["final_loss"] = final
            histories.append(history)
            if best is None or final < best[1]:
                best = (model, final, restart)
            if settings.restarts > 1 and progress:
                print(
                    f"autoencoder restart {restart + 1}/{settings.restarts} (seed {run_seed}): "
                    f"loss {final:.4f}"
                )
    history = pd.concat(histories, ignore_index=True)
    history["selected"] = history["restart"] == best[2]
    return best[0].cpu().eval(), history


def _train_once(data: torch.Tensor, settings: ClusteringSettings, epochs: int, seed: int, progress: bool):
    n, k = len(data), int(round(data.shape[1] ** 0.5))
    device = data.device
    batch_size = settings.batch_size
    steps_per_epoch = -(-n // batch_size)
    rows = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = KernelAutoencoder(k, settings.latent_dim, settings.hidden_widths).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=max(1, epochs * steps_per_epoch)
        )
        generator = torch.Generator().manual_seed(int(seed))
        bar = tqdm(
            range(1, epochs + 1), desc="autoencoder", unit="epoch", disable=not progress, mininterval=1.0
        )
        for epoch in bar:
            started = time.perf_counter()
            order = torch.randperm(n, generator=generator).to(device)
            batches = ((batch, batch) for batch in (data[rows_] for rows_ in order.split(batch_size)))
            total = torch.zeros((), device=device, dtype=torch.float64)
            for step in training_steps(model, batches, optimiser, _reconstruction_loss, scheduler=schedule):
                total += step.loss.double() * step.size
            mean_loss = float(total) / n
            rows.append({"epoch": epoch, "loss": mean_loss, "seconds": time.perf_counter() - started})
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        bar.close()
    return model, rows


def _batched(model: KernelAutoencoder, fn, inputs: torch.Tensor, batch_size: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            out.append(fn(inputs[start : start + batch_size]).cpu())
    if not out:
        return np.zeros((0,), dtype=np.float32)
    return torch.cat(out).numpy().astype(np.float32)


def encode(
    model: KernelAutoencoder,
    kernels: np.ndarray,
    batch_size: int = 65536,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Latent codes of normalised kernels ``(N, k, k)`` -> float32 ``(N, latent_dim)``."""
    device = resolve_device(device)
    model = model.to(device).eval()
    try:
        if len(kernels) == 0:
            return np.zeros((0, model.latent_dim), dtype=np.float32)
        with deterministic():
            return _batched(model, model.encode, _as_tensor(kernels, device), batch_size)
    finally:
        model.cpu()


def decode(model: KernelAutoencoder, latents: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Centre-normed kernels decoded from latent codes ``(M, latent_dim)`` -> float32 ``(M, k, k)`` (CPU)."""
    latents = torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32).reshape(len(latents), -1))
    if latents.shape[1] != model.latent_dim:
        raise ValueError(
            f"latent codes have {latents.shape[1]} coordinates, the autoencoder {model.latent_dim}"
        )
    model = model.cpu().eval()
    with deterministic():
        out = _batched(model, model.decode, latents, batch_size)
    return out.reshape(len(latents), model.kernel_size, model.kernel_size)


def train_autoencoders(
    pools: Mapping[str, KernelPool],
    settings: ClusteringSettings,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> tuple[dict[str, KernelAutoencoder], pd.DataFrame]:
    """One :func:`train_autoencoder` per pool (kernel size), on its fitting sample, seeded with
    :func:`~masterkey.clustering.pool.size_seed` ``(seed, k)`` (docs/methods.md section 4.3).

    Returns ``({key: model}, history)``: the models keyed like ``pools`` (``"7x7"``), and the
    histories stacked with a first column ``kernel_size``.
    """
    models, histories = {}, []
    for key, pool in pools.items():
        if progress:
            print(
                f"autoencoder for the {len(pool):,} pooled {key} kernels ({int(pool.fit_mask.sum()):,} fit)"
            )
        model, history = train_autoencoder(
            pool.kernels[pool.fit_mask], settings, size_seed(seed, pool.kernel_size), device, progress
        )
        models[key] = model
        histories.append(history.assign(kernel_size=key)[["kernel_size", *history.columns]])
        if progress:
            kept = history[history["selected"]]
            print(
                f"{key}: kept restart {kept['restart'].iloc[0]} of {settings.restarts}, loss "
                f"{kept['final_loss'].iloc[0]:.4f} after {len(kept)} epochs "
                f"({history['seconds'].sum():.1f} s)"
            )
    return models, pd.concat(histories, ignore_index=True)


def save_autoencoders(
    models: Mapping[str, KernelAutoencoder],
    path: str | Path,
    history: pd.DataFrame | None = None,
    extra: dict | None = None,
) -> None:
    """Save the autoencoders of every kernel size (``{"7x7": model, ...}``): weights, architecture,
    the training history and ``extra`` metadata, in one file (atomically; same bytes for the same
    models)."""
    payload = {
        "format": FORMAT,
        "models": {
            key: {
                "config": model.config(),
                "state_dict": {name: value.detach().cpu() for name, value in model.state_dict().items()},
            }
            for key, model in models.items()
        },
        "history": {} if history is None else {c: history[c].tolist() for c in history.columns},
        "extra": dict(extra or {}),
    }
    buffer = io.BytesIO()  # not the temporary file: torch.save records the file name in the archive
    torch.save(payload, buffer)
    with atomic_paths(path) as (temp,):
        temp.write_bytes(buffer.getvalue())


def load_autoencoders(
    path: str | Path, keys: Iterable[str] | None = None
) -> tuple[dict[str, KernelAutoencoder], dict]:
    """Load the autoencoders saved by :func:`save_autoencoders`: ``({key: model}, payload)``, models in
    eval mode on the CPU.

    Raises :class:`StaleFileError` for a missing, unreadable or foreign file, or one without an
    autoencoder for one of ``keys`` (the kernel sizes the caller pools).
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise StaleFileError(path, "does not exist") from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a broken file
        raise StaleFileError(path, f"is unreadable ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise StaleFileError(path, "is not a masterkey autoencoder file (of this version)")
    stored = payload["models"]
    missing = [key for key in (keys or []) if key not in stored]
    if missing:
        raise StaleFileError(
            path, f"holds autoencoders for {', '.join(stored) or 'no size'}, not for {', '.join(missing)}"
        )
    models = {}
    for key, entry in stored.items():
        model = KernelAutoencoder(**entry["config"])
        model.load_state_dict(entry["state_dict"])
        models[key] = model.eval()
    return models, payload
