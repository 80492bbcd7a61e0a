"""The neural implicit frequency filter (NIFF) depthwise layer of [D], written for this project.

A NIFF layer replaces a stride-1 depthwise convolution on a feature map of size ``H x W`` by a
per-channel multiplication in the Fourier domain, i.e. a circular convolution with a kernel as
large as the feature map.  The complex frequency response ``W[c, v, u]`` (``v`` vertical, ``u``
horizontal, centred DFT order as ``fftshift`` gives it) is the output of two small coordinate
MLPs (real and imaginary part, each ``2 -> 16 -> 128 -> 32 -> C`` with SiLU between, biases on)
evaluated at every frequency of the grid, so the layer has ``12704 + 66 C`` parameters whatever
the input size.  docs/methods.md section 7.

Conventions
-----------
* Coordinates fed to the MLPs, per frequency, in the order ``(horizontal, vertical)`` as the
  reference code has them: ``index`` (default, the reference's) are the integer DFT indices
  ``-(N//2) .. (N-1)//2`` (for even ``N`` exactly the reference's ``arange(-N/2, N/2)``; for odd
  ``N`` the reference fed half-integers with DC at ``-0.5``, here DC is at 0); ``cycles`` are the
  frequencies in cycles per sample, ``fftshift(fftfreq(N))`` in ``[-0.5, 0.5)``, the same range
  for every ``N``.
* Output ``y = Re(ifft2(fft2(x) * W))`` per channel (``padding="circular"``).  Since ``x`` is real
  this equals the circular convolution of ``x`` with the spatial kernel
  ``k_c = fftshift(Re(ifft2(ifftshift(W_c))))`` (origin at index ``(H//2, W//2)``), whose DFT is
  the Hermitian part of ``W``; ``route="rfft"`` (default) computes exactly that with
  ``rfft2``/``irfft2``, ``route="complex"`` as the reference does.
* ``padding="zeros"``: the same kernel ``k_c`` applied as a linear ("same") convolution of the
  zero-padded map (FFT size ``2H x 2W``, no wrap-around).
* The frequency grid is built for each input size on first use and cached per size, device and
  dtype (not stored in the state dict): the layer accepts any ``H x W``, square or not, and a new
  size between calls.  The response is evaluated in float32 with autocast off (FFTs do not take
  bfloat16), or float64 for a float64 layer; the output has the input's dtype.

Reference
---------
[D] J. Grabinski, J. Keuper, M. Keuper. As large as it gets - Studying infinitely large
convolutions via neural implicit frequency filters. TMLR 2024.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "COORDINATES",
    "PADDINGS",
    "ROUTES",
    "MLP_WIDTHS",
    "frequency_grid",
    "coordinate_mlp",
    "NIFFConv2d",
]

COORDINATES = ("index", "cycles")
PADDINGS = ("circular", "zeros")
ROUTES = ("rfft", "complex")
MLP_WIDTHS = (16, 128, 32)
"""Hidden widths of each coordinate MLP ([D]'s large variant: ``2 -> 16 -> 128 -> 32 -> C``)."""


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"NIFF {name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def frequency_grid(height: int, width: int, coordinates: str = "index", *, device=None,
                   dtype=torch.float32) -> torch.Tensor:  # fmt: skip
    """The centred DFT grid of an ``height x width`` map: ``(height, width, 2)``, entry
    ``[v, u] = (horizontal, vertical)`` frequency of row ``v``, column ``u`` of the ``fftshift``-ed
    spectrum, in DFT indices (``coordinates="index"``) or cycles per sample (``"cycles"``).

    Raises ``ValueError`` for an unknown convention or a size below 1.
    """
    _check_choice("coordinates", coordinates, COORDINATES)
    if height < 1 or width < 1:
        raise ValueError(f"NIFF frequency grid needs a positive size, got {height}x{width}")
    axes = []
    for n in (height, width):
        f = torch.fft.fftshift(torch.fft.fftfreq(n, dtype=torch.float64))
        axes.append((f * n).round() if coordinates == "index" else f)
    fy, fx = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([fx, fy], dim=-1).to(device=device, dtype=dtype)


