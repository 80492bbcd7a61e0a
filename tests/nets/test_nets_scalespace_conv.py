"""The depthwise layer of idealized scale-space filters with learnable scales and the conversion of a network
(:mod:`masterkey.nets.scalespace_conv`; docs/methods.md sections 1, 3 and 5)."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from torch import nn
from torch.func import functional_call

from masterkey.nets.depthwise import apply_kernels, extract_kernels
from masterkey.nets.scalespace_conv import ScaleSpaceConv2d, to_scalespace
from masterkey.replacement.build import idealized_kernels
from masterkey.scalespace.differentiable import sampled_gaussian_profiles
from masterkey.scalespace.models import fit_model_kernels
from masterkey.scalespace.templates import TYPE_NAMES, idealized_templates, templates_from_profiles

TYPES = list(TYPE_NAMES) + [None]  # every type and a constant channel
SIGMA_X = np.array([0.4, 0.7, 1.1, 1.5, 0.9, 1.3, 0.6, 1.8, 0.5, 1.2, 0.8, 1.4, 1.0])
SIGMA_Y = np.where(np.isin(TYPES, ["lap", "id-lap"]), SIGMA_X, SIGMA_X[::-1])
ALPHA = np.where(np.array(TYPES) == "id-lap", 0.6, np.nan)


def planted_layer(k=5, **kwargs):
    amplitude = np.linspace(-1.5, 2.0, len(TYPES))
    offset = np.linspace(-0.2, 0.3, len(TYPES))
    options = {"dtype": torch.float64, **kwargs}
    return ScaleSpaceConv2d(TYPES, k, SIGMA_X, SIGMA_Y, ALPHA, amplitude, offset, np.arange(13.0), **options)


def expected_kernels(k, amplitude, offset):
    rows = []
    for t, sx, sy, a, b in zip(TYPES, SIGMA_X, SIGMA_Y, amplitude, offset, strict=True):
        template = np.zeros((k, k)) if t is None else idealized_templates(t, k, sx, sy, alpha=0.6)
        rows.append(a * template + b)
    return np.stack(rows)


@pytest.mark.parametrize("k", [3, 7])
def test_kernels_are_the_idealized_templates_at_planted_scales(k):
    layer = planted_layer(k)
    sigmas = layer.sigmas().detach().numpy()[:-1]  # the constant channel has no scale
    assert np.allclose(sigmas, np.stack([SIGMA_X, SIGMA_Y], 1)[:-1], rtol=1e-15, atol=0)
    weight = layer.kernel().detach()
    assert weight.shape == (13, 1, k, k)  # the conv weight layout
    amplitude, offset = layer.amplitude.detach().numpy(), layer.offset.detach().numpy()
    assert np.allclose(weight[:, 0].numpy(), expected_kernels(k, amplitude, offset), rtol=0, atol=1e-14)
    # the same mapping as apply_kernels: kernel h[row, col] of the store -> weight[c, 0] (nothing flipped)
    conv = nn.Conv2d(13, 13, k, padding=k // 2, groups=13, bias=False).double()
    index = pd.DataFrame(
        {"layer": "0", "channel": np.arange(13), "kernel_size": f"{k}x{k}", "row": np.arange(13)}
    )
    apply_kernels(nn.Sequential(conv), {f"{k}x{k}": weight[:, 0].numpy()}, index)
    x = torch.randn(2, 13, 9, 9, dtype=torch.float64)
    assert torch.allclose(layer(x), conv(x) + layer.bias[None, :, None, None], rtol=0, atol=1e-13)


def test_sampled_gaussian_variant():
    layer = planted_layer(5, gaussian="sampled")
    sigma = layer.sigmas().detach()
    profiles = sampled_gaussian_profiles(5, sigma.reshape(-1)).reshape(13, 2, 5)
    for c, t in enumerate(TYPES[:-1]):
        template = templates_from_profiles(t, profiles[c, 0], profiles[c, 1], 0.6)
        expected = layer.amplitude[c] * template + layer.offset[c]
        assert torch.allclose(layer.kernel()[c, 0], expected, rtol=0, atol=1e-14)
    assert not torch.allclose(layer.kernel(), planted_layer(5).kernel(), atol=1e-3)


def test_gradcheck_of_the_output_in_all_parameters():
    layer = planted_layer(3)
    x = torch.randn(1, 13, 3, 3, dtype=torch.float64)
    names = ["raw_scale", "alpha", "amplitude", "offset"]

    def output(*values):
        return functional_call(layer, dict(zip(names, values, strict=True)), (x,))

    inputs = tuple(getattr(layer, name).detach().clone().requires_grad_() for name in names)
    assert torch.autograd.gradcheck(output, inputs)  # full Jacobians: 53 parameters x 117 outputs


def test_training_moves_the_scales_above_the_floor_and_is_deterministic():
    def train(trainable=("scales", "alpha", "amplitude", "offset"), steps=5, lr=0.5, push_down=False):
        torch.manual_seed(0)
        layer = planted_layer(5, trainable=trainable)
        optimiser = torch.optim.Adam([p for p in layer.parameters() if p.requires_grad], lr=lr)
        x, target = (
            torch.randn(4, 13, 8, 8, dtype=torch.float64),
            torch.randn(4, 13, 8, 8, dtype=torch.float64),
        )
        for _ in range(steps):
            optimiser.zero_grad()
            loss = layer.sigmas().sum() if push_down else ((layer(x) - target) ** 2).mean()
            loss.backward()
            optimiser.step()
        return layer

    start, trained = planted_layer(5), train()
    changed = (trained.sigmas() - start.sigmas()).abs().detach().numpy()
    assert (changed[:-1, 0] > 1e-3).all()  # every typed channel's scale learned (not the constant one)
    assert np.array_equal(changed[[10, 11], 1], changed[[10, 11], 0])  # lap, id-lap: one scale
    again = train()
    for (name, p), q in zip(trained.named_parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q), name  # CPU determinism
    squeezed = train(steps=200, lr=5.0, push_down=True)
    assert (squeezed.sigmas() >= squeezed.floor).all() and torch.isfinite(squeezed.kernel()).all()
    assert squeezed.sigmas().min() < 2e-3
    fixed = train(trainable={"amplitude"})
    assert not fixed.raw_scale.requires_grad and not fixed.offset.requires_grad
    for name in ("raw_scale", "alpha", "offset"):
        assert torch.equal(getattr(fixed, name), getattr(start, name)), name
    assert not torch.equal(fixed.amplitude, start.amplitude)


def test_sigmas_round_trip_over_a_wide_range():
    sigma = np.array([1.0001e-3, 0.01, 0.5, 3.0, 40.0])
    layer = ScaleSpaceConv2d(["dx"] * 5, 3, sigma, sigma[::-1], dtype=torch.float64)
    assert np.allclose(layer.sigmas().detach().numpy(), np.stack([sigma, sigma[::-1]], 1), rtol=1e-14, atol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"types": ["dz"]}, "unknown scale-space type"),
        ({"kernel_size": 4}, "odd positive"),
        ({"sigma_x": -1.0}, "not finite or not above the floor"),
        ({"sigma_x": float("nan")}, "not finite or not above the floor"),
        ({"sigma_x": 5e-4}, "not above the floor"),
        ({"types": ["lap"], "sigma_y": 0.5}, "single scale"),
        ({"types": ["id-lap"]}, "finite alpha"),
        ({"sigma_x": [1.0, 2.0]}, "one value per channel"),
        ({"gaussian": "continuous"}, "unknown gaussian"),
        ({"trainable": {"scale"}}, "unknown trainable"),
    ],
)
def test_bad_layer_arguments_are_rejected(kwargs, message):
    arguments = {"types": ["dx"], "kernel_size": 5, "sigma_x": 1.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        ScaleSpaceConv2d(arguments.pop("types"), arguments.pop("kernel_size"), **arguments)


# --- a converted network equals the idealized-<method> variant ---------------------------------------


@pytest.fixture(scope="module")
def atto():
    """convnext_atto (random, seeded; layer scales 1 so the depthwise kernels matter) in float64, with its
    kernels and a planted fits table: random types, scales and alpha, some kernels without a fit."""
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", pretrained=False, num_classes=4).double().eval()
    for name, parameter in model.named_parameters():
        if name.endswith("gamma"):
            parameter.data.fill_(1.0)
    arrays, index = extract_kernels(model, "atto")
    rng = np.random.default_rng(0)
    n = len(arrays["7x7"])
    types = rng.choice(np.array(TYPE_NAMES, dtype=object), n)
    types[rng.choice(n, 6, replace=False)] = np.nan  # degenerate kernels: no type
    sigma_x = rng.uniform(0.2, 2.5, n)
    sigma_y = np.where(np.isin(types, ["lap", "id-lap"]), sigma_x, rng.uniform(0.2, 2.5, n))
    sigma_x[np.flatnonzero(types == "dx")[:2]] = np.nan  # a typed kernel without a finite fit
    alpha = np.where(types == "id-lap", rng.uniform(0.1, 1.5, n), np.nan)
    fits = pd.DataFrame({"method": "D1", "kernel_size": "7x7", "filter": np.arange(n), "type": types,
                         "sigma_x": sigma_x, "sigma_y": sigma_y, "alpha": alpha})  # fmt: skip
    other = fits.assign(method="C1", sigma_x=fits["sigma_x"] * 1.1)
    return model, arrays, index, pd.concat([other, fits], ignore_index=True)


def test_converted_network_reproduces_the_idealized_variant(atto):
    model, arrays, index, fits = atto
    exact = {key: array.astype(np.float64) for key, array in arrays.items()}  # float64 variant kernels
    variant = apply_kernels(copy.deepcopy(model), idealized_kernels(exact, fits, "D1")[0], index)
    converted, summary = to_scalespace(copy.deepcopy(model), fits, index, "D1")
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, logits, learned = variant(x), converted(x), model(x)
    scale = expected.abs().max()
    assert (logits - expected).abs().max() <= 1e-10 * scale
    assert (learned - expected).abs().max() > 1e-2 * scale  # the replacement matters (negative control)
    assert len(summary.layers) == 12 and summary.kept == ()
    assert sum(summary.channels.values()) == len(arrays["7x7"]) and summary.channels["constant"] == 8
    layer = converted.get_submodule(summary.layers[3])
    assert isinstance(layer, ScaleSpaceConv2d) and layer.raw_scale.dtype == torch.float64
    assert torch.equal(layer.bias, model.get_submodule(summary.layers[3]).bias)
    frozen, _ = to_scalespace(copy.deepcopy(model), fits, index, "D1", trainable=())
    frozen_layer = frozen.get_submodule(summary.layers[0])
    assert not any(
        getattr(frozen_layer, n).requires_grad for n in ("raw_scale", "alpha", "amplitude", "offset")
    )
    assert frozen_layer.bias.requires_grad


def test_conversion_with_the_project_fits_of_a_small_network():
    """Real D1 fits (fit_model_kernels) of a network with 3x3, 5x5, a band 1x9 layer and a constant kernel."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(4, 4, 3, padding=1, groups=4),
        nn.GELU(),
        nn.Conv2d(4, 4, 5, padding=2, groups=4, bias=False),
        nn.Conv2d(4, 4, (1, 9), padding=(0, 4), groups=4),
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=4),
    ).double()
    with torch.no_grad():
        model[0].weight[1] = 0.3
    arrays, index = extract_kernels(model, "toy")
    fits = fit_model_kernels(arrays, index, "toy", methods=["D1"])
    variant = apply_kernels(copy.deepcopy(model), idealized_kernels(arrays, fits, "D1")[0], index)
    converted, summary = to_scalespace(copy.deepcopy(model), fits, index, "D1", gaussian="discrete")
    assert summary.layers == ("0", "2", "4") and summary.kept == ("3",) and summary.channels["constant"] == 1
    assert type(converted[3]) is nn.Conv2d and isinstance(converted[4], ScaleSpaceConv2d)
    x = torch.randn(2, 4, 10, 10, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(
            converted(x), variant(x), rtol=0, atol=1e-6
        )  # the variant's kernels are float32


def test_conversion_rejects_fits_and_indexes_that_do_not_match(atto):
    model, arrays, index, fits = atto
    with pytest.raises(ValueError, match="unknown fitting method"):
        to_scalespace(copy.deepcopy(model), fits, index, "E")
    with pytest.raises(ValueError, match="has 1839 rows for method D1 and kernel size 7x7"):
        to_scalespace(copy.deepcopy(model), fits.drop(index=len(fits) - 1), index, "D1")
    with pytest.raises(ValueError, match="does not list the model's depthwise layers"):
        to_scalespace(copy.deepcopy(model), fits, index[index["layer"] != index["layer"].iloc[0]], "D1")
    other = timm.create_model("convnext_atto", pretrained=False, num_classes=4).double()
    with pytest.raises(ValueError, match="differ from the kernel index"):
        to_scalespace(other, fits, index, "D1")
    small = fits.assign(sigma_x=np.where(fits["type"] == "dxx", 1e-4, fits["sigma_x"]))
    with pytest.raises(ValueError, match=r"layer stages\.\d\.blocks\.\d\.conv_dw: .* not above the floor"):
        to_scalespace(copy.deepcopy(model), small, index, "D1")
