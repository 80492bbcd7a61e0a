"""masterkey: what depthwise-separable CNNs learn in their depthwise filters.

Extraction, clustering, scale-space modelling and replacement of the
depthwise kernels of ConvNeXt-style networks; see the README for the papers.
"""

__version__ = "0.1.0"
