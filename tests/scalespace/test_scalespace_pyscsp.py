"""Independent oracle: masterkey's scale-space templates and spread measures against ``pyscsp``.

``pyscsp`` (T. Lindeberg's discrete scale-space toolbox, PyPI 1.0.3, module ``pyscsp.discscsp``) is
an implementation independent of masterkey: the discrete analogue of the Gaussian
(``make1Ddiscgaussfilter``, ``make1Ddiscgaussderfilter``, ``discgaussconv``; all from
``scipy.special.ive``), central difference masks (``dxmask`` ... ``dxymask``) applied by the N-jet
(``applyNjetfcn``), and the spatial spread of a filter (``filtermean``, ``variance``).  Every type
of :data:`masterkey.scalespace.templates.TYPE_NAMES` has a counterpart.

Convention mapping (docs/methods.md; one entry per difference, each with a negative control that
shows the *wrong* convention fails the same tolerance):

* coordinates: both use ``x = col - c`` to the right and ``y = c - row`` upwards for odd sizes
  (pyscsp: ``filtermean``/``variance`` negate y "according to our convention"; its ``dymask`` has
  ``+1/2`` in the top row).  Even sizes: pyscsp uses ``x = -k/2 .. k/2 - 1``; masterkey rejects them.
* operators: pyscsp *correlates* its masks with the smoothed image; masterkey's templates are the
  equivalent *convolution* kernels (``correlate1d(T, mask)``), so ``convolve(image, template)`` ==
  pyscsp's N-jet of the image.
* non-centred differences: pyscsp has central differences only; forward
  ``delta_+ = delta_0 + delta_xx / 2``, backward ``delta_- = delta_0 - delta_xx / 2``.
* ``lap`` = pyscsp ``'Laplace'`` (``Lxx + Lyy``, 5-point), ``id-lap`` = ``deltafcn - alpha Laplace``.
* normalisation: masterkey templates are not scale-normalised: pyscsp's ``normdermethod='discgauss'``
  (``'nonormalization'``); its default ``'discgaussvar'`` multiplies by ``sigma^(order)``.
* truncation: pyscsp truncates ``T`` where the dropped tail mass is below ``epsilon``; masterkey
  keeps exactly ``k`` taps.  Neither renormalises.  pyscsp's ``epsilon`` is set to 1e-15 here so
  that its kernels cover every support tested (asserted), making ``T`` bit-for-bit comparable.
* border: masterkey applies the differences to the ``k``-tap truncated ``T`` with half-sample
  mirror extension (``mode='reflect'``, also pyscsp's default mode) - pyscsp's *kernel generators*
  (``make1Ddiscgaussderfilter(order, sigma, N=c)``, ``applyNjetfcn`` on the ``k x k`` smoothed
  impulse) do the same; differentiating the untruncated smoothed signal and cropping differs only
  at the two border taps, by ``mask_outside * (T(c) - T(c + 1))``.
* anisotropic scales: pyscsp smooths with one sigma; the anisotropic smoothed impulse is the
  product of its 1-D kernels, ``T(y; sigma_y)`` along rows (axis 0) and ``T(x; sigma_x)`` along
  columns, as its separable ``discgaussconv`` does.

Tolerances: ``RTOL = 1e-12`` relative to the array's largest magnitude where the computations are
mathematically identical (only floating-point summation order differs); the few stated exceptions
are bounded by pyscsp's truncation ``EPSILON``.  A sign error, transposition, flip or factor 2 is an
O(1) relative error.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyscsp import discscsp
from scipy import ndimage

from masterkey.scalespace.spread import spread_moments
from masterkey.scalespace.templates import (
    AXIS_OPERATORS,
    DERIVATIVE_ORDER,
    DIFFERENCE_MASKS,
    TYPE_NAMES,
    axis_profiles,
    discrete_gaussian,
    gaussian_profiles,
    idealized_templates,
)

SIGMAS = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0)
SIZES = (3, 5, 7, 9, 15)
ANISOTROPIC = tuple(zip(SIGMAS, SIGMAS[::-1], strict=True))  # (sigma_x, sigma_y), all different
ALPHA = 0.7
EPSILON = 1e-15
"""pyscsp's relative truncation error (its default 1e-8 would cut tails inside a 15-tap support)."""
RTOL = 1e-12


