"""Noise level σ of a magnitude MR image, and signal-to-noise ratios (docs/methods.md).

Magnitude images carry Rician noise: ``I = |S + n_r + i·n_i|`` with ``n ~ N(0, σ²)``
(Gudbjartsson & Patz, *MRM* 1995;34:910). Two estimators of σ, tried in this order:

1. **Background air** (``method="rayleigh_background"``). Where ``S = 0`` the magnitude is
   Rayleigh-distributed with median ``σ·√(2 ln 2)``, so ``σ = median / √(2 ln 2)``. The median is
   used rather than the mean (``σ = mean/√(π/2)``) because ghosts of moving tissue and CSF
   pulsation land in the background and inflate its upper tail; values above the Rayleigh
   99.9 % quantile (``3.72 σ``) are trimmed and the median of the rest re-read as the
   matching quantile, twice, so that bright ghosts do not shift the median either. Air is taken
   farther than ``margin_mm`` from the body; exact zeros (zero-filled or scanner-masked
   background) are left out. The estimate is trusted only when there are enough voxels and
   they look like white Rayleigh noise:

   - *shape*: median / lower quartile near its Rayleigh value ``√(ln 4 / ln(4/3)) ≈ 1.552``
     (accepted 1.40–1.75). Multi-coil sum-of-squares backgrounds (non-central χ, 1.32 for two
     coils) and tissue at SNR ≳ 2 have a smaller ratio;
   - *whiteness*: the high-pass σ of the same voxels (below) over the Rayleigh σ is ``≈ 0.655``
     (``√(2 − π/2)``, the Rayleigh standard deviation) for white noise; accepted ≥ 0.5. Dark
     tissue misread as air (a tight field of view) carries anatomy, whose variance is not white:
     on the Spinal Cord Toolbox test images (all cropped, no real air) the ratio is 0.10–0.42.
2. **High-pass residual** (``method="highpass_mad"``), when there is no usable air (tight fields
   of view, common in rodent and cropped data). The image is filtered with the separable kernel
   ``h = d ⊗ d ⊗ d``, ``d = [1, −2, 1]`` (a 3D extension of Immerkær's 2D noise mask, *CVIU*
   1996;64:300). ``h`` annihilates anything that is constant or linear along any one axis —
   smooth bias fields, and tissue edges aligned with an axis — while for white noise the
   residual is Gaussian with standard deviation ``σ·‖h‖₂``, ``‖h‖₂ = 6^{3/2} ≈ 14.70``. Hence
   ``σ = 1.4826·MAD(residual) / ‖h‖₂``, consistent for Gaussian noise (checked numerically in
   the tests). Only voxels whose whole 3×3×3 neighbourhood lies inside the body enter the MAD,
   where the SNR is high enough for Rician noise to be nearly Gaussian.

Limitation: the high-pass estimator assumes spatially white noise. Images interpolated in
k-space (zero-filled to a finer matrix) have correlated noise and it then underestimates σ; the
air estimator is unaffected by noise correlation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from graftimg.arrays import bounding_box
from graftimg.errors import ConfigError, DimensionError, SegmentationError
from graftimg.preprocess.body import _check_image, body_mask, within_distance

__all__ = [
    "MAD_TO_SIGMA",
    "RAYLEIGH_MEDIAN_FACTOR",
    "NoiseEstimate",
    "estimate_noise",
    "highpass_sigma",
    "rayleigh_sigma",
    "snr",
]

#: Turns a median absolute deviation into a Gaussian-consistent standard deviation.
MAD_TO_SIGMA = 1.4826

#: Median of a Rayleigh distribution of scale σ, in units of σ: √(2 ln 2).
RAYLEIGH_MEDIAN_FACTOR = math.sqrt(2.0 * math.log(2.0))

#: Accepted range of median / lower quartile for background air (Rayleigh: 1.552).
_RAYLEIGH_SHAPE_RANGE = (1.40, 1.75)

#: Minimum high-pass σ / Rayleigh σ of background air (white Rayleigh noise: 0.655).
_MIN_WHITENESS = 0.5

#: Rayleigh tail probability above which background values are trimmed as ghosts.
_TRIM_TAIL = 1e-3

#: Second-difference kernel whose tensor product is the high-pass filter.
_SECOND_DIFFERENCE = np.array([1.0, -2.0, 1.0])


@dataclass(frozen=True)
class NoiseEstimate:
    """Result of :func:`estimate_noise`.

    Attributes
    ----------
    sigma : float
        Standard deviation σ of the Gaussian noise in each of the real and imaginary channels
        (the Rician σ), in image intensity units.
    method : {"rayleigh_background", "highpass_mad"}
        Which estimator gave ``sigma``.
    n_voxels : int
        Number of voxels the estimate is based on.
    """

    sigma: float
    method: Literal["rayleigh_background", "highpass_mad"]
    n_voxels: int


def rayleigh_sigma(values: np.ndarray, *, n_trim: int = 2) -> float:
    """Rician σ from background (signal-free) magnitudes: ``median / √(2 ln 2)``.

    Parameters
    ----------
    values : ndarray
        Magnitudes in air.
    n_trim : int, optional
        Rounds of trimming values above the Rayleigh 99.9 % quantile of the current estimate
        (bright ghosts), each followed by re-reading the median of the rest as the matching
        quantile of a truncated Rayleigh distribution. 0 gives the plain median estimator.

    Returns
    -------
    float
        The σ of the underlying complex Gaussian noise.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> air = np.abs(rng.normal(0, 5, 100_000) + 1j * rng.normal(0, 5, 100_000))
    >>> round(rayleigh_sigma(air), 1)
    5.0
    >>> air[:5_000] += 200.0  # bright ghosts in 5 % of the background
    >>> round(rayleigh_sigma(air, n_trim=0), 2), round(rayleigh_sigma(air), 2)
    (5.19, 4.99)
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    sigma = float(np.median(values)) / RAYLEIGH_MEDIAN_FACTOR
    # Rayleigh quantile function: q(p) = σ·√(−2 ln(1 − p)).
    cut_factor = math.sqrt(-2.0 * math.log(_TRIM_TAIL))
    p_mid = 0.5 * (1.0 - _TRIM_TAIL)  # the median of a sample truncated at the cut
    mid_factor = math.sqrt(-2.0 * math.log(1.0 - p_mid))
    for _ in range(n_trim):
        kept = values[values <= cut_factor * sigma]
        if kept.size == 0:
            break
        sigma = float(np.median(kept)) / mid_factor
    return sigma


