"""Checkpoints: timm's loading path offline (hub cache, local file), round trip, bad inputs."""

import json

import pytest
import safetensors.torch
import timm
import torch

from masterkey.core.config import ModelSpec
from masterkey.core.errors import ConfigError, StaleFileError, UserError
from masterkey.core.io import sha256_file
from masterkey.nets.checkpoints import (
    check_timm_name,
    fetch_weights,
    load_checkpoint,
    model_metadata,
    read_metadata,
    save_checkpoint,
)

NAME = "convnext_atto.d2_in1k"


@pytest.fixture(scope="module")
def reference_model():
    torch.manual_seed(0)
    return timm.create_model(NAME, pretrained=False).eval()


def assert_same_weights(model_a, model_b):
    a, b = model_a.state_dict(), model_b.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def fill_hub_cache(cache, repo_id, state_dict, revision="0123456789abcdef0123456789abcdef01234567"):
    """Lay out a Hugging Face hub cache entry exactly as huggingface_hub writes it."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    safetensors.torch.save_file(
        {k: v.contiguous() for k, v in state_dict.items()}, str(snapshot / "model.safetensors")
    )


def test_fetch_from_hub_cache_offline(tmp_path, reference_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache = tmp_path / "hub"
    fill_hub_cache(cache, f"timm/{NAME}", reference_model.state_dict())
    meta = fetch_weights(
        ModelSpec(NAME), tmp_path / "w.safetensors", tmp_path / "w.json", hub_cache=str(cache)
    )
    assert meta["architecture"] == "convnext_atto" and meta["tag"] == "d2_in1k"
    assert meta["licence"] == "apache-2.0"
    assert meta["num_depthwise_kernels"] == 1840
    assert meta["num_parameters"] == sum(p.numel() for p in reference_model.parameters())
    assert meta["source"] == "timm hub"
    assert json.loads((tmp_path / "w.json").read_text()) == meta
    model, loaded_meta = load_checkpoint(tmp_path / "w.safetensors", tmp_path / "w.json")
    assert loaded_meta["sha256"] == meta["sha256"] and loaded_meta["reparameterized"] is False
    assert_same_weights(model, reference_model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference_model(x), rtol=0, atol=0)
    # a hub checkpoint built with other architecture options: timm's lines name the mismatch
    with pytest.raises(ConfigError) as info:
        spec = ModelSpec(NAME, model_kwargs={"kernel_sizes": 11})
        fetch_weights(spec, tmp_path / "k.safetensors", tmp_path / "k.json", hub_cache=str(cache))
    assert "size mismatch for stages.0.blocks.0.conv_dw.weight" in str(info.value)
    assert "torch.Size([40, 1, 7, 7])" in str(info.value) and "'model_kwargs'" in str(info.value)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_fetch_from_local_file(tmp_path, reference_model, suffix):
    local = tmp_path / f"ckpt{suffix}"
    if suffix == ".pth":
        torch.save(reference_model.state_dict(), local)
    else:
        safetensors.torch.save_file(reference_model.state_dict(), str(local))
    meta = fetch_weights(ModelSpec(NAME, weights=str(local)), tmp_path / "w.safetensors", tmp_path / "w.json")
    assert meta["source"] == f"local file {local}"
    assert meta["weights_source"] == {
        "kind": "file",
        "path": str(local),
        "sha256": sha256_file(local),
        "size_bytes": local.stat().st_size,
    }
    # what is known about a plain file: the tag its config name gives, no licence, no hub address
    assert meta["tag"] == "d2_in1k" and meta["licence"] is None and "hf_hub_id" not in meta["pretrained_cfg"]
    assert meta["checkpoint_entry"] is None and meta["source_dtype"] == "float32"
    model, _ = load_checkpoint(tmp_path / "w.safetensors", tmp_path / "w.json")
    assert_same_weights(model, reference_model)
    untagged = fetch_weights(
        ModelSpec("convnext_atto", weights=str(local)), tmp_path / "u.st", tmp_path / "u.json"
    )
    assert untagged["tag"] is None and untagged["timm_name"] == "convnext_atto"


def test_convnextv2_sidecar_carries_the_licence_note():
    model = timm.create_model("convnextv2_atto.fcmae_ft_in1k", pretrained=False)
    meta = model_metadata(model, "convnextv2_atto.fcmae_ft_in1k", source="test", hub=True)
    assert meta["licence"] == "cc-by-nc-4.0" and meta["tag"] == "fcmae_ft_in1k"
    assert "non-commercial" in meta["licence_note"]
    local = model_metadata(model, "convnextv2_atto", source="a local file")  # timm's default cfg is not it
    assert local["licence"] is None and local["tag"] is None and "non-commercial" in local["licence_note"]


def test_offline_without_cache_names_model_and_both_remedies(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError) as info:
        fetch_weights(
            ModelSpec(NAME),
            tmp_path / "w.safetensors",
            tmp_path / "w.json",
            hub_cache=str(tmp_path / "empty"),
        )
    message = str(info.value)
    assert NAME in message and "hub cache" in message and "'weights'" in message
    assert not list(tmp_path.glob("w*")) and not list(tmp_path.glob(".w*"))


def test_unknown_timm_name_lists_close_matches():
    with pytest.raises(ConfigError) as info:
        check_timm_name(ModelSpec("convnext_tinny.fb_in1k"))
    assert info.value.key == "models"
    assert "config key models: unknown timm model 'convnext_tinny.fb_in1k'" in str(info.value)
    assert "convnext_tiny.fb_in1k" in str(info.value)
    with pytest.raises(ConfigError, match="names an architecture, not a checkpoint.*convnext_tiny.fb_in1k"):
        check_timm_name(ModelSpec("convnext_tiny"))
    check_timm_name(ModelSpec("convnext_tiny", weights="local.pth"))  # architecture + local file is fine


def test_missing_and_mismatched_local_files(tmp_path):
    with pytest.raises(ConfigError) as info:
        fetch_weights(
            ModelSpec(NAME, weights=str(tmp_path / "nope.pth")), tmp_path / "w.st", tmp_path / "w.json"
        )
    assert info.value.key == "models"
    assert f"local weights file {tmp_path / 'nope.pth'} does not exist" in str(info.value)
    other = tmp_path / "other.safetensors"
    safetensors.torch.save_file(timm.create_model("efficientnet_b0").state_dict(), str(other))
    with pytest.raises(ConfigError) as info:
        fetch_weights(ModelSpec(NAME, weights=str(other)), tmp_path / "w.st", tmp_path / "w.json")
    message = str(info.value)
    assert f"local file {other} does not fit timm '{NAME}': 0 of its 128 tensors match" in message
    assert "360 keys only in the checkpoint" in message and "128 keys only in the network" in message
    assert "timm.models.convnext.checkpoint_filter_fn could not convert it (KeyError)" in message
    assert not (tmp_path / "w.st").exists() and not (tmp_path / "w.json").exists()


def test_corrupt_weights_fail_the_checksum(tmp_path, reference_model):
    save_checkpoint(
        reference_model, model_metadata(reference_model, NAME, "test"), tmp_path / "w.st", tmp_path / "w.json"
    )
    data = bytearray((tmp_path / "w.st").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "w.st").write_bytes(bytes(data))
    with pytest.raises(StaleFileError) as info:
        load_checkpoint(tmp_path / "w.st", tmp_path / "w.json")
    assert info.value.path == tmp_path / "w.st"
    assert f"its sidecar {tmp_path / 'w.json'} records" in str(info.value)
    assert "the file is corrupt or was modified" in str(info.value)


def test_missing_or_foreign_checkpoint_files_are_stale(tmp_path, reference_model):
    weights, meta = tmp_path / "w.st", tmp_path / "w.json"
    with pytest.raises(StaleFileError) as info:
        load_checkpoint(weights, meta)
    assert info.value.path == meta and str(info.value) == f"{meta} does not exist"
    save_checkpoint(reference_model, model_metadata(reference_model, NAME, "test"), weights, meta)
    assert read_metadata(meta)["timm_name"] == NAME
    weights.rename(tmp_path / "moved.st")
    with pytest.raises(StaleFileError) as info:
        load_checkpoint(weights, meta)
    assert info.value.path == weights and str(info.value) == f"{weights} does not exist"
    (tmp_path / "other.json").write_text('{"name": "x"}')
    with pytest.raises(StaleFileError, match="is not a weights sidecar"):
        read_metadata(tmp_path / "other.json")


def test_nan_weights_rejected_before_anything_is_written(tmp_path):
    model = timm.create_model(NAME, pretrained=False)
    with torch.no_grad():
        model.head.fc.weight[0, 0] = float("nan")
    with pytest.raises(UserError, match="head.fc.weight.*NaN"):
        save_checkpoint(model, model_metadata(model, NAME, "test"), tmp_path / "w.st", tmp_path / "w.json")
    assert list(tmp_path.iterdir()) == []
    local = tmp_path / "nan.safetensors"
    safetensors.torch.save_file(model.state_dict(), str(local))
    with pytest.raises(UserError, match="NaN"):
        fetch_weights(ModelSpec(NAME, weights=str(local)), tmp_path / "w.st", tmp_path / "w.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.safetensors"]
