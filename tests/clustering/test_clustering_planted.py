"""Autoencoder clustering of kernels (methods.md section 4): planted mixtures are recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from masterkey.clustering.autoencoder import (
    decode,
    encode,
    load_autoencoders,
    save_autoencoders,
    train_autoencoder,
)
from masterkey.clustering.clusters import (
    classification_table,
    cluster_pool,
    kmeans_assign,
    prototype_types,
)
from masterkey.clustering.pool import (
    latents_for_pool,
    latents_table,
    normalise_kernels,
    pool_arrays,
    pool_models,
)
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.errors import ConfigError, StaleFileError
from masterkey.kernels.similarity import centre_norm
from masterkey.kernels.store import save_kernels
from masterkey.scalespace.templates import idealized_templates

TYPES = ["T", "dx", "dy", "dxx", "dyy", "dxy"]
THRESHOLD = 0.9
# (model, layer, stage, kernels, per-entry noise added to the unit-norm templates): the cosine of a
# noisy copy with its template is about 1 / sqrt(1 + 48 noise^2), so the share of classified kernels
# at THRESHOLD falls from ~1 to ~0.2 over these noise levels.
LAYERS = [
    ("m1", "stages.0.blocks.0.conv_dw", 0, 120, 0.04),
    ("m1", "stages.1.blocks.0.conv_dw", 1, 120, 0.065),
    ("m2", "stages.0.blocks.0.conv_dw", 0, 120, 0.07),
    ("m2", "stages.1.blocks.0.conv_dw", 1, 120, 0.08),
]
TRAIN = {"hidden_widths": (128, 64), "batch_size": 32, "learning_rate": 3e-3}


def templates() -> np.ndarray:
    return centre_norm(np.stack([idealized_templates(t, 7, 1.0, 1.0) for t in TYPES]))


def planted_mixture(seed: int = 0):
    """Per model: (raw kernels with random amplitude and offset, index); plus the true type of each."""
    rng = np.random.default_rng(seed)
    base = templates()
    per_model, truth = {}, {}
    for model, layer, stage, n, noise in LAYERS:
        types = np.arange(n) % len(TYPES)
        noisy = base[types] + rng.normal(0.0, noise, size=(n, 7, 7))
        kernels = noisy * rng.uniform(0.05, 0.5, size=(n, 1, 1)) + rng.normal(0, 0.01, size=(n, 1, 1))
        arrays, index = per_model.get(model, (np.zeros((0, 7, 7)), None))
        offset = len(arrays)
        table = pd.DataFrame(
            {
                "model": model,
                "layer": layer,
                "stage": stage,
                "block": 0,
                "channel": np.arange(n),
                "kernel_size": "7x7",
                "row": offset + np.arange(n),
            }
        )
        per_model[model] = (
            np.concatenate([arrays, kernels]).astype(np.float32),
            table if index is None else pd.concat([index, table], ignore_index=True),
        )
        truth.setdefault(model, []).append(types)
    truth = np.concatenate([np.concatenate(truth[m]) for m in per_model])
    return per_model, truth


def expected_shares(threshold: float = THRESHOLD, replicates: int = 300) -> dict[float, float]:
    """Share of classified kernels per noise level that the planted noise implies (simulated).

    A cluster of the planted mixture holds, for one type, the noisy copies of all layers; its
    prototype is the centre-normed mean of its members (the kernel itself included).  This is
    simulated for ``replicates`` independent clusters of the same composition.
    """
    rng = np.random.default_rng(123)
    noises = np.array([noise for *_, noise in LAYERS])
    per_layer = LAYERS[0][3] // len(TYPES)
    levels = np.repeat(noises, per_layer)
    hits = np.zeros(len(noises))
    for _ in range(replicates):
        template = templates()[rng.integers(0, len(TYPES))]
        members = centre_norm(template + rng.normal(0, 1, (len(levels), 7, 7)) * levels[:, None, None])
        prototype = centre_norm(members.mean(axis=0, keepdims=True))[0]
        classified = np.einsum("nij,ij->n", members, prototype) >= threshold
        hits += classified.reshape(len(noises), per_layer).sum(axis=1)
    return dict(zip(noises.tolist(), (hits / (replicates * per_layer)).tolist(), strict=True))


@pytest.fixture(scope="module")
def planted():
    per_model, truth = planted_mixture()
    pool = pool_arrays(per_model, kernel_size=7, seed=0)
    # restarts=1: one autoencoder, as the former default; epochs are raised to min_steps steps
    settings = ClusteringSettings(
        k=len(TYPES), threshold=THRESHOLD, kmeans_n_init=4, min_steps=2500, restarts=1, latent_dim=1, **TRAIN
    )
    fit = pool.kernels[pool.fit_mask]
    model, history = train_autoencoder(fit, settings, seed=0, progress=False)
    assert history["epoch"].max() == settings.epochs_for(len(fit))
    latents = encode(model, pool.kernels)
    result = cluster_pool(pool, latents, settings, seed=0, decode=lambda z: decode(model, z), progress=None)
    return {"pool": pool, "truth": truth, "model": model, "history": history, "result": result}


def test_planted_types_are_recovered(planted):
    result, truth = planted["result"], planted["truth"]
    labels = result.assignments["cluster"].to_numpy()
    ari = adjusted_rand_score(truth, labels)
    assert ari >= 0.9, f"adjusted Rand index {ari:.3f} on the planted mixture"
    assert adjusted_rand_score(truth, result.assignments["raw_cluster"].to_numpy()) >= 0.9
    # the loss fell from about 1 (random decoder) to about the noise floor 1 - cos
    assert planted["history"]["final_loss"].iloc[0] < 0.15


def test_prototypes_and_labels_match_planted_types(planted):
    result, truth = planted["result"], planted["truth"]
    labels = result.assignments["cluster"].to_numpy()
    base = templates().reshape(len(TYPES), -1)
    for cluster in range(len(TYPES)):
        members = truth[labels == cluster]
        majority = np.bincount(members, minlength=len(TYPES)).argmax()
        assert result.clusters.loc[cluster, "type"] == TYPES[majority]
        assert result.prototypes[cluster].ravel() @ base[majority] > 0.99
        assert result.decoded[cluster].ravel() @ base[majority] > 0.95
        assert result.clusters.loc[cluster, "type_cosine"] > 0.99
    # clusters are numbered along the latent axis
    assert np.all(np.diff(result.centroids[:, 0]) > 0)


def test_classified_share_matches_planted_noise(planted):
    table = classification_table(planted["result"].assignments)
    assert set(table["level"]) == {"model", "stage", "layer"}
    expected = expected_shares()
    assert expected[0.04] > 0.99 and 0.1 < expected[0.08] < 0.3  # the layers span the threshold
    for model, layer, stage, n, noise in LAYERS:
        row = table[(table["level"] == "layer") & (table["model"] == model) & (table["layer"] == layer)]
        assert len(row) == 1 and int(row["stage"].iloc[0]) == stage and row["kernels"].iloc[0] == n
        # binomial standard deviation with 120 kernels is at most 0.046
        assert row["share"].iloc[0] == pytest.approx(expected[noise], abs=0.1)
    for model in ("m1", "m2"):
        wanted = np.mean([expected[noise] for m, *_, noise in LAYERS if m == model])
        share = table[(table["level"] == "model") & (table["model"] == model)]["share"].iloc[0]
        assert share == pytest.approx(wanted, abs=0.07)
        stages = table[(table["level"] == "stage") & (table["model"] == model)]
        assert list(stages["stage"]) == [0, 1] and stages["kernels"].sum() == 240
    # recomputed at another threshold, every kernel of the least noisy layer stays classified
    loose = classification_table(planted["result"].assignments, threshold=0.5)
    assert (loose[loose["level"] == "model"]["share"] == 1.0).all()


def test_rerun_is_bitwise_identical():
    per_model, _ = planted_mixture(seed=1)
    pool = pool_arrays(per_model, seed=3, max_per_model=200)
    settings = ClusteringSettings(
        k=4, kmeans_n_init=2, raw_kmeans_max_kernels=150, epochs=2, min_steps=0, batch_size=64, restarts=2
    )
    runs = []
    for _ in range(2):
        model, history = train_autoencoder(pool.kernels[pool.fit_mask], settings, seed=7, progress=False)
        latents = encode(model, pool.kernels)
        result = cluster_pool(
            pool, latents, settings, seed=7, decode=lambda z, m=model: decode(m, z), progress=None
        )
        runs.append((model.state_dict(), history, latents, result))
    (s1, h1, z1, r1), (s2, h2, z2, r2) = runs
    assert all(torch.equal(s1[key], s2[key]) for key in s1)
    assert np.array_equal(h1["loss"], h2["loss"])
    assert list(h1["epoch"].unique()) == [1, 2]  # settings.epochs, min_steps 0 adds none
    # restarts: the kept model is the one with the lowest reconstruction loss
    finals = h1.groupby("restart")["final_loss"].first()
    assert len(finals) == 2 and h1[h1["selected"]]["restart"].iloc[0] == finals.idxmin()
    assert np.array_equal(z1, z2)
    pd.testing.assert_frame_equal(r1.assignments, r2.assignments)
    assert np.array_equal(r1.prototypes, r2.prototypes) and np.array_equal(r1.decoded, r2.decoded)
    # the fitting sample respects the cap and is seeded
    assert (pool.counts["fit"] <= 200).all() and pool.fit_mask.sum() == 400
    again = pool_arrays(per_model, seed=3, max_per_model=200)
    assert np.array_equal(again.fit_mask, pool.fit_mask)
    assert not np.array_equal(pool_arrays(per_model, seed=4, max_per_model=200).fit_mask, pool.fit_mask)


def test_autoencoder_round_trip(tmp_path):
    per_model, _ = planted_mixture(seed=2)
    pool = pool_arrays(per_model)
    settings = ClusteringSettings(epochs=1, min_steps=0, batch_size=50, restarts=1)
    model, history = train_autoencoder(pool.kernels[:100], settings, seed=0, progress=False)
    path = tmp_path / "ae.pt"
    small, _ = train_autoencoder(pool.kernels[:100, 2:5, 2:5], settings, seed=1, progress=False)
    save_autoencoders({"3x3": small, "7x7": model}, path, history, extra={"seed": 0})
    save_autoencoders({"3x3": small, "7x7": model}, tmp_path / "again.pt", history, extra={"seed": 0})
    assert path.read_bytes() == (tmp_path / "again.pt").read_bytes()
    models, payload = load_autoencoders(path, keys=["7x7", "3x3"])
    loaded = models["7x7"]
    assert payload["extra"] == {"seed": 0} and payload["history"]["epoch"] == [1]
    assert list(models) == ["3x3", "7x7"] and models["3x3"].kernel_size == 3
    with pytest.raises(StaleFileError, match="holds autoencoders for 3x3, 7x7, not for 5x5"):
        load_autoencoders(path, keys=["5x5"])
    assert np.array_equal(encode(model, pool.kernels), encode(loaded, pool.kernels))
    z = encode(loaded, pool.kernels)
    assert z.shape == (len(pool), 1) and (z >= 0).all() and (z <= 1).all()
    decoded = decode(loaded, np.array([[0.0], [0.5], [1.0]]))
    flat = decoded.reshape(3, -1)
    assert np.allclose(flat.mean(axis=1), 0, atol=1e-6) and np.allclose((flat**2).sum(axis=1), 1, atol=1e-5)
    (tmp_path / "bad.pt").write_text("not a model")
    with pytest.raises(StaleFileError, match="unreadable") as err:
        load_autoencoders(tmp_path / "bad.pt")
    assert err.value.path == tmp_path / "bad.pt"
    with pytest.raises(StaleFileError, match="does not exist") as err:
        load_autoencoders(tmp_path / "missing.pt")
    assert err.value.path == tmp_path / "missing.pt"


def test_autoencoder_rejects_bad_input():
    settings = ClusteringSettings(epochs=1, min_steps=0, restarts=1)
    with pytest.raises(ValueError, match="no kernels"):
        train_autoencoder(np.zeros((0, 7, 7), np.float32), settings, progress=False)
    with pytest.raises(ValueError, match=r"shape \(N, k, k\)"):
        train_autoencoder(np.zeros((4, 7, 5), np.float32), settings, progress=False)
    bad = templates().astype(np.float32)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_autoencoder(bad, settings, progress=False)


def test_pooling_drops_and_counts_near_zero_kernels(tmp_path):
    per_model, _ = planted_mixture(seed=3)
    arrays, index = per_model["m1"]
    arrays = arrays.copy()
    arrays[:5] = 1e-5  # near zero
    arrays[5] = 0.3  # constant
    index = index.assign(l2_norm=1.0, mean=0.0)  # the columns of a kernel index
    npz, parquet = tmp_path / "m1.npz", tmp_path / "m1.parquet"
    save_kernels({"7x7": arrays, "3x3": np.ones((2, 3, 3), np.float32)}, index, npz, parquet)
    settings = ClusteringSettings(kernel_sizes=(7,), max_kernels_per_model=None)
    pool = pool_models(["m1"], [npz], [parquet], settings, seed=0)["7x7"]
    counts = pool.counts.iloc[0]
    assert counts["kernels"] == 240 and counts["near_zero"] == 6 and counts["pooled"] == 234
    assert len(pool) == 234 and pool.index["channel"].iloc[0] == 6
    flat = pool.kernels.reshape(len(pool), -1)
    assert np.allclose(flat.mean(axis=1), 0, atol=1e-6) and np.allclose(
        np.linalg.norm(flat, axis=1), 1, atol=1e-5
    )
    # capped: the settings' max_kernels_per_model limits the fitting sample only
    capped = pool_models(["m1"], [npz], [parquet], ClusteringSettings(max_kernels_per_model=100), seed=0)
    assert list(capped) == ["7x7"]  # the 3x3 array is not in the index: not a size of the model
    capped = capped["7x7"]
    assert len(capped) == 234 and capped.fit_mask.sum() == 100
    uncapped = pool_models(
        ["m1"], [npz], [parquet], ClusteringSettings(max_kernels_per_model=100), seed=0, capped=False
    )
    assert uncapped["7x7"].fit_mask.all()
    with pytest.raises(ConfigError, match="no model has 5x5 kernels; the models have 7x7") as err:
        pool_models(["m1"], [npz], [parquet], ClusteringSettings(kernel_sizes=(5,)), seed=0)
    assert err.value.key == "clustering.kernel_sizes"
    with pytest.raises(StaleFileError) as err:
        pool_models(["m1"], [tmp_path / "missing.npz"], [parquet], settings, seed=0)
    assert err.value.path == tmp_path / "missing.npz"


def test_flip_sign_option():
    x = templates()
    out, keep = normalise_kernels(np.concatenate([x, -x]), flip_sign=True)
    assert keep.all() and np.allclose(out[: len(x)], out[len(x) :])
    out, _ = normalise_kernels(np.concatenate([x, -x]), flip_sign=False)
    assert np.allclose(out[: len(x)], -out[len(x) :])


def test_bad_inputs_give_user_errors(tmp_path):
    x = templates().copy()
    x[0, 3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        normalise_kernels(x)
    rows = range(len(x))
    index = pd.DataFrame({"model": "m", "layer": "l", "stage": 0, "block": 0, "channel": rows,
                          "kernel_size": "7x7", "row": rows, "l2_norm": 1.0, "mean": 0.0})  # fmt: skip
    save_kernels({"7x7": x.astype(np.float32)}, index, tmp_path / "m.npz", tmp_path / "m.parquet")
    with pytest.raises(StaleFileError, match="NaN") as err:  # the file is named, not just the kernel
        pool_models(["m"], [tmp_path / "m.npz"], [tmp_path / "m.parquet"], ClusteringSettings(), 0)
    assert err.value.path == tmp_path / "m.npz"
    with pytest.raises(ValueError, match="shape"):
        normalise_kernels(np.zeros((2, 7, 5)))
    with pytest.raises(ConfigError, match="no 7x7 kernels") as err:
        pool_arrays({"m": (None, pd.DataFrame({"kernel_size": ["3x3"], "row": [0]}))})
    assert err.value.key == "clustering.kernel_sizes"
    per_model, _ = planted_mixture()
    pool = pool_arrays(per_model)
    with pytest.raises(ValueError, match="threshold"):
        classification_table(pd.DataFrame({"cosine": [0.1], "raw_cosine": [0.1]}), threshold=2)
    latents = np.linspace(0, 1, len(pool), dtype=np.float32)[:, None]
    good = tmp_path / "latents.parquet"
    latents_table(pool, latents).to_parquet(good, index=False)
    assert np.array_equal(latents_for_pool(pool, good), latents)
    stale = tmp_path / "stale.parquet"
    latents_table(pool, latents).iloc[:-1].to_parquet(stale, index=False)
    with pytest.raises(StaleFileError, match="does not match the pooled 7x7 kernels") as err:
        latents_for_pool(pool, stale)
    assert err.value.path == stale
    reordered = tmp_path / "reordered.parquet"
    latents_table(pool, latents).iloc[::-1].to_parquet(reordered, index=False)
    with pytest.raises(StaleFileError, match="does not match the pooled 7x7 kernels"):
        latents_for_pool(pool, reordered)
    with pytest.raises(StaleFileError) as err:
        latents_for_pool(pool, tmp_path / "missing.parquet")
    assert err.value.path == tmp_path / "missing.parquet"


def test_kmeans_ids_are_canonical():
    rng = np.random.default_rng(0)
    centres = np.array([0.9, 0.1, 0.5])
    z = (centres[rng.integers(0, 3, 300)] + rng.normal(0, 0.01, 300))[:, None]
    labels, centroids = kmeans_assign(z, 3, seed=0, n_init=2)
    assert np.allclose(centroids[:, 0], [0.1, 0.5, 0.9], atol=0.01)
    assert np.array_equal(labels, np.searchsorted([0.3, 0.7], z[:, 0]))


def test_kmeans_with_more_clusters_than_kernels_names_the_key():
    with pytest.raises(ConfigError, match="k=5") as err:
        kmeans_assign(np.zeros((4, 1), np.float32), 5)
    assert err.value.key == "clustering.k"


def test_prototype_types_uses_idealized_types():
    labels, abs_cosine = prototype_types(templates())
    assert labels == TYPES
    assert np.allclose(abs_cosine, 1.0, atol=1e-6)


def test_held_out_models_are_classified_but_shape_nothing():
    """A held-out model (a NIFF network of [D]) is pooled, encoded and assigned, but the fitting
    sample, the prototypes and the master key selection are those of the other models alone."""
    from masterkey.clustering.master_keys import select_master_keys

    per_model, _ = planted_mixture(seed=1)
    names = list(per_model)
    settings = ClusteringSettings(k=4, kmeans_n_init=2, raw_kmeans_max_kernels=150, epochs=2, min_steps=0,
                                  batch_size=64, restarts=1)  # fmt: skip
    held = pool_arrays(per_model, seed=3, held_out=[names[-1]])
    alone = pool_arrays({m: per_model[m] for m in names[:-1]}, seed=3)
    assert len(held) > len(alone) and (held.counts.set_index("model")["fit"][names[-1]] == 0)
    assert np.array_equal(held.kernels[held.fit_mask], alone.kernels[alone.fit_mask])
    assert np.array_equal(held.kernels[held.reference_mask], alone.kernels)
    model, _ = train_autoencoder(held.kernels[held.fit_mask], settings, seed=7, progress=False)
    runs = [cluster_pool(p, encode(model, p.kernels), settings, seed=7, progress=None) for p in (held, alone)]
    np.testing.assert_array_equal(runs[0].prototypes, runs[1].prototypes)
    assert set(runs[0].assignments["model"]) == set(names)  # the held-out model is classified
    candidates = alone.kernels[:20]
    keys = [select_master_keys(p.kernels[p.reference_mask], candidates, 3).keys for p in (held, alone)]
    np.testing.assert_array_equal(*keys)
