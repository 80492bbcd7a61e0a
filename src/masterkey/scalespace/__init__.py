"""Scale-space models of depthwise kernels ([B]): templates, spread measures, fits, analyses.

* :mod:`.templates` - the discrete analogue of the Gaussian and its difference operators;
* :mod:`.spread` - spatial spread measures ``M``, ``V`` and the weighted ``M_g``, ``V_g``;
* :mod:`.fitting` - type selection and every fitting method of [B] (A, B, C1, C2, D1, D2, joint);
* :mod:`.models` - the analysis of every kernel of a model (fits, spread, explained share);
* :mod:`.published` - the tables of the 8 published filters.

References
----------
Formulas: docs/methods.md sections 2-3.
[B] T. Lindeberg, Z. Babaiee, P. M. Kiasari. Modelling and analysis of the 8 filters from the
    "master key filters hypothesis" for depthwise-separable deep networks in relation to idealized
    receptive fields based on scale-space theory. arXiv:2509.12746; J. Math. Imaging Vis. 68(3), 2026.
[Q] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. The Quest for Universal Master Key Filters in
    DS-CNNs. NeurIPS 2025 (arXiv:2509.11711).
"""

from .fitting import (
    JOINT_METHODS,
    METHODS,
    SearchSettings,
    fit_filters,
    fit_joint,
    normalise_for_fitting,
    select_types,
)
from .models import (
    best_fits,
    explained_share,
    fit_model_kernels,
    spread_model_kernels,
    templates_from_fits,
)
from .published import published_fits_table, published_spread_table
from .spread import SIGMA_REF, reference_template, spread_moments, spread_table
from .templates import (
    DERIVATIVE_ORDER,
    TYPE_NAMES,
    discrete_gaussian,
    idealized_templates,
)

__all__ = [
    "TYPE_NAMES",
    "DERIVATIVE_ORDER",
    "discrete_gaussian",
    "idealized_templates",
    "SIGMA_REF",
    "spread_moments",
    "spread_table",
    "reference_template",
    "METHODS",
    "JOINT_METHODS",
    "SearchSettings",
    "select_types",
    "fit_filters",
    "fit_joint",
    "normalise_for_fitting",
    "fit_model_kernels",
    "spread_model_kernels",
    "templates_from_fits",
    "best_fits",
    "explained_share",
    "published_fits_table",
    "published_spread_table",
]
