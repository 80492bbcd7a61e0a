"""Every odd square kernel size is clustered on its own (methods.md section 4.2): planted 3x3 and 7x7
families are each recovered by their own pool, through the rules' scripts; sizes are resolved
and checked; a size's results do not depend on the other sizes; only 7x7 keys meet the published 8.
"""

from __future__ import annotations

import dataclasses
import runpy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from snakemake.iocontainers import Namedlist

from conftest import REPO_ROOT
from masterkey.clustering.autoencoder import load_autoencoders, train_autoencoders
from masterkey.clustering.master_keys import (
    MasterKeys,
    load_master_keys,
    published_comparison,
    select_master_keys_per_size,
)
from masterkey.clustering.pool import pool_models, resolve_kernel_sizes
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.errors import ConfigError, StaleFileError
from masterkey.kernels.similarity import centre_norm
from masterkey.kernels.store import load_kernels, save_kernels
from masterkey.scalespace.templates import idealized_templates

FAMILIES = {3: ("T", "dx", "dy"), 7: ("lap", "dx", "dxy")}
"""The planted types of each size (3 per size, so k = 3 and K = 3)."""
# (model, kernel size, kernels); model "a" also has a band layer, which no pool takes
LAYERS = [("a", 3, 90), ("a", 7, 90), ("b", 7, 90)]
SETTINGS = ClusteringSettings(
    k=3,
    hidden_widths=(32, 16),
    batch_size=32,
    min_steps=300,
    epochs=1,
    restarts=3,
    kmeans_n_init=2,
    num_master_keys=3,
)


def family(k: int) -> np.ndarray:
    sigma = 0.8 if k == 3 else 1.0
    return centre_norm(np.stack([idealized_templates(t, k, sigma, sigma) for t in FAMILIES[k]]))


def write_planted(directory, seed: int = 0) -> dict[str, np.ndarray]:
    """Kernel files ``<model>.npz/.parquet`` of the planted models; returns the true type per pooled
    kernel of each size (pool order: model, layer, channel)."""
    rng = np.random.default_rng(seed)
    truth, per_model = {}, {}
    for stage, (model, k, n) in enumerate(LAYERS):
        types = np.arange(n) % len(FAMILIES[k])
        kernels = (family(k)[types] + rng.normal(0, 0.05, (n, k, k))) * rng.uniform(0.1, 1.0, (n, 1, 1))
        arrays, rows = per_model.setdefault(model, ({}, []))
        key = f"{k}x{k}"
        start = len(arrays.get(key, ()))
        arrays[key] = np.concatenate([arrays.get(key, np.zeros((0, k, k))), kernels]).astype(np.float32)
        rows.append(
            pd.DataFrame(
                {
                    "model": model,
                    "layer": f"stages.{stage}.blocks.0.conv_dw",
                    "stage": stage,
                    "block": 0,
                    "channel": np.arange(n),
                    "kernel_size": key,
                    "row": start + np.arange(n),
                    "l2_norm": 1.0,
                    "mean": 0.0,
                }
            )
        )
        truth[key] = np.concatenate([truth.get(key, np.zeros(0, int)), types])
    arrays, rows = per_model["a"]
    arrays["1x5"] = rng.normal(size=(6, 1, 5)).astype(np.float32)
    rows.append(
        pd.DataFrame(
            {
                "model": "a",
                "layer": "band",
                "stage": 9,
                "block": 0,
                "channel": np.arange(6),
                "kernel_size": "1x5",
                "row": np.arange(6),
                "l2_norm": 1.0,
                "mean": 0.0,
            }
        )
    )
    for model, (arrays, rows) in per_model.items():
        save_kernels(
            arrays,
            pd.concat(rows, ignore_index=True),
            directory / f"{model}.npz",
            directory / f"{model}.parquet",
        )
    return truth


def kernel_inputs(directory) -> dict:
    return {
        "kernels": [str(directory / f"{m}.npz") for m in "ab"],
        "indices": [str(directory / f"{m}.parquet") for m in "ab"],
    }


def run_script(name: str, directory, input: dict, output: dict, settings=SETTINGS, **wildcards) -> str:
    """Run ``scripts/clustering/<name>.py`` as Snakemake would (a ``snakemake`` object, its log);
    returns the log. A failed rule (exit status 1) fails the test with its log."""
    log = directory / "logs" / f"{name}.log"
    smk = SimpleNamespace(
        rule=name,
        threads=1,
        log=[str(log)],
        wildcards=Namedlist(fromdict=wildcards),
        input=Namedlist(fromdict=input),
        output=Namedlist(fromdict=output),
        params=Namedlist(
            fromdict={"models": ["a", "b"], "held_out": [], "settings": settings.as_dict(), "seed": 0}
        ),
    )
    threads = torch.get_num_threads()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("OMP_NUM_THREADS", "1")
            runpy.run_path(str(REPO_ROOT / "scripts" / "clustering" / f"{name}.py"), {"snakemake": smk})
    except SystemExit:
        pytest.fail(f"rule {name} failed:\n{log.read_text()}")
    finally:
        torch.set_num_threads(threads)
    return log.read_text()


