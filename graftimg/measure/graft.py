"""All measurements of one segmented graft: volumes with their band, components, lesion metrics.

The uncertainty band combines two sources (docs/methods.md): the threshold sweep (volumes at
``k + 1`` and ``k − 1`` robust SDs) and the half-voxel surface bound ``½·A·Δx_eff`` around the
binary volume::

    low  = min(V(k + 1), V_binary − ½·A·Δx_eff)
    high = max(V(k − 1), V_binary + ½·A·Δx_eff)

Both parts are reported separately as well, so a reader can see which one dominates.

Partial-volume-weighted volume. Voxels inside the graft mask whose six face neighbours are graft
count 1. Every other voxel of the mask, and every voxel touching it (26-neighbourhood; t2: not
the cyst nor its neighbours), counts the fraction of graft its intensity implies under a linear
mix of graft and the tissue that voxel would hold without a graft::

    t2:    w = (I − B) / (G − B)     G = median of the interior voxels (graft level)
    iron:  w = (B − S) / B           S = √max(I² − σ_n², 0), the magnitude freed of its
                                     Rician bias (a void contributes no signal, not the floor)

``B`` is the *along-cord background*: the same position in the cross-section, a few slices
beyond the lesion on either side (aligned on the cord centerline), interpolated linearly along
the cord. The cord is a tube whose cross-section changes slowly, so this is what the voxel would
look like without the graft: grey or white matter beside a t2 graft, CSF beside an iron void
that blooms past the cord, and any residual intensity drift along the cord. A single level (the
reference median) is wrong wherever the graft borders grey matter or CSF (phantoms: +15 % to
+90 % in t2 with grey matter, −5 % in iron). Weights are not clipped to [0, 1] (noise on pure
tissue averages out; clipping to 0 adds a bias of about ``0.4·σ/(G − B)`` per voxel), only to
[−0.5, 1.5] against outliers. Where no background is available the reference median stands in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage

from graftimg.arrays import bounding_box
from graftimg.measure.lesion import lesion_metrics
from graftimg.measure.volume import (
    component_table,
    surface_band_mm3,
    volume_mm3,
)
from graftimg.morphology import cross
from graftimg.segment.cord_background import along_cord_background

__all__ = ["measure_graft", "partial_volume_mm3"]

_FULL = np.ones((3, 3, 3), dtype=bool)
_FACES = ndimage.generate_binary_structure(3, 1)
#: Length of cord, on each side of the lesion, whose cross-sections are averaged (mm), and the
#: least number of slices used.
_BACKGROUND_MM = 2.5
_BACKGROUND_MIN_SLICES = 2
#: Smallest interior used for the t2 graft level (voxels); the t2 ``full`` level otherwise.
_CORE_MIN_VOXELS = 8
_WEIGHT_RANGE = (-0.5, 1.5)


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def measure_graft(
    image: np.ndarray,
    segmentation: Any,
    cord_mask: np.ndarray,
    *,
    spacing: Sequence[float],
    centerline: Any = None,
    noise_sigma: float | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Measure a graft segmentation; every size in mm, mm² or mm³.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        The (bias-corrected) canonical image the graft was segmented on.
    segmentation : graftimg.segment.graft.GraftSegmentation
        Masks, levels and reference statistics.
    cord_mask : (X, Y, Z) ndarray of bool
        Cord mask on the same grid.
    spacing : sequence of 3 float
        Voxel size in mm.
    centerline : graftimg.segment.centerline.Centerline, optional
        For angle-corrected lesion metrics; fitted from the cord when absent.
    noise_sigma : float, optional
        Noise SD (image units) for the contrast-to-noise ratio.
    metadata : Mapping, optional
        Acquisition metadata (``EchoTime`` s, ``MagneticFieldStrength`` T).

    Returns
    -------
    dict
        JSON-ready measurements (see ``docs/methods.md`` for every key).
    """
    spacing = tuple(float(s) for s in spacing)
    seg = segmentation
    graft, cyst = seg.graft_mask, seg.cyst_mask
    levels = seg.levels
    v_bin = volume_mm3(graft, spacing=spacing)
    v_low_mask = volume_mm3(seg.graft_mask_low, spacing=spacing)
    v_high_mask = volume_mm3(seg.graft_mask_high, spacing=spacing)
    band = surface_band_mm3(graft, spacing=spacing) if graft.any() else 0.0

    weigh_graft = graft.any() and math.isfinite(levels.full) and levels.full != levels.normal
    weigh_cyst = (
        seg.mode == "t2"
        and cyst.any()
        and math.isfinite(levels.cyst_full)
        and levels.cyst_full > levels.normal
    )
    sigma_n = noise_sigma if noise_sigma else levels.sigma
    if (weigh_graft or weigh_cyst) and centerline is None:
        from graftimg.segment.centerline import fit_centerline

        centerline = fit_centerline(cord_mask, spacing=spacing)
    line_voxels = (
        np.asarray(centerline.points_mm)[:, :2] / np.asarray(spacing[:2])
        if centerline is not None
        else None
    )
    if weigh_graft:
        v_pv = partial_volume_mm3(
            image,
            graft,
            cyst if seg.mode == "t2" else None,
            centerline_voxels=line_voxels,
            spacing=spacing,
            mode=seg.mode,
            level_normal=levels.normal,
            level_full=levels.full,
            noise_sigma=float(sigma_n),
            support=seg.support_mask,
            within=seg.search_mask,
        )
    else:
        v_pv = v_bin
    v_cyst = volume_mm3(cyst, spacing=spacing)
    v_cyst_pv = v_cyst
    if weigh_cyst:
        # The cyst weighed as the graft is: its shell counts the fraction of CSF its intensity
        # implies, against what the voxel would hold without the cyst. The graft (already
        # counted) is neither shell nor background. The cyst's level is its upper quartile, not
        # the CSF ring's median: a small cyst's voxels rarely reach the ring's pure CSF.
        full = min(float(np.percentile(image[cyst], 75)), float(levels.cyst_full))
        v_cyst_pv = partial_volume_mm3(
            image,
            cyst,
            None,
            centerline_voxels=line_voxels,
            spacing=spacing,
            mode="t2",
            level_normal=levels.normal,
            level_full=full,
            noise_sigma=float(sigma_n),
            within=seg.search_mask,
            exclude=graft,
        )
    low = max(0.0, min(v_low_mask, v_bin - band))
    high = max(v_high_mask, v_bin + band)

    lesion = graft | cyst if seg.mode == "t2" else graft
    metrics = lesion_metrics(lesion, cord_mask, spacing=spacing, centerline=centerline)

    mean_graft = float(np.mean(image[graft])) if graft.any() else float("nan")
    sigma = noise_sigma if noise_sigma else levels.sigma
    cnr = abs(levels.normal - mean_graft) / sigma if sigma and graft.any() else float("nan")

    meta = dict(metadata or {})
    out: dict[str, Any] = {
        "mode": seg.mode,
        "graft_n_voxels": int(graft.sum()),
        "graft_volume_mm3": v_bin,
        "graft_volume_pv_mm3": float(v_pv),
        "graft_volume_low_mm3": float(low),
        "graft_volume_high_mm3": float(high),
        "graft_volume_low_mask_mm3": v_low_mask,
        "graft_volume_high_mask_mm3": v_high_mask,
        "surface_band_mm3": float(band),
        "cyst_volume_mm3": v_cyst,
        "cyst_volume_pv_mm3": float(v_cyst_pv),
        "cord_volume_mm3": volume_mm3(cord_mask, spacing=spacing),
        "graft_contrast_to_noise": _finite_or_none(cnr),
        "reference_median": float(levels.normal),
        "reference_sigma": float(levels.sigma),
        "threshold": float(levels.threshold),
        "full_level": _finite_or_none(levels.full),
        "full_level_source": levels.full_source,
        "voxel_size_mm": list(spacing),
        "lesion_metrics": metrics.to_dict(),
        "components": [
            {key: value for key, value in row.items() if key != "bbox"}
            for row in component_table(graft, spacing=spacing, image=image)
        ],
    }
    if seg.mode == "iron":
        te = meta.get("EchoTime")
        out["echo_time_s"] = te
        out["field_strength_T"] = meta.get("MagneticFieldStrength")
        out["void_volume_per_echo_time_mm3_per_ms"] = (
            v_bin / (1000.0 * float(te)) if isinstance(te, int | float) and te > 0 else None
        )
        out["note"] = (
            "iron mode measures the signal void of iron, which blooms beyond the cells and scales "
            "with iron amount × echo time; it is not a count of living cells"
        )
    return out


