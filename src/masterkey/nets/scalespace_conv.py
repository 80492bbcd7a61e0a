"""A depthwise convolution of idealized scale-space filters with learnable scales ([B] Secs. 3 and 5).

Channel ``c`` of :class:`ScaleSpaceConv2d` has the kernel
``a_c t(type_c; sigma_x,c, sigma_y,c[, alpha_c]) + b_c`` with ``t`` a template of the model family
of docs/methods.md section 3.3, built by
:func:`masterkey.scalespace.templates.templates_from_profiles` from differentiable Gaussian
profiles (:mod:`masterkey.scalespace.differentiable`): the discrete analogue ``T`` of the Gaussian
(default) or, as [B] Sec. 5 trained ConvNeXt V2, the normalised sampled Gaussian.  Scales are
positive through ``sigma = floor + softplus(raw)`` (grid spacings, ``s = sigma^2``); ``lap`` and
``id-lap`` have the single scale ``sigma_x`` of [B] (their ``sigma_y`` is tied to it).

Kernels are ``h[row, col]`` (docs/methods.md section 1) and go into the convolution weight exactly as
:func:`masterkey.nets.depthwise.apply_kernels` writes a stored kernel: ``weight[c, 0] = h`` (nothing
flipped).  :func:`to_scalespace` turns every fitted depthwise convolution of a network into this
layer, initialised to the ``idealized-<method>`` replacement variant (docs/methods.md section 5).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..kernels.conventions import check_kernel_size
from ..kernels.similarity import affine_fit
from ..kernels.store import has_scale_space_model, kernel_key
from ..scalespace.differentiable import discrete_gaussian_profiles, sampled_gaussian_profiles
from ..scalespace.fitting import METHODS
from ..scalespace.models import templates_from_fits
from ..scalespace.templates import TYPE_NAMES, check_type, templates_from_profiles
from .depthwise import find_depthwise_convs

__all__ = [
    "PARAMETER_NAMES",
    "GAUSSIANS",
    "CONSTANT",
    "ScaleSpaceConv2d",
    "ScaleSpaceConversion",
    "to_scalespace",
    "scalespace_layers",
    "scale_frame",
    "bake_scalespace",
]

PARAMETER_NAMES = ("scales", "alpha", "amplitude", "offset")
"""The parameter groups that ``trainable`` may name."""
GAUSSIANS = ("discrete", "sampled")
"""Smoothing kernels: ``T(n; s)`` of docs/methods.md section 3.1, or [B] Sec. 5's sampled Gaussian."""
CONSTANT = "constant"
"""Summary key of channels without a template (kernel ``b_c``: kernels without a finite fit)."""
SINGLE_SCALE = ("lap", "id-lap")


def _per_channel(values, channels: int, name: str) -> np.ndarray:
    try:
        return np.broadcast_to(np.asarray(values, dtype=np.float64), (channels,)).copy()
    except ValueError:
        raise ValueError(f"{name} must be a scalar or have one value per channel ({channels})") from None


def _inverse_softplus(y: np.ndarray) -> np.ndarray:
    """``raw`` with ``log(1 + exp(raw)) = y > 0``, accurate in float64 for small and large ``y``."""
    return y + np.log(-np.expm1(-y))


