"""The fine grid of templates on which every search runs (docs/methods.md section 3).

:class:`TemplateGrid` tabulates, for one kernel size ``k``, the 1-D profiles of every difference
operator applied to the discrete analogue of the Gaussian at ``fine_points`` log-spaced scales
``sigma`` in :data:`~.settings.SIGMA_BOUNDS` (grid spacings), plus the 2-D Laplacian tables; 2-D
separable templates are outer products of a y profile (row order, y upwards) and an x profile
(docs/methods.md section 1).  :func:`exact_templates` builds templates at arbitrary scales.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ...kernels.conventions import check_kernel_size
from ..spread import spread_moments
from ..templates import AXIS_OPERATORS, axis_profiles, idealized_templates
from .settings import SIGMA_BOUNDS

__all__ = ["OPERATORS", "TemplateGrid", "template_grid", "bilinear", "exact_templates"]

OPERATORS = ("identity", "central", "forward", "backward", "second")


def bilinear(h: np.ndarray, row_profiles: np.ndarray, col_profiles: np.ndarray) -> np.ndarray:
    """``sum_ij py[i] h[i, j] px[j]`` for ``h`` ``(n, k, k)`` and profiles ``(n, m, k)`` -> ``(n, m)``."""
    h_px = np.matmul(col_profiles, h.transpose(0, 2, 1))  # (n, m, k): sum_j h[i, j] px[j]
    return np.einsum("nmi,nmi->nm", row_profiles, h_px)


class TemplateGrid:
    """Profiles of every 1-D operator at every fine-grid sigma, for one kernel size ``k``."""

    def __init__(self, k: int, points: int):
        self.k = check_kernel_size(k)
        self.c = (k - 1) // 2
        self.size = points
        self.sigma = np.logspace(np.log10(SIGMA_BOUNDS[0]), np.log10(SIGMA_BOUNDS[1]), points)
        # x profiles in column order == coordinate order; y profiles reversed to row order
        self.px = {op: axis_profiles(k, self.sigma, op) for op in OPERATORS}
        self.py = {op: p[:, ::-1].copy() for op, p in self.px.items()}
        smooth, second = self.px["identity"], self.px["second"]
        self.lap = smooth[:, ::-1, None] * second[:, None, :] + second[:, ::-1, None] * smooth[:, None, :]
        self.sq_norm = {op: (p * p).sum(-1) for op, p in self.px.items()}
        self.total = {op: p.sum(-1) for op, p in self.px.items()}
        self.lap_sq_norm = (self.lap * self.lap).sum(axis=(-2, -1))
        self.lap_centre = self.lap[:, self.c, self.c].copy()
        self.delta = np.zeros((k, k))
        self.delta[self.c, self.c] = 1.0
        self.log_step = np.log(SIGMA_BOUNDS[1] / SIGMA_BOUNDS[0]) / (points - 1)
        self._phi: dict = {}
        self._derivatives: dict = {}

    def interpolation_table(self, name: str, order: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """``(values, differences)`` for the linear interpolation of :mod:`.continuous` of ``px[op]``
        (``name = 'x:op'``), ``py[op]`` (``'y:op'``) or the flattened Laplacian table (``'lap'``), the
        columns followed by the first ``order`` derivatives with respect to the grid index (repeated
        central differences, one-sided at the ends)."""
        key = (name, order)
        if key not in self._derivatives:
            if name == "lap":
                table = self.lap.reshape(self.size, -1)
            else:
                axis, op = name.split(":")
                table = (self.px if axis == "x" else self.py)[op]
            blocks = [table]
            for _ in range(order):
                blocks.append(np.gradient(blocks[-1], axis=0))
            table = np.concatenate(blocks, axis=1)
            table = np.ascontiguousarray(table)
            differences = np.zeros_like(table)
            differences[:-1] = table[1:] - table[:-1]
            self._derivatives[key] = (table, differences)
        return self._derivatives[key]

    def templates(self, type_name: str, i1, i2) -> np.ndarray:
        """Templates at fine-grid indices (``i1`` = sigma_x or sigma, ``i2`` = sigma_y); id-lap gives L."""
        if type_name in AXIS_OPERATORS:
            op_x, op_y = AXIS_OPERATORS[type_name]
            return self.py[op_y][i2][..., :, None] * self.px[op_x][i1][..., None, :]
        return self.lap[i1]  # lap, and the L of id-lap (template = delta - alpha L)

    def inner(self, type_name: str, h: np.ndarray, i1, i2) -> np.ndarray:
        """``<h, t>`` for kernels ``h`` ``(n, k, k)`` and templates at indices ``(n, m)`` (L for id-lap).

        Bilinear form ``p_y^T h p_x`` of the separable factors, no ``k x k`` template is built.
        """
        if type_name in AXIS_OPERATORS:
            op_x, op_y = AXIS_OPERATORS[type_name]
            return bilinear(h, self.py[op_y][i2], self.px[op_x][i1])
        return bilinear(h, self.py["identity"][i1], self.px["second"][i1]) + bilinear(
            h, self.py["second"][i1], self.px["identity"][i1]
        )

    def norms(self, type_name: str, i1, i2) -> tuple[np.ndarray, np.ndarray]:
        """``||t||^2`` and ``sum t`` of the templates at indices (L for id-lap)."""
        if type_name in AXIS_OPERATORS:
            op_x, op_y = AXIS_OPERATORS[type_name]
            sq_norm = self.sq_norm[op_x][i1] * self.sq_norm[op_y][i2]
            return sq_norm, self.total[op_x][i1] * self.total[op_y][i2]
        return self.lap_sq_norm[i1], np.zeros(np.shape(i1))

    def variance_relation(self, type_name: str) -> tuple[np.ndarray, np.ndarray]:
        """Method B: ``phi_x(sigma), phi_y(sigma)`` on the fine grid (weighted template variances)."""
        if type_name not in self._phi:
            if type_name in AXIS_OPERATORS:
                coordinate = np.arange(self.k) - self.c
                phis = []
                for op in AXIS_OPERATORS[type_name]:
                    ref_profile = np.abs(axis_profiles(self.k, 1.0, op))
                    w = np.abs(self.px[op]) * ref_profile
                    m = (w * coordinate).sum(-1) / w.sum(-1)
                    phis.append((w * coordinate**2).sum(-1) / w.sum(-1) - m * m)
                self._phi[type_name] = tuple(phis)
            else:  # lap: mean of V_xx and V_yy, single sigma
                w = np.abs(self.lap) * np.abs(idealized_templates("lap", self.k, 1.0))
                _, v = spread_moments(w)
                phi = 0.5 * (v[:, 0, 0] + v[:, 1, 1])
                self._phi[type_name] = (phi, phi)
        return self._phi[type_name]


@lru_cache(maxsize=8)
def template_grid(k: int, points: int) -> TemplateGrid:
    return TemplateGrid(k, points)


def exact_templates(type_name: str, k: int, sigma_x, sigma_y, alpha) -> np.ndarray:
    """Templates of one type at fitted scales, ignoring the parameters the type does not have.

    Parameters
    ----------
    type_name : str
        A scale-space type (docs/methods.md section 3.3).
    k : int
        Odd kernel size.
    sigma_x, sigma_y : array_like ``(n,)``
        Scales in grid spacings (``s = sigma^2``); ``sigma_y`` is ignored for ``lap`` and ``id-lap``.
    alpha : array_like ``(n,)`` or None
        Used for ``id-lap`` only.

    Returns
    -------
    float64 array ``(n, k, k)`` (:func:`masterkey.scalespace.templates.idealized_templates`;
    layout of docs/methods.md section 1).

    >>> t = exact_templates("lap", 5, np.array([1.0]), np.array([9.0]), None)
    >>> bool(np.allclose(t, idealized_templates("lap", 5, 1.0)))
    True
    """
    if type_name in ("lap", "id-lap"):
        sigma_y = None
    return idealized_templates(type_name, k, sigma_x, sigma_y, alpha=alpha if type_name == "id-lap" else None)
