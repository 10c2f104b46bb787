"""Tests of graftimg.preprocess: body mask, N4 bias correction, noise σ, normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from graftimg.errors import DimensionError, NonFiniteDataError, SegmentationError, SpacingError
from graftimg.preprocess.bias import correct_bias, n4_shrink_factors
from graftimg.preprocess.body import _fill_holes, _threshold_li, body_mask, within_distance
from graftimg.preprocess.noise import (
    MAD_TO_SIGMA,
    estimate_noise,
    highpass_sigma,
    rayleigh_sigma,
    snr,
)
from graftimg.preprocess.normalize import normalize_intensity

DATA = Path(__file__).parent / "data" / "sct_testing_data"

# --------------------------------------------------------------------------------------------
# Phantom: an axial-ish body section with a cord, CSF, a dark structure, air around it (or not),
# a smooth multiplicative bias of ±30 % over the body, and Rician noise.
# --------------------------------------------------------------------------------------------


def _coords(shape, spacing):
    axes = [(np.arange(n) - (n - 1) / 2.0) * s for n, s in zip(shape, spacing, strict=True)]
    return np.meshgrid(*axes, indexing="ij")


def body_phantom(shape, spacing, *, air=True, sigma=2.0, bias=0.3, seed=0):
    """Return (noisy image, noise-free truth, bias field, body mask, uniform-tissue region)."""
    rng = np.random.default_rng(seed)
    x, y, z = _coords(shape, spacing)
    hx, hy, hz = (n * s / 2.0 for n, s in zip(shape, spacing, strict=True))
    if air:
        body = (x / (0.85 * hx)) ** 2 + (y / (0.8 * hy)) ** 2 <= 1.0
    else:
        body = np.ones(shape, dtype=bool)
    truth = np.where(body, 100.0, 0.0)
    canal_y = y + 0.3 * hy
    truth[(x / 7.0) ** 2 + (canal_y / 6.0) ** 2 <= 1.0] = 180.0  # CSF
    truth[(x / 4.0) ** 2 + (canal_y / 3.0) ** 2 <= 1.0] = 60.0  # cord
    truth[((x - 0.4 * hx) / 5.0) ** 2 + (y / 8.0) ** 2 <= 1.0] = 30.0  # dark structure
    g = 0.7 * y / hy + 0.5 * (x / hx) * (z / hz) + 0.3 * ((x / hx) ** 2 - (z / hz) ** 2)
    g = 2.0 * (g - g[body].min()) / (g[body].max() - g[body].min()) - 1.0
    field = 1.0 + bias * g  # 0.7 … 1.3 inside the body
    noise = rng.normal(0.0, sigma, shape) + 1j * rng.normal(0.0, sigma, shape)
    image = np.abs(truth * field + noise).astype(np.float32)
    uniform = ndimage.binary_erosion(truth == 100.0, iterations=2)
    return image, truth, field, body, uniform


def _cv(values):
    return float(values.std() / values.mean())


# --------------------------------------------------------------------------------------------
# body mask
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["li", "otsu"])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 3.0)])
def test_body_mask_finds_the_body_and_fills_dark_structures(method, spacing):
    shape = (64, 64, 12) if spacing[2] == 1.0 else (128, 128, 6)
    image, truth, _, body, _ = body_phantom(shape, spacing, sigma=4.0)
    mask = body_mask(image, spacing=spacing, method=method)
    dice = 2 * (mask & body).sum() / (mask.sum() + body.sum())
    assert dice > 0.95
    assert mask[truth == 30.0].all()  # dark structure inside the body is kept
    assert not mask[0, 0, 0]


def test_body_mask_dilation_is_in_mm():
    image = np.zeros((40, 40, 10), dtype=np.float32)
    image[15:25, 15:25, :] = 100.0
    base = body_mask(image, spacing=(1.0, 1.0, 1.0), smoothing_mm=0.0)
    grown = body_mask(image, spacing=(1.0, 1.0, 1.0), smoothing_mm=0.0, dilation_mm=2.0)
    assert base.sum() == 100 * 10
    assert grown[:, :, 5].sum() == 14 * 14 - 12  # 2 mm Euclidean: 3 voxels cut per corner


@pytest.mark.parametrize(
    ("image", "spacing", "error", "match"),
    [
        (np.ones((4, 4)), (1.0, 1.0), DimensionError, "3D"),
        (np.ones((4, 4, 4)), (1.0, 0.0, 1.0), SpacingError, "positive"),
        (np.ones((4, 4, 4)), (1.0, 1.0), SpacingError, "3 positive"),
        (np.full((4, 4, 4), np.nan), (1.0, 1.0, 1.0), NonFiniteDataError, "NaN"),
        (np.ones((4, 4, 4)), (1.0, 1.0, 1.0), SegmentationError, "constant"),
    ],
)
def test_body_mask_rejects_bad_input(image, spacing, error, match):
    with pytest.raises(error, match=match):
        body_mask(image, spacing=spacing)


def test_body_mask_rejects_unknown_method():
    with pytest.raises(ValueError, match="otsu"):
        body_mask(np.arange(64.0).reshape(4, 4, 4), spacing=(1, 1, 1), method="triangle")


# The fast paths of the preprocess stage (performance issue: segment ≤ 10× load-and-save) must
# give what the plain SciPy / scikit-image calls they replace give.


@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 3.0), (0.25, 0.25, 2.0), (0.8, 0.6, 1.1)]
)
@pytest.mark.parametrize("distance_mm", [0.0, 0.7, 1.0, 2.5, 4.0])
def test_within_distance_equals_the_distance_transform(spacing, distance_mm):
    rng = np.random.default_rng(7)
    mask = ndimage.binary_opening(rng.random((30, 26, 9)) < 0.35)
    mask[0, :, 4] = True  # touching the border
    expected = ndimage.distance_transform_edt(~mask, sampling=spacing) <= distance_mm
    assert np.array_equal(within_distance(mask, distance_mm, spacing=spacing), expected)
    assert not within_distance(np.zeros((5, 5, 5), bool), 3.0, spacing=spacing).any()


def test_within_distance_rejects_negative_distances():
    with pytest.raises(ValueError, match="≥ 0"):
        within_distance(np.ones((3, 3, 3), bool), -1.0, spacing=(1, 1, 1))


@pytest.mark.parametrize("planar", [False, True])
def test_fill_holes_equals_scipy(planar):
    rng = np.random.default_rng(3)
    mask = ndimage.binary_closing(rng.random((25, 30, 7)) < 0.6)
    if planar:
        expected = np.stack(
            [ndimage.binary_fill_holes(mask[:, :, k]) for k in range(mask.shape[2])], axis=2
        )
    else:
        expected = ndimage.binary_fill_holes(mask)
    assert np.array_equal(_fill_holes(mask, planar=planar), expected)


@pytest.mark.parametrize("seed", range(4))
def test_threshold_li_equals_scikit_image(seed):
    from skimage.filters import threshold_li

    image, *_ = body_phantom((48, 48, 8), (1.0, 1.0, 2.0), sigma=3.0, seed=seed)
    smooth = ndimage.gaussian_filter(image, 1.0)
    assert _threshold_li(smooth) == threshold_li(smooth)


def test_highpass_on_a_region_equals_the_whole_image_filtered():
    rng = np.random.default_rng(11)
    image = rng.normal(100.0, 5.0, (40, 36, 10))
    region = np.zeros(image.shape, bool)
    region[0:12, 5:20, 2:9] = True  # touches the image border on one side
    region[25:31, 25:33, 0:4] = True
    residual = image
    for axis in range(3):
        residual = ndimage.correlate1d(residual, [1.0, -2.0, 1.0], axis=axis, mode="nearest")
    inner = ndimage.binary_erosion(region, structure=np.ones((3, 3, 3)), border_value=0)
    values = residual[inner]
    mad = np.median(np.abs(values - np.median(values)))
    sigma, n = highpass_sigma(image, region)
    assert n == inner.sum()
    assert sigma == MAD_TO_SIGMA * mad / np.sqrt(6.0**3)


# --------------------------------------------------------------------------------------------
# N4
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "spacing"), [((64, 64, 40), (1.0, 1.0, 1.0)), ((96, 96, 12), (0.5, 0.5, 3.0))]
)
def test_n4_removes_a_30_percent_bias(shape, spacing):
    image, _, field, body, uniform = body_phantom(shape, spacing, sigma=2.0)
    noise_cv = 2.0 / 100.0
    before = _cv(image[uniform])
    # A smaller fit than the default (16 384 voxels, 4 levels) keeps the test fast; the default
    # gives CV 0.023 / 0.020 and a field error of 1.3 % / 0.8 % on these phantoms.
    out = correct_bias(image, spacing=spacing, max_fit_voxels=4096, n_levels=3)
    after = _cv(out.image[uniform])
    # Measured: CV 0.115 → 0.021–0.022, i.e. down to the noise floor (0.020), a ≈ 5× drop.
    assert before > 0.1
    assert after < before / 4.0
    assert after < 1.25 * noise_cv
    # The estimated field follows the true one (up to scale) inside the body.
    ratio = out.field[uniform] / field[uniform]
    assert _cv(ratio) < 0.02
    # Overall scale kept: field mean 1 in the mask, median intensity unchanged within 2 %.
    assert out.field[out.mask].mean() == pytest.approx(1.0, abs=1e-4)
    assert np.median(out.image[out.mask]) == pytest.approx(np.median(image[out.mask]), rel=0.02)
    assert out.image.dtype == np.float32 and out.field.dtype == np.float32
    assert out.image.shape == image.shape
    assert out.n_iterations_last_level >= 1
    dice = 2 * (out.mask & body).sum() / (out.mask.sum() + body.sum())
    assert dice > 0.95


def test_n4_knot_spacing_keeps_a_graft_sized_blob():
    # A bright 10 mm blob on a 64 mm field of view: ITK's mesh refined over 4 levels puts knots
    # 8 mm apart and N4 takes part of the blob for bias; knots ≥ 30 mm apart cannot.
    shape, spacing = (64, 64, 64), (1.0, 1.0, 1.0)
    image, truth, field, _, uniform = body_phantom(shape, spacing, sigma=2.0)
    x, y, z = _coords(shape, spacing)
    blob = ((x + 12.0) ** 2 + (y - 8.0) ** 2 + z**2) <= 5.0**2
    image = np.where(blob, (160.0 * field).astype(np.float32), image)
    ring = ndimage.binary_dilation(blob, iterations=4) & ~ndimage.binary_dilation(blob)
    ring &= truth == 100.0
    true_contrast = 160.0 / 100.0

    def contrast(out):
        return float(np.median(out.image[blob]) / np.median(out.image[ring]))

    fine = correct_bias(image, spacing=spacing, n_levels=4)
    coarse = correct_bias(image, spacing=spacing, n_levels=4, knot_spacing_mm=30.0)
    assert coarse.n_levels == 2 and fine.n_levels == 4
    assert abs(contrast(coarse) / true_contrast - 1) < 0.03
    assert abs(contrast(fine) / true_contrast - 1) > abs(contrast(coarse) / true_contrast - 1)
    # The 30 % bias is still removed, down to the noise (CV 0.02).
    tissue = uniform & ~ndimage.binary_dilation(blob, iterations=2)
    assert _cv(image[tissue]) > 0.1
    assert _cv(coarse.image[tissue]) < 0.025


def test_n4_is_scale_equivariant_and_deterministic():
    image, *_ = body_phantom((32, 32, 12), (1.0, 1.0, 2.0), sigma=2.0)
    options = {"spacing": (1.0, 1.0, 2.0), "n_levels": 2, "max_fit_voxels": 2048}
    a = correct_bias(image, **options)
    b = correct_bias(image, **options)
    c = correct_bias(7.0 * image, **options)
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_allclose(c.image / 7.0, a.image, rtol=0, atol=5e-3 * float(a.image.max()))
    np.testing.assert_array_equal(a.mask, c.mask)


def test_n4_accepts_an_explicit_mask_and_skips_non_positive_voxels():
    image, _, _, body, uniform = body_phantom((40, 40, 16), (1.0, 1.0, 2.0))
    image[~body] = 0.0
    mask = np.ones(image.shape, bool)
    out = correct_bias(image, spacing=(1.0, 1.0, 2.0), mask=mask, n_levels=2, max_fit_voxels=2048)
    assert not out.mask[~body].any()
    assert _cv(out.image[uniform]) < _cv(image[uniform]) / 2.0


@pytest.mark.parametrize(
    ("mask", "error", "match"),
    [
        (np.ones((3, 3, 3), dtype=bool), DimensionError, "mask shape"),
        (np.zeros((40, 40, 16), dtype=bool), SegmentationError, "too few"),
    ],
)
def test_n4_rejects_bad_masks(mask, error, match):
    image, *_ = body_phantom((40, 40, 16), (1.0, 1.0, 2.0))
    with pytest.raises(error, match=match):
        correct_bias(image, spacing=(1.0, 1.0, 2.0), mask=mask)


def test_n4_rejects_bad_options():
    image, *_ = body_phantom((40, 40, 16), (1.0, 1.0, 2.0))
    with pytest.raises(ValueError, match="n_levels"):
        correct_bias(image, spacing=(1.0, 1.0, 2.0), n_levels=0)
    with pytest.raises(ValueError, match="knot_spacing_mm"):
        correct_bias(image, spacing=(1.0, 1.0, 2.0), knot_spacing_mm=0.0)


def test_n4_shrink_factors_respect_anisotropy_and_budget():
    # Thick slices are not shrunk when the fine axes are shrunk only twice.
    assert n4_shrink_factors((64, 320, 320), (3.0, 0.6, 0.6), max_fit_voxels=None) == (1, 2, 2)
    factors = n4_shrink_factors((64, 320, 320), (3.0, 0.6, 0.6), max_fit_voxels=16_384)
    assert np.prod([n // f for n, f in zip((64, 320, 320), factors, strict=True)]) <= 16_384
    # Never below 4 voxels along an axis (5 thick slices stay whole).
    assert n4_shrink_factors((40, 40, 5), (0.84, 0.84, 17.0), max_fit_voxels=10) == (10, 10, 1)
    with pytest.raises(ValueError, match="shrink_factor"):
        n4_shrink_factors((8, 8, 8), (1, 1, 1), shrink_factor=0)


# --------------------------------------------------------------------------------------------
# noise
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sigma", [0.5, 3.0])
def test_highpass_scaling_is_unbiased_for_gaussian_noise(sigma):
    """The analytic factor ‖h‖₂ = 6^{3/2} makes 1.4826·MAD(residual)/‖h‖₂ consistent."""
    rng = np.random.default_rng(3)
    est, n = highpass_sigma(rng.normal(50.0, sigma, (64, 64, 64)))
    assert n == 62**3
    assert est == pytest.approx(sigma, rel=0.01)


def test_rayleigh_median_estimator_and_ghost_trimming():
    rng = np.random.default_rng(4)
    air = np.abs(rng.normal(0, 3.0, 200_000) + 1j * rng.normal(0, 3.0, 200_000))
    assert rayleigh_sigma(air, n_trim=0) == pytest.approx(3.0, rel=0.01)
    air[:10_000] += 60.0  # bright ghosts in 5 % of the air
    assert rayleigh_sigma(air, n_trim=0) > 3.1  # the plain median is pulled up …
    assert rayleigh_sigma(air) == pytest.approx(3.0, rel=0.01)  # … trimming removes it


@pytest.mark.parametrize("air", [True, False], ids=["air", "no-air"])
@pytest.mark.parametrize(
    ("shape", "spacing"), [((64, 64, 24), (1.0, 1.0, 1.0)), ((96, 96, 10), (0.5, 0.5, 3.0))]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_noise_sigma_of_rician_data_within_10_percent(air, shape, spacing, seed):
    sigma = 5.0
    image, *_ = body_phantom(shape, spacing, air=air, sigma=sigma, seed=seed)
    est = estimate_noise(image, spacing=spacing)
    # Measured (5 seeds, tissue SNR 7–50): air −0.4 … +0.7 %, no air −2.4 … +2.1 %.
    assert est.method == ("rayleigh_background" if air else "highpass_mad")
    assert est.sigma == pytest.approx(sigma, rel=0.10)
    assert est.n_voxels > 1000


def test_noise_with_bright_ghosts_in_the_air():
    image, truth, *_ = body_phantom((64, 64, 24), (1.0, 1.0, 1.0), sigma=5.0, seed=2)
    ghost = np.roll(truth, 32, axis=1) * 0.5
    ghost[:, :, ::2] = 0.0  # ghosts in every other slice band
    image = np.where(truth == 0, image + ghost.astype(np.float32), image)
    est = estimate_noise(image, spacing=(1.0, 1.0, 1.0))
    assert est.method == "rayleigh_background"
    assert est.sigma == pytest.approx(5.0, rel=0.10)


def test_dark_tissue_is_not_mistaken_for_air():
    """A tight field of view whose darkest class is tissue (SNR 4) falls back to high-pass."""
    rng = np.random.default_rng(5)
    x, y, _ = _coords((64, 64, 16), (1.0, 1.0, 1.0))
    truth = np.where(x**2 + y**2 < 20.0**2, 150.0, 20.0) + 5.0 * np.sin(x / 3.0)
    noise = rng.normal(0, 5.0, truth.shape) + 1j * rng.normal(0, 5.0, truth.shape)
    image = np.abs(truth + noise)
    est = estimate_noise(image, spacing=(1.0, 1.0, 1.0))
    assert est.method == "highpass_mad"
    assert est.sigma == pytest.approx(5.0, rel=0.10)


def test_zero_filled_background_is_not_air():
    image, _, _, body, _ = body_phantom((64, 64, 24), (1.0, 1.0, 1.0), sigma=5.0)
    image[~body] = 0.0
    est = estimate_noise(image, spacing=(1.0, 1.0, 1.0), body=body)
    assert est.method == "highpass_mad"
    assert est.sigma == pytest.approx(5.0, rel=0.10)


def test_noise_rejects_mismatched_body():
    with pytest.raises(DimensionError, match="body mask shape"):
        estimate_noise(np.ones((8, 8, 8)), spacing=(1, 1, 1), body=np.ones((4, 4, 4), bool))


def test_highpass_rejects_tiny_regions():
    with pytest.raises(SegmentationError, match="inside the noise region"):
        highpass_sigma(np.ones((8, 8, 8)), np.zeros((8, 8, 8), bool))
    with pytest.raises(SegmentationError, match="too small"):
        highpass_sigma(np.ones((2, 2, 2)))


def test_snr():
    image = np.full((6, 6, 6), 40.0)
    region = np.zeros(image.shape, bool)
    region[2:4, 2:4, 2:4] = True
    assert snr(image, region, 4.0) == pytest.approx(10.0)
    assert snr(image, region, 0.0) == np.inf
    with pytest.raises(SegmentationError, match="empty"):
        snr(image, np.zeros(image.shape, bool), 1.0)
    with pytest.raises(DimensionError, match="region shape"):
        snr(image, region[:3], 1.0)
    with pytest.raises(ValueError, match="sigma"):
        snr(image, region, -1.0)


def test_mad_constant():
    rng = np.random.default_rng(6)
    values = rng.normal(0, 2.0, 400_000)
    mad = np.median(np.abs(values - np.median(values)))
    assert MAD_TO_SIGMA * mad == pytest.approx(2.0, rel=0.01)


# --------------------------------------------------------------------------------------------
# normalisation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gain", [0.01, 1.0, 37.5])
def test_normalisation_is_scale_invariant(gain):
    image, truth, *_ = body_phantom((32, 32, 8), (1.0, 1.0, 1.0), sigma=2.0)
    reference = truth == 60.0  # the cord
    base = normalize_intensity(image, reference_mask=reference)
    scaled = normalize_intensity(gain * image, reference_mask=reference)
    np.testing.assert_allclose(scaled.image, base.image, rtol=1e-5)
    assert scaled.factor == pytest.approx(gain * base.factor, rel=1e-6)
    assert np.median(base.image[reference]) == pytest.approx(1.0, rel=1e-6)
    assert base.n_voxels == int(reference.sum())
    assert base.image.dtype == np.float32


@pytest.mark.parametrize(
    ("image", "mask", "error", "match"),
    [
        (np.ones((4, 4, 4)), np.ones((4, 4, 3), bool), DimensionError, "shape"),
        (np.ones((4, 4, 4)), np.zeros((4, 4, 4), bool), SegmentationError, "empty"),
        (np.zeros((4, 4, 4)), np.ones((4, 4, 4), bool), SegmentationError, "not positive"),
        (np.full((4, 4, 4), np.inf), np.ones((4, 4, 4), bool), NonFiniteDataError, "NaN"),
    ],
)
def test_normalisation_rejects_bad_input(image, mask, error, match):
    with pytest.raises(error, match=match):
        normalize_intensity(image, reference_mask=mask)


# --------------------------------------------------------------------------------------------
# real data (Spinal Cord Toolbox test images: cropped, no air)
# --------------------------------------------------------------------------------------------


def _load(name):
    nib = pytest.importorskip("nibabel")
    img = nib.as_closest_canonical(nib.load(DATA / f"{name}.nii.gz"))
    return img.get_fdata(dtype=np.float32), tuple(float(z) for z in img.header.get_zooms()[:3])


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("name", "cord"),
    [
        ("t2s/t2s", "t2s/t2s_seg"),
        ("t1/t1w", "t1/t1w_seg-manual"),
        ("t2/t2", "t2/t2_seg-manual"),
        ("mt/mt0", "mt/mt0_seg"),
    ],
)
def test_real_cropped_images_use_the_highpass_estimate(name, cord):
    data, spacing = _load(name)
    est = estimate_noise(data, spacing=spacing)
    assert est.method == "highpass_mad"  # these crops hold no air
    # Measured SNR_cord: t2s 21.8, t1w 11.7, t2 18.4, mt0 19.3 (clinical 3 T: 15–50).
    assert 8.0 < snr(data, _load(cord)[0] > 0.5, est.sigma) < 60.0


@pytest.mark.realdata
def test_real_t2s_bias_field_with_default_settings():
    data, spacing = _load("t2s/t2s")  # 0.5 × 0.5 × 7.5 mm, 9 thick slices
    out = correct_bias(data, spacing=spacing)
    assert out.shrink_factors == (2, 2, 1)
    assert out.field[out.mask].mean() == pytest.approx(1.0, abs=1e-4)
    # Measured: the field spans 0.67–1.25 over the crop.
    assert float(out.field.min()) > 0.5 and float(out.field.max()) < 1.5
