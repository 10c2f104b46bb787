"""Automatic spinal cord segmentation, classical and contrast-aware, flagged when uncertain.

The cord is found in three steps, all sizes in mm (:mod:`graftimg.segment.cord_priors`), so the
same code serves a 1 mm human T2w and a 0.1 mm rat T2*w:

1. **Course** (:func:`~graftimg.segment.cord_locate.locate_cord`): every axial slice is scored
   for "a cord-sized elliptic region wrapped in CSF of the opposite polarity" (star-shaped edge
   search, oriented elliptic Hough votes and, on CSF-bright contrasts, CSF brightness all
   around); a dynamic-programming path through the slices picks the cord's centre in each,
   penalising sideways jumps per mm of S-I. A ``seed_voxel`` forces the path through the
   user's click.
2. **Edge per slice** (:func:`~graftimg.segment.cord_slices.trace_slices`): rays from the centre,
   the closed contour along the first clear cord→CSF edge of the contrast's polarity found by
   dynamic programming over angles; a robust ellipse fit re-centres the rays, and the ellipses
   pooled over ±``shape_window_mm`` along S-I become a soft shape prior for the final pass.
   The cord therefore includes its bright grey-matter butterfly on T2*w, and where the CSF rim
   is missing (the cord lying on the dura) the contour follows the ellipse. The final contour
   sits where each ray's intensity has gone :data:`BOUNDARY_LEVEL` (a quarter) of the way
   from the cord's level to the CSF's, the convention of manual cord masks.
3. **Clean-up and quality**: slices at either end without a credible boundary are dropped, the
   largest 3D component is kept, dents where the contour bent around abnormal tissue inside the
   cord (a graft, a lesion) are filled from the slices above and below
   (:func:`~graftimg.segment.cord_bends.fill_bends`, flag :data:`BENDS`), and the result is
   checked: implausible CSA for the scale, CSA or centre jumps between slices, weak cord/CSF
   boundary, disconnected pieces. Any of these sets ``cord_uncertain``; ``confidence``
   summarises them in 0–1.

The polarity comes from the contrast (``t1``: cord brighter than CSF; ``t2``, ``t2s``, ``mt``:
darker), never from the intensities. CSA is the in-plane area per axial slice (not corrected
for the cord's angle).

Examples
--------
>>> import numpy as np
>>> x, y = np.mgrid[:80, :80] * 0.5
>>> r = np.hypot((x - 20) / 6.0, (y - 20) / 4.0)
>>> axial = np.where(r < 1, 300.0, np.where(r < 1.5, 1000.0, 250.0))
>>> image = np.repeat(axial[:, :, None], 12, axis=2)
>>> seg = segment_cord(image, spacing=(0.5, 0.5, 3.0), contrast="t2")
>>> seg.mask.shape, seg.flags
((80, 80, 12), ())
>>> bool(abs(np.median(seg.csa_mm2) - np.pi * 6 * 4) < 0.1 * np.pi * 6 * 4)
True
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from graftimg.arrays import bounding_box
from graftimg.errors import (
    ConfigError,
    DimensionError,
    NonFiniteDataError,
    SegmentationError,
)
from graftimg.segment.contrast import (
    CONTRAST_MODELS,
    CONTRASTS,
    check_contrast,
    contrast_from_name,
)
from graftimg.segment.cord_bends import BendFill, fill_bends
from graftimg.segment.cord_locate import locate_cord
from graftimg.segment.cord_priors import CordPrior, cord_prior
from graftimg.segment.cord_slices import SliceContours, fit_ellipses, rasterize, trace_slices
from graftimg.spacing import validated_spacing

__all__ = [
    "BENDS",
    "BOUNDARY_LEVEL",
    "CONTRASTS",
    "UNCERTAIN",
    "CordSegmentation",
    "contrast_from_name",
    "segment_cord",
]

#: The flag every doubtful result carries, beside the flags that say why.
UNCERTAIN = "cord_uncertain"

#: Rays of the two refinement passes, which only feed robust ellipse fits (5 parameters: the
#: centre for the next pass and the pooled shape prior): every 15°, about 1.3 mm of a human and
#: 0.35 mm of a rat cord's edge apart. The final contour uses ``n_angles`` rays. On the five real
#: scans of tests/data Dice moved by ≤ 0.004 against 72-ray refinements; the cord stage took
#: 0.18 → 0.12 s on the 1 mm T2w.
REFINE_RAYS = 24

#: Raised when the contour bent around abnormal tissue inside the cord (a graft, a lesion) and
#: the dent was filled (:func:`~graftimg.segment.cord_bends.fill_bends`): the cord holds the
#: tissue, but its edge there comes from the slices above and below, not from the image.
BENDS = "cord_bends_around_abnormality"
#: A fill counts when it adds at least this fraction of a slice's cord area ...
BEND_FRACTION = 0.2
#: ... and then multiplies the confidence by this.
BEND_CONFIDENCE = 0.75

#: Where the contour crosses the cord→CSF transition, from the cord's level (0) to the CSF's
#: (1). The manual masks of the Spinal Cord Toolbox test data put the cord's edge at the inner
#: foot of the transition, where the intensity has gone a quarter of the way to the CSF's (the
#: quarter-level crossing of the edge-aligned median profile lies 0.0–0.1 mm from the manual
#: edge on T2w and T1w, and within 0.1 mm on the T2*w and MT scans not used to choose it),
#: 0.2–0.5 mm inside the steepest point. docs/methods.md gives the measurement.
BOUNDARY_LEVEL = 0.25

_METHOD = (
    "classical: cord-in-CSF tube detection (star edges, oriented elliptic Hough, CSF "
    "brightness) with a dynamic-programming path along S-I; per-slice polar contour by "
    "dynamic programming with robust ellipse shape prior; largest 3D component"
)


@dataclass(frozen=True)
class CordSegmentation:
    """A cord mask with its quality.

    Attributes
    ----------
    mask : (X, Y, Z) ndarray of bool
        The cord, in the canonical grid of the input.
    confidence : float
        Overall quality in [0, 1] (boundary reliability × CSA plausibility × continuity).
    flags : tuple of str
        Empty for a clean result; otherwise ``"cord_uncertain"`` followed by the reasons among
        ``"csa_implausible"``, ``"csa_jump"``, ``"centroid_jump"``, ``"weak_boundary"``,
        ``"disconnected_pieces"``, ``"seed_outside_mask"``, ``"no_cord_found"``,
        ``"low_confidence"``; and, last, ``"cord_bends_around_abnormality"`` (:data:`BENDS`)
        when the contour bent around abnormal tissue inside the cord and the dent was filled
        from the slices above and below (a warning: the cord holds the tissue, but its edge
        there is not read from the image; ``details["bends_filled"]`` says where).
    csa_mm2 : (Z,) ndarray of float
        Cross-sectional area of the mask in each axial slice, in mm² (0 where no cord).
    contrast : str
        The contrast used (one of :data:`CONTRASTS`).
    method : str
        Short description of the method.
    details : dict
        JSON-serialisable numbers: per-slice quality, thresholds, parameters.
    """

    mask: np.ndarray
    confidence: float
    flags: tuple[str, ...]
    csa_mm2: np.ndarray
    contrast: str
    method: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def uncertain(self) -> bool:
        """Whether the result carries ``cord_uncertain``."""
        return UNCERTAIN in self.flags

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (what the ``segment-cord`` sidecar holds)."""
        return {
            "contrast": self.contrast,
            "method": self.method,
            "confidence": round(float(self.confidence), 4),
            "flags": list(self.flags),
            "csa_mm2": [round(float(a), 3) for a in self.csa_mm2],
            "cord_volume_mm3": self.details.get("cord_volume_mm3"),
            "details": self.details,
        }


