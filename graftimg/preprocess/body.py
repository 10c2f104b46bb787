"""Body (foreground) mask: where the subject is, as opposed to the air around it.

Used to restrict N4 bias-field correction to tissue and to find background air for the noise
estimate (METHODS pipeline step 2). The recipe is the usual one: smooth the image a little, take
an automatic global threshold (Otsu or Li, :mod:`skimage.filters`), keep the largest connected
component and fill its holes — in 3D, then in every axial slice, because a cropped field of view
leaves the body open at the top and bottom so that dark structures inside it (CSF on T1w, bone on
T2*w, lungs) are not enclosed in 3D.

On an image with no air at all (a tight field of view, common in rodent and cropped data) the
threshold splits two tissue classes instead; the mask is then the brighter class with its holes
filled. That is still a fine support for N4, and :func:`graftimg.preprocess.noise.estimate_noise`
detects that the "background" is not air.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy import ndimage

from graftimg.errors import DimensionError, NonFiniteDataError, SegmentationError, SpacingError

__all__ = ["body_mask"]


def _check_image(
    image: np.ndarray, spacing: Sequence[float]
) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Validate a 3D image and its voxel spacing (shared by the preprocess modules).

    Parameters
    ----------
    image : (X, Y, Z) array_like
        Image intensities.
    spacing : sequence of 3 float
        Voxel size in mm along each axis.

    Returns
    -------
    image : (X, Y, Z) ndarray
        The input as an array (not copied when it already is one).
    spacing : tuple of 3 float
        The spacing as Python floats.

    Raises
    ------
    DimensionError
        The image is not 3D.
    SpacingError
        The spacing does not have 3 finite positive entries.
    NonFiniteDataError
        The image holds NaN or infinite values.

    Examples
    --------
    >>> _check_image(np.zeros((2, 3, 4)), (1, 1, 2))[1]
    (1.0, 1.0, 2.0)
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise DimensionError(
            f"expected a 3D image, got shape {image.shape}",
            hint="pass one volume (index 4D series first)",
        )
    spacing_t = tuple(float(s) for s in np.ravel(spacing))
    if len(spacing_t) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing_t):
        raise SpacingError(
            f"spacing must be 3 positive finite voxel sizes in mm, got {tuple(spacing)}",
            hint="take it from the volume's header (Volume.spacing)",
        )
    if not np.all(np.isfinite(image)):
        raise NonFiniteDataError(
            "image holds NaN or infinite values", hint="replace them (e.g. np.nan_to_num) first"
        )
    return image, spacing_t  # type: ignore[return-value]


def body_mask(
    image: np.ndarray,
    *,
    spacing: Sequence[float],
    method: Literal["otsu", "li"] = "li",
    smoothing_mm: float | None = None,
    dilation_mm: float = 0.0,
) -> np.ndarray:
    """Mask of the subject's body (foreground) in a magnitude image.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Magnitude image (any real dtype).
    spacing : sequence of 3 float
        Voxel size in mm.
    method : {"otsu", "li"}, optional
        Global threshold of the smoothed image (:func:`skimage.filters.threshold_li`, the
        default, or :func:`skimage.filters.threshold_otsu`). Li's threshold is usually the lower
        one on MR histograms: it keeps dark tissue at the body surface, which would otherwise
        be taken for air by the noise estimate. Both are followed by hole filling, which
        recovers dark structures inside the body.
    smoothing_mm : float, optional
        Standard deviation of the Gaussian smoothing, in mm (converted per axis to voxels).
        Default: twice the smallest voxel size, which suppresses noise without merging the body
        with ghosts.
    dilation_mm : float, optional
        Grow the mask by this distance in mm (Euclidean, spacing-aware). Default 0.

    Returns
    -------
    (X, Y, Z) ndarray of bool
        The body mask: one connected component with its holes filled.

    Raises
    ------
    SegmentationError
        The image is constant, so there is nothing to separate.

    Examples
    --------
    >>> image = np.full((20, 20, 6), 1.0, dtype=np.float32)
    >>> image[5:15, 4:16, :] = 100.0
    >>> mask = body_mask(image, spacing=(1.0, 1.0, 3.0))
    >>> int(mask.sum()), bool(mask[10, 10, 3]), bool(mask[0, 0, 0])
    (936, True, False)
    """
    from skimage.filters import threshold_li, threshold_otsu

    image, spacing_t = _check_image(image, spacing)
    if smoothing_mm is None:
        smoothing_mm = 2.0 * min(spacing_t)
    if smoothing_mm < 0 or dilation_mm < 0:
        raise ValueError(
            f"smoothing_mm and dilation_mm must be ≥ 0, got {smoothing_mm} and {dilation_mm}"
        )
    data = image.astype(np.float32, copy=False)
    if smoothing_mm > 0:
        sigma_vox = [smoothing_mm / s for s in spacing_t]
        data = ndimage.gaussian_filter(data, sigma_vox, mode="nearest")
    if float(data.max()) <= float(data.min()):
        raise SegmentationError(
            "image is constant: no body to separate from background",
            hint="check that the right volume was loaded",
        )
    if method == "otsu":
        threshold = threshold_otsu(data)
    elif method == "li":
        threshold = threshold_li(data)
    else:
        raise ValueError(f"method must be 'otsu' or 'li', got {method!r}")
    mask = data > threshold
    labels, n_labels = ndimage.label(mask)
    if n_labels > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    for k in range(mask.shape[2]):
        mask[:, :, k] = ndimage.binary_fill_holes(mask[:, :, k])
    if dilation_mm > 0:
        mask = ndimage.distance_transform_edt(~mask, sampling=spacing_t) <= dilation_mm
    return mask