def clustering_paths(directory) -> dict:
    c = directory / "clustering"
    return {
        "model": c / "autoencoder.pt",
        "latents": c / "latents.parquet",
        "history": c / "history.csv",
        "pool": c / "pool.csv",
        "assignments": c / "assignments.parquet",
        "prototypes": c / "prototypes.npz",
        "decoded": c / "decoded.npz",
        "raw_prototypes": c / "raw_prototypes.npz",
        "clusters": c / "clusters.csv",
        "raw_clusters": c / "raw_clusters.csv",
        "classification": [c / f"classification.{e}" for e in ("csv", "md")],
        "master_keys": c / "master_keys_3.npz",
        "key_table": c / "master_keys_3.csv",
        "curve": c / "curve_3.csv",
        "comparison": [c / f"vs_published_3.{e}" for e in ("csv", "md", "tex")],
    }


def pick(paths: dict, *names: str, table: str | None = None) -> dict:
    """The named paths as strings; ``table``: the list of paths under that name, as ``table``."""
    picked = {name: str(paths[name]) for name in names}
    return picked | ({} if table is None else {"table": [str(p) for p in paths[table]]})


@pytest.fixture(scope="module")
def chain(tmp_path_factory, published_filters_path):
    """The rules train_autoencoder, cluster and select_master_keys run on the planted files."""
    directory = tmp_path_factory.mktemp("sizes")
    truth = write_planted(directory)
    inputs, paths = kernel_inputs(directory), clustering_paths(directory)
    logs = {
        "train": run_script(
            "train_autoencoder", directory, inputs, pick(paths, "model", "latents", "history", "pool")
        )
    }
    logs["cluster"] = run_script(
        "cluster",
        directory,
        inputs | pick(paths, "model", "latents"),
        pick(
            paths,
            "assignments",
            "prototypes",
            "decoded",
            "raw_prototypes",
            "clusters",
            "raw_clusters",
            table="classification",
        ),
    )
    logs["keys"] = run_script(
        "select_master_keys",
        directory,
        inputs | pick(paths, "model") | {"published": str(published_filters_path)},
        pick(paths, "master_keys", "key_table", "curve", table="comparison"),
        num_keys="3",
    )
    return SimpleNamespace(directory=directory, truth=truth, paths=paths, logs=logs)


def test_each_size_is_pooled_and_clustered_on_its_own(chain):
    paths = chain.paths
    pool = pd.read_csv(paths["pool"])
    assert pool[["model", "kernel_size", "pooled"]].values.tolist() == [
        ["a", "3x3", 90],
        ["b", "3x3", 0],
        ["a", "7x7", 90],
        ["b", "7x7", 90],
    ]  # the band kernels (1x5) are in no pool
    models, _ = load_autoencoders(paths["model"])
    assert {key: m.kernel_size for key, m in models.items()} == {"3x3": 3, "7x7": 7}
    assignments = pd.read_parquet(paths["assignments"])
    latents = pd.read_parquet(paths["latents"])
    for column in (
        "model",
        "layer",
        "stage",
        "block",
        "channel",
        "kernel_size",
        "cluster",
        "cosine",
        "classified",
    ):
        assert column in assignments, column
    assert (
        latents["kernel_size"].tolist() == assignments["kernel_size"].tolist() == ["3x3"] * 90 + ["7x7"] * 180
    )
    clusters = pd.read_csv(paths["clusters"])
    prototypes, decoded = load_kernels(paths["prototypes"]), load_kernels(paths["decoded"])
    for k, types in FAMILIES.items():
        key = f"{k}x{k}"
        part = assignments[assignments["kernel_size"] == key]
        # the raw k-means baseline of the size's own pool finds the planted types exactly
        assert adjusted_rand_score(chain.truth[key], part["raw_cluster"]) == 1.0
        assert prototypes[key].shape == decoded[key].shape == (3, k, k)
        # the latent clusters are labelled with the size's own planted types
        assert sorted(clusters[clusters["kernel_size"] == key]["type"]) == sorted(types)
        assert sorted(part["cluster"].unique()) == [0, 1, 2]
    table = pd.read_csv(paths["classification"][0])
    models_rows = table[table["level"] == "model"]
    assert models_rows[["model", "kernel_size", "kernels"]].values.tolist() == [
        ["a", "3x3", 90],
        ["a", "7x7", 90],
        ["b", "7x7", 90],
    ]
    assert set(table[table["level"] == "layer"]["kernel_size"]) == {"3x3", "7x7"}


