"""The chain of graft segmentation, the same for both modes; a strategy fills in each mode."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from graftimg.errors import ConfigError, SegmentationError
from graftimg.modes import Mode
from graftimg.segment.graft.detection import BACKGROUND_ZONE_K, Scene, _touches_window_edge
from graftimg.segment.graft.iron import IronStrategy
from graftimg.segment.graft.params import GraftParams
from graftimg.segment.graft.refine import refine_detection
from graftimg.segment.graft.results import GraftLevels, GraftSegmentation
from graftimg.segment.graft.strategy import ModeStrategy
from graftimg.segment.graft.t2 import T2Strategy
from graftimg.segment.graft_components import GraftComponent
from graftimg.segment.graft_reference import graft_free_reference, reference_sigma
from graftimg.segment.injection import center_on_site
from graftimg.segment.reference import _check_inputs
from graftimg.spacing import validated_spacing as _check_spacing

__all__ = ["STRATEGIES", "segment_graft"]

#: The strategy of each contrast mode.
STRATEGIES: dict[str, ModeStrategy] = {"iron": IronStrategy(), "t2": T2Strategy()}


def segment_graft(
    image: np.ndarray,
    cord_mask: np.ndarray,
    s_mm: np.ndarray,
    site_voxel: Sequence[float],
    *,
    spacing: Sequence[float],
    mode: Mode,
    params: GraftParams | None = None,
    noise_sigma: float | None = None,
) -> GraftSegmentation:
    """Segment the graft near the injection site.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical (RAS+) image, bias-corrected.
    cord_mask : (X, Y, Z) ndarray of bool
        Cord mask on the same grid.
    s_mm : (Z,) ndarray
        Signed along-cord distance of each axial slice in mm, NaN where there is no cord; any
        origin (it is re-centred on the site's slice with :func:`center_on_site`).
    site_voxel : sequence of 3 float
        Injection site in canonical voxel coordinates (may be fractional).
    spacing : sequence of 3 float
        Voxel size in mm.
    mode : {"iron", "t2"}
        ``iron``: dark voids; ``t2``: bright intramedullary tissue with cysts split off.
    params : GraftParams, optional
        Parameters; default ``GraftParams()`` (human scale).
    noise_sigma : float, optional
        Noise SD of the magnitude image (same units), e.g. from the background. Used for the
        iron void level and the SNR flag; without it ``σ`` stands in (an upper bound).

    Returns
    -------
    GraftSegmentation
        Masks, levels, reference statistics, components and flags. Finding nothing is not an
        error: the masks are empty and ``no_graft_found`` is flagged.

    Raises
    ------
    SegmentationError
        If the site lies outside the image or on a slice without cord, or the cord mask is
        empty.
    ConfigError
        If ``mode`` is unknown.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x, y, z = np.meshgrid(np.arange(24), np.arange(24), np.arange(48), indexing="ij")
    >>> cord = (x - 12) ** 2 / 49 + (y - 12) ** 2 / 36 <= 1
    >>> image = np.where(cord, 100.0, 250.0) + rng.normal(0, 4, cord.shape)
    >>> image[(x - 12) ** 2 + (y - 12) ** 2 + (z - 24) ** 2 <= 9] = 4.0
    >>> params = GraftParams(window_half_length_mm=5, reference_band_mm=4)
    >>> seg = segment_graft(
    ...     image, cord, (np.arange(48) - 24) * 0.5, (12, 12, 24),
    ...     spacing=(0.5, 0.5, 0.5), mode="iron", params=params,
    ... )
    >>> seg.n_voxels, seg.flags
    (123, ())
    """
    image, cord, s_raw = _check_inputs(image, cord_mask, s_mm)
    spacing = _check_spacing(spacing)
    params = GraftParams() if params is None else params
    if mode not in STRATEGIES:
        raise ConfigError(f"mode must be 'iron' or 't2', got {mode!r}")
    if not cord.any():
        raise SegmentationError(
            "the cord mask is empty", hint="check the cord segmentation of this session"
        )
    site = _check_site(site_voxel, image.shape)
    # Everything below looks at the cord and a CSF ring around it: work on the in-plane box of
    # the cord plus that ring (a 384 × 384 field of view holds a cord of ~20 × 20 voxels).
    box = _cord_box(cord, spacing, params)
    if box is None:
        return _segment_graft_box(
            image,
            cord,
            s_raw,
            site,
            spacing=spacing,
            mode=mode,
            params=params,
            noise_sigma=noise_sigma,
        )
    offset = np.array([box[0].start, box[1].start, 0], dtype=np.float64)
    inner = _segment_graft_box(
        image[box],
        cord[box],
        s_raw,
        tuple(np.asarray(site) - offset),
        spacing=spacing,
        mode=mode,
        params=params,
        noise_sigma=noise_sigma,
    )

    def uncrop(mask: np.ndarray) -> np.ndarray:
        full = np.zeros(image.shape, dtype=bool)
        full[box] = mask
        return full

    return dataclasses.replace(
        inner,
        graft_mask=uncrop(inner.graft_mask),
        cyst_mask=uncrop(inner.cyst_mask),
        graft_mask_low=uncrop(inner.graft_mask_low),
        graft_mask_high=uncrop(inner.graft_mask_high),
        search_mask=uncrop(inner.search_mask),
        support_mask=None if inner.support_mask is None else uncrop(inner.support_mask),
        components=tuple(
            dataclasses.replace(c, centroid_voxel=tuple(np.add(c.centroid_voxel, offset).tolist()))
            for c in inner.components
        ),
        site_voxel=site,
    )


def _cord_box(
    cord: np.ndarray, spacing: tuple[float, float, float], params: GraftParams
) -> tuple[slice, slice, slice] | None:
    """In-plane box of the cord plus every ring the segmentation reads; None if it saves little."""
    margin_mm = params.csf_ring_width_mm + 2.0 * max(spacing[0], spacing[1])
    margin_vox = params.search_dilate_voxels + params.csf_ring_gap_voxels + 3
    box = []
    for axis in (0, 1):
        other = (1, 0)[axis]
        present = np.flatnonzero(cord.any(axis=(other, 2)))
        pad = margin_vox + math.ceil(margin_mm / spacing[axis])
        lo = max(int(present[0]) - pad, 0)
        hi = min(int(present[-1]) + pad + 1, cord.shape[axis])
        box.append(slice(lo, hi))
    kept = (box[0].stop - box[0].start) * (box[1].stop - box[1].start)
    if kept > 0.7 * cord.shape[0] * cord.shape[1]:
        return None
    return (box[0], box[1], slice(None))


def _segment_graft_box(
    image: np.ndarray,
    cord: np.ndarray,
    s_raw: np.ndarray,
    site: tuple[float, float, float],
    *,
    spacing: tuple[float, float, float],
    mode: Mode,
    params: GraftParams,
    noise_sigma: float | None,
) -> GraftSegmentation:
    """:func:`segment_graft` on a checked (possibly cropped) grid."""
    strategy = STRATEGIES[mode]
    s = center_on_site(s_raw, site[2])
    flags: set[str] = set()

    look = strategy.look(cord, spacing=spacing, params=params)
    ref, abnormal_tissue = graft_free_reference(
        image,
        cord,
        s,
        site,
        mode=mode,
        k_sigma=BACKGROUND_ZONE_K,
        look=look,
        spacing=spacing,
        window_mm=params.window_half_length_mm,
        band_mm=params.reference_band_mm,
        erode_voxels=params.reference_erode_voxels,
        min_voxels=params.reference_min_voxels,
        min_component_volume_mm3=params.min_component_volume_mm3,
        site_distance_mm=params.site_distance_mm,
    )
    ref, csf_ref, reference_flags = strategy.reference(
        image, cord, s, ref, spacing=spacing, params=params
    )
    flags.update(reference_flags)
    flags.update(ref.flags)
    mu = ref.median
    sigma = reference_sigma(ref, mode)
    sign = -1.0 if mode == "iron" else 1.0
    k, dk = params.k_sigma, params.band_k_sigma
    ks = {"main": k, "low": k + dk, "high": max(k - dk, 0.0)}
    thresholds = {name: mu + sign * kk * sigma for name, kk in ks.items()}
    regions = strategy.regions(cord, s, spacing=spacing, params=params)
    search, rim = regions.search, regions.rim
    scene = Scene(
        mode=mode,
        data=image.astype(np.float64, copy=False),
        cord=cord,
        s=s,
        site=site,
        spacing=spacing,
        params=params,
        noise_sigma=noise_sigma,
        look=look,
        abnormal_tissue=abnormal_tissue,
        reference=ref,
        csf_reference=csf_ref,
        mu=mu,
        sigma=sigma,
        thresholds=thresholds,
        regions=regions,
    )
    site_index = tuple(
        int(np.clip(np.rint(c), 0, n - 1)) for c, n in zip(site, image.shape, strict=True)
    )
    if not (search | rim)[site_index]:
        flags.add("site_outside_cord")

    kept: dict[str, np.ndarray] = {}
    components: tuple[GraftComponent, ...] = ()
    for name, threshold in thresholds.items():
        mask, comps = scene.detect(threshold)
        if "reference_unreliable" in ref.flags:  # nothing can be measured against it
            mask = np.zeros_like(mask)
        kept[name] = mask
        if name == "main":
            components = comps
    if any(c.reason == "far_from_site" for c in components):
        flags.add("components_far_from_site")

    core_level, tissue_level, level_flags = strategy.tissue_levels(scene, kept["main"])
    flags.update(level_flags)
    if params.refine != "none" and kept["main"].any():
        seeds = strategy.refine_seeds(scene, kept["main"], core_level)
        kept = refine_detection(scene, kept, seeds)
    kept, support = strategy.move_edges(scene, kept, core_level)
    split = strategy.split(scene, kept["main"], core_level, tissue_level)
    graft = kept["main"] & ~split.not_graft
    low = kept["low"] & ~split.not_graft
    high = kept["high"] & ~split.not_graft

    full, full_source, full_flags = strategy.full_level(scene, graft)
    flags.update(full_flags)
    if scene.noise > 0 and mu / scene.noise < params.min_snr:
        flags.add("low_snr")
    if not graft.any():
        flags.add("no_graft_found")
    else:
        flags.update(strategy.graft_flags(scene, graft, full))
        if _touches_window_edge(graft, s, params.window_half_length_mm):
            flags.add("graft_touches_window_edge")

    levels = GraftLevels(
        normal=mu,
        sigma=sigma,
        threshold=thresholds["main"],
        threshold_low=thresholds["low"],
        threshold_high=thresholds["high"],
        full=full,
        full_source=full_source,
        cyst_threshold=core_level,
        cyst_grow_threshold=split.grow_threshold,
        cyst_full=split.full,
    )
    return GraftSegmentation(
        mode=mode,
        graft_mask=graft,
        cyst_mask=split.cyst,
        graft_mask_low=low,
        graft_mask_high=high,
        search_mask=search | rim,
        support_mask=support,
        s_from_site_mm=s,
        reference=ref,
        csf_reference=csf_ref,
        levels=levels,
        components=components,
        flags=tuple(sorted(flags)),
        site_voxel=site,
        spacing=spacing,
        params=params,
    )


def _check_site(site_voxel: Sequence[float], shape: tuple[int, ...]) -> tuple[float, float, float]:
    """Validate the site: three finite voxel coordinates inside the image."""
    site = np.asarray(site_voxel, dtype=np.float64).ravel()
    if site.shape != (3,) or not np.isfinite(site).all():
        raise SegmentationError(
            f"the injection site must be three finite voxel coordinates, got {site_voxel!r}"
        )
    upper = np.asarray(shape, dtype=np.float64) - 0.5
    if np.any(site < -0.5) or np.any(site > upper):
        raise SegmentationError(
            f"the injection site {site.tolist()} lies outside the image of shape {shape}",
            hint="give the site in canonical (RAS+) voxel coordinates of this image",
        )
    return (float(site[0]), float(site[1]), float(site[2]))