class ScaleSpaceConv2d(nn.Module):
    """Depthwise convolution whose kernels are idealized scale-space templates with learnable scales.

    Channel ``c``: ``a_c t(type_c; sigma_x,c, sigma_y,c[, alpha_c]) + b_c`` ([B] Secs. 3-5,
    docs/methods.md sections 3.3 and 5), ``sigma = floor + softplus(raw)`` per axis (single scale
    ``sigma_x`` for ``lap`` / ``id-lap``), ``alpha`` for ``id-lap`` channels, amplitude ``a`` and
    offset ``b``.  Channels of one type are built in one batch.

    Parameters
    ----------
    types : sequence of str or None, length ``C``
        Type per channel (:data:`~masterkey.scalespace.templates.TYPE_NAMES`); None gives a
        constant kernel ``b_c`` (a kernel without a finite fit).  Fixed.
    kernel_size : int
        Odd ``k``.
    sigma_x, sigma_y : array_like ``(C,)`` or scalar
        Initial scales in grid spacings, finite and ``> floor`` (ignored for None channels);
        ``sigma_y`` defaults to ``sigma_x`` and must equal it for ``lap`` / ``id-lap``.
    alpha : array_like ``(C,)`` or scalar, optional
        Initial ``alpha`` of ``id-lap = delta - alpha lap5 T`` (finite for ``id-lap`` channels).
    amplitude, offset : array_like ``(C,)`` or scalar
        Initial ``a`` and ``b``.
    bias : array_like ``(C,)``, optional
        Convolution bias (always trainable); None for none.
    gaussian : {"discrete", "sampled"}
        ``T(n; sigma^2)`` (not renormalised) or the normalised sampled Gaussian of [B] Sec. 5.
    trainable : collection of str
        Subset of :data:`PARAMETER_NAMES`; the others get ``requires_grad = False``.
    floor : float
        Lower bound of the scales (grid spacings).
    stride, padding, dilation
        As :func:`torch.nn.functional.conv2d`; ``padding`` defaults to ``dilation * (k // 2)``.
    dtype, device
        Of the parameters.

    Raises
    ------
    ValueError
        For an unknown type, an even ``k``, an unknown ``gaussian`` or ``trainable`` name, scales
        that are not finite or not above ``floor``, two scales for a single-scale type, a missing
        ``alpha`` for ``id-lap``, or values without one entry per channel.
    """

    def __init__(self, types, kernel_size: int, sigma_x, sigma_y=None, alpha=None, amplitude=1.0, offset=0.0,
                 bias=None, *, gaussian: str = "discrete", trainable=PARAMETER_NAMES, floor: float = 1e-3,
                 stride=1, padding=None, dilation=1, dtype=torch.float32, device=None):  # fmt: skip
        super().__init__()
        self.types = tuple(None if t is None else check_type(t) for t in types)
        self.kernel_size = check_kernel_size(kernel_size)
        if gaussian not in GAUSSIANS:
            raise ValueError(f"unknown gaussian {gaussian!r}; choose one of {', '.join(GAUSSIANS)}")
        unknown = set(trainable) - set(PARAMETER_NAMES)
        if unknown:
            raise ValueError(
                f"unknown trainable {sorted(unknown)}; choose among {', '.join(PARAMETER_NAMES)}"
            )
        self.gaussian, self.floor = gaussian, float(floor)
        self.stride, self.dilation = stride, dilation
        self.padding = dilation * (self.kernel_size // 2) if padding is None else padding
        channels = len(self.types)
        typed = np.array([t is not None for t in self.types])
        single = np.array([t in SINGLE_SCALE for t in self.types])
        sigma_x = _per_channel(sigma_x, channels, "sigma_x")
        sigma_y = sigma_x.copy() if sigma_y is None else _per_channel(sigma_y, channels, "sigma_y")
        if not np.array_equal(sigma_x[single], sigma_y[single], equal_nan=True):
            raise ValueError("lap and id-lap channels have a single scale; their sigma_y must equal sigma_x")
        sigmas = np.where(typed[:, None], np.stack([sigma_x, sigma_y], axis=1), self.floor + 1)  # constant
        if not (np.isfinite(sigmas).all() and (sigmas > self.floor).all()):
            bad = ~(np.isfinite(sigmas) & (sigmas > self.floor))
            raise ValueError(
                f"the scales of {int(bad.any(axis=1).sum())} channels are not finite or not above the floor "
                f"{self.floor} (e.g. {sigmas[bad][:3].tolist()}); lower the floor or check the fits"
            )
        idlap = np.array([t == "id-lap" for t in self.types])
        alpha = _per_channel(np.nan if alpha is None else alpha, channels, "alpha")[idlap]
        if not np.isfinite(alpha).all():
            raise ValueError(
                f"id-lap channels need a finite alpha, got {alpha[~np.isfinite(alpha)][:3].tolist()}"
            )
        values = {
            "raw_scale": _inverse_softplus(sigmas - self.floor),
            "alpha": alpha,
            "amplitude": _per_channel(amplitude, channels, "amplitude"),
            "offset": _per_channel(offset, channels, "offset"),
        }
        if not all(np.isfinite(v).all() for v in values.values()):
            raise ValueError("amplitude and offset must be finite")
        options = {"dtype": dtype, "device": device}
        for name, value in values.items():
            self.register_parameter(name, nn.Parameter(torch.as_tensor(value, **options)))
        if bias is None:
            self.register_parameter("bias", None)
        else:
            self.bias = nn.Parameter(torch.as_tensor(_per_channel(bias, channels, "bias"), **options))
        for group, parameter in zip(
            PARAMETER_NAMES, ("raw_scale", "alpha", "amplitude", "offset"), strict=True
        ):
            getattr(self, parameter).requires_grad_(group in trainable)
        self._group_types = sorted(set(self.types), key=lambda t: -1 if t is None else TYPE_NAMES.index(t))
        groups = [np.flatnonzero([t == g for t in self.types]) for g in self._group_types]
        for i, group in enumerate(groups):
            self.register_buffer(f"_group{i}", torch.as_tensor(group, device=device), persistent=False)
        order = np.argsort(np.concatenate(groups)) if groups else np.zeros(0, int)
        self.register_buffer("_order", torch.as_tensor(order, device=device), persistent=False)
        self.register_buffer("_single", torch.as_tensor(single, device=device), persistent=False)

    @property
    def channels(self) -> int:
        return len(self.types)

    def sigmas(self) -> torch.Tensor:
        """Scales ``(C, 2)``: ``(sigma_x, sigma_y)`` in grid spacings, ``floor + softplus(raw)``."""
        sigma = self.floor + torch.logaddexp(self.raw_scale, torch.zeros_like(self.raw_scale))
        return torch.where(self._single[:, None], sigma[:, :1], sigma)

    def kernel(self) -> torch.Tensor:
        """The convolution weight ``(C, 1, k, k)``: ``weight[c, 0] = a_c t_c + b_c`` as ``h[row, col]``."""
        k, sigma = self.kernel_size, self.sigmas()
        if self.gaussian == "discrete":
            profiles = discrete_gaussian_profiles(k, sigma.reshape(-1) ** 2)
        else:
            profiles = sampled_gaussian_profiles(k, sigma.reshape(-1))
        profiles = profiles.reshape(self.channels, 2, k)
        parts = []
        for i, type_name in enumerate(self._group_types):
            group = getattr(self, f"_group{i}")
            p_x, p_y = profiles[group, 0], profiles[group, 1]
            if type_name is None:
                parts.append(p_x.new_zeros(len(group), k, k))
            else:
                parts.append(templates_from_profiles(type_name, p_x, p_y, self.alpha))
        templates = torch.cat(parts)[self._order] if parts else profiles.new_zeros(0, k, k)
        return (self.amplitude[:, None, None] * templates + self.offset[:, None, None]).unsqueeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.kernel()
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, groups=self.channels)

    def extra_repr(self) -> str:
        counts = Counter(CONSTANT if t is None else t for t in self.types)
        return (
            f"{self.channels}, kernel_size={self.kernel_size}, gaussian={self.gaussian}, types={dict(counts)}"
        )