def coordinate_mlp(channels: int, widths: tuple[int, ...] = MLP_WIDTHS) -> nn.Sequential:
    """``2 -> widths... -> channels`` linear layers with SiLU between (1x1 convolutions over the
    frequency grid in [D]'s code; same parameters, PyTorch's default initialisation as there)."""
    sizes = (2, *widths, channels)
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def _hermitian_part(response: torch.Tensor) -> torch.Tensor:
    """``(W(f) + conj(W(-f))) / 2`` of a response in unshifted DFT order ``(..., H, W)``.

    A constant imaginary response has no Hermitian part: the output bias of the imaginary MLP
    never changes the layer's output (its gradient is zero), in [D]'s code as here."""
    flipped = torch.roll(torch.flip(response, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
    return 0.5 * (response + flipped.conj())


class NIFFConv2d(nn.Module):
    """A NIFF depthwise layer of ``channels`` channels (see the module docstring).

    Input and output ``(B, channels, H, W)``, any ``H, W >= 1``.  Options: ``coordinates``
    (``index`` | ``cycles``), ``padding`` (``circular`` | ``zeros``), ``route`` (``rfft`` |
    ``complex``; circular padding only, the zero-padded route is always real).  No bias, as in
    [D].  Raises ``ValueError`` for an unknown option or an input whose channel count differs.
    """

    def __init__(self, channels: int, *, coordinates: str = "index", padding: str = "circular",
                 route: str = "rfft", widths: tuple[int, ...] = MLP_WIDTHS):  # fmt: skip
        super().__init__()
        self.channels = int(channels)
        self.coordinates = _check_choice("coordinates", coordinates, COORDINATES)
        self.padding = _check_choice("padding", padding, PADDINGS)
        self.route = _check_choice("route", route, ROUTES)
        self.mlp_real = coordinate_mlp(self.channels, tuple(widths))
        self.mlp_imag = coordinate_mlp(self.channels, tuple(widths))
        self._grids: dict[tuple, torch.Tensor] = {}

    def extra_repr(self) -> str:
        return f"{self.channels}, coordinates={self.coordinates}, padding={self.padding}, route={self.route}"

    def _grid(self, height: int, width: int, device, dtype) -> torch.Tensor:
        key = (height, width, str(device), dtype)
        if key not in self._grids:
            with torch.inference_mode(False):  # a grid first built during evaluation serves training too
                self._grids[key] = frequency_grid(height, width, self.coordinates, device=device, dtype=dtype)
        return self._grids[key]

    def frequency_response(self, height: int, width: int) -> torch.Tensor:
        """``W``: complex ``(channels, height, width)`` in centred (``fftshift``) order; complex128
        when the MLPs are float64, else complex64."""
        weight = self.mlp_real[0].weight
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=weight.device.type, enabled=False):
            grid = self._grid(height, width, weight.device, weight.dtype).reshape(-1, 2)
            real = self.mlp_real(grid).to(dtype)
            imag = self.mlp_imag(grid).to(dtype)
        return torch.complex(real, imag).T.reshape(self.channels, height, width)

    def transfer_function(self, height: int, width: int) -> torch.Tensor:
        """The DFT of the spatial kernel, unshifted order: the Hermitian part of ``W``,
        complex64 ``(channels, height, width)``."""
        unshifted = torch.fft.ifftshift(self.frequency_response(height, width), dim=(-2, -1))
        return _hermitian_part(unshifted)

    def spatial_kernels(self, height: int, width: int) -> torch.Tensor:
        """``k_c``: float32 ``(channels, height, width)``, centred: the kernel's origin (zero
        offset) at index ``(height // 2, width // 2)``; the layer's output is the circular
        convolution of its input with these kernels (padding ``circular``)."""
        unshifted = torch.fft.ifftshift(self.frequency_response(height, width), dim=(-2, -1))
        return torch.fft.fftshift(torch.fft.ifft2(unshifted).real, dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(
                f"NIFFConv2d({self.channels}) expects (B, {self.channels}, H, W), got {tuple(x.shape)}"
            )
        height, width = x.shape[-2:]
        dtype = x.dtype
        x = x.double() if dtype == torch.float64 else x.float()
        with torch.autocast(device_type=x.device.type, enabled=False):
            if self.padding == "zeros":
                y = self._linear(x, height, width)
            elif self.route == "rfft":
                transfer = self.transfer_function(height, width)[..., : width // 2 + 1]
                y = torch.fft.irfft2(torch.fft.rfft2(x) * transfer, s=(height, width))
            else:
                unshifted = torch.fft.ifftshift(self.frequency_response(height, width), dim=(-2, -1))
                y = torch.fft.ifft2(torch.fft.fft2(x) * unshifted).real
        return y.to(dtype)

    def _linear(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Zero-padded ("same") convolution with the kernels of :meth:`spatial_kernels`."""
        kernel = torch.fft.ifftshift(self.spatial_kernels(height, width), dim=(-2, -1))  # origin at [0, 0]
        size = (2 * height, 2 * width)
        padded = kernel.new_zeros(self.channels, *size)
        rows = (height - height // 2, height // 2)  # non-negative and negative offsets
        cols = (width - width // 2, width // 2)
        padded[:, : rows[0], : cols[0]] = kernel[:, : rows[0], : cols[0]]
        if rows[1]:
            padded[:, -rows[1] :, : cols[0]] = kernel[:, rows[0] :, : cols[0]]
        if cols[1]:
            padded[:, : rows[0], -cols[1] :] = kernel[:, : rows[0], cols[0] :]
        if rows[1] and cols[1]:
            padded[:, -rows[1] :, -cols[1] :] = kernel[:, rows[0] :, cols[0] :]
        spectrum = torch.fft.rfft2(x, s=size) * torch.fft.rfft2(padded)
        return torch.fft.irfft2(spectrum, s=size)[..., :height, :width]