def _check_inputs(
    image: Any, spacing: Any, seed_voxel: Any
) -> tuple[np.ndarray, tuple[float, float, float], tuple[float, float, float] | None]:
    array = np.asarray(image)
    if array.ndim != 3:
        raise DimensionError(
            f"segment_cord needs a 3D image, got shape {array.shape}",
            hint="pass one volume (select a time point of a 4D series first)",
        )
    if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
        raise SegmentationError(f"image must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not np.all(np.isfinite(array)):
        raise NonFiniteDataError(
            "image holds NaN or infinite values", hint="replace them before segmenting"
        )
    sp = validated_spacing(spacing)
    if min(array.shape[:2]) < 5 or array.shape[2] < 1:
        raise SegmentationError(
            f"image of shape {array.shape} is too small to hold a cord cross-section"
        )
    if float(array.max()) <= float(array.min()):
        raise SegmentationError("image is constant: there is no cord to find")
    seed = None
    if seed_voxel is not None:
        seed = tuple(float(v) for v in seed_voxel)
        if len(seed) != 3 or not all(
            math.isfinite(v) and -0.5 <= v <= n - 0.5 for v, n in zip(seed, array.shape)
        ):
            raise ConfigError(
                f"seed_voxel {seed_voxel!r} is not a voxel of the image of shape {array.shape}",
                hint="give (i, j, k) indices of the canonical RAS+ array",
            )
    return array, sp, seed


def _reliability(contours: SliceContours, polarity: int) -> np.ndarray:
    """Per contour point, 0–1: a clear edge of the right polarity with CSF outside."""
    score = np.clip(contours.contrast / 0.2, 0.0, 1.0)
    if polarity < 0:
        score = score * np.clip((contours.outer_brightness - 0.3) / 0.5, 0.0, 1.0)
    return score


def _pool_along_z(values: np.ndarray, half: int) -> np.ndarray:
    """Median of each column over a sliding window of ``2 half + 1`` slices, NaN-aware."""
    if half < 1:
        return values
    padded = np.pad(values, ((half, half), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows stay NaN
        return np.nanmedian(windows, axis=-1)


def _trace_cord(
    image: np.ndarray,
    centres: np.ndarray,
    *,
    spacing: tuple[float, float, float],
    polarity: int,
    prior: CordPrior,
    n_angles: int,
    n_refinements: int = 2,
    refine_angles: int | None = None,
    boundary_level: float | None = None,
) -> SliceContours:
    """Contours per slice, re-centred on robust ellipse fits, with a pooled shape prior.

    ``refine_angles``: rays of the refinement passes (default ``n_angles``); the last pass
    always uses ``n_angles`` and alone places the contour at ``boundary_level`` (the
    refinements fit ellipses to the edges themselves).
    """
    expected = None
    z_sigma = prior.z_smooth_mm / spacing[2]
    half = round(prior.shape_window_mm / spacing[2])
    rays = [refine_angles or n_angles] * n_refinements + [n_angles]
    for iteration, n_rays in enumerate(rays):
        contours = trace_slices(
            image,
            centres,
            spacing=spacing,
            polarity=polarity,
            prior=prior,
            n_angles=n_rays,
            expected_radii_mm=expected,
            inner_preference=1.0,
            boundary_level=boundary_level if iteration == n_refinements else None,
        )
        if iteration == n_refinements:
            break
        # every contour point has a small say, reliable ones (clear edge, CSF outside) more
        weights = 0.1 + _reliability(contours, polarity)
        fit = fit_ellipses(contours, spacing=spacing, weights=weights)
        centres = np.where(fit.valid[:, None], fit.centres_vox, contours.centroids_vox(spacing))
        if z_sigma >= 0.3:
            centres = ndimage.gaussian_filter1d(centres, z_sigma, axis=0, mode="nearest")
        # the shape prior on the next pass's rays (trace_slices spaces them evenly from 0)
        next_angles = 2 * np.pi * np.arange(rays[iteration + 1]) / rays[iteration + 1]
        expected = _pool_along_z(fit.radii_mm(next_angles, centres, spacing), half)
    return contours


def _retrace_from_seed(
    image: np.ndarray,
    contours: SliceContours,
    seed: tuple[float, float, float],
    *,
    spacing: tuple[float, float, float],
    polarity: int,
    prior: CordPrior,
    boundary_level: float | None,
) -> SliceContours:
    """Trace the seed's slice again with the rays starting at the seed itself."""
    k = round(seed[2])
    single = trace_slices(
        image[:, :, k : k + 1],
        np.array([[seed[0], seed[1]]]),
        spacing=spacing,
        polarity=polarity,
        prior=prior,
        n_angles=len(contours.angles),
        inner_preference=1.0,
        boundary_level=boundary_level,
    )
    fields = {}
    names = ("centres_vox", "radii_mm", "edge_radii_mm", "edge", "contrast", "outer_brightness")
    for name in names:
        values = getattr(contours, name).copy()
        values[k] = getattr(single, name)[0]
        fields[name] = values
    return SliceContours(angles=contours.angles, **fields)


def _end_trim(slice_reliability: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Slices kept: all but the runs at either end without a credible boundary."""
    good = slice_reliability >= threshold
    keep = np.zeros(len(good), dtype=bool)
    if good.any():
        first, last = np.flatnonzero(good)[[0, -1]]
        keep[first : last + 1] = True
    return keep


def _quality(
    *,
    mask: np.ndarray,
    csa: np.ndarray,
    keep: np.ndarray,
    contours: SliceContours,
    reliability: np.ndarray,
    spacing: tuple[float, float, float],
    prior: CordPrior,
    n_components: int,
    seed_inside: bool | None,
    bends: BendFill | None = None,
) -> tuple[float, tuple[str, ...], dict[str, Any]]:
    """Flags, confidence and per-slice numbers of a segmentation."""
    reasons: list[str] = []
    cord = np.flatnonzero(csa > 0)
    details: dict[str, Any] = {}
    if len(cord) == 0:
        return 0.0, (UNCERTAIN, "no_cord_found"), {"cord_slices": []}

    slice_rel = reliability.mean(axis=1)
    slice_contrast = np.median(contours.contrast, axis=1)
    lo, hi = prior.csa_range_mm2
    implausible = cord[(csa[cord] < lo) | (csa[cord] > hi)]
    frac_implausible = len(implausible) / len(cord)
    if frac_implausible > 0.1:
        reasons.append("csa_implausible")

    dz = spacing[2]
    n_pairs = max(len(cord) - 1, 0)
    consecutive = cord[1:][np.diff(cord) == 1]
    jump_limit = 0.25 + 0.1 * dz / prior.minor_mm
    typical_csa = float(np.median(csa[cord]))
    rel_jump = np.abs(csa[consecutive] - csa[consecutive - 1]) / max(typical_csa, 1e-9)
    csa_jumps = consecutive[rel_jump > jump_limit]
    # Centroid of each cord slice from the mask's projections (integer sums: exact).
    first_moments = np.stack(
        [np.arange(n) @ mask.sum(axis=1 - axis)[:, cord] for axis, n in enumerate(mask.shape[:2])],
        axis=1,
    )
    centres_mm = (first_moments / mask.sum(axis=(0, 1))[cord, None] * spacing[:2]).reshape(-1, 2)
    steps = np.hypot(*np.diff(centres_mm, axis=0).T) if len(cord) > 1 else np.zeros(0)
    step_limit = 0.5 * prior.minor_mm + 0.47 * dz  # 25° tilt per slice on top of noise
    steps_consecutive = steps[np.diff(cord) == 1] if len(steps) else steps
    centre_jumps = consecutive[steps_consecutive > step_limit] if len(steps) else consecutive
    allowed = max(1, int(0.05 * n_pairs))
    if len(csa_jumps) >= allowed and n_pairs:
        reasons.append("csa_jump")
    if len(centre_jumps) >= allowed and n_pairs:
        reasons.append("centroid_jump")

    median_rel = float(np.median(slice_rel[cord]))
    median_contrast = float(np.median(slice_contrast[cord]))
    if median_rel < 0.35 or median_contrast < 0.05:
        reasons.append("weak_boundary")
    if n_components > 1:
        reasons.append("disconnected_pieces")
    if seed_inside is False:
        reasons.append("seed_outside_mask")

    q_boundary = float(np.clip((median_rel - 0.2) / 0.4, 0.0, 1.0))
    q_csa = 1.0 - frac_implausible
    n_jumps = len(set(csa_jumps.tolist()) | set(centre_jumps.tolist()))
    q_continuity = 1.0 - min(1.0, n_jumps / max(n_pairs, 1) * 5.0) if n_pairs else 1.0
    confidence = q_boundary * q_csa * q_continuity
    if n_components > 1:
        confidence *= 0.8
    bent = bends is not None and float(bends.filled_fraction.max(initial=0.0)) >= BEND_FRACTION
    if bent:
        confidence *= BEND_CONFIDENCE
    if confidence < 0.5 and not reasons:
        reasons.append("low_confidence")
    flags = (UNCERTAIN, *reasons) if reasons else ()
    if bent:
        flags = (*flags, BENDS)

    def rounded(values: np.ndarray, digits: int = 3) -> list[float]:
        return [round(float(v), digits) for v in values]

    details.update(
        {
            "cord_slices": [int(cord[0]), int(cord[-1])],
            "n_cord_slices": len(cord),
            "slices_trimmed": int(len(keep) - keep.sum()),
            "median_csa_mm2": round(typical_csa, 3),
            "boundary_reliability_median": round(median_rel, 4),
            "boundary_contrast_median": round(median_contrast, 4),
            "quality_terms": {
                "boundary": round(q_boundary, 4),
                "csa_plausibility": round(q_csa, 4),
                "continuity": round(q_continuity, 4),
            },
            "thresholds": {
                "csa_range_mm2": list(prior.csa_range_mm2),
                "csa_jump_relative": round(jump_limit, 4),
                "centre_step_mm": round(step_limit, 4),
                "boundary_reliability_min": 0.35,
                "boundary_contrast_min": 0.05,
            },
            "slices_csa_implausible": [int(z) for z in implausible],
            "slices_csa_jump": [int(z) for z in csa_jumps],
            "slices_centroid_jump": [int(z) for z in centre_jumps],
            "n_components": int(n_components),
            "bends_filled": {
                "slices": [] if bends is None else [int(k) for k in bends.slices],
                "volume_mm3": 0.0 if bends is None else round(bends.filled_mm3, 3),
                "largest_slice_fraction": 0.0
                if bends is None
                else round(float(bends.filled_fraction.max(initial=0.0)), 4),
            },
            "per_slice": {
                "boundary_reliability": rounded(slice_rel),
                "boundary_contrast": rounded(slice_contrast),
                "contour_centre_vox": [rounded(c, 2) for c in contours.centres_vox],
            },
        }
    )
    return float(confidence), flags, details


def segment_cord(
    image: np.ndarray,
    *,
    spacing: tuple[float, float, float],
    contrast: str,
    seed_voxel: tuple[float, float, float] | None = None,
    scale: str = "human",
    n_angles: int = 72,
    boundary_level: float | None = BOUNDARY_LEVEL,
) -> CordSegmentation:
    """Segment the spinal cord of a canonical RAS+ image.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Image in canonical RAS+ order (axis 0 R-L, 1 A-P, 2 S-I; axial slices along axis 2),
        any real dtype; magnitudes (values below 0 are shifted, never clipped).
    spacing : tuple of 3 float
        Voxel size along the three axes, in mm.
    contrast : str
        ``"t1"``, ``"t2"``, ``"t2s"`` or ``"mt"`` (see :func:`contrast_from_name`); it sets
        the polarity of the cord against the CSF.
    seed_voxel : tuple of 3 float, optional
        One point (i, j, k) inside the cord, e.g. a click in a viewer. The cord's course is
        forced through it and its slice is traced from it. Recommended for thick-slice axial
        T2*w and MT images.
    scale : {"human", "rodent"}, optional
        Size prior of the cord (human about 8 × 12 mm, rodent about 2 × 3 mm).
    n_angles : int, optional
        Number of rays per slice of the contour search.
    boundary_level : float or None, optional
        Where the contour crosses the cord→CSF transition, as a fraction of the way from the
        cord's intensity (0) to the CSF's (1) on each ray (:data:`BOUNDARY_LEVEL`, the
        convention of manual masks, by default); ``None`` keeps the edge's steepest point
        (about 0.5, the half-partial-volume boundary).

    Returns
    -------
    CordSegmentation
        The mask, CSA per slice, confidence, flags and details.

    Raises
    ------
    DimensionError
        If ``image`` is not 3D.
    NonFiniteDataError
        If ``image`` holds NaN or infinite values.
    SpacingError
        If ``spacing`` is not three positive finite numbers.
    ConfigError
        If ``contrast``, ``scale`` or ``seed_voxel`` is invalid.
    SegmentationError
        If the image is constant or too small to hold a cord.

    Examples
    --------
    A rat-sized T1w phantom (cord bright, CSF dark), 0.1 mm voxels, with one seed click:

    >>> import numpy as np
    >>> x, y = np.mgrid[:60, :60] * 0.1
    >>> r = np.hypot((x - 3.0) / 1.6, (y - 3.0) / 1.1)
    >>> axial = np.where(r < 1, 800.0, np.where(r < 1.3, 150.0, 600.0))
    >>> image = np.repeat(axial[:, :, None], 10, axis=2)
    >>> seg = segment_cord(
    ...     image, spacing=(0.1, 0.1, 0.5), contrast="t1", scale="rodent", seed_voxel=(30, 30, 5)
    ... )
    >>> bool(seg.mask[30, 30, 5]), seg.uncertain
    (True, False)
    """
    name = check_contrast(contrast)
    prior = cord_prior(scale)
    data, sp, seed = _check_inputs(image, spacing, seed_voxel)
    if n_angles < 16:
        raise ConfigError(f"n_angles must be at least 16, got {n_angles}")
    if boundary_level is not None and not 0.0 <= boundary_level <= 1.0:
        raise ConfigError(
            f"boundary_level must lie in [0, 1] or be None, got {boundary_level}",
            hint=f"{BOUNDARY_LEVEL} follows manual masks; None the steepest point of the edge",
        )
    low = float(data.min())
    if low < 0:
        data = data - low
    polarity = CONTRAST_MODELS[name].cord_polarity

    course = locate_cord(data, spacing=sp, polarity=polarity, prior=prior, seed_voxel=seed)
    centres = course.centres_vox.copy()
    if seed is not None:
        centres[round(seed[2])] = seed[:2]
    contours = _trace_cord(
        data,
        centres,
        spacing=sp,
        polarity=polarity,
        prior=prior,
        n_angles=n_angles,
        refine_angles=min(n_angles, REFINE_RAYS),
        boundary_level=boundary_level,
    )

    reliability = _reliability(contours, polarity)
    keep = _end_trim(reliability.mean(axis=1))
    seed_inside: bool | None = None
    if seed is not None:
        k = round(seed[2])
        keep[k] = True
        seed_idx = tuple(round(v) for v in seed)
        probe = rasterize(contours, data.shape, spacing=sp, slices=np.arange(data.shape[2]) == k)
        if not probe[seed_idx]:
            contours = _retrace_from_seed(
                data,
                contours,
                seed,
                spacing=sp,
                polarity=polarity,
                prior=prior,
                boundary_level=boundary_level,
            )
            reliability = _reliability(contours, polarity)
    mask = rasterize(contours, data.shape, spacing=sp, slices=keep)

    # Components are labelled in the mask's bounding box only (same labels, same order).
    box = bounding_box(mask)
    n_components = 0
    if box is not None:
        labels, n_components = ndimage.label(mask[box], structure=np.ones((3, 3, 3), dtype=bool))
        if n_components > 1:
            sizes = np.bincount(labels.ravel())[1:]
            chosen = int(np.argmax(sizes)) + 1
            if seed is not None:
                local = tuple(i - b.start for i, b in zip(seed_idx, box, strict=True))
                inside = all(0 <= i < b.stop - b.start for i, b in zip(local, box, strict=True))
                if inside and labels[local] > 0:
                    chosen = int(labels[local])
            mask = np.zeros_like(mask)
            mask[box] = labels == chosen
    # abnormal tissue inside the cord (a graft, a lesion) that the contour bent around
    bends = fill_bends(data, mask, spacing=sp, polarity=polarity, prior=prior, n_angles=n_angles)
    mask = bends.mask
    if seed is not None:
        seed_inside = bool(mask[seed_idx])

    csa = mask.sum(axis=(0, 1)) * (sp[0] * sp[1])
    confidence, flags, details = _quality(
        mask=mask,
        csa=csa,
        keep=keep,
        contours=contours,
        reliability=reliability,
        spacing=sp,
        prior=prior,
        n_components=n_components,
        seed_inside=seed_inside,
        bends=bends,
    )
    details.update(
        {
            "scale": prior.scale,
            "polarity": "cord brighter than CSF" if polarity > 0 else "cord darker than CSF",
            "spacing_mm": list(sp),
            "seed_voxel": None if seed is None else [round(v, 3) for v in seed],
            "n_angles": int(n_angles),
            "cord_volume_mm3": round(float(mask.sum() * sp[0] * sp[1] * sp[2]), 3),
            "n_voxels": int(mask.sum()),
            "detector_response_median": round(float(np.median(course.response)), 4),
            "detector_edge_strength_median": round(float(np.median(course.edge_strength)), 4),
        }
    )
    return CordSegmentation(
        mask=mask,
        confidence=confidence,
        flags=flags,
        csa_mm2=csa.astype(np.float64),
        contrast=name,
        method=_METHOD,
        details=details,
    )
