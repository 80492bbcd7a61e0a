"""Replacement of depthwise kernels (methods.md section 5): variants, mappings, model surgery."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import timm
import torch

from masterkey.core.errors import ConfigError, StaleFileError
from masterkey.data.evalcache import EvalSet
from masterkey.kernels.similarity import affine_fit, best_match
from masterkey.kernels.store import save_kernels
from masterkey.nets.demo import train_on_demo
from masterkey.nets.depthwise import apply_kernels, extract_kernels
from masterkey.replacement.build import VariantInputs, build_variant
from masterkey.replacement.evaluation import (
    best_idealized_method,
    evaluate_variant,
    load_variant_inputs,
)
from masterkey.replacement.frozen import freeze_depthwise
from masterkey.replacement.tables import replacement_table
from masterkey.replacement.variants import parse_variant
from masterkey.scalespace.models import templates_from_fits
from masterkey.scalespace.templates import idealized_templates
from masterkey.training.evaluate import evaluate
from masterkey.training.recipe import Recipe


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=5)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_kernels(tiny_model):
    return extract_kernels(tiny_model, "tiny")


def _logits(model, seed=1):
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.inference_mode():
        return model(x)


def _copy(model):
    clone = timm.create_model("convnext_atto", pretrained=False, num_classes=5)
    clone.load_state_dict(model.state_dict())
    return clone.eval()


def test_parse_variant_accepts_every_form_and_rejects_others():
    assert parse_variant("learned").kind == "learned"
    assert parse_variant("idealized-C1").method == "C1"
    stage = parse_variant("stage2-idealized-D2")
    assert (stage.kind, stage.method, stage.stage) == ("idealized", "D2", 2)
    assert parse_variant("masterkey-8").num_keys == 8
    assert parse_variant("masterkey-published").num_keys is None
    assert parse_variant("shuffled").kind == "shuffled"
    for bad in ("idealized-E", "masterkey-0", "masterkey-", "random2", "stage-idealized-A"):
        with pytest.raises(ConfigError, match="variant") as err:
            parse_variant(bad)
        assert err.value.key == "replacement.variants"


def test_affine_fit_matches_lstsq():
    rng = np.random.default_rng(0)
    templates, kernels = rng.normal(size=(20, 7, 7)), rng.normal(size=(20, 7, 7))
    a, b = affine_fit(templates, kernels)
    for i in range(20):
        design = np.stack([templates[i].ravel(), np.ones(49)], axis=1)
        (a_ref, b_ref), *_ = np.linalg.lstsq(design, kernels[i].ravel(), rcond=None)
        assert a[i] == pytest.approx(a_ref, rel=1e-10)
        assert b[i] == pytest.approx(b_ref, rel=1e-10, abs=1e-12)


def test_affine_fit_constant_or_nan_template_gives_the_mean():
    kernels = np.random.default_rng(1).normal(size=(2, 3, 3))
    templates = np.stack([np.ones((3, 3)), np.full((3, 3), np.nan)])
    a, b = affine_fit(templates, kernels)
    np.testing.assert_array_equal(a, 0.0)
    np.testing.assert_allclose(b, kernels.reshape(2, -1).mean(axis=1))


def test_learned_variant_reproduces_logits_exactly(tiny_model, tiny_kernels):
    arrays, index = tiny_kernels
    new, summary = build_variant("learned", VariantInputs(arrays, index))
    clone = apply_kernels(_copy(tiny_model), new, index)
    assert torch.equal(_logits(clone), _logits(tiny_model))
    assert summary["replaced"] == 0 and summary["kept"] == len(index)


def test_replacing_every_kernel_by_itself_through_the_model_is_exact(tiny_model, tiny_kernels):
    arrays, index = tiny_kernels
    clone = _copy(tiny_model)
    # scramble then restore: the restore must put back every kernel at its own channel
    apply_kernels(clone, build_variant("random", VariantInputs(arrays, index), seed=3)[0], index)
    assert not torch.equal(_logits(clone), _logits(tiny_model))
    apply_kernels(clone, arrays, index)
    assert torch.equal(_logits(clone), _logits(tiny_model))


def test_one_stage_variant_changes_only_that_stage(tiny_model, tiny_kernels):
    arrays, index = tiny_kernels
    inputs = VariantInputs(arrays, index, fits=_planted_fits(arrays, index))
    new, summary = build_variant("stage1-idealized-D1", inputs)
    changed_rows = np.flatnonzero(np.any(new["7x7"] != arrays["7x7"], axis=(1, 2)))
    stages = index.set_index("row").loc[changed_rows, "stage"]
    assert set(stages) == {1}
    assert summary["replaced"] == int((index["stage"] == 1).sum())
    clone = apply_kernels(_copy(tiny_model), new, index)
    original = dict(tiny_model.named_parameters())
    for name, parameter in clone.named_parameters():
        same = torch.equal(parameter, original[name])
        expect_change = name.startswith("stages.1.") and name.endswith("conv_dw.weight")
        assert same != expect_change, name
    with pytest.raises(ConfigError, match="stage 9 does not exist") as err:
        build_variant("stage9-idealized-D1", inputs)
    assert err.value.key == "replacement.variants"


def _planted_fits(arrays, index, method="D1"):
    """A fits table with arbitrary (finite) fitted parameters for every 7x7 kernel."""
    n = len(arrays["7x7"])
    rng = np.random.default_rng(0)
    types = np.array(["dx", "dy+", "T", "id-lap", "lap", "dxy"])[np.arange(n) % 6]
    return pd.DataFrame(
        {
            "kernel_size": "7x7",
            "filter": np.arange(n),
            "method": method,
            "type": types,
            "sigma_x": rng.uniform(0.4, 1.5, n),
            "sigma_y": rng.uniform(0.4, 1.5, n),
            "alpha": np.where(types == "id-lap", 0.5, np.nan),
        }
    )


def test_idealized_variant_recovers_planted_affine_templates():
    rng = np.random.default_rng(2)
    n = 12
    types = np.array(["dx", "dy-", "T", "id-lap", "lap", "dxx"])[np.arange(n) % 6]
    sx, sy = rng.uniform(0.5, 1.4, n), rng.uniform(0.5, 1.4, n)
    sy = np.where(np.isin(types, ["lap", "id-lap"]), sx, sy)
    alpha = np.where(types == "id-lap", 0.7, np.nan)
    templates = np.stack(
        [
            idealized_templates(t, 7, x, y, a if t == "id-lap" else None)
            for t, x, y, a in zip(types, sx, sy, alpha, strict=True)
        ]
    )
    scale, offset = rng.uniform(-3, 3, n), rng.normal(size=n)
    kernels = scale[:, None, None] * templates + offset[:, None, None]
    fits = pd.DataFrame(
        {
            "kernel_size": "7x7",
            "filter": np.arange(n),
            "method": "C2",
            "type": types,
            "sigma_x": sx,
            "sigma_y": sy,
            "alpha": alpha,
        }
    )
    np.testing.assert_allclose(templates_from_fits(fits, 7), templates, atol=1e-12)
    index = pd.DataFrame(
        {"layer": "l", "stage": 0, "channel": np.arange(n), "kernel_size": "7x7", "row": np.arange(n)}
    )
    new, summary = build_variant("idealized-C2", VariantInputs({"7x7": kernels}, index, fits=fits))
    np.testing.assert_allclose(new["7x7"], kernels, atol=1e-10)
    assert summary["relative_change_median"] < 1e-10


def test_idealized_variant_rejects_stale_fits(tiny_kernels):
    arrays, index = tiny_kernels
    fits = _planted_fits(arrays, index).iloc[:-1]
    with pytest.raises(ValueError, match="the fits table has .* the fits are stale"):
        build_variant("idealized-D1", VariantInputs(arrays, index, fits=fits))
    paths = {"fits": "results/fits/tiny.parquet"}
    with pytest.raises(StaleFileError, match="stale") as err:
        build_variant("idealized-D1", VariantInputs(arrays, index, fits=fits, paths=paths))
    assert str(err.value.path) == "results/fits/tiny.parquet"


def test_masterkey_variant_picks_the_planted_key_and_scales_it():
    rng = np.random.default_rng(3)
    keys = rng.normal(size=(5, 7, 7))
    choice = rng.integers(0, 5, 40)
    scale, offset = rng.uniform(-2, 2, 40), rng.normal(size=40)
    kernels = scale[:, None, None] * keys[choice] + offset[:, None, None]
    best, cosine = best_match(kernels, keys)
    np.testing.assert_array_equal(best, choice)
    np.testing.assert_allclose(cosine, 1.0)
    index = pd.DataFrame(
        {"layer": "l", "stage": 0, "channel": np.arange(40), "kernel_size": "7x7", "row": np.arange(40)}
    )
    arrays = {"7x7": kernels, "3x3": rng.normal(size=(4, 3, 3))}
    new, summary = build_variant("masterkey-5", VariantInputs(arrays, index, master_keys=keys))
    np.testing.assert_allclose(new["7x7"], kernels, atol=1e-10)
    np.testing.assert_array_equal(new["3x3"], arrays["3x3"])  # other sizes are kept
    assert (summary["replaced"], summary["kept"]) == (40, 4)


def test_random_variant_keeps_mean_and_norm_and_is_seeded(tiny_kernels):
    arrays, index = tiny_kernels
    inputs = VariantInputs(arrays, index)
    first, _ = build_variant("random", inputs, seed=5)
    again, _ = build_variant("random", inputs, seed=5)
    other, _ = build_variant("random", inputs, seed=6)
    old, new = arrays["7x7"].astype(np.float64), first["7x7"].astype(np.float64)
    np.testing.assert_allclose(new.mean(axis=(1, 2)), old.mean(axis=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(new, axis=(1, 2)), np.linalg.norm(old, axis=(1, 2)), rtol=1e-5)
    np.testing.assert_array_equal(first["7x7"], again["7x7"])
    assert not np.array_equal(first["7x7"], other["7x7"])
    cos = (new * old).sum(axis=(1, 2)) / np.linalg.norm(new, axis=(1, 2)) / np.linalg.norm(old, axis=(1, 2))
    assert np.median(np.abs(cos)) < 0.5


def test_shuffled_variant_permutes_within_each_layer(tiny_kernels):
    arrays, index = tiny_kernels
    new, _ = build_variant("shuffled", VariantInputs(arrays, index), seed=0)
    moved = 0
    for _, part in index.groupby("layer"):
        rows = part["row"].to_numpy()
        before = {arr.tobytes() for arr in arrays["7x7"][rows]}
        after = {arr.tobytes() for arr in new["7x7"][rows]}
        assert before == after
        moved += int(np.any(new["7x7"][rows] != arrays["7x7"][rows], axis=(1, 2)).sum())
    assert moved > 0.9 * len(index)


def test_apply_kernels_rejects_an_index_from_another_model(tiny_model, tiny_kernels):
    arrays, index = tiny_kernels
    stale = index.assign(layer=index["layer"].str.replace("stages.3", "stages.9"))
    with pytest.raises(StaleFileError, match="the kernels are stale") as err:
        apply_kernels(_copy(tiny_model), arrays, stale, "results/kernels/tiny.parquet")
    assert str(err.value.path) == "results/kernels/tiny.parquet"
    with pytest.raises(ValueError, match="the kernel index does not match"):
        apply_kernels(_copy(tiny_model), arrays, stale)


def _random_eval_set(count=6, classes=5):
    images = torch.randn(count, 3, 32, 32, generator=torch.Generator().manual_seed(4))
    return EvalSet(images, np.arange(count) % classes, mean=None, std=None, name="random-crops")


def test_evaluate_variant_returns_the_whole_record(tiny_model, tiny_kernels):
    arrays, index = tiny_kernels
    eval_set = _random_eval_set()
    reference = evaluate(_copy(tiny_model), eval_set, batch_size=4, device="cpu")
    learned = evaluate_variant(_copy(tiny_model), "tiny", "learned", VariantInputs(arrays, index), eval_set,
                               batch_size=4, device="cpu")  # fmt: skip
    assert (learned["model"], learned["dataset"], learned["variant"]) == ("tiny", "random-crops", "learned")
    assert learned["images"] == 6 and learned["device"] == "cpu"
    assert (learned["top1"], learned["top5"]) == (reference["top1"], reference["top5"])
    assert (learned["replaced"], learned["kept"]) == (0, len(index))
    for key in ("seconds", "images_per_second", "relative_change_median", "relative_change_mean"):
        assert key in learned, key
    model = _copy(tiny_model)
    shuffled = evaluate_variant(model, "tiny", "shuffled", VariantInputs(arrays, index), eval_set, seed=1,
                                batch_size=4, max_images=4, device="cpu")  # fmt: skip
    assert shuffled["variant"] == "shuffled" and shuffled["images"] == 4
    assert shuffled["replaced"] == len(index) and shuffled["kept"] == 0
    # the model was changed in place, as build_variant + apply_kernels would
    expected = apply_kernels(_copy(tiny_model), build_variant("shuffled", VariantInputs(arrays, index), 1)[0],
                             index)  # fmt: skip
    model.to(memory_format=torch.contiguous_format)  # evaluate() left it channels-last
    assert torch.equal(_logits(model), _logits(expected))


def test_load_variant_inputs_reads_what_the_variant_needs(tmp_path, tiny_kernels, published_filters_path):
    arrays, index = tiny_kernels
    paths = {"kernels": tmp_path / "tiny.npz", "index": tmp_path / "tiny.parquet"}
    save_kernels(arrays, index, paths["kernels"], paths["index"])
    learned = load_variant_inputs("learned", paths)
    assert learned.fits is None and learned.master_keys is None
    np.testing.assert_array_equal(learned.arrays["7x7"], arrays["7x7"])
    published = load_variant_inputs("masterkey-published", {**paths, "published": published_filters_path})
    assert published.master_keys.shape == (8, 7, 7)
    np.savez(tmp_path / "keys_5.npz", **{"3x3": np.ones((5, 3, 3)), "7x7": np.ones((4, 7, 7), np.float32)})
    with pytest.raises(StaleFileError, match="holds 4 7x7 master keys, expected 5") as err:
        load_variant_inputs("masterkey-5", {**paths, "master_keys": tmp_path / "keys_5.npz"})
    assert err.value.path == tmp_path / "keys_5.npz"
    with pytest.raises(StaleFileError) as err:
        load_variant_inputs("idealized-D1", {**paths, "fits": tmp_path / "missing.parquet"})
    assert err.value.path == tmp_path / "missing.parquet"


def test_finetune_keeps_depthwise_kernels_frozen_and_trains_the_rest():
    from conftest import TINY_DEMO
    from masterkey.data.demo import build_demo_dataset

    dataset = build_demo_dataset(
        TINY_DEMO["images"], TINY_DEMO["crop_size"], 0.25, 2, TINY_DEMO["max_image_side"], 0
    )
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=dataset.num_classes)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    freeze_depthwise(model)
    recipe = Recipe(steps=2, batch_size=4, learning_rate=1e-3, weight_decay=0.05)
    run = train_on_demo(model, dataset, recipe, 0)
    assert list(run.log["step"]) == [1, 2]
    for name, parameter in model.named_parameters():  # the engine's AdamW never sees the frozen weights
        frozen = name.endswith("conv_dw.weight")
        assert torch.equal(parameter, before[name]) == frozen, name


def test_replacement_table_puts_the_baseline_first_and_computes_drops():
    def record(model, variant, top1, top5=0.9):
        return {"model": model, "variant": variant, "dataset": "d", "top1": top1, "top5": top5, "images": 10,
                "replaced": 1, "kept": 0, "relative_change_median": 0.5}  # fmt: skip

    results = [record("m", "random", 0.2), record("m", "idealized-B", 0.6), record("m", "learned", 0.8),
               record("m", "idealized-C1", 0.7)]  # fmt: skip
    table = replacement_table(results, ["learned", "idealized-C1", "idealized-B", "random"])
    assert list(table["variant"]) == ["learned", "idealized-C1", "idealized-B", "random"]
    np.testing.assert_allclose(table["top1_drop"], [0.0, 0.1, 0.2, 0.6])
    assert best_idealized_method(results) == "C1"
    with pytest.raises(ValueError, match="no learned baseline"):
        replacement_table(results[:2])
    # fine-tuned variants are measured against the same recipe on the learned kernels
    tuned = [record("m", "finetuned-learned", 0.85), record("m", "finetuned-random", 0.5)]
    table = replacement_table(results + tuned, ["learned", "idealized-C1", "idealized-B", "random"])
    assert list(table["variant"][-2:]) == ["finetuned-learned", "finetuned-random"]
    np.testing.assert_allclose(table["top1_drop"].iloc[-2:], [0.0, 0.35])
