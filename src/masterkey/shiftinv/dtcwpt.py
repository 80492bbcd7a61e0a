"""2-D dual-tree complex wavelet packet transform (DT-CWPT) of depth ``J`` in torch ([C], spec section 8).

Four real separable wavelet packet trees (rows tree ``s``, columns tree ``t``, each ``a`` or ``b``) are
combined into complex oriented filters, following Bayram and Selesnick's dual-tree packet construction
with Kingsbury's Q-shift filters (``dtcwt.coeffs.qshift``):

* stage 1 (causal taps): tree ``a`` low-pass ``h0a`` at delay 0, high-pass ``h1a`` at delay 2; tree
  ``b`` ``h0a`` and ``-h1a`` at delay 1; after the stage-1 high-pass the trees swap their Q-shift filters;
* later stages, after a low-pass: each tree keeps its Q-shift pair (``a``: ``(h0a, h1a)``, ``b``: the
  time-reversed ``(h0b, h1b)``); after a high-pass of a later stage both trees use ``(h0a, h1a)``;
* with ``psi = psi_a + i psi_b`` the 1-D complex packets of a path, the complex coefficients are
  ``ya = (aa - bb) + i (ba + ab)`` (filter ``psi_p(rows) psi_q(cols)``) and
  ``yb = (aa + bb) + i (ba - ab)`` (filter ``psi_p(rows) conj(psi_q(cols))``);
* stages 1 .. J-1 subsample by 2, the last stage is stationary: total subsampling ``m_J = 2**(J-1)``.

Convolutions are circular (periodic boundary) and exact. Frequencies are in radians per sample.

Reference: I. Bayram, I. W. Selesnick, On the dual-tree complex wavelet packet and M-band transforms,
IEEE Trans. Signal Process. 56(6), 2008; [C] H. Leterme et al., On the shift invariance of max pooling
feature maps in CNNs, 2023.
"""

from __future__ import annotations

import math
from numbers import Integral

import numpy as np
import torch
from torch.nn import functional as F

__all__ = ["QSHIFT_NAMES", "DTCWPT", "equivalent_filters", "nominal_frequencies"]

QSHIFT_NAMES = ("qshift_06", "qshift_a", "qshift_b", "qshift_c", "qshift_d")


def _check_depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, Integral) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1 (number of decomposition stages), got {depth!r}")
    return int(depth)


def _stage_banks(depth: int, qshift: str) -> list[np.ndarray]:
    """Causal convolution filters of each stage: ``banks[j]`` of shape ``(2, 2**j, 2, L_j)`` (tree
    ``a``/``b``, input packet in Paley order, low/high-pass, taps from delay 0)."""
    if qshift not in QSHIFT_NAMES:
        raise ValueError(f"unknown qshift {qshift!r}: use one of {', '.join(QSHIFT_NAMES)}")
    from dtcwt.coeffs import qshift as dtcwt_qshift  # on use: the rest of shiftinv runs without dtcwt

    h0a, h0b, _, _, h1a, h1b, _, _ = (c.ravel() for c in dtcwt_qshift(qshift))
    pairs = {"a": (h0a, h1a), "b": (h0b, h1b), "same": (h0a, h1a)}
    z = np.zeros(1)
    first = [(np.r_[h0a, z, z], np.r_[z, z, h1a]), (np.r_[z, h0a, z], np.r_[z, -h1a, z])]
    banks = [np.array(first, dtype=np.float64)[:, None]]
    labels = [["a", "b"], ["b", "a"]]  # filters used after each stage-1 output, per tree
    for _ in range(1, depth):
        banks.append(np.array([[pairs[lab] for lab in tree] for tree in labels], dtype=np.float64))
        labels = [[new for lab in tree for new in (lab, "same")] for tree in labels]
    return banks


