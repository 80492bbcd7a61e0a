"""Neural implicit frequency filters ([D]): the layer, NIFF ConvNeXt, kernel mass ratios.

* :mod:`.layer` - :class:`NIFFConv2d`, a depthwise layer as large as the feature map;
* :mod:`.models` - :func:`niffify` and the timm names ``niff_<ConvNeXt architecture>``
  (registered on import);
* :mod:`.kmr` - kernel mass ratio and effective kernel size;
* :mod:`.analysis` - every layer's spatial kernels of a network, KMR tables, trained vs init;
* :mod:`.training` - training runs (demo, CIFAR-10, ImageNet) through the engine.

Reference
---------
[D] J. Grabinski, J. Keuper, M. Keuper. As large as it gets - Studying infinitely large
convolutions via neural implicit frequency filters. TMLR 2024.
"""

from .kmr import LEVELS, central_crop, effective_size, kernel_mass_ratio, mass_ratio_sizes
from .layer import COORDINATES, PADDINGS, ROUTES, NIFFConv2d, frequency_grid
from .models import (
    base_architecture,
    is_niff_architecture,
    niff_layers,
    niff_parameter_count,
    niffify,
    registered_architectures,
)

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
    "registered_architectures",
    "LEVELS",
    "kernel_mass_ratio",
    "effective_size",
    "mass_ratio_sizes",
    "central_crop",
]
