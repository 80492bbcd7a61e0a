"""Selection of a small set of master key filters ([Q], methods.md section 4).

1. **Candidates** (:func:`candidate_latents`, :func:`decode_candidates`): the autoencoder's decoder
   applied to an evenly spaced grid of latent values in ``[0, 1]`` (``num_candidates`` values,
   default 50, endpoints included, for a 1-D code; for a ``d``-dimensional code the product grid
   of ``ceil(num_candidates ** (1/d))`` values per axis).  Candidates are centre-normed.
2. **Approximation** (:func:`approximate`): every learned filter ``h`` is approximated as
   ``a x_hat + b`` with ``x_hat`` a centred unit-norm candidate, ``a = <x_hat, h>`` and
   ``b = mean(h)``.  Its squared residual is ``||h_c||^2 (1 - <x_hat, h_hat>^2)`` with ``h_c`` the
   centred filter and ``h_hat = h_c / ||h_c||``; the *relative* error
   ``e(h, x) = 1 - <x_hat, h_hat>^2`` in [0, 1] is used so that every filter weighs the same
   regardless of its amplitude.  The sign of ``a`` is free, so a filter and its negation are
   approximated equally well.
3. **Greedy removal** (:func:`greedy_selection`): starting from all candidates, repeatedly remove
   the candidate whose removal increases the mean error ``mean_h min_{x in S} e(h, x)`` least,
   down to one candidate, recording the error curve; the set at size ``K`` (default 8) is the
   selection.  Ties are broken towards the lowest candidate index.

Vectorisation: the error matrix ``E = 1 - (H X^T)^2`` (``N x C``, float32, one matrix product) is
computed once.  For each filter the best and second-best remaining candidates are kept; the
cost of removing candidate ``c`` is ``sum_{h: best(h) = c} (E[h, second(h)] - E[h, c])`` (one
``bincount``).  After a removal only the filters whose best or second-best was ``c`` are updated.
The Python loop runs over candidates, never over filters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import UserError
from .similarity import center_norm

__all__ = [
    "candidate_latents",
    "decode_candidates",
    "approximation_errors",
    "approximate",
    "greedy_selection",
    "SelectionResult",
    "select_master_keys",
    "compare_with_published",
]


def candidate_latents(num_candidates: int = 50, latent_dim: int = 1) -> np.ndarray:
    """Evenly spaced latent values in ``[0, 1]``: ``(C, latent_dim)`` float32 (see module docstring)."""
    if num_candidates < 1:
        raise UserError(f"num_candidates must be at least 1, got {num_candidates}")
    if latent_dim == 1:
        return np.linspace(0.0, 1.0, num_candidates, dtype=np.float32)[:, None]
    per_axis = max(2, math.ceil(num_candidates ** (1.0 / latent_dim)))
    axis = np.linspace(0.0, 1.0, per_axis, dtype=np.float32)
    mesh = np.meshgrid(*([axis] * latent_dim), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def decode_candidates(model, num_candidates: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Candidates decoded from the latent grid: ``(latents (C, d), kernels (C, k, k))``, centre-normed."""
    from .autoencoder import decode

    latents = candidate_latents(num_candidates, model.latent_dim)
    return latents, center_norm(decode(model, latents)).astype(np.float32)


def _unit_rows(kernels: np.ndarray, what: str) -> np.ndarray:
    kernels = np.asarray(kernels)
    flat = center_norm(kernels.reshape(len(kernels), 1, -1)).reshape(len(kernels), -1).astype(np.float32)
    if not np.isfinite(flat).all():
        raise UserError(
            f"{what} contain NaN, inf or constant kernels; drop them before the master key selection"
        )
    return flat


