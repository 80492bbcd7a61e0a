"""Every figure function renders from small fixture inputs, in the project style, byte-identically.

The inputs are made by the library's own table builders from planted kernels (no workflow run):
the published-filter tables from noisy templates of the 8 published types, per-kernel fits of two
planted stages, a clustering of planted kernels with a stand-in latent code and decoder, the master
keys selected from it, and replacement tables from made-up accuracy records.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from functools import cache
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import masterkey.plotting.clustering as clustering_figures
import masterkey.plotting.niff as niff_figures
import masterkey.plotting.replacement as replacement_figures
import masterkey.plotting.scalespace as scalespace_figures
import masterkey.plotting.shiftinv as shiftinv_figures
from masterkey.plotting import style
from masterkey.scalespace.templates import idealized_templates

REPO = Path(__file__).resolve().parents[2]
PLOTTING = REPO / "src" / "masterkey" / "plotting"
PUBLISHED_TYPES = ["dy+", "dx-", "dy-", "dx+", "dx", "dy", "id-lap", "T"]
CLUSTER_TYPES = ["T", "dx", "dy", "dxx"]


def _template(kind: str, sx: float = 0.9, sy: float = 0.7) -> np.ndarray:
    if kind == "id-lap":
        return idealized_templates(kind, 7, 0.8, None, 0.5)
    if kind == "lap":
        return idealized_templates(kind, 7, sx, None)
    return idealized_templates(kind, 7, sx, sy)


@cache
def inputs() -> dict:
    """All fixture tables and arrays (built once per process; deterministic)."""
    from masterkey.clustering.clusters import cluster_pools
    from masterkey.clustering.master_keys import (
        candidate_latents,
        keys_table,
        published_comparison,
        select_master_keys,
    )
    from masterkey.clustering.pool import pool_arrays
    from masterkey.clustering.settings import ClusteringSettings
    from masterkey.kernels.similarity import centre_norm
    from masterkey.scalespace.models import explained_share, fit_model_kernels
    from masterkey.scalespace.published import published_fits_table, published_spread_table

    rng = np.random.default_rng(0)
    published = np.stack([_template(t) + rng.normal(0, 0.004, (7, 7)) for t in PUBLISHED_TYPES])
    published_fits = published_fits_table(published, types=PUBLISHED_TYPES)
    published_spread = published_spread_table(published, PUBLISHED_TYPES)

    # Per-kernel fits of a model: two stages of scaled, slightly noisy templates.
    kinds = ["T", "dx", "dy+", "dxx", "lap", "id-lap"]
    kernels = np.stack(
        [
            rng.uniform(0.5, 2) * _template(t, 0.7 + 0.2 * s, 0.9) + rng.normal(0, 0.01, (7, 7))
            for s in (0, 1)
            for t in kinds
        ]
    ).astype(np.float32)
    n = len(kernels)
    stage = np.repeat([0, 1], len(kinds))
    index = pd.DataFrame(
        {
            "model": "m",
            "layer": [f"stages.{s}.blocks.0.conv_dw" for s in stage],
            "stage": stage,
            "block": 0,
            "channel": np.arange(n) % len(kinds),
            "kernel_size": "7x7",
            "row": np.arange(n),
            "l2_norm": 1.0,
            "mean": 0.0,
        }
    )
    fits = fit_model_kernels({"7x7": kernels}, index, "m")

    # Clustering of two kernel sizes, each on its own: 7x7 kernels in two models (two layers each),
    # 3x3 kernels in m1 only (a third layer); planted types; the latent code is the type's position
    # on [0, 1] plus noise, the "decoder" returns the template nearest to a latent value.
    pools, latents, decoders, keys = {}, {}, {}, {}
    grid = candidate_latents(12)
    for k, models in ((3, ("m1",)), (7, ("m1", "m2"))):
        scale = 1.0 if k == 7 else 0.8
        base = centre_norm(np.stack([idealized_templates(t, k, scale) for t in CLUSTER_TYPES]))
        per_model, codes = {}, []
        for model in models:
            types = np.arange(48) % len(CLUSTER_TYPES)
            arrays = (base[types] + rng.normal(0, 0.05, (48, k, k))).astype(np.float32)
            layers = np.repeat([0, 1], 24) + (2 if k == 3 else 0)
            per_model[model] = (
                arrays,
                pd.DataFrame(
                    {
                        "model": model,
                        "layer": [f"stages.{s}.blocks.0.conv_dw" for s in layers],
                        "stage": layers,
                        "block": 0,
                        "channel": np.arange(48),
                        "kernel_size": f"{k}x{k}",
                        "row": np.arange(48),
                    }
                ),
            )
            codes.append(types / (len(CLUSTER_TYPES) - 1) + rng.normal(0, 0.02, 48))
        key = f"{k}x{k}"
        pools[key] = pool_arrays(per_model, kernel_size=k, seed=0)
        latents[key] = np.clip(np.concatenate(codes), 0, 1)[:, None].astype(np.float32)

        def decode(z, base=base):
            position = np.rint(np.asarray(z)[:, 0] * (len(CLUSTER_TYPES) - 1))
            return base[np.clip(position, 0, len(CLUSTER_TYPES) - 1).astype(int)]

        decoders[key] = decode
        candidates = decode(grid) + rng.normal(0, 0.01, (12, k, k))
        keys[key] = select_master_keys(pools[key].kernels, candidates, 3, grid)
    settings = ClusteringSettings(k=len(CLUSTER_TYPES), kmeans_n_init=2, raw_kmeans_max_kernels=96)
    results = cluster_pools(pools, latents, settings, seed=0, decoders=decoders, progress=None)
    clustering = {
        "prototypes": {key: r.prototypes for key, r in results.items()},
        "decoded": {key: r.decoded for key, r in results.items()},
        "clusters": pd.concat([r.clusters for r in results.values()], ignore_index=True),
        "assignments": pd.concat([r.assignments for r in results.values()], ignore_index=True),
    }
    comparison, _ = published_comparison(keys, published)
    curves = pd.concat([r.selection.curve.assign(kernel_size=key) for key, r in keys.items()])

    replacement, stages = replacement_tables()
    return {
        "published": published,
        "published_fits": published_fits,
        "published_spread": published_spread,
        "fits": fits,
        "share": explained_share(fits),
        "clustering": clustering,
        "keys": {key: r.keys for key, r in keys.items()},
        "key_table": keys_table(keys),
        "curves": curves,
        "comparison": comparison,
        "replacement": replacement,
        "stages": stages,
    }


def replacement_tables():
    """Made-up records: both models on a labelled set and on the natural set (fidelity only)."""
    from masterkey.replacement.tables import replacement_table, stages_table

    records, stage_records = [], []
    for model, learned in (("demo", 0.8), ("other", 0.7)):
        for dataset in ("heldout", "natural"):
            labelled = dataset == "heldout"

            def accuracy(top1, labelled=labelled):
                return {"top1": top1, "top5": min(1.0, top1 + 0.15)} if labelled else {}

            for i, variant in enumerate(["learned", "idealized-D1", "masterkey-8", "random", "shuffled"]):
                records.append(
                    {
                        "model": model,
                        "dataset": dataset,
                        "variant": variant,
                        **accuracy(learned - 0.1 * i),
                        "agreement": 1.0 - 0.15 * i,
                        "kl": 0.0 if i == 0 else 0.05 * 3**i,
                        "images": 100,
                        "replaced": 0 if i == 0 else 1840,
                        "kept": 0,
                        "relative_change_median": 0.1 * i,
                    }
                )
            for stage in range(4):
                stage_records.append(
                    {
                        "model": model,
                        "dataset": dataset,
                        "stage": stage,
                        "method": "D1",
                        "variant": f"stage{stage}-idealized-D1",
                        **accuracy(learned - 0.05 * stage),
                        "agreement": 0.95 - 0.1 * stage,
                        "kl": 0.02 * (stage + 1),
                        "replaced": 100,
                    }
                )
    baselines = [r for r in records if r["variant"] == "learned"]
    return replacement_table(records), stages_table(stage_records, baselines)


def share_vs_accuracy_inputs(result: dict) -> tuple:
    """The share-vs-accuracy table of the fixture's clustering (m1 with, m2 without a published top-1)."""
    from masterkey.clustering.accuracy import share_vs_accuracy
    from masterkey.clustering.clusters import classification_table

    classification = classification_table(result["assignments"])
    models = {
        "m1": {"architecture": "tf_efficientnet_lite0", "published_top1": 75.1},
        "m2": {"architecture": "convnext_atto", "published_top1": None},
    }
    return share_vs_accuracy(classification, models, {"3x3": 0.5, "7x7": 0.001}), classification


