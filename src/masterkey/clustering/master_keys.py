"""Selection of a small set of master key filters ([Q]; docs/methods.md section 4).

1. **Candidates** (:func:`candidate_latents`, :func:`decode_candidates`): the autoencoder's decoder
   applied to an evenly spaced grid of latent values in ``[0, 1]`` (``num_candidates`` values,
   default 50, endpoints included, for a 1-D code; for a ``d``-dimensional code the product grid
   of ``ceil(num_candidates ** (1/d))`` values per axis).  Candidates are centre-normed.
2. **Approximation** (:func:`approximation_errors`): every learned filter ``h`` is approximated
   as ``a x_hat + b`` with ``x_hat`` a centred unit-norm candidate, ``a = <x_hat, h>`` and
   ``b = mean(h)`` (the least-squares affine fit, :func:`masterkey.kernels.similarity.affine_fit`).
   Its squared residual is ``||h_c||^2 (1 - <x_hat, h_hat>^2)`` with ``h_c`` the centred filter
   and ``h_hat = h_c / ||h_c||``; the *relative* error ``e(h, x) = 1 - <x_hat, h_hat>^2`` in
   [0, 1] is used so that every filter weighs the same regardless of its amplitude.  The sign of
   ``a`` is free, so a filter and its negation are approximated equally well.
3. **Greedy removal** (:func:`greedy_selection`): starting from all candidates, repeatedly remove
   the candidate whose removal increases the mean error ``mean_h min_{x in S} e(h, x)`` least,
   down to one candidate, recording the error curve; the set at size ``K`` (default 8) is the
   selection.  Ties are broken towards the lowest candidate index.

Vectorisation: the error matrix ``E = 1 - (H X^T)^2`` (``N x C``, float32, one matrix product) is
computed once.  For each filter the best and second-best remaining candidates are kept; the
cost of removing candidate ``c`` is ``sum_{h: best(h) = c} (E[h, second(h)] - E[h, c])`` (one
``bincount``).  After a removal only the filters whose best or second-best was ``c`` are updated.
The Python loop runs over candidates, never over filters.

Kernel sizes: every size has its own pool and autoencoder, so its own candidates and its own K
keys (:func:`select_master_keys_per_size`; the file ``master_keys_<K>.npz`` holds one ``(K, k, k)``
array per size, :func:`save_master_keys`).  The published 8 of [Q] are 7x7, so only the keys of
their size are compared with them (:func:`published_comparison`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import StaleFileError
from ..core.io import atomic_paths
from ..kernels.similarity import centre_norm
from ..kernels.store import kernel_key

__all__ = [
    "candidate_latents",
    "decode_candidates",
    "approximation_errors",
    "greedy_selection",
    "SelectionResult",
    "select_master_keys",
    "select_master_keys_per_size",
    "describe_keys",
    "keys_table",
    "curves_table",
    "compare_with_published",
    "published_comparison",
    "comparison_caption",
    "save_master_keys",
    "load_master_keys",
]


def candidate_latents(num_candidates: int = 50, latent_dim: int = 1) -> np.ndarray:
    """Evenly spaced latent values in ``[0, 1]``, endpoints included ([Q]; docs/methods.md section 4.5).

    Parameters
    ----------
    num_candidates : int
        ``C`` for a 1-D code; for ``latent_dim = d > 1`` the product grid of
        ``ceil(num_candidates ** (1/d))`` (at least 2) values per axis.
    latent_dim : int
        Dimension ``d`` of the code.

    Returns
    -------
    float32 array ``(C, latent_dim)``

    Raises
    ------
    ValueError
        If ``num_candidates < 1``.

    >>> candidate_latents(5).ravel().tolist(), candidate_latents(5, latent_dim=2).shape
    ([0.0, 0.25, 0.5, 0.75, 1.0], (9, 2))
    """
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be at least 1, got {num_candidates}")
    if latent_dim == 1:
        return np.linspace(0.0, 1.0, num_candidates, dtype=np.float32)[:, None]
    per_axis = max(2, math.ceil(num_candidates ** (1.0 / latent_dim)))
    axis = np.linspace(0.0, 1.0, per_axis, dtype=np.float32)
    mesh = np.meshgrid(*([axis] * latent_dim), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def decode_candidates(model, num_candidates: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Candidates decoded from the latent grid of :func:`candidate_latents` ([Q]; docs/methods.md s. 4.5).

    Parameters
    ----------
    model : KernelAutoencoder
        The trained autoencoder (its decoder is run on the CPU).
    num_candidates : int
        Size of the latent grid (see :func:`candidate_latents`).

    Returns
    -------
    latents : float32 array ``(C, d)``
    kernels : float32 array ``(C, k, k)``
        Decoded candidates, centre-normed (zero mean, unit l2 norm).

    Raises
    ------
    ValueError
        If ``num_candidates < 1``.

    Whatever the decoder's weights (here untrained), the candidates are centre-normed:

    >>> from masterkey.clustering.autoencoder import KernelAutoencoder
    >>> latents, kernels = decode_candidates(KernelAutoencoder(kernel_size=5), num_candidates=4)
    >>> latents.shape, kernels.shape, (kernels**2).sum(axis=(1, 2)).round(5).tolist()
    ((4, 1), (4, 5, 5), [1.0, 1.0, 1.0, 1.0])
    """
    from .autoencoder import decode  # torch is imported only where candidates are decoded

    latents = candidate_latents(num_candidates, model.latent_dim)
    return latents, centre_norm(decode(model, latents)).astype(np.float32)