@dataclass(frozen=True)
class ScaleSpaceConversion:
    """What :func:`to_scalespace` did: ``layers`` converted, depthwise layers ``kept`` as plain
    convolutions (no 2-D model: band kernels), and the number of ``channels`` per type
    (:data:`CONSTANT` for kernels without a finite fit)."""

    layers: tuple[str, ...]
    kept: tuple[str, ...]
    channels: dict[str, int]


def _layer_fits(rows: pd.DataFrame, by_method: pd.DataFrame, index: pd.DataFrame, key: str, method: str):
    """The fits rows of one layer's channels (in channel order), checked against the kernel index."""
    part = by_method[by_method["kernel_size"] == key]
    expected = int((index["kernel_size"] == key).sum())
    if not np.array_equal(np.sort(part["filter"].to_numpy()), np.arange(expected)):
        raise ValueError(
            f"the fits table has {len(part)} rows for method {method} and kernel size {key} but the kernel "
            f"index lists {expected} such kernels; the fits do not match the kernels"
        )
    return part.set_index("filter").loc[rows["row"].to_numpy()].reset_index()


def _check_layer(conv: nn.Conv2d, rows: pd.DataFrame, kernels: np.ndarray, name: str) -> None:
    key = kernel_key(*conv.kernel_size)
    if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros":
        raise ValueError(f"layer {name} is a {type(conv).__name__} with padding mode {conv.padding_mode}; "
                         "only plain zero-padded nn.Conv2d layers are converted")  # fmt: skip
    if (
        len(rows) != len(kernels)
        or set(rows["kernel_size"]) != {key}
        or not np.array_equal(rows["channel"].to_numpy(), np.arange(len(kernels)))
    ):
        raise ValueError(f"the kernel index lists {len(rows)} kernels for layer {name}, the model has "
                         f"{len(kernels)} of {key}; the index does not match the model")  # fmt: skip
    flat = kernels.reshape(len(kernels), -1)
    norms = np.stack([np.sqrt((flat**2).sum(axis=1)), flat.mean(axis=1)], axis=1)
    if not np.allclose(norms, rows[["l2_norm", "mean"]].to_numpy(float), rtol=1e-5, atol=1e-7):
        raise ValueError(f"the kernels of layer {name} differ from the kernel index (l2 norm, mean); "
                         "the index and fits belong to other weights")  # fmt: skip