def _save(make_figure):
    """A renderer ``render(*paths)``: the figure function returns a Figure, saved by style.save_figure."""

    def render(*paths):
        figure = make_figure()
        assert isinstance(figure, Figure), type(figure)
        style.save_figure(figure, *paths)
        assert not plt.fignum_exists(figure.number)  # save_figure closed it

    return render


def niff_inputs() -> tuple[pd.DataFrame, dict]:
    """Planted NIFF kernels ``{state: {layer: (C, H, W)}}`` of two stages and their KMR frame."""
    from masterkey.niff.analysis import kmr_frame

    rng = np.random.default_rng(7)
    kernels = {
        state: {
            f"stages.{i}.blocks.0.conv_dw": rng.normal(size=(8, size, size)) for i, size in enumerate((9, 5))
        }
        for state in ("trained", "init")
    }
    frame = pd.concat(
        [kmr_frame(layers, state=state) for state, layers in kernels.items()], ignore_index=True
    )
    return frame, kernels


@cache
def shiftinv_inputs() -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Per-filter frames of planted Gabor filters (bank "gabor", with max pooling) and of random
    3x3 RGB kernels (stride 2, no pooling), measured on smoothed noise; the random kernels' monochrome
    parts."""
    from scipy.ndimage import gaussian_filter

    from masterkey.shiftinv import filter_analysis, monochrome_part

    rng = np.random.default_rng(11)
    images = gaussian_filter(rng.normal(size=(3, 64, 64)), (0, 1, 1))
    r = np.arange(-4, 5)
    y, x = np.meshgrid(r, r, indexing="ij")
    gabors = np.stack([np.exp(-(x**2 + y**2) / 8) * np.cos(w * (np.cos(a) * x + np.sin(a) * y))
                       for w in (0.6, 1.2) for a in np.linspace(0, np.pi, 6, endpoint=False)])  # fmt: skip
    gabor = filter_analysis(images, gabors, 2)
    kernels = rng.normal(size=(12, 3, 3, 3))
    stem = filter_analysis(images, kernels, 2, pool=False).assign(applies=False)
    return gabor, stem, monochrome_part(kernels)[0]


def learnable_inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A planted long frame of initial and trained scales (two stages, both Gaussians) and its table."""
    from masterkey.replacement.learnable import comparison_variants, learnable_table

    rng = np.random.default_rng(5)
    rows = [{"model": "m", "variant": v, "gaussian": g, "layer": f"stages.{st}.blocks.0.conv_dw", "stage": st,
             "channel": c, "type": "dx", "axis": a, "initial": 1 + 0.5 * st + 0.2 * rng.random()}
            for v, g in (("learnable-D1", "discrete"), ("learnable-sampled-D1", "sampled"))
            for st in (0, 1) for c in range(12) for a in "xy"]  # fmt: skip
    scales = pd.DataFrame(rows)
    scales["trained"] = scales["initial"] + rng.normal(0, 0.2, len(scales))
    names = comparison_variants("learnable-D1") + ["finetuned-learnable-sampled-D1"]
    replacement = pd.DataFrame(
        {"model": "m", "dataset": "heldout", "variant": names, "top1": [0.8, 0.7, 0.76, 0.74]}
    )
    return scales, learnable_table(scales, replacement, {"m": "heldout"})


