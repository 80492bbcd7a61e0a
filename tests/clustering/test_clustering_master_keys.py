"""Master key filter selection ([Q], methods.md section 4): planted candidate sets are recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from masterkey.clustering.autoencoder import KernelAutoencoder
from masterkey.clustering.master_keys import (
    approximation_errors,
    candidate_latents,
    compare_with_published,
    decode_candidates,
    greedy_selection,
    select_master_keys,
)
from masterkey.kernels.similarity import affine_fit, affine_map, best_match, centre_norm
from masterkey.scalespace.templates import idealized_templates

PLANTED = ["T", "dx", "dy", "dxy", "lap"]


def planted_candidates(seed: int = 0):
    """20 candidates: the 5 planted types at random positions, 5 blends of two of them, 10 random."""
    rng = np.random.default_rng(seed)
    planted = centre_norm(
        np.stack(
            [idealized_templates(t, 7, 1.0, 1.0) for t in PLANTED[:4]] + [idealized_templates("lap", 7, 1.0)]
        )
    )
    pairs = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 4)]
    blends = centre_norm(np.stack([0.6 * planted[i] + 0.4 * planted[j] for i, j in pairs]))
    random = centre_norm(rng.normal(size=(10, 7, 7)))
    candidates = np.concatenate([planted, blends, random])
    order = rng.permutation(len(candidates))
    positions = np.sort(np.flatnonzero(order < 5))  # where the planted ones end up
    return candidates[order].astype(np.float32), positions, planted


def planted_kernels(planted, n: int = 2000, noise: float = 0.08, seed: int = 1):
    """Noisy ``a x + b`` copies of the planted filters (free sign, amplitude and offset)."""
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(planted), n)
    a = rng.choice([-1.0, 1.0], n) * rng.uniform(0.05, 2.0, n)
    b = rng.normal(0, 0.1, n)
    noisy = planted[which] + rng.normal(0, noise, (n, 7, 7))
    return (a[:, None, None] * noisy + b[:, None, None]).astype(np.float32), which


def test_greedy_selection_returns_the_planted_set():
    candidates, positions, planted = planted_candidates()
    kernels, _ = planted_kernels(planted)
    result = select_master_keys(kernels, candidates, num_keys=5)
    assert np.array_equal(result.indices, positions)
    curve = result.selection.curve
    assert list(curve["size"]) == list(range(20, 0, -1))
    # error is flat while decoys are removed, then rises: the elbow sits at the planted size
    errors = curve.set_index("size")["mean_error"]
    assert errors[5] == pytest.approx(errors[20], abs=1e-3)
    steps_before = np.diff(errors.loc[20:5].to_numpy()).max()
    assert errors[4] - errors[5] > max(0.03, 10 * steps_before)
    assert (np.diff(curve["mean_error"]) >= -1e-7).all()
    # every kernel's best key is its own planted filter up to sign
    assert np.allclose(
        np.abs(
            np.sum(result.keys.reshape(5, -1)[:, None] * centre_norm(planted).reshape(1, 5, -1), axis=2)
        ).max(axis=1),
        1.0,
        atol=1e-5,
    )


def naive_greedy(errors: np.ndarray, num_keep: int) -> list[int]:
    """Reference: try every removal and recompute the mean of the row minima (slow, obvious)."""
    active = list(range(errors.shape[1]))
    removed = []
    while len(active) > num_keep:
        costs = [errors[:, [c for c in active if c != r]].min(axis=1).mean() for r in active]
        worst = active[int(np.argmin(costs))]
        active.remove(worst)
        removed.append(worst)
    return removed


def test_vectorised_greedy_matches_naive_reference():
    rng = np.random.default_rng(5)
    errors = rng.uniform(0, 1, size=(300, 12)).astype(np.float32)
    result = greedy_selection(errors, 1)
    assert list(result.order[:11]) == naive_greedy(errors.astype(np.float64), 1)
    assert result.curve["removed"].iloc[0] == -1
    assert result.curve["mean_error"].iloc[0] == pytest.approx(errors.min(axis=1).mean(), rel=1e-6)
    mid = greedy_selection(errors, 4)
    assert sorted(set(range(12)) - set(naive_greedy(errors.astype(np.float64), 4))) == list(mid.selected)


def test_errors_and_approximation():
    """The relative errors, and the best ``a x + b`` approximation (formerly ``approximate()``):
    :func:`best_match` picks the key, :func:`affine_fit` / :func:`affine_map` fit it."""
    rng = np.random.default_rng(2)
    candidates = centre_norm(rng.normal(size=(6, 7, 7)))
    kernels = rng.normal(size=(50, 7, 7))
    errors = approximation_errors(kernels, candidates)
    h = centre_norm(kernels).reshape(50, -1)
    x = candidates.reshape(6, -1)
    for n in range(0, 50, 7):  # explicit per-kernel reference
        for c in range(6):
            assert errors[n, c] == pytest.approx(1 - float(h[n] @ x[c]) ** 2, abs=1e-5)
    exact = 1.7 * candidates[[3, 1]] - 0.2
    everything = np.concatenate([exact, kernels])
    index, abs_cosine = best_match(everything, candidates)
    assert list(index[:2]) == [3, 1]
    a, b = affine_fit(candidates[index], everything)
    approximation = affine_map(candidates[index], everything)
    assert np.allclose(a[:2], 1.7 * np.linalg.norm(candidates[[3, 1]].reshape(2, -1), axis=1))
    assert np.allclose(b[:2], -0.2) and np.allclose(approximation[:2], exact)
    # relative error of the approximation: squared residual over the centred kernel's squared norm
    flat = everything.reshape(len(everything), -1)
    residual = ((approximation.reshape(len(flat), -1) - flat) ** 2).sum(axis=1)
    error = residual / ((flat - flat.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
    assert np.allclose(error[:2], 0, atol=1e-9)
    assert np.allclose(error[2:], errors.min(axis=1), atol=1e-5)
    assert np.allclose(1 - abs_cosine**2, error, atol=1e-9)  # the best |cos| is the least residual
    assert np.array_equal(index[2:], errors.argmin(axis=1))


def test_best_match_rejects_constant_references():
    with pytest.raises(ValueError, match="constant"):
        best_match(np.ones((2, 3, 3)), np.stack([np.eye(3), np.full((3, 3), 0.5)]))


def test_candidate_grid_and_decoding():
    grid = candidate_latents(50)
    assert grid.shape == (50, 1) and grid[0, 0] == 0 and grid[-1, 0] == 1
    assert np.allclose(np.diff(grid[:, 0]), 1 / 49)
    assert candidate_latents(9, latent_dim=2).shape == (9, 2)
    latents, kernels = decode_candidates(KernelAutoencoder(7, 1, (16,)), 10)
    flat = kernels.reshape(10, -1)
    assert latents.shape == (10, 1) and kernels.shape == (10, 7, 7)
    assert np.allclose(flat.mean(axis=1), 0, atol=1e-6) and np.allclose(
        np.linalg.norm(flat, axis=1), 1, atol=1e-5
    )


def test_rerun_identical_and_bad_inputs():
    candidates, _, planted = planted_candidates(seed=3)
    kernels, _ = planted_kernels(planted, n=500, seed=4)
    first = select_master_keys(kernels, candidates, 8)
    second = select_master_keys(kernels, candidates, 8)
    assert np.array_equal(first.keys, second.keys)
    pd.testing.assert_frame_equal(first.selection.curve, second.selection.curve)
    with pytest.raises(ValueError, match="keep"):
        greedy_selection(np.zeros((3, 4), np.float32), 5)
    bad = kernels.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        select_master_keys(bad, candidates, 4)


def test_comparison_with_published(published_filters):
    table = compare_with_published(-published_filters[[2, 6]], published_filters)
    assert list(table["closest_published"]) == [3, 7]
    assert np.allclose(table["abs_cosine"], 1.0) and list(table["sign"]) == [-1, -1]
    assert list(table["type"]) == ["dy-", "id-lap"]
    assert not any(column.startswith("latent_") for column in table.columns)


def test_comparison_carries_the_latent_codes(published_filters):
    latents = np.array([[0.25, 0.5], [0.75, 1.0]], np.float32)
    table = compare_with_published(published_filters[[0, 1]], published_filters, latents=latents)
    assert list(table.columns[:4]) == ["key", "latent_0", "latent_1", "type"]
    assert np.array_equal(table[["latent_0", "latent_1"]].to_numpy(), latents)
    assert list(table["closest_published"]) == [1, 2] and list(table["sign"]) == [1, 1]
