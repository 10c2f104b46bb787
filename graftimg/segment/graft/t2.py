"""``t2`` mode (T2w, unlabelled cells): bright tissue, its edge at half contrast, cysts split off.

Graft = voxels brighter than ``μ + kσ`` inside the cord within the window. The outer layer of the
cord (one voxel in-plane) is left out of the search, because CSF partial volume makes it bright
all along the cord; it is added back only where it touches a kept graft component and is itself
above threshold. With the ``half_contrast`` boundary the edge moves to where a voxel is at least
half graft; CSF-like voxels are split off as cyst (:mod:`graftimg.segment.graft.cyst`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from graftimg.morphology import cross as _cross
from graftimg.morphology import inplane_dilate as _inplane_dilate
from graftimg.morphology import inplane_erode as _inplane_erode
from graftimg.segment.graft.cyst import _cyst_core_level, _split_cyst
from graftimg.segment.graft.detection import (
    BACKGROUND_ZONE_K,
    Regions,
    Scene,
    _grow_to_half,
    _smoothed_for_edges,
)
from graftimg.segment.graft.params import GraftParams
from graftimg.segment.graft.strategy import ClassSplit, ModeStrategy
from graftimg.segment.injection import injection_window
from graftimg.segment.reference import ReferenceStats, csf_stats
from graftimg.spacing import fine_axes as _fine_axes

__all__ = ["T2Strategy"]

#: A normal-cord reference at this fraction of the CSF level or above is not normal cord.
_CORD_CSF_RATIO_MAX = 0.6

#: Graft voxels above the graft level by this many noise SDs raise ``possible_subvoxel_cyst``.
_SUBVOXEL_CYST_K = 3.0


class T2Strategy(ModeStrategy):
    """Bright tissue: a CSF reference, half-contrast edges, cysts split off, the graft's level."""

    mode = "t2"

    def look(
        self, cord: np.ndarray, *, spacing: tuple[float, float, float], params: GraftParams
    ) -> np.ndarray:
        """The cord without its outer layer (``t2_exclude_rim_voxels``: CSF partial volume)."""
        return _inplane_erode(cord, params.t2_exclude_rim_voxels, spacing)

    def reference(
        self,
        image: np.ndarray,
        cord: np.ndarray,
        s: np.ndarray,
        ref: ReferenceStats,
        *,
        spacing: tuple[float, float, float],
        params: GraftParams,
    ) -> tuple[ReferenceStats, ReferenceStats | None, set[str]]:
        """The CSF ring's statistics; a cord reference too close to CSF is graft or oedema."""
        csf_ref = csf_stats(
            image,
            cord,
            s,
            window_mm=params.window_half_length_mm,
            band_mm=params.reference_band_mm,
            gap_voxels=params.csf_ring_gap_voxels,
            ring_width_mm=params.csf_ring_width_mm,
            min_voxels=params.reference_min_voxels,
            spacing=spacing,
            tissue_level=ref.median,
        )
        if ref.median >= _CORD_CSF_RATIO_MAX * csf_ref.median:
            ref = dataclasses.replace(
                ref,
                flags=(*ref.flags, "reference_unreliable"),
                unreliable_reasons=(
                    *ref.unreliable_reasons,
                    f"the cord reference is {ref.median / csf_ref.median:.2f} of the CSF level "
                    "(normal cord is 0.3-0.5 of it on T2w): it is graft or oedema",
                ),
            )
        return ref, csf_ref, set(csf_ref.flags)

    def regions(
        self,
        cord: np.ndarray,
        s: np.ndarray,
        *,
        spacing: tuple[float, float, float],
        params: GraftParams,
    ) -> Regions:
        """The window's cord without its outer layer; the layer is the rim."""
        cord_window = injection_window(
            cord,
            s,
            half_length_mm=params.window_half_length_mm,
            dilate_inplane_voxels=0,
            spacing=spacing,
        )
        search = _inplane_erode(cord_window, params.t2_exclude_rim_voxels, spacing)
        rim = cord_window & ~search
        return Regions(search, rim, search, rim, 1)

    def tissue_levels(self, scene: Scene, kept: np.ndarray) -> tuple[float, float, set[str]]:
        """Cyst-core and graft-tissue levels (:func:`_cyst_core_level`)."""
        if scene.csf_reference is None:
            return super().tissue_levels(scene, kept)
        return _cyst_core_level(
            scene.data,
            kept,
            scene.reference,
            scene.csf_reference,
            scene.thresholds["main"],
            scene.params,
            scene.noise_sigma,
        )

    def refine_seeds(self, scene: Scene, kept: np.ndarray, core_level: float) -> np.ndarray:
        """Graft tissue, not cyst, so that the region grows through tissue."""
        tissue = kept & ~(scene.data >= core_level)
        return tissue if tissue.any() else kept

    def move_edges(
        self, scene: Scene, kept: dict[str, np.ndarray], core_level: float
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Grow the detections to half graft (``t2_boundary="half_contrast"``, no refine)."""
        params = scene.params
        if not (
            params.t2_boundary == "half_contrast"
            and params.refine == "none"
            and kept["main"].any()
        ):
            return kept, None
        kept = dict(kept)
        data, spacing, mu, sigma = scene.data, scene.spacing, scene.mu, scene.sigma
        search, rim = scene.regions.search, scene.regions.rim
        # The graft's level and the edge level are fixed whatever k is, so that the band stays
        # nested and V(k − 1) ≥ V(k) ≥ V(k + 1): the level is the median of the interior of the
        # tissue found at μ + 2σ (one voxel in from its partial-volume shell; CSF-like voxels
        # left out), or its upper quartile when it has no interior.
        zone = scene.lesion_extent()
        tissue = zone & ~(data >= core_level) if np.isfinite(core_level) else zone
        if tissue.any():
            inner = ndimage.binary_erosion(tissue, _cross(_fine_axes(spacing)))
            level = (
                float(np.median(data[inner]))
                if inner.sum() >= 5
                else float(np.percentile(data[tissue], 75))
            )
            # The normal cord right beside the graft (a residual bias along the cord moves the
            # reference bands' level away from it); the edge never comes closer to it than
            # 2σ, so that it cannot wander into noise.
            local = _local_normal_level(data, scene.look & ~scene.abnormal_tissue, zone, mu)
            half_level = max(0.5 * (local + level), local + BACKGROUND_ZONE_K * sigma)
            half = _smoothed_for_edges(data, spacing) >= half_level
            for name in ("low", "main", "high"):
                grown = _grow_to_half(kept[name], half & search, spacing)
                if rim.any():
                    grown |= _inplane_dilate(grown, 1, spacing) & rim & kept[name]
                kept[name] = grown
            kept["low"] &= kept["main"]
            kept["high"] |= kept["main"]
        # No support for the partial-volume measurement: the graft's own shell is weighed, not
        # the detections at k − 1 around it. On real cords those are normal-cord voxels a little
        # brighter than the reference (grey matter, CSF partial volume at the rim) and weighed
        # as part graft they added a steady +10 to +20 % on real anatomy.
        return kept, None

    def split(
        self, scene: Scene, kept: np.ndarray, core_level: float, tissue_level: float
    ) -> ClassSplit:
        """Cysts (:func:`_split_cyst`), when CSF is bright enough for cores to exist."""
        csf_ref = scene.csf_reference
        if csf_ref is None or not np.isfinite(core_level):
            return super().split(scene, kept, core_level, tissue_level)
        cyst, shell, grow = _split_cyst(
            scene.data,
            kept,
            core_level,
            tissue_level,
            scene.reference,
            csf_ref,
            scene.regions.search | scene.regions.rim,
            scene.thresholds["main"],
            scene.spacing,
            scene.params,
        )
        full = csf_ref.median if cyst.any() else float("nan")
        return ClassSplit(cyst=cyst, not_graft=cyst | shell, grow_threshold=grow, full=full)

    def full_level(self, scene: Scene, graft: np.ndarray) -> tuple[float, str, set[str]]:
        """The median of the graft voxels (NaN when there are none)."""
        full = float(np.median(scene.data[graft])) if graft.any() else float("nan")
        return full, "graft_median", set()

    def graft_flags(self, scene: Scene, graft: np.ndarray, full: float) -> set[str]:
        """``possible_subvoxel_cyst``: graft voxels far brighter than the graft's level."""
        # Brighter than graft tissue can be, yet not CSF-like: a cyst thinner than the voxel
        # (or oedema) mixed with cord. Intensity cannot tell it from graft, so it is counted in
        # the graft; say so.
        bright = int((graft & (scene.data > full + _SUBVOXEL_CYST_K * scene.noise)).sum())
        voxel_mm3 = float(np.prod(scene.spacing))
        if bright >= 3 and bright * voxel_mm3 >= scene.params.min_component_volume_mm3:
            return {"possible_subvoxel_cyst"}
        return set()


def _local_normal_level(
    data: np.ndarray, normal: np.ndarray, lesion: np.ndarray, fallback: float
) -> float:
    """Median of normal cord in the lesion's slices and two beyond; ``fallback`` if too few."""
    slices = np.flatnonzero(lesion.any(axis=(0, 1)))
    if slices.size == 0:
        return fallback
    lo, hi = max(int(slices[0]) - 2, 0), int(slices[-1]) + 3
    values = data[..., lo:hi][normal[..., lo:hi]]
    return float(np.median(values)) if values.size >= 50 else fallback
