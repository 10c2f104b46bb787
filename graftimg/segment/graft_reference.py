"""Normal-cord reference statistics that cannot include the graft (part of the graft stage).

Graft voxels are defined against normal-appearing cord: ``μ`` (median) and ``σ`` (robust SD).
The preferred reference lies in two bands beyond the injection window (±30 mm in humans), but
a real field of view is often shorter than the window plus its bands (an axial slab of 16 mm, a
sagittal T2w of 50 mm): the reference then falls back to cord voxels inside the window, which
hold the graft. Its bright (``t2``) or dark (``iron``) tail widens ``σ`` — on an inserted graft
in the 1 mm T2w of the Spinal Cord Toolbox test data, ``σ`` came out 0.44 of the cord level
instead of 0.19 — and the threshold ``μ + kσ`` lands above the graft, which is then reported as
zero.

:func:`graft_free_reference` therefore removes candidate graft tissue from the reference by
iterative exclusion whenever the reference has to include the window (a region wholly beyond it
is graft-free by design and is used as it is):

1. start from the reference region of :func:`graftimg.segment.reference.reference_stats`, with
   the median and ``1.4826·MAD`` only (both tolerate up to half the voxels being abnormal; the
   one-sided tail spreads do not) unless the region lies wholly outside the window; when the
   cord's values form two classes (Otsu's effectiveness ≥ 0.8), from the class on the normal
   side (the darker in ``t2``, the brighter in ``iron``), which holds even when the graft fills
   more than half of the cord in the field of view;
2. find abnormal tissue in the window at ``μ ± kσ`` with the graft stage's own clean-up, size
   and distance-to-site rules (:func:`graftimg.segment.graft_components.detect_components`):
   what could be counted as graft; exclude it with a margin (partial-volume voxels at its edge
   are neither graft nor normal);
3. recompute ``μ`` and ``σ`` (now with the tail spreads) on what remains; repeat until the
   excluded set has settled (fewer than 5 voxels or 2 % of it change; at most
   ``max_iterations`` rounds).

The reference is **unreliable** — the graft volume cannot be measured, and must be reported as
missing rather than as zero — when, after exclusion, fewer than ``min_voxels`` normal voxels or
fewer than three slices remain, or when abnormal tissue fills more than three quarters of the
cord in the field of view. The graft stage adds one check in ``t2``: normal cord is darker than
CSF (about 0.3–0.5 of it on T2w); a reference at 0.6 of the CSF level or above is graft or
oedema, not normal cord.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from graftimg.morphology import inplane_dilate as _inplane_dilate
from graftimg.segment.graft_components import detect_components
from graftimg.segment.reference import (
    REFERENCE_MIN_SLICES,
    ReferenceStats,
    reference_stats,
    robust_stats,
)

__all__ = ["graft_free_reference", "reference_sigma"]

#: In-plane margin around excluded abnormal tissue, in voxels, and along the cord.
_MARGIN_INPLANE_VOXELS = 2
_MARGIN_THROUGH_VOXELS = 1

#: The excluded set has settled when fewer voxels than these change between rounds.
_SETTLED_VOXELS = 5
_SETTLED_FRACTION = 0.02

#: Otsu effectiveness (between-class over total variance) above which the cord's values are
#: taken to hold two classes (a Gaussian gives 0.64, a uniform spread 0.75).
_TWO_CLASS_ETA = 0.8

#: Abnormal tissue filling more than this fraction of the cord leaves no trustworthy reference.
_MOSTLY_ABNORMAL = 0.75


def reference_sigma(ref: ReferenceStats, mode: str) -> float:
    """The spread the thresholds use: the larger of ``1.4826·MAD`` and the graft-side tail.

    Normal cord is white matter plus brighter grey matter, so above the median the MAD (set by
    the white-matter majority) understates the spread; at SNR ≥ 20 ``μ + 3·MAD`` lands on grey
    matter, which then joins the graft.

    Examples
    --------
    >>> ref = ReferenceStats(10.0, 1.0, 500, "bands", sigma_upper=1.5, sigma_lower=0.9)
    >>> reference_sigma(ref, "t2"), reference_sigma(ref, "iron")
    (1.5, 1.0)
    """
    side = ref.sigma_lower if mode == "iron" else ref.sigma_upper
    return max(ref.sigma, side) if np.isfinite(side) else ref.sigma


def graft_free_reference(
    image: np.ndarray,
    cord: np.ndarray,
    s_mm: np.ndarray,
    site: tuple[float, float, float],
    *,
    mode: str,
    k_sigma: float,
    look: np.ndarray,
    spacing: tuple[float, float, float],
    window_mm: float,
    band_mm: float,
    erode_voxels: int,
    min_voxels: int,
    min_component_volume_mm3: float,
    site_distance_mm: float,
    max_iterations: int = 6,
) -> tuple[ReferenceStats, np.ndarray]:
    """Reference statistics of normal cord with every abnormal region left out.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical image (bias-corrected).
    cord : (X, Y, Z) ndarray of bool
        Cord mask.
    s_mm : (Z,) ndarray
        Along-cord distance of each slice from the site, in mm (NaN off-cord).
    site : tuple of 3 float
        Injection site, voxel coordinates.
    mode : {"iron", "t2"}
        Which side of ``μ`` is abnormal.
    k_sigma : float
        Threshold for abnormal tissue, in robust SDs (the graft stage passes 2, whatever its
        own ``k``, so that every ``k`` is measured against the same reference).
    look : (X, Y, Z) ndarray of bool
        Where abnormal tissue is looked for (the cord, dilated in ``iron`` mode).
    spacing : tuple of 3 float
        Voxel size in mm.
    window_mm, band_mm, erode_voxels, min_voxels
        As in :func:`graftimg.segment.reference.reference_stats`.
    min_component_volume_mm3 : float
        Smallest abnormal region that is excluded, in mm³ (the graft stage's own size rule).
    site_distance_mm : float
        Only abnormal regions within the window and this close to the site are excluded (the
        graft stage's own keep rule): what could be counted as graft.
    max_iterations : int, optional
        Most exclusion rounds (default 6).

    Returns
    -------
    reference : ReferenceStats
        Statistics of what remains; ``excluded_voxels`` says how much was left out, and the
        flags hold ``reference_unreliable`` when no trustworthy reference exists (see the
        module docstring) and ``reference_exclusion_not_converged`` when the rounds ran out.
    excluded : (X, Y, Z) ndarray of bool
        The voxels left out (abnormal tissue with its margin).

    Examples
    --------
    A cord 20 mm long, half of it graft, and no reference band beyond the window:

    >>> rng = np.random.default_rng(0)
    >>> x, y, z = np.mgrid[:20, :20, :20]
    >>> cord = (x - 10) ** 2 + (y - 10) ** 2 <= 25
    >>> image = np.where(cord, 100.0, 300.0) + rng.normal(0, 5, cord.shape)
    >>> image[cord & (z >= 6) & (z < 16) & ((x - 10) ** 2 + (y - 10) ** 2 <= 9)] += 60.0
    >>> ref, excluded = graft_free_reference(
    ...     image, cord, np.arange(20) - 10.0, (10.0, 10.0, 10.0), mode="t2", k_sigma=3.0,
    ...     look=cord, spacing=(1.0, 1.0, 1.0), window_mm=30.0, band_mm=10.0,
    ...     erode_voxels=1, min_voxels=200, min_component_volume_mm3=1.0,
    ...     site_distance_mm=10.0,
    ... )
    >>> round(ref.median), round(ref.sigma), "reference_unreliable" in ref.flags
    (100, 5, False)
    """
    sign = -1.0 if mode == "iron" else 1.0
    data = image.astype(np.float64, copy=False)

    def stats(exclude: np.ndarray | None) -> ReferenceStats:
        return reference_stats(
            image,
            cord,
            s_mm,
            window_mm=window_mm,
            band_mm=band_mm,
            erode_voxels=erode_voxels,
            min_voxels=min_voxels,
            spacing=spacing,
            exclude=exclude,
        )

    with np.errstate(invalid="ignore"):
        in_window = np.abs(s_mm) <= window_mm
    look = look & in_window[None, None, :]

    def abnormal_tissue(mu: float, sigma: float) -> np.ndarray:
        candidates = sign * (data - mu) > k_sigma * sigma
        found, _ = detect_components(
            candidates,
            look,
            np.zeros_like(look),
            site,
            spacing,
            min_volume_mm3=min_component_volume_mm3,
            max_site_distance_mm=site_distance_mm,
        )
        return found

    start = stats(None)
    if not start.region.startswith("whole_cord"):
        # Beyond the window by design: no graft to leave out. (Leaving out whatever else is
        # darker or brighter there would take normal anatomy with it — white matter on T2*w —
        # and narrow σ until that anatomy reads as graft.)
        return start, np.zeros(cord.shape, dtype=bool)
    # The tail spreads break down when a few per cent of the region is abnormal: start from
    # the median and MAD unless the region lies wholly beyond the window (graft-free by design).
    sigma, mu = start.sigma, start.median
    # The median itself breaks down when the graft holds half the region: when the cord's
    # values form two classes, start from the one on the normal side (darker in t2).
    values = image[cord & np.isfinite(s_mm)[None, None, :]].astype(np.float64)
    normal = _normal_class(values, mode)
    if normal is not None:
        mu, sigma = robust_stats(normal)
    ref = replace(start, median=mu)
    found = excluded = np.zeros(cord.shape, dtype=bool)
    converged = False
    for _ in range(max_iterations):
        if not (sigma > 0 and ref.n_voxels):
            break
        new = abnormal_tissue(ref.median, sigma)
        changed = int((new ^ found).sum())
        if changed <= max(_SETTLED_VOXELS, _SETTLED_FRACTION * int(found.sum())):
            converged = True
            if changed == 0:
                break
        found, excluded = new, _with_margin(new, spacing)
        if not (cord & ~excluded).any():
            break
        ref = stats(excluded)
        sigma = reference_sigma(ref, mode)
        if converged:
            break

    flags = list(ref.flags)
    if not converged and found.any():
        flags.append("reference_exclusion_not_converged")
    reasons = []
    if not (cord & ~excluded).any() or ref.n_voxels < min_voxels:
        reasons.append(
            f"only {ref.n_voxels} normal cord voxels remain outside the abnormal tissue "
            f"(at least {min_voxels} are needed)"
        )
    elif ref.n_slices and ref.n_slices < REFERENCE_MIN_SLICES:
        reasons.append(f"the normal cord left spans only {ref.n_slices} slices")
    if (found & cord).sum() > _MOSTLY_ABNORMAL * cord.sum():
        reasons.append("abnormal tissue fills most of the cord in the field of view")
    if reasons:
        flags.append("reference_unreliable")
    return replace(ref, flags=tuple(dict.fromkeys(flags)), unreliable_reasons=tuple(reasons)), (
        excluded
    )


def _normal_class(values: np.ndarray, mode: str) -> np.ndarray | None:
    """The darker (t2) or brighter (iron) Otsu class when the values form two classes."""
    if values.size < 40 or float(values.min()) == float(values.max()):
        return None
    from skimage.filters import threshold_otsu

    upper = values > threshold_otsu(values)
    lower_part, upper_part = values[~upper], values[upper]
    if min(lower_part.size, upper_part.size) < 20:
        return None
    w = upper_part.size / values.size
    between = w * (1 - w) * (float(upper_part.mean()) - float(lower_part.mean())) ** 2
    if between < _TWO_CLASS_ETA * float(values.var()):
        return None
    return upper_part if mode == "iron" else lower_part


def _with_margin(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """``mask`` grown by the exclusion margin: in-plane steps, then along the cord."""
    if not mask.any():
        return mask
    grown = _inplane_dilate(mask, _MARGIN_INPLANE_VOXELS, spacing)
    along = np.zeros((1, 1, 3), dtype=bool)
    along[0, 0, :] = True
    return ndimage.binary_dilation(grown, along, iterations=_MARGIN_THROUGH_VOXELS)
