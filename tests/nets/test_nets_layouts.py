"""Checkpoint layouts: wrappers, prefixes, half precision, FB ConvNeXt, positional mapping,
architecture options, and the one message when nothing fits."""

import argparse
import re

import pytest
import safetensors.torch
import timm
import torch

from masterkey.core.config import ModelSpec
from masterkey.core.errors import ConfigError
from masterkey.nets.checkpoints import fetch_weights, load_checkpoint
from masterkey.nets.depthwise import extract_kernels
from masterkey.nets.layouts import load_weights_file, positional_mapping

ARCH = "convnext_atto"
TINY = {"dims": [8, 16, 24, 32], "depths": [1, 1, 2, 1]}  # a ConvNeXt small enough to be fast


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return timm.create_model(ARCH, pretrained=False, **TINY).eval()


def fetch(tmp_path, **spec):
    """fetch_weights of ModelSpec(**spec) into tmp_path, then load_checkpoint: (model, sidecar)."""
    spec.setdefault("name", ARCH)
    spec.setdefault("model_kwargs", TINY)
    fetch_weights(ModelSpec(**spec), tmp_path / "w.safetensors", tmp_path / "w.json")
    return load_checkpoint(tmp_path / "w.safetensors", tmp_path / "w.json")


def assert_weights(model, state_dict):
    loaded = model.state_dict()
    assert loaded.keys() == state_dict.keys()
    for key, tensor in state_dict.items():
        torch.testing.assert_close(loaded[key], tensor, rtol=0, atol=0)


def test_wrapped_training_checkpoint_takes_raw_weights_and_records_the_choice(tmp_path, reference):
    raw = reference.state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in raw.items()}
    path = tmp_path / "train.pth"
    torch.save({"model": raw, "model_ema": ema, "epoch": 3, "args": argparse.Namespace(lr=0.1)}, path)
    model, meta = fetch(tmp_path, weights=str(path))
    assert meta["checkpoint_entry"] == "model" and meta["checkpoint_entries"] == ["model", "model_ema"]
    assert meta["source_dtype"] == "float32" and meta["key_mapping"] == "names"
    assert_weights(model, raw)