def highpass_sigma(image: np.ndarray, region: np.ndarray | None = None) -> tuple[float, int]:
    """σ of white Gaussian noise from the MAD of a second-difference high-pass residual.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Image.
    region : (X, Y, Z) ndarray of bool, optional
        Where the noise is measured; it is eroded so that the filter never straddles its edge.
        Default: the whole image.

    Returns
    -------
    sigma : float
        ``1.4826·MAD(h ⋆ image) / ‖h‖₂``.
    n_voxels : int
        Number of residual values used.

    Raises
    ------
    SegmentationError
        No voxel of the region lies far enough from its edge.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(0.0, 1.0, 40)
    >>> smooth = 100.0 + 50.0 * x[:, None, None] * x[None, :, None] + 0.0 * x[None, None, :]
    >>> sigma, n = highpass_sigma(smooth + rng.normal(0.0, 2.0, (40, 40, 40)))
    >>> round(sigma, 1), n
    (2.0, 54872)
    """
    image = np.asarray(image)
    axes = [ax for ax in range(image.ndim) if image.shape[ax] >= 3]
    if not axes:
        raise SegmentationError(
            f"image of shape {image.shape} is too small for a high-pass noise estimate"
        )
    norm = math.sqrt(6.0 ** len(axes))
    inner = np.ones(image.shape, dtype=bool) if region is None else np.asarray(region, dtype=bool)
    # Only the region's bounding box (and one voxel around it) is filtered: the residual of a
    # voxel whose 3×3×3 neighbourhood lies in the region is the same as on the whole image.
    crop = bounding_box(inner, (1,) * image.ndim) if region is not None else None
    if crop is not None:
        image, inner = image[crop], inner[crop]
    residual = np.asarray(image, dtype=np.float64)
    for ax in axes:
        residual = ndimage.correlate1d(residual, _SECOND_DIFFERENCE, axis=ax, mode="nearest")
    # Erode with a box so the whole filter support stays inside the region (a box erosion is
    # separable: one 3-wide minimum per axis, several times faster than binary_erosion's).
    eroded = inner.view(np.uint8)
    for ax in axes:
        eroded = ndimage.minimum_filter1d(eroded, 3, axis=ax, mode="constant", cval=0)
    inner = eroded.view(bool)
    values = residual[inner]
    if values.size == 0:
        raise SegmentationError(
            "no voxel lies at least one voxel inside the noise region",
            hint="give a larger body mask",
        )
    mad = float(np.median(np.abs(values - np.median(values))))
    return MAD_TO_SIGMA * mad / norm, int(values.size)