def to_scalespace(model: nn.Module, fits: pd.DataFrame, index: pd.DataFrame, method: str, gaussian="discrete",
                  trainable=PARAMETER_NAMES, floor: float = 1e-3):  # fmt: skip
    """Replace every fitted depthwise convolution of ``model`` by a :class:`ScaleSpaceConv2d` (in place).

    At initialisation (with ``gaussian="discrete"``; the sampled Gaussian only approximates ``T``)
    the network equals the ``idealized-<method>`` replacement variant (docs/methods.md section 5,
    [B] Sec. 5; :func:`masterkey.replacement.build.idealized_kernels`): channel ``c`` gets its
    fitted type and scales (:func:`~masterkey.scalespace.models.templates_from_fits`) and the
    least-squares ``(a, b)`` of :func:`~masterkey.kernels.similarity.affine_fit` of that template
    onto the layer's current kernel; a kernel without a finite template (degenerate) becomes a
    constant channel ``b`` (its mean, ``a = 0``), as in the variant.  The conv bias, stride,
    padding and dilation are kept.  Depthwise layers without a 2-D model (band kernels ``1x9`` ...)
    stay plain convolutions.

    Parameters
    ----------
    model : torch.nn.Module
        A network whose depthwise kernels are those of ``index`` (e.g. a timm ConvNeXt).
    fits : pandas.DataFrame
        Its fits table (columns ``method``, ``kernel_size``, ``filter``, ``type``, ``sigma_x``,
        ``sigma_y``, ``alpha``; ``results/fits/{model}.parquet``).
    index : pandas.DataFrame
        Its kernel index (``results/kernels/{model}.parquet``, :mod:`masterkey.kernels.store`):
        layer and channel of every ``filter`` (its ``row``), with ``l2_norm`` and ``mean``.
    method : str
        One of :data:`~masterkey.scalespace.fitting.METHODS`.
    gaussian, trainable, floor
        Passed to :class:`ScaleSpaceConv2d`.

    Returns
    -------
    model : torch.nn.Module
        The same object, converted.
    summary : ScaleSpaceConversion
        Layers converted and kept, channels per type.

    Raises
    ------
    ValueError
        For an unknown method; an index that does not list the model's depthwise layers, channels
        or kernels; a fits table without exactly one row per kernel of a converted size for
        ``method``; a layer that is not a plain ``nn.Conv2d``; fitted scales not above ``floor``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown fitting method {method!r}; use one of {', '.join(METHODS)}")
    layers = {layer.name: layer.module for layer in find_depthwise_convs(model)}
    if set(layers) != set(index["layer"]):
        example = sorted(set(layers) ^ set(index["layer"]))[:3]
        raise ValueError(f"the kernel index does not list the model's depthwise layers (e.g. {example})")
    by_method = fits[fits["method"] == method]
    converted, kept, counts = [], [], Counter()
    for name, conv in layers.items():
        if not has_scale_space_model(*conv.kernel_size):
            kept.append(name)
            continue
        k = conv.kernel_size[0]
        rows = index[index["layer"] == name].sort_values("channel")
        kernels = conv.weight.detach().to("cpu", torch.float64).numpy()[:, 0]
        _check_layer(conv, rows, kernels, name)
        part = _layer_fits(rows, by_method, index, kernel_key(k, k), method)
        templates = templates_from_fits(part, k)
        amplitude, offset = affine_fit(templates, kernels)
        types = [t if np.isfinite(h).all() else None for t, h in zip(part["type"], templates, strict=True)]
        sigma_x = part["sigma_x"].to_numpy(float)
        sigma_y = np.where(part["type"].isin(SINGLE_SCALE), sigma_x, part["sigma_y"].to_numpy(float))
        bias = None if conv.bias is None else conv.bias.detach().cpu().double().numpy()
        try:
            layer = ScaleSpaceConv2d(
                types, k, sigma_x, sigma_y, part["alpha"].to_numpy(float), amplitude, offset, bias,
                gaussian=gaussian, trainable=trainable, floor=floor, stride=conv.stride, padding=conv.padding,
                dilation=conv.dilation, dtype=conv.weight.dtype, device=conv.weight.device,
            )  # fmt: skip
        except ValueError as err:
            raise ValueError(f"layer {name}: {err}") from None
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, layer)
        converted.append(name)
        counts.update(CONSTANT if t is None else t for t in types)
    channels = {t: counts[t] for t in (*TYPE_NAMES, CONSTANT) if counts[t]}
    return model, ScaleSpaceConversion(tuple(converted), tuple(kept), channels)


def scalespace_layers(model: nn.Module) -> dict[str, ScaleSpaceConv2d]:
    """Name -> every :class:`ScaleSpaceConv2d` of ``model``, in module order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, ScaleSpaceConv2d)}


