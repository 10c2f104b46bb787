"""Reference intensities of normal-appearing cord and of CSF, away from the injection window.

Graft voxels are defined relative to normal tissue (Vreys et al., ISMRM 2009): the robust
centre ``μ = median`` and spread ``σ = 1.4826·MAD`` of cord voxels in two bands along the cord,
``s ∈ [−W−band, −W] ∪ [W, W+band]`` mm from the injection site, with the cord eroded in-plane by
one voxel so that CSF partial volume at the cord edge does not widen ``σ``. Everything downstream
depends only on ``(I − μ)/σ``, so a global intensity gain changes no result.

Small reference regions are not an error: the region is widened step by step (see
:func:`reference_stats`) and the result carries the flag ``reference_too_small``.

The in-plane morphology used by the whole ``segment`` graft stage (dilation, erosion and opening
that never cross thick slices) is :mod:`graftimg.morphology`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from graftimg.errors import DimensionError, NonFiniteDataError, SegmentationError
from graftimg.morphology import inplane_distance_mm as _inplane_distance_mm
from graftimg.morphology import inplane_erode as _inplane_erode
from graftimg.spacing import validated_spacing as _check_spacing

__all__ = [
    "MAD_TO_SIGMA",
    "REFERENCE_MIN_SLICES",
    "ReferenceStats",
    "csf_stats",
    "reference_stats",
    "robust_stats",
    "tail_sigmas",
]

#: Fewest axial slices a normal-cord reference spans (one thick slice is one level of a bias
#: field and one anatomical level).
REFERENCE_MIN_SLICES = 3

#: Factor that turns a median absolute deviation into a Gaussian-consistent standard deviation.
MAD_TO_SIGMA = 1.4826

#: Quantile of the one-sided spreads and its standard normal value.
_TAIL_QUANTILE = 0.975
_TAIL_Z = 1.959963984540054


@dataclass(frozen=True)
class ReferenceStats:
    """Robust intensity statistics of a reference region.

    Attributes
    ----------
    median : float
        Median intensity ``μ`` (same units as the image).
    sigma : float
        Robust standard deviation ``1.4826·MAD``; falls back to ``1.2533·mean|I − μ|`` when the
        MAD is zero (quantised or noise-free data), and is 0 only if all values are equal.
    n_voxels : int
        Number of voxels the statistics come from.
    region : str
        Which region was used, after any fallback: ``"bands"``, ``"outside_window"``,
        ``"outside_window_uneroded"``, ``"whole_cord"``, ``"whole_cord_uneroded"`` (cord
        reference) or ``"ring_bands"``, ``"ring_outside_window"``, ``"ring_whole_cord"`` (CSF).
    flags : tuple of str
        ``reference_too_small`` (or ``csf_reference_too_small``) when the first-choice region
        held fewer voxels than required, ``reference_one_sided`` when only one band held cord,
        ``reference_inside_window`` when the window itself had to be used,
        ``reference_no_variance`` when ``sigma`` is 0.
    sigma_upper, sigma_lower : float
        One-sided spreads ``(Q97.5 − median)/1.96`` and ``(median − Q2.5)/1.96``, quantiles per
        slice and the median over slices (:func:`tail_sigmas`; NaN when not computed). Equal to
        ``sigma`` for Gaussian values; larger on the side where normal tissue is not one
        population (grey matter above white matter on T2w).
    excluded_voxels : int
        Voxels of the region left out because they are, or lie next to, abnormal tissue (the
        ``exclude`` argument of :func:`reference_stats`); 0 when nothing was excluded.
    n_slices : int
        Number of axial slices the reference voxels lie in (0 when not recorded).
    unreliable_reasons : tuple of str
        Why the reference cannot be trusted (with the flag ``reference_unreliable``); empty
        when it can.
    """

    median: float
    sigma: float
    n_voxels: int
    region: str
    flags: tuple[str, ...] = ()
    sigma_upper: float = float("nan")
    sigma_lower: float = float("nan")
    excluded_voxels: int = 0
    n_slices: int = 0
    unreliable_reasons: tuple[str, ...] = ()

    def z_score(self, image: np.ndarray) -> np.ndarray:
        """Return ``(image − median) / sigma`` in float64 (``±inf`` where ``sigma`` is 0).

        Parameters
        ----------
        image : ndarray
            Intensities.

        Returns
        -------
        ndarray
            Robust z-scores, same shape as ``image``.

        Examples
        --------
        >>> ReferenceStats(10.0, 2.0, 300, "bands").z_score(np.array([14.0]))
        array([2.])
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.asarray(image, dtype=np.float64) - self.median) / self.sigma


