"""Pooling the depthwise kernels of all models for the clustering, one pool per kernel size ([A]).

(docs/methods.md section 4.2.)  Each odd square size ``k x k`` (``k >= 3``) is pooled on its own:
the autoencoder works on ``k^2``-dimensional vectors, so kernels of different sizes would have to
be resampled to share one latent code.  The sizes are ``clustering.kernel_sizes``, or every odd
square size in the models' kernel indices (:func:`resolve_kernel_sizes`); every random choice of a
size is seeded from ``(seed, k)`` (:func:`size_seed`), so adding a size changes no other size's
result.

Within a pool the kernels of every model are put into one array, in model order, then layer and
channel order as in the kernel index.  Each kernel is centre-normed
(:func:`masterkey.kernels.similarity.centre_norm`); kernels with ``max |h| <= NEAR_ZERO`` (1e-4)
and constant kernels are dropped and counted per model.  With ``flip_sign`` (off by default, as in
[A]) each normalised kernel is negated when needed so that its entry of largest magnitude is
positive.  At most ``max_kernels_per_model`` kernels per model (a seeded random subset,
``numpy.random.default_rng([seed, crc32(model)])``) form the *fitting sample* of the autoencoder
and the k-means centroids, so that one large model does not dominate; every kernel of the pool is
still encoded, assigned and reported.  *Held-out* models (``held_out``: the NIFF networks of [D],
docs/methods.md section 7) are pooled, encoded, assigned and reported like the others but never
enter the fitting sample, the cluster prototypes or the master key selection
(:attr:`KernelPool.reference_mask`), so that they are classified against types learned without
them.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import ConfigError, StaleFileError
from ..kernels.shapes import not_analysed_message
from ..kernels.similarity import NEAR_ZERO, centre_norm
from ..kernels.store import has_scale_space_model, kernel_key, load_index, load_kernels, parse_kernel_key
from .settings import ClusteringSettings

__all__ = [
    "POOL_COLUMNS",
    "KernelPool",
    "square_size",
    "kernel_sizes_present",
    "resolve_kernel_sizes",
    "size_seed",
    "normalise_kernels",
    "pool_arrays",
    "pool_models",
    "latents_table",
    "latents_for_pool",
]

POOL_COLUMNS = ["model", "layer", "stage", "block", "channel", "kernel_size", "row", "fit"]
"""Columns of :attr:`KernelPool.index` (``kernel_size``: the store key, e.g. ``"7x7"``; ``row``: the
kernel's row in its model's array of that size; ``fit``: the kernel is in the fitting sample)."""


def square_size(key: str) -> int | None:
    """``k`` of a kernel store key ``"kxk"`` with ``k`` odd and ``>= 3``; None for any other shape.

    >>> square_size("7x7"), square_size("1x11"), square_size("4x4")
    (7, None, None)
    """
    height, _, width = str(key).partition("x")
    if not (height.isdigit() and height == width):
        return None
    k = int(height)
    return k if k >= 3 and k % 2 == 1 else None


def kernel_sizes_present(indices: Iterable[pd.DataFrame]) -> list[int]:
    """The odd square sizes ``k >= 3`` in the ``kernel_size`` column of kernel indices, ascending.

    >>> import pandas as pd
    >>> kernel_sizes_present([pd.DataFrame({"kernel_size": ["7x7", "1x11"]}),
    ...                       pd.DataFrame({"kernel_size": ["3x3", "7x7"]})])
    [3, 7]
    """
    keys = {key for index in indices for key in pd.unique(index["kernel_size"])}
    return sorted({k for k in map(square_size, keys) if k is not None})


def resolve_kernel_sizes(configured: Sequence[int] | None, present: Sequence[int]) -> list[int]:
    """The kernel sizes to cluster: ``configured`` (``clustering.kernel_sizes``) or, for None, every
    size ``present`` in the models; ascending, each once (docs/methods.md section 4.2).

    Raises
    ------
    ConfigError
        (``clustering.kernel_sizes``) if no model has an odd square kernel, or a configured size is
        not among those present; the message lists the sizes present.

    >>> resolve_kernel_sizes(None, [3, 5]), resolve_kernel_sizes([5], [3, 5])
    ([3, 5], [5])
    """
    names = ", ".join(kernel_key(k, k) for k in present) or "none"
    if not present:
        raise ConfigError(
            "clustering.kernel_sizes", "no model has odd square depthwise kernels (3x3, 5x5, 7x7, ...)"
        )
    if configured is None:
        return sorted(set(present))
    missing = sorted(set(configured) - set(present))
    if missing:
        absent = ", ".join(kernel_key(k, k) for k in missing)
        raise ConfigError(
            "clustering.kernel_sizes",
            f"no model has {absent} kernels; the models have {names} "
            "(list some of these, or null for all of them)",
        )
    return sorted(set(configured))


def size_seed(seed: int, kernel_size: int) -> int:
    """The seed of everything random for one kernel size: a 31-bit integer derived from
    ``(seed, kernel_size)`` by :class:`numpy.random.SeedSequence`, so the pools of different sizes
    draw independent streams and adding a size changes no other size's result.

    >>> size_seed(0, 7) == size_seed(0, 7) != size_seed(0, 3)
    True
    """
    return int(np.random.SeedSequence([int(seed), int(kernel_size)]).generate_state(1)[0] >> 1)


def normalise_kernels(kernels: np.ndarray, flip_sign: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Centre-normed kernels and the mask of kept ones ([A]; docs/methods.md section 4.2).

    Parameters
    ----------
    kernels : array ``(N, k, k)``
        Kernels ``h[row, col]`` (docs/methods.md section 1).
    flip_sign : bool
        Negate each normalised kernel whose entry of largest ``|value|`` is negative (off by
        default, as in [A]).

    Returns
    -------
    normalised : float32 array ``(N_kept, k, k)``
        Zero mean and unit l2 norm per kernel (:func:`~masterkey.kernels.similarity.centre_norm`).
    keep : bool array ``(N,)``
        False for dropped kernels: near zero (``max |h| <= NEAR_ZERO = 1e-4``) or constant.

    Raises
    ------
    ValueError
        If ``kernels`` is not ``(N, k, k)`` or a kernel has NaN or inf entries.

    >>> import numpy as np
    >>> h = np.random.default_rng(0).normal(size=(3, 3, 3))
    >>> h[1], h[2] = 1e-5, 2.0  # near zero, constant
    >>> out, keep = normalise_kernels(h)
    >>> keep.tolist(), abs(float(out.sum())) < 1e-6, round(float((out * out).sum()), 5)
    ([True, False, False], True, 1.0)
    """
    kernels = np.asarray(kernels)
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
        raise ValueError(f"kernels must have shape (N, k, k), got {kernels.shape}")
    if not np.isfinite(kernels).all():
        bad = int((~np.isfinite(kernels)).any(axis=(1, 2)).sum())
        raise ValueError(f"{bad} kernel(s) contain NaN or inf")
    n = len(kernels)
    keep = np.abs(kernels).reshape(n, -1).max(axis=1, initial=0.0) > NEAR_ZERO
    out = np.empty((int(keep.sum()),) + kernels.shape[1:], dtype=np.float32)
    kept_rows = np.flatnonzero(keep)
    chunk = 1 << 17
    for start in range(0, len(kept_rows), chunk):
        rows = kept_rows[start : start + chunk]
        out[start : start + len(rows)] = centre_norm(kernels[rows])
    flat = out.reshape(len(out), -1)
    finite = np.isfinite(flat).all(axis=1)  # constant kernels became NaN
    if not finite.all():
        keep[kept_rows[~finite]] = False
        out = out[finite]
        flat = out.reshape(len(out), -1)
    if flip_sign and len(out):
        peak = flat[np.arange(len(flat)), np.abs(flat).argmax(axis=1)]
        flat *= np.where(peak < 0, -1.0, 1.0).astype(np.float32)[:, None]
    return out, keep


