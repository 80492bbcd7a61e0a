"""Normalisation, type selection and the fitting methods, :mod:`masterkey.scalespace.fitting`
(methods.md section 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from masterkey.core.tables import write_table
from masterkey.scalespace.fitting import (
    DEFAULT_SETTINGS,
    JOINT_METHODS,
    METHODS,
    SIGMA_BOUNDS,
    dc_compensation,
    fit_filters,
    fit_joint,
    normalise_for_fitting,
    select_types,
)
from masterkey.scalespace.fitting.continuous import _line_l1, _linear_l1_2d, search_l1
from masterkey.scalespace.fitting.grid import template_grid
from masterkey.scalespace.published import published_fits_table, published_spread_table
from masterkey.scalespace.templates import TYPE_NAMES, idealized_templates

PUBLISHED_TYPES = ["dy+", "dx-", "dy-", "dx+", "dx", "dy", "id-lap", "T"]

# Tolerances on the relative error of fitted sigma (documented per method):
#  * C1, C2, D1, D2, B on exact templates: the fine grid has a relative step of 0.14 %, so 0.3 %;
#  * with 0.1 % noise on an 11 x 11 support: B, C, D within 3 % (lap 12 %, id-lap 10 %: their fits
#    are the most noise-sensitive; lap at sigma ~ 0.5 is close to the bare 5-point stencil); noise
#    enters through the normalisation (ramp / quadratic / DC response, which weights far pixels by
#    |x| or x^2) and grows quickly with the noise level;
#  * A uses the continuum relations V_g = kappa sigma^2 (exact only for a continuous filter at
#    sigma_ref = 1); on discrete templates it is an approximation (error up to a factor ~2 at small
#    sigma), so it is only checked to increase with sigma and to lie within a factor 2.
EXACT_TOLERANCE = 3e-3
NOISY_TOLERANCE = {"B": 0.03, "C1": 0.03, "C2": 0.03, "D1": 0.03, "D2": 0.03}


def _planted(k, sigmas, same_scale, amplitude=-1.7, noise=0.0, seed=0):
    """Templates of every type, scaled by a negative amplitude (sign must not matter)."""
    rng = np.random.default_rng(seed)
    kernels, truth = [], []
    for model in TYPE_NAMES:
        for sigma in sigmas:
            single = model in ("lap", "id-lap")
            sigma_y = sigma if (same_scale or single) else 0.8 * sigma + 0.2
            alpha = 0.6 if model == "id-lap" else None
            template = idealized_templates(model, k, sigma, None if single else sigma_y, alpha=alpha)
            noisy = amplitude * template + noise * np.abs(template).max() * rng.normal(size=template.shape)
            kernels.append(noisy)
            truth.append((model, sigma, sigma_y, np.nan if alpha is None else alpha))
    return np.array(kernels), pd.DataFrame(truth, columns=["model", "true_x", "true_y", "true_alpha"])


def _errors(kernels, truth):
    fits = fit_filters(kernels, truth["model"].tolist()).join(truth, on="filter")
    fits["error"] = np.maximum(np.abs(fits.sigma_x / fits.true_x - 1), np.abs(fits.sigma_y / fits.true_y - 1))
    return fits


@pytest.fixture(scope="module")
def exact_separate():
    return _errors(*_planted(17, [0.3, 0.6, 1.0, 1.5], same_scale=False))


@pytest.fixture(scope="module")
def exact_same():
    return _errors(*_planted(17, [0.3, 0.6, 1.0, 1.5], same_scale=True))


@pytest.mark.parametrize("method", ["B", "C1", "D1"])
def test_planted_separate_scales_recovered(exact_separate, method):
    rows = exact_separate[exact_separate.method == method]
    assert not rows.degenerate.any()
    worst = rows.loc[rows.error.idxmax()]
    assert worst.error < EXACT_TOLERANCE, worst.to_dict()
    assert rows.l2.max() < 1e-2


@pytest.mark.parametrize("method", ["C2", "D2"])
def test_planted_same_scale_recovered(exact_same, method):
    rows = exact_same[exact_same.method == method]
    assert rows.error.max() < EXACT_TOLERANCE
    assert (rows.sigma_x == rows.sigma_y).all()


def test_planted_id_lap_alpha_recovered(exact_same):
    rows = exact_same[(exact_same.model == "id-lap") & exact_same.method.isin(["C1", "D1"])]
    assert np.allclose(rows.alpha, 0.6, rtol=5e-3)
    others = exact_same[exact_same.model != "id-lap"]
    assert others.alpha.isna().all()


def test_variance_method_a_is_a_monotone_approximation(exact_same):
    rows = exact_same[(exact_same.method == "A") & (exact_same.model != "id-lap")]
    ratio = rows.sigma_x / rows.true_x
    assert ((ratio > 0.5) & (ratio < 2.0))[rows.true_x >= 0.6].all()
    for _, group in rows.groupby("model"):
        assert np.all(np.diff(group.sort_values("true_x").sigma_x.to_numpy()) > 0)


def test_planted_with_noise_recovered():
    kernels, truth = _planted(11, [0.5, 0.8, 1.2], same_scale=True, noise=1e-3, seed=3)
    fits = _errors(kernels, truth)
    for method, tolerance in NOISY_TOLERANCE.items():
        rows = fits[fits.method == method]
        tolerance_per_row = rows.model.map({"id-lap": 0.10, "lap": 0.12}).fillna(tolerance).to_numpy()
        assert (rows.error < tolerance_per_row).all(), rows[rows.error >= tolerance_per_row].to_dict(
            "records"
        )


def test_seven_tap_small_scales_recovered_exactly():
    kernels, truth = _planted(7, [0.3, 0.45], same_scale=False)
    fits = _errors(kernels, truth)
    rows = fits[fits.method.isin(["D1", "B"]) & (fits.model != "id-lap")]
    assert rows.error.max() < 0.01
    # On 7 taps the normalisation (ramp / quadratic response of the truncated template) shifts the
    # l1 optimum itself by up to ~1.2 % from the planted scales (dxy at 0.45 x 0.56): C1 finds that
    # optimum, which fits better than the planted template does.
    c1 = fits[(fits.method == "C1") & (fits.model != "id-lap")]
    assert c1.error.max() < 0.015
    h_n = np.stack([normalise_for_fitting(kernels[i][None], m).kernels[0]
                    for i, m in zip(c1["filter"], c1.model, strict=True)])  # fmt: skip
    planted = model_templates_rows(c1.model, c1.true_x, c1.true_y)
    assert (c1.l1.to_numpy() <= np.abs(planted - h_n).sum(axis=(1, 2)) + 1e-12).all()


def model_templates_rows(models, sigma_x, sigma_y):
    """Exact templates, one per row (single-scale types take ``sigma_x``)."""
    return np.stack([idealized_templates(m, 7, sx, None if m in ("lap", "id-lap") else sy,
                                     alpha=0.6 if m == "id-lap" else None)
                     for m, sx, sy in zip(models, sigma_x, sigma_y, strict=True)])  # fmt: skip


@pytest.mark.parametrize("mode", ["separate", "same"])
def test_l1_search_recovers_exact_templates_continuously(mode):
    """The l1 search on exact 7-tap templates (no normalisation: the l1 optimum is the planted scale,
    l1 = 0) recovers sigma in 0.3..1.5, anisotropic for the separate search, to 1e-5 (the scales are
    continuous, not fine-grid nodes), and alpha of id-lap."""
    grid = template_grid(7, DEFAULT_SETTINGS.fine_points)
    sigma = np.exp(np.linspace(np.log(0.3), np.log(1.5), 6))
    sx, sy = (a.ravel() for a in np.meshgrid(sigma, 0.9 * sigma[::-1] + 0.05, indexing="ij"))
    for model in TYPE_NAMES:
        if mode == "separate" and model in ("lap", "id-lap"):
            continue
        single = model in ("lap", "id-lap") or mode == "same"
        y = sx if single else sy
        alpha = np.linspace(0.2, 1.5, len(sx)) if model == "id-lap" else None
        templates = idealized_templates(model, 7, sx, None if model in ("lap", "id-lap") else y, alpha=alpha)
        fit_x, fit_y, fit_alpha, bound = search_l1(grid, model, templates.reshape(len(sx), 49), mode,
                                                   DEFAULT_SETTINGS)  # fmt: skip
        assert np.abs(fit_x / sx - 1).max() < 1e-5, model
        assert np.abs(fit_y / y - 1).max() < 1e-5, model
        assert not bound.any()
        if alpha is not None:
            assert np.abs(fit_alpha / alpha - 1).max() < 1e-5


# Two planted 7x7 filters (2 % noise) from benchmarks/bench_fitting.py (seed 0, filters 49 and 222)
# on which the former compass search stopped in a kinked valley of the l1 objective, 3.3 % and 6.3 %
# above the optimum, with sigma off by 14 % and 41 %.  Expected values: the per-filter reference of
# the benchmark (dense grid + multi-start Nelder-Mead on exact templates).
# fmt: off
KINKED_VALLEY_FILTERS = {  # model: (7 x 7 kernel, reference (sigma_x, sigma_y, l1))
    "dyy": (
        np.array([
            [-4.799377e-06, 0.000317862432, 0.009634775849, 0.061185005221,
             0.005914403105, 0.002622916752, -0.002776117974],
            [-0.003864650667, -0.000557995771, 0.011311935533, 0.051656278199,
             0.004050266368, 0.002940961899, 0.001015289796],
            [-0.006053778829, 0.004534264837, -0.00581541699, -0.015916025451,
             0.001689088903, 0.001046226312, 0.001611085325],
            [0.002910067884, -0.000726684063, -0.02473915765, -0.183526280444,
             -0.024156367502, -0.005748850094, 0.007349696567],
            [0.000862572737, 0.004075836343, -0.011253473099, -0.023038494359,
             0.000707402831, -0.000322333189, 0.00215229747],
            [-0.000625814611, 0.004041103947, 0.009398826973, 0.056795783023,
             0.009780634873, 0.005544676003, -0.00509577077],
            [-7.2436607e-05, 0.006287036751, 0.006690984633, 0.061067925009,
             0.010176306468, -0.005771229798, -0.000176822359],
        ]),
        (0.515326, 1.304575, 0.176943),
    ),
    "dx-": (
        np.array([
            [-0.00015223052, 0.000860430055, 0.000547573854, 0.000894481239,
             -0.001118667919, 0.000242801806, 0.002127385662],
            [0.000713734802, -0.000177326826, -3.4417655e-05, 0.001602141912,
             -0.00047493217, 0.000483484692, 0.001690666054],
            [0.001655346578, 0.000360802011, 0.004422493181, 0.003200961074,
             -0.003408641658, -0.004212566694, -0.001474621541],
            [-0.001406283522, 0.033615814311, 0.069626683956, 0.057653926668,
             -0.057386129259, -0.071760114043, -0.032878293803],
            [-0.000283382027, 0.000517488282, 0.002712257727, 0.003064875389,
             -0.003886178057, -0.005221604259, -0.004622466006],
            [-0.00224059682, -0.000297027102, 0.000852209774, -0.000854193134,
             -0.001603092569, 0.000263871874, -0.0010569199],
            [-0.001421245237, -0.000109029775, -0.001452000474, 0.00139481271,
             -0.001272742424, 0.001126318665, 0.000977749027],
        ]),
        (1.255959, 0.326298, 0.17515),
    ),
}
# fmt: on


def test_kinked_valley_filters_reach_the_l1_optimum():
    models = list(KINKED_VALLEY_FILTERS)
    kernels = np.stack([KINKED_VALLEY_FILTERS[m][0] for m in models])
    fits = fit_filters(kernels, models, methods=["C1"])
    for row, model in zip(fits.itertuples(), models, strict=True):
        sigma_x, sigma_y, l1 = KINKED_VALLEY_FILTERS[model][1]
        assert abs(row.sigma_x / sigma_x - 1) < 1e-3 and abs(row.sigma_y / sigma_y - 1) < 1e-3, row
        assert row.l1 <= l1 * (1 + 1e-5), row


def test_linear_l1_subproblems_are_solved_exactly():
    """The weighted-median line search and the pivoting 2-variable solver against linear programming."""
    from scipy.optimize import linprog

    rng = np.random.default_rng(4)
    n, terms = 40, 49
    residual = rng.normal(size=(n, terms))
    jx, jy = rng.normal(size=(n, terms)), rng.normal(size=(n, terms))
    low = -rng.uniform(0.1, 3.0, (n, 2))
    high = rng.uniform(0.1, 3.0, (n, 2))
    t, _, _ = _line_l1(residual, jx, low[:, 0], high[:, 0])
    dense = np.linspace(low[:, 0], high[:, 0], 20001).T  # (n, points)
    brute = np.abs(residual[:, None, :] + dense[:, :, None] * jx[:, None, :]).sum(-1).min(axis=1)
    exact = np.abs(residual + t[:, None] * jx).sum(1)
    assert (exact <= brute + 1e-12).all() and np.allclose(exact, brute, rtol=1e-5)  # brute: a dense grid
    delta, model, _ = _linear_l1_2d(residual, jx, jy, low, high, pivots=12)
    delta2, model2, _ = _linear_l1_2d(residual, jx, jy, low, high, pivots=DEFAULT_SETTINGS.l1_pivots)
    for i in range(n):  # min sum e  s.t.  -e <= r + J d <= e,  low <= d <= high
        jac = np.stack([jx[i], jy[i]], axis=1)
        cost = np.concatenate([np.zeros(2), np.ones(terms)])
        a_ub = np.block([[jac, -np.eye(terms)], [-jac, -np.eye(terms)]])
        b_ub = np.concatenate([-residual[i], residual[i]])
        bounds = list(zip(low[i], high[i], strict=True)) + [(0, None)] * terms
        optimum = linprog(cost, A_ub=a_ub, b_ub=b_ub, bounds=bounds).fun
        assert model[i] == pytest.approx(optimum, rel=1e-9)
        assert (low[i] - 1e-12 <= delta[i]).all() and (delta[i] <= high[i] + 1e-12).all()
        # the few pivots used by the search never increase the model
        assert optimum - 1e-9 <= model2[i] <= np.abs(residual[i]).sum() + 1e-12


def test_fits_are_deterministic():
    rng = np.random.default_rng(11)
    kernels = rng.normal(size=(60, 7, 7))
    types, _ = select_types(kernels)
    first = fit_filters(kernels, types)
    second = fit_filters(kernels, types)
    pd.testing.assert_frame_equal(first, second, check_exact=True)


def test_negated_filter_gets_the_same_fit():
    kernel = idealized_templates("dx+", 7, 0.7, 0.9)
    fits = fit_filters(np.stack([kernel, -3 * kernel]), ["dx+", "dx+"])
    first, second = fits[fits["filter"] == 0], fits[fits["filter"] == 1]
    assert np.allclose(first.sigma_x.to_numpy(), second.sigma_x.to_numpy())
    assert np.allclose(first.l2.to_numpy(), second.l2.to_numpy())


def test_normalisation_rules():
    dx = idealized_templates("dx-", 7, 0.8, 0.8)
    result = normalise_for_fitting(np.stack([2.5 * dx, -dx]), "dx-")
    normalised, bad = result.kernels, result.degenerate
    assert not bad.any()
    assert np.array_equal(result.dc_constant, [0.0, 0.0])  # no DC compensation for difference types
    assert np.allclose(normalised[0], normalised[1])
    # ramp response 1 (kernel coordinates, ramp centred at the mean of |h|) after normalisation
    assert np.allclose(normalised[0], dx / (-(dx * (np.arange(7) - 3)[None, :]).sum()))
    t = idealized_templates("T", 15, 0.8)
    result = normalise_for_fitting((3 * t + 0.2)[None], "T")
    normalised, constant = result.kernels, result.dc_constant
    assert constant[0] == pytest.approx(0.2, abs=1e-6)
    assert normalised[0].sum() == pytest.approx(1.0)
    assert np.allclose(normalised[0], t / t.sum(), atol=1e-6)


def test_dc_compensation_finds_background_level():
    rng = np.random.default_rng(0)
    blob = np.zeros((5, 7, 7))
    blob[:, 3, 3] = 1.0
    blob[:, 3, 4] = 0.4
    offsets = rng.uniform(-0.3, 0.3, size=5)
    constants = dc_compensation(blob + offsets[:, None, None])
    assert np.allclose(constants, offsets, atol=1e-6)


def test_degenerate_filters_are_flagged_not_crashed():
    good = idealized_templates("dy", 7, 0.8, 0.8)
    nan = good.copy()
    nan[0, 0] = np.nan
    kernels = np.stack([np.zeros((7, 7)), np.full((7, 7), 0.3), nan, good])
    types, cosine = select_types(kernels)
    assert types[:3] == [None, None, None] and types[3] == "dy"
    assert np.isnan(cosine[:3]).all() and cosine[3] == pytest.approx(1.0)
    fits = fit_filters(kernels)
    assert fits.groupby("filter").degenerate.all().tolist() == [True, True, True, False]
    assert fits[fits.degenerate][["sigma_x", "sigma_y", "l1", "l2"]].isna().all().all()
    # given types: a zero filter, and a filter whose ramp response vanishes
    symmetric = idealized_templates("T", 7, 0.8)
    fits = fit_filters(np.stack([np.zeros((7, 7)), symmetric]), ["dx", "dx"])
    assert fits.degenerate.all()
    joint = fit_joint(kernels, types, [[0, 3], [1, 2]], methods=JOINT_METHODS)
    assert joint[joint["filter"] == 3].degenerate.eq(False).all()
    assert joint[joint["filter"] == 3].sigma_x.notna().all()


def test_on_bound_flag():
    delta = np.zeros((7, 7))
    delta[3, 3] = 1.0
    delta[3, 4] = 1e-9
    fits = fit_filters(delta[None], ["T"], methods=["D1", "C2"])
    assert fits.on_bound.all()
    assert np.allclose(fits.sigma_x, SIGMA_BOUNDS[0])


def test_rotation_by_90_degrees_gives_rotated_type_and_swapped_scales():
    kernels = np.stack([idealized_templates("dx+", 7, 0.5, 0.9), idealized_templates("dxx", 7, 0.45, 0.8)])
    rotated = np.rot90(kernels, axes=(1, 2))
    types, _ = select_types(np.concatenate([kernels, rotated]))
    assert types == ["dx+", "dxx", "dy+", "dyy"]
    fits = fit_filters(np.concatenate([kernels, rotated]), types, methods=["D1"])
    assert np.allclose(fits.sigma_x[:2].to_numpy(), fits.sigma_y[2:].to_numpy(), rtol=3e-3)
    assert np.allclose(fits.sigma_y[:2].to_numpy(), fits.sigma_x[2:].to_numpy(), rtol=3e-3)


def test_select_types_on_planted_noisy_filters():
    kernels, truth = _planted(7, [0.5, 0.8], same_scale=False, noise=0.02, seed=5)
    types, cosine = select_types(kernels)
    assert types == truth.model.tolist()
    assert (cosine > 0.9).all()


def test_fit_output_format():
    kernels = np.stack([idealized_templates("dy", 7, 0.6, 0.6), idealized_templates("lap", 7, 0.7)])
    fits = fit_filters(kernels)
    assert list(fits.columns) == ["filter", "type", "method", "sigma_x", "sigma_y", "alpha", "l1", "l2",
                                  "rel_l2", "on_bound", "degenerate"]  # fmt: skip
    assert len(fits) == 2 * len(METHODS) and fits.method.tolist()[: len(METHODS)] == list(METHODS)
    lap = fits[fits.type == "lap"]
    assert (lap.sigma_x == lap.sigma_y).all()
    with pytest.raises(ValueError):
        fit_filters(kernels, methods=["E"])
    with pytest.raises(ValueError):
        fit_filters(kernels, ["dx", "nope"])


def test_joint_fits():
    sigma = 0.7
    kernels = np.stack([idealized_templates(m, 7, sigma, sigma) for m in ("dx", "dy", "T", "dx+")])
    types = ["dx", "dy", "T", "dx+"]
    per_filter = fit_filters(kernels, types)
    joint = fit_joint(kernels, types, {"all": [0, 1, 2, 3]}, per_filter=per_filter)
    for method in ("C-joint", "D-joint"):
        rows = joint[joint.method == method]
        assert np.allclose(rows.sigma_x, sigma, rtol=1e-2) and (rows.sigma_x == rows.sigma_y).all()
    a_rows = per_filter[per_filter.method == "A"]
    expected = np.sqrt(np.exp(np.mean(np.log(a_rows.sigma_x * a_rows.sigma_y))))
    assert np.allclose(joint[joint.method == "A-joint"].sigma_x, expected)
    # the pooled l2 optimum beats the pooled A scale on summed squared l2
    d = joint[joint.method == "D-joint"].l2.pow(2).sum()
    assert d <= joint[joint.method == "A-joint"].l2.pow(2).sum() + 1e-12


def test_published_filters_types_and_plausible_scales(published_filters):
    filters = published_filters
    types, cosine = select_types(filters)
    assert types == PUBLISHED_TYPES
    assert (cosine > 0.84).all() and (cosine < 0.999).all()
    fits = fit_filters(filters, types)
    inner = fits[~fits.on_bound]
    assert inner.sigma_x.between(0.3, 1.5).all() and inner.sigma_y.between(0.3, 1.5).all()
    assert fits.on_bound.sum() <= 2
    assert fits[fits.type == "id-lap"].alpha.between(0.2, 1.0).all()


def test_published_tables(published_filters, tmp_path):
    filters = published_filters
    fits = published_fits_table(filters, types=PUBLISHED_TYPES)
    assert list(fits.columns) == ["filter", "type", "method", "sigma_x", "sigma_y", "alpha", "l1", "l2",
                                  "on_bound"]  # fmt: skip
    assert fits["filter"].tolist() == sorted(fits["filter"].tolist()) and set(fits["filter"]) == set(
        range(1, 9)
    )
    assert set(fits.method) == set(METHODS) | set(JOINT_METHODS)
    assert (
        fits[fits.method.isin(["C2", "D2"]) | fits.method.str.endswith("joint")].eval("sigma_x == sigma_y")
    ).all()
    assert fits[fits.type != "id-lap"].alpha.isna().all()
    assert not (fits["filter"] == 7).loc[fits.method.str.endswith("joint")].any()  # 7 is in no group
    [path] = write_table(fits, tmp_path / "fits.csv")
    assert path.read_text().splitlines()[0] == "filter,type,method,sigma_x,sigma_y,alpha,l1,l2,on_bound"
    assert pd.read_csv(path).shape == fits.shape
    assert r"\toprule" in write_table(fits, tmp_path / "fits.tex")[0].read_text()
    assert write_table(fits, tmp_path / "fits.md")[0].read_text().startswith("| filter | type |")
    spread = published_spread_table(filters, types=PUBLISHED_TYPES)
    assert {"filter", "m_x", "m_y", "V_xx", "V_xy", "V_yy", "Vg_xx", "correlation", "offset"} <= set(spread)
    write_table(spread, tmp_path / "spread.csv")