def robust_stats(values: np.ndarray) -> tuple[float, float]:
    """Median and robust standard deviation (``1.4826·MAD``) of a set of values.

    Parameters
    ----------
    values : ndarray
        Intensities (any shape; flattened). Must not be empty.

    Returns
    -------
    median : float
        The median.
    sigma : float
        ``1.4826·MAD``; if the MAD is 0, ``1.2533·mean(|v − median|)`` (both are consistent
        estimators of a Gaussian SD); 0 only when all values are equal.

    Examples
    --------
    >>> robust_stats(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    (3.0, 1.4826)
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise SegmentationError("robust statistics of an empty region were requested")
    median = float(np.median(v))
    deviation = np.abs(v - median)
    sigma = MAD_TO_SIGMA * float(np.median(deviation))
    if sigma == 0.0:
        sigma = float(np.sqrt(np.pi / 2.0) * deviation.mean())
    return median, sigma


def tail_sigmas(
    values: np.ndarray, median: float, groups: np.ndarray | None = None
) -> tuple[float, float]:
    """One-sided spreads about ``median``: ``(Q97.5 − median)/1.96`` and ``(median − Q2.5)/1.96``.

    Consistent estimators of a Gaussian SD, each from one tail only, so that a second
    population on one side (grey matter, brighter than white matter on T2w and T2*w) widens
    that side's spread and not the other's. With ``groups`` (e.g. the slice of each value) the
    quantiles are taken per group of at least 20 values and the median over groups is returned,
    so that abnormal tissue in a few slices of the reference does not widen the spread (a
    quantile alone breaks down at 2.5 % contamination); with fewer than three such groups, over
    all values.

    Examples
    --------
    >>> v = np.random.default_rng(0).normal(100.0, 10.0, 20000)
    >>> [round(x) for x in tail_sigmas(v, float(np.median(v)))]
    [10, 10]
    >>> v[:2000] += 200.0  # a bright lesion in 2 of 20 slices
    >>> [round(x) for x in tail_sigmas(v, 100.0, np.repeat(np.arange(20), 1000))]
    [10, 10]
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    q = [100.0 * (1.0 - _TAIL_QUANTILE), 100.0 * _TAIL_QUANTILE]
    if groups is not None:
        g = np.asarray(groups).ravel()
        order = np.argsort(g, kind="stable")
        bounds = np.flatnonzero(np.diff(g[order])) + 1
        parts = [p for p in np.split(v[order], bounds) if p.size >= 20]
        if len(parts) >= 3:
            lows, highs = np.array([np.percentile(p, q) for p in parts]).T
            high, low = float(np.median(highs)), float(np.median(lows))
            return (high - median) / _TAIL_Z, (median - low) / _TAIL_Z
    low, high = np.percentile(v, q)
    return float((high - median) / _TAIL_Z), float((median - low) / _TAIL_Z)


