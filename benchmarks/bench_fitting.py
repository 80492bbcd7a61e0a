"""Throughput of the batched scale-space fits against a straightforward per-filter reference.

Usage::

    python benchmarks/bench_fitting.py [N] [--reference-n 200] [--methods A B C1 C2 D1 D2] [--seed 0]

Fits ``N`` 7x7 filters (half planted templates of random type, scale, sign, amplitude and 2 % noise,
half i.i.d. Gaussian noise) with every method of :mod:`masterkey.fitting`, each method timed on its
own (so a norm method includes every search it needs), plus automatic type selection and one run
with all methods together.  Peak memory is the tracemalloc peak of the call (NumPy allocations are
traced) and the process's maximum resident set size.

The reference implementation (in this file) fits one filter at a time: the same normalisation,
then for the norm methods an exact-template 9 x 9 (or 9-point) grid followed by
``scipy.optimize.minimize`` (Nelder-Mead in ``log sigma``; ``alpha`` free for id-lap), for B a
``brentq`` root of the exact variance relation, for A the closed form, and for type selection a
bounded scalar/Nelder-Mead maximisation of the |cosine| per type.  It runs in the same process on
the first ``--reference-n`` filters; the table reports the throughput ratio, the largest and median
relative disagreement in fitted sigma (over filters not on a bound in either fit), separately for
planted and for random filters (whose l1 objective is often multi-modal or flat), and for the norm
methods the share of filters where the batched criterion is at most 1e-3 (relative) above the
reference's, with the worst relative excess (negative: the batched fit is better).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.optimize import brentq, minimize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from masterkey.fitting import (  # noqa: E402
    _KAPPA,
    ALPHA_BOUNDS,
    METHODS,
    SIGMA_BOUNDS,
    fit_filters,
    normalise_for_fitting,
    select_types,
)
from masterkey.scalespace import AXIS_OPERATORS, DERIVATIVE_ORDER, MODEL_NAMES, model_templates  # noqa: E402
from masterkey.spread import reference_template, spread_moments  # noqa: E402

K = 7


# ------------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------------
def make_filters(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(kernels, planted_mask)``."""
    rng = np.random.default_rng(seed)
    planted = n // 2
    models = rng.choice(MODEL_NAMES, size=planted)
    sigma_x = np.exp(rng.uniform(np.log(0.3), np.log(1.5), planted))
    sigma_y = np.exp(rng.uniform(np.log(0.3), np.log(1.5), planted))
    kernels = np.empty((n, K, K))
    for model in MODEL_NAMES:  # vectorised per type
        rows = np.flatnonzero(models == model)
        single = model in ("lap", "id-lap")
        alpha = rng.uniform(0.2, 1.5, len(rows)) if model == "id-lap" else None
        kernels[rows] = model_templates(
            model, K, sigma_x[rows], None if single else sigma_y[rows], alpha=alpha
        )
    amplitude = rng.choice([-1.0, 1.0], planted) * rng.uniform(0.5, 2.0, planted)
    kernels[:planted] *= amplitude[:, None, None]
    kernels[:planted] += (
        0.02 * np.abs(kernels[:planted]).max(axis=(1, 2))[:, None, None] * rng.normal(size=(planted, K, K))
    )
    kernels[planted:] = rng.normal(size=(n - planted, K, K))
    order = rng.permutation(n)
    return kernels[order], order < planted


# ------------------------------------------------------------------------------------------------
# per-filter reference implementation
# ------------------------------------------------------------------------------------------------
def _template(model, sx, sy, alpha=None):
    single = model in ("lap", "id-lap")
    return model_templates(model, K, sx, None if single else sy, alpha=alpha if model == "id-lap" else None)


def _criterion(model, h, sx, sy, alpha, kind):
    difference = _template(model, sx, sy, alpha) - h
    return np.abs(difference).sum() if kind == "l1" else (difference**2).sum()


