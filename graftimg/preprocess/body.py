"""Body (foreground) mask: where the subject is, as opposed to the air around it.

Used to restrict N4 bias-field correction to tissue and to find background air for the noise
estimate (docs/methods.md, preprocessing). The recipe is the usual one: smooth the image a little,
take an automatic global threshold (Otsu or Li, :mod:`skimage.filters`), keep the largest connected
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

from graftimg.arrays import bounding_box
from graftimg.errors import ConfigError, DimensionError, NonFiniteDataError, SegmentationError
from graftimg.spacing import validated_spacing

__all__ = ["body_mask", "within_distance"]


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
    spacing_t = validated_spacing(spacing)
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
    from skimage.filters import threshold_otsu

    image, spacing_t = _check_image(image, spacing)
    if smoothing_mm is None:
        smoothing_mm = 2.0 * min(spacing_t)
    if smoothing_mm < 0 or dilation_mm < 0:
        raise ConfigError(
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
        threshold = _threshold_li(data)
    else:
        raise ConfigError(f"method must be 'otsu' or 'li', got {method!r}")
    mask = data > threshold
    labels, n_labels = ndimage.label(mask)
    if n_labels > 1:
        sizes = np.bincount(labels.ravel())
        sizes[0] = 0
        mask = labels == int(np.argmax(sizes))
    # Hole filling only changes the component's bounding box: outside it all is background,
    # connected to the image border, so filling the box alone gives the same mask.
    box = bounding_box(mask)
    if box is not None:
        inside = _fill_holes(mask[box], planar=False)
        mask[box] = _fill_holes(inside, planar=True)  # every axial slice
    if dilation_mm > 0:
        mask = within_distance(mask, dilation_mm, spacing=spacing_t)
    return mask


def _threshold_li(data: np.ndarray) -> float:
    """:func:`skimage.filters.threshold_li` of ``data``, faster.

    scikit-image iterates ``t ← (μ_b − μ_f) / (ln μ_b − ln μ_f)`` from the mean, each step a
    pass over the whole image (about 50 ms per step on a 384×384×64 image, 15–20 steps). The
    fixed point is found here on the sorted values, each step a binary search and a partial
    sum in float64; scikit-image's own iteration is then started from it, with the tolerance
    it would have used, so that the value returned is a fixed point of its float32 arithmetic
    (one or two steps). On every test and sample image this is scikit-image's value to the
    bit. Where Li's criterion is flat (a unimodal histogram) float32 rounding makes a few
    neighbouring thresholds fixed points, and the one reached from here may differ from the
    one scikit-image reaches from the mean by that rounding (≤ 1e-5 relative on synthetic
    Gaussian data).
    """
    from skimage.filters import threshold_li

    values = np.sort(data, axis=None)
    shifted = values - values[0]  # scikit-image's `image -= image_min`, element for element
    n = shifted.size
    # scikit-image's default tolerance: half the smallest gap between distinct values
    chunk = 1 << 20
    smallest = np.inf
    for lo in range(0, n - 1, chunk):
        gaps = np.diff(shifted[lo : lo + chunk + 1])
        gaps = gaps[gaps > 0]
        if gaps.size:
            smallest = min(smallest, float(gaps.min()))
    if not np.isfinite(smallest):  # a constant image: nothing to speed up
        return float(threshold_li(data))
    tolerance = smallest / 2.0
    # Σ shifted[:k] from float64 sums of blocks plus the rest of one block.
    block = 1 << 12
    whole = n - n % block
    sums = np.sum(shifted[:whole].reshape(-1, block), axis=1, dtype=np.float64)
    sums = np.append(sums, shifted[whole:].sum(dtype=np.float64))
    prefix = np.concatenate([[0.0], np.cumsum(sums)])

    total = float(prefix[-1])
    t_curr, t_next = -2.0 * tolerance, total / n
    for _ in range(1000):
        if abs(t_next - t_curr) <= tolerance:
            break
        t_curr = t_next
        # background: values ≤ t; searched with the largest float32 ≤ t (no float64 copy)
        below = np.float32(t_curr)
        if below > t_curr:
            below = np.nextafter(below, np.float32(-np.inf))
        k = int(np.searchsorted(shifted, below, side="right"))
        if k in (0, n):
            break
        j = k // block
        back = float(prefix[j] + shifted[j * block : k].sum(dtype=np.float64))
        mean_back, mean_fore = back / k, (total - back) / (n - k)
        if mean_back <= 0.0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
    guess = float(values[0]) + float(t_next)
    del values, shifted
    try:
        return float(threshold_li(data, tolerance=tolerance, initial_guess=guess))
    except ValueError:  # the guess fell outside the image's range
        return float(threshold_li(data))


def _fill_holes(mask: np.ndarray, *, planar: bool) -> np.ndarray:
    """:func:`scipy.ndimage.binary_fill_holes` in 3D, or in every axial slice (``planar``).

    The same result from one labelling of the background (face connectivity, in-plane only
    when ``planar``): a hole is a background component that does not touch the border.
    """
    structure = ndimage.generate_binary_structure(3, 1)
    if planar:
        structure[:, :, 0] = structure[:, :, 2] = False
    background, n = ndimage.label(~mask, structure=structure)
    if n == 0:
        return mask.copy()
    keep = np.ones(n + 1, dtype=bool)  # label 0 is the mask itself
    for axis in (0, 1) if planar else (0, 1, 2):
        for end in (0, -1):
            keep[np.take(background, end, axis=axis)] = False
    keep[0] = True
    return keep[background]


def within_distance(
    mask: np.ndarray, distance_mm: float, *, spacing: Sequence[float]
) -> np.ndarray:
    """Voxels whose centre lies within ``distance_mm`` of a voxel of ``mask``.

    The same set as ``distance_transform_edt(~mask, sampling=spacing) <= distance_mm`` (the
    mask is dilated by the voxel offsets no longer than ``distance_mm``, each offset's length
    computed as SciPy computes distances), without a distance map of the whole volume: the
    offsets are grouped in runs along one axis, each run a 1D maximum filter, and only the
    mask's bounding box grown by the distance is visited.

    Parameters
    ----------
    mask : (X, Y, Z) ndarray of bool
        The mask.
    distance_mm : float
        Distance in mm (≥ 0).
    spacing : sequence of 3 float
        Voxel size in mm.

    Returns
    -------
    (X, Y, Z) ndarray of bool
        ``mask`` grown by ``distance_mm``.

    Examples
    --------
    >>> mask = np.zeros((9, 9, 3), dtype=bool)
    >>> mask[4, 4, 1] = True
    >>> near = within_distance(mask, 2.0, spacing=(1.0, 1.0, 3.0))
    >>> int(near.sum()), bool(near[4, 4, 0])
    (13, False)
    """
    mask = np.asarray(mask, dtype=bool)
    sampling = np.asarray([float(s) for s in spacing], dtype=np.float64)
    if not distance_mm >= 0:
        raise ConfigError(f"distance_mm must be ≥ 0, got {distance_mm}")
    reach = [int(np.floor(distance_mm / s)) + 1 for s in sampling]
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask, reach)
    if box is None:
        return out
    sub = mask[box].view(np.uint8)
    near = np.zeros(sub.shape, dtype=bool)
    run = int(np.argmax(reach))  # runs along the axis with the longest reach
    others = [a for a in range(3) if a != run]
    offsets = np.arange(-reach[run], reach[run] + 1)
    dilated: dict[int, np.ndarray] = {}
    for o1 in range(-reach[others[0]], reach[others[0]] + 1):
        for o2 in range(-reach[others[1]], reach[others[1]] + 1):
            offset = np.zeros((3, offsets.size))
            offset[run] = offsets
            offset[others[0]] = o1
            offset[others[1]] = o2
            # as distance_transform_edt: ((d0·s0)² + (d1·s1)²) + (d2·s2)², then the root
            scaled = (offset * sampling[:, None]) ** 2
            length = np.sqrt((scaled[0] + scaled[1]) + scaled[2])
            inside = offsets[length <= distance_mm]
            if inside.size == 0:
                continue
            half = int(inside.max())  # lengths grow with |offset| along the run
            if half not in dilated:
                dilated[half] = ndimage.maximum_filter1d(
                    sub, 2 * half + 1, axis=run, mode="constant", cval=0
                ).view(bool)
            source = dilated[half]
            dst, src = [slice(None)] * 3, [slice(None)] * 3
            for axis, o in ((others[0], o1), (others[1], o2)):
                n = sub.shape[axis]
                if abs(o) >= n:
                    break
                dst[axis] = slice(max(o, 0), n + min(o, 0))
                src[axis] = slice(max(-o, 0), n - max(o, 0))
            else:
                near[tuple(dst)] |= source[tuple(src)]
    out[box] = near
    return out