def reference_stats(
    image: np.ndarray,
    cord_mask: np.ndarray,
    s_mm: np.ndarray,
    *,
    window_mm: float,
    band_mm: float,
    erode_voxels: int = 1,
    min_voxels: int = 200,
    spacing: Sequence[float],
    exclude: np.ndarray | None = None,
) -> ReferenceStats:
    """Robust statistics of normal-appearing cord beside the injection window.

    The first-choice region is the cord, eroded in-plane by ``erode_voxels``, in the two bands
    ``s ∈ [−W−band, −W] ∪ [W, W+band]``. When it holds fewer than ``min_voxels`` voxels, or
    they lie in fewer than three slices (one thick slice is one anatomical level and one level
    of any residual bias), the region is widened, in this order, and the first one that is
    large enough is used:

    1. ``"bands"`` — eroded cord in both bands;
    2. ``"outside_window"`` — eroded cord at every ``|s| ≥ W`` (the bands grown outwards);
    3. ``"whole_cord"`` — eroded cord including the window (the image covers little more than
       the window), flagged ``reference_inside_window``; the graft stage then leaves candidate
       graft tissue out (:func:`graftimg.segment.graft_reference.graft_free_reference`). It
       comes before the uneroded cord beyond the window: on T2w the cord's edge layer is
       partly CSF, and its bright tail doubled ``σ`` on the 1 mm test scan (a 50-voxel graft
       read 0);
    4. ``"outside_window_uneroded"`` — the cord beyond the window without erosion (thin or
       coarse cords, where erosion leaves nothing);
    5. ``"whole_cord_uneroded"`` — every cord voxel.

    If none reaches ``min_voxels``, the largest non-empty one is used. Any fallback adds the flag
    ``reference_too_small``. Voxels in ``exclude`` (abnormal tissue found so far, with a margin:
    see :func:`graftimg.segment.graft_reference.graft_free_reference`) are never used, and the
    regions are counted without them.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical (RAS+) image, ideally bias-corrected.
    cord_mask : (X, Y, Z) ndarray of bool
        Cord mask.
    s_mm : (Z,) ndarray
        Signed along-cord distance of each axial slice from the injection site, in mm; NaN where
        there is no cord.
    window_mm : float
        Half-length ``W`` of the injection window, in mm.
    band_mm : float
        Length of each reference band along the cord, in mm.
    erode_voxels : int, optional
        In-plane erosion of the cord, in voxels (default 1).
    min_voxels : int, optional
        Minimum voxel count of a trustworthy reference (default 200).
    spacing : sequence of 3 float
        Voxel size in mm.
    exclude : (X, Y, Z) ndarray of bool, optional
        Voxels that must not enter the reference.

    Returns
    -------
    ReferenceStats
        ``median``, ``sigma``, ``n_voxels``, ``region`` and ``flags``.

    Raises
    ------
    SegmentationError
        If the cord mask is empty.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y = np.mgrid[:20, :20]
    >>> cord = np.repeat(((x - 10) ** 2 + (y - 10) ** 2 <= 25)[..., None], 60, axis=2)
    >>> image = np.where(cord, 100.0, 300.0) + rng.normal(0, 5, cord.shape)
    >>> s_mm = np.arange(60) - 30.0
    >>> ref = reference_stats(image, cord, s_mm, window_mm=10, band_mm=10, spacing=(1, 1, 1))
    >>> ref.region, ref.flags, round(ref.median / 10), round(ref.sigma)
    ('bands', (), 10, 5)
    """
    image, cord, s = _check_inputs(image, cord_mask, s_mm)
    spacing = _check_spacing(spacing)
    if not cord.any():
        raise SegmentationError(
            "the cord mask is empty", hint="check the cord segmentation of this session"
        )
    abs_s = np.abs(s)
    with np.errstate(invalid="ignore"):
        in_bands = (abs_s >= window_mm) & (abs_s <= window_mm + band_mm)
        outside = abs_s >= window_mm
    has_s = np.isfinite(s)
    eroded = _inplane_erode(cord, erode_voxels, spacing)
    n_excluded = 0
    if exclude is not None:
        keep = ~np.asarray(exclude, dtype=bool)
        n_excluded = int((cord & ~keep).sum())
        cord, eroded = cord & keep, eroded & keep
    candidates = [
        ("bands", eroded & in_bands[None, None, :]),
        ("outside_window", eroded & outside[None, None, :]),
        ("whole_cord", eroded & has_s[None, None, :]),
        ("outside_window_uneroded", cord & outside[None, None, :]),
        ("whole_cord_uneroded", cord),
    ]
    region, mask, flags = _first_large_enough(
        candidates, min_voxels, "reference_too_small", min_slices=REFERENCE_MIN_SLICES
    )
    if region == "bands":
        with np.errstate(invalid="ignore"):
            lower = (s <= -window_mm) & in_bands
            upper = (s >= window_mm) & in_bands
        if not (eroded[..., lower].any() and eroded[..., upper].any()):
            flags.append("reference_one_sided")
    if region.startswith("whole_cord"):
        flags.append("reference_inside_window")
    values = image[mask]
    median, sigma = robust_stats(values)
    if sigma == 0.0:
        flags.append("reference_no_variance")
    upper, lower = tail_sigmas(values, median, np.nonzero(mask)[2])
    return ReferenceStats(
        median,
        sigma,
        int(mask.sum()),
        region,
        tuple(flags),
        sigma_upper=upper,
        sigma_lower=lower,
        excluded_voxels=n_excluded,
        n_slices=int(mask.any(axis=(0, 1)).sum()),
    )


