"""timm-exact evaluation preprocessing of a checkpoint: registry look-up, cache keys, bad values."""

import json
import time

import pytest
import timm
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg

from masterkey.core.errors import UserError
from masterkey.data.preprocessing import (
    Preprocessing,
    classifier_classes,
    preprocessing_for_model,
    preprocessing_with_key,
)

DEFAULT = Preprocessing((3, 224, 224), 0.875, "center", "bicubic")


def test_preprocessing_for_model_reads_timm_registry_fast():
    cfg = get_pretrained_cfg("convnext_tiny.fb_in1k")
    p = preprocessing_for_model("convnext_tiny.fb_in1k")
    assert p.input_size == tuple(cfg.input_size) == (3, 224, 224)
    assert p.crop_pct == cfg.crop_pct == 0.875
    assert (p.crop_mode, p.interpolation) == ("center", "bicubic")
    assert p.mean == tuple(cfg.mean) and p.std == tuple(cfg.std)
    test = preprocessing_for_model("convnext_tiny.fb_in1k", use_test_size=True)
    assert test.input_size == tuple(cfg.test_input_size) and test.crop_pct == cfg.test_crop_pct
    squash = preprocessing_for_model("convnext_large.fb_in22k_ft_in1k_384")
    data = resolve_data_config(
        pretrained_cfg=get_pretrained_cfg("convnext_large.fb_in22k_ft_in1k_384").to_dict()
    )
    assert (squash.input_size, squash.crop_pct, squash.crop_mode) == (data["input_size"], 1.0, "squash")
    names = timm.list_pretrained("convnext*")
    assert len(names) > 67
    started = time.perf_counter()
    keys = {preprocessing_for_model(name).key() for name in names}
    assert time.perf_counter() - started < 2.0
    assert 1 < len(keys) < len(names)  # checkpoints share caches
    with pytest.raises(UserError, match="close matches: convnext_tiny.fb_in1k"):
        preprocessing_for_model("convnext_tiny.fb_in1kk")
    with pytest.raises(UserError, match="no timm pretrained configuration"):
        preprocessing_for_model("demo")


def test_key_depends_on_pixel_fields_only():
    assert DEFAULT.key() == "702661be1b36"  # stable across runs and machines: caches stay valid
    clip = Preprocessing((3, 224, 224), 0.875, "center", "bicubic", (0.48, 0.46, 0.41), (0.27, 0.26, 0.28))
    assert clip.key() == DEFAULT.key()
    changed = [
        Preprocessing((3, 256, 256), 0.875),
        Preprocessing((3, 224, 192), 0.875),
        Preprocessing((3, 224, 224), 0.95),
        Preprocessing((3, 224, 224), 0.875, interpolation="bilinear"),
        Preprocessing((3, 224, 224), 0.875, crop_mode="squash"),
    ]
    assert len({DEFAULT.key(), *(p.key() for p in changed)}) == 1 + len(changed)
    border = Preprocessing((3, 224, 224), 1.0, "border")
    other_fill = Preprocessing((3, 224, 224), 1.0, "border", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert border.key() != other_fill.key()  # border pads with the mean colour
    assert Preprocessing.from_dict(json.loads(json.dumps(clip.as_dict()))) == clip


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("crop_mode", "random", "crop_mode 'random' unknown"),
        ("interpolation", "random", "interpolation 'random' unknown"),
        ("input_size", (1, 224, 224), r"must be \(3, H, W\)"),
        ("crop_pct", 0, "positive"),
    ],
)
def test_bad_preprocessing_rejected(field, value, message):
    fields = {**DEFAULT.as_dict(), field: value}
    with pytest.raises(ValueError, match=message):
        Preprocessing(**fields)


def test_classifier_classes_from_the_registry():
    assert classifier_classes("convnext_tiny.fb_in1k") == 1000
    assert classifier_classes("convnext_tiny.fb_in22k") == 21841
    assert classifier_classes("convnextv2_atto.fcmae") == 0  # headless
    with pytest.raises(UserError, match="close matches: convnext_tiny.fb_in1k"):
        classifier_classes("convnext_tiny.fb_in1kk")


def test_preprocessing_with_key_picks_the_first_match():
    names = ["convnext_large.fb_in22k_ft_in1k_384", "convnext_tiny.fb_in1k", "convnext_atto.d2_in1k"]
    key = preprocessing_for_model("convnext_tiny.fb_in1k").key()
    assert preprocessing_with_key(names, key) == preprocessing_for_model("convnext_tiny.fb_in1k")
    with pytest.raises(ValueError, match="no model has evaluation preprocessing 000000000000"):
        preprocessing_with_key(names, "000000000000")
