"""Differentiable Gaussian profiles and torch templates (:mod:`masterkey.scalespace.differentiable`,
:func:`masterkey.scalespace.templates.templates_from_profiles`; docs/methods.md section 3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import ive

from masterkey.scalespace.differentiable import (
    _quadrature_length,
    discrete_gaussian_profiles,
    sampled_gaussian_profiles,
)
from masterkey.scalespace.templates import (
    AXIS_OPERATORS,
    TYPE_NAMES,
    apply_difference,
    difference_matrix,
    gaussian_profiles,
    idealized_templates,
    templates_from_profiles,
)

SCALES = [0.0, 1e-4, 0.5, 2.25, 10.0, 100.0]  # s = sigma^2


def reference_profiles(k, s):
    c = (k - 1) // 2
    return ive(np.abs(np.arange(-c, c + 1))[None, :], np.asarray(s, dtype=np.float64)[:, None])


@pytest.mark.parametrize("k", [3, 7, 15])
def test_discrete_profiles_equal_scipy_in_float64_and_float32(k):
    s = torch.tensor(SCALES, dtype=torch.float64)
    expected = reference_profiles(k, SCALES)
    together = discrete_gaussian_profiles(k, s)
    assert together.dtype == torch.float64 and together.shape == (len(SCALES), k)
    assert np.abs(together.numpy() - expected).max() < 1e-14
    for i in range(len(SCALES)):  # alone: each with the quadrature length of its own scale
        alone = discrete_gaussian_profiles(k, s[i : i + 1]).numpy()[0]
        assert np.abs(alone - expected[i]).max() < 1e-15
    single = discrete_gaussian_profiles(k, s.float())
    assert single.dtype == torch.float32
    assert np.abs(single.numpy() - expected).max() < 6e-8  # float32 rounding of the float64 values


def test_discrete_profiles_mass_variance_and_impulse():
    s = torch.tensor([0.0, 0.3, 4.0, 30.0], dtype=torch.float64)
    n = np.arange(-60, 61)
    profiles = discrete_gaussian_profiles(121, s).numpy()
    assert np.allclose(profiles.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    # variance s; the tail noise of about 1e-17 per tap (absolute accuracy) is weighted by n^2 <= 3600
    assert np.allclose((n**2 * profiles).sum(axis=1), s.numpy(), rtol=0, atol=5e-12)
    assert profiles[0].tolist() == np.eye(121)[60].tolist()  # T(n; 0) is exactly the unit impulse
    assert np.allclose(discrete_gaussian_profiles(7, s).numpy(), gaussian_profiles(7, np.sqrt(s.numpy())))


def test_quadrature_length_keeps_aliasing_below_the_bound():
    """The trapezoid sum of the generating function is T plus its aliases T(n + jM): at the chosen M
    they are below 2**-60; at a much shorter length the aliasing is visible (negative control)."""
    s, reach = 50.0, 4
    length = _quadrature_length(reach, s)
    n = np.arange(-reach, reach + 1)
    aliases = sum(ive(np.abs(n + j * length), s) for j in (-2, -1, 1, 2))
    assert aliases.max() < 2.0**-60
    short = length // 2
    assert sum(ive(np.abs(n + j * short), s) for j in (-1, 1)).max() > 1e-12
    assert _quadrature_length(reach, 0.0) > reach  # the impulse has no alias on n = -reach .. reach


@pytest.mark.parametrize("k", [1, 3, 7, 15])
def test_discrete_profiles_gradcheck(k):
    s = torch.tensor([1e-4, 0.5, 2.25, 10.0, 100.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: discrete_gaussian_profiles(k, v), (s,))


def test_heat_equation_gradient_equals_finite_differences_of_ive():
    k, c = 9, 4
    s = torch.tensor([0.02, 0.5, 2.25, 10.0, 100.0], dtype=torch.float64, requires_grad=True)
    weights = np.random.default_rng(0).normal(size=(len(s), k))
    (discrete_gaussian_profiles(k, s) * torch.from_numpy(weights)).sum().backward()
    value, step = s.detach().numpy(), 1e-5 * s.detach().numpy()
    n = np.abs(np.arange(-c, c + 1))[None, :]
    slope = (ive(n, (value + step)[:, None]) - ive(n, (value - step)[:, None])) / (2 * step[:, None])
    assert np.allclose(s.grad.numpy(), (slope * weights).sum(axis=1), rtol=1e-8, atol=1e-12)


def test_gradient_at_zero_scale_is_the_second_difference_of_the_impulse():
    s = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    jacobian = torch.autograd.functional.jacobian(lambda v: discrete_gaussian_profiles(5, v), s)
    assert jacobian[0, :, 0].tolist() == [0.0, 0.5, -1.0, 0.5, 0.0]


def test_float32_gradient_matches_float64():
    s64 = torch.tensor([0.3, 1.7, 6.0], dtype=torch.float64, requires_grad=True)
    s32 = s64.detach().float().requires_grad_()
    weights = torch.linspace(-1, 1, 3 * 7).reshape(3, 7)
    (discrete_gaussian_profiles(7, s64) * weights.double()).sum().backward()
    (discrete_gaussian_profiles(7, s32) * weights).sum().backward()
    assert s32.grad.dtype == torch.float32
    assert torch.allclose(s32.grad.double(), s64.grad, rtol=1e-5, atol=1e-7)


def test_sampled_profiles_are_the_normalised_sampled_gaussian():
    sigma = torch.tensor([0.2, 1.0, 2.5], dtype=torch.float64, requires_grad=True)
    n = np.arange(-3, 4)
    expected = np.exp(-(n[None, :] ** 2) / (2 * sigma.detach().numpy()[:, None] ** 2))
    profiles = sampled_gaussian_profiles(7, sigma)
    assert np.allclose(profiles.detach().numpy(), expected / expected.sum(axis=1, keepdims=True), rtol=1e-14)
    assert not np.allclose(
        profiles.detach().numpy(), reference_profiles(7, sigma.detach().numpy() ** 2), atol=1e-2
    )
    assert torch.autograd.gradcheck(lambda v: sampled_gaussian_profiles(7, v), (sigma,))


@pytest.mark.parametrize(
    "values, message",
    [
        ([-0.1, 1.0], "finite and >= 0"),
        ([float("nan")], "finite and >= 0"),
        ([float("inf")], "finite and >= 0"),
        ([[1.0]], "1-D floating-point"),
    ],
)
def test_bad_scales_are_rejected(values, message):
    with pytest.raises(ValueError, match=message):
        discrete_gaussian_profiles(5, torch.tensor(values, dtype=torch.float64))
    with pytest.raises(ValueError, match=message):
        sampled_gaussian_profiles(5, torch.tensor(values, dtype=torch.float64))


def test_bad_sizes_and_non_positive_sampled_sigma_are_rejected():
    with pytest.raises(ValueError, match="odd positive"):
        discrete_gaussian_profiles(6, torch.ones(2))
    with pytest.raises(ValueError, match="odd positive"):
        sampled_gaussian_profiles(4, torch.ones(2))
    with pytest.raises(ValueError, match="1-D floating-point"):
        discrete_gaussian_profiles(5, torch.ones(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="> 0"):
        sampled_gaussian_profiles(5, torch.tensor([0.0, 1.0]))


# --- the one implementation of the templates, numpy and torch ---------------------------------------


def old_templates(type_name, k, sigma_x, sigma_y, alpha):
    """The formulas of templates.py before the refactor (correlate1d + row reversal), as a reference."""
    smooth_x, smooth_y = gaussian_profiles(k, sigma_x), gaussian_profiles(k, sigma_y)
    if type_name in AXIS_OPERATORS:
        op_x, op_y = AXIS_OPERATORS[type_name]
        return (
            apply_difference(smooth_y, op_y)[..., ::-1, None] * apply_difference(smooth_x, op_x)[..., None, :]
        )
    second = apply_difference(smooth_x, "second")
    laplacian = (
        smooth_x[..., ::-1, None] * second[..., None, :] + second[..., ::-1, None] * smooth_x[..., None, :]
    )
    if type_name == "lap":
        return laplacian
    out = -np.asarray(alpha)[..., None, None] * laplacian
    out[..., k // 2, k // 2] += 1.0
    return out


@pytest.mark.parametrize("k", [1, 3, 7, 15])
@pytest.mark.parametrize("operator", ["identity", "central", "forward", "backward", "second"])
def test_difference_matrix_is_the_map_of_apply_difference(k, operator):
    profiles = np.random.default_rng(k).normal(size=(4, k))
    matrix = difference_matrix(k, operator)
    assert matrix.shape == (k, k)
    assert np.allclose(profiles @ matrix.T, apply_difference(profiles, operator), rtol=0, atol=1e-15)
    if operator != "identity":  # mirror boundary: differences of a symmetric profile sum to zero
        assert abs((matrix @ (profiles[0] + profiles[0, ::-1])).sum()) < 1e-14


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_refactored_templates_equal_the_old_formulas(type_name):
    rng = np.random.default_rng(1)
    sigma_x, sigma_y = rng.uniform(0.01, 3, 20), rng.uniform(0.01, 3, 20)
    if type_name in ("lap", "id-lap"):
        sigma_y = sigma_x
    alpha = rng.uniform(0.05, 2, 20)
    for k in (3, 7, 15):
        new = idealized_templates(type_name, k, sigma_x, sigma_y, alpha=alpha)
        old = old_templates(type_name, k, sigma_x, sigma_y, alpha)
        assert np.allclose(new, old, rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("type_name", TYPE_NAMES)
def test_torch_templates_equal_the_numpy_templates(type_name):
    sigma_x = np.array([0.4, 1.0, 1.8])
    sigma_y = sigma_x if type_name in ("lap", "id-lap") else np.array([0.9, 0.6, 2.2])
    alpha = np.array([0.3, 0.8, 1.5])
    expected = idealized_templates(type_name, 7, sigma_x, sigma_y, alpha=alpha)
    p_x = discrete_gaussian_profiles(7, torch.tensor(sigma_x**2))
    p_y = discrete_gaussian_profiles(7, torch.tensor(sigma_y**2))
    out = templates_from_profiles(type_name, p_x, p_y, torch.tensor(alpha))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64
    assert np.allclose(out.numpy(), expected, rtol=0, atol=1e-14)
    numpy_out = templates_from_profiles(
        type_name, gaussian_profiles(7, sigma_x), gaussian_profiles(7, sigma_y), alpha
    )
    assert np.array_equal(numpy_out, expected)
    out32 = templates_from_profiles(type_name, p_x.float(), p_y.float(), alpha)
    assert out32.dtype == torch.float32 and np.allclose(out32.numpy(), expected, atol=1e-6)


def test_templates_from_profiles_rejects_bad_input():
    p = gaussian_profiles(5, 1.0)
    with pytest.raises(ValueError, match="unknown scale-space type"):
        templates_from_profiles("dz", p, p)
    with pytest.raises(ValueError, match="one odd length"):
        templates_from_profiles("dx", p, gaussian_profiles(7, 1.0))
    with pytest.raises(ValueError, match="one odd length"):
        templates_from_profiles("dx", np.ones(4), np.ones(4))
    with pytest.raises(ValueError, match="needs alpha"):
        templates_from_profiles("id-lap", torch.from_numpy(p), torch.from_numpy(p))