def csf_stats(
    image: np.ndarray,
    cord_mask: np.ndarray,
    s_mm: np.ndarray,
    *,
    window_mm: float,
    band_mm: float,
    gap_voxels: int = 1,
    ring_width_mm: float,
    min_voxels: int = 200,
    spacing: Sequence[float],
    tissue_level: float | None = None,
) -> ReferenceStats:
    """Robust statistics of CSF in a ring just outside the cord, beside the injection window.

    The ring holds the voxels whose in-plane distance to the cord lies in
    ``(gap, gap + ring_width_mm]``, with ``gap = gap_voxels`` times the coarser in-plane voxel
    size (skipping the partial-volume layer at the cord surface). Slices are chosen as in
    :func:`reference_stats` — the bands first, then everything outside the window
    (``"ring_outside_window"``), then every cord slice (``"ring_whole_cord"``); any fallback
    adds ``csf_reference_too_small``. Used by ``t2`` mode to split cysts (CSF-like voxels) from
    graft tissue.

    The ring is CSF only where the CSF is wider than the ring. Real cords touch the dura in
    places (the cervical cord fills the canal antero-posteriorly), so the ring also holds dura,
    fat, nerve roots and bone, all darker than CSF on T2w: on the 1 mm T2w of the Spinal Cord
    Toolbox test data the ring's median was 2.2 times the cord level with a robust spread of
    1.6 times it, which put every CSF-like threshold below graft tissue. The statistics are
    therefore those of the ring's bright mode, the CSF: the ring voxels at or above halfway
    from ``tissue_level`` (the normal cord, given by the graft stage) to the ring's 95th
    percentile (a percentile, so that single bright voxels do not set the cut); the whole ring
    when ``tissue_level`` is not given or fewer than 20 voxels pass.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical (RAS+) image.
    cord_mask : (X, Y, Z) ndarray of bool
        Cord mask.
    s_mm : (Z,) ndarray
        Signed along-cord distance of each slice from the injection site, in mm; NaN off-cord.
    window_mm : float
        Half-length ``W`` of the injection window, in mm.
    band_mm : float
        Length of each band along the cord, in mm.
    gap_voxels : int, optional
        Voxels skipped next to the cord surface (default 1).
    ring_width_mm : float
        Radial width of the ring, in mm.
    min_voxels : int, optional
        Minimum voxel count (default 200).
    spacing : sequence of 3 float
        Voxel size in mm.
    tissue_level : float, optional
        Normal cord level; with it, the statistics are those of the ring's bright mode.

    Returns
    -------
    ReferenceStats
        Statistics of the CSF ring.

    Examples
    --------
    >>> x, y = np.mgrid[:30, :30]
    >>> r2 = (x - 15) ** 2 + (y - 15) ** 2
    >>> cord = np.repeat((r2 <= 25)[..., None], 40, axis=2)
    >>> plane = np.where(r2 <= 25, 30.0, np.where(r2 <= 100, 100.0, 20.0))
    >>> image = np.repeat(plane[..., None], 40, axis=2)
    >>> s_mm = np.arange(40) - 20.0
    >>> csf = csf_stats(
    ...     image, cord, s_mm, window_mm=8, band_mm=10, ring_width_mm=3, spacing=(1, 1, 1)
    ... )
    >>> csf.median, csf.region
    (100.0, 'ring_bands')
    """
    image, cord, s = _check_inputs(image, cord_mask, s_mm)
    spacing = _check_spacing(spacing)
    if not cord.any():
        raise SegmentationError(
            "the cord mask is empty", hint="check the cord segmentation of this session"
        )
    if not ring_width_mm > 0:
        raise SegmentationError(f"ring_width_mm must be positive, got {ring_width_mm!r}")
    distance = _inplane_distance_mm(cord, spacing)
    gap_mm = gap_voxels * max(spacing[0], spacing[1])
    ring = (distance > gap_mm + 1e-6) & (distance <= gap_mm + ring_width_mm + 1e-6)
    abs_s = np.abs(s)
    with np.errstate(invalid="ignore"):
        in_bands = (abs_s >= window_mm) & (abs_s <= window_mm + band_mm)
        outside = abs_s >= window_mm
    candidates = [
        ("ring_bands", ring & in_bands[None, None, :]),
        ("ring_outside_window", ring & outside[None, None, :]),
        ("ring_whole_cord", ring),
    ]
    region, mask, flags = _first_large_enough(candidates, min_voxels, "csf_reference_too_small")
    if not mask.any():
        raise SegmentationError(
            "no CSF ring around the cord lies inside the image",
            hint="the field of view must include some CSF around the cord for t2 mode",
        )
    values = image[mask].astype(np.float64)
    if tissue_level is not None and np.isfinite(tissue_level):
        values = _bright_mode(values, float(tissue_level))
    median, sigma = robust_stats(values)
    if sigma == 0.0:
        flags.append("csf_reference_no_variance")
    return ReferenceStats(median, sigma, int(mask.sum()), region, tuple(flags))


