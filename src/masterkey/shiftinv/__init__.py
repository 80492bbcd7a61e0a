"""Shift invariance of max pooling after Gabor-like filters ([C]; docs/methods.md section 8).

When is a strided convolution followed by max pooling (RMax) close to the modulus of the output of
the filter's analytic companion (CMod), which is nearly shift invariant? Per filter:

* :mod:`.descriptors` - characteristic frequency and orientation, the analytic companion,
  Gabor-likeness ``rho(kappa)``, bandwidth, the low-pass flag (RGB kernels by their rank-1 part);
* :mod:`.bounds` - ``alpha``, ``beta_q``, ``gamma_q`` and the two bounds of [C];
* :mod:`.operators` - RMax, CMod, Fourier (sub-pixel) translations and the measured discrepancy
  ``P~`` and shift instability ``R~`` over a set of images;
* :mod:`.analysis` - one table row per filter: descriptors, bounds and measures;
* :mod:`.dtcwpt` - the dual-tree complex wavelet packet transform (own torch code, Kingsbury's
  Q-shift filters from the ``dtcwt`` package) and its equivalent complex filters;
* :mod:`.networks` - the first layer of a network and the max pooling after it; networks trained
  on the demo crops;
* :mod:`.images`, :mod:`.measures`, :mod:`.tables`, :mod:`.settings` - the workflow's crops,
  measures per filter bank, tables and config section.

Reference
---------
[C] H. Leterme, K. Polisano, V. Perrier, K. Alahari. On the shift invariance of max pooling feature
maps in convolutional neural networks. arXiv:2209.11740.
"""

from .analysis import filter_analysis
from .bounds import alpha, beta, discrepancy_bound, gamma, instability_bound
from .descriptors import (
    analytic_spectrum,
    bandwidth,
    characteristic_frequency,
    describe_filters,
    gabor_likeness,
    is_lowpass,
    monochrome_part,
    orientation,
)
from .dtcwpt import DTCWPT, equivalent_filters
from .operators import cmod, fourier_shift, responses, rmax, shift_measures

__all__ = [
    "filter_analysis",
    "alpha",
    "beta",
    "gamma",
    "discrepancy_bound",
    "instability_bound",
    "analytic_spectrum",
    "bandwidth",
    "characteristic_frequency",
    "describe_filters",
    "gabor_likeness",
    "is_lowpass",
    "monochrome_part",
    "orientation",
    "DTCWPT",
    "equivalent_filters",
    "cmod",
    "fourier_shift",
    "responses",
    "rmax",
    "shift_measures",
]