def figure_renderers() -> dict:
    """Figure function name -> function(*paths) drawing it from the fixture inputs."""
    data = inputs()
    ss, cl, rp, nf = scalespace_figures, clustering_figures, replacement_figures, niff_figures
    result, keys = data["clustering"], data["keys"]
    niff_frame, niff_kernels = niff_inputs()
    si, (gabor, stem, stem_kernels) = shiftinv_figures, shiftinv_inputs()
    learnable_scales, learnable_table = learnable_inputs()
    return {
        "plot_published_models": _save(
            lambda: ss.plot_published_models(data["published"], data["published_fits"])
        ),
        "plot_published_spread": _save(
            lambda: ss.plot_published_spread(data["published"], data["published_spread"])
        ),
        "plot_fitted_scales": _save(lambda: ss.plot_fitted_scales(data["fits"], "m")),
        "plot_residuals": _save(lambda: ss.plot_residuals(data["fits"], "m")),
        "plot_explained_share": _save(lambda: ss.plot_explained_share(data["share"], "m")),
        "plot_prototypes": _save(
            lambda: cl.plot_prototypes(result["prototypes"], result["clusters"], result["decoded"])
        ),
        "plot_cluster_membership": _save(
            lambda: cl.plot_cluster_membership(result["assignments"], result["clusters"], "m1")
        ),
        "plot_latent_histograms": _save(
            lambda: cl.plot_latent_histograms(result["assignments"], result["clusters"])
        ),
        "plot_master_keys": _save(lambda: cl.plot_master_keys(keys, data["key_table"], data["comparison"])),
        "plot_error_curve": _save(lambda: cl.plot_error_curve(data["curves"], 3)),
        "plot_share_vs_accuracy": _save(lambda: cl.plot_share_vs_accuracy(*share_vs_accuracy_inputs(result))),
        "plot_replacement_accuracy": _save(lambda: rp.plot_replacement_accuracy(data["replacement"])),
        "plot_replacement_stages": _save(lambda: rp.plot_replacement_stages(data["stages"])),
        "plot_frozen_keys": _save(lambda: rp.plot_frozen_keys(frozen_keys_curves_table())),
        "plot_learnable_scales": _save(
            lambda: rp.plot_learnable_scales(learnable_scales, learnable_table, "m")
        ),
        "plot_kmr_curves": _save(lambda: nf.plot_kmr_curves(niff_frame, "r")),
        "plot_kernel_gallery": _save(lambda: nf.plot_kernel_gallery(niff_kernels, "r")),
        "plot_kernel_pca": _save(lambda: nf.plot_kernel_pca(niff_kernels, "r")),
        "plot_gamma_map": _save(lambda: si.plot_gamma_map(2, resolution=65)),
        "plot_fourier_layout": _save(lambda: si.plot_fourier_layout(gabor, "gabor")),
        "plot_bounds_scatter": _save(lambda: si.plot_bounds_scatter({"gabor": gabor, "stem": stem})),
        "plot_first_layer": _save(lambda: si.plot_first_layer(stem_kernels, stem, "stem")),
    }