def test_master_keys_per_size_recover_the_planted_families(chain):
    keys = load_master_keys(chain.paths["master_keys"], num_keys=3)
    assert {key: array.shape for key, array in keys.items()} == {"3x3": (3, 3, 3), "7x7": (3, 7, 7)}
    for k in FAMILIES:
        # each planted type has its own key (|cos| of unrelated types here: at most 0.25)
        cosine = np.abs(keys[f"{k}x{k}"].reshape(3, -1) @ family(k).reshape(3, -1).T)
        assert (cosine.max(axis=0) > 0.9).all() and len(set(cosine.argmax(axis=0))) == 3, (k, cosine.round(3))
    described = pd.read_csv(chain.paths["key_table"])
    assert described[["kernel_size", "key"]].values.tolist() == [
        [s, i] for s in ("3x3", "7x7") for i in (1, 2, 3)
    ]
    curve = pd.read_csv(chain.paths["curve"])
    assert curve.groupby("kernel_size")["size"].max().to_dict() == {"3x3": 50, "7x7": 50}
    with pytest.raises(StaleFileError, match="holds 3 3x3 master keys, expected 8"):
        load_master_keys(chain.paths["master_keys"], num_keys=8)


def test_only_7x7_keys_are_compared_with_the_published_8(chain):
    comparison = pd.read_csv(chain.paths["comparison"][0])
    assert comparison["kernel_size"].tolist() == ["7x7"] * 3
    assert comparison["closest_published"].between(1, 8).all()
    note = "published 8 are 7x7: no comparison for sizes 3x3"
    assert chain.logs["keys"].count(note) == 1
    assert note in chain.paths["comparison"][2].read_text()  # the caption of the LaTeX table


def test_3x3_only_master_keys_do_not_meet_the_published_filters(chain, published_filters_path, tmp_path):
    """The reported failure: kernel_sizes [3] (the EfficientNets' main size) crashed comparing 3x3
    keys with the 7x7 published filters. Now the table is a one-line note and the log says so."""
    settings = dataclasses.replace(SETTINGS, kernel_sizes=(3,))
    out = {
        "master_keys": tmp_path / "k.npz",
        "key_table": tmp_path / "k.csv",
        "curve": tmp_path / "c.csv",
        "table": [str(tmp_path / "t.csv"), str(tmp_path / "t.md")],
    }
    log = run_script(
        "select_master_keys",
        tmp_path,
        kernel_inputs(chain.directory)
        | {"model": str(chain.paths["model"]), "published": str(published_filters_path)},
        {k: v if isinstance(v, list) else str(v) for k, v in out.items()},
        settings,
        num_keys="3",
    )
    assert "published 8 are 7x7: no comparison for sizes 3x3" in log and "finished" in log
    assert pd.read_csv(tmp_path / "t.csv").columns.tolist() == ["note"]
    assert list(load_master_keys(out["master_keys"])) == ["3x3"]
    # the 3x3 keys are those of the run with every size: sizes do not interact
    np.testing.assert_array_equal(
        load_master_keys(out["master_keys"])["3x3"], load_master_keys(chain.paths["master_keys"])["3x3"]
    )


def test_figures_of_the_per_size_arrays(chain):
    """The figure rules that read the per-size .npz files (the plot functions: tests/plotting)."""
    paths, directory = chain.paths, chain.directory
    figures = directory / "figures"
    jobs = [
        ("figure_cluster_prototypes", pick(paths, "prototypes", "decoded", "clusters"), {}),
        (
            "figure_master_keys",
            pick(paths, "master_keys", "key_table") | {"comparison": str(paths["comparison"][0])},
            {"num_keys": "3"},
        ),
    ]
    for name, inputs, wildcards in jobs:
        output = {"png": str(figures / f"{name}.png"), "pdf": str(figures / f"{name}.pdf")}
        run_script(name, directory, inputs, output, **wildcards)
        assert (figures / f"{name}.png").stat().st_size > 10_000, name