def close(ours, theirs, scale=None) -> bool:
    """Equal to float precision: ``|ours - theirs| <= RTOL (|theirs| + scale)``, ``scale`` by default
    ``max |theirs|`` (the same criterion decides the negative controls)."""
    theirs = np.asarray(theirs, dtype=np.float64)
    scale = np.abs(theirs).max() if scale is None else scale
    return bool(np.allclose(ours, theirs, rtol=RTOL, atol=RTOL * scale))


# ------------------------------------------------------------------------------------------------
# the mapping masterkey -> pyscsp
# ------------------------------------------------------------------------------------------------
PYSCSP_1D_ORDERS = {
    "identity": {0: 1.0},
    "central": {1: 1.0},  # make1Ddiscgaussderfilter order 1 = correlate1d(T, dxmask)
    "second": {2: 1.0},  # order 2 = correlate1d(T, dxxmask)
    "forward": {1: 1.0, 2: 0.5},  # f(n+1) - f(n) = (f(n+1) - f(n-1))/2 + (f(n+1) - 2 f(n) + f(n-1))/2
    "backward": {1: 1.0, 2: -0.5},  # f(n) - f(n-1) = central - second / 2
}
"""masterkey 1-D operator -> ``{order of make1Ddiscgaussderfilter: coefficient}``."""

PYSCSP_NJET = {
    "T": {"L": 1.0},
    "dx": {"Lx": 1.0},
    "dy": {"Ly": 1.0},  # pyscsp's y points upwards too: no sign change
    "dx+": {"Lx": 1.0, "Lxx": 0.5},  # forward = central + second / 2 (pyscsp has central ones only)
    "dx-": {"Lx": 1.0, "Lxx": -0.5},  # backward = central - second / 2
    "dy+": {"Ly": 1.0, "Lyy": 0.5},  # forward along y (upwards)
    "dy-": {"Ly": 1.0, "Lyy": -0.5},
    "dxx": {"Lxx": 1.0},
    "dyy": {"Lyy": 1.0},
    "dxy": {"Lxy": 1.0},  # dxymask = outer(dymask, dxmask): central in both
    "lap": {"Laplace": 1.0},  # Lxx + Lyy: the 5-point Laplacian
    "id-lap": {"delta": 1.0, "Laplace": -ALPHA},  # delta - alpha lap5 T
}
"""masterkey type -> ``{pyscsp N-jet name (or 'delta' = deltafcn): coefficient}`` (``alpha = ALPHA``)."""


def pyscsp_gaussian(sigma: float, k: int) -> np.ndarray:
    """The central ``k`` taps of pyscsp's (epsilon-truncated) discrete Gaussian kernel."""
    full = discscsp.make1Ddiscgaussfilter(sigma, EPSILON)
    half, c = (len(full) - 1) // 2, (k - 1) // 2
    assert half >= c, "pyscsp's kernel must cover the support"
    return full[half - c : half + c + 1]


def pyscsp_profile(k: int, sigma: float, operator: str) -> np.ndarray:
    """masterkey's 1-D ``axis_profiles(k, sigma, operator)`` from pyscsp's kernel generator (N = c)."""
    c = (k - 1) // 2
    terms = PYSCSP_1D_ORDERS[operator].items()
    return sum(w * discscsp.make1Ddiscgaussderfilter(order, sigma, c) for order, w in terms)


def pyscsp_smoothed_impulse(k: int, sigma_x: float, sigma_y: float) -> np.ndarray:
    """pyscsp's smoothed unit impulse on the ``k x k`` support (rows = y, columns = x).

    Isotropic: its own 2-D smoothing (``discgaussconv``) of ``deltafcn`` on a canvas so large that
    the mirror extension at the canvas border never reaches the central crop.  Anisotropic (pyscsp
    has a single sigma): the product of its 1-D kernels, ``T(.; sigma_y)`` along axis 0.
    """
    c = (k - 1) // 2
    if sigma_x == sigma_y:
        half = (len(discscsp.make1Ddiscgaussfilter(sigma_x, EPSILON, 2)) - 1) // 2
        assert half >= c
        size = 2 * (half + c) + 3
        centre = (size - 1) // 2
        canvas = discscsp.discgaussconv(discscsp.deltafcn(size, size), sigma_x, EPSILON)
        return canvas[centre - c : centre + c + 1, centre - c : centre + c + 1]
    return np.outer(pyscsp_gaussian(sigma_y, k), pyscsp_gaussian(sigma_x, k))


