"""Neural implicit frequency filters ([D]): the study of how large learned depthwise filters want to be.

The network parts live in the shared layer, so that any stage can load and extract NIFF networks,
and are re-exported here:

* :mod:`masterkey.nets.niff` - :class:`NIFFConv2d`, a depthwise layer as large as the feature map;
* :mod:`masterkey.nets.niff_convnext` - :func:`niffify`, the timm names
  ``niff_<ConvNeXt architecture>`` (registered on import) and every layer's spatial kernels
  (:func:`spatial_kernels`, :func:`feature_sizes`, :func:`central_kernels`).

The study itself:

* :mod:`.kmr` - kernel mass ratio and effective kernel size;
* :mod:`.analysis` - KMR tables per layer and stage, trained vs init, the plain baseline;
* :mod:`.training` - training runs (demo, CIFAR-10, ImageNet) through the engine;
* :mod:`.tables`, :mod:`.settings` - the stage's tables and its config section.

Reference
---------
[D] J. Grabinski, J. Keuper, M. Keuper. As large as it gets - Studying infinitely large
convolutions via neural implicit frequency filters. TMLR 2024.
"""

from ..nets.niff import COORDINATES, PADDINGS, ROUTES, NIFFConv2d, frequency_grid
from ..nets.niff_convnext import (
    base_architecture,
    central_kernels,
    feature_sizes,
    is_niff_architecture,
    niff_layers,
    niff_parameter_count,
    niffify,
    plain_architecture,
    registered_architectures,
    spatial_kernels,
)
from .kmr import LEVELS, central_crop, effective_size, kernel_mass_ratio, mass_ratio_sizes

__all__ = [
    "NIFFConv2d",
    "frequency_grid",
    "COORDINATES",
    "PADDINGS",
    "ROUTES",
    "niffify",
    "niff_layers",
    "niff_parameter_count",
    "is_niff_architecture",
    "base_architecture",
    "plain_architecture",
    "registered_architectures",
    "feature_sizes",
    "spatial_kernels",
    "central_kernels",
    "LEVELS",
    "kernel_mass_ratio",
    "effective_size",
    "mass_ratio_sizes",
    "central_crop",
]
