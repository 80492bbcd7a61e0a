"""Clustering depthwise kernels ([A]) and selecting master key filters ([Q]), per kernel size.

* :mod:`.settings` - the ``clustering`` config section;
* :mod:`.pool` - the kernel sizes to cluster, pooling and normalising the kernels of all models
  (one pool per size);
* :mod:`.autoencoder` - the kernel autoencoder with a sigmoid latent code (one per size);
* :mod:`.clusters` - k-means, prototypes, type labels, classified shares;
* :mod:`.master_keys` - decoded candidates and the greedy selection of K master keys per size;
* :mod:`.accuracy` - classified share beside published top-1 across model families.

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
    load_autoencoders,
    save_autoencoders,
    train_autoencoder,
    train_autoencoders,
)
from .clusters import (
    ClusteringResult,
    classification_table,
    cluster_pool,
    cluster_pools,
    prototype_types,
    save_clustering,
)
from .master_keys import (
    MasterKeys,
    compare_with_published,
    decode_candidates,
    load_master_keys,
    published_comparison,
    save_master_keys,
    select_master_keys,
    select_master_keys_per_size,
)
from .pool import (
    KernelPool,
    latents_for_pool,
    latents_table,
    pool_arrays,
    pool_models,
    resolve_kernel_sizes,
    size_seed,
)
from .settings import ClusteringSettings

__all__ = [
    "ClusteringSettings",
    "KernelPool",
    "resolve_kernel_sizes",
    "size_seed",
    "pool_arrays",
    "pool_models",
    "latents_for_pool",
    "KernelAutoencoder",
    "train_autoencoder",
    "train_autoencoders",
    "encode",
    "decode",
    "save_autoencoders",
    "load_autoencoders",
    "ClusteringResult",
    "cluster_pool",
    "cluster_pools",
    "classification_table",
    "prototype_types",
    "MasterKeys",
    "decode_candidates",
    "select_master_keys",
    "select_master_keys_per_size",
    "compare_with_published",
    "published_comparison",
    "save_master_keys",
    "load_master_keys",
    "latents_table",
    "save_clustering",
]
