"""k-means clusters of the latent codes, prototypes, type labels and classified shares ([A]).

(docs/methods.md section 4.)

1. **k-means** (:func:`kmeans_assign`) with ``k`` clusters on the autoencoder's latent codes and,
   as a baseline, directly on the normalised kernels (fitted on at most
   ``raw_kmeans_max_kernels`` kernels of the fitting sample, seeded; all kernels are then
   assigned to the nearest centroid).  scikit-learn ``KMeans`` with ``random_state = seed`` and a
   fixed ``n_init``.  Cluster ids are made canonical: for the latent clustering they are sorted by
   the centroid's first latent coordinate (so clusters are numbered along the 1-D latent axis);
   for the raw baseline by decreasing size.
2. **Prototypes** (:func:`member_prototypes`): the centre-normed mean of a cluster's members; for
   the latent clustering also the decoded centroid.  A kernel's *cosine to its prototype* is the
   signed cosine ``<x_hat, p_hat>`` (no sign flip unless ``flip_sign``); the kernel is
   *classified* when it is at least ``threshold``.
3. **Labels** (:func:`prototype_types`): the idealized type (docs/methods.md section 3) whose
   best fitted template has the largest ``|cosine|`` with the prototype, from
   :func:`masterkey.scalespace.fitting.select_types`.
4. **Classified shares** (:func:`classification_table`) per model, per stage and per layer, each
   per kernel size.

Every kernel size is clustered on its own (:func:`cluster_pools`, one pool per size from
:func:`masterkey.clustering.pool.pool_models`, seeds from
:func:`~masterkey.clustering.pool.size_seed`): cluster ids run from 0 to ``k - 1`` within a size,
and the pair ``(kernel_size, cluster)`` names a cluster in the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..core.errors import ConfigError
from ..core.io import atomic_paths
from ..core.tables import write_table
from ..kernels.similarity import centre_norm
from ..scalespace.fitting import select_types
from .pool import KernelPool, size_seed
from .settings import ClusteringSettings

__all__ = [
    "kmeans_assign",
    "member_prototypes",
    "cosine_to_prototypes",
    "prototype_types",
    "ClusteringResult",
    "cluster_pool",
    "cluster_pools",
    "save_clustering",
    "CLASSIFICATION_COLUMNS",
    "classification_table",
    "classification_caption",
]


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

    The clustering of [A] (docs/methods.md section 4.4), scikit-learn ``KMeans`` with
    ``random_state = seed``.

    Parameters
    ----------
    features : array ``(N, ...)``
        Latent codes ``(N, d)`` or kernels ``(N, k, k)`` (flattened).
    k : int
        Number of clusters.
    seed : int
        Seed of k-means and of the subsample.
    n_init : int
        k-means restarts.
    fit_mask : bool array ``(N,)``, optional
        Rows to fit on (default all).
    max_fit : int, optional
        Fit on at most this many rows of ``fit_mask`` (a seeded random subset).
    order : {"centroid", "size"}
        Canonical ids: sorted by the first centroid coordinate, or by decreasing number of
        members (ties by first coordinate).

    Returns
    -------
    labels : int32 array ``(N,)``
        Cluster of every row (nearest centroid).
    centroids : float32 array ``(k, d)``
        In canonical order.

    Raises
    ------
    ConfigError
        (``clustering.k``) if fewer than ``k`` rows are fitted on.
    ValueError
        For an unknown ``order``.

    Two separated groups on a 1-D latent axis are numbered along the axis, or by size:

    >>> import numpy as np
    >>> codes = np.r_[np.full(5, 0.8), np.full(4, 0.2)][:, None]
    >>> labels, centroids = kmeans_assign(codes, 2)
    >>> labels.tolist(), [round(float(c), 3) for c in centroids[:, 0]]
    ([1, 1, 1, 1, 1, 0, 0, 0, 0], [0.2, 0.8])
    >>> kmeans_assign(codes, 2, order="size")[0].tolist()
    [0, 0, 0, 0, 0, 1, 1, 1, 1]
    """
    from sklearn.cluster import KMeans

    features = np.ascontiguousarray(features, dtype=np.float32).reshape(len(features), -1)
    fit_rows = np.arange(len(features)) if fit_mask is None else np.flatnonzero(fit_mask)
    if max_fit is not None and len(fit_rows) > max_fit:
        rng = np.random.default_rng([int(seed), 1])
        fit_rows = np.sort(rng.choice(fit_rows, size=max_fit, replace=False))
    if len(fit_rows) < k:
        raise ConfigError(
            "clustering.k", f"k-means with k={k} needs at least {k} kernels, got {len(fit_rows)}"
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
    """Centre-normed mean of each cluster's members ([A]; docs/methods.md section 4.4).

    Parameters
    ----------
    kernels : array ``(N, kh, kw)``
        Normalised kernels.
    labels : int array ``(N,)``
        Cluster ids in ``0 .. k-1``.
    k : int
        Number of clusters.

    Returns
    -------
    float32 array ``(k, kh, kw)``
        Zero mean and unit norm per prototype; NaN for an empty cluster.

    >>> import numpy as np
    >>> protos = member_prototypes(np.random.default_rng(0).normal(size=(4, 3, 3)), np.array([0, 0, 1, 1]), 3)
    >>> (protos[:2] ** 2).sum(axis=(1, 2)).round(5).tolist(), bool(np.isnan(protos[2]).all())
    ([1.0, 1.0], True)
    """
    flat = np.asarray(kernels, dtype=np.float32).reshape(len(kernels), -1)
    sums = np.zeros((k, flat.shape[1]), dtype=np.float64)
    for column in range(flat.shape[1]):
        sums[:, column] = np.bincount(labels, weights=flat[:, column], minlength=k)
    return centre_norm(sums.reshape((k,) + kernels.shape[1:])).astype(np.float32)


def cosine_to_prototypes(kernels: np.ndarray, labels: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Signed cosine of each (centre-normed) kernel with the (centre-normed) prototype of its cluster.

    The classification criterion of [A] (docs/methods.md section 4.4): a kernel is classified when
    this cosine reaches the threshold.  Both inputs must already be centre-normed.

    Parameters
    ----------
    kernels : array ``(N, kh, kw)``
    labels : int array ``(N,)``
    prototypes : array ``(k, kh, kw)``

    Returns
    -------
    float32 array ``(N,)``
        ``<x_hat, p_hat>`` in [-1, 1].

    A kernel and its negation get cosines +1 and -1 with the same prototype:

    >>> import numpy as np
    >>> from masterkey.kernels.similarity import centre_norm
    >>> p = centre_norm(np.random.default_rng(0).normal(size=(2, 3, 3)))
    >>> cosine_to_prototypes(np.concatenate([p, -p]), np.array([0, 1, 0, 1]), p).round(5).tolist()
    [1.0, 1.0, -1.0, -1.0]
    """
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

    Adapter around :func:`masterkey.scalespace.fitting.select_types` (the type whose template at
    its best scales has the largest ``|cosine|``; docs/methods.md sections 3.4 and 4.4).

    Parameters
    ----------
    prototypes : array ``(k, kh, kw)``
        Kernels ``h[row, col]`` (docs/methods.md section 1); NaN for an empty cluster.

    Returns
    -------
    labels : list of ``k`` str
        Model type names; ``"none"`` for an empty cluster or a constant prototype.
    abs_cosine : float64 array ``(k,)``
        NaN where the label is ``"none"``.

    >>> import numpy as np
    >>> from masterkey.scalespace.templates import idealized_templates
    >>> protos = np.stack([idealized_templates("dx", 7, 1.0),
    ...                    -idealized_templates("id-lap", 7, 0.9, alpha=0.5),
    ...                    np.full((7, 7), np.nan)])
    >>> labels, cosine = prototype_types(protos)
    >>> labels, cosine.round(6).tolist()
    (['dx', 'id-lap', 'none'], [1.0, 1.0, nan])
    """
    prototypes = np.asarray(prototypes, dtype=np.float64)
    types, abs_cosine = select_types(np.nan_to_num(prototypes, nan=0.0))
    labels = [t if t is not None else "none" for t in types]
    return labels, np.asarray(abs_cosine, dtype=np.float64)


@dataclass
class ClusteringResult:
    """Output of :func:`cluster_pool`.

    ``assignments``: the pool index plus ``latent_*``, ``cluster``, ``cosine``, ``classified``,
    ``raw_cluster``, ``raw_cosine``, ``raw_classified``; ``prototypes``/``decoded``/``raw_prototypes``:
    float32 ``(k, kh, kw)``; ``centroids``: ``(k, latent_dim)``; ``clusters``: one row per
    latent cluster (``kernel_size, cluster, size, share, classified_share, centroid_0.., type,
    type_cosine, decoded_cosine``: cosine between member mean and decoded centroid) and
    ``raw_clusters`` likewise for the baseline (no centroid/decoded columns).
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
                "type": types,
                "type_cosine": type_cosine,
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

    Steps 1-4 of the module docstring ([A]; docs/methods.md section 4.4).

    Parameters
    ----------
    pool : KernelPool
        ``N`` centre-normed kernels and their fitting sample (``pool.fit_mask``).
    latents : array ``(N, latent_dim)``
        The autoencoder's codes of the pooled kernels.
    settings : ClusteringSettings
        ``k``, ``kmeans_n_init``, ``raw_kmeans_max_kernels`` and ``threshold`` are used.
    seed : int
        Seed of both k-means runs.
    decode : callable, optional
        Maps centroids ``(k, latent_dim)`` to kernels ``(k, kh, kw)`` (the autoencoder's decoder)
        for the decoded prototypes.
    progress : callable, optional
        Receives one line per step (``None``: silent).

    Returns
    -------
    ClusteringResult

    Raises
    ------
    ValueError
        If the number of latent codes differs from the pool size.
    ConfigError
        If fewer than ``k`` kernels are in the fitting sample.

    Noisy copies of two templates, coded at two latent values, form two labelled clusters:

    >>> import numpy as np, pandas as pd
    >>> from masterkey.clustering.pool import POOL_COLUMNS, KernelPool
    >>> from masterkey.scalespace.templates import idealized_templates
    >>> rng = np.random.default_rng(0)
    >>> proto = centre_norm(np.stack([idealized_templates("dx", 5, 1.0), idealized_templates("T", 5, 1.0)]))
    >>> kernels = centre_norm(proto.repeat(6, 0) + 0.05 * rng.normal(size=(12, 5, 5))).astype(np.float32)
    >>> index = pd.DataFrame({"model": "m", "layer": "l", "stage": 0, "block": 0,
    ...                       "channel": np.arange(12), "kernel_size": "5x5", "row": np.arange(12),
    ...                       "fit": True})[POOL_COLUMNS]
    >>> latents = np.r_[np.full(6, 0.2), np.full(6, 0.8)][:, None]
    >>> result = cluster_pool(KernelPool(kernels, index, pd.DataFrame()), latents,
    ...                       ClusteringSettings(k=2), progress=None)
    >>> result.clusters[["size", "classified_share", "type"]].values.tolist()
    [[6, 1.0, 'dx'], [6, 1.0, 'T']]
    """
    latents = np.asarray(latents, dtype=np.float32).reshape(len(latents), -1)
    if len(latents) != len(pool):
        raise ValueError(f"{len(latents)} latent codes for {len(pool)} pooled kernels")
    threshold = settings.threshold
    say = progress or (lambda message: None)
    k = settings.k
    fit = pool.fit_mask
    say(f"k-means (k={k}) on {latents.shape[1]}-d latent codes of {int(fit.sum()):,} kernels")
    labels, centroids = kmeans_assign(latents, k, seed, settings.kmeans_n_init, fit, order="centroid")
    reference = pool.reference_mask  # held-out models do not shape the prototypes
    prototypes = member_prototypes(pool.kernels[reference], labels[reference], k)
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
        decoded = centre_norm(np.asarray(decode(centroids.astype(np.float32)))).astype(np.float32)
        clusters["decoded_cosine"] = np.einsum(
            "ij,ij->i", prototypes.reshape(k, -1), decoded.reshape(k, -1)
        ).astype(np.float64)
    raw_clusters = _cluster_table(raw_labels, raw_cosine, threshold, raw_prototypes, k)
    for table in (clusters, raw_clusters):
        table.insert(0, "kernel_size", pool.key)
    return ClusteringResult(
        assignments, prototypes, decoded, raw_prototypes, centroids, clusters, raw_clusters
    )


def cluster_pools(
    pools: Mapping[str, KernelPool],
    latents: Mapping[str, np.ndarray],
    settings: ClusteringSettings,
    seed: int = 0,
    decoders: Mapping[str, Callable[[np.ndarray], np.ndarray]] | None = None,
    progress: Callable[[str], None] | None = print,
) -> dict[str, ClusteringResult]:
    """:func:`cluster_pool` for every kernel size: ``{key: result}`` keyed like ``pools``.

    ``latents[key]`` are the codes of ``pools[key]``, ``decoders[key]`` its autoencoder's decoder;
    each size is seeded with :func:`~masterkey.clustering.pool.size_seed` ``(seed, k)``
    (docs/methods.md section 4.4).
    """
    say = progress or (lambda message: None)
    results = {}
    for key, pool in pools.items():
        say(f"{key}: {len(pool):,} kernels")
        decode = None if decoders is None else decoders[key]
        results[key] = cluster_pool(pool, latents[key], settings, size_seed(seed, pool.kernel_size), decode,
                                    progress)  # fmt: skip
    return results


def save_clustering(results: Mapping[str, ClusteringResult], paths: Mapping[str, str]) -> None:
    """Write the :class:`ClusteringResult` of every kernel size (``{"7x7": result, ...}``).

    ``paths["assignments"]`` (parquet) gets the assignments of every size stacked (column
    ``kernel_size``); ``paths["prototypes"]``, ``paths["decoded"]`` and ``paths["raw_prototypes"]``
    are ``.npz`` files with one float32 ``(k, kh, kw)`` array per size, keyed ``"7x7"``;
    ``paths["clusters"]`` and ``paths["raw_clusters"]`` (CSV) the cluster tables stacked.  The
    arrays and the assignments appear together or not at all."""
    fields = ("prototypes", "decoded", "raw_prototypes")
    with atomic_paths(*(paths[name] for name in ("assignments", *fields))) as temps:
        assignments = pd.concat([r.assignments for r in results.values()], ignore_index=True)
        assignments.to_parquet(temps[0], index=False)
        for temp, field in zip(temps[1:], fields, strict=True):
            arrays = {key: getattr(r, field) for key, r in results.items()}
            with open(temp, "wb") as handle:
                np.savez(handle, **{key: a.astype(np.float32) for key, a in arrays.items() if a is not None})
    for name in ("clusters", "raw_clusters"):
        write_table(pd.concat([getattr(r, name) for r in results.values()], ignore_index=True), paths[name])


# --------------------------------------------------------------------------------------------------
# classified shares
# --------------------------------------------------------------------------------------------------
CLASSIFICATION_COLUMNS = [
    "level",
    "model",
    "kernel_size",
    "stage",
    "layer",
    "kernels",
    "classified",
    "share",
    "mean_cosine",
    "baseline_share",
]


def classification_table(assignments: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Classified share per model, per stage and per layer, each per kernel size.

    The classified share of [A] (docs/methods.md section 4.4).  Rows: per model (in order of
    appearance), per kernel size (ascending), one ``model`` row, its ``stage`` rows, its ``layer``
    rows.  No row pools sizes: each size has its own clusters
    (:func:`masterkey.clustering.accuracy.share_vs_accuracy` pools them).

    Parameters
    ----------
    assignments : pandas.DataFrame
        ``ClusteringResult.assignments`` of one or more sizes (at least ``model``,
        ``kernel_size``, ``stage``, ``layer``, ``cosine``, ``classified``; ``raw_cosine``,
        ``raw_classified`` for the baseline).
    threshold : float, optional
        Recompute ``classified`` (and ``raw_classified``) from the cosines with this threshold.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CLASSIFICATION_COLUMNS`; ``level`` is ``model``, ``stage`` or ``layer``;
        ``stage`` and ``layer`` are empty where they do not apply.  ``share`` is the share of
        kernels whose cosine to their latent-cluster prototype is at least the threshold;
        ``baseline_share`` the same for the raw k-means baseline.

    Raises
    ------
    ValueError
        If ``threshold`` is outside [0, 1].

    >>> import pandas as pd
    >>> a = pd.DataFrame({"model": "m", "kernel_size": ["5x5", "5x5", "3x3"], "layer": ["l0", "l0", "l1"],
    ...                   "stage": [0, 0, 1], "cosine": [0.9, 0.3, 0.7], "raw_cosine": [0.6, 0.6, 0.1]})
    >>> table = classification_table(a, threshold=0.5)
    >>> table[["level", "kernel_size", "kernels", "share"]].values.tolist()[:4]
    [['model', '3x3', 1, 1.0], ['stage', '3x3', 1, 1.0], ['layer', '3x3', 1, 1.0], ['model', '5x5', 2, 0.5]]
    """
    frame = assignments
    if threshold is not None:
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be a cosine in [0, 1], got {threshold!r}")
        frame = assignments.assign(
            classified=assignments["cosine"] >= threshold,
            raw_classified=assignments["raw_cosine"] >= threshold,
        )
    rows = []

    def summarise(part: pd.DataFrame, level: str, model: str, size: str, stage, layer):
        rows.append(
            {
                "level": level,
                "model": model,
                "kernel_size": size,
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

    for model in dict.fromkeys(frame["model"]):
        in_model = frame[frame["model"] == model]
        sizes = sorted(dict.fromkeys(in_model["kernel_size"]), key=lambda key: int(str(key).split("x")[0]))
        for size in sizes:
            part = in_model[in_model["kernel_size"] == size]
            summarise(part, "model", model, size, pd.NA, "")
            for stage, stage_part in part.groupby("stage", sort=True):
                summarise(stage_part, "stage", model, size, int(stage), "")
            for layer in dict.fromkeys(part["layer"]):
                layer_part = part[part["layer"] == layer]
                summarise(layer_part, "layer", model, size, int(layer_part["stage"].iloc[0]), layer)
    table = pd.DataFrame(rows, columns=CLASSIFICATION_COLUMNS)
    table["stage"] = table["stage"].astype("Int64")
    return table


def classification_caption(threshold: float) -> str:
    """Caption of the classification table (:func:`classification_table`)."""
    return (
        f"Share of depthwise kernels classified (cosine to their cluster prototype >= {threshold}) "
        "per model, stage and layer, per kernel size (each size clustered on its own)"
    )
