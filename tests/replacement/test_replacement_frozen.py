"""Frozen master key depthwise filters ([Q]; docs/methods.md section 5): assignment, surgery, training."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from masterkey.data.published import BUNDLED_FILTERS, load_master_key_filters
from masterkey.kernels.store import save_kernels
from masterkey.nets.depthwise import extract_kernels, find_depthwise_convs
from masterkey.replacement.frozen import (
    assign_keys,
    freeze_depthwise,
    install_frozen_keys,
    random_keys,
    reference_by_layer,
)

CHANNELS = (8, 16, 32, 64)


def tiny_convnext(kernel_sizes=7, **kwargs):
    torch.manual_seed(0)
    return timm.create_model(
        "convnext_atto", pretrained=False, num_classes=4, dims=CHANNELS, depths=(1, 1, 1, 1),
        kernel_sizes=kernel_sizes, **kwargs,
    )  # fmt: skip


def planted(keys, channels, rng):
    """Reference kernels ``s a keys[j] + b`` with random ``j``, sign ``s``, ``a > 0`` and ``b``."""
    index = rng.integers(0, len(keys), channels)
    sign = rng.choice([-1, 1], channels)
    a = rng.uniform(0.2, 3.0, channels)[:, None, None]
    b = rng.normal(size=channels)[:, None, None]
    return sign[:, None, None] * a * keys[index] + b, index, sign


def test_freeze_depthwise_freezes_only_the_depthwise_weights():
    model = tiny_convnext()
    names = freeze_depthwise(model)
    assert names == [f"stages.{i}.blocks.0.conv_dw.weight" for i in range(4)]
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == set(names)
    assert all(layer.module.bias.requires_grad for layer in find_depthwise_convs(model))


def test_random_keys_reproducible_and_normed_like_the_published_keys():
    published = load_master_key_filters(BUNDLED_FILTERS)
    keys = random_keys(8, 7, seed=3)
    assert keys.shape == published.shape
    np.testing.assert_array_equal(keys, random_keys(8, 7, seed=3))
    assert not np.allclose(keys, random_keys(8, 7, seed=4))
    for filters in (keys, published):  # the published 8 are centre-normed too
        flat = filters.reshape(8, -1)
        np.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="odd"):
        random_keys(8, 4, seed=0)


def test_even_assignment_counts():
    model = tiny_convnext()
    summary = install_frozen_keys(model, random_keys(7, 7, seed=0))
    assert summary["channels"] == sum(CHANNELS) and summary["negative"] == 0
    # per layer c mod 7 over 8, 16, 32 and 64 channels
    assert summary["key_counts"] == {"7x7": [20, 18, 17, 17, 16, 16, 16]}
    assert summary["layers_kept"] == [] and len(summary["layers_replaced"]) == 4
    index, sign = assign_keys(random_keys(3, 5, seed=0), None, channels=5)
    assert index.tolist() == [0, 1, 2, 0, 1] and sign.tolist() == [1] * 5


def test_planted_reference_recovers_index_and_sign():
    keys = random_keys(8, 7, seed=1)
    reference, index, sign = planted(keys, 50, np.random.default_rng(2))
    got_index, got_sign = assign_keys(keys, reference)
    np.testing.assert_array_equal(got_index, index)
    np.testing.assert_array_equal(got_sign, sign)


def test_install_writes_keys_bitwise_and_keeps_other_sizes():
    model = tiny_convnext(kernel_sizes=(7, 7, 5, 5))
    keys = random_keys(6, 7, seed=5).astype(np.float32)
    rng = np.random.default_rng(6)
    layers = find_depthwise_convs(model)
    kept_before = {layer.name: layer.module.weight.detach().clone() for layer in layers[2:]}
    plants = {layer.name: planted(keys, layer.channels, rng) for layer in layers[:2]}
    summary = install_frozen_keys(model, {"7x7": keys}, {name: p[0] for name, p in plants.items()})
    assert summary["layers_replaced"] == [layer.name for layer in layers[:2]]
    assert summary["layers_kept"] == [layer.name for layer in layers[2:]]
    assert summary["channels"] == 24 and sum(summary["key_counts"]["7x7"]) == 24
    assert summary["negative"] == sum(int((p[2] < 0).sum()) for p in plants.values())
    for layer in layers[:2]:
        _, index, sign = plants[layer.name]
        expected = torch.from_numpy(keys[index] * sign[:, None, None].astype(np.float32))
        assert torch.equal(layer.module.weight[:, 0], expected)
        assert not layer.module.weight.requires_grad and layer.module.bias.requires_grad
        assert torch.equal(layer.module.bias, torch.zeros(layer.channels))
    for layer in layers[2:]:
        assert torch.equal(layer.module.weight, kept_before[layer.name]) and layer.module.weight.requires_grad


def test_training_leaves_frozen_keys_bit_identical():
    model = tiny_convnext(kernel_sizes=(7, 7, 7, 5))
    install_frozen_keys(model, random_keys(8, 7, seed=0))
    layers = find_depthwise_convs(model)
    frozen = {f"{layer.name}.weight" for layer in layers[:3]}
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(5):
        images = torch.randn(8, 3, 32, 32, generator=generator)
        labels = torch.randint(0, 4, (8,), generator=generator)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
    for name, p in model.named_parameters():
        if name in frozen:
            assert torch.equal(p, before[name]), name
        else:  # depthwise biases, the kept 5x5 layer, pointwise layers, norms, head
            assert not torch.equal(p, before[name]), name
    assert all(not torch.equal(layer.module.bias, torch.zeros(layer.channels)) for layer in layers[:3])


def test_reference_by_layer_reads_the_kernel_store(tmp_path):
    reference_model = tiny_convnext(kernel_sizes=(7, 7, 5, 5))
    arrays, index = extract_kernels(reference_model, "tiny")
    save_kernels(arrays, index, tmp_path / "k.npz", tmp_path / "k.parquet")
    reference = reference_by_layer(tmp_path / "k.npz", tmp_path / "k.parquet")
    layers = find_depthwise_convs(reference_model)
    assert list(reference) == [layer.name for layer in layers]
    for layer in layers:
        np.testing.assert_array_equal(reference[layer.name], layer.module.weight.detach()[:, 0].numpy())
    keys = {"7x7": random_keys(4, 7, seed=0), "5x5": random_keys(3, 5, seed=0)}
    model = tiny_convnext(kernel_sizes=(7, 7, 5, 5))
    summary = install_frozen_keys(model, keys, reference)
    assert summary["layers_kept"] == [] and summary["channels"] == sum(CHANNELS)
    for layer, trained in zip(find_depthwise_convs(model), layers, strict=True):
        index, sign = assign_keys(keys[layer.kernel_key], reference[trained.name])
        expected = keys[layer.kernel_key][index] * sign[:, None, None]
        np.testing.assert_array_equal(layer.module.weight.detach()[:, 0].numpy(), expected.astype(np.float32))


def test_errors_name_the_problem():
    keys = random_keys(4, 7, seed=0)
    model = tiny_convnext()
    name = find_depthwise_convs(model)[1].name
    reference = {layer.name: np.ones((layer.channels, 7, 7)) for layer in find_depthwise_convs(model)}
    reference[name] = np.ones((8, 7, 7))
    with pytest.raises(ValueError, match=rf"{name}.*\(8, 7, 7\).*\(16, 7, 7\)"):
        install_frozen_keys(model, keys, reference)
    del reference[name]
    with pytest.raises(ValueError, match=f"no kernels for layer {name}"):
        install_frozen_keys(model, keys, reference)
    with pytest.raises(ValueError, match=r"no depthwise convolution has a size with keys.*7x7.*3x3"):
        install_frozen_keys(model, random_keys(4, 3, seed=0))
    with pytest.raises(ValueError, match="stages.0.blocks.0.conv_dw has no bias"):
        install_frozen_keys(tiny_convnext(conv_bias=False), keys)
    # nothing was written by the failed calls
    assert all(layer.module.weight.requires_grad for layer in find_depthwise_convs(model))
