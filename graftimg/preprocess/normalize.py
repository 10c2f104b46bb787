"""Intensity normalisation by the median of a reference region.

MR intensities have no absolute scale: receiver gain, coil loading and reconstruction scaling
change from session to session. Dividing by the median intensity of a reference region of
normal tissue (typically normal-appearing cord outside the injection window, or the whole cord
mask) puts every session on a common scale, with the reference at 1. The median, not the mean, so
that a graft, a cyst or a void that leaks into the reference region moves the factor little.

Nothing in graftimg's thresholds needs this — they use ``(I − μ_ref)/σ_ref`` and are scale-free —
but profiles, plots and cross-session comparisons of intensities do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graftimg.errors import DimensionError, NonFiniteDataError, SegmentationError

__all__ = ["IntensityNormalization", "normalize_intensity"]


@dataclass(frozen=True, eq=False)
class IntensityNormalization:
    """Result of :func:`normalize_intensity`.

    Attributes
    ----------
    image : ndarray of float32
        ``input / factor``: the reference region has median 1.
    factor : float
        The median intensity of the reference region in the input (what was divided by).
    n_voxels : int
        Number of reference voxels.
    """

    image: np.ndarray
    factor: float
    n_voxels: int


def normalize_intensity(
    image: np.ndarray, *, reference_mask: np.ndarray
) -> IntensityNormalization:
    """Divide an image by the median intensity of a reference region.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Intensities (any real dtype; any number of dimensions).
    reference_mask : (X, Y, Z) ndarray of bool
        Reference region, same shape as ``image`` (e.g. normal-appearing cord).

    Returns
    -------
    IntensityNormalization
        The normalised image (float32), the factor (the reference median) and the number of
        reference voxels. Multiplying the input by a constant ``c`` multiplies ``factor`` by
        ``c`` and leaves ``image`` unchanged.

    Raises
    ------
    DimensionError
        The mask's shape differs from the image's.
    SegmentationError
        The reference region is empty, or its median is not positive.
    NonFiniteDataError
        The reference region holds NaN or infinite values.

    Examples
    --------
    >>> image = np.array([[[2.0, 4.0, 6.0, 100.0]]])
    >>> out = normalize_intensity(image, reference_mask=image < 50)
    >>> out.factor, out.image.tolist(), out.n_voxels
    (4.0, [[[0.5, 1.0, 1.5, 25.0]]], 3)
    """
    image = np.asarray(image)
    reference_mask = np.asarray(reference_mask, dtype=bool)
    if reference_mask.shape != image.shape:
        raise DimensionError(
            f"reference mask shape {reference_mask.shape} differs from image shape {image.shape}",
            hint="resample the mask to the image grid first",
        )
    values = image[reference_mask]
    if values.size == 0:
        raise SegmentationError(
            "the reference region for intensity normalisation is empty",
            hint="check the cord mask and the reference bands",
        )
    if not np.all(np.isfinite(values)):
        raise NonFiniteDataError("the reference region holds NaN or infinite values")
    factor = float(np.median(values.astype(np.float64)))
    if factor <= 0:
        raise SegmentationError(
            f"the reference region's median intensity is {factor:g}, not positive",
            hint="normalise a magnitude image, with a reference region inside tissue",
        )
    # Divided in float64 and rounded to float32 element by element (no float64 copy).
    normalized = np.empty(image.shape, dtype=np.float32)
    np.divide(image, factor, out=normalized, dtype=np.float64, casting="same_kind")
    return IntensityNormalization(image=normalized, factor=factor, n_voxels=int(values.size))
