"""Clustering learned depthwise kernels (methods.md section 4, [A]).

Pipeline (every step a plain function; the rules ``train_autoencoder`` and ``cluster`` call them):

1. **Pooling** (:func:`pool_kernels`, :func:`pool_arrays`): the kernels of the configured size
   (default ``7x7``) of every model are put into one array, in model order, then layer and
   channel order as in the kernel index.  Each kernel is normalised by "center norm"
   (:func:`masterkey.similarity.center_norm`: subtract the mean, divide by the l2 norm).  Kernels
   with ``max |h| <= NEAR_ZERO`` (1e-4) and constant kernels are dropped and counted per model.
   With ``flip_sign`` (off by default, as in [A]) each normalised kernel is negated when needed
   so that its entry of largest magnitude is positive.
2. **Fitting sample**: at most ``max_kernels_per_model`` kernels per model (a seeded random
   subset, ``numpy.random.default_rng([seed, crc32(model)])``) are used to *fit* the autoencoder
   and the k-means centroids, so that one large model does not dominate the pool.  Every kernel
   of the pool is then encoded, assigned and reported; the classified shares cover all kernels.
3. **k-means** (:func:`kmeans_assign`) with ``k`` clusters on the autoencoder's latent codes and,
   as a baseline, directly on the normalised kernels (fitted on at most
   ``raw_kmeans_max_kernels`` kernels of the fitting sample, seeded; all kernels are then
   assigned to the nearest centroid).  scikit-learn ``KMeans`` with ``random_state = seed`` and a
   fixed ``n_init``.  Cluster ids are made canonical: for the latent clustering they are sorted by
   the centroid's first latent coordinate (so clusters are numbered along the 1-D latent axis);
   for the raw baseline by decreasing size.
4. **Prototypes** (:func:`member_prototypes`): the centre-normed mean of a cluster's members; for
   the latent clustering also the decoded centroid.  A kernel's *cosine to its prototype* is the
   signed cosine ``<x_hat, p_hat>`` (no sign flip unless ``flip_sign``); the kernel is
   *classified* when it is at least ``threshold``.
5. **Labels** (:func:`label_prototypes`): the idealized model type (methods.md section 3) whose
   best fitted template has the largest ``|cosine|`` with the prototype, from
   :func:`masterkey.fitting.select_types`.
6. **Classified shares** (:func:`classification_table`) per model, per stage and per layer.

Choices not fixed by the spec (defaults in :class:`ClusteringSettings`): ``k = 12`` (one cluster
per idealized model type), ``threshold = 0.5`` (a cosine of 0.5 between centred 49-d vectors is
about 3.5 standard deviations above chance), ``restarts = 3`` autoencoders per training (the
lowest reconstruction loss is kept; a 1-D code can get stuck with two kernel types sharing one
stretch of the latent axis), and ``min_steps = 3000`` optimisation steps at least (epochs are
raised for small pools such as the demo).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import UserError
from .kernels import load_kernels
from .similarity import NEAR_ZERO, center_norm

__all__ = [
    "ClusteringSettings",
    "KernelPool",
    "POOL_COLUMNS",
    "normalise_kernels",
    "pool_arrays",
    "pool_kernels",
    "latents_for_pool",
    "kmeans_assign",
    "member_prototypes",
    "cosine_to_prototypes",
    "label_prototypes",
    "prototype_types",
    "ClusteringResult",
    "cluster_pool",
    "classification_table",
]

POOL_COLUMNS = ["model", "layer", "stage", "block", "channel", "row", "fit"]
"""Columns of :attr:`KernelPool.index` (``row``: the kernel's row in its model's ``.npz`` array;
``fit``: the kernel is in the fitting sample)."""


# --------------------------------------------------------------------------------------------------
# settings
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClusteringSettings:
    """The ``clustering:`` section of the config (see ``workflow/schemas/clustering.schema.snippet.yaml``)."""

    kernel_size: int = 7
    max_kernels_per_model: int | None = 100_000
    flip_sign: bool = False
    latent_dim: int = 1
    hidden_widths: tuple[int, ...] = (128, 64)
    epochs: int = 30
    min_steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 0.003
    restarts: int = 3
    k: int = 12
    kmeans_n_init: int = 4
    raw_kmeans_max_kernels: int = 100_000
    threshold: float = 0.5
    num_candidates: int = 50
    num_master_keys: int = 8

    def __post_init__(self):
        def check(condition, key, message):
            if not condition:
                raise UserError(f"config key clustering.{key}: {message}")

        check(
            isinstance(self.kernel_size, int) and self.kernel_size >= 3 and self.kernel_size % 2 == 1,
            "kernel_size",
            f"must be an odd integer >= 3, got {self.kernel_size!r}",
        )
        cap = self.max_kernels_per_model
        check(
            cap is None or (isinstance(cap, int) and cap >= 1),
            "max_kernels_per_model",
            f"must be a positive integer or null, got {cap!r}",
        )
        check(
            isinstance(self.latent_dim, int) and self.latent_dim >= 1,
            "latent_dim",
            f"must be a positive integer, got {self.latent_dim!r}",
        )
        check(
            all(isinstance(w, int) and w >= 1 for w in self.hidden_widths),
            "hidden_widths",
            f"must be a list of positive integers, got {list(self.hidden_widths)!r}",
        )
        for key in (
            "epochs",
            "restarts",
            "batch_size",
            "k",
            "kmeans_n_init",
            "raw_kmeans_max_kernels",
            "num_candidates",
            "num_master_keys",
        ):
            value = getattr(self, key)
            check(isinstance(value, int) and value >= 1, key, f"must be a positive integer, got {value!r}")
        check(
            isinstance(self.min_steps, int) and self.min_steps >= 0,
            "min_steps",
            f"must be a non-negative integer, got {self.min_steps!r}",
        )
        check(self.k >= 2, "k", f"needs at least 2 clusters, got {self.k}")
        check(
            isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0,
            "learning_rate",
            f"must be positive, got {self.learning_rate!r}",
        )
        check_threshold(self.threshold, "config key clustering.threshold")
        check(
            self.num_master_keys <= self.num_candidates,
            "num_master_keys",
            f"({self.num_master_keys}) must not exceed num_candidates ({self.num_candidates})",
        )

    @classmethod
    def from_config(cls, section: Mapping | None) -> ClusteringSettings:
        """Settings from the config's ``clustering`` mapping (missing keys take the defaults)."""
        section = dict(section or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            raise UserError(
                f"unknown config key(s) clustering.{', clustering.'.join(unknown)}; "
                f"allowed: {', '.join(sorted(known))}"
            )
        if "hidden_widths" in section:
            widths = section["hidden_widths"]
            if not isinstance(widths, (list, tuple)):
                raise UserError(f"config key clustering.hidden_widths: must be a list, got {widths!r}")
            section["hidden_widths"] = tuple(widths)
        return cls(**section)

    def epochs_for(self, num_kernels: int) -> int:
        """Epochs for ``num_kernels`` kernels: ``epochs``, raised to reach at least ``min_steps`` steps."""
        steps_per_epoch = max(1, -(-num_kernels // self.batch_size))
        return max(self.epochs, -(-self.min_steps // steps_per_epoch))

    def as_dict(self) -> dict:
        out = asdict(self)
        out["hidden_widths"] = list(self.hidden_widths)
        return out

    @property
    def kernel_key(self) -> str:
        return f"{self.kernel_size}x{self.kernel_size}"


def check_threshold(threshold, what: str = "threshold") -> float:
    """Return ``threshold`` as float if it is a number in [0, 1], else raise :class:`UserError`."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise UserError(f"{what} must be a cosine in [0, 1], got {threshold!r}")
    return float(threshold)


# --------------------------------------------------------------------------------------------------
# pooling and normalisation
# --------------------------------------------------------------------------------------------------
def normalise_kernels(kernels: np.ndarray, flip_sign: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Centre-normed kernels and the mask of kept ones.

    ``kernels``: ``(N, k, k)``.  Returns ``(normalised, keep)``: float32 ``(N_kept, k, k)`` and a
    boolean ``(N,)`` mask; dropped are near-zero kernels (``max |h| <= NEAR_ZERO``) and constant
    ones.  With ``flip_sign`` each kernel is negated when its entry of largest ``|value|`` is
    negative.  Raises :class:`UserError` for non-finite entries.
    """
    kernels = np.asarray(kernels)
    if kernels.ndim != 3 or kernels.shape[1] != kernels.shape[2]:
        raise UserError(f"kernels must have shape (N, k, k), got {kernels.shape}")
    if not np.isfinite(kernels).all():
        bad = int((~np.isfinite(kernels)).any(axis=(1, 2)).sum())
        raise UserError(f"{bad} kernel(s) contain NaN or inf; re-extract the kernels from a valid checkpoint")
    n = len(kernels)
    keep = np.abs(kernels).reshape(n, -1).max(axis=1, initial=0.0) > NEAR_ZERO
    out = np.empty((int(keep.sum()),) + kernels.shape[1:], dtype=np.float32)
    kept_rows = np.flatnonzero(keep)
    chunk = 1 << 17
    for start in range(0, len(kept_rows), chunk):
        rows = kept_rows[start : start + chunk]
        out[start : start + len(rows)] = center_norm(kernels[rows])
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
    """Normalised kernels of all models.

    ``kernels``: float32 ``(N, k, k)`` centre-normed; ``index``: one row per kernel with
    :data:`POOL_COLUMNS`; ``counts``: one row per model with ``model, kernels`` (of the requested
    size), ``near_zero`` (dropped), ``pooled`` and ``fit`` (in the fitting sample).
    """

    kernels: np.ndarray
    index: pd.DataFrame
    counts: pd.DataFrame

    @property
    def fit_mask(self) -> np.ndarray:
        return self.index["fit"].to_numpy(bool)

    def __len__(self) -> int:
        return len(self.kernels)


def _fit_sample(n: int, cap: int | None, seed: int, model: str) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    if cap is not None and n > cap:
        rng = np.random.default_rng([int(seed), zlib.crc32(model.encode())])
        mask[:] = False
        mask[rng.choice(n, size=cap, replace=False)] = True
    return mask


def pool_arrays(
    per_model: Mapping[str, tuple[np.ndarray, pd.DataFrame]],
    kernel_size: int = 7,
    max_per_model: int | None = None,
    seed: int = 0,
    flip_sign: bool = False,
) -> KernelPool:
    """Pool ``{model: (arrays_of_that_size, index)}`` (see :func:`pool_kernels`).

    ``arrays_of_that_size`` is the ``(n, k, k)`` array of the requested kernel size and ``index``
    the kernel index rows (any rows of other sizes are ignored); the array row of an index row is
    its ``row`` column.  Models are pooled in mapping order.
    """
    key = f"{kernel_size}x{kernel_size}"
    parts, indices, counts = [], [], []
    for model, (array, index) in per_model.items():
        rows = index[index["kernel_size"] == key] if "kernel_size" in index else index
        if array is None or len(rows) == 0:
            counts.append({"model": model, "kernels": 0, "near_zero": 0, "pooled": 0, "fit": 0})
            continue
        array = np.asarray(array)
        if array.shape[1:] != (kernel_size, kernel_size):
            raise UserError(f"model {model}: kernels of key {key} have shape {array.shape[1:]}")
        row_ids = rows["row"].to_numpy(np.int64)
        if row_ids.max(initial=-1) >= len(array):
            raise UserError(f"model {model}: kernel index and kernel array disagree; re-extract the kernels")
        try:
            normalised, keep = normalise_kernels(array[row_ids], flip_sign)
        except UserError as err:
            raise UserError(f"model {model}: {err}") from None
        kept = rows[keep]
        fit = _fit_sample(len(kept), max_per_model, seed, model)
        table = pd.DataFrame(
            {
                "model": model,
                "layer": kept["layer"].to_numpy(),
                "stage": kept["stage"].to_numpy(np.int32),
                "block": kept["block"].to_numpy(np.int32),
                "channel": kept["channel"].to_numpy(np.int32),
                "row": kept["row"].to_numpy(np.int64),
                "fit": fit,
            }
        )
        parts.append(normalised)
        indices.append(table)
        counts.append(
            {
                "model": model,
                "kernels": len(rows),
                "near_zero": int((~keep).sum()),
                "pooled": len(kept),
                "fit": int(fit.sum()),
            }
        )
    counts = pd.DataFrame(counts, columns=["model", "kernels", "near_zero", "pooled", "fit"])
    if not parts or sum(len(p) for p in parts) == 0:
        total = int(counts["kernels"].sum()) if len(counts) else 0
        names = ", ".join(per_model) or "(none)"
        if total:
            message = f"all {total} {key} kernels of models {names} are near zero (max |h| <= {NEAR_ZERO})"
        else:
            message = (
                f"no {key} kernels in models {names}; set clustering.kernel_size to a size the models have "
                "(see the kernel_size column of results/kernels/<model>.parquet)"
            )
        raise UserError(message)
    index = pd.concat(indices, ignore_index=True)
    index["model"] = index["model"].astype(str)
    index["layer"] = index["layer"].astype(str)
    return KernelPool(np.concatenate(parts), index[POOL_COLUMNS], counts)


def pool_kernels(
    sources: Mapping[str, tuple[str | Path, str | Path]],
    kernel_size: int = 7,
    max_per_model: int | None = None,
    seed: int = 0,
    flip_sign: bool = False,
) -> KernelPool:
    """Read ``{model: (npz_path, index_parquet_path)}`` and pool their ``k x k`` kernels.

    Only kernels of ``kernel_size`` are used.  See the module docstring for normalisation,
    dropped kernels and the fitting sample.  Raises :class:`UserError` for unreadable files,
    non-finite kernels or when no model has kernels of that size.
    """
    key = f"{kernel_size}x{kernel_size}"
    per_model = {}
    for model, (npz_path, index_path) in sources.items():
        arrays = load_kernels(npz_path)
        try:
            index = pd.read_parquet(index_path)
        except (OSError, ValueError) as err:
            raise UserError(f"kernel index {index_path} is unreadable ({err}); delete it and rerun") from None
        per_model[model] = (arrays.get(key), index[index["model"] == model] if "model" in index else index)
    return pool_arrays(per_model, kernel_size, max_per_model, seed, flip_sign)


def pool_models(models, kernel_paths, index_paths, settings: ClusteringSettings, seed: int,
                capped: bool = True) -> KernelPool:  # fmt: skip
    """:func:`pool_kernels` of the models' kernel files (parallel lists, as the clustering rules get
    them) with the settings' kernel size and sign rule; ``capped`` applies
    ``settings.max_kernels_per_model`` to the fitting sample."""
    sources = dict(zip(models, zip(kernel_paths, index_paths, strict=True), strict=True))
    cap = settings.max_kernels_per_model if capped else None
    return pool_kernels(sources, settings.kernel_size, cap, seed, settings.flip_sign)


def latents_for_pool(pool: KernelPool, table: pd.DataFrame) -> np.ndarray:
    """The ``latent_*`` columns of ``table`` (written by the train_autoencoder rule) for ``pool``.

    Checks that ``table`` lists the same kernels in the same order (``model, layer, channel``);
    raises :class:`UserError` when it is stale.
    """
    columns = sorted(
        (c for c in table.columns if c.startswith("latent_")), key=lambda c: int(c.split("_")[1])
    )
    keys = ["model", "layer", "channel"]
    same = (
        columns
        and len(table) == len(pool)
        and all(np.array_equal(table[c].to_numpy(), pool.index[c].to_numpy()) for c in keys)
    )
    if not same:
        raise UserError(
            "the latent codes do not match the pooled kernels (kernels or clustering settings changed); "
            "rerun the train_autoencoder rule"
        )
    return table[columns].to_numpy(np.float32)


# --------------------------------------------------------------------------------------------------
# k-means, prototypes, labels
# --------------------------------------------------------------------------------------------------
def kmeans_assign(
    features: np.ndarray,
    k: int,
    seed: int = 0,
    n_init: int = 4,
    fit_mask: np.ndarray | None = None,
    max_fit: int | None = None,
    order: str = "centroid",
) -> tuple[np.ndarray, np.ndarray]:
    """k-means fitted on ``features[fit_mask]`` (at most ``max_fit`` of them, seeded), all assigned.

    Returns ``(labels, centroids)``: int32 ``(N,)`` and float ``(k, d)``.  Cluster ids are
    canonical: ``order="centroid"`` sorts them by the first centroid coordinate, ``"size"`` by
    decreasing number of members (ties by first coordinate).  Deterministic for a given ``seed``.
    """
    from sklearn.cluster import KMeans

    features = np.ascontiguousarray(features, dtype=np.float32).reshape(len(features), -1)
    fit_rows = np.arange(len(features)) if fit_mask is None else np.flatnonzero(fit_mask)
    if max_fit is not None and len(fit_rows) > max_fit:
        rng = np.random.default_rng([int(seed), 1])
        fit_rows = np.sort(rng.choice(fit_rows, size=max_fit, replace=False))
    if len(fit_rows) < k:
        raise UserError(
            f"k-means with k={k} needs at least {k} kernels, got {len(fit_rows)}; lower clustering.k"
        )
    model = KMeans(n_clusters=k, n_init=n_init, random_state=int(seed))
    model.fit(features[fit_rows])
    centroids = model.cluster_centers_
    labels = model.predict(features) if len(fit_rows) < len(features) else model.labels_
    sizes = np.bincount(labels, minlength=k)
    if order == "centroid":
        permutation = np.lexsort((np.arange(k), centroids[:, 0]))
    elif order == "size":
        permutation = np.lexsort((centroids[:, 0], -sizes))
    else:
        raise ValueError(f"order must be 'centroid' or 'size', got {order!r}")
    relabel = np.empty(k, dtype=np.int32)
    relabel[permutation] = np.arange(k, dtype=np.int32)
    return relabel[labels].astype(np.int32), centroids[permutation]


def member_prototypes(kernels: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Centre-normed mean of each cluster's members, float32 ``(k, kh, kw)`` (NaN for an empty cluster)."""
    flat = np.asarray(kernels, dtype=np.float32).reshape(len(kernels), -1)
    sums = np.zeros((k, flat.shape[1]), dtype=np.float64)
    for column in range(flat.shape[1]):
        sums[:, column] = np.bincount(labels, weights=flat[:, column], minlength=k)
    return center_norm(sums.reshape((k,) + kernels.shape[1:])).astype(np.float32)


def cosine_to_prototypes(kernels: np.ndarray, labels: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Signed cosine of each (centre-normed) kernel with the (centre-normed) prototype of its cluster."""
    flat = np.asarray(kernels, dtype=np.float32).reshape(len(kernels), -1)
    protos = np.asarray(prototypes, dtype=np.float32).reshape(len(prototypes), -1)
    out = np.empty(len(flat), dtype=np.float32)
    chunk = 1 << 18
    for start in range(0, len(flat), chunk):
        part = slice(start, start + chunk)
        out[part] = np.einsum("ij,ij->i", flat[part], protos[labels[part]])
    return out


def prototype_types(prototypes: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Idealized model type of each prototype and its ``|cosine|`` with the best fitted template.

    Adapter around :func:`masterkey.fitting.select_types` (the type whose template at its best
    scales has the largest ``|cosine|``); an empty cluster (NaN prototype) gets ``"none"``.
    """
    from .fitting import select_types

    prototypes = np.asarray(prototypes, dtype=np.float64)
    types, abs_cosine = select_types(np.nan_to_num(prototypes, nan=0.0))
    labels = [t if t is not None else "none" for t in types]
    return labels, np.asarray(abs_cosine, dtype=np.float64)


def label_prototypes(prototypes: np.ndarray) -> list[str]:
    """Automatic label of each prototype: the best-matching idealized model type (:func:`prototype_types`)."""
    return prototype_types(prototypes)[0]


@dataclass
class ClusteringResult:
    """Output of :func:`cluster_pool`.

    ``assignments``: the pool index plus ``latent_*``, ``cluster``, ``cosine``, ``classified``,
    ``raw_cluster``, ``raw_cosine``, ``raw_classified``; ``prototypes``/``decoded``/``raw_prototypes``:
    float32 ``(k, kh, kw)``; ``centroids``: ``(k, latent_dim)``; ``clusters``: one row per
    latent cluster (``cluster, size, share, classified_share, centroid_0.., label, label_cosine,
    decoded_cosine``: cosine between member mean and decoded centroid) and ``raw_clusters`` likewise
    for the baseline (no centroid/decoded columns).
    """

    assignments: pd.DataFrame
    prototypes: np.ndarray
    decoded: np.ndarray | None
    raw_prototypes: np.ndarray
    centroids: np.ndarray
    clusters: pd.DataFrame
    raw_clusters: pd.DataFrame


def _cluster_table(labels, cosine, threshold, prototypes, k) -> pd.DataFrame:
    sizes = np.bincount(labels, minlength=k)
    classified = np.bincount(labels, weights=(cosine >= threshold).astype(np.float64), minlength=k)
    types, type_cosine = prototype_types(prototypes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "cluster": np.arange(k, dtype=np.int32),
                "size": sizes.astype(np.int64),
                "share": sizes / max(1, sizes.sum()),
                "classified_share": np.where(sizes > 0, classified / np.maximum(sizes, 1), np.nan),
                "label": types,
                "label_cosine": type_cosine,
            }
        )


def cluster_pool(
    pool: KernelPool,
    latents: np.ndarray,
    settings: ClusteringSettings,
    seed: int = 0,
    decode: Callable[[np.ndarray], np.ndarray] | None = None,
    progress: Callable[[str], None] | None = print,
) -> ClusteringResult:
    """k-means on ``latents`` (one row per pooled kernel) and on the raw normalised kernels.

    ``decode`` maps centroids ``(k, latent_dim)`` to kernels ``(k, kh, kw)`` (the autoencoder's
    decoder) for the decoded prototypes; ``progress`` receives one line per step.
    """
    latents = np.asarray(latents, dtype=np.float32).reshape(len(latents), -1)
    if len(latents) != len(pool):
        raise UserError(
            f"{len(latents)} latent codes for {len(pool)} pooled kernels; the latents are stale - "
            "rerun the train_autoencoder rule"
        )
    threshold = check_threshold(settings.threshold)
    say = progress or (lambda message: None)
    k = settings.k
    fit = pool.fit_mask
    say(f"k-means (k={k}) on {latents.shape[1]}-d latent codes of {int(fit.sum()):,} kernels")
    labels, centroids = kmeans_assign(latents, k, seed, settings.kmeans_n_init, fit, order="centroid")
    prototypes = member_prototypes(pool.kernels, labels, k)
    cosine = cosine_to_prototypes(pool.kernels, labels, prototypes)
    n_raw = min(int(fit.sum()), settings.raw_kmeans_max_kernels)
    say(f"baseline k-means (k={k}) on raw normalised kernels (fitted on {n_raw:,})")
    raw_labels, _ = kmeans_assign(
        pool.kernels,
        k,
        seed,
        settings.kmeans_n_init,
        fit,
        max_fit=settings.raw_kmeans_max_kernels,
        order="size",
    )
    raw_prototypes = member_prototypes(pool.kernels, raw_labels, k)
    raw_cosine = cosine_to_prototypes(pool.kernels, raw_labels, raw_prototypes)

    assignments = pool.index.copy()
    for column in range(latents.shape[1]):
        assignments[f"latent_{column}"] = latents[:, column]
    assignments["cluster"] = labels
    assignments["cosine"] = cosine
    assignments["classified"] = cosine >= threshold
    assignments["raw_cluster"] = raw_labels
    assignments["raw_cosine"] = raw_cosine
    assignments["raw_classified"] = raw_cosine >= threshold

    say("labelling prototypes with the idealized model types")
    clusters = _cluster_table(labels, cosine, threshold, prototypes, k)
    for column in range(centroids.shape[1]):
        clusters.insert(2 + column, f"centroid_{column}", centroids[:, column])
    decoded = None
    if decode is not None:
        decoded = center_norm(np.asarray(decode(centroids.astype(np.float32)))).astype(np.float32)
        clusters["decoded_cosine"] = np.einsum(
            "ij,ij->i", prototypes.reshape(k, -1), decoded.reshape(k, -1)
        ).astype(np.float64)
    raw_clusters = _cluster_table(raw_labels, raw_cosine, threshold, raw_prototypes, k)
    return ClusteringResult(
        assignments, prototypes, decoded, raw_prototypes, centroids, clusters, raw_clusters
    )


# --------------------------------------------------------------------------------------------------
# classified shares
# --------------------------------------------------------------------------------------------------
CLASSIFICATION_COLUMNS = [
    "level",
    "model",
    "stage",
    "layer",
    "kernels",
    "classified",
    "share",
    "mean_cosine",
    "baseline_share",
]


def classification_table(assignments: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Classified share per model, per stage and per layer (rows in that order within each model).

    Columns :data:`CLASSIFICATION_COLUMNS`; ``level`` is ``model``, ``stage`` or ``layer``;
    ``stage`` and ``layer`` are empty where they do not apply.  ``share`` is the share of kernels
    whose cosine to their latent-cluster prototype is at least the threshold (the ``classified``
    column, or recomputed from ``cosine`` when ``threshold`` is given); ``baseline_share`` the same
    for the raw k-means baseline.
    """
    frame = assignments
    if threshold is not None:
        threshold = check_threshold(threshold)
        frame = assignments.assign(
            classified=assignments["cosine"] >= threshold,
            raw_classified=assignments["raw_cosine"] >= threshold,
        )
    models = list(dict.fromkeys(frame["model"]))
    rows = []

    def summarise(part: pd.DataFrame, level: str, model: str, stage, layer):
        rows.append(
            {
                "level": level,
                "model": model,
                "stage": stage,
                "layer": layer,
                "kernels": len(part),
                "classified": int(part["classified"].sum()),
                "share": float(part["classified"].mean()) if len(part) else np.nan,
                "mean_cosine": float(part["cosine"].astype(np.float64).mean()) if len(part) else np.nan,
                "baseline_share": float(part["raw_classified"].mean())
                if "raw_classified" in part and len(part)
                else np.nan,
            }
        )

    for model in models:
        part = frame[frame["model"] == model]
        summarise(part, "model", model, pd.NA, "")
        for stage, stage_part in part.groupby("stage", sort=True):
            summarise(stage_part, "stage", model, int(stage), "")
        for layer in dict.fromkeys(part["layer"]):
            layer_part = part[part["layer"] == layer]
            summarise(layer_part, "layer", model, int(layer_part["stage"].iloc[0]), layer)
    table = pd.DataFrame(rows, columns=CLASSIFICATION_COLUMNS)
    table["stage"] = table["stage"].astype("Int64")
    return table
