"""Settings of the clustering stage: the ``clustering`` config section ([A], [Q]; docs/methods.md section 4).

Choices not fixed by the papers (defaults of :class:`ClusteringSettings`, documented in the schema):
``kernel_sizes = None`` (every odd square size of the models, each pooled on its own),
``k = 12`` (one cluster per idealized type), ``threshold = 0.5`` (a cosine of 0.5 between centred
49-d vectors is about 3.5 standard deviations above chance), ``restarts = 3`` autoencoders per
training (the lowest reconstruction loss is kept; a 1-D code can get stuck with two kernel types
sharing one stretch of the latent axis), and ``min_steps = 3000`` optimisation steps at least
(epochs are raised for small pools such as the demo).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.config import Settings

__all__ = ["ClusteringSettings"]


@dataclass(frozen=True)
class ClusteringSettings(Settings, section="clustering"):
    """The ``clustering`` config section (keys, meaning and allowed values: the config schema).

    ``kernel_sizes``: the odd square sizes ``k`` (``k x k``) to cluster, each in its own pool; None:
    every odd square size ``>= 3`` in the models' kernel indices
    (:func:`masterkey.clustering.pool.resolve_kernel_sizes`).
    """

    kernel_sizes: tuple[int, ...] | None = None
    max_kernels_per_model: int | None = 100_000
    flip_sign: bool = False
    latent_dim: int = 1
    hidden_widths: tuple[int, ...] = (128, 64)
    epochs: int = 30
    min_steps: int = 3000
    batch_size: int = 256
    learning_rate: float = 0.003
    restarts: int = 3
    k: int = 12
    kmeans_n_init: int = 4
    raw_kmeans_max_kernels: int = 100_000
    threshold: float = 0.5
    num_candidates: int = 50
    num_master_keys: int = 8

    def epochs_for(self, num_kernels: int) -> int:
        """Epochs for ``num_kernels`` kernels: ``epochs``, raised to reach at least ``min_steps`` steps."""
        steps_per_epoch = max(1, -(-num_kernels // self.batch_size))
        return max(self.epochs, -(-self.min_steps // steps_per_epoch))
