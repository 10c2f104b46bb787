"""The injection window around the graft site, and a proposed site when the user gives none.

The injection window is the cord, dilated by about one voxel in the axial plane (not through
thick slices), within ``|s| ≤ L`` mm along the cord from the injection site (pipeline step 4).
``s`` comes from the cord centerline (``Centerline.along_cord_mm(z_site)``); any per-slice array
of signed along-cord distances in mm, NaN where there is no cord, will do.

When the study gives no injection site, :func:`propose_injection_site` returns the most abnormal
cord region — the darkest cluster of robust z-scores in ``iron`` mode, the brightest in ``t2``
mode — or ``None`` when nothing is abnormal, so that the caller reports zero volume and a flag.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from graftimg.errors import ConfigError, SegmentationError
from graftimg.modes import Mode
from graftimg.morphology import inplane_dilate as _inplane_dilate
from graftimg.morphology import inplane_erode as _inplane_erode
from graftimg.morphology import open_fine as _open_fine
from graftimg.segment.reference import _check_inputs, robust_stats
from graftimg.spacing import validated_spacing as _check_spacing

__all__ = ["center_on_site", "injection_window", "propose_injection_site"]

_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)


def injection_window(
    cord_mask: np.ndarray,
    s_mm: np.ndarray,
    *,
    half_length_mm: float,
    dilate_inplane_voxels: int = 1,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> np.ndarray:
    """Cord within ``|s| ≤ L`` of the injection site, dilated in-plane.

    Parameters
    ----------
    cord_mask : (X, Y, Z) ndarray of bool
        Cord mask, canonical RAS+.
    s_mm : (Z,) ndarray
        Signed along-cord distance of each axial slice from the injection site, in mm; NaN
        where there is no cord (such slices are never in the window).
    half_length_mm : float
        Half-length ``L`` of the window along the cord, in mm (human 30, rodent 5; see
        :class:`graftimg.segment.graft.GraftParams`).
    dilate_inplane_voxels : int, optional
        Dilation of the cord in the axial plane, in voxels (default 1; 0 gives the cord
        itself). Never applied through the slices, nor along an axial axis much coarser
        than the finest one.
    spacing : sequence of 3 float, optional
        Voxel size in mm; decides which axial axes count as in-plane (default isotropic).

    Returns
    -------
    (X, Y, Z) ndarray of bool
        The window mask.

    Examples
    --------
    >>> cord = np.zeros((7, 7, 11), bool)
    >>> cord[3, 3, :] = True
    >>> s_mm = np.arange(11) - 5.0
    >>> w = injection_window(cord, s_mm, half_length_mm=2)
    >>> int(w.sum()), np.flatnonzero(w.any(axis=(0, 1))).tolist()
    (25, [3, 4, 5, 6, 7])
    """
    cord = np.asarray(cord_mask, dtype=bool)
    s = np.asarray(s_mm, dtype=np.float64)
    if cord.ndim != 3 or s.shape != (cord.shape[2],):
        raise SegmentationError(
            f"cord mask shape {cord.shape} and s_mm shape {s.shape} do not match",
            hint="s_mm needs one value per axial slice (axis 2) of the mask",
        )
    if not half_length_mm > 0:
        raise ConfigError(f"half_length_mm must be positive, got {half_length_mm!r}")
    spacing = _check_spacing(spacing)
    with np.errstate(invalid="ignore"):
        in_window = np.abs(s) <= half_length_mm
    return _inplane_dilate(cord, int(dilate_inplane_voxels), spacing) & in_window[None, None, :]


def center_on_site(s_mm: np.ndarray, site_z: float) -> np.ndarray:
    """Shift per-slice along-cord distances so that ``s = 0`` at the site's (fractional) slice.

    ``s`` at ``site_z`` is interpolated linearly between the two neighbouring slices. A no-op
    (to rounding) for ``Centerline.along_cord_mm(site_z)``.

    Parameters
    ----------
    s_mm : (Z,) ndarray
        Signed along-cord distance per slice in mm, any origin; NaN where there is no cord.
    site_z : float
        Slice index of the injection site (may be fractional).

    Returns
    -------
    (Z,) ndarray
        ``s_mm − s(site_z)``.

    Raises
    ------
    SegmentationError
        If the site's slice has no cord (``s`` is NaN there and at its neighbours).

    Examples
    --------
    >>> center_on_site(np.array([0.0, 2.0, 4.0, np.nan]), 1.5).tolist()
    [-3.0, -1.0, 1.0, nan]
    >>> center_on_site(np.array([0.0, 2.0, 4.0]), 2.0000002).tolist()
    [-4.0, -2.0, 0.0]
    """
    s = np.asarray(s_mm, dtype=np.float64)
    z = float(site_z)
    n = s.shape[0]
    if -0.5 < z < n - 0.5:
        # A site in the first or last slice lies anywhere within half a slice of its centre
        # (float rounding gave z = 4.0000002 in a 5-slice image).
        z = min(max(z, 0.0), n - 1.0)
    lo, hi = int(np.floor(z)), int(np.ceil(z))
    if lo < 0 or hi >= n:
        raise SegmentationError(f"injection site slice {z} lies outside the {n} slices")
    if np.isfinite(s[lo]) and np.isfinite(s[hi]):
        origin = s[lo] + (z - lo) * (s[hi] - s[lo]) if hi > lo else s[lo]
    else:
        nearest = int(np.rint(z))
        if not np.isfinite(s[nearest]):
            raise SegmentationError(
                f"the injection site's slice z={z:g} holds no cord",
                hint="check that the cord mask covers the injection level, or correct the site",
            )
        origin = s[nearest]
    return s - origin


def propose_injection_site(
    image: np.ndarray,
    cord_mask: np.ndarray,
    *,
    spacing: Sequence[float],
    mode: Mode,
    k_sigma: float = 3.0,
    min_cluster_volume_mm3: float = 1.0,
    min_score: float | None = None,
    erode_voxels: int = 1,
) -> tuple[np.ndarray | None, float]:
    """Propose the injection site as the most abnormal cluster of cord voxels.

    The reference is the whole cord, eroded in-plane by ``erode_voxels`` (median and
    ``1.4826·MAD``; a graft much smaller than the cord barely moves them). Voxels are abnormal
    where their robust z-score, signed so that darker is positive in ``iron`` mode and brighter
    in ``t2`` mode, exceeds ``k_sigma``; the search region is the cord dilated one voxel in-plane
    (``iron``: blooming reaches past the cord) or the eroded cord (``t2``: the cord edge is bright
    from CSF partial volume). Abnormal voxels are opened with a one-voxel cross (isolated noise
    voxels go), grouped with 26-connectivity, and clusters under ``min_cluster_volume_mm3`` are
    dropped. Each cluster scores ``Σ z · v_voxel`` (in σ·mm³: it grows with size and contrast
    and does not depend on the voxel size); the best cluster's z-weighted centroid is the site.

    The input should be bias-corrected (N4): a strong residual bias along the cord moves the
    whole-cord reference.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical (RAS+) image.
    cord_mask : (X, Y, Z) ndarray of bool
        Cord mask.
    spacing : sequence of 3 float
        Voxel size in mm.
    mode : {"iron", "t2"}
        ``iron``: look for dark voids; ``t2``: look for bright intramedullary tissue.
    k_sigma : float, optional
        Robust z-score a voxel must exceed (default 3).
    min_cluster_volume_mm3 : float, optional
        Smallest cluster kept, in mm³ (default 1.0; use about 0.005 for rodent data).
    min_score : float, optional
        Smallest score, in σ·mm³, that counts as abnormal; default
        ``k_sigma · min_cluster_volume_mm3``, the least any surviving cluster can score.
    erode_voxels : int, optional
        In-plane erosion of the cord for the reference, in voxels (default 1).

    Returns
    -------
    site_voxel : (3,) ndarray of float or None
        Proposed site in canonical voxel coordinates, or ``None`` when nothing is abnormal.
    score : float
        Score of the best cluster in σ·mm³ (0.0 when there is none).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> x, y = np.mgrid[:24, :24]
    >>> cord = np.repeat(((x - 12) ** 2 + (y - 12) ** 2 <= 36)[..., None], 40, axis=2)
    >>> image = np.where(cord, 100.0, 250.0) + rng.normal(0, 4, cord.shape)
    >>> propose_injection_site(image, cord, spacing=(0.5, 0.5, 0.5), mode="iron")
    (None, 0.0)
    >>> image[10:14, 12:16, 25:29] = 3.0
    >>> site, score = propose_injection_site(image, cord, spacing=(0.5, 0.5, 0.5), mode="iron")
    >>> np.round(site, 1).tolist(), score > 10
    ([11.5, 13.5, 26.5], True)
    """
    image, cord, _ = _check_inputs(image, cord_mask, np.zeros(np.shape(image)[-1]))
    spacing = _check_spacing(spacing)
    if mode not in ("iron", "t2"):
        raise ConfigError(f"mode must be 'iron' or 't2', got {mode!r}")
    if not k_sigma > 0:
        raise ConfigError(f"k_sigma must be positive, got {k_sigma!r}")
    if not cord.any():
        raise SegmentationError(
            "the cord mask is empty", hint="check the cord segmentation of this session"
        )
    eroded = _inplane_erode(cord, erode_voxels, spacing)
    reference = eroded if eroded.sum() >= 200 else cord
    median, sigma = robust_stats(image[reference])
    if sigma == 0.0:
        return None, 0.0
    sign = -1.0 if mode == "iron" else 1.0
    z = sign * (image.astype(np.float64) - median) / sigma
    search = _inplane_dilate(cord, 1, spacing) if mode == "iron" else eroded
    abnormal = _open_fine((z > k_sigma) & search, spacing)
    labels, n = ndimage.label(abnormal, structure=_FULL_CONNECTIVITY)
    if n == 0:
        return None, 0.0
    voxel_mm3 = float(np.prod(spacing))
    index = np.arange(1, n + 1)
    counts = ndimage.sum_labels(np.ones_like(z), labels, index)
    scores = ndimage.sum_labels(z, labels, index) * voxel_mm3
    scores[counts * voxel_mm3 < min_cluster_volume_mm3] = 0.0
    best = int(np.argmax(scores))
    threshold = k_sigma * min_cluster_volume_mm3 if min_score is None else float(min_score)
    score = float(scores[best])
    if score <= 0.0 or score < threshold:
        return None, 0.0 if score <= 0.0 else score
    member = labels == best + 1
    site = np.array(ndimage.center_of_mass(np.where(member, z, 0.0)), dtype=np.float64)
    return site, score