def test_ema_only_checkpoint_with_ddp_prefix(tmp_path, reference):
    ema = {f"module.{k}": v for k, v in reference.state_dict().items()}
    torch.save({"state_dict_ema": ema}, tmp_path / "ema.pth")
    model, meta = fetch(tmp_path, weights=str(tmp_path / "ema.pth"))
    assert meta["checkpoint_entry"] == "state_dict_ema" and meta["removed_prefixes"] == ["module."]
    assert_weights(model, reference.state_dict())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_file_is_cast_to_float32(tmp_path, reference, dtype):
    half = {k: v.to(dtype) if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    safetensors.torch.save_file(half, str(tmp_path / "half.safetensors"))
    model, meta = fetch(tmp_path, weights=str(tmp_path / "half.safetensors"))
    assert meta["source_dtype"] == str(dtype).removeprefix("torch.")
    assert all(t.dtype != dtype for t in model.state_dict().values())
    assert_weights(model, {k: v.float() if v.is_floating_point() else v for k, v in half.items()})


def to_facebook_layout(state_dict):
    """timm ConvNeXt / ConvNeXt V2 keys -> the facebookresearch repositories' keys (inverse of
    timm's convnext.checkpoint_filter_fn)."""
    out = {}
    for key, value in state_dict.items():
        key = key.replace("stem.", "downsample_layers.0.")
        key = re.sub(r"stages\.(\d+)\.downsample\.(\d+)", r"downsample_layers.\1.\2", key)
        key = re.sub(r"stages\.(\d+)\.blocks\.(\d+)", r"stages.\1.\2", key)
        key = key.replace("conv_dw", "dwconv").replace("mlp.fc", "pwconv")
        if "grn" in key:
            key = key.replace("mlp.grn.weight", "grn.gamma").replace("mlp.grn.bias", "grn.beta")
            value = value.reshape(1, 1, 1, -1)
        out[key.replace("head.fc.", "head.").replace("head.norm.", "norm.")] = value
    return out


@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto"])
def test_official_facebook_layouts_convert_through_timm(tmp_path, name):
    torch.manual_seed(1)
    state_dict = timm.create_model(name, pretrained=False, **TINY).state_dict()
    facebook = to_facebook_layout(state_dict)
    assert "downsample_layers.0.0.weight" in facebook and "stages.0.0.dwconv.weight" in facebook
    torch.save({"model": facebook}, tmp_path / "fb.pth")
    model, meta = fetch(tmp_path, name=name, weights=str(tmp_path / "fb.pth"))
    assert meta["checkpoint_entry"] == "model"
    assert_weights(model, state_dict)


def test_foreign_key_layout_one_message_then_positional_mapping(tmp_path, reference):
    renamed = {f"backbone.{k}": v for k, v in reference.state_dict().items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(ConfigError) as info:
        fetch(tmp_path, weights=str(tmp_path / "renamed.pth"))
    message = str(info.value)
    assert "Error(s) in loading state_dict" not in message
    assert "0 of its 65 tensors match" in message
    assert "65 keys only in the checkpoint, first: 'backbone.stem.0.weight' (8, 3, 4, 4)" in message
    assert "65 keys only in the network, first: 'stem.0.weight' (8, 3, 4, 4)" in message
    assert "same shapes in the network's order" in message and "'key_mapping: positional'" in message
    assert not (tmp_path / "w.json").exists()
    model, meta = fetch(tmp_path, weights=str(tmp_path / "renamed.pth"), key_mapping="positional")
    assert meta["key_mapping"] == "positional"
    assert_weights(model, reference.state_dict())


def test_positional_mapping_names_the_first_position_that_differs(reference):
    target = reference.state_dict()
    keys = list(target)
    source = dict(target)
    first, second = keys[0], keys[1]  # stem.0.weight (8, 3, 4, 4) and stem.0.bias (8,) swapped
    source = {second: target[second], first: target[first], **{k: target[k] for k in keys[2:]}}
    with pytest.raises(ConfigError) as info:
        positional_mapping(source, target)
    assert (
        "at position 0 the checkpoint's 'stem.0.bias' (8,) torch.float32 meets the network's "
        "'stem.0.weight' (8, 3, 4, 4)" in str(info.value)
    )
    with pytest.raises(ConfigError, match="holds 64 tensors, the network 65"):
        positional_mapping({k: target[k] for k in keys[:-1]}, target)


def test_positional_mapping_refuses_safetensors(tmp_path, reference):
    safetensors.torch.save_file(reference.state_dict(), str(tmp_path / "w.safetensors"))
    model = timm.create_model(ARCH, **TINY)
    with pytest.raises(ConfigError, match="safetensors files store tensors sorted"):
        load_weights_file(model, tmp_path / "w.safetensors", "positional")


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=f"cannot read weights file {tmp_path / 'junk.pth'}"):
        load_weights_file(timm.create_model(ARCH, **TINY), tmp_path / "junk.pth")


def test_architecture_options_are_recorded_and_rebuilt(tmp_path):
    torch.manual_seed(2)
    large = timm.create_model(ARCH, kernel_sizes=11).state_dict()
    torch.save(large, tmp_path / "k11.pth")
    model, meta = fetch(tmp_path, weights=str(tmp_path / "k11.pth"), model_kwargs={"kernel_sizes": 11})
    assert meta["model_kwargs"] == {"kernel_sizes": 11} and meta["timm_name"] == ARCH
    assert_weights(model, large)
    arrays, _ = extract_kernels(model, ARCH)
    assert list(arrays) == ["11x11"] and arrays["11x11"].shape == (1840, 11, 11)

    torch.save(timm.create_model(ARCH).state_dict(), tmp_path / "k7.pth")
    with pytest.raises(ConfigError) as info:
        fetch(tmp_path, weights=str(tmp_path / "k7.pth"), model_kwargs={"kernel_sizes": 11})
    message = str(info.value)
    assert "does not fit timm 'convnext_atto' with model_kwargs {'kernel_sizes': 11}" in message
    assert "116 of its 128 tensors match by name and shape; 12 shape mismatches" in message
    assert (
        "'stages.0.blocks.0.conv_dw.weight': checkpoint (40, 1, 7, 7) vs network (40, 1, 11, 11)" in message
    )
    assert (
        "'stages.3.blocks.1.conv_dw.weight': checkpoint (320, 1, 7, 7) vs network (320, 1, 11, 11)" in message
    )
    assert "'model_kwargs'" in message and "key_mapping" not in message
