"""Fitting idealized scale-space models to learned kernels ([B] sections 3-4; docs/methods.md section 3).

Everything is batched array maths over filters (NumPy; ``torch.cdist`` for the coarse l1 stage
when torch is already imported, else ``scipy.spatial.distance.cdist``); the only Python loops run
over types, methods, chunks of filters and refinement levels, never over filters.  Memory is
bounded by processing filters in chunks (:attr:`SearchSettings.chunk_elements`).  Scales ``sigma``
are in grid spacings (``s = sigma^2``); kernels follow docs/methods.md section 1.

Modules, along the seams of the computation:

* :mod:`.settings`: bounds, method names, :class:`SearchSettings`;
* :mod:`.grid`: the fine grid of templates every search runs on;
* :mod:`.normalisation`: normalising a kernel for its type (:func:`normalise_for_fitting`);
* :mod:`.discrete`: criteria and coarse / compass searches on the grid;
* :mod:`.continuous`: the continuous l1 (C) and l2 (D) searches;
* :mod:`.types`: automatic type selection (:func:`select_types`);
* :mod:`.methods`: the per-filter methods A, B, C1, C2, D1, D2 (:func:`fit_filters`);
* :mod:`.joint`: pooled fits (:func:`fit_joint`).

References
----------
[B] T. Lindeberg, Z. Babaiee, P. M. Kiasari. Modelling and analysis of the 8 filters from the
    "master key filters hypothesis" for depthwise-separable deep networks in relation to idealized
    receptive fields based on scale-space theory. arXiv:2509.12746; J. Math. Imaging Vis. 68(3), 2026.
"""

from .grid import exact_templates
from .joint import fit_joint
from .methods import fit_filters, residuals
from .normalisation import Normalised, dc_compensation, normalise_for_fitting
from .settings import (
    ALPHA_BOUNDS,
    DEFAULT_SETTINGS,
    FIT_COLUMNS,
    JOINT_METHODS,
    METHODS,
    SIGMA_BOUNDS,
    SearchSettings,
)
from .types import select_types

__all__ = [
    "SIGMA_BOUNDS",
    "ALPHA_BOUNDS",
    "METHODS",
    "JOINT_METHODS",
    "FIT_COLUMNS",
    "SearchSettings",
    "DEFAULT_SETTINGS",
    "Normalised",
    "dc_compensation",
    "normalise_for_fitting",
    "select_types",
    "fit_filters",
    "fit_joint",
    "residuals",
    "exact_templates",
]
