"""The bounds of [C] (masterkey.shiftinv.bounds): gamma_q's reference values, limits and symmetries."""

from __future__ import annotations

import math

import numpy as np
import pytest

from masterkey.shiftinv.bounds import (
    alpha,
    beta,
    check_factors,
    discrepancy_bound,
    gamma,
    gamma_from_phases,
    instability_bound,
)

ROOT_3_2 = math.sqrt(1.5)


@pytest.mark.parametrize("q", [0, 1, 2, 3])
@pytest.mark.parametrize(
    "omega", [(0.0, 0.0), (2 * math.pi, 0.0), (2 * math.pi, -4 * math.pi), (0.0, 6 * math.pi)]
)
def test_gamma_is_root_three_halves_when_all_phases_coincide(omega, q):
    assert gamma(np.array(omega), q) == pytest.approx(ROOT_3_2, abs=1e-12)


def test_gamma_hand_computed_value():
    # omega = (pi, 0), q = 1: phases pi * p_1 are 0 (3 times) and pi (6 times): two arcs of pi,
    # 3/2 + 2 (sin pi - 8 sin(pi/2)) / (4 pi) = 3/2 - 4/pi.
    assert gamma(np.array([math.pi, 0.0]), 1) == pytest.approx(math.sqrt(1.5 - 4 / math.pi), abs=1e-12)


def test_gamma_of_evenly_spread_phases_has_its_closed_form_and_vanishes():
    values = []
    for count in (2, 3, 9, 25, 64, 400):
        phases = 2 * np.pi * np.arange(count) / count + 0.37  # any rotation, any order
        closed = math.sqrt(
            1.5 + count * (math.sin(2 * math.pi / count) - 8 * math.sin(math.pi / count)) / (4 * math.pi)
        )
        got = gamma_from_phases(np.random.default_rng(count).permutation(phases))
        assert got == pytest.approx(closed, abs=1e-7)
        values.append(got)
    assert np.all(np.diff(values) < 0)
    assert values[-1] < 1e-3  # ~ pi^2 / (sqrt(20) P^2)
    # q large with an irrational-like direction: the (2q+1)^2 phases fill the circle
    assert gamma(np.array([1.0, math.sqrt(2)]), q=20) < 1e-4


def test_gamma_is_even_periodic_bounded_and_vectorised():
    rng = np.random.default_rng(0)
    omega = rng.uniform(-math.pi, math.pi, size=(5, 7, 2))
    for q in (1, 2):
        g = gamma(omega, q)
        assert g.shape == (5, 7)
        np.testing.assert_allclose(gamma(-omega, q), g, atol=1e-12)
        np.testing.assert_allclose(gamma(omega + np.array([2 * math.pi, -2 * math.pi]), q), g, atol=1e-9)
        assert np.all((g >= 0) & (g <= ROOT_3_2 + 1e-12))
        np.testing.assert_allclose(g[2, 3], gamma(omega[2, 3], q))


def test_alpha_beta_and_the_two_bounds():
    np.testing.assert_allclose(alpha(np.array([[1.0, -2.0], [0.5, 0.0]])), [1.5, 0.25])
    assert beta(0.5, q=2) == pytest.approx(1.0)
    theta = np.array([[0.7, 1.6], [-2.0, 0.3]])
    kappa = np.array([math.pi / 2, 0.4])
    disc = discrepancy_bound(theta, kappa, m=2, q=1)
    np.testing.assert_allclose(disc, 2 * kappa + gamma(2 * theta, 1))
    inst = instability_bound(theta, kappa, m=2, q=1, shift=(1, 1))
    np.testing.assert_allclose(inst, 2 * disc + kappa)  # alpha(kappa (1, 1)) = kappa
    # with the largest admissible bandwidth kappa = pi / m, beta_q alone is q pi
    assert discrepancy_bound(np.zeros(2), math.pi / 4, m=4, q=1) == pytest.approx(math.pi + ROOT_3_2)


@pytest.mark.parametrize("m, q", [(0, 1), (-2, 1), (2.5, 1), (True, 1), (2, -1), (2, 1.5)])
def test_bad_factors_are_rejected(m, q):
    with pytest.raises(ValueError, match="must be an integer"):
        check_factors(m, q)
    with pytest.raises(ValueError, match="must be an integer"):
        discrepancy_bound(np.zeros(2), 1.0, m, q)


def test_bad_frequency_shapes_are_rejected():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        gamma(np.zeros(3))
    with pytest.raises(ValueError, match="P >= 1"):
        gamma_from_phases(np.zeros((2, 0)))