def render_all(directory: Path) -> dict[str, str]:
    """Render every figure as PNG and PDF into ``directory``; file name -> sha256."""
    digests = {}
    for name, render in figure_renderers().items():
        matplotlib.rcdefaults()  # each function must set the style itself
        paths = [directory / f"{name}.png", directory / f"{name}.pdf"]
        render(*paths)
        digests.update({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths})
    return digests


def png_size_and_dpi(path: Path) -> tuple[int, int, float]:
    """Width, height (pixels) and horizontal resolution (dots per inch) from a PNG's chunks."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    position, dpi = 8, None
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        body = data[position + 8 : position + 8 + length]
        assert (
            zlib.crc32(kind + body)
            == struct.unpack(">I", data[position + 8 + length : position + 12 + length])[0]
        )
        if kind == b"pHYs":
            per_metre, _, unit = struct.unpack(">IIB", body)
            assert unit == 1
            dpi = per_metre * 0.0254
        position += 12 + length
    return width, height, dpi


RENDER_IN_SUBPROCESS = (
    "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
    "import test_plotting_figures as t; print(json.dumps(t.render_all(Path(sys.argv[2]))))"
)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every figure drawn here and, at the same time, in a fresh interpreter with another hash seed."""
    here, there = tmp_path_factory.mktemp("here"), tmp_path_factory.mktemp("fresh")
    env = {**os.environ, "PYTHONHASHSEED": "12345", "MPLBACKEND": "Agg"}
    fresh = subprocess.Popen(
        [sys.executable, "-c", RENDER_IN_SUBPROCESS, str(Path(__file__).parent), str(there)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        digests = render_all(here)
    finally:
        out, err = fresh.communicate(timeout=600)
    assert fresh.returncode == 0, err[-3000:]
    return here, digests, there, json.loads(out.splitlines()[-1])


def plotting_functions() -> set[str]:
    """Every public ``plot_*`` function of the masterkey.plotting modules."""
    names = set()
    for path in PLOTTING.glob("*.py"):
        tree = ast.parse(path.read_text())
        names |= {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("plot_")
        }
    return names


def frozen_keys_curves_table():
    """Two models' [Q] runs: every run evaluated every 2 updates (one run never evaluated)."""
    rows = []
    for model in ("demo", "other"):
        for run, level in (("learned", 0.8), ("keys-published", 0.7), ("random-8", 0.3)):
            for step in range(1, 7):
                evaluated = step % 2 == 0 and model == "demo" or run == "learned"
                accuracy = level * step / 6 if evaluated else None
                rows.append({"model": model, "run": run, "step": step, "val_accuracy": accuracy})
    return pd.DataFrame(rows)


def test_every_figure_function_has_a_fixture():
    assert plotting_functions() == set(figure_renderers()), "add new figure functions to figure_renderers()"


def test_every_figure_renders_in_the_project_style(rendered):
    directory, digests, *_ = rendered
    assert len(digests) == 2 * len(figure_renderers())
    for name in figure_renderers():
        width, height, dpi = png_size_and_dpi(directory / f"{name}.png")
        assert dpi == pytest.approx(style.RC_PARAMS["savefig.dpi"], rel=1e-3), name  # style applied
        inches = width / dpi
        # Readable in a paper: at most the text width (legends beside the axes may add a little).
        assert 0.5 * style.COLUMN_WIDTH <= inches <= 1.15 * style.TEXT_WIDTH, (name, inches)
        assert 100 < height, name
        pdf = (directory / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF"), name
        assert b"/CreationDate" not in pdf and b"/ModDate" not in pdf and b"Matplotlib" not in pdf, name
        assert b"masterkey" in pdf, name  # fixed Creator/Producer
    sizes = {name: (directory / f"{name}.png").stat().st_size for name in figure_renderers()}
    assert min(sizes.values()) > 10_000, sizes  # something was drawn


def test_rerun_gives_identical_bytes(rendered):
    """PNG and PDF of a rerun (fresh process, as under Snakemake) equal those drawn here."""
    here, digests, there, fresh = rendered
    assert sorted(p.name for p in there.iterdir()) == sorted(p.name for p in here.iterdir())
    assert fresh == digests


def test_figure_code_goes_through_the_style_module():
    """Scripts draw nothing themselves; plotting modules save only through style.save_figure."""
    scripts = sorted((REPO / "scripts").rglob("*.py"))
    assert any(script.name.startswith("figure_") for script in scripts)
    for script in scripts:
        source = script.read_text()
        name = script.relative_to(REPO / "scripts")
        assert "matplotlib" not in source and "savefig" not in source, f"{name} draws a figure itself"
        if script.name.startswith("figure_"):
            assert "save_figure(" in source, f"{name} does not save through style.save_figure"
    for module in sorted(PLOTTING.glob("*.py")):
        if module.name in ("style.py", "__init__.py"):
            continue
        source = module.read_text()
        assert ".savefig(" not in source, f"{module.name} saves without style.save_figure"
        tree = ast.parse(source)
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("plot_"):
                body = ast.get_source_segment(source, node)
                assert "apply_style()" in body, f"{module.name}:{node.name} does not call apply_style()"


def test_style_sizes_and_metadata():
    assert style.COLUMN_WIDTH < style.TEXT_WIDTH
    assert all(style.RC_PARAMS[key] >= 6 for key in ("font.size", "xtick.labelsize", "legend.fontsize"))
    assert style.PDF_METADATA["CreationDate"] is None and style.PDF_METADATA["ModDate"] is None


def test_shrink_png_for_the_readme(rendered, tmp_path):
    here, *_ = rendered
    source = here / "plot_published_models.png"
    target = style.shrink_png(source, tmp_path / "docs" / "small.png", max_width=600, max_bytes=60_000)
    width, height, _ = png_size_and_dpi(target)
    source_width, source_height, _ = png_size_and_dpi(source)
    assert width <= 600 and target.stat().st_size <= 60_000
    assert abs(height / width - source_height / source_width) < 0.01  # aspect ratio kept
    first = target.read_bytes()
    style.shrink_png(source, target, max_width=600, max_bytes=60_000)
    assert target.read_bytes() == first
    with pytest.raises(ValueError, match="no copy of at most 100 bytes"):
        style.shrink_png(source, tmp_path / "never.png", max_bytes=100)
    assert not (tmp_path / "never.png").exists()


def test_readme_demo_figures_are_small_and_regenerated_by_make_docs():
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Demo results\n", 1)[1].split("\n## ", 1)[0]
    images = re.findall(r"!\[[^\]]+\]\((docs/[\w.-]+\.png)\)", section)
    assert len(images) >= 5
    makefile = (REPO / "Makefile").read_text()
    listed = re.search(r"^DOCS_FIGURES := ((?:.*\\\n)*.*)$", makefile, re.M).group(1)
    listed = listed.replace("\\\n", " ").split()
    assert sorted(images) == sorted(f"docs/{name}.png" for name in listed)
    for image in images:
        path = REPO / image
        assert path.is_file() and path.stat().st_size <= 150_000, image
        width, _, _ = png_size_and_dpi(path)
        assert 300 <= width <= 1100, (image, width)