def _graft_level_voxels(
    graft: np.ndarray, core: np.ndarray, spacing: tuple[float, ...]
) -> np.ndarray:
    """Voxels whose median is the t2 graft level: pure graft, as far as the grid allows.

    Isotropic-ish voxels: the face-eroded interior. Thick slices (slice ≥ 2× the in-plane
    voxel): a small graft spans two or three slices and its 3D interior is nearly empty, or
    holds voxels only partly graft through the slice; the in-plane interior of its widest
    slices (those with at least half the largest in-plane interior) is the purest there is.
    """
    thick = int(np.argmax(spacing))
    fine = [a for a in range(3) if a != thick]
    if spacing[thick] < 2.0 * max(spacing[a] for a in fine):
        return core
    inplane = ndimage.binary_erosion(graft, cross(fine))
    counts = inplane.sum(axis=tuple(fine))
    if counts.max() == 0:
        return core
    widest = counts >= 0.5 * counts.max()
    shape = [1, 1, 1]
    shape[thick] = -1
    return inplane & widest.reshape(shape)


def partial_volume_mm3(
    image: np.ndarray,
    graft: np.ndarray,
    cyst: np.ndarray | None,
    *,
    centerline_voxels: np.ndarray,
    spacing: Sequence[float],
    mode: str,
    level_normal: float,
    level_full: float,
    noise_sigma: float,
    support: np.ndarray | None = None,
    within: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> float:
    """Partial-volume-weighted graft volume in mm³ (the model is in the module docstring).

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical image the graft was segmented on.
    graft : (X, Y, Z) ndarray of bool
        Graft mask at ``k``.
    cyst : (X, Y, Z) ndarray of bool or None
        t2 cyst mask (it and its neighbours are left out).
    centerline_voxels : (Z, 2) ndarray
        In-plane centerline per slice in voxels (NaN off the cord).
    spacing : sequence of 3 float
        Voxel size in mm.
    mode : {"iron", "t2"}
        Contrast mode.
    level_normal : float
        Reference median (background where the along-cord one is missing).
    level_full : float
        t2 graft level used when the interior is too small to measure it.
    noise_sigma : float
        Noise SD of one channel (iron: Rician bias removal).
    support : (X, Y, Z) ndarray of bool, optional
        Voxels beyond the mask that may still hold part of the graft (iron: the detections at
        ``k − 1`` before the edge moved to half contrast — the dephasing halo); they and their
        neighbours are weighted too.
    within : (X, Y, Z) ndarray of bool, optional
        Where the graft was looked for: partial-volume voxels outside it are not weighed (the
        along-cord background of tissue beyond the cord — dura, ligament, bone — does not
        describe what it would be without the graft; on axial T2*w such voxels doubled a
        void's partial-volume volume).
    exclude : (X, Y, Z) ndarray of bool, optional
        Voxels counted elsewhere (the graft, when a t2 cyst is weighed): never part of the
        shell, and never the background.

    Returns
    -------
    float
        Volume in mm³.
    """
    if not graft.any():
        return 0.0
    spacing = tuple(float(s) for s in spacing)
    cyst_zone = (
        ndimage.binary_dilation(cyst, _FULL)
        if cyst is not None and cyst.any()
        else np.zeros_like(graft)
    )
    # Work in a box around the graft, long enough along the cord to reach the background.
    n_side = max(_BACKGROUND_MIN_SLICES, round(_BACKGROUND_MM / spacing[2]))
    reach_mask = graft if support is None else graft | support
    lesion_any = reach_mask | (cyst if cyst is not None else False)
    if exclude is not None:
        lesion_any = lesion_any | exclude
    idx = np.argwhere(lesion_any)
    z_lo = max(int(idx[:, 2].min()) - n_side - 4, 0)
    z_hi = min(int(idx[:, 2].max()) + n_side + 5, graft.shape[2])
    # In-plane margin: the shell, plus how far the centerline drifts over those slices (the
    # background slices are shifted onto the lesion's).
    line_all = np.asarray(centerline_voxels, dtype=np.float64)
    drift = line_all[z_lo:z_hi] - np.nanmean(line_all[idx[:, 2]], axis=0)
    reach = np.nanmax(np.abs(drift), axis=0) if np.isfinite(drift).any() else np.zeros(2)
    margin = (3 + int(np.ceil(reach[0])), 3 + int(np.ceil(reach[1])), 0)
    box = (*bounding_box(lesion_any, margin)[:2], slice(z_lo, z_hi))
    data = np.asarray(image[box], dtype=np.float64)
    g = graft[box]
    zone = ndimage.binary_dilation(lesion_any[box], _FULL)
    shell = ndimage.binary_dilation(reach_mask[box], _FULL) & ~g & ~cyst_zone[box]
    if within is not None:
        shell &= within[box]
    if exclude is not None:
        shell &= ~exclude[box]
    core = ndimage.binary_erosion(g, _FACES)
    region = (g & ~core) | shell

    line = line_all[box[2]] - np.array([box[0].start, box[1].start])
    wanted = np.flatnonzero(region.any(axis=(0, 1)))
    planes = along_cord_background(data, zone, line, wanted, n_side=n_side)
    background = np.full(data.shape, float(level_normal))
    for z, plane in planes.items():
        background[..., z] = plane

    if mode == "iron":
        signal = np.sqrt(np.maximum(data**2 - float(noise_sigma) ** 2, 0.0))
        usable = background > 2.0 * float(noise_sigma)
        background = np.where(usable, background, float(level_normal))
        weights = (background - signal) / background
    else:
        level_core = _graft_level_voxels(g, core, spacing)
        full = (
            float(np.median(data[level_core]))
            if level_core.sum() >= _CORE_MIN_VOXELS
            else level_full
        )
        contrast = full - background
        # A background within a quarter of the graft contrast of the graft level is not
        # tissue beside the graft (e.g. CSF in a thick slice): the reference stands in.
        usable = contrast > 0.25 * (full - float(level_normal))
        background = np.where(usable, background, float(level_normal))
        weights = (data - background) / (full - background)
    weights = np.clip(weights, *_WEIGHT_RANGE)
    total = float(core.sum()) + float(weights[region].sum())
    return total * float(np.prod(spacing))