@dataclass
class KernelPool:
    """Normalised kernels of one size ``k x k`` from all models.

    ``kernels``: float32 ``(N, k, k)`` centre-normed; ``index``: one row per kernel with
    :data:`POOL_COLUMNS`; ``counts``: one row per model with ``model, kernel_size, kernels`` (of
    this size), ``near_zero`` (dropped), ``pooled`` and ``fit`` (in the fitting sample).
    """

    kernels: np.ndarray
    index: pd.DataFrame
    counts: pd.DataFrame
    held_out: tuple[str, ...] = ()

    @property
    def fit_mask(self) -> np.ndarray:
        return self.index["fit"].to_numpy(bool)

    @property
    def reference_mask(self) -> np.ndarray:
        """Kernels of the models that define the types: every model but the held-out ones."""
        return ~self.index["model"].isin(self.held_out).to_numpy(bool)

    @property
    def kernel_size(self) -> int:
        """``k`` of the pooled ``k x k`` kernels."""
        return int(self.kernels.shape[-1])

    @property
    def key(self) -> str:
        """The kernel store key of the size, e.g. ``"7x7"``."""
        return kernel_key(self.kernel_size, self.kernel_size)

    def __len__(self) -> int:
        return len(self.kernels)


COUNT_COLUMNS = ["model", "kernel_size", "kernels", "near_zero", "pooled", "fit"]