def _clip_sigma(value):
    return float(np.clip(np.exp(value), *SIGMA_BOUNDS))


def reference_norm_fit(model, h, kind, separate):
    """Exact-template grid + Nelder-Mead for one normalised filter; returns (sx, sy, alpha, value)."""
    grid = np.exp(np.linspace(np.log(SIGMA_BOUNDS[0]), np.log(SIGMA_BOUNDS[1]), 9))
    two_d = separate and model in AXIS_OPERATORS
    if model == "id-lap":
        alphas = np.exp(np.linspace(np.log(ALPHA_BOUNDS[0]), np.log(ALPHA_BOUNDS[1]), 9))
        start = min(((np.log(s), np.log(a)) for s in grid for a in alphas),
                    key=lambda p: _criterion(model, h, np.exp(p[0]), None, np.exp(p[1]), kind))  # fmt: skip

        def objective(p):
            alpha = float(np.clip(np.exp(p[1]), *ALPHA_BOUNDS))
            sigma = _clip_sigma(p[0])
            return _criterion(model, h, sigma, sigma, alpha, kind)

        result = minimize(objective, start, method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-14})
        sigma, alpha = _clip_sigma(result.x[0]), float(np.clip(np.exp(result.x[1]), *ALPHA_BOUNDS))
        return sigma, sigma, alpha, result.fun
    if two_d:
        start = min(((np.log(a), np.log(b)) for a in grid for b in grid),
                    key=lambda p: _criterion(model, h, np.exp(p[0]), np.exp(p[1]), None, kind))  # fmt: skip

        def objective(p):
            return _criterion(model, h, _clip_sigma(p[0]), _clip_sigma(p[1]), None, kind)

        result = minimize(objective, start, method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-14})
        return _clip_sigma(result.x[0]), _clip_sigma(result.x[1]), np.nan, result.fun
    start = min(np.log(grid), key=lambda p: _criterion(model, h, np.exp(p), np.exp(p), None, kind))

    def objective(p):
        return _criterion(model, h, _clip_sigma(p[0]), _clip_sigma(p[0]), None, kind)

    result = minimize(objective, [start], method="Nelder-Mead", options={"xatol": 1e-5, "fatol": 1e-14})
    sigma = _clip_sigma(result.x[0])
    return sigma, sigma, np.nan, result.fun


def reference_variance_fit(method, model, h):
    """A (closed form) or B (brentq on the exact relation) for one normalised filter."""
    _, v = spread_moments(np.abs(h) * np.abs(reference_template(model, K)))
    v_xx, v_yy = v[0, 0], v[1, 1]
    if method == "A":
        if model == "lap":
            return np.sqrt(v_xx + v_yy), np.sqrt(v_xx + v_yy)
        order_x, order_y = DERIVATIVE_ORDER[model]
        return np.sqrt(v_xx / _KAPPA[order_x]), np.sqrt(v_yy / _KAPPA[order_y])

    def relation(sigma, axis):
        if model == "lap":
            _, vt = spread_moments(
                np.abs(_template(model, sigma, sigma)) * np.abs(_template(model, 1.0, 1.0))
            )
            return 0.5 * (vt[0, 0] + vt[1, 1])
        sx, sy = (sigma, 1.0) if axis == 0 else (1.0, sigma)
        _, vt = spread_moments(np.abs(_template(model, sx, sy)) * np.abs(_template(model, 1.0, 1.0)))
        return vt[axis, axis]

    out = []
    targets = (0.5 * (v_xx + v_yy),) * 2 if model == "lap" else (v_xx, v_yy)
    for axis, target in enumerate(targets):
        lo, hi = relation(SIGMA_BOUNDS[0], axis) - target, relation(SIGMA_BOUNDS[1], axis) - target
        if lo >= 0:
            out.append(SIGMA_BOUNDS[0])
        elif hi <= 0:
            out.append(SIGMA_BOUNDS[1])
        else:
            out.append(brentq(lambda s, a=axis, t=target: relation(s, a) - t, *SIGMA_BOUNDS, xtol=1e-8))
    return out[0], out[1]