def _unit_rows(kernels: np.ndarray, what: str) -> np.ndarray:
    kernels = np.asarray(kernels)
    flat = centre_norm(kernels.reshape(len(kernels), 1, -1)).reshape(len(kernels), -1).astype(np.float32)
    if not np.isfinite(flat).all():
        raise ValueError(
            f"{what} contain NaN, inf or constant kernels; drop them before the master key selection"
        )
    return flat


def approximation_errors(kernels: np.ndarray, candidates: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """Relative errors ``E[n, c] = 1 - <x_hat_c, h_hat_n>^2`` of the affine fits ``a x + b`` of [Q].

    ``E[n, c]`` is the squared residual of the least-squares ``a x_c + b`` onto kernel ``n``,
    divided by ``||h_n - mean h_n||^2`` (docs/methods.md section 4.5).

    Parameters
    ----------
    kernels : array ``(N, k, k)``
    candidates : array ``(C, k, k)``
        Both are centre-normed here (already normalised input is unchanged).
    chunk : int
        Rows per matrix product.

    Returns
    -------
    float32 array ``(N, C)``
        Values in [0, 1].

    Raises
    ------
    ValueError
        If a kernel or candidate is constant or not finite.

    An affine image of a candidate, of either sign, has error 0 with it:

    >>> import numpy as np
    >>> c = np.random.default_rng(0).normal(size=(3, 5, 5))
    >>> errors = approximation_errors(np.stack([2 * c[0] + 1, -c[2]]), c)
    >>> [round(float(errors[0, 0]), 6), round(float(errors[1, 2]), 6)]
    [0.0, 0.0]
    """
    x = _unit_rows(candidates, "candidates")
    out = np.empty((len(kernels), len(x)), dtype=np.float32)
    for start in range(0, len(kernels), chunk):
        h = _unit_rows(kernels[start : start + chunk], "kernels")
        dots = h @ x.T
        out[start : start + len(h)] = np.clip(1.0 - dots * dots, 0.0, 1.0)
    return out


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
    """Greedy backward elimination on an error matrix (see module docstring; [Q], docs/methods.md s. 4.5).

    Parameters
    ----------
    errors : array ``(N, C)``
        Error of approximating kernel ``n`` by candidate ``c`` (:func:`approximation_errors`).
    num_keep : int
        Size ``K`` of the selection, ``1 <= K <= C``.

    Returns
    -------
    SelectionResult
        ``selected`` (sorted indices kept at size ``K``), the error ``curve`` for every size from
        ``C`` down to 1, and the removal ``order``.

    Raises
    ------
    ValueError
        If ``num_keep`` is out of range or there are no kernels.

    A candidate that is never the best one is removed first at no cost:

    >>> import numpy as np
    >>> errors = np.array([[0, 0.1, 1], [0, 0.1, 1], [1, 0.9, 0], [1, 0.9, 0]])
    >>> result = greedy_selection(errors, 2)
    >>> result.selected.tolist(), result.curve["mean_error"].tolist(), result.order.tolist()
    ([0, 2], [0.0, 0.0, 0.5], [1, 0, 2])
    """
    errors = np.asarray(errors, dtype=np.float32)
    n, c = errors.shape
    if not 1 <= num_keep <= c:
        raise ValueError(f"cannot keep {num_keep} of {c} candidates; need 1 <= K <= {c}")
    if n == 0:
        raise ValueError("no kernels to select master keys for")
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
    """Greedy selection of ``num_keys`` of ``candidates`` for the kernels ([Q]; docs/methods.md s. 4.5).

    Parameters
    ----------
    kernels : array ``(N, k, k)``
        Learned kernels (normalised or not).
    candidates : array ``(C, k, k)``
        Candidate filters (e.g. from :func:`decode_candidates`).
    num_keys : int
        ``K``, the number of master keys.
    latents : array ``(C, d)``, optional
        The candidates' latent codes (carried into the result).

    Returns
    -------
    MasterKeys
        ``keys`` float32 ``(K, k, k)`` centre-normed, their ``latents`` and candidate ``indices``,
        all centre-normed ``candidates`` and the :class:`SelectionResult`.

    Raises
    ------
    ValueError
        If kernel and candidate sizes differ, ``num_keys`` is out of range, or an input is
        constant or not finite.

    Kernels built from two of five candidates select exactly those two:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> candidates = rng.normal(size=(5, 5, 5))
    >>> kernels = np.concatenate([3 * candidates[1] + 0.5 + 0.01 * rng.normal(size=(4, 5, 5)),
    ...                           -candidates[3] + 0.01 * rng.normal(size=(4, 5, 5))])
    >>> select_master_keys(kernels, candidates, num_keys=2).indices.tolist()
    [1, 3]
    """
    candidates = np.asarray(candidates, dtype=np.float32)
    if kernels.shape[1:] != candidates.shape[1:]:
        raise ValueError(f"kernels {kernels.shape[1:]} and candidates {candidates.shape[1:]} differ in size")
    errors = approximation_errors(kernels, candidates)
    selection = greedy_selection(errors, num_keys)
    latents = np.zeros((len(candidates), 0), np.float32) if latents is None else np.asarray(latents)
    unit = centre_norm(candidates).astype(np.float32)
    return MasterKeys(
        unit[selection.selected], latents[selection.selected], selection.selected, unit, latents, selection
    )


def select_master_keys_per_size(pools: Mapping, autoencoders: Mapping, settings, num_keys: int) -> dict:
    """:func:`select_master_keys` for every kernel size ([Q]; docs/methods.md section 4.5).

    Parameters
    ----------
    pools : mapping of str to KernelPool
        One pool per size, keyed ``"7x7"`` (:func:`masterkey.clustering.pool.pool_models`); the
        keys are chosen for its reference kernels (held-out models left out).
    autoencoders : mapping of str to KernelAutoencoder
        The autoencoder of each size (same keys); its ``settings.num_candidates`` decoded
        candidates (:func:`decode_candidates`) are the size's candidates.
    settings : ClusteringSettings
    num_keys : int
        ``K`` keys per size.

    Returns
    -------
    dict of str to MasterKeys
        Keyed like ``pools``.  The selection is deterministic, so a size's keys depend only on
        its pool and its autoencoder.
    """
    results = {}
    for key, pool in pools.items():
        latents, candidates = decode_candidates(autoencoders[key], settings.num_candidates)
        results[key] = select_master_keys(pool.kernels[pool.reference_mask], candidates, num_keys, latents)
    return results


def describe_keys(keys: np.ndarray, latents: np.ndarray | None = None) -> pd.DataFrame:
    """One row per key: ``key`` (1-based), ``latent_0, ...`` (when given), the automatic idealized
    ``type`` and its ``type_cosine`` (:func:`masterkey.clustering.clusters.prototype_types`).

    >>> from masterkey.scalespace.templates import idealized_templates
    >>> table = describe_keys(idealized_templates("dx", 3, 1.0)[None], np.array([[0.5]]))
    >>> table[["key", "latent_0", "type"]].values.tolist()
    [[1, 0.5, 'dx']]
    """
    from .clusters import prototype_types

    types, type_cosine = prototype_types(keys)
    codes = {} if latents is None else {f"latent_{i}": latents[:, i] for i in range(latents.shape[1])}
    return pd.DataFrame(
        {"key": np.arange(1, len(keys) + 1), **codes, "type": types, "type_cosine": type_cosine}
    )


def keys_table(results: Mapping[str, MasterKeys]) -> pd.DataFrame:
    """The selected keys of every size: ``kernel_size``, ``key`` (1-based), ``candidate`` (index
    into the size's candidates), then the columns of :func:`describe_keys`."""
    parts = []
    for size, result in results.items():
        table = describe_keys(result.keys, result.latents)
        table.insert(0, "kernel_size", size)
        table.insert(2, "candidate", result.indices)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def curves_table(results: Mapping[str, MasterKeys]) -> pd.DataFrame:
    """The greedy error curves of every size stacked: ``kernel_size, size, mean_error, removed``."""
    return pd.concat(
        [r.selection.curve.assign(kernel_size=key)[["kernel_size", *r.selection.curve.columns]]
         for key, r in results.items()],
        ignore_index=True,
    )  # fmt: skip


def compare_with_published(
    keys: np.ndarray, published: np.ndarray, latents: np.ndarray | None = None
) -> pd.DataFrame:
    """Each key's best ``|cosine|`` with the published filters (centred), the published filter's
    1-based number, and the key's automatic idealized type (:func:`describe_keys`); [Q],
    docs/methods.md section 4.5.

    Parameters
    ----------
    keys : array ``(K, k, k)``
        Selected master keys.
    published : array ``(P, k, k)``
        The published filters ([Q]), same ``k``, in the convention of docs/methods.md section 1.
    latents : array ``(K, d)``, optional
        The keys' latent codes.

    Returns
    -------
    pandas.DataFrame
        Columns ``key`` (1-based), ``latent_0, ...`` (when given), ``type``, ``type_cosine``,
        ``closest_published`` (1-based), ``abs_cosine``, ``sign`` (of the cosine).

    Raises
    ------
    ValueError
        If keys and published filters differ in size (:func:`published_comparison` compares only
        the keys of the published size).

    >>> import numpy as np
    >>> from masterkey.scalespace.templates import idealized_templates
    >>> published = np.stack([idealized_templates(m, 7, 1.0) for m in ("dx", "T", "dy")])
    >>> table = compare_with_published(-published[[2, 0]], published)
    >>> table[["type", "closest_published", "sign"]].values.tolist(), table["abs_cosine"].round(6).tolist()
    ([['dy', 3, -1], ['dx', 1, -1]], [1.0, 1.0])
    """
    keys, published = np.asarray(keys), np.asarray(published)
    if keys.shape[1:] != published.shape[1:]:
        raise ValueError(
            f"keys of size {kernel_key(*keys.shape[1:])} cannot be compared with the "
            f"{kernel_key(*published.shape[1:])} published filters"
        )
    a = centre_norm(keys).reshape(len(keys), -1)
    b = centre_norm(published).reshape(len(published), -1)
    cosine = a @ b.T
    best = np.abs(cosine).argmax(axis=1)
    table = describe_keys(keys, latents)
    table["closest_published"] = best + 1
    table["abs_cosine"] = np.abs(cosine[np.arange(len(keys)), best])
    table["sign"] = np.sign(cosine[np.arange(len(keys)), best]).astype(int)
    return table


def published_comparison(
    results: Mapping[str, MasterKeys], published: np.ndarray
) -> tuple[pd.DataFrame, str | None]:
    """The keys of the published filters' size compared with them; a note for the other sizes.

    [Q] publishes 8 filters of size 7x7 only, so only the 7x7 keys have a counterpart
    (docs/methods.md section 4.5).

    Parameters
    ----------
    results : mapping of str to MasterKeys
        The keys of every size (:func:`select_master_keys_per_size`), keyed ``"kxk"``.
    published : array ``(P, k, k)``
        The published filters.

    Returns
    -------
    table : pandas.DataFrame
        :func:`compare_with_published` of the keys of the published size with a first column
        ``kernel_size``; without keys of that size, one row with the single column ``note``.
    note : str or None
        One line naming the sizes that are not compared (``"published 8 are 7x7: no comparison
        for sizes 3x3, 5x5"``), None when every size is compared.

    >>> import numpy as np
    >>> keys = MasterKeys(np.eye(3)[None], np.zeros((1, 0)), np.zeros(1, int), np.eye(3)[None],
    ...                   np.zeros((1, 0)), None)
    >>> table, note = published_comparison({"3x3": keys}, np.zeros((8, 7, 7)))
    >>> note, table.columns.tolist()
    ('published 8 are 7x7: no comparison for sizes 3x3', ['note'])
    """
    published = np.asarray(published)
    size = kernel_key(*published.shape[1:])
    others = [key for key in results if key != size]
    note = (
        f"published {len(published)} are {size}: no comparison for sizes {', '.join(others)}"
        if others
        else None
    )
    if size not in results:
        return pd.DataFrame({"note": [note]}), note
    result = results[size]
    table = compare_with_published(result.keys, published, result.latents)
    table.insert(0, "kernel_size", size)
    return table, note


def comparison_caption(num_keys: int, comparison: pd.DataFrame, note: str | None = None) -> str:
    """Caption of the table ``comparison`` of :func:`published_comparison` for ``num_keys`` master
    keys per size, ending with its ``note`` on the sizes not compared.

    >>> note = "published 8 are 7x7: no comparison for sizes 3x3"
    >>> comparison_caption(8, pd.DataFrame({"kernel_size": ["7x7"]}), note)[-85:]
    'closest published filter (|cosine|); published 8 are 7x7: no comparison for sizes 3x3'
    """
    if "kernel_size" not in comparison:
        return f"Master key filters against the published filters: {note}"
    size = comparison["kernel_size"].iloc[0]
    caption = (
        f"The {num_keys} selected {size} master key filters and their closest published filter (|cosine|)"
    )
    return caption if note is None else f"{caption}; {note}"


def save_master_keys(keys: Mapping[str, np.ndarray], path: str | Path) -> None:
    """Write the master keys of every size as one ``.npz`` (float32 ``(K, k, k)`` per key ``"kxk"``;
    atomically)."""
    with atomic_paths(path) as (temp,):
        with open(temp, "wb") as handle:
            np.savez(handle, **{key: np.asarray(array, np.float32) for key, array in keys.items()})


def load_master_keys(path: str | Path, num_keys: int | None = None) -> dict[str, np.ndarray]:
    """The master keys written by :func:`save_master_keys`: ``{"kxk": (K, k, k)}``.

    Raises :class:`StaleFileError` for a missing or unreadable file, an array that is not
    ``(K, k, k)`` of its key's size, or (given ``num_keys``) another number of keys.
    """
    try:
        with np.load(path) as data:
            keys = {key: data[key] for key in data.files}
    except FileNotFoundError:
        raise StaleFileError(path, "does not exist") from None
    except (ValueError, OSError) as err:
        raise StaleFileError(path, f"is unreadable ({err})") from None
    for key, array in keys.items():
        if array.ndim != 3 or kernel_key(*array.shape[1:]) != key:
            raise StaleFileError(path, f"holds an array of shape {array.shape} under the key {key!r}")
        if num_keys is not None and len(array) != num_keys:
            raise StaleFileError(path, f"holds {len(array)} {key} master keys, expected {num_keys}")
    if not keys:
        raise StaleFileError(path, "holds no master keys")
    return keys