def approximation_errors(kernels: np.ndarray, candidates: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Relative errors ``E[n, c] = 1 - <x_hat_c, h_hat_n>^2``: float32 ``(N, C)``.

    ``kernels`` ``(N, k, k)`` and ``candidates`` ``(C, k, k)`` are centre-normed here (already
    normalised input is unchanged).  Computed in row chunks (one matrix product each).
    """
    x = _unit_rows(candidates, "candidates")
    out = np.empty((len(kernels), len(x)), dtype=np.float32)
    for start in range(0, len(kernels), chunk):
        h = _unit_rows(kernels[start : start + chunk], "kernels")
        dots = h @ x.T
        out[start : start + len(h)] = np.clip(1.0 - dots * dots, 0.0, 1.0)
    return out


def approximate(kernels: np.ndarray, candidates: np.ndarray) -> dict[str, np.ndarray]:
    """Best ``a x_hat + b`` approximation of every (raw) kernel by one of the candidates.

    Returns ``{"index": (N,) best candidate, "a": (N,), "b": (N,), "error": (N,) relative error,
    "approximation": (N, k, k)}`` (float64 except ``index``).
    """
    kernels = np.asarray(kernels, dtype=np.float64)
    x = center_norm(np.asarray(candidates, dtype=np.float64)).reshape(len(candidates), -1)
    flat = kernels.reshape(len(kernels), -1)
    b = flat.mean(axis=1)
    dots = (flat - b[:, None]) @ x.T
    index = np.abs(dots).argmax(axis=1)
    a = dots[np.arange(len(flat)), index]
    centred_sq = ((flat - b[:, None]) ** 2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        error = np.where(centred_sq > 0, 1.0 - a * a / centred_sq, 0.0)
    approximation = a[:, None] * x[index] + b[:, None]
    return {
        "index": index,
        "a": a,
        "b": b,
        "error": np.clip(error, 0.0, 1.0),
        "approximation": approximation.reshape(kernels.shape),
    }


def _best_two(errors: np.ndarray, rows: np.ndarray, active: np.ndarray, chunk: int = 1 << 16):
    """Best and second-best active candidate for ``rows`` (second = best when only one is active)."""
    columns = np.flatnonzero(active)
    best = np.empty(len(rows), dtype=np.int64)
    second = np.empty(len(rows), dtype=np.int64)
    for start in range(0, len(rows), chunk):
        part = errors[rows[start : start + chunk]][:, columns]
        first = part.argmin(axis=1)
        if len(columns) > 1:
            part[np.arange(len(part)), first] = np.inf
            other = part.argmin(axis=1)
        else:
            other = first
        best[start : start + len(part)] = columns[first]
        second[start : start + len(part)] = columns[other]
    return best, second


@dataclass
class SelectionResult:
    """Result of :func:`greedy_selection`.

    ``selected``: sorted candidate indices kept at size ``K``; ``curve``: one row per set size
    from ``C`` down to 1 with ``size, mean_error, removed`` (the candidate removed to reach that
    size; -1 for the full set); ``order``: the candidates in removal order.
    """

    selected: np.ndarray
    curve: pd.DataFrame
    order: np.ndarray


def greedy_selection(errors: np.ndarray, num_keep: int) -> SelectionResult:
    """Greedy backward elimination on an error matrix ``(N, C)`` (see module docstring)."""
    errors = np.asarray(errors, dtype=np.float32)
    n, c = errors.shape
    if not 1 <= num_keep <= c:
        raise UserError(f"cannot keep {num_keep} of {c} candidates; need 1 <= K <= {c}")
    if n == 0:
        raise UserError("no kernels to select master keys for")
    active = np.ones(c, dtype=bool)
    rows = np.arange(n)
    best, second = _best_two(errors, rows, active)
    sizes, means, removed_list = [c], [float(errors[rows, best].astype(np.float64).mean())], [-1]
    selected = np.arange(c) if num_keep == c else None
    while active.sum() > 1:
        gain = errors[rows, second].astype(np.float64) - errors[rows, best].astype(np.float64)
        cost = np.bincount(best, weights=gain, minlength=c)
        cost[~active] = np.inf
        removed = int(np.argmin(cost))
        active[removed] = False
        affected = np.flatnonzero((best == removed) | (second == removed))
        if len(affected):
            best[affected], second[affected] = _best_two(errors, affected, active)
        sizes.append(int(active.sum()))
        means.append(float(errors[rows, best].astype(np.float64).mean()))
        removed_list.append(removed)
        if sizes[-1] == num_keep:
            selected = np.flatnonzero(active)
    curve = pd.DataFrame({"size": sizes, "mean_error": means, "removed": removed_list})
    order = np.array(removed_list[1:] + [int(np.flatnonzero(active)[0])], dtype=np.int64)
    return SelectionResult(np.asarray(selected, dtype=np.int64), curve, order)


@dataclass
class MasterKeys:
    """Selected master key filters: ``keys`` ``(K, k, k)`` float32 centre-normed, their ``latents``
    ``(K, d)``, candidate ``indices``, all ``candidates`` and the ``selection``."""

    keys: np.ndarray
    latents: np.ndarray
    indices: np.ndarray
    candidates: np.ndarray
    candidate_latents: np.ndarray
    selection: SelectionResult


def select_master_keys(
    kernels: np.ndarray, candidates: np.ndarray, num_keys: int = 8, latents: np.ndarray | None = None
) -> MasterKeys:
    """Greedy selection of ``num_keys`` of ``candidates`` ``(C, k, k)`` for the normalised ``kernels``."""
    candidates = np.asarray(candidates, dtype=np.float32)
    if kernels.shape[1:] != candidates.shape[1:]:
        raise UserError(f"kernels {kernels.shape[1:]} and candidates {candidates.shape[1:]} differ in size")
    errors = approximation_errors(kernels, candidates)
    selection = greedy_selection(errors, num_keys)
    latents = np.zeros((len(candidates), 0), np.float32) if latents is None else np.asarray(latents)
    unit = center_norm(candidates).astype(np.float32)
    return MasterKeys(
        unit[selection.selected], latents[selection.selected], selection.selected, unit, latents, selection
    )


def compare_with_published(keys: np.ndarray, published: np.ndarray) -> pd.DataFrame:
    """Each key's best ``|cosine|`` with the published filters (centred), the published filter's
    1-based number, and the key's automatic idealized type (:func:`masterkey.clustering.prototype_types`)."""
    from .clustering import prototype_types

    a = center_norm(keys).reshape(len(keys), -1)
    b = center_norm(published).reshape(len(published), -1)
    cosine = a @ b.T
    best = np.abs(cosine).argmax(axis=1)
    types, type_cosine = prototype_types(keys)
    return pd.DataFrame(
        {
            "key": np.arange(1, len(keys) + 1),
            "type": types,
            "type_cosine": type_cosine,
            "closest_published": best + 1,
            "abs_cosine": np.abs(cosine[np.arange(len(keys)), best]),
            "sign": np.sign(cosine[np.arange(len(keys)), best]).astype(int),
        }
    )