def _fit_sample(n: int, cap: int | None, seed: int, model: str) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    if cap is not None and n > cap:
        rng = np.random.default_rng([int(seed), zlib.crc32(model.encode())])
        mask[:] = False
        mask[rng.choice(n, size=cap, replace=False)] = True
    return mask


def _pool_size(per_model, kernel_size, max_per_model, seed, flip_sign, held_out=()) -> KernelPool:
    """:func:`pool_arrays` without its check for an empty pool."""
    held_out = tuple(held_out)
    key = kernel_key(kernel_size, kernel_size)
    parts, indices, counts = [], [], []
    for model, (array, index) in per_model.items():
        rows = index[index["kernel_size"] == key] if "kernel_size" in index else index
        if array is None or len(rows) == 0:
            counts.append({"model": model, "kernel_size": key, "kernels": 0, "near_zero": 0, "pooled": 0,
                           "fit": 0})  # fmt: skip
            continue
        array = np.asarray(array)
        if array.shape[1:] != (kernel_size, kernel_size):
            raise ValueError(f"model {model}: kernels of key {key} have shape {array.shape[1:]}")
        row_ids = rows["row"].to_numpy(np.int64)
        if row_ids.max(initial=-1) >= len(array):
            raise ValueError(f"model {model}: the kernel index and the kernel array disagree")
        try:
            normalised, keep = normalise_kernels(array[row_ids], flip_sign)
        except ValueError as err:
            raise ValueError(f"model {model}: {err}") from None
        kept = rows[keep]
        fit = _fit_sample(len(kept), max_per_model, seed, model) & (model not in held_out)
        table = pd.DataFrame(
            {
                "model": model,
                "layer": kept["layer"].to_numpy(),
                "stage": kept["stage"].to_numpy(np.int32),
                "block": kept["block"].to_numpy(np.int32),
                "channel": kept["channel"].to_numpy(np.int32),
                "kernel_size": key,
                "row": kept["row"].to_numpy(np.int64),
                "fit": fit,
            }
        )
        parts.append(normalised)
        indices.append(table)
        counts.append(
            {
                "model": model,
                "kernel_size": key,
                "kernels": len(rows),
                "near_zero": int((~keep).sum()),
                "pooled": len(kept),
                "fit": int(fit.sum()),
            }
        )
    counts = pd.DataFrame(counts, columns=COUNT_COLUMNS)
    if not indices:
        empty = np.zeros((0, kernel_size, kernel_size), np.float32)
        return KernelPool(empty, pd.DataFrame(columns=POOL_COLUMNS), counts, held_out)
    index = pd.concat(indices, ignore_index=True)
    for column in ("model", "layer", "kernel_size"):
        index[column] = index[column].astype(str)
    return KernelPool(np.concatenate(parts), index[POOL_COLUMNS], counts, held_out)


