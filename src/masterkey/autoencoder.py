"""Autoencoder for normalised depthwise kernels (methods.md section 4, [A], [Q]).

Architecture (:class:`KernelAutoencoder`): a multilayer perceptron on the flattened ``k x k``
kernel.  Encoder ``k^2 -> w_1 -> ... -> w_n -> latent_dim`` with GELU between layers and a
sigmoid on the code, so every latent coordinate lies in ``[0, 1]`` (default ``latent_dim = 1``,
``hidden_widths = (128, 64)``); the decoder mirrors it, ``latent_dim -> w_n -> ... -> w_1 -> k^2``.
The decoder output is centre-normed (mean subtracted, unit l2 norm) because its inputs are, and
because the reconstruction loss only sees directions.

Loss: the cosine reconstruction loss ``1 - <x, x_rec> / (||x|| ||x_rec||)``, averaged over the
batch.  Optimiser: Adam with a cosine-annealed learning rate over all steps, mini-batches from a
seeded permutation per epoch.

Restarts: a 1-D code can settle in a local minimum where two kernel types share one stretch of
the latent axis (the decoder then returns their blend); :func:`train_autoencoder` can train several
models from different seeds and keep the one with the lowest reconstruction loss.

Threads: training on the CPU uses one intra-op thread by default (the layers are tiny; more threads
only add synchronisation and were several times slower on a busy 2-core machine).

Determinism: :func:`train_autoencoder` seeds weight initialisation and batch order from ``seed``
(inside :func:`torch.random.fork_rng`, so the caller's RNG state is untouched) and runs with
``torch.use_deterministic_algorithms(True)``; on CPU two runs with the same seed, data and thread
count give bitwise identical weights.  CUDA is used when available (never required); GPU results
are reproducible up to floating-point reduction order.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .errors import UserError
from .io import atomic_paths

__all__ = [
    "KernelAutoencoder",
    "cosine_loss",
    "default_device",
    "train_autoencoder",
    "encode",
    "decode",
    "save_autoencoder",
    "load_autoencoder",
]

FORMAT = "masterkey-autoencoder-1"


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


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def _deterministic():
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@contextmanager
def _num_threads(threads: int | None):
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _as_tensor(kernels: np.ndarray, device: torch.device) -> torch.Tensor:
    kernels = np.asarray(kernels, dtype=np.float32)
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
        raise UserError(f"kernels must have shape (N, k, k), got {kernels.shape}")
    if not np.isfinite(kernels).all():
        raise UserError("kernels for the autoencoder contain NaN or inf; normalise them first (center norm)")
    return torch.from_numpy(np.ascontiguousarray(kernels.reshape(len(kernels), -1))).to(device)


def train_autoencoder(
    kernels: np.ndarray,
    latent_dim: int = 1,
    hidden_widths: Sequence[int] = (128, 64),
    epochs: int = 30,
    batch_size: int = 1024,
    learning_rate: float = 3e-3,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
    threads: int | None = 1,
    restarts: int = 1,
) -> tuple[KernelAutoencoder, pd.DataFrame]:
    """Train a :class:`KernelAutoencoder` on normalised kernels ``(N, k, k)``.

    With ``restarts > 1`` that many models are trained from the seeds ``seed + 1000 r``
    (``r = 0 .. restarts - 1``) and the one with the lowest reconstruction loss on all ``kernels``
    (eval mode, after training) is kept, ties to the first: a 1-D code is prone to local minima
    in which two kernel types share one stretch of the latent axis.

    Returns ``(model, history)`` with the model in eval mode on the CPU and ``history`` one row
    per epoch and restart: ``restart, seed, epoch, loss`` (mean training loss), ``seconds``,
    ``final_loss`` (the selection criterion) and ``selected``.  See the module docstring for the
    loss, optimiser and determinism.  On the CPU training runs with ``threads`` intra-op threads
    (default 1: the layers are tiny, so more threads only add synchronisation, which is several
    times slower on a busy machine); ``None`` keeps torch's setting.
    """
    if len(kernels) == 0:
        raise UserError("no kernels to train the autoencoder on")
    if restarts < 1:
        raise UserError(f"restarts must be at least 1, got {restarts}")
    device = default_device(device)
    data = _as_tensor(kernels, device)
    cpu_threads = threads if device.type == "cpu" else None
    best, histories = None, []
    with _deterministic(), _num_threads(cpu_threads):
        for restart in range(restarts):
            run_seed = int(seed) + 1000 * restart
            model, rows = _train_once(
                data, latent_dim, hidden_widths, epochs, batch_size, learning_rate, run_seed, progress
            )
            final = _mean_loss(model, data, max(batch_size, 65536))
            history = pd.DataFrame(rows, columns=["epoch", "loss", "seconds"])
            history.insert(0, "seed", run_seed)
            history.insert(0, "restart", restart)
            history["final_loss"] = final
            histories.append(history)
            if best is None or final < best[1]:
                best = (model, final, restart)
            if restarts > 1 and progress:
                print(f"autoencoder restart {restart + 1}/{restarts} (seed {run_seed}): loss {final:.4f}")
    history = pd.concat(histories, ignore_index=True)
    history["selected"] = history["restart"] == best[2]
    return best[0].cpu().eval(), history


def _mean_loss(model: KernelAutoencoder, data: torch.Tensor, batch_size: int) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            batch = data[start : start + batch_size]
            total += float(cosine_loss(batch, model(batch))) * len(batch)
    return total / len(data)


def _train_once(data, latent_dim, hidden_widths, epochs, batch_size, learning_rate, seed, progress):
    n, k = len(data), int(round(data.shape[1] ** 0.5))
    device = data.device
    steps_per_epoch = -(-n // batch_size)
    rows = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = KernelAutoencoder(k, latent_dim, hidden_widths).to(device)
        optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimiser, T_max=max(1, epochs * steps_per_epoch)
        )
        generator = torch.Generator().manual_seed(int(seed))
        bar = tqdm(
            range(1, epochs + 1), desc="autoencoder", unit="epoch", disable=not progress, mininterval=1.0
        )
        model.train()
        for epoch in bar:
            started = time.perf_counter()
            order = torch.randperm(n, generator=generator).to(device)
            total = torch.zeros((), device=device, dtype=torch.float64)
            for start in range(0, n, batch_size):
                batch = data[order[start : start + batch_size]]
                loss = cosine_loss(batch, model(batch))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                total += loss.detach().double() * len(batch)
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
    device = default_device(device)
    model = model.to(device).eval()
    try:
        if len(kernels) == 0:
            return np.zeros((0, model.latent_dim), dtype=np.float32)
        with _deterministic():
            return _batched(model, model.encode, _as_tensor(kernels, device), batch_size)
    finally:
        model.cpu()


def decode(model: KernelAutoencoder, latents: np.ndarray, batch_size: int = 65536) -> np.ndarray:
    """Centre-normed kernels decoded from latent codes ``(M, latent_dim)`` -> float32 ``(M, k, k)`` (CPU)."""
    latents = torch.from_numpy(np.ascontiguousarray(latents, dtype=np.float32).reshape(len(latents), -1))
    if latents.shape[1] != model.latent_dim:
        raise UserError(
            f"latent codes have {latents.shape[1]} coordinates, the autoencoder {model.latent_dim}"
        )
    model = model.cpu().eval()
    with _deterministic():
        out = _batched(model, model.decode, latents, batch_size)
    return out.reshape(len(latents), model.kernel_size, model.kernel_size)


def save_autoencoder(
    model: KernelAutoencoder, path: str | Path, history: pd.DataFrame | None = None, extra: dict | None = None
) -> None:
    """Save the weights, architecture, training history and ``extra`` metadata (atomically)."""
    payload = {
        "format": FORMAT,
        "config": model.config(),
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "history": {} if history is None else {c: history[c].tolist() for c in history.columns},
        "extra": dict(extra or {}),
    }
    buffer = io.BytesIO()  # not the temporary file: torch.save records the file name in the archive
    torch.save(payload, buffer)
    with atomic_paths(path) as (temp,):
        temp.write_bytes(buffer.getvalue())


def load_autoencoder(path: str | Path) -> tuple[KernelAutoencoder, dict]:
    """Load a model saved by :func:`save_autoencoder`: ``(model, payload)``, model in eval mode on the CPU."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"autoencoder file {path} does not exist; run the train_autoencoder rule") from None
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a broken file
        raise UserError(f"autoencoder file {path} is unreadable ({err}); delete it and rerun") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not a masterkey autoencoder file; delete it and rerun train_autoencoder")
    model = KernelAutoencoder(**payload["config"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload
