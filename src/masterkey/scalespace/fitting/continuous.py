"""Continuous searches of the l1 (C1, C2) and l2 (D1, D2) fits (docs/methods.md section 3).

Scales are continuous in ``[0.01, 3]`` (``alpha`` in ``[0.05, 2]``).  The templates are tabulated
on a fine log grid of 4097 scales (relative step 0.14 %) and, for the local searches, linearly
interpolated between nodes in the *grid index* ``u`` (``sigma = 0.01 exp(u * 0.00139)``), together
with their first and second index derivatives (central differences; interpolation error ~1e-7
relative), see :class:`ContinuousTemplates`.  Reported l1 and l2 are recomputed with exact templates.

* l2 (``D1``, ``D2``; A and B for id-lap), :func:`search_l2`: the best point of a coarse sub-grid
  (33 x 33, or 65 points in 1-D; all filters at once by one matrix product), then damped Newton
  iterations on ``sum r^2`` (exact Hessian where positive definite, else Gauss-Newton;
  Levenberg-Marquardt damping; projected at the bounds), :func:`_lm_step`.  The l2 objective is
  smooth, so this converges in ~3-5 iterations.
* l1 (``C1``, ``C2``), :func:`search_l1`: l1 at every point of a coarse sub-grid (33 x 33, or 65
  points in 1-D; ``cdist`` against the shared templates) gives up to ``l1_starts`` = 2 starts: the
  best point, and the best point outside +-2 coarse cells around it (another basin) if its l1 is
  within 10 % of the best.  Each start is refined by trust-region sequential linear programming
  (:func:`_slp_step`): the residual ``r = t(u) - h_n`` is linearised, ``r + J d``, and the l1 norm
  of the linear model is minimised *exactly* in the trust box (a weighted median for one
  parameter; a simplex-like walk along kink lines for two, :func:`_linear_l1_2d`).  The l1
  objective is piecewise smooth, with kinks where a template entry crosses the filter's, and its
  minimum sits on kinks, often at the end of narrow, curved, slanted valleys along a kink line;
  a pattern search on the grid stalls there (the former compass search ended more than 0.1 %
  above the optimum for ~5 % of random-plus-planted filters, by up to 6 %), while the
  Gauss-Newton-type l1 method (Osborne & Watson 1971) follows the kink lines and converges
  quadratically at a vertex.  The lower of the two results wins.
* ``on_bound`` is set when a scale lies within half a fine-grid step of a bound of sigma, or alpha
  on a bound of alpha.
* Type selection (cosine) and the joint fits still search on the fine grid itself: coarse
  sub-grid (17 x 17 for cosine), then a compass search (3 x 3 or 3-point neighbourhoods whose
  per-filter step halves when no neighbour is better), :func:`masterkey.scalespace.fitting.discrete.zoom`.

Agreement with a per-filter reference (dense exact-template grid + multi-start Nelder-Mead,
``benchmarks/bench_fitting.py``): on random-plus-planted 7x7 filters, C1/C2/D1/D2 sigma within 1 %
of the reference for ~97-100 % of filters; the rest are filters with a flat objective (or two
near-equal minima) whose criterion agrees to 0.1 %.
"""

from __future__ import annotations

import numpy as np

from ..templates import AXIS_OPERATORS
from .discrete import coarse_search, evaluate_criterion, idlap_alpha, is_2d, pairwise_l1
from .grid import TemplateGrid, exact_templates
from .settings import ALPHA_BOUNDS, SIGMA_BOUNDS, SearchSettings, chunks, clean

__all__ = [
    "ContinuousTemplates",
    "search_l1",
    "search_l2",
]

def _interpolate(table: tuple[np.ndarray, np.ndarray], u: np.ndarray) -> np.ndarray:
    """Rows of a table ``(values, differences)`` (both ``(points, width)``, ``differences[i] =
    values[i + 1] - values[i]``) linearly interpolated at continuous indices ``u`` ``(n,)``."""
    values, differences = table
    i = np.minimum(u.astype(np.intp), len(values) - 2)
    return values[i] + (u - i)[:, None] * differences[i]


class ContinuousTemplates:
    """Templates of one type at continuous coordinates ``u`` (``(n, dim)``), with their Jacobian.

    Coordinates are fine-grid index units: ``sigma(u) = sigma_min exp(u * log_step)``, so integer
    ``u`` are grid nodes and one unit is a relative change of 0.14 % in sigma.  id-lap has a second
    coordinate ``w`` with ``alpha(w) = alpha_min exp(w * log_step)``.  The 1-D profiles (or the
    Laplacian tables) and their index derivatives (central differences of the tables) are linearly
    interpolated between nodes (relative interpolation error ~1e-7).  ``kind``: ``'separate'``
    ``(u_x, u_y)``, ``'same'`` ``(u,)`` with ``u_x = u_y``, ``'lap'`` ``(u,)``, ``'id-lap'`` ``(u, w)``.
    """

    def __init__(self, grid: TemplateGrid, type_name: str, mode: str):
        self.grid = grid
        last = float(grid.size - 1)
        if type_name == "id-lap":
            self.kind = "id-lap"
            self.upper = np.array([last, np.log(ALPHA_BOUNDS[1] / ALPHA_BOUNDS[0]) / grid.log_step])
        elif type_name == "lap":
            self.kind, self.upper = "lap", np.array([last])
        else:
            self.kind = "separate" if mode == "separate" else "same"
            self.upper = np.array([last, last] if mode == "separate" else [last])
        self.dim = len(self.upper)
        # interpolation tables: values only, and values followed by their index derivatives
        if type_name in AXIS_OPERATORS:
            op_x, op_y = AXIS_OPERATORS[type_name]
            self.x = tuple(grid.interpolation_table(f"x:{op_x}", d) for d in range(3))
            self.y = tuple(grid.interpolation_table(f"y:{op_y}", d) for d in range(3))
        else:
            self.lap = tuple(grid.interpolation_table("lap", d) for d in range(3))
        self.width = grid.k
        self.centre = grid.c * grid.k + grid.c

    def alpha(self, w: np.ndarray) -> np.ndarray:
        return ALPHA_BOUNDS[0] * np.exp(w * self.grid.log_step)

    def templates(self, u: np.ndarray) -> np.ndarray:
        """Templates ``(n, k*k)`` at coordinates ``u``."""
        n = len(u)
        if self.kind in ("separate", "same"):
            a, b = _interpolate(self.y[0], u[:, -1]), _interpolate(self.x[0], u[:, 0])
            return (a[:, :, None] * b[:, None, :]).reshape(n, self.width * self.width)
        lap = _interpolate(self.lap[0], u[:, 0])
        if self.kind == "lap":
            return lap
        template = -self.alpha(u[:, 1])[:, None] * lap
        template[:, self.centre] += 1.0
        return template

    def value(self, h: np.ndarray, u: np.ndarray, criterion: str = "l1") -> np.ndarray:
        """``sum |t(u) - h|`` (l1) or ``sum (t(u) - h)^2`` (l2) for filters ``h`` ``(n, k*k)``."""
        difference = self.templates(u)
        difference -= h
        if criterion == "l1":
            np.abs(difference, out=difference)
        else:
            np.multiply(difference, difference, out=difference)
        return difference.sum(axis=1)

    def linearise(self, h: np.ndarray, u: np.ndarray):
        """Residual ``r = t(u) - h`` ``(n, k*k)`` and the columns ``dr/du_d`` of its Jacobian."""
        n = len(u)
        k = self.width
        if self.kind in ("separate", "same"):
            ya, xb = _interpolate(self.y[1], u[:, -1]), _interpolate(self.x[1], u[:, 0])
            a, da, b, db = ya[:, :k], ya[:, k:], xb[:, :k], xb[:, k:]
            residual = (a[:, :, None] * b[:, None, :]).reshape(n, self.width * self.width) - h
            d_x = (a[:, :, None] * db[:, None, :]).reshape(n, self.width * self.width)
            d_y = (da[:, :, None] * b[:, None, :]).reshape(n, self.width * self.width)
            return residual, ((d_x, d_y) if self.kind == "separate" else (d_x + d_y,))
        both = _interpolate(self.lap[1], u[:, 0])
        lap, dlap = both[:, : k * k], both[:, k * k :]
        if self.kind == "lap":
            return lap - h, (dlap,)
        alpha = self.alpha(u[:, 1])[:, None]
        residual = -alpha * lap - h
        residual[:, self.centre] += 1.0
        return residual, (-alpha * dlap, (-self.grid.log_step * alpha) * lap)

    def newton_terms(self, h: np.ndarray, u: np.ndarray):
        """Gradient ``g = J^T r`` ``(n, dim)``, Gauss-Newton matrix ``A = J^T J`` and Hessian
        ``H = A + sum_p r_p d^2 t_p / du^2`` ``(n, dim, dim)`` of ``sum r^2 / 2``, ``r = t(u) - h``.

        Separable templates ``t = a (x) b`` use bilinear forms with the residual matrix ``R``:
        ``g_x = a^T R b'``, ``A_xx = |a|^2 |b'|^2``, ``A_xy = (a.a') (b.b')``, ``H_xx - A_xx = a^T R b''``,
        ``H_xy - A_xy = a'^T R b'`` (``x <-> y`` likewise; the same-scale model sums all four blocks).
        """
        n = len(u)
        k = self.width
        if self.kind in ("separate", "same"):
            a = _interpolate(self.y[2], u[:, -1]).reshape(n, 3, k)  # rows a, a', a''
            b = _interpolate(self.x[2], u[:, 0]).reshape(n, 3, k)  # rows b, b', b''
            residual = a[:, 0, :, None] * b[:, 0, None, :] - h.reshape(n, k, k)
            forms = a @ residual @ b.transpose(0, 2, 1)  # forms[:, i, j] = a^(i)T R b^(j)
            aa, bb = a[:, :2] @ a[:, :2].transpose(0, 2, 1), b[:, :2] @ b[:, :2].transpose(0, 2, 1)
            g = np.stack([forms[:, 0, 1], forms[:, 1, 0]], axis=1)
            a_xx, a_yy, a_xy = aa[:, 0, 0] * bb[:, 1, 1], aa[:, 1, 1] * bb[:, 0, 0], aa[:, 0, 1] * bb[:, 0, 1]
            h_xx, h_yy, h_xy = a_xx + forms[:, 0, 2], a_yy + forms[:, 2, 0], a_xy + forms[:, 1, 1]
            if self.kind == "same":
                g = g.sum(axis=1, keepdims=True)
                gn = (a_xx + a_yy + 2 * a_xy)[:, None, None]
                return g, gn, (h_xx + h_yy + 2 * h_xy)[:, None, None]
            gn = np.stack([np.stack([a_xx, a_xy], 1), np.stack([a_xy, a_yy], 1)], 1)
            return g, gn, np.stack([np.stack([h_xx, h_xy], 1), np.stack([h_xy, h_yy], 1)], 1)
        kk = k * k
        table = _interpolate(self.lap[2], u[:, 0])
        lap, d1, d2 = table[:, :kk], table[:, kk : 2 * kk], table[:, 2 * kk :]
        if self.kind == "lap":
            residual = lap - h
            g = (d1 * residual).sum(axis=1)[:, None]
            gn = (d1 * d1).sum(axis=1)[:, None, None]
            return g, gn, gn + (d2 * residual).sum(axis=1)[:, None, None]
        s = self.grid.log_step
        alpha = self.alpha(u[:, 1])[:, None]
        residual = -alpha * lap - h
        residual[:, self.centre] += 1.0
        ju, jw = -alpha * d1, (-s * alpha) * lap
        g = np.stack([(ju * residual).sum(1), (jw * residual).sum(1)], axis=1)
        a_uu, a_uw, a_ww = (ju * ju).sum(1), (ju * jw).sum(1), (jw * jw).sum(1)
        r_uu = -(alpha[:, 0]) * (d2 * residual).sum(1)
        r_uw = s * (ju * residual).sum(1)
        r_ww = s * g[:, 1]
        gn = np.stack([np.stack([a_uu, a_uw], 1), np.stack([a_uw, a_ww], 1)], 1)
        second = np.stack([np.stack([r_uu, r_uw], 1), np.stack([r_uw, r_ww], 1)], 1)
        return g, gn, gn + second


def _line_l1(base: np.ndarray, slope: np.ndarray, t_low: np.ndarray, t_high: np.ndarray):
    """Minimiser of ``sum_p |base_p + t slope_p|`` over ``t`` in ``[t_low, t_high]`` (rows independent).

    The unconstrained minimiser is the weighted median of the kinks ``z_p = -base_p / slope_p`` with
    weights ``|slope_p|``; the function is convex, so clipping it to the interval gives the constrained
    minimiser.  Returns ``(t, p, clipped)``: ``p`` the term whose kink is the median.
    """
    n, terms = base.shape
    rows = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        kink = base / slope  # terms with slope 0 give +-inf or NaN: sorted to the ends, weight 0
    np.negative(kink, out=kink)
    order = np.argsort(kink, axis=1)
    cumulative = np.abs(slope.ravel()[order + (rows * terms)[:, None]])
    np.cumsum(cumulative, axis=1, out=cumulative)
    median = np.minimum(np.count_nonzero(cumulative < 0.5 * cumulative[:, -1:], axis=1), terms - 1)
    term = order[rows, median]
    t = kink[rows, term]
    t = np.where(np.isfinite(t), t, 0.0)  # all slopes 0: nothing to gain, stay
    clipped = np.minimum(np.maximum(t, t_low), t_high)
    return clipped, term, clipped != t


