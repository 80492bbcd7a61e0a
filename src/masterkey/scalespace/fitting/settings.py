"""Bounds, method names and search settings of the fits (docs/methods.md section 3).

Scales ``sigma`` are in grid spacings (``s = sigma^2``); the search bounds are
:data:`SIGMA_BOUNDS` for sigma and :data:`ALPHA_BOUNDS` for the ``alpha`` of ``id-lap``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "SIGMA_BOUNDS",
    "ALPHA_BOUNDS",
    "METHODS",
    "JOINT_METHODS",
    "FIT_COLUMNS",
    "SearchSettings",
    "DEFAULT_SETTINGS",
    "chunks",
    "clean",
]

SIGMA_BOUNDS = (0.01, 3.0)
ALPHA_BOUNDS = (0.05, 2.0)
METHODS = ("A", "B", "C1", "C2", "D1", "D2")
JOINT_METHODS = ("A-joint", "B-joint", "C-joint", "D-joint")
FIT_COLUMNS = ["filter", "type", "method", "sigma_x", "sigma_y", "alpha", "l1", "l2", "rel_l2",
                "on_bound", "degenerate"]  # fmt: skip


@dataclass(frozen=True)
class SearchSettings:
    """Grid and chunking parameters of the batched searches.

    ``fine_points - 1`` must be divisible by ``coarse_* - 1`` (powers of two); ``max_iterations``
    caps the compass-search iterations (cosine searches of type selection).
    ``chunk_elements`` bounds the size (in float64 numbers) of the largest temporary array.
    l1 searches (:func:`.continuous.search_l1`): up to ``l1_starts`` coarse-grid starts (the best
    point, then the best outside ``+-l1_exclusion`` coarse cells around earlier starts, kept when its
    l1 is within the fraction ``l1_start_gap`` of the best start's) are refined by trust-region
    sequential linear programming of at most ``l1_iterations`` iterations, initial trust radius
    ``l1_radius`` and stopping radius ``l1_tolerance`` (fine-grid index units, 1 unit = 0.14 % in
    sigma), with ``l1_pivots`` line minimisations per two-parameter linear subproblem (warm-started
    along the previous iteration's kink line). l2 searches: at most ``l2_iterations`` damped Newton
    iterations, stopping at a step below ``l2_tolerance`` units. The local iterations run on blocks of
    ``l1_block`` filters (small enough to stay in cache).
    """

    fine_points: int = 4097
    coarse_l2: int = 33
    coarse_l1: int = 33
    coarse_cos: int = 17
    coarse_1d: int = 65
    max_iterations: int = 60
    chunk_elements: int = 4_000_000
    l1_starts: int = 2
    l1_iterations: int = 40
    l1_pivots: int = 2
    l1_radius: float = 64.0
    l1_tolerance: float = 0.1
    l1_block: int = 1024
    l1_start_gap: float = 0.1
    l1_exclusion: int = 2
    l2_iterations: int = 30
    l2_tolerance: float = 0.05


DEFAULT_SETTINGS = SearchSettings()


def chunks(n: int, per_item: int, settings: SearchSettings):
    """Consecutive slices covering ``range(n)`` that bound the size of temporary arrays.

    Parameters
    ----------
    n : int
        Number of items (filters).
    per_item : int
        Number of float64 values a temporary array needs per item.
    settings : SearchSettings
        ``chunk_elements`` is the bound on ``slice length * per_item`` (at least one item).

    Returns
    -------
    iterator of slice
        Disjoint slices in order, together covering ``0 .. n-1``.

    >>> [(s.start, s.stop) for s in chunks(10, 3, SearchSettings(chunk_elements=12))]
    [(0, 4), (4, 8), (8, 10)]
    """
    size = max(1, settings.chunk_elements // max(1, per_item))
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def clean(value: np.ndarray, fill: float) -> np.ndarray:
    """``value`` with NaN replaced by ``fill`` (used to rank criteria; infinities are kept).

    Parameters
    ----------
    value : array
    fill : float

    Returns
    -------
    array of the shape of ``value``

    >>> clean(np.array([1.0, np.nan, np.inf]), -1.0).tolist()
    [1.0, -1.0, inf]
    """
    return np.where(np.isnan(value), fill, value)
