"""The registry of replacement variants: grammar, Snakemake pattern, inputs, defaults."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from masterkey.core.errors import ConfigError
from masterkey.replacement.build import VariantInputs, build_variant
from masterkey.replacement.variants import (
    INPUTS,
    default_variants,
    parse_variant,
    variant_input_paths,
    variant_kinds,
    variant_needs,
    variant_pattern,
)
from masterkey.scalespace.fitting import METHODS

VALID = ["learned", "random", "shuffled", "idealized-A", "idealized-D2", "stage0-idealized-C1",
         "stage12-idealized-B", "masterkey-1", "masterkey-8", "masterkey-50",
         "masterkey-published", "learnable-D1", "learnable-sampled-C2"]  # fmt: skip
INVALID = ["idealized-E", "idealized-", "idealized-c1", "stage-idealized-A", "stagex-idealized-A",
           "stage1-learned", "masterkey-", "masterkey-all", "masterkey--1", "random2", "shuffle",
           "Learned", "learned ", " random", "", "learnable-", "learnable-discrete-D1",
           "learnable-sampled-", "stage1-learnable-D1"]  # fmt: skip
PATTERNS = {
    "fits": "results/fits/{model}.parquet",
    "master_keys": "results/clustering/master_keys_{num_keys}.npz",
    "published": "resources/8Filters.txt",
}


def matches(name: str) -> bool:
    return re.fullmatch(variant_pattern(), name) is not None


def test_every_default_variant_parses_and_matches_the_pattern():
    for keys in (1, 8, 12):
        names = default_variants(keys)
        assert len(names) == len(set(names))
        assert names[0] == "learned" and names[-2:] == ["random", "shuffled"]
        assert [f"idealized-{m}" for m in METHODS] == [n for n in names if n.startswith("idealized-")]
        assert f"masterkey-{keys}" in names and "masterkey-published" in names
        for name in names:
            assert parse_variant(name).name == name
            assert matches(name), name


@pytest.mark.parametrize("name", VALID)
def test_valid_names_parse_and_match(name):
    assert parse_variant(name).name == name
    assert matches(name)


def test_parsed_fields():
    variant = parse_variant("stage12-idealized-B")
    assert (variant.kind, variant.method, variant.stage, variant.num_keys) == ("idealized", "B", 12, None)
    assert parse_variant("masterkey-50").num_keys == 50
    published = parse_variant("masterkey-published")
    assert (published.kind, published.num_keys, published.stage) == ("masterkey", None, None)
    assert set(variant_kinds()) == {"learned", "idealized", "masterkey", "random", "shuffled", "learnable"}
    discrete, sampled = parse_variant("learnable-D1"), parse_variant("learnable-sampled-C2")
    assert (discrete.kind, discrete.method, discrete.gaussian) == ("learnable", "D1", "discrete")
    assert (sampled.method, sampled.gaussian) == ("C2", "sampled") and parse_variant(
        "idealized-A"
    ).gaussian is None


def test_learnable_variants_exist_only_fine_tuned():
    """No zero-shot kernels, no default, refused in replacement.variants, accepted for fine-tuning."""
    from masterkey.replacement.settings import FinetuneSettings, ReplacementSettings
    from masterkey.replacement.variants import is_finetune_only

    assert is_finetune_only("learnable-sampled-D1") and not is_finetune_only("idealized-D1")
    assert not any(name.startswith("learnable") for name in default_variants(8))
    with pytest.raises(ConfigError, match="replacement.variants: learnable-D1 train their scales"):
        ReplacementSettings(variants=("learnable-D1",)).variant_names(8)
    names = FinetuneSettings(variants=("idealized-D1", "learnable-D1")).variant_names()
    assert names == ["learned", "idealized-D1", "learnable-D1"]
    inputs = VariantInputs(arrays={"7x7": np.zeros((1, 7, 7))}, index=pd.DataFrame(), fits=pd.DataFrame())
    with pytest.raises(ConfigError, match="exists only fine-tuned"):
        build_variant("learnable-D1", inputs)


@pytest.mark.parametrize("name", INVALID)
def test_invalid_names_are_rejected_by_both(name):
    with pytest.raises(ConfigError, match="unknown replacement variant") as err:
        parse_variant(name)
    assert err.value.key == "replacement.variants"
    assert not matches(name)


def test_zero_master_keys_is_rejected_by_the_parser():
    with pytest.raises(ConfigError, match="must be >= 1") as err:
        parse_variant("masterkey-0")
    assert err.value.key == "replacement.variants"


def test_zero_master_keys_is_rejected_by_the_pattern():
    assert not matches("masterkey-0") and not matches("masterkey-08") and matches("masterkey-10")


def test_the_error_lists_the_valid_forms_and_names_the_key():
    with pytest.raises(ConfigError) as err:
        parse_variant("idealized-E", key="replacement.finetune.variants")
    message = str(err.value)
    assert err.value.key == "replacement.finetune.variants"
    assert message.startswith("config key replacement.finetune.variants:")
    assert all(method in message for method in METHODS) and "masterkey-published" in message


def test_variant_needs():
    assert INPUTS == ("fits", "master_keys", "published")
    for method in METHODS:
        assert variant_needs(f"idealized-{method}") == ("fits",)
        assert variant_needs(f"stage3-idealized-{method}") == ("fits",)
    assert variant_needs("masterkey-8") == ("master_keys",)
    assert variant_needs(parse_variant("masterkey-3")) == ("master_keys",)
    assert variant_needs("masterkey-published") == ("published",)
    for name in ("learned", "random", "shuffled"):
        assert variant_needs(name) == ()
    with pytest.raises(ConfigError):
        variant_needs("idealized-E")


def test_variant_input_paths_formats_the_paths():
    fits = variant_input_paths("idealized-D1", PATTERNS, model="demo")
    assert fits == {"fits": "results/fits/demo.parquet"}
    assert variant_input_paths("stage2-idealized-A", PATTERNS, model="m") == {
        "fits": "results/fits/m.parquet"
    }
    assert variant_input_paths("masterkey-8", PATTERNS, model="demo") == {
        "master_keys": "results/clustering/master_keys_8.npz"
    }
    assert variant_input_paths("masterkey-published", PATTERNS, model="demo") == {
        "published": "resources/8Filters.txt"
    }
    for name in ("learned", "random", "shuffled"):
        assert variant_input_paths(name, PATTERNS, model="demo") == {}


def _inputs(**extra):
    rng = np.random.default_rng(0)
    index = pd.DataFrame(
        {"layer": "l", "stage": 0, "channel": np.arange(4), "kernel_size": "7x7", "row": np.arange(4)}
    )
    return VariantInputs({"7x7": rng.normal(size=(4, 7, 7))}, index, **extra)


@pytest.mark.parametrize(
    ("name", "needed"),
    [
        ("idealized-D1", "fits"),
        ("stage0-idealized-A", "fits"),
        ("masterkey-8", "master_keys"),
        ("masterkey-published", "published"),
    ],  # fmt: skip
)
def test_build_variant_needs_its_inputs(name, needed):
    with pytest.raises(ValueError, match=f"needs its input '{needed}'"):
        build_variant(name, _inputs())


def test_build_variant_without_extra_inputs():
    for name in ("learned", "random", "shuffled"):
        new, summary = build_variant(name, _inputs())
        assert new["7x7"].shape == (4, 7, 7) and summary["replaced"] + summary["kept"] == 4
    keys = np.random.default_rng(1).normal(size=(3, 7, 7))
    _, summary = build_variant("masterkey-published", _inputs(master_keys=keys))
    assert summary["replaced"] == 4
