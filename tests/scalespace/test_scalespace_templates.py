"""Discrete scale-space templates, :mod:`masterkey.scalespace.templates` (methods.md sections 1-3)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import correlate1d

from masterkey.kernels.conventions import kernel_coordinates, pattern_response
from masterkey.scalespace.templates import (
    SEPARABLE_TYPES,
    TYPE_NAMES,
    discrete_gaussian,
    gaussian_profiles,
    idealized_templates,
)

SIGMAS = [0.3, 0.7, 1.0, 1.5]


@pytest.mark.parametrize("s", [0.05, 0.5, 1.0, 2.25, 6.0])
def test_discrete_gaussian_mass_and_variance(s):
    n = np.arange(-60, 61)
    t = discrete_gaussian(n, s)
    assert t.sum() == pytest.approx(1.0, abs=1e-12)
    assert (n * t).sum() == pytest.approx(0.0, abs=1e-12)
    assert (n**2 * t).sum() == pytest.approx(s, rel=1e-10)  # variance equals s exactly


def test_discrete_gaussian_is_not_sampled_gaussian_and_zero_scale_is_impulse():
    t = gaussian_profiles(7, 0.0)
    assert np.array_equal(t, [0, 0, 0, 1, 0, 0, 0])
    sampled = np.exp(-(np.arange(-3, 4) ** 2) / 2) / np.sqrt(2 * np.pi)
    assert not np.allclose(gaussian_profiles(7, 1.0), sampled, atol=1e-3)
    assert gaussian_profiles(7, 1.0)[3] == pytest.approx(np.exp(-1) * 1.2660658777520082)  # e^-1 I_0(1)


def test_truncation_without_renormalisation():
    assert idealized_templates("T", 7, 1.5).sum() < 0.96  # 7 taps of T(.; 2.25), not renormalised


@pytest.mark.parametrize("model", TYPE_NAMES)
def test_vectorised_shapes_and_odd_sizes(model):
    sigma = np.array([0.3, 0.8, 1.2])
    kwargs = {"alpha": np.array([0.2, 0.5, 1.0])} if model == "id-lap" else {}
    for k in (3, 7, 9):
        out = idealized_templates(model, k, sigma, **kwargs)
        assert out.shape == (3, k, k)
        single = idealized_templates(model, k, 0.8, alpha=0.5 if model == "id-lap" else None)  # scalar scales
        assert single.shape == (k, k)
        assert np.allclose(out[1], single)
    with pytest.raises(ValueError):
        idealized_templates(model, 6, 1.0, alpha=1.0)


def test_separable_grid_of_scales_broadcasts():
    out = idealized_templates("dx", 7, np.array([0.5, 1.0])[:, None], np.array([0.4, 0.6, 0.9])[None, :])
    assert out.shape == (2, 3, 7, 7)
    assert np.allclose(out[1, 2], idealized_templates("dx", 7, 1.0, 0.9))


def test_single_scale_models_reject_two_scales():
    with pytest.raises(ValueError):
        idealized_templates("lap", 7, 1.0, 0.5)
    with pytest.raises(ValueError):
        idealized_templates("id-lap", 7, 1.0)  # alpha missing


# responses on a wide support, where truncation is negligible
PATTERNS = {
    "ramp_x": lambda x, y: x,
    "ramp_y": lambda x, y: y,
    "xx": lambda x, y: x * x / 2,
    "yy": lambda x, y: y * y / 2,
    "xy": lambda x, y: x * y,
    "lap": lambda x, y: (x * x + y * y) / 4,
}
EXPECTED_UNIT = {
    "dx": "ramp_x", "dx+": "ramp_x", "dx-": "ramp_x", "dy": "ramp_y", "dy+": "ramp_y", "dy-": "ramp_y",
    "dxx": "xx", "dyy": "yy", "dxy": "xy", "lap": "lap",
}  # fmt: skip


@pytest.mark.parametrize("model", sorted(EXPECTED_UNIT))
@pytest.mark.parametrize("sigma", SIGMAS)
def test_unit_response_to_matching_pattern(model, sigma):
    sigma_y = None if model == "lap" else 0.8 * sigma + 0.2
    template = idealized_templates(model, 31, sigma, sigma_y)
    response = pattern_response(template, PATTERNS[EXPECTED_UNIT[model]])
    assert response == pytest.approx(1.0, abs=1e-10)
    assert template.sum() == pytest.approx(0.0, abs=1e-12)  # difference templates: no DC


@pytest.mark.parametrize("model", ["T", "id-lap"])
def test_unit_dc_gain(model):
    template = idealized_templates(model, 31, 1.2, alpha=0.7 if model == "id-lap" else None)
    assert template.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("model", [m for m in SEPARABLE_TYPES if m != "T"] + ["lap"])
def test_difference_templates_sum_to_zero_on_seven_taps(model):
    # mirror-reflect extension makes the sums telescope to exactly zero
    assert idealized_templates(model, 7, 1.3).sum() == pytest.approx(0.0, abs=1e-15)


def test_signs_follow_the_convention():
    x, y = kernel_coordinates(7)
    dx = idealized_templates("dx", 7, 1.0)
    dy = idealized_templates("dy", 7, 1.0)
    assert (dx[x < 0] > 0).all() and (dx[x > 0] < 0).all()  # positive for x < 0
    assert (dy[y < 0] > 0).all() and (dy[y > 0] < 0).all()  # positive below the centre (y up)
    assert (dy[-1] > 0).all()  # bottom row has y = -3
    assert idealized_templates("dxx", 7, 0.5)[3, 3] < 0 and idealized_templates("lap", 7, 0.5)[3, 3] < 0
    assert idealized_templates("id-lap", 7, 0.5, alpha=0.5)[3, 3] > 1


@pytest.mark.parametrize(("model", "axis", "offset"), [("dx+", 0, -0.5), ("dx-", 0, 0.5), ("dy+", 1, -0.5),
                                                        ("dy-", 1, 0.5)])  # fmt: skip
def test_half_grid_offsets(model, axis, offset):
    template = idealized_templates(model, 41, 1.0, 1.0)
    x, y = kernel_coordinates(41)
    w = np.abs(template)
    coordinate = (x, y)[axis]
    assert (w * coordinate).sum() / w.sum() == pytest.approx(offset, abs=1e-6)
    # the outer tap of the pair sits at 2 * offset; its sign is -sign(offset) (ramp response +1)
    assert np.sign(template[coordinate == 2 * offset].sum()) == -np.sign(offset)
    assert pattern_response(template, lambda x, y: (x, y)[axis]) == pytest.approx(1.0, abs=1e-9)


def test_reflect_mode_difference_reproduces_the_published_construction():
    k, sigma = 7, 1.1
    t = gaussian_profiles(k, sigma)
    x_profile = correlate1d(t, [-0.5, 0.0, 0.5], mode="reflect")
    assert x_profile[0] == pytest.approx((t[1] - t[0]) / 2)  # border uses the mirrored tap
    expected = np.outer(t, x_profile)  # rows: T(y) (symmetric), cols: delta_x T(x)
    assert np.allclose(idealized_templates("dx", k, sigma, sigma), expected)
    forward = correlate1d(t, [0.0, -1.0, 1.0], mode="reflect")
    assert np.allclose(idealized_templates("dx+", k, sigma, sigma), np.outer(t, forward))
    # dy+ = forward difference along y (upwards): the same profile, rows reversed
    assert np.allclose(idealized_templates("dy+", k, sigma, sigma), np.outer(forward[::-1], t))


@pytest.mark.parametrize(("model", "rotated"), [("dx", "dy"), ("dx+", "dy+"), ("dx-", "dy-"), ("dxx", "dyy"),
                                                 ("T", "T")])  # fmt: skip
def test_rotation_by_90_degrees_maps_types_and_swaps_scales(model, rotated):
    template = idealized_templates(model, 7, 0.6, 1.1)
    assert np.allclose(np.rot90(template), idealized_templates(rotated, 7, 1.1, 0.6))  # counter-clockwise