def pool_arrays(
    per_model: Mapping[str, tuple[np.ndarray, pd.DataFrame]],
    kernel_size: int = 7,
    max_per_model: int | None = None,
    seed: int = 0,
    flip_sign: bool = False,
    held_out: Iterable[str] = (),
) -> KernelPool:
    """Pool ``{model: (arrays_of_that_size, index)}`` (see the module docstring; docs/methods.md s. 4.2).

    Parameters
    ----------
    per_model : mapping of str to (array ``(n, k, k)`` or None, DataFrame)
        Per model, the array of the requested kernel size and the kernel index rows (rows of
        other sizes are ignored); the array row of an index row is its ``row`` column.  Models
        are pooled in mapping order.
    kernel_size : int
        ``k`` of the pooled kernels.
    max_per_model : int or None
        Cap of the per-model fitting sample (seeded random subset); None: every kernel.
    seed : int
        Seed of the fitting sample (the workflow passes :func:`size_seed`).
    flip_sign : bool
        Sign rule of :func:`normalise_kernels`.
    held_out : iterable of str
        Models pooled but kept out of the fitting sample and the reference kernels (see the
        module docstring).

    Returns
    -------
    KernelPool
        ``kernels`` float32 ``(N, k, k)`` centre-normed, ``index`` (:data:`POOL_COLUMNS`) and
        per-model ``counts``.

    Raises
    ------
    ConfigError
        (``clustering.kernel_sizes``) when no model has kernels of that size; (``models``) when
        every kernel is near zero.
    ValueError
        When an array has a shape other than ``(n, k, k)``, an index disagrees with its array, or
        a kernel is not finite (:func:`pool_models` names the stale file instead).

    >>> import numpy as np, pandas as pd
    >>> h = np.random.default_rng(0).normal(size=(3, 3, 3)); h[1] = 1e-5
    >>> index = pd.DataFrame({"layer": ["l0", "l0", "l1"], "stage": [0, 0, 1], "block": 0,
    ...                       "channel": [0, 1, 0], "kernel_size": "3x3", "row": [0, 1, 2]})
    >>> pool = pool_arrays({"m": (h, index)}, kernel_size=3, max_per_model=1)
    >>> pool.counts.values.tolist(), pool.index["row"].tolist()
    ([['m', '3x3', 3, 1, 2, 1]], [0, 2])
    """
    pool = _pool_size(per_model, kernel_size, max_per_model, seed, flip_sign, held_out)
    if len(pool) == 0:
        key, names = kernel_key(kernel_size, kernel_size), ", ".join(per_model) or "(none)"
        total = int(pool.counts["kernels"].sum())
        if total:
            raise ConfigError(
                "models", f"all {total} {key} kernels of models {names} are near zero (max |h| <= 1e-4)"
            )
        raise ConfigError(
            "clustering.kernel_sizes",
            f"no {key} kernels in models {names}; use a size the models have "
            "(see the kernel_size column of results/kernels/<model>.parquet)",
        )
    return pool


def _read_model(model: str, npz_path, index_path) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    index, arrays = load_index(index_path), load_kernels(npz_path)
    index = index[index["model"] == model]
    for key in pd.unique(index["kernel_size"]):
        array, rows = arrays.get(key), index[index["kernel_size"] == key]
        if array is None or rows["row"].max() >= len(array):
            raise StaleFileError(index_path, f"does not match the kernel file {npz_path}")
    return arrays, index


