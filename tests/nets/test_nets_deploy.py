"""Reparameterisable networks: load_checkpoint returns the fused form, whose depthwise kernels are
the ones the network applies; extraction and write-back work on it."""

import numpy as np
import pytest
import timm
import torch
from timm.utils.model import reparameterize_model

from masterkey.nets.checkpoints import load_checkpoint, model_metadata, save_checkpoint
from masterkey.nets.depthwise import (
    apply_kernels,
    count_depthwise_kernels,
    extract_kernels,
    find_depthwise_convs,
)

# name -> (depthwise kernels after fusing, before fusing)
NETWORKS = {"repvit_m0_9": (4416, 4416), "mobileone_s0": (3728, 14912), "fastvit_t8": (3696, 3696)}


def randomized_batchnorm(name: str) -> torch.nn.Module:
    """A timm network (no pretrained weights) whose BatchNorm statistics and affine parameters are
    random, so that fusing them into the convolutions is not an identity."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                shape = module.running_mean.shape
                module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
                module.weight.copy_(0.5 + torch.rand(shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(shape, generator=generator))
    return model.eval()


@pytest.mark.parametrize("name", NETWORKS)
def test_load_checkpoint_fuses_and_extraction_sees_the_applied_kernels(tmp_path, name, capsys):
    fused_count, training_count = NETWORKS[name]
    model = randomized_batchnorm(name)
    meta = save_checkpoint(model, model_metadata(model, name, "test"), tmp_path / "w.st", tmp_path / "w.json")
    assert meta["reparameterizable"] and meta["num_depthwise_kernels"] == fused_count
    assert meta["num_depthwise_kernels_training_form"] == training_count == count_depthwise_kernels(model)

    fused, loaded_meta = load_checkpoint(tmp_path / "w.st", tmp_path / "w.json")
    assert (
        loaded_meta["reparameterized"] is True
        and f"{fused_count:,} depthwise kernels" in capsys.readouterr().out
    )
    unfused, unfused_meta = load_checkpoint(tmp_path / "w.st", tmp_path / "w.json", reparameterize=False)
    assert unfused_meta["reparameterized"] is False and count_depthwise_kernels(unfused) == training_count

    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, actual = model(x), fused(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())

    arrays, index = extract_kernels(fused, name)
    assert len(index) == fused_count
    reference = reparameterize_model(model)  # timm's fusing, independently of load_checkpoint
    for layer in find_depthwise_convs(reference):
        rows = index[index["layer"] == layer.name].sort_values("channel")
        kernels = arrays[layer.kernel_key][rows["row"].to_numpy()]
        np.testing.assert_array_equal(kernels, layer.module.weight.detach().numpy()[:, 0])
    trained, _ = extract_kernels(unfused, name)
    assert any(
        k not in trained or trained[k].shape != a.shape or not np.allclose(trained[k], a)
        for k, a in arrays.items()
    )

    rng = np.random.default_rng(3)
    replaced = {key: rng.normal(size=a.shape).astype(np.float32) for key, a in arrays.items()}
    apply_kernels(fused, replaced, index)
    again, again_index = extract_kernels(fused, name)
    columns = ["layer", "channel", "kernel_size", "row"]
    assert again_index[columns].equals(index[columns])
    for key in arrays:
        np.testing.assert_array_equal(again[key], replaced[key])


def test_networks_without_fusing_are_returned_unchanged(tmp_path):
    model = timm.create_model("convnext_atto", pretrained=False, dims=[8, 16, 24, 32], depths=[1, 1, 1, 1])
    kwargs = {"dims": [8, 16, 24, 32], "depths": [1, 1, 1, 1]}
    meta = model_metadata(model, "convnext_atto", "test", kwargs)
    save_checkpoint(model, meta, tmp_path / "w.st", tmp_path / "w.json")
    loaded, loaded_meta = load_checkpoint(tmp_path / "w.st", tmp_path / "w.json")
    assert loaded_meta["reparameterized"] is False and not meta["reparameterizable"]
    assert "num_depthwise_kernels_training_form" not in meta
    assert loaded.state_dict().keys() == model.state_dict().keys()