def _linear_l1_2d(residual, jacobian_x, jacobian_y, low, high, pivots: int, direction=None):
    """Minimise the linear model ``sum_p |r_p + J_p . d|`` over the box ``low <= d <= high`` (2 columns).

    A convex piecewise-linear function of two variables is minimised at a vertex where two kink lines
    ``r_p + J_p . d = 0`` cross (or on the box).  Starting at ``d = 0`` we minimise exactly along
    ``direction`` (default the first axis; the SLP passes the previous iteration's last kink line),
    a weighted median (:func:`_line_l1`), which lands on the kink line of some term ``p``; then along
    that line, which lands on a vertex ``(p, q)``; then along the line of ``q``, and so on
    (``pivots`` line minimisations, box faces taking the role of kink lines when the box is hit).
    A vertex at which neither of its two lines descends is the minimum (the function is linear on
    the four sectors around it), so this simplex-like walk reaches the exact minimiser in a few pivots
    (the tests check it against linear programming); each pivot never increases the model, so fewer
    pivots give a descent step.  Returns ``(d, model value, direction of the last kink line)``.
    """
    n = len(residual)
    rows = np.arange(n)
    delta = np.zeros((n, 2))
    if direction is None:
        direction = np.zeros((n, 2))
        direction[:, 0] = 1.0
    base = residual
    for _ in range(pivots):
        slope = jacobian_x * direction[:, :1]
        slope += jacobian_y * direction[:, 1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            first = (low - delta) / direction
            second = (high - delta) / direction
        moving = direction != 0
        t_low = np.where(moving, np.minimum(first, second), -np.inf).max(axis=1)
        t_high = np.where(moving, np.maximum(first, second), np.inf).min(axis=1)
        t, term, clipped = _line_l1(base, slope, np.minimum(t_low, 0.0), np.maximum(t_high, 0.0))
        delta = np.minimum(np.maximum(delta + t[:, None] * direction, low), high)
        base = base + t[:, None] * slope
        # next: along the kink line of `term` (normal J_term), or along the box face that stopped us
        gx, gy = jacobian_x[rows, term], jacobian_y[rows, term]
        norm = np.hypot(gx, gy)
        safe = np.where(norm > 0, norm, 1.0)
        direction = np.where((norm > 0)[:, None], np.stack([-gy / safe, gx / safe], axis=1), (0.0, 1.0))
        tol = 1e-9 * (1.0 + np.abs(delta[:, 0]))
        on_x_face = clipped & ((delta[:, 0] <= low[:, 0] + tol) | (delta[:, 0] >= high[:, 0] - tol))
        direction[on_x_face] = (0.0, 1.0)
        direction[clipped & ~on_x_face] = (1.0, 0.0)
    return delta, np.abs(base).sum(axis=1), direction


def _refine(cont: ContinuousTemplates, h: np.ndarray, u: np.ndarray, criterion: str,
            settings: SearchSettings):  # fmt: skip
    """Local minimisation of the l1 or squared l2 residual from starts ``u`` ``(n, dim)``.

    l1: trust-region sequential linear programming (:func:`_slp_step`); l2: damped Newton
    (:func:`_lm_step`).  Rows are iterated in cache-sized blocks of the still active rows; a row
    stops when converged or after ``l1_iterations`` (``l2_iterations``).  Returns ``(u, value)``.
    """
    n = len(h)
    u = np.array(u, dtype=np.float64)
    value = cont.value(h, u, criterion)
    if criterion == "l1":
        state = np.zeros((n, 3))  # trust radius and the direction of the last kink line
        state[:, 0], state[:, 1] = settings.l1_radius, 1.0
        step_function, iterations = _slp_step, settings.l1_iterations
    else:
        state, step_function, iterations = np.full(n, 1e-3), _lm_step, settings.l2_iterations
    active = np.flatnonzero(np.isfinite(value))
    for _ in range(iterations):
        if active.size == 0:
            break
        done = np.zeros(n, dtype=bool)
        for start in range(0, active.size, settings.l1_block):
            rows = active[start : start + settings.l1_block]
            done[rows] = step_function(cont, h[rows], u, value, state, rows, settings)
        active = active[~done[active]]
    return u, value


def _slp_step(cont: ContinuousTemplates, h: np.ndarray, u, value, state, rows, settings: SearchSettings):
    """One trust-region SLP iteration for min l1 (updates ``u``, ``value`` and ``state`` = (trust
    radius, direction of the last kink line) at ``rows`` in place); returns the convergence flags.

    The residual is linearised, ``r(u + d) ~ r + J d``, and the l1 norm of the linear model is
    minimised inside the box ``|d_i| <= radius`` (and the bounds): exactly by a weighted median for
    one parameter, by ``l1_pivots`` pivots of :func:`_linear_l1_2d` for two (near convergence the
    warm-started walk is exact; early on a descent step is enough).  The step is accepted when the
    true l1 decreases; the radius doubles when the step reached it and the decrease is at least 3/4
    of the predicted one, and becomes a quarter of the step when the decrease is below 1/4 of it
    (or negative).  This is the Gauss-Newton method for nonlinear l1 fitting (Osborne & Watson
    1971) with a trust region: the minimum of an l1 objective sits on kinks (``dim`` residuals
    vanish), where it converges quadratically, and it follows the narrow, curved, kinked valleys of
    the l1 objective along which pattern searches stall.  A row stops when its radius falls below
    ``l1_tolerance`` or the linear model predicts no decrease.
    """
    ua, va, ra = u[rows], value[rows], state[rows, 0]
    residual, jacobian = cont.linearise(h, ua)
    low = np.maximum(-ra[:, None], -ua)
    high = np.minimum(ra[:, None], cont.upper - ua)
    if cont.dim == 1:
        t, _, _ = _line_l1(residual, jacobian[0], low[:, 0], high[:, 0])
        delta = t[:, None]
        type_name = np.abs(residual + t[:, None] * jacobian[0]).sum(axis=1)
    else:
        delta, type_name, direction = _linear_l1_2d(
            residual, jacobian[0], jacobian[1], low, high, settings.l1_pivots, state[rows, 1:]
        )
        state[rows, 1:] = direction
    predicted = va - type_name
    trial = np.minimum(np.maximum(ua + delta, 0.0), cont.upper)
    trial_value = cont.value(h, trial, "l1")
    actual = va - trial_value
    accept = actual > 0
    u[rows] = np.where(accept[:, None], trial, ua)
    value[rows] = np.where(accept, trial_value, va)
    step = np.abs(delta).max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(predicted > 0, actual / predicted, -1.0)
    ra = np.where((ratio > 0.75) & (step >= 0.99 * ra), 2.0 * ra, np.where(ratio < 0.25, 0.25 * step, ra))
    state[rows, 0] = np.minimum(ra, cont.upper.max())
    return (ra < settings.l1_tolerance) | ~(predicted > 1e-12 * va)


def _lm_step(cont: ContinuousTemplates, h: np.ndarray, u, value, damping, rows, settings: SearchSettings):
    """One damped Newton iteration for min ``F = sum r^2`` (updates in place, returns convergence).

    Step ``d = -(M + mu diag M)^-1 g`` with ``g = J^T r`` and ``M`` the exact Hessian of ``F / 2``
    (:meth:`ContinuousTemplates.newton_terms`) where it is positive definite, else the Gauss-Newton matrix
    ``J^T J`` (the residuals of learned filters are not small, so Gauss-Newton alone converges only
    linearly).  Bounds: a coordinate on a bound whose descent direction leaves the box is held fixed
    (the other one takes a 1-D Newton step); the step is scaled to at most 256 index units, then
    projected onto the bounds, or, where the projection spoils the model decrease, shortened to the
    bound along its direction.  Accepted when ``F`` decreases; ``mu`` (Levenberg-Marquardt) is
    divided by 3 when the decrease is at least 3/4 of the predicted ``-(2 g.d + d.M d)``, multiplied
    by 4 when below 1/4.  A row stops when its step is below ``l2_tolerance`` (index units) or
    ``mu > 1e10``.
    """
    ua, va, mu = u[rows], value[rows], damping[rows]
    g, gauss_newton, hessian = cont.newton_terms(h, ua)
    if cont.dim == 1:
        positive = hessian[:, 0, 0] > 0
    else:
        positive = (hessian[:, 0, 0] > 0) & (hessian[:, 0, 0] * hessian[:, 1, 1] - hessian[:, 0, 1] ** 2 > 0)
    matrix = np.where(positive[:, None, None], hessian, gauss_newton)
    # projected step: a coordinate on a bound whose descent direction leaves the box stays fixed
    fixed = ((ua <= 0.0) & (g > 0)) | ((ua >= cont.upper) & (g < 0))
    diagonal = np.diagonal(matrix, axis1=1, axis2=2) * (1.0 + mu[:, None]) + 1e-300
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(fixed, 0.0, -g / diagonal)  # one free coordinate: 1-D Newton step
        if cont.dim == 2:
            b11, b22, a12 = diagonal[:, 0], diagonal[:, 1], matrix[:, 0, 1]
            det = b11 * b22 - a12 * a12
            joint = np.stack(
                [(-b22 * g[:, 0] + a12 * g[:, 1]) / det, (a12 * g[:, 0] - b11 * g[:, 1]) / det], axis=1
            )
            delta = np.where(fixed.any(axis=1)[:, None], delta, joint)
    delta = np.nan_to_num(delta, nan=0.0, posinf=0.0, neginf=0.0)
    delta *= np.minimum(1.0, 256.0 / np.maximum(np.abs(delta).max(axis=1), 1e-300))[:, None]

    def decrease(d):  # of the quadratic model
        return -(2.0 * (g * d).sum(axis=1) + np.einsum("ni,nij,nj->n", d, matrix, d))

    # projection onto the bounds; if that spoils the model decrease, shorten the step to the bound
    projected = np.minimum(np.maximum(delta, -ua), cont.upper - ua)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(delta < 0, -ua / delta, np.where(delta > 0, (cont.upper - ua) / delta, np.inf))
    shortened = delta * np.minimum(1.0, room.min(axis=1))[:, None]
    predicted = decrease(projected)
    use_projected = predicted > 0
    delta = np.where(use_projected[:, None], projected, shortened)
    predicted = np.where(use_projected, predicted, decrease(shortened))
    trial = ua + delta
    trial_value = cont.value(h, trial, "l2")
    actual = va - trial_value
    accept = actual > 0
    u[rows] = np.where(accept[:, None], trial, ua)
    value[rows] = np.where(accept, trial_value, va)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(predicted > 0, actual / predicted, -1.0)
    mu = np.where(ratio > 0.75, mu / 3.0, np.where(ratio < 0.25, np.maximum(mu, 1e-3) * 4.0, mu))
    damping[rows] = mu
    small = np.abs(delta).max(axis=1) < settings.l2_tolerance
    return small | (mu > 1e10)


def _coarse_l1_starts(grid: TemplateGrid, type_name: str, h: np.ndarray, mode: str, settings: SearchSettings):
    """Coarse-grid starts of the l1 search for filters ``h`` ``(n, k*k)``.

    l1 at every point of the coarse grid (``coarse_l1`` squared, or ``coarse_1d`` points) for all
    filters at once (``cdist`` against the shared templates; for id-lap with alpha profiled per filter
    and point by a weighted median).  Start 1 is the best point; start ``j + 1`` the best point
    outside the windows of ``+-l1_exclusion`` coarse cells around the earlier starts (another basin),
    repeating the best when there is none.  Returns fine-grid indices ``(n, l1_starts, 2)``
    (``(i_x, i_y)``, or ``(i, i)`` in 1-D).
    """
    n, kk = h.shape
    two_d = is_2d(type_name, mode)
    points = settings.coarse_l1 if two_d else settings.coarse_1d
    axis = np.round(np.linspace(0, grid.size - 1, points)).astype(np.int64)
    if two_d:
        i1, i2 = (a.ravel() for a in np.meshgrid(axis, axis, indexing="ij"))
    else:
        i1 = i2 = axis
    count = max(1, settings.l1_starts)
    cell = np.arange(len(i1))
    cell_x, cell_y = (cell // points, cell % points) if two_d else (cell, np.zeros_like(cell))
    picks = np.empty((n, count), dtype=np.int64)
    templates = None if type_name == "id-lap" else grid.templates(type_name, i1, i2).reshape(len(i1), kk)
    for sl in chunks(n, len(i1) * (kk * 3 if type_name == "id-lap" else 4), settings):
        if type_name == "id-lap":
            shape = (sl.stop - sl.start, len(i1))
            values = evaluate_criterion(
                grid, type_name, h[sl], np.broadcast_to(i1, shape), np.broadcast_to(i2, shape), "l1"
            )[0]
        else:
            values = pairwise_l1(h[sl], templates)
        values = clean(values, np.inf)
        rows = np.arange(len(values))
        for j in range(count):
            best = values.argmin(axis=1)
            found = np.isfinite(values[rows, best])
            picks[sl, j] = np.where(found | (j == 0), best, picks[sl, 0])
            if j + 1 < count:  # exclude the window around this start
                near = (np.abs(cell_x - cell_x[best][:, None]) <= settings.l1_exclusion) & (
                    np.abs(cell_y - cell_y[best][:, None]) <= settings.l1_exclusion
                )
                values[near] = np.inf
    return np.stack([i1[picks], i2[picks]], axis=-1)


def _start_coordinates(grid: TemplateGrid, cont: ContinuousTemplates, type_name: str, h: np.ndarray,
                       index: np.ndarray,
                       criterion: str, settings: SearchSettings) -> np.ndarray:  # fmt: skip
    """Continuous coordinates ``(n, dim)`` of starts at fine-grid indices ``index`` ``(n, dim or 1)``;
    for id-lap the second coordinate is the alpha profiled (exactly, for ``criterion``) at the start's
    sigma."""
    if type_name != "id-lap":
        return index[:, : cont.dim].astype(np.float64)
    sigma_index = index[:, :1]
    alpha = np.concatenate(
        [
            evaluate_criterion(grid, type_name, h[sl], sigma_index[sl], sigma_index[sl], criterion)[1][:, 0]
            for sl in chunks(len(h), 3 * h.shape[1], settings)
        ]
    )
    w = np.log(np.clip(alpha, *ALPHA_BOUNDS) / ALPHA_BOUNDS[0]) / grid.log_step
    return np.stack([sigma_index[:, 0].astype(np.float64), w], axis=1)


def _finish(grid: TemplateGrid, cont: ContinuousTemplates, type_name: str, h: np.ndarray, u: np.ndarray,
            criterion: str):  # fmt: skip
    """``(sigma_x, sigma_y, alpha, on_bound)`` from continuous coordinates ``u`` ``(n, dim)``.

    For id-lap, alpha is re-profiled exactly (for ``criterion``) at the final sigma with the exact
    template.  ``on_bound``: a scale within half a fine-grid step of a bound of sigma, or alpha on a
    bound of alpha."""
    n, kk = h.shape
    last = grid.size - 1
    scale_u = u[:, :2] if cont.kind == "separate" else u[:, :1]
    sigma = np.clip(SIGMA_BOUNDS[0] * np.exp(scale_u * grid.log_step), *SIGMA_BOUNDS)
    on_bound = ((scale_u <= 0.5) | (scale_u >= last - 0.5)).any(axis=1)
    sigma_x, sigma_y = sigma[:, 0], sigma[:, -1]
    alpha = np.full(n, np.nan)
    if type_name == "id-lap":
        lap = exact_templates("lap", grid.k, sigma_x, None, None).reshape(n, kk)
        alpha = idlap_alpha(grid.delta.reshape(kk) - h, lap, criterion)
        on_bound |= (alpha <= ALPHA_BOUNDS[0]) | (alpha >= ALPHA_BOUNDS[1])
    return sigma_x, sigma_y, alpha, on_bound


def search_l2(grid: TemplateGrid, type_name: str, h: np.ndarray, mode: str, settings: SearchSettings):
    """Minimise the l2 residual for filters ``h`` ``(n, k*k)``: coarse grid, then Levenberg-Marquardt.

    The coarse grid (``coarse_l2`` squared, or ``coarse_1d`` points; all filters at once, one matrix
    product) gives the start; :func:`_lm_step` refines it on continuous coordinates (the l2 objective
    is smooth, so Gauss-Newton converges in a few iterations).  Returns
    ``(sigma_x, sigma_y, alpha, on_bound, u)``, ``u`` the final coordinates (a start for l1).
    """
    cont = ContinuousTemplates(grid, type_name, mode)
    if len(h) == 0:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros(0, dtype=bool), np.zeros((0, cont.dim))
    i1, i2, _, _ = coarse_search(grid, type_name, h, "l2", mode, settings)
    start = _start_coordinates(grid, cont, type_name, h, np.stack([i1, i2], axis=1), "l2", settings)
    u = np.empty_like(start)
    for sl in chunks(len(h), h.shape[1], settings):
        u[sl], _ = _refine(cont, h[sl], start[sl], "l2", settings)
    return (*_finish(grid, cont, type_name, h, u, "l2"), u)


def search_l1(grid: TemplateGrid, type_name: str, h: np.ndarray, mode: str, settings: SearchSettings):
    """Minimise the l1 residual for filters ``h`` ``(n, k*k)``: coarse grid, then multi-start SLP.

    Starts from :func:`_coarse_l1_starts` (a start identical to an earlier one, or whose l1 exceeds
    the best start's by more than the fraction ``l1_start_gap``, is not refined); each is refined by
    :func:`_slp_step` iterations; the lowest l1 wins (the first start on ties).  The scales are
    continuous (not restricted to the fine grid).  Returns ``(sigma_x, sigma_y, alpha, on_bound)``
    (see :func:`_finish`).
    """
    n, kk = h.shape
    cont = ContinuousTemplates(grid, type_name, mode)
    if n == 0:
        empty = np.zeros(0)
        return empty, empty, empty, np.zeros(0, dtype=bool)
    index = _coarse_l1_starts(grid, type_name, h, mode, settings)
    starts = [
        _start_coordinates(grid, cont, type_name, h, index[:, j], "l1", settings)
        for j in range(index.shape[1])
    ]
    starts = np.stack(starts, axis=1)  # (n, S, dim)
    count = starts.shape[1]
    # a start equal to an earlier one of the same filter is not refined, nor one whose l1 exceeds the
    # lowest start's by more than the fraction `l1_start_gap` (not a competing basin)
    duplicate = np.zeros((n, count), dtype=bool)
    for j in range(1, count):
        for i in range(j):
            duplicate[:, j] |= (starts[:, j] == starts[:, i]).all(axis=1)
    if count > 1:
        start_value = clean(
            np.stack([cont.value(h, starts[:, j], "l1") for j in range(count)], axis=1), np.inf
        )
        duplicate |= start_value > start_value.min(axis=1, keepdims=True) * (1.0 + settings.l1_start_gap)
    u = starts.reshape(n * count, cont.dim).copy()
    value = np.full(n * count, np.inf)
    flat_rows = np.flatnonzero(~duplicate.ravel())
    for sl in chunks(len(flat_rows), kk, settings):
        rows = flat_rows[sl]
        u[rows], value[rows] = _refine(cont, h[rows // count], u[rows], "l1", settings)
    value = clean(value.reshape(n, count), np.inf)
    best = value.argmin(axis=1)
    u = u.reshape(n, count, cont.dim)[np.arange(n), best]
    return _finish(grid, cont, type_name, h, u, "l1")