def reference_fit(kernels, types, method):
    """Per-filter loop: returns arrays sigma_x, sigma_y, criterion value (NaN for A/B)."""
    sx = np.full(len(kernels), np.nan)
    sy = np.full(len(kernels), np.nan)
    value = np.full(len(kernels), np.nan)
    for i, (kernel, model) in enumerate(zip(kernels, types, strict=True)):
        if model is None:
            continue
        h, bad, _ = normalise_for_fitting(kernel[None], model)
        if bad[0]:
            continue
        h = h[0]
        if method in ("A", "B") and model != "id-lap":
            sx[i], sy[i] = reference_variance_fit(method, model, h)
        else:
            kind = "l1" if method[0] == "C" else "l2"
            separate = method in ("C1", "D1")
            sx[i], sy[i], _, value[i] = reference_norm_fit(model, h, kind, separate)
    return sx, sy, value


def reference_select(kernels):
    """Per-filter, per-type maximisation of |cosine| (exact templates, Nelder-Mead)."""
    out = []
    for kernel in kernels:
        h = kernel - kernel.mean()
        h = h / np.linalg.norm(h)

        def cosine(model, sx, sy, alpha, h=h):
            t = _template(model, sx, sy, alpha)
            t = t - t.mean()
            return abs((t * h).sum()) / np.linalg.norm(t)

        best = (-1.0, None)
        for model in MODEL_NAMES:
            grid = np.log(np.exp(np.linspace(np.log(SIGMA_BOUNDS[0]), np.log(SIGMA_BOUNDS[1]), 7)))
            if model == "id-lap":
                alphas = np.log(np.exp(np.linspace(np.log(ALPHA_BOUNDS[0]), np.log(ALPHA_BOUNDS[1]), 7)))
                points = [(a, b) for a in grid for b in alphas]

                def negative(p, m=model):
                    return -cosine(m, _clip_sigma(p[0]), None, float(np.clip(np.exp(p[1]), *ALPHA_BOUNDS)))
            elif model == "lap":
                points = [(a,) for a in grid]

                def negative(p, m=model):
                    return -cosine(m, _clip_sigma(p[0]), None, None)
            else:
                points = [(a, b) for a in grid for b in grid]

                def negative(p, m=model):
                    return -cosine(m, _clip_sigma(p[0]), _clip_sigma(p[1]), None)

            start = min(points, key=negative)
            result = minimize(negative, start, method="Nelder-Mead", options={"xatol": 1e-4, "fatol": 1e-12})
            if -result.fun > best[0]:
                best = (-result.fun, model)
        out.append(best)
    return [m for _, m in out], np.array([c for c, _ in out])


