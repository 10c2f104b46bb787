"""Optional region growing (SimpleITK) from the most abnormal voxel of the graft at ``k``."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from graftimg.modes import Mode
from graftimg.morphology import fill_holes_per_slice as _fill_holes_per_slice
from graftimg.morphology import inplane_dilate as _inplane_dilate
from graftimg.segment.graft.detection import FULL_CONNECTIVITY, Scene
from graftimg.segment.graft.params import GraftParams

__all__ = ["refine_detection"]


def refine_detection(
    scene: Scene, kept: dict[str, np.ndarray], seeds: np.ndarray
) -> dict[str, np.ndarray]:
    """The three masks after region growing from ``seeds`` (``params.refine`` not "none").

    The grown region (holes filled slice by slice, within the search region, plus the rim where
    it continues the region above threshold) replaces the graft at ``k``; the low mask keeps
    only what lies in it and the high mask takes all of it, so the band stays nested.
    """
    search, rim = scene.regions.search, scene.regions.rim
    spacing = scene.spacing
    threshold = scene.thresholds["main"]
    refined = _refine(scene.data, seeds, search, threshold, scene.mode, scene.params)
    refined = _fill_holes_per_slice(refined, spacing) & search
    if rim.any():
        refined |= _inplane_dilate(refined, 1, spacing) & rim & scene.abnormal(threshold)
    return {
        "main": refined,
        "low": kept["low"] & refined,
        "high": kept["high"] | refined,
    }


def _refine(
    data: np.ndarray,
    seeds: np.ndarray,
    region: np.ndarray,
    threshold: float,
    mode: Mode,
    params: GraftParams,
) -> np.ndarray:
    """Region growing with SimpleITK from the deepest voxel of ``seeds``, within ``region``.

    The seed is the voxel farthest (in voxels) from the boundary of ``seeds``, so that its
    neighbourhood — used by ``ConfidenceConnected`` for its first mean and SD — is pure graft.
    ``ConnectedThreshold`` keeps the main threshold (so it only drops the opening);
    ``ConfidenceConnected`` adapts the interval to the graft (for iron voids it tends to keep
    the core, darker than the partial-volume rim).
    """
    import SimpleITK as sitk

    depth = ndimage.distance_transform_edt(np.pad(seeds, 1))[1:-1, 1:-1, 1:-1]
    seed = np.unravel_index(int(np.argmax(depth)), data.shape)
    # Outside the region: a value unlike any graft voxel (brighter than all for iron, darker for
    # t2), so growing never leaves the region.
    lo, hi = float(data.min()), float(data.max())
    span = max(hi - lo, 1.0)
    outside_value = hi + span if mode == "iron" else lo - span
    masked = np.where(region, data, outside_value).astype(np.float32)
    itk = sitk.GetImageFromArray(np.ascontiguousarray(masked.transpose(2, 1, 0)))
    seed_itk = [tuple(int(c) for c in seed)]
    if params.refine == "connected_threshold":
        f = sitk.ConnectedThresholdImageFilter()
        f.SetSeedList(seed_itk)
        limit = np.float32(threshold)
        if mode == "iron":
            f.SetLower(lo - span)
            f.SetUpper(float(np.nextafter(limit, np.float32(-np.inf))))
        else:
            f.SetLower(float(np.nextafter(limit, np.float32(np.inf))))
            f.SetUpper(hi + span)
        f.SetReplaceValue(1)
        f.SetConnectivity(sitk.ConnectedThresholdImageFilter.FullConnectivity)
        out = f.Execute(itk)
    else:
        out = sitk.ConfidenceConnected(
            itk,
            seedList=seed_itk,
            numberOfIterations=int(params.confidence_iterations),
            multiplier=float(params.confidence_multiplier),
            initialNeighborhoodRadius=int(params.confidence_radius_voxels),
            replaceValue=1,
        )
    grown = sitk.GetArrayFromImage(out).transpose(2, 1, 0).astype(bool) & region
    labels, _ = ndimage.label(grown, structure=FULL_CONNECTIVITY)
    seed_label = labels[seed]
    return labels == seed_label if seed_label else seeds.copy()
