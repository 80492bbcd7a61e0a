"""Depthwise kernels as data: coordinate conventions, similarity and the affine fit, the kernel store.

* :mod:`.conventions` - the coordinate and sign conventions (docs/methods.md section 1);
* :mod:`.similarity` - centre norm, ``|cosine|``, best match, the least-squares ``a t + b``;
* :mod:`.store` - the per-model ``.npz`` + parquet index of every depthwise kernel;
* :mod:`.shapes` - the kernel shapes of a model and which analyses use them (band kernels).

References
----------
Conventions of the published filters ([Q]) and of [B]; "center norm" of [A].
[A] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. Unveiling the Unseen: Identifiable Clusters
    in Trained Depthwise Convolutional Kernels. ICLR 2024 (arXiv:2401.14469).
[Q] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. The Quest for Universal Master Key Filters in
    DS-CNNs. NeurIPS 2025 (arXiv:2509.11711).
[B] T. Lindeberg, Z. Babaiee, P. M. Kiasari. Modelling and analysis of the 8 filters from the
    "master key filters hypothesis" for depthwise-separable deep networks in relation to idealized
    receptive fields based on scale-space theory. arXiv:2509.12746; J. Math. Imaging Vis. 68(3), 2026.
"""

from .conventions import (
    centre_share,
    check_kernel_size,
    grid_coordinates,
    kernel_coordinates,
    pattern_response,
)
from .shapes import SHAPE_ANALYSES, kernel_shape_table, kernel_shapes_caption, not_analysed_message
from .similarity import (
    NEAR_ZERO,
    affine_fit,
    affine_map,
    best_match,
    centre_norm,
    max_abs_cosine,
)
from .store import (
    INDEX_COLUMNS,
    INDEX_KEYS,
    has_scale_space_model,
    kernel_key,
    load_index,
    load_kernels,
    parse_kernel_key,
    save_kernels,
    square_kernel_sizes,
)

__all__ = [
    "check_kernel_size",
    "kernel_coordinates",
    "grid_coordinates",
    "pattern_response",
    "centre_share",
    "NEAR_ZERO",
    "centre_norm",
    "max_abs_cosine",
    "best_match",
    "affine_fit",
    "affine_map",
    "INDEX_COLUMNS",
    "INDEX_KEYS",
    "kernel_key",
    "save_kernels",
    "load_kernels",
    "load_index",
    "parse_kernel_key",
    "has_scale_space_model",
    "square_kernel_sizes",
    "SHAPE_ANALYSES",
    "kernel_shape_table",
    "kernel_shapes_caption",
    "not_analysed_message",
]