def pyscsp_template(model: str, k: int, sigma_x: float, sigma_y: float | None = None,
                    normdermethod: str = "discgauss") -> np.ndarray:  # fmt: skip
    """The pyscsp counterpart of ``idealized_templates(model, k, sigma_x, sigma_y, alpha=ALPHA)``."""
    sigma_y = sigma_x if sigma_y is None else sigma_y
    smooth = pyscsp_smoothed_impulse(k, sigma_x, sigma_y)
    out = np.zeros((k, k))
    for name, weight in PYSCSP_NJET[model].items():
        if name == "delta":
            out += weight * discscsp.deltafcn(k, k)
        else:  # sigma only enters pyscsp's (optional) scale normalisation
            out += weight * discscsp.applyNjetfcn(smooth, name, sigma_x, normdermethod)
    return out


def masterkey_template(model: str, k: int, sigma_x: float, sigma_y: float | None = None) -> np.ndarray:
    """``idealized_templates`` with ``alpha = ALPHA`` for id-lap (lap, id-lap: the single scale sigma_x)."""
    single = model in ("lap", "id-lap")
    alpha = ALPHA if model == "id-lap" else None
    return idealized_templates(model, k, sigma_x, None if single else sigma_y, alpha=alpha)


def test_every_type_has_a_pyscsp_counterpart():
    assert set(PYSCSP_NJET) == set(TYPE_NAMES)
    assert set(PYSCSP_1D_ORDERS) == set(DIFFERENCE_MASKS)


def test_difference_masks_are_pyscsp_masks_in_coordinate_order():
    """masterkey's masks are in coordinate order (y upwards); pyscsp's 2-D masks in row order."""
    central, second = DIFFERENCE_MASKS["central"], DIFFERENCE_MASKS["second"]
    assert np.array_equal(discscsp.dxmask()[0], central)
    assert np.array_equal(discscsp.dxxmask()[0], second)
    assert np.array_equal(discscsp.dymask()[:, 0], central[::-1])  # rows run downwards, y upwards
    assert np.array_equal(discscsp.dyymask()[:, 0], second[::-1])
    assert np.array_equal(discscsp.dxymask(), np.outer(central[::-1], central))
    # forward / backward masks = central +- second / 2 (pyscsp has central differences only)
    assert np.array_equal(DIFFERENCE_MASKS["forward"], central + second / 2)
    assert np.array_equal(DIFFERENCE_MASKS["backward"], central - second / 2)
    # negative control: reading pyscsp's y mask as if rows ran upwards flips the sign
    assert not np.array_equal(discscsp.dymask()[:, 0], central)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_discrete_gaussian_is_pyscsps(sigma):
    for k in SIZES:
        c = (k - 1) // 2
        ours = gaussian_profiles(k, sigma)
        assert close(ours, pyscsp_gaussian(sigma, k))
        assert close(ours, discscsp.make1Ddiscgaussderfilter(0, sigma, c))
        assert close(discrete_gaussian(np.arange(-c, c + 1), sigma**2), ours)
        # negative controls: the scale parameter s = sigma^2 (not sigma), and the discrete analogue
        # is not pyscsp's sampled Gaussian
        if sigma != 1.0:
            assert not close(discrete_gaussian(np.arange(-c, c + 1), sigma), ours)
        assert not close(discscsp.gauss(np.arange(-c, c + 1.0), sigma), ours)
        # neither renormalises the truncated kernel: the renormalised one fails where the k taps
        # miss more than float precision of the mass
        if 1.0 - ours.sum() > 1e-10:
            assert not close(ours / ours.sum(), pyscsp_gaussian(sigma, k))


@pytest.mark.parametrize("operator", list(DIFFERENCE_MASKS))
def test_difference_profiles_are_pyscsps(operator):
    for sigma in SIGMAS:
        for k in SIZES:
            ours = axis_profiles(k, sigma, operator)
            assert close(ours, pyscsp_profile(k, sigma, operator)), (sigma, k)
    k, sigma = 7, 1.0
    ours = axis_profiles(k, sigma, operator)
    # negative controls (orientation): the profile read right-to-left is a different operator for
    # the odd ones; forward and backward swapped (the wrong sign of the second-difference term)
    if operator in ("central", "forward", "backward"):
        assert not close(ours, pyscsp_profile(k, sigma, operator)[::-1])
    swapped = {"forward": "backward", "backward": "forward"}.get(operator)
    if swapped:
        assert not close(ours, pyscsp_profile(k, sigma, swapped))


