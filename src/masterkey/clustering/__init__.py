"""Clustering depthwise kernels ([A]) and selecting master key filters ([Q]).

* :mod:`.settings` - the ``clustering`` config section;
* :mod:`.pool` - pooling and normalising the kernels of all models;
* :mod:`.autoencoder` - the kernel autoencoder with a sigmoid latent code;
* :mod:`.clusters` - k-means, prototypes, type labels, classified shares;
* :mod:`.master_keys` - decoded candidates and the greedy selection of K master keys.

References
----------
Method: docs/methods.md section 4.
[A] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. Unveiling the Unseen: Identifiable Clusters
    in Trained Depthwise Convolutional Kernels. ICLR 2024 (arXiv:2401.14469).
[Q] Z. Babaiee, P. M. Kiasari, D. Rus, R. Grosu. The Quest for Universal Master Key Filters in
    DS-CNNs. NeurIPS 2025 (arXiv:2509.11711).
"""

from .autoencoder import (
    KernelAutoencoder,
    decode,
    encode,
    load_autoencoder,
    save_autoencoder,
    train_autoencoder,
)
from .clusters import (
    ClusteringResult,
    classification_table,
    cluster_pool,
    prototype_types,
    save_clustering,
)
from .master_keys import (
    MasterKeys,
    compare_with_published,
    decode_candidates,
    select_master_keys,
)
from .pool import (
    KernelPool,
    latents_for_pool,
    latents_table,
    pool_arrays,
    pool_models,
)
from .settings import ClusteringSettings

__all__ = [
    "ClusteringSettings",
    "KernelPool",
    "pool_arrays",
    "pool_models",
    "latents_for_pool",
    "KernelAutoencoder",
    "train_autoencoder",
    "encode",
    "decode",
    "save_autoencoder",
    "load_autoencoder",
    "ClusteringResult",
    "cluster_pool",
    "classification_table",
    "prototype_types",
    "MasterKeys",
    "decode_candidates",
    "select_master_keys",
    "compare_with_published",
    "latents_table",
    "save_clustering",
]
