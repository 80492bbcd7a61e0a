"""Data: the demo dataset, the published filters (bundled), preprocessing, ImageNet layouts, caches.

* :mod:`.demo` - the embedded demo task (scikit-image's bundled images, one class each);
* :mod:`.published` - the 8 published master key filters, shipped with the package;
* :mod:`.preprocessing` - timm's evaluation preprocessing of a checkpoint;
* :mod:`.imagenet` - ImageNet-style image folders and label files;
* :mod:`.evalcache` - evaluation sets and the decoded uint8 evaluation cache;
* :mod:`.training_sets` - training sets of the training engine (ImageNet-1k folders, CIFAR-10, demo crops).

References
----------
The published filters come from [Q] and were analysed in [B] (CC BY 4.0; see
published_filters/ATTRIBUTION.md).
[Q] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. The Quest for Universal Master Key Filters in
    DS-CNNs. NeurIPS 2025 (arXiv:2509.11711).
[B] T. Lindeberg, Z. Babaiee, P. M. Kiasari. Modelling and analysis of the 8 filters from the
    "master key filters hypothesis" for depthwise-separable deep networks in relation to idealized
    receptive fields based on scale-space theory. arXiv:2509.12746; J. Math. Imaging Vis. 68(3), 2026.
"""

from .demo import DemoDataset, DemoSettings, demo_dataset
from .evalcache import (
    EvalSet,
    build_eval_cache,
    eval_cache_files,
    load_eval_cache,
)
from .imagenet import file_list_fingerprint, find_imagenet_images
from .preprocessing import (
    IMAGENET_1K_CLASSES,
    Preprocessing,
    classifier_classes,
    preprocessing_for_model,
    preprocessing_with_key,
)
from .published import (
    BUNDLED_FILTERS,
    PUBLISHED_FILTERS_URL,
    fetch_published_filters,
    load_master_key_filters,
    parse_master_key_filters,
)
from .training_sets import (
    TRAINING_SETS,
    DemoCrops,
    cifar10_dataset,
    image_folder_dataset,
    require_dataset,
)

__all__ = [
    "DemoSettings",
    "DemoDataset",
    "demo_dataset",
    "PUBLISHED_FILTERS_URL",
    "BUNDLED_FILTERS",
    "parse_master_key_filters",
    "load_master_key_filters",
    "fetch_published_filters",
    "Preprocessing",
    "preprocessing_for_model",
    "classifier_classes",
    "IMAGENET_1K_CLASSES",
    "find_imagenet_images",
    "file_list_fingerprint",
    "EvalSet",
    "build_eval_cache",
    "load_eval_cache",
    "eval_cache_files",
    "preprocessing_with_key",
    "TRAINING_SETS",
    "DemoCrops",
    "cifar10_dataset",
    "image_folder_dataset",
    "require_dataset",
]