@pytest.mark.parametrize("operator", ["central", "second", "forward", "backward"])
def test_border_extension_against_untruncated_differences(operator):
    """masterkey differentiates the k-tap truncated T (mirror extension); differentiating the
    untruncated T (pyscsp on N = c + 1) and cropping differs only at the two border taps, by the
    mask weight on the missing outside neighbour times ``T(c) - T(c + 1)``."""
    mask = DIFFERENCE_MASKS[operator]
    for sigma in SIGMAS:
        for k in SIZES:
            c = (k - 1) // 2
            untruncated = pyscsp_profile(k + 2, sigma, operator)[1:-1]
            jump = discrete_gaussian(c, sigma**2) - discrete_gaussian(c + 1, sigma**2)
            mapped = untruncated.copy()
            mapped[-1] += mask[2] * jump  # n = +c: the neighbour n = c + 1 is mirrored to n = c
            mapped[0] += mask[0] * jump  # n = -c
            ours = axis_profiles(k, sigma, operator)
            assert close(ours, mapped, scale=np.abs(ours).max()), (sigma, k)
            # negative control: without the border term (plain truncation) it fails where the
            # border carries mass
            if k == 5 and sigma >= 1.0:
                assert not close(ours, untruncated)


@pytest.mark.parametrize("model", TYPE_NAMES)
def test_templates_are_pyscsps_njet(model):
    for sigma in SIGMAS:
        for k in SIZES:
            assert close(masterkey_template(model, k, sigma), pyscsp_template(model, k, sigma)), (sigma, k)
    if model in AXIS_OPERATORS:  # anisotropic scales: pyscsp's rows are y
        for sigma_x, sigma_y in ANISOTROPIC:
            for k in SIZES:
                ours = masterkey_template(model, k, sigma_x, sigma_y)
                assert close(ours, pyscsp_template(model, k, sigma_x, sigma_y)), (sigma_x, sigma_y, k)
    # negative controls, one per convention, at a scale where the border carries mass
    k, sigma_x, sigma_y = 7, 0.75, 1.5
    single = model in ("lap", "id-lap")
    ours = masterkey_template(model, k, sigma_x, None if single else sigma_y)
    theirs = pyscsp_template(model, k, sigma_x, sigma_x if single else sigma_y)
    assert close(ours, theirs)
    order_x, order_y = DERIVATIVE_ORDER[model]
    if order_y % 2:  # y downwards (rows read as y) flips the sign of the odd-in-y types
        assert not close(ours, theirs[::-1, :])
    if order_x % 2:  # x to the left
        assert not close(ours, theirs[:, ::-1])
    if not single:  # transposition (x and y swapped)
        assert not close(ours, theirs.T)
    if sum(DERIVATIVE_ORDER[model]):  # pyscsp's default scale normalisation multiplies by sigma^order
        normalised = pyscsp_template(model, k, sigma_x, sigma_x if single else sigma_y, "discgaussvar")
        assert not close(ours, normalised)
    if model == "id-lap":  # the identity term: delta + alpha lap5 T is a different type
        assert not close(ours, 2 * discscsp.deltafcn(k, k) - theirs)
    assert not close(ours, 2 * theirs)  # a factor 2