# ------------------------------------------------------------------------------------------------
# measurement
# ------------------------------------------------------------------------------------------------
def measure(function, *args, **kwargs):
    tracemalloc.start()
    start = time.perf_counter()
    result = function(*args, **kwargs)
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def batched_values(fits, method):
    rows = fits[fits.method == method]
    return rows.sigma_x.to_numpy(), rows.sigma_y.to_numpy(), rows.on_bound.to_numpy(), rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=float, default=1e5, help="number of filters (default 1e5)")
    parser.add_argument("--reference-n", type=int, default=200)
    parser.add_argument("--select-reference-n", type=int, default=50)
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-combined", action="store_true", help="skip the all-methods-together run")
    args = parser.parse_args(argv)
    n = int(args.n)
    kernels, planted = make_filters(n, args.seed)
    import torch  # noqa: F401  (imported up front so no timing includes the import)

    print(
        f"# {n} filters of 7x7; reference on {args.reference_n} (type selection: {args.select_reference_n})"
    )
    print(f"# torch threads {torch.get_num_threads()}, numpy {np.__version__}")

    (types, cosine), select_seconds, select_peak = measure(select_types, kernels)
    sub = slice(0, args.select_reference_n)
    ref_start = time.perf_counter()
    ref_types, ref_cosine = reference_select(kernels[sub])
    ref_select_seconds = time.perf_counter() - ref_start
    agree = np.mean([a == b for a, b in zip(types[sub], ref_types, strict=True)])
    not_worse = np.mean(cosine[sub] >= ref_cosine - 1e-4)
    rows = [("select", n / select_seconds, select_peak, args.select_reference_n / ref_select_seconds,
             f"types agree {agree:.3f}; batched |cos| >= ref - 1e-4 in {not_worse:.3f}, "
             f"max |cos| diff {np.nanmax(np.abs(cosine[sub] - ref_cosine)):.1e}",
             select_seconds)]  # fmt: skip

    sub = slice(0, args.reference_n)
    for method in args.methods:
        fits, seconds, peak = measure(fit_filters, kernels, types, methods=[method])
        start = time.perf_counter()
        ref_x, ref_y, ref_value = reference_fit(kernels[sub], types[sub], method)
        ref_seconds = time.perf_counter() - start
        bx, by, bound, frame = batched_values(fits, method)
        bx, by, bound = bx[sub], by[sub], bound[sub]
        edge = lambda s: (s <= SIGMA_BOUNDS[0] * 1.01) | (s >= SIGMA_BOUNDS[1] * 0.99)  # noqa: E731
        interior = ~bound & ~edge(ref_x) & ~edge(ref_y) & np.isfinite(ref_x) & np.isfinite(bx)
        disagreement = np.maximum(np.abs(bx / ref_x - 1), np.abs(by / ref_y - 1))
        on_planted = disagreement[interior & planted[sub]]
        on_random = disagreement[interior & ~planted[sub]]
        note = (f"planted: within 1% {np.mean(on_planted <= 0.01):.3f}, median {np.median(on_planted):.1e}, "
                f"max {on_planted.max():.1e}; random: within 1% {np.mean(on_random <= 0.01):.3f}, "
                f"median {np.median(on_random):.1e}, max {on_random.max():.1e}")  # fmt: skip
        if method[0] in "CD":
            kind = "l1" if method[0] == "C" else "l2"
            batched = frame.l1.to_numpy()[sub] if kind == "l1" else frame.l2.to_numpy()[sub] ** 2
            ok = np.isfinite(ref_value) & np.isfinite(batched)
            excess = (batched[ok] - ref_value[ok]) / np.maximum(ref_value[ok], 1e-12)
            note += f"; {kind} vs ref: <= +1e-3 in {np.mean(excess <= 1e-3):.3f}, worst {excess.max():+.1e}"
        rows.append((method, n / seconds, peak, args.reference_n / ref_seconds, note, seconds))

    if not args.no_combined:
        _, seconds, peak = measure(fit_filters, kernels, types, methods=args.methods)
        rows.append(("all (one call)", n / seconds, peak, np.nan, "", seconds))

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    header = ["method", "batched filters/s", "batched seconds", "tracemalloc peak MiB", "reference filters/s",
              "ratio", "sigma disagreement (interior)"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|---|---|---|---|---|---|---|")
    for name, rate, peak, ref_rate, note, seconds in rows:
        ratio = "" if not np.isfinite(ref_rate) else f"{rate / ref_rate:,.0f}x"
        ref = "" if not np.isfinite(ref_rate) else f"{ref_rate:,.1f}"
        print(f"| {name} | {rate:,.0f} | {seconds:,.1f} | {peak:,.0f} | {ref} | {ratio} | {note} |")
    total = sum(r[5] for r in rows if r[0] not in ("all (one call)",))
    print(f"\nselect + every method separately: {total:,.1f} s; process max RSS {maxrss:,.0f} MiB")


if __name__ == "__main__":
    main()
