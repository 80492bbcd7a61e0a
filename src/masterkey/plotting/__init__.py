"""Figures: one style (:mod:`.style`) and figure functions per stage that return a ``Figure``.

:mod:`.scalespace` ([B]), :mod:`.clustering` ([A], [Q]), :mod:`.replacement` ([B] Sec. 5, [Q]),
:mod:`.niff` ([D]);
the rule scripts save them with :func:`~.style.save_figure` (PDF and PNG, fixed metadata);
:mod:`.docs` makes the small copies shown in the README.

References
----------
[A] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. Unveiling the Unseen: Identifiable Clusters
    in Trained Depthwise Convolutional Kernels. ICLR 2024 (arXiv:2401.14469).
[Q] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. The Quest for Universal Master Key Filters in
    DS-CNNs. NeurIPS 2025 (arXiv:2509.11711).
[B] T. Lindeberg, Z. Babaiee, P. M. Kiasari. Modelling and analysis of the 8 filters from the
    "master key filters hypothesis" for depthwise-separable deep networks in relation to idealized
    receptive fields based on scale-space theory. arXiv:2509.12746; J. Math. Imaging Vis. 68(3), 2026.
[D] J. Grabinski, J. Keuper, M. Keuper. As large as it gets - Studying infinitely large
    convolutions via neural implicit frequency filters. TMLR 2024.
"""

from .clustering import (
    plot_cluster_membership,
    plot_error_curve,
    plot_latent_histograms,
    plot_master_keys,
    plot_prototypes,
    plot_share_vs_accuracy,
)
from .niff import plot_kernel_gallery, plot_kernel_pca, plot_kmr_curves
from .replacement import plot_frozen_keys, plot_replacement_accuracy, plot_replacement_stages
from .scalespace import (
    plot_explained_share,
    plot_fitted_scales,
    plot_published_models,
    plot_published_spread,
    plot_residuals,
)
from .style import COLUMN_WIDTH, TEXT_WIDTH, apply_style, save_figure, show_kernel

__all__ = [
    "COLUMN_WIDTH",
    "TEXT_WIDTH",
    "apply_style",
    "save_figure",
    "show_kernel",
    "plot_published_models",
    "plot_published_spread",
    "plot_fitted_scales",
    "plot_residuals",
    "plot_explained_share",
    "plot_prototypes",
    "plot_cluster_membership",
    "plot_latent_histograms",
    "plot_master_keys",
    "plot_error_curve",
    "plot_share_vs_accuracy",
    "plot_replacement_accuracy",
    "plot_replacement_stages",
    "plot_frozen_keys",
    "plot_kmr_curves",
    "plot_kernel_gallery",
    "plot_kernel_pca",
]