def scale_frame(model: nn.Module) -> pd.DataFrame:
    """One row per channel of every :class:`ScaleSpaceConv2d` of ``model``: ``layer``, ``channel``,
    ``type`` (:data:`CONSTANT` for a constant channel), ``sigma_x``, ``sigma_y`` (grid spacings),
    ``alpha`` (NaN but for ``id-lap``), ``amplitude`` and ``offset``."""
    frames = []
    for name, layer in scalespace_layers(model).items():
        with torch.no_grad():
            sigmas = layer.sigmas().double().cpu().numpy()
        alpha = np.full(layer.channels, np.nan)
        alpha[[t == "id-lap" for t in layer.types]] = layer.alpha.detach().double().cpu().numpy()
        frames.append(pd.DataFrame({
            "layer": name, "channel": np.arange(layer.channels),
            "type": [CONSTANT if t is None else t for t in layer.types],
            "sigma_x": sigmas[:, 0], "sigma_y": sigmas[:, 1], "alpha": alpha,
            "amplitude": layer.amplitude.detach().double().cpu().numpy(),
            "offset": layer.offset.detach().double().cpu().numpy(),
        }))  # fmt: skip
    columns = ["layer", "channel", "type", "sigma_x", "sigma_y", "alpha", "amplitude", "offset"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def bake_scalespace(model: nn.Module) -> int:
    """Replace every :class:`ScaleSpaceConv2d` of ``model`` (in place) by the plain depthwise
    ``nn.Conv2d`` it computes (weight :meth:`ScaleSpaceConv2d.kernel`, same bias, stride, padding,
    dilation), so that the network is the timm architecture again; returns the number replaced."""
    layers = scalespace_layers(model)
    for name, layer in layers.items():
        with torch.no_grad():
            weight = layer.kernel()
        conv = nn.Conv2d(layer.channels, layer.channels, layer.kernel_size, stride=layer.stride,
                         padding=layer.padding, dilation=layer.dilation, groups=layer.channels,
                         bias=layer.bias is not None, dtype=weight.dtype, device=weight.device)  # fmt: skip
        with torch.no_grad():
            conv.weight.copy_(weight)
            if layer.bias is not None:
                conv.bias.copy_(layer.bias)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, conv)
    return len(layers)
