"""Config validation: defaults filled, wrong types and unknown keys named."""

import copy

import pytest
import yaml

from masterkey.config import load_config_file, model_specs, validate_config
from masterkey.errors import UserError


def test_defaults_are_filled():
    config = validate_config({"models": ["demo"]})
    assert config["seed"] == 0
    assert config["demo"]["architecture"] == "convnext_atto"
    assert config["demo"]["crop_size"] == 64
    assert config["hub_cache"] is None
    assert config["published_filters"].startswith("https://")


def test_explicit_values_are_kept():
    config = validate_config({"models": ["demo"], "seed": 7, "demo": {"steps": 5}})
    assert config["seed"] == 7
    assert config["demo"]["steps"] == 5
    assert config["demo"]["batch_size"] == 64  # nested default still filled


@pytest.mark.parametrize(
    "config, expected",
    [
        ({"models": ["demo"], "seed": "zero"}, "config key seed: 'zero' is not of type 'integer'"),
        ({"models": ["demo"], "demo": {"steps": 1.5}}, "config key demo.steps"),
        ({"models": ["demo"], "demo": {"crop_size": 8}}, "config key demo.crop_size"),
        ({"models": []}, "config key models"),
        ({"models": ["demo", 3]}, "config key models[1]"),
        ({"models": [{"weights": "x.pth"}]}, "config key models[0]"),
    ],
)
def test_wrong_values_name_the_key(config, expected):
    with pytest.raises(UserError, match=None) as info:
        validate_config(config)
    assert expected in str(info.value)


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(UserError) as info:
        validate_config({"models": ["demo"], "sed": 1})
    assert "'sed'" in str(info.value) and "did you mean 'seed'" in str(info.value)
    with pytest.raises(UserError) as info:
        validate_config({"models": ["demo"], "demo": {"step": 3}})
    assert "demo.'step'" in str(info.value) and "'steps'" in str(info.value)


def test_missing_models_and_non_mapping():
    with pytest.raises(UserError, match="models"):
        validate_config({})
    with pytest.raises(UserError, match="mapping"):
        validate_config(["demo"])


def test_duplicate_models_rejected():
    with pytest.raises(UserError, match="convnext_atto.d2_in1k listed more than once"):
        validate_config({"models": ["convnext_atto.d2_in1k", {"name": "convnext_atto.d2_in1k"}]})


def test_model_entries_become_specs():
    config = validate_config({"models": ["demo", {"name": "convnext_tiny.fb_in1k", "weights": "/w.pth"}]})
    specs = model_specs(config)
    assert [s.name for s in specs] == ["demo", "convnext_tiny.fb_in1k"]
    assert specs[0].is_demo and specs[1].weights == "/w.pth"


def test_repository_configs_are_valid(repo_root):
    demo = load_config_file(repo_root / "config.yaml")
    assert [s.name for s in model_specs(demo)] == ["demo"]
    paper = load_config_file(repo_root / "config" / "paper.yaml")
    names = [s.name for s in model_specs(paper)]
    for expected in [
        "convnext_atto.d2_in1k",
        "convnext_tiny.fb_in1k",
        "convnext_xxlarge.clip_laion2b_soup_ft_in1k",
    ]:
        if "clip" in expected:
            assert expected not in names  # LAION-trained, deliberately left out
        else:
            assert expected in names
    assert any(n.startswith("convnextv2_huge.fcmae_ft_in22k_in1k") for n in names)
    assert "non-commercial" in (repo_root / "config" / "paper.yaml").read_text().lower()


def test_paper_config_lists_every_imagenet_convnext_tag(repo_root):
    import timm

    names = {s.name for s in model_specs(load_config_file(repo_root / "config" / "paper.yaml"))}
    imagenet = {
        n
        for n in timm.list_pretrained("convnext*")
        if not any(word in n.split(".", 1)[1] for word in ("clip", "laion", "dinov3", "eupe", "lvd"))
    }
    assert imagenet == names


def test_config_file_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [demo\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config_file(bad)
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"models": ["demo"]}))
    assert load_config_file(good)["seed"] == 0


def test_validation_does_not_share_default_objects():
    first = validate_config({"models": ["demo"]})
    first["demo"]["images"].append("moon")
    second = validate_config(copy.deepcopy({"models": ["demo"]}))
    assert second["demo"]["images"].count("moon") == 1
