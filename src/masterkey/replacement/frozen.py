"""Frozen master key depthwise filters: the network surgery of [Q] (docs/methods.md section 5).

[Q] trains ConvNeXt V2 with every depthwise filter frozen to one of the ``K`` master keys; only a
per-channel bias of the depthwise convolution learns (the key's scale is absorbed by the next
pointwise layer), and compares it with the learned network and with ``K`` random frozen filters.
[B] fine-tunes with frozen (replaced) depthwise kernels too.  This module only prepares such a
network (no training loop): :func:`install_frozen_keys` writes ``weight[c, 0] = s_c x_{i_c}``
with the assignment ``(i_c, s_c)`` of :func:`assign_keys`, zeroes the depthwise bias and freezes
the depthwise weights (:func:`freeze_depthwise`); :func:`random_keys` gives the random control.

Keys are used exactly as given (float32, no affine fit).  Both the published 8 filters and the
own ``master_keys_<K>.npz`` are *centre-normed* (zero mean, unit l2 norm per filter;
:func:`masterkey.kernels.similarity.centre_norm`), so the random keys are too.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..core.errors import StaleFileError
from ..kernels.conventions import check_kernel_size
from ..kernels.similarity import best_match, centre_norm
from ..kernels.store import load_index, load_kernels
from ..nets.depthwise import find_depthwise_convs
from .build import _keys_by_size

__all__ = ["freeze_depthwise", "random_keys", "assign_keys", "install_frozen_keys", "reference_by_layer"]


def freeze_depthwise(model: nn.Module, only=None) -> list[str]:
    """Set ``requires_grad = False`` on the weight of every depthwise convolution of ``model``
    (:func:`~masterkey.nets.depthwise.find_depthwise_convs`); biases and all else are untouched.

    Parameters
    ----------
    model : torch.nn.Module
    only : collection of str, optional
        Restrict to these layer names (module paths); default every depthwise layer.

    Returns
    -------
    list of str
        Names of the frozen parameters (``"stages.0.blocks.0.conv_dw.weight"``), in module order.
    """
    layers = [layer for layer in find_depthwise_convs(model) if only is None or layer.name in only]
    for layer in layers:
        layer.module.weight.requires_grad_(False)
    return [f"{layer.name}.weight" for layer in layers]


def random_keys(num_keys: int, size: int, seed: int) -> np.ndarray:
    """``K`` random ``size x size`` filters: i.i.d. standard normal (``numpy.random.default_rng(seed)``),
    each centre-normed (zero mean, unit l2 norm) like the published and own master keys.

    The random frozen control of [Q] (docs/methods.md section 5).

    Returns
    -------
    float64 array ``(num_keys, size, size)``

    Raises
    ------
    ValueError
        If ``num_keys < 1`` or ``size`` is not odd and at least 3.

    >>> keys = random_keys(3, 5, seed=0)
    >>> sums, squares = keys.sum(axis=(1, 2)), (keys**2).sum(axis=(1, 2))
    >>> keys.shape, bool(np.allclose(sums, 0)), bool(np.allclose(squares, 1))
    ((3, 5, 5), True, True)
    """
    if int(num_keys) != num_keys or num_keys < 1 or check_kernel_size(size) < 3:
        raise ValueError(f"need num_keys >= 1 and an odd size >= 3, got {num_keys} keys of size {size}")
    noise = np.random.default_rng(seed).standard_normal((int(num_keys), int(size), int(size)))
    return centre_norm(noise)


def assign_keys(keys: np.ndarray, reference: np.ndarray | None, channels: int | None = None):
    """The key and sign of every channel of one depthwise layer ([Q]; docs/methods.md section 5).

    Rule: with a reference network, channel ``c`` takes the key with the largest ``|cos|`` between
    the centred key and the centred reference kernel of that channel
    (:func:`masterkey.kernels.similarity.best_match`, ties to the lower index), and the sign of
    that cosine (+1 for a zero cosine, e.g. a constant reference kernel); without one, the even
    assignment ``index = c mod K`` with sign +1.

    Parameters
    ----------
    keys : array ``(K, k, k)``
    reference : array ``(N, k, k)`` or None
        The layer's kernels in a trained network of the same architecture.
    channels : int, optional
        ``N``; needed when ``reference`` is None.

    Returns
    -------
    index : int64 array ``(N,)``
    sign : int64 array ``(N,)`` of +-1

    Raises
    ------
    ValueError
        If shapes do not match, a key is constant, or ``channels`` is missing without reference.

    >>> keys = np.random.default_rng(0).normal(size=(3, 3, 3))
    >>> [a.tolist() for a in assign_keys(keys, np.stack([-2 * keys[2] + 1, keys[0]]))]
    [[2, 0], [-1, 1]]
    >>> assign_keys(keys, None, channels=4)[0].tolist()
    [0, 1, 2, 0]
    """
    keys = np.asarray(keys)
    if reference is None:
        if channels is None:
            raise ValueError("assign_keys needs the number of channels when there is no reference")
        return np.arange(channels, dtype=np.int64) % len(keys), np.ones(channels, np.int64)
    reference = np.asarray(reference)
    if reference.ndim != 3 or reference.shape[1:] != keys.shape[1:] or channels not in (None, len(reference)):
        raise ValueError(
            f"reference kernels of shape {reference.shape} do not match keys {keys.shape} "
            f"({channels} channels)"
        )
    index, _ = best_match(reference, keys)
    cosine = (centre_norm(reference) * centre_norm(keys[index])).sum(axis=(1, 2))  # NaN if constant
    return index.astype(np.int64), np.where(cosine < 0, -1, 1).astype(np.int64)


def install_frozen_keys(model: nn.Module, keys, reference: dict[str, np.ndarray] | None = None) -> dict:
    """Write master keys into the depthwise convolutions of ``model``, frozen ([Q]; docs/methods.md s. 5).

    For every depthwise layer whose kernel size has keys: ``weight[c, 0] = sign_c * keys[index_c]``
    (float32, keys as given, no affine fit: the scale is left to the next layer) with the
    assignment of :func:`assign_keys`, its bias set to zero and left trainable, and its weight
    frozen (:func:`freeze_depthwise`).  Layers of a size without keys are untouched (learned and
    trainable).  Nothing is written unless every check passes.

    Parameters
    ----------
    model : torch.nn.Module
    keys : dict of str to array ``(K, k, k)``, or array ``(K, k, k)``
        Keys per size (``{"7x7": ...}``, ``master_keys_<K>.npz``), or one array keyed by its size.
    reference : dict of str to array ``(C, k, k)``, optional
        Layer name (module path, as in the kernel store) -> that layer's kernels in a trained
        network of the same architecture (:func:`reference_by_layer`); None: even assignment.

    Returns
    -------
    dict
        ``layers_replaced`` and ``layers_kept`` (names), ``channels`` (replaced), ``negative``
        (channels with sign -1), ``key_counts`` (size -> channels per key index), ``frozen``
        (parameter names).

    Raises
    ------
    ValueError
        If no depthwise layer has a size with keys, a replaced layer has no bias, or a reference
        layer is missing, unknown or of another shape.
    """
    keys = _keys_by_size(keys)
    layers = find_depthwise_convs(model)
    chosen = [layer for layer in layers if layer.kernel_key in keys]
    if not chosen:
        sizes = sorted({layer.kernel_key for layer in layers})
        raise ValueError(f"no depthwise convolution has a size with keys: model {sizes}, keys {sorted(keys)}")
    unknown = sorted(set(reference or {}) - {layer.name for layer in layers})
    if unknown:
        raise ValueError(f"reference layers {unknown[:3]} are not depthwise layers of the model")
    plan = []
    for layer in chosen:
        conv, size = layer.module, layer.kernel_key
        if conv.bias is None:
            raise ValueError(f"depthwise layer {layer.name} has no bias; frozen keys need a learnable one")
        ref = None
        if reference is not None:
            if layer.name not in reference:
                raise ValueError(f"the reference has no kernels for layer {layer.name}")
            ref, expected = np.asarray(reference[layer.name]), (layer.channels, *conv.kernel_size)
            if ref.shape != expected:
                raise ValueError(f"reference of layer {layer.name} has shape {ref.shape}, model {expected}")
        plan.append((layer, size, *assign_keys(keys[size], ref, layer.channels)))
    counts = {size: np.zeros(len(array), np.int64) for size, array in keys.items()}
    with torch.no_grad():
        for layer, size, index, sign in plan:
            kernels = keys[size].astype(np.float32)[index] * sign.astype(np.float32)[:, None, None]
            weight = layer.module.weight
            weight.copy_(torch.from_numpy(kernels).unsqueeze(1).to(weight.device, weight.dtype))
            layer.module.bias.zero_()
            layer.module.bias.requires_grad_(True)
            counts[size] += np.bincount(index, minlength=len(keys[size]))
    replaced = [layer.name for layer, *_ in plan]
    return {
        "layers_replaced": replaced,
        "layers_kept": [layer.name for layer in layers if layer.name not in replaced],
        "channels": int(sum(len(index) for *_, index, _ in plan)),
        "negative": int(sum((sign < 0).sum() for *_, sign in plan)),
        "key_counts": {size: count.tolist() for size, count in counts.items()},
        "frozen": freeze_depthwise(model, only=set(replaced)),
    }


def reference_by_layer(kernels_npz_path, index_parquet_path) -> dict[str, np.ndarray]:
    """Layer name -> ``(C, kh, kw)`` kernels (channel order) of a kernel store
    (``results/kernels/{model}.npz`` and ``.parquet``, :mod:`masterkey.kernels.store`): the
    ``reference`` of :func:`install_frozen_keys`.

    Raises
    ------
    StaleFileError
        If a file is missing or unreadable, or the index and the arrays disagree.
    """
    arrays, index = load_kernels(kernels_npz_path), load_index(index_parquet_path)
    out = {}
    for layer, part in index.groupby("layer", sort=False):
        part = part.sort_values("channel")
        key, rows = part["kernel_size"].iloc[0], part["row"].to_numpy()
        if key not in arrays or not np.array_equal(part["channel"], np.arange(len(part))) \
                or rows.max() >= len(arrays[key]):  # fmt: skip
            raise StaleFileError(index_parquet_path, f"does not match {kernels_npz_path} for layer {layer}")
        out[layer] = arrays[key][rows]
    return out