def _layout(depth: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sign, order)``: ``sign`` of shape ``(2, P, P)`` (-1: conjugate the ``(ya|yb, p, q)`` output so
    that its column frequency is positive) and ``order`` of shape ``(F,)``, the flat ``(ya|yb, p, q)``
    index of output filter ``f`` (see :func:`nominal_frequencies`)."""
    n = 2**depth
    paths = np.arange(n)
    band = paths.copy()  # frequency band of the Paley-ordered path p: inverse Gray code
    for shift in range(1, depth):
        band ^= paths >> shift
    # side s_p of the 1-D psi_p: negative frequencies (-1) except for the paths low-pass after stage 1
    # (bands around 0 and pi, energy about 0.8 on the positive side)
    side = np.where(paths % (n // 2) == 0, 1, -1)
    sign = np.stack([np.broadcast_to(side, (n, n)), np.broadcast_to(-side, (n, n))])  # cols side s_q, -s_q
    row_side = sign * side[:, None]  # rows side after conjugation: ya -> s_p s_q, yb -> -s_p s_q
    iy = np.where(row_side > 0, n + band[:, None], n - 1 - band[:, None])
    flat_f = iy * n + band[None, None, :]
    order = np.argsort(flat_f.ravel())
    return sign, order


def nominal_frequencies(depth: int) -> np.ndarray:
    """Centre ``(rows, cols)`` of each DT-CWPT filter's nominal square, in radians per sample.

    Output filter ``f`` (the ``F = 2 * 4**J`` channels of :class:`DTCWPT`) has the nominal band
    ``(iy, ix) = divmod(f, 2**J)`` of a ``2**(J+1) x 2**J`` grid of squares of side ``pi / 2**J``
    covering ``[-pi, pi] x [0, pi]``: centre ``(-pi + (iy + 1/2) pi / 2**J, (ix + 1/2) pi / 2**J)``.
    The filters' actual spectra spread over squares of side about ``bandwidth = pi / 2**(J-1)``
    around these centres. Every filter has positive column frequency; the conjugate filters
    (the negative half-plane) give the conjugate outputs of a real image.

    Parameters
    ----------
    depth : int
        ``J >= 1``; ``ValueError`` otherwise.

    Returns
    -------
    numpy.ndarray
        ``(F, 2)`` float64.
    """
    n = 2 ** _check_depth(depth)
    iy, ix = np.divmod(np.arange(2 * n * n), n)
    return np.stack([-np.pi + (iy + 0.5) * np.pi / n, (ix + 0.5) * np.pi / n], axis=1)


def equivalent_filters(depth: int, qshift: str = "qshift_a") -> np.ndarray:
    """Complex DT-CWPT filters at input resolution, computed directly from the Q-shift filters.

    ``DTCWPT(depth, qshift)(x)[:, f, i, j] == (x (*) W_f)[m i, m j]`` with ``(*)`` the circular
    2-D CONVOLUTION (not correlation), ``W_f = out[f]`` and ``m = 2**(J-1)``; the array centre
    ``(k // 2, k // 2)`` is the filter origin (the last row and column are zero).

    Parameters
    ----------
    depth : int
        ``J >= 1``.
    qshift : str
        One of :data:`QSHIFT_NAMES`.

    Returns
    -------
    numpy.ndarray
        ``(F, k, k)`` complex128, ``F = 2 * 4**J``, ``k = L + 3 + (L - 1) (2**J - 2)`` odd with ``L``
        the Q-shift length (``L = 10``: ``k = 13, 31, 67`` for ``J = 1, 2, 3``), ordered as
        :func:`nominal_frequencies`.

    Raises
    ------
    ValueError
        For ``depth < 1`` or an unknown ``qshift``.
    """
    depth = _check_depth(depth)
    psi = np.ones((2, 1, 1))  # (tree, path, taps): the 1-D causal packets, grown stage by stage
    for j, bank in enumerate(_stage_banks(depth, qshift)):
        up = np.zeros(bank.shape[:3] + ((bank.shape[-1] - 1) * 2**j + 1,))
        up[..., :: 2**j] = bank  # noble identity: stage j filters upsampled by 2**j
        children = range(2 * psi.shape[1])  # child 2 c + o: packet c filtered by its low (0) / high (1) pass
        psi = np.array(
            [[np.convolve(psi[t, c // 2], up[t, c // 2, c % 2]) for c in children] for t in (0, 1)]
        )
    z = psi[0] + 1j * psi[1]
    ya = z[:, None, :, None] * z[None, :, None, :]
    yb = z[:, None, :, None] * z.conj()[None, :, None, :]
    sign, order = _layout(depth)
    w = np.stack([ya, yb])
    w = np.where(sign[..., None, None] < 0, w.conj(), w).reshape(-1, *w.shape[-2:])[order]
    return np.pad(w, ((0, 0), (0, 1), (0, 1)))


class DTCWPT(torch.nn.Module):
    """2-D dual-tree complex wavelet packet transform with a stationary last stage ([C], section 8).

    Parameters
    ----------
    depth : int
        Number of stages ``J >= 1``: ``F = 2 * 4**J`` complex filters (32 for ``J = 2``, 128 for ``J = 3``).
    qshift : str
        Kingsbury Q-shift filters, one of :data:`QSHIFT_NAMES` (from ``dtcwt.coeffs.qshift``).

    Raises
    ------
    ValueError
        For ``depth < 1`` or an unknown ``qshift``.

    Notes
    -----
    ``forward(x)[:, f]`` is ``x`` circularly convolved with ``equivalent_filters(depth, qshift)[f]``
    and sampled every ``m = 2**(J-1)`` pixels; channel ``f`` is ordered by its nominal frequency
    (:func:`nominal_frequencies`). The filters are float64 buffers, used in the input's dtype and
    on its device.

    Examples
    --------
    >>> DTCWPT(2)(torch.zeros(1, 64, 48)).shape
    torch.Size([1, 32, 32, 24])
    """

    def __init__(self, depth: int, qshift: str = "qshift_a"):
        super().__init__()
        self.depth = _check_depth(depth)
        self.qshift = qshift
        banks = _stage_banks(self.depth, qshift)
        for j, bank in enumerate(banks):
            self.register_buffer(f"bank{j}", torch.from_numpy(bank), persistent=False)
        sign, order = _layout(self.depth)
        self.register_buffer(
            "imag_sign", torch.from_numpy(sign[..., None, None].astype(np.float64)), persistent=False
        )
        self.register_buffer("order", torch.from_numpy(order), persistent=False)
        # causal support of the cascade: 1 + sum_j (L_j - 1) 2**j taps (even); shift its centre to 0
        self.centre = (1 + sum((b.shape[-1] - 1) * 2**j for j, b in enumerate(banks))) // 2

    @property
    def num_filters(self) -> int:
        """Number of complex filters ``F = 2 * 4**J``."""
        return 2 * 4**self.depth

    @property
    def subsampling(self) -> int:
        """Total subsampling ``m_J = 2**(J-1)`` (the last stage is stationary)."""
        return 2 ** (self.depth - 1)

    @property
    def bandwidth(self) -> float:
        """Side ``kappa_J = pi / m_J`` (radians per sample) of the square holding each filter's spectrum."""
        return math.pi / self.subsampling

    def _cascade(self, x: torch.Tensor, strides: list[int]) -> torch.Tensor:
        """Both 1-D packet trees along the last axis: ``(N, L)`` -> ``(N, 2 * 2**J, L // prod(strides))``
        (tree, Paley-ordered path), circular causal convolution with the stage filters."""
        y = x.unsqueeze(1).expand(-1, 2, -1)
        for j, stride in enumerate(strides):
            bank = getattr(self, f"bank{j}").to(x.dtype)
            taps, length = bank.shape[-1], y.shape[-1]
            padded = y[..., torch.arange(1 - taps, length, device=x.device) % length]
            y = F.conv1d(padded, bank.reshape(-1, 1, taps).flip(-1), stride=stride, groups=y.shape[1])
        return y

    def real_trees(self, x: torch.Tensor, decimated: bool = False) -> torch.Tensor:
        """The four real packet trees.

        Parameters
        ----------
        x : torch.Tensor
            Real ``(B, 1, H, W)`` or ``(B, H, W)``, ``H`` and ``W`` multiples of ``2**J``.
        decimated : bool
            Subsample the last stage too (the fully decimated, orthogonal transform: each of the four
            trees preserves the energy of ``x``).

        Returns
        -------
        torch.Tensor
            ``(B, 2, 2, P, P, H // s, W // s)``: rows tree (a, b), columns tree, rows path, columns
            path (``P = 2**J``, Paley order, stage 1 the most significant bit), ``s = 2**J`` if
            ``decimated`` else ``m_J``; sample ``(i, j)`` is at input pixel ``(s i, s j)`` with the
            filter origin convention of :func:`equivalent_filters`.

        Raises
        ------
        ValueError
            For a complex or non-floating ``x``, a bad shape or size.
        """
        if x.dim() == 4 and x.shape[1] == 1:
            x = x[:, 0]
        if x.dim() != 3 or x.is_complex() or not x.is_floating_point():
            raise ValueError(
                f"x must be a real floating (B, 1, H, W) or (B, H, W) tensor, got {tuple(x.shape)} {x.dtype}"
            )
        n = 2**self.depth
        if x.shape[-2] % n or x.shape[-1] % n:
            raise ValueError(
                f"H and W must be multiples of 2**depth = {n}, got {tuple(x.shape[-2:])}: "
                f"crop or pad the image"
            )
        batch, height, width = x.shape
        strides = [2] * (self.depth - 1) + [2 if decimated else 1]
        x = torch.roll(x, (-self.centre, -self.centre), (-2, -1))  # filter origin at the array centre
        u = self._cascade(x.transpose(1, 2).reshape(batch * width, height), strides)
        u = u.reshape(batch, width, -1).transpose(1, 2).reshape(-1, width)
        v = self._cascade(u, strides)
        v = v.reshape(batch, 2, n, height // math.prod(strides), 2, n, v.shape[-1])
        return v.permute(0, 1, 4, 2, 5, 3, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """DT-CWPT coefficients.

        Parameters
        ----------
        x : torch.Tensor
            Real ``(B, 1, H, W)`` or ``(B, H, W)``, float32 or float64, ``H`` and ``W`` multiples of
            ``2**J`` (``ValueError`` otherwise).

        Returns
        -------
        torch.Tensor
            Complex ``(B, F, H // m, W // m)``, ``F = 2 * 4**J``, ``m = 2**(J-1)``; channel ``f`` has
            the nominal frequency ``nominal_frequencies(J)[f]``.
        """
        r = self.real_trees(x)
        aa, ab, ba, bb = r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1]
        real = torch.stack([aa - bb, aa + bb], 1)
        imag = torch.stack([ba + ab, ba - ab], 1) * self.imag_sign.to(r.dtype)
        return torch.complex(real, imag).flatten(1, 3)[:, self.order]