def pool_models(
    models: Sequence[str],
    kernel_paths: Sequence[str | Path],
    index_paths: Sequence[str | Path],
    settings: ClusteringSettings,
    seed: int,
    capped: bool = True,
    say: Callable[[str], None] | None = print,
    held_out: Iterable[str] = (),
) -> dict[str, KernelPool]:
    """One :class:`KernelPool` per kernel size to cluster, keyed ``"kxk"`` in ascending size.

    Reads the kernel files of ``models`` (``kernels.npz`` and ``index.parquet``, parallel lists as
    the clustering rules get them), resolves the sizes (:func:`resolve_kernel_sizes` with
    ``settings.kernel_sizes``) and pools each with ``seed = size_seed(seed, k)`` and the settings'
    sign rule (:func:`pool_arrays`); ``capped`` applies ``settings.max_kernels_per_model`` to the
    fitting sample (docs/methods.md section 4.2); ``held_out`` models are pooled but never fitted
    on (see the module docstring).

    A size with fewer than ``settings.k`` kernels in its (capped) fitting sample cannot be
    clustered: with ``kernel_sizes`` null it is left out with one line to ``say``; a configured
    one raises.  The choice is the same whatever ``capped``, so every rule gets the same sizes.

    Raises
    ------
    ConfigError
        (``clustering.kernel_sizes``) for a configured size no model has, or one with too few
        kernels; (``clustering.k``) when no size has enough kernels.
    StaleFileError
        Naming a kernel file that is missing, unreadable, not finite or disagrees with its index.
    """
    say = say or (lambda message: None)
    paths = dict(zip(models, kernel_paths, strict=True))
    per_model = {
        model: _read_model(model, npz, index)
        for model, npz, index in zip(models, kernel_paths, index_paths, strict=True)
    }
    sizes = resolve_kernel_sizes(
        settings.kernel_sizes, kernel_sizes_present(index for _, index in per_model.values())
    )
    for model, (arrays, _) in per_model.items():  # band kernels: counted in the log, never silently
        if not all(has_scale_space_model(*parse_kernel_key(key)) for key in arrays):
            say(f"{model}: {not_analysed_message(arrays, 'clustered')}")
    cap = settings.max_kernels_per_model
    pools, left_out = {}, []
    for k in sizes:
        key = kernel_key(k, k)
        arrays = {model: (arrays.get(key), index) for model, (arrays, index) in per_model.items()}
        for model, (array, _) in arrays.items():
            if array is not None and not np.isfinite(array).all():
                raise StaleFileError(paths[model], f"holds {key} kernels with NaN or inf")
        sample_cap = cap if capped else None
        pool = _pool_size(arrays, k, sample_cap, size_seed(seed, k), settings.flip_sign, held_out)
        reference = pool.counts[~pool.counts["model"].isin(pool.held_out)]
        fitted = int(np.minimum(reference["pooled"], cap if cap is not None else np.inf).sum())
        if fitted >= settings.k:
            pools[key] = pool
            continue
        why = f"{key}: {fitted} non-zero kernels to fit, fewer than clustering.k = {settings.k}"
        if settings.kernel_sizes is not None:
            raise ConfigError("clustering.kernel_sizes", f"{why}; drop {k} or lower clustering.k")
        left_out.append(why)
    if left_out:
        say(f"clustering: left out {'; '.join(left_out)}")
    if not pools:
        raise ConfigError("clustering.k", f"no kernel size can be clustered ({'; '.join(left_out)})")
    return pools


def latents_table(pool: KernelPool, latents: np.ndarray) -> pd.DataFrame:
    """The pool's index with the latent codes as columns ``latent_0, ...`` (docs/methods.md s. 4.3).

    The table the rule ``train_autoencoder`` writes and :func:`latents_for_pool` reads.

    Parameters
    ----------
    pool : KernelPool
        ``N`` pooled kernels.
    latents : array ``(N, latent_dim)``
        Their latent codes.

    Returns
    -------
    pandas.DataFrame
        ``N`` rows: :data:`POOL_COLUMNS` then ``latent_0 .. latent_{latent_dim - 1}``.

    >>> import numpy as np, pandas as pd
    >>> pool = KernelPool(np.zeros((1, 3, 3)), pd.DataFrame([["m", "l", 0, 0, 0, "3x3", 0, True]],
    ...                   columns=POOL_COLUMNS), pd.DataFrame())
    >>> latents_table(pool, np.array([[0.25, 0.5]]))[["kernel_size", "latent_0", "latent_1"]].values.tolist()
    [['3x3', 0.25, 0.5]]
    """
    table = pool.index.copy()
    for column in range(latents.shape[1]):
        table[f"latent_{column}"] = latents[:, column]
    return table


def latents_for_pool(pool: KernelPool, latents_path: str | Path) -> np.ndarray:
    """The ``latent_*`` columns ``(N, latent_dim)`` of the latents table (written by the rule
    ``train_autoencoder``: the tables of :func:`latents_table` of every size, stacked) for ``pool``.

    Raises :class:`StaleFileError` unless the table's rows of the pool's ``kernel_size`` list the
    same kernels in the same order (``model, layer, channel``).
    """
    from ..core.io import read_parquet

    table = read_parquet(latents_path)
    if "kernel_size" in table:
        table = table[table["kernel_size"] == pool.key]
    columns = sorted(
        (c for c in table.columns if c.startswith("latent_")), key=lambda c: int(c.split("_")[1])
    )
    keys = ["model", "layer", "channel", "kernel_size"]
    same = (
        columns
        and len(table) == len(pool)
        and all(c in table and np.array_equal(table[c].to_numpy(), pool.index[c].to_numpy()) for c in keys)
    )
    if not same:
        raise StaleFileError(
            latents_path,
            f"does not match the pooled {pool.key} kernels (the kernels or the clustering settings changed)",
        )
    return table[columns].to_numpy(np.float32)