def estimate_noise(
    image: np.ndarray,
    *,
    spacing: Sequence[float],
    body: np.ndarray | None = None,
    margin_mm: float | None = None,
    min_background_voxels: int = 1000,
) -> NoiseEstimate:
    """Estimate the Rician noise σ of a magnitude image, from air if possible.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Magnitude image (before or after bias correction — see Notes).
    spacing : sequence of 3 float
        Voxel size in mm.
    body : (X, Y, Z) ndarray of bool, optional
        Body mask. Default: :func:`graftimg.preprocess.body.body_mask`.
    margin_mm : float, optional
        Air closer than this to the body is not used (blur, ghosts, partial volume). Default:
        four times the smallest voxel size.
    min_background_voxels : int, optional
        Fewer usable air voxels than this → high-pass fallback.

    Returns
    -------
    NoiseEstimate
        σ, the method used and the number of voxels behind it.

    Raises
    ------
    DimensionError
        ``body`` does not have the image's shape.

    Notes
    -----
    The receive-coil bias multiplies signal and noise alike, so after bias correction σ varies
    across the image as ``σ/field``; :func:`graftimg.preprocess.bias.correct_bias` normalises
    the field to mean 1 in the body, so σ measured on the input still holds on average there.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> truth = np.zeros((40, 40, 20))
    >>> truth[10:30, 10:30, :] = 100.0
    >>> noisy = np.abs(truth + rng.normal(0, 4, truth.shape) + 1j * rng.normal(0, 4, truth.shape))
    >>> est = estimate_noise(noisy, spacing=(1.0, 1.0, 1.0))
    >>> est.method, round(est.sigma)
    ('rayleigh_background', 4)
    """
    image, spacing_t = _check_image(image, spacing)
    if body is None:
        body = body_mask(image, spacing=spacing_t)
    body = np.asarray(body, dtype=bool)
    if body.shape != image.shape:
        raise DimensionError(
            f"body mask shape {body.shape} differs from image shape {image.shape}",
            hint="resample the mask to the image grid first",
        )
    if margin_mm is None:
        margin_mm = 4.0 * min(spacing_t)

    if body.any():
        far = ~within_distance(body, margin_mm, spacing=spacing_t)
    else:
        far = np.ones(image.shape, dtype=bool)
    far &= image > 0
    air = image[far]
    n_air = int(np.count_nonzero(far))
    if n_air >= min_background_voxels:
        q25, q50 = np.percentile(air, [25.0, 50.0])
        shape_ratio = q50 / q25 if q25 > 0 else np.inf
        if _RAYLEIGH_SHAPE_RANGE[0] <= shape_ratio <= _RAYLEIGH_SHAPE_RANGE[1]:
            sigma = rayleigh_sigma(air)
            try:
                whiteness = highpass_sigma(image, far)[0] / sigma if sigma > 0 else 0.0
            except SegmentationError:  # air too thin to high-pass filter
                whiteness = 0.0
            if whiteness >= _MIN_WHITENESS:
                return NoiseEstimate(sigma, "rayleigh_background", int(air.size))

    region = body if body.sum() >= 27 else None
    sigma, n_voxels = highpass_sigma(image, region)
    return NoiseEstimate(sigma, "highpass_mad", n_voxels)


def snr(image: np.ndarray, region: np.ndarray, sigma: float) -> float:
    """Signal-to-noise ratio of a region: mean intensity in the region divided by σ.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Magnitude image.
    region : (X, Y, Z) ndarray of bool
        Region whose signal is measured (e.g. the cord mask, for ``SNR_cord``).
    sigma : float
        Noise σ (e.g. :attr:`NoiseEstimate.sigma`).

    Returns
    -------
    float
        ``mean(image[region]) / sigma``; ``inf`` when ``sigma`` is 0.

    Raises
    ------
    DimensionError
        ``region`` does not have the image's shape.
    SegmentationError
        ``region`` is empty.

    Examples
    --------
    >>> image = np.full((4, 4, 4), 50.0)
    >>> snr(image, image > 0, 2.5)
    20.0
    """
    image = np.asarray(image)
    region = np.asarray(region, dtype=bool)
    if region.shape != image.shape:
        raise DimensionError(
            f"region shape {region.shape} differs from image shape {image.shape}",
            hint="resample the region to the image grid first",
        )
    if not region.any():
        raise SegmentationError("the SNR region is empty", hint="check the cord mask")
    if sigma < 0 or not np.isfinite(sigma):
        raise ConfigError(f"sigma must be finite and ≥ 0, got {sigma}")
    signal = float(np.mean(image[region], dtype=np.float64))
    return signal / sigma if sigma > 0 else math.inf
