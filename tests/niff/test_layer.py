"""The NIFF layer ([D]; docs/methods.md section 7): its output is a circular (or zero-padded linear)
convolution with its own spatial kernels, the rfft and complex routes agree, gradients reach both
MLPs, any map size works and sizes may change, the frequency grid conventions, the parameter count,
the kernel mass at initialisation, double precision, and bad options rejected."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from masterkey.niff import COORDINATES, NIFFConv2d, frequency_grid, kernel_mass_ratio, niff_parameter_count

SIZES = [(8, 8), (9, 12), (7, 7), (6, 11), (2, 3), (1, 5)]
"""Map sizes: square even, non-square (odd x even and even x odd), odd square, tiny ones."""


def make_layer(channels=3, seed=0, **options) -> NIFFConv2d:
    torch.manual_seed(seed)
    return NIFFConv2d(channels, **options)


def make_input(height, width, channels=3, batch=2, seed=1) -> torch.Tensor:
    return torch.randn(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def circular_convolution(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """``y[b, c, i, j] = sum_{a, b'} k[c, a, b'] x[b, c, i - (a - H//2), j - (b' - W//2)]`` (indices
    mod H, W): each kernel tap is a rolled copy of the input, in float64."""
    x, kernels = x.double(), kernels.double()
    height, width = x.shape[-2:]
    y = torch.zeros_like(x)
    for a in range(height):
        for b in range(width):
            shifted = torch.roll(x, shifts=(a - height // 2, b - width // 2), dims=(-2, -1))
            y += kernels[None, :, a, b, None, None] * shifted
    return y


def same_linear_convolution(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """The same sum with zeros outside the map: ``conv2d`` (a correlation) of the zero-padded input
    with the flipped kernels, padded so that kernel index ``(H//2, W//2)`` is the zero offset."""
    height, width = x.shape[-2:]
    pad = (width - 1 - width // 2, width // 2, height - 1 - height // 2, height // 2)  # left right top bottom
    weight = torch.flip(kernels.double(), dims=(-2, -1))[:, None]
    return F.conv2d(F.pad(x.double(), pad), weight, groups=len(kernels))


@pytest.mark.parametrize("coordinates", COORDINATES)
@pytest.mark.parametrize("height, width", SIZES)
def test_output_is_circular_convolution_with_spatial_kernels(height, width, coordinates):
    layer = make_layer(coordinates=coordinates)
    x = make_input(height, width)
    with torch.no_grad():
        y = layer(x)
        expected = circular_convolution(x, layer.spatial_kernels(height, width))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert expected.abs().max() > 1e-2  # not a vacuous comparison
    torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("height, width", SIZES)
def test_rfft_route_equals_complex_route(height, width):
    """The reference's complex route ``Re(ifft2(fft2(x) W))`` and the Hermitian rfft route."""
    fast = make_layer(route="rfft")
    reference = NIFFConv2d(3, route="complex")
    reference.load_state_dict(fast.state_dict())
    x = make_input(height, width)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("height, width", SIZES)
def test_zeros_padding_is_same_linear_convolution(height, width):
    layer = make_layer(padding="zeros")
    x = make_input(height, width)
    with torch.no_grad():
        y = layer(x)
        kernels = layer.spatial_kernels(height, width)
        circular = make_layer(padding="circular")(x)
    torch.testing.assert_close(y.double(), same_linear_convolution(x, kernels), rtol=1e-5, atol=1e-5)
    if height > 1 or width > 1:  # the padding matters wherever the kernel has more than one tap
        assert not torch.allclose(y, circular, atol=1e-4)


def test_kernels_and_response_follow_the_grid():
    """``W[c, v, u]`` is the MLPs at grid point ``[v, u]`` (centred order), and the spatial kernel is
    ``fftshift(Re(ifft2(ifftshift(W))))``, whose DFT is the transfer function (the Hermitian part)."""
    layer = make_layer(channels=4)
    height, width = 5, 8
    with torch.no_grad():
        response = layer.frequency_response(height, width)
        grid = frequency_grid(height, width)
        for v, u in [(0, 0), (2, 4), (4, 7), (1, 3)]:
            point = grid[v, u]
            torch.testing.assert_close(response[:, v, u].real, layer.mlp_real(point))
            torch.testing.assert_close(response[:, v, u].imag, layer.mlp_imag(point))
        kernels = layer.spatial_kernels(height, width)
        shifted_back = torch.fft.ifftshift(kernels, dim=(-2, -1))
        torch.testing.assert_close(torch.fft.fft2(shifted_back), layer.transfer_function(height, width),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip
    assert response.shape == (4, height, width) and response.dtype == torch.complex64
    assert kernels.shape == (4, height, width) and kernels.dtype == torch.float32


@pytest.mark.parametrize("options", [{"route": "rfft"}, {"route": "complex"}, {"padding": "zeros"}])
def test_gradients_reach_both_mlps(options):
    """Every MLP parameter gets a gradient, except the imaginary MLP's output bias: a constant
    imaginary response ``i b`` adds ``Re(i b x) = 0`` to the output, so its gradient is zero
    (analytically, on every route) while every other parameter's is not."""
    layer = make_layer(**options)
    x = make_input(9, 12)
    target = make_input(9, 12, seed=2)
    ((layer(x) - target) ** 2).mean().backward()
    for mlp_name in ("mlp_real", "mlp_imag"):
        for name, parameter in getattr(layer, mlp_name).named_parameters():
            assert parameter.grad is not None, f"{mlp_name}.{name}"
            if mlp_name == "mlp_imag" and name == f"{len(layer.mlp_imag) - 1}.bias":
                assert parameter.grad.abs().max() < 1e-6
            else:
                assert parameter.grad.abs().max() > 1e-6, f"{mlp_name}.{name} has no gradient"
                assert torch.isfinite(parameter.grad).all()


def test_size_change_between_calls():
    layer = make_layer()
    first_x, other_x = make_input(8, 8), make_input(11, 6, seed=3)
    with torch.no_grad():
        first = layer(first_x)
        other = layer(other_x)
        again = layer(first_x)
        expected_other = circular_convolution(other_x, layer.spatial_kernels(11, 6))
    assert other.shape == (2, 3, 11, 6)
    torch.testing.assert_close(other.double(), expected_other, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, first, rtol=0, atol=0)


def test_grid_built_in_inference_mode_serves_training():
    layer = make_layer()
    x = make_input(6, 6)
    with torch.inference_mode():
        evaluated = layer(x)
    y = layer(x)
    (y * make_input(6, 6, seed=2)).sum().backward()
    torch.testing.assert_close(y.detach(), evaluated)
    assert layer.mlp_real[0].weight.grad.abs().max() > 0


@pytest.mark.parametrize("height, width", [(4, 4), (5, 8), (1, 3)])
def test_frequency_grid_conventions(height, width):
    """``index``: integer DFT indices ``-N//2 .. (N-1)//2``; ``cycles``: ``fftshift(fftfreq(N))``;
    entry ``[v, u] = (horizontal u, vertical v)``."""
    index = frequency_grid(height, width, "index")
    cycles = frequency_grid(height, width, "cycles")
    assert index.shape == cycles.shape == (height, width, 2) and index.dtype == torch.float32
    rows = np.arange(-(height // 2), (height - 1) // 2 + 1)
    cols = np.arange(-(width // 2), (width - 1) // 2 + 1)
    np.testing.assert_array_equal(index[..., 0].numpy(), np.broadcast_to(cols, (height, width)))
    np.testing.assert_array_equal(index[..., 1].numpy(), np.broadcast_to(rows[:, None], (height, width)))
    horizontal, vertical = (np.fft.fftshift(np.fft.fftfreq(n)) for n in (width, height))
    np.testing.assert_allclose(
        cycles[..., 0].numpy(), np.broadcast_to(horizontal, (height, width)), atol=1e-7
    )
    np.testing.assert_allclose(
        cycles[..., 1].numpy(), np.broadcast_to(vertical[:, None], (height, width)), atol=1e-7
    )
    assert index[height // 2, width // 2].abs().sum() == 0  # the DC term at the centre
    if max(height, width) > 1:
        assert not torch.equal(index, cycles)
    assert cycles.abs().max() <= 0.5


def test_cycles_layer_uses_its_grid():
    """Same weights, other coordinates: other kernels (the layer really feeds its own grid)."""
    index = make_layer(coordinates="index")
    cycles = NIFFConv2d(3, coordinates="cycles")
    cycles.load_state_dict(index.state_dict())
    with torch.no_grad():
        assert not torch.allclose(index.spatial_kernels(8, 8), cycles.spatial_kernels(8, 8), atol=1e-4)


@pytest.mark.parametrize("channels", [1, 40, 96])
def test_parameter_count(channels):
    layer = NIFFConv2d(channels)
    assert (
        sum(p.numel() for p in layer.parameters()) == niff_parameter_count(channels) == 12704 + 66 * channels
    )
    assert not list(layer.buffers()) and all(
        key.startswith(("mlp_real.", "mlp_imag.")) for key in layer.state_dict()
    )


def test_kernel_mass_at_initialisation():
    """[D]: an untrained NIFF already holds roughly 45 % of its l1 mass in the central 9x9 of a 56x56
    kernel (reference coordinates); the ``cycles`` grid concentrates it differently."""
    ratios = {}
    for coordinates in COORDINATES:
        layer = make_layer(channels=96, seed=0, coordinates=coordinates)
        with torch.no_grad():
            kernels = layer.spatial_kernels(56, 56).numpy()
        ratios[coordinates] = kernel_mass_ratio(kernels, sizes=[9])[1][:, 0]
    assert 0.35 <= ratios["index"].mean() <= 0.55
    assert abs(ratios["cycles"].mean() - ratios["index"].mean()) > 0.05


@pytest.mark.parametrize("options", [{"route": "rfft"}, {"route": "complex"}, {"padding": "zeros"}])
def test_double_precision(options):
    layer = make_layer(**options)
    x = make_input(9, 12)
    with torch.no_grad():
        single = layer(x)
        double = layer.double()(x.double())
    assert double.dtype == torch.float64
    torch.testing.assert_close(double, single.double(), rtol=1e-5, atol=1e-5)


def test_float64_input_to_float32_layer_keeps_its_dtype():
    layer = make_layer()
    x = make_input(5, 7)
    with torch.no_grad():
        y = layer(x.double())
        torch.testing.assert_close(y, layer(x).double())
    assert y.dtype == torch.float64


@pytest.mark.parametrize(
    "option, value", [("coordinates", "radians"), ("padding", "reflect"), ("route", "dct")]
)
def test_unknown_option_rejected(option, value):
    with pytest.raises(ValueError, match=rf"{option}.*{value}"):
        NIFFConv2d(4, **{option: value})


def test_unknown_grid_convention_or_size_rejected():
    with pytest.raises(ValueError, match="coordinates"):
        frequency_grid(4, 4, "radians")
    with pytest.raises(ValueError, match="positive size"):
        frequency_grid(0, 4)


@pytest.mark.parametrize("shape", [(2, 4, 8, 8), (3, 8, 8), (1, 3, 1, 8, 8)])
def test_wrong_input_shape_rejected(shape):
    layer = NIFFConv2d(3)
    with pytest.raises(ValueError, match=r"expects \(B, 3, H, W\)"):
        layer(torch.zeros(shape))