@pytest.mark.parametrize("model", TYPE_NAMES)
def test_templates_are_convolution_kernels_of_pyscsps_operators(model):
    """pyscsp correlates its masks with the smoothed image; a masterkey template is the equivalent
    convolution kernel: ``convolve(image, template)`` equals pyscsp's N-jet of the image.

    The template is taken on a support 2 taps wider than pyscsp's truncated kernel, so truncation
    and border extension differ only by kernel values below pyscsp's EPSILON = 1e-15 (times the
    operator norm <= 4): the 1e-12 tolerance is float precision."""
    rng = np.random.default_rng(7)
    image = rng.normal(size=(96, 96))
    for sigma in (0.75, 1.5):
        half = (len(discscsp.make1Ddiscgaussfilter(sigma, EPSILON, 2)) - 1) // 2
        k = 2 * half + 3
        smooth = discscsp.discgaussconv(image, sigma, EPSILON)
        theirs = np.zeros_like(image)
        for name, weight in PYSCSP_NJET[model].items():
            term = image if name == "delta" else discscsp.applyNjetfcn(smooth, name, sigma, "discgauss")
            theirs += weight * term
        template = masterkey_template(model, k, sigma)
        ours = ndimage.convolve(image, template, mode="reflect")
        margin = half + 2  # beyond the reach of either operator (pyscsp: half + 1 taps; ours: c = half + 1)
        inner = (slice(margin, -margin), slice(margin, -margin))  # unaffected by the image border
        assert image.shape[0] - 2 * margin >= 40
        assert close(ours[inner], theirs[inner], scale=np.abs(image).max())
        # negative control: used as a correlation mask the template rotates by 180 degrees, which
        # flips the sign of the odd types (the even ones are point-symmetric)
        if sum(DERIVATIVE_ORDER[model]) % 2:
            wrong = ndimage.correlate(image, template, mode="reflect")
            assert not close(wrong[inner], theirs[inner], scale=np.abs(image).max())


@pytest.mark.parametrize("model", TYPE_NAMES)
def test_spread_moments_are_pyscsps_filtermean_and_variance(model):
    weights = []
    for sigma_x, sigma_y in [(s, s) for s in SIGMAS] + list(ANISOTROPIC):
        if model in ("lap", "id-lap") and sigma_x != sigma_y:
            continue
        for k in SIZES:
            weights.append(np.abs(masterkey_template(model, k, sigma_x, sigma_y)))
    for w in weights:
        k = w.shape[-1]
        mean, variance = spread_moments(w)
        scale = ((k - 1) / 2) ** 2  # coordinates up to c: moments up to c^2
        assert close(mean, discscsp.filtermean(w), scale=scale)
        assert close(variance, discscsp.variance(w), scale=scale)
        # batched: the same numbers per kernel
        batch_mean, batch_variance = spread_moments(np.stack([w, w[::-1]]))
        assert close(batch_mean[0], mean, scale=scale)
        assert close(batch_variance[1], discscsp.variance(w[::-1]), scale=scale)
    # negative controls on a type with a half-grid offset (mean 1/2 off the centre along its axis)
    if model in ("dx+", "dx-", "dy+", "dy-"):
        w = np.abs(masterkey_template(model, 7, 1.0, 1.0))
        mean, _ = spread_moments(w)
        along_x = model.startswith("dx")
        assert abs(abs(mean[0 if along_x else 1]) - 0.5) < 0.05
        flipped = w[:, ::-1] if along_x else w[::-1]  # x to the left / y downwards
        assert not close(mean, discscsp.filtermean(flipped), scale=9.0)
        assert not close(mean, discscsp.filtermean(w.T), scale=9.0)  # transposed


def test_spread_moments_on_asymmetric_weights():
    """Generic (asymmetric, correlated) weights: every moment, and the conventions that must fail."""
    rng = np.random.default_rng(3)
    for k in (3, 5, 7, 9, 15):
        c = (k - 1) / 2
        x = np.arange(k)[None, :] - c  # x = col - c, y = c - row (upwards), written out independently
        y = c - np.arange(k)[:, None]
        for _ in range(5):
            w = rng.uniform(0, 1, (k, k)) * np.exp((0.8 * x + 0.3 * y + 0.5 * x * y / c) / c)
            mean, variance = spread_moments(w)
            scale = ((k - 1) / 2) ** 2
            assert close(mean, discscsp.filtermean(w), scale=scale)
            assert close(variance, discscsp.variance(w), scale=scale)
            assert not close(mean, discscsp.filtermean(w[::-1]), scale=scale)  # y downwards
            assert not close(mean, discscsp.filtermean(w.T), scale=scale)  # transposed
            assert not close(variance, discscsp.variance(w[::-1]), scale=scale)  # V_xy changes sign
    # even sizes: pyscsp's convention x = -k/2 .. k/2 - 1 (its deltafcn centre); masterkey rejects them
    w = rng.uniform(0, 1, (6, 6))
    assert np.isfinite(discscsp.filtermean(w)).all()
    with pytest.raises(ValueError, match="odd"):
        spread_moments(w)
