"""Coordinate conventions, centre norm, |cosine| best match and the affine fit of kernels."""

import numpy as np
import pytest

from masterkey.kernels.conventions import (
    centre_share,
    check_kernel_size,
    kernel_coordinates,
    pattern_response,
)
from masterkey.kernels.similarity import affine_fit, affine_map, best_match, centre_norm, max_abs_cosine


def test_coordinates_point_right_and_up():
    x, y = kernel_coordinates(3)
    np.testing.assert_array_equal(x, [[-1, 0, 1]] * 3)
    np.testing.assert_array_equal(y, [[1, 1, 1], [0, 0, 0], [-1, -1, -1]])  # top row has y = +c
    for bad in (0, 2, -3, 2.5):
        with pytest.raises(ValueError, match="odd positive"):
            check_kernel_size(bad)


def test_pattern_response_callable_and_array_agree():
    rng = np.random.default_rng(0)
    kernels = rng.normal(size=(4, 5, 5))
    x, y = kernel_coordinates(5)
    from_callable = pattern_response(kernels, lambda x, y: x * y + 2 * y)
    reflected = (-x) * (-y) + 2 * (-y)  # f(-p)
    np.testing.assert_allclose(pattern_response(kernels, reflected), from_callable)
    per_kernel = np.stack([reflected * (i + 1) for i in range(4)])
    np.testing.assert_allclose(pattern_response(kernels, per_kernel), from_callable * np.arange(1, 5))
    # convolution reflects the kernel: +0.5 in the top row (y = +1) responds -1 to the ramp f = y,
    # the same kernel stored bottom row first responds +1
    top_positive = np.array([[0, 0.5, 0], [0, 0, 0], [0, -0.5, 0]])
    assert pattern_response(top_positive, lambda x, y: y) == pytest.approx(-1.0)
    assert pattern_response(top_positive[::-1], lambda x, y: y) == pytest.approx(1.0)


def test_centre_share():
    kernel = np.zeros((1, 7, 7))
    kernel[0, 3, 3] = 1.0
    kernel[0, 0, 0] = 1.0
    assert centre_share(kernel).tolist() == [0.5]
    assert np.isnan(centre_share(np.zeros((1, 7, 7))))[0]


def test_centre_norm_and_cosine_are_sign_and_affine_free():
    rng = np.random.default_rng(1)
    h = rng.normal(size=(6, 7, 7))
    normed = centre_norm(h)
    np.testing.assert_allclose(normed.sum((1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose((normed**2).sum((1, 2)), 1)
    assert np.isnan(centre_norm(np.ones((1, 3, 3)))).all()
    np.testing.assert_allclose(max_abs_cosine(-2.0 * h + 5.0, h), 1.0)
    index, cosine = best_match(-0.5 * h[::-1] + 1.0, h)
    assert index.tolist() == list(range(6))[::-1]
    np.testing.assert_allclose(cosine, 1.0)
    index, cosine = best_match(np.ones((2, 7, 7)), h)  # constant kernels
    assert index.tolist() == [0, 0] and cosine.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="constant or non-finite"):
        best_match(h, np.concatenate([h, np.ones((1, 7, 7))]))


def test_affine_fit_is_least_squares_and_ranks_like_cosine():
    rng = np.random.default_rng(2)
    templates = rng.normal(size=(5, 7, 7))
    kernels = rng.normal(size=(5, 7, 7))
    a, b = affine_fit(templates, kernels)
    for i in range(5):  # the normal equations of min ||a t + b - h||
        design = np.stack([templates[i].ravel(), np.ones(49)], axis=1)
        expected, *_ = np.linalg.lstsq(design, kernels[i].ravel(), rcond=None)
        np.testing.assert_allclose([a[i], b[i]], expected, atol=1e-12)
    residual = ((affine_map(templates, kernels) - kernels) ** 2).sum((1, 2))
    centred = kernels - kernels.mean((1, 2), keepdims=True)
    cosine = (centre_norm(templates) * centre_norm(kernels)).sum((1, 2))
    np.testing.assert_allclose(residual, (centred**2).sum((1, 2)) * (1 - cosine**2))
    flat_a, flat_b = affine_fit(np.ones((1, 7, 7)), kernels[:1])
    assert flat_a[0] == 0 and flat_b[0] == pytest.approx(kernels[0].mean())
    with pytest.raises(ValueError, match="differ in shape"):
        affine_fit(templates[:, :5, :5], kernels)