def test_kernel_sizes_are_resolved_and_checked(tmp_path):
    write_planted(tmp_path)
    inputs = kernel_inputs(tmp_path)
    assert resolve_kernel_sizes(None, [7, 3]) == [3, 7]
    pools = pool_models(["a", "b"], *inputs.values(), ClusteringSettings(kernel_sizes=(7,)), seed=0)
    assert list(pools) == ["7x7"] and len(pools["7x7"]) == 180
    with pytest.raises(ConfigError, match=r"no model has 5x5 kernels; the models have 3x3, 7x7") as err:
        pool_models(["a", "b"], *inputs.values(), ClusteringSettings(kernel_sizes=(5, 7)), seed=0)
    assert err.value.key == "clustering.kernel_sizes"
    # a size with fewer kernels than clusters: left out with a note when sizes are automatic, an error
    # when listed
    said = []
    pools = pool_models(["a", "b"], *inputs.values(), ClusteringSettings(k=100), seed=0, say=said.append)
    assert list(pools) == ["7x7"] and said == [
        "a: 6 of 186 kernels not clustered (no 2-D scale-space model): 1x5: 6",  # bands: counted
        "clustering: left out 3x3: 90 non-zero kernels to fit, fewer than clustering.k = 100",
    ]
    with pytest.raises(
        ConfigError, match="3x3: 90 non-zero kernels to fit, fewer than clustering.k = 100"
    ) as err:
        pool_models(["a", "b"], *inputs.values(), ClusteringSettings(k=100, kernel_sizes=(3, 7)), seed=0)
    assert err.value.key == "clustering.kernel_sizes"
    with pytest.raises(ConfigError, match="no kernel size can be clustered") as err:
        pool_models(["a", "b"], *inputs.values(), ClusteringSettings(k=1000), seed=0, say=None)
    assert err.value.key == "clustering.k"


def test_adding_a_size_changes_nothing_of_another_size(tmp_path):
    """Seeds come from (seed, size): the 7x7 autoencoder, fitting sample and keys are bitwise the same
    whether or not the 3x3 kernels are clustered too."""
    write_planted(tmp_path)
    inputs = kernel_inputs(tmp_path)
    settings = ClusteringSettings(
        k=3,
        hidden_widths=(16,),
        epochs=2,
        min_steps=0,
        restarts=2,
        batch_size=64,
        max_kernels_per_model=50,
        num_candidates=12,
        num_master_keys=4,
    )
    runs = []
    for sizes in ((7,), (3, 7)):
        chosen = dataclasses.replace(settings, kernel_sizes=sizes)
        pools = pool_models(["a", "b"], *inputs.values(), chosen, seed=5)
        models, history = train_autoencoders(pools, chosen, seed=5, progress=False)
        runs.append((pools, models, history, select_master_keys_per_size(pools, models, chosen, 4)))
    (p1, m1, h1, k1), (p2, m2, h2, k2) = runs
    assert list(k1) == ["7x7"] and list(k2) == ["3x3", "7x7"]
    np.testing.assert_array_equal(p1["7x7"].fit_mask, p2["7x7"].fit_mask)
    assert not p1["7x7"].fit_mask.all()  # the cap drew a seeded subset
    s1, s2 = m1["7x7"].state_dict(), m2["7x7"].state_dict()
    assert all(torch.equal(s1[name], s2[name]) for name in s1)
    same = h2[h2["kernel_size"] == "7x7"].reset_index(drop=True)
    pd.testing.assert_frame_equal(h1.drop(columns="seconds"), same.drop(columns="seconds"))
    np.testing.assert_array_equal(k1["7x7"].keys, k2["7x7"].keys)
    # ... while the 3x3 autoencoder was trained from a seed of its own
    assert h2.groupby("kernel_size")["seed"].first().nunique() == 2


def test_published_comparison_per_size(published_filters):
    def keys_of(k: int) -> MasterKeys:
        keys = centre_norm(np.random.default_rng(k).normal(size=(2, k, k))).astype(np.float32)
        return MasterKeys(
            keys, np.array([[0.1], [0.9]], np.float32), np.array([0, 5]), keys, keys[:, :1, 0], None
        )

    table, note = published_comparison({"3x3": keys_of(3), "5x5": keys_of(5)}, published_filters)
    assert note == "published 8 are 7x7: no comparison for sizes 3x3, 5x5"
    assert table.to_dict("list") == {"note": [note]}
    exact = keys_of(7)
    exact.keys = published_filters[[4, 1]]
    table, note = published_comparison({"3x3": keys_of(3), "7x7": exact}, published_filters)
    assert note == "published 8 are 7x7: no comparison for sizes 3x3"
    assert table["kernel_size"].tolist() == ["7x7", "7x7"] and table["closest_published"].tolist() == [5, 2]
    assert np.allclose(table["abs_cosine"], 1.0) and table["latent_0"].tolist() == pytest.approx([0.1, 0.9])
    table, note = published_comparison({"7x7": exact}, published_filters)
    assert note is None and len(table) == 2