def _bright_mode(values: np.ndarray, tissue_level: float) -> np.ndarray:
    """Ring values at or above halfway from ``tissue_level`` to the ring's 95th percentile."""
    cut = 0.5 * (tissue_level + float(np.percentile(values, 95.0)))
    bright = values[values >= cut]
    return bright if bright.size >= 20 else values


# --- helpers shared by the graft stage (injection.py, graft.py) -----------------------------


def _first_large_enough(
    candidates: list[tuple[str, np.ndarray]], min_voxels: int, flag: str, min_slices: int = 1
) -> tuple[str, np.ndarray, list[str]]:
    """First region with ``min_voxels`` voxels over ``min_slices`` slices, else the largest."""
    counts = [int(m.sum()) for _, m in candidates]
    for i, ((name, mask), n) in enumerate(zip(candidates, counts, strict=True)):
        if n >= min_voxels and int(mask.any(axis=(0, 1)).sum()) >= min_slices:
            return name, mask, [flag] if i > 0 else []
    best = int(np.argmax(counts))
    name, mask = candidates[best]
    return name, mask, [flag]


def _check_inputs(
    image: np.ndarray, cord_mask: np.ndarray, s_mm: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes and values; return (image, bool cord mask, float64 s)."""
    image = np.asarray(image)
    cord = np.asarray(cord_mask)
    if image.ndim != 3:
        raise DimensionError(f"expected a 3D image, got shape {image.shape}")
    if cord.shape != image.shape:
        raise DimensionError(
            f"cord mask shape {cord.shape} differs from image shape {image.shape}",
            hint="resample the cord mask onto the image grid first",
        )
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise DimensionError(f"expected a real-valued image, got dtype {image.dtype}")
    if not np.isfinite(image).all():
        raise NonFiniteDataError(
            "the image holds NaN or infinite values", hint="replace them before segmenting"
        )
    s = np.asarray(s_mm, dtype=np.float64)
    if s.shape != (image.shape[2],):
        raise DimensionError(
            f"s_mm must have one value per axial slice, shape ({image.shape[2]},), got {s.shape}"
        )
    return image, cord.astype(bool, copy=False), s
