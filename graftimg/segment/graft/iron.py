"""``iron`` mode (T2*w/GRE/SWI, iron-labelled cells): dark voids, their edge at half signal loss.

Voids are detected as voxels darker than ``μ − kσ`` at least ``iron_edge_mm`` inside the cord
within the window; a void continues into the cord's edge layer and the ring one voxel beyond
(blooming reaches past the cord), but nothing is detected there on its own. With the
``half_contrast`` boundary the edge then moves to where a voxel is at least half void, against
the along-cord background (:func:`_local_background`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from graftimg.morphology import inplane_dilate as _inplane_dilate
from graftimg.morphology import inplane_erode as _inplane_erode
from graftimg.segment.cord_background import along_cord_background
from graftimg.segment.graft.detection import (
    FULL_CONNECTIVITY,
    Regions,
    Scene,
    _grow_to_half,
    _smoothed_for_edges,
    _touching,
)
from graftimg.segment.graft.params import GraftParams
from graftimg.segment.graft.strategy import ModeStrategy
from graftimg.segment.injection import injection_window

__all__ = ["IronStrategy"]

#: Mean of a Rayleigh distribution in units of its σ: the magnitude of pure noise (a void).
_RAYLEIGH_MEAN = float(np.sqrt(np.pi / 2.0))


class IronStrategy(ModeStrategy):
    """Dark voids: detected inside the cord, grown to half signal loss, levels from the noise."""

    mode = "iron"

    def look(
        self, cord: np.ndarray, *, spacing: tuple[float, float, float], params: GraftParams
    ) -> np.ndarray:
        """The cord dilated in-plane by ``search_dilate_voxels`` (blooming reaches past it)."""
        return _inplane_dilate(cord, params.search_dilate_voxels, spacing)

    def regions(
        self,
        cord: np.ndarray,
        s: np.ndarray,
        *,
        spacing: tuple[float, float, float],
        params: GraftParams,
    ) -> Regions:
        """The dilated window; voids start ``iron_edge_mm`` inside the cord's edge."""
        search = injection_window(
            cord,
            s,
            half_length_mm=params.window_half_length_mm,
            dilate_inplane_voxels=params.search_dilate_voxels,
            spacing=spacing,
        )
        rim = np.zeros_like(search)
        # Voids are detected inside the cord, ``iron_edge_mm`` in from its edge; the edge layer
        # and the ring beyond it (blooming reaches past the cord) join only where they continue
        # a void.
        # Dark tissue hugging the cord where no CSF separates it (dura, the posterior
        # structures on axial T2*w) otherwise passes for a void two voxels thick.
        edge_voxels = max(1, round(params.iron_edge_mm / max(spacing[0], spacing[1])))
        detect_in = search & _inplane_erode(
            injection_window(
                cord,
                s,
                half_length_mm=params.window_half_length_mm,
                dilate_inplane_voxels=0,
                spacing=spacing,
            ),
            edge_voxels,
            spacing,
        )
        if not detect_in.any():  # a cord too thin to erode: detect everywhere
            detect_in = search
        detect_rim = search & ~detect_in
        rim_steps = edge_voxels + params.search_dilate_voxels
        return Regions(search, rim, detect_in, detect_rim, rim_steps)

    def move_edges(
        self, scene: Scene, kept: dict[str, np.ndarray], core_level: float
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Grow the detections to half signal loss (``iron_boundary="half_contrast"``)."""
        if scene.params.iron_boundary != "half_contrast":
            return kept, None
        kept = dict(kept)
        data, spacing = scene.data, scene.spacing
        support = _touching(kept["high"], kept["main"])
        void_level = _RAYLEIGH_MEAN * scene.noise
        # The lesion's extent for the background is its detection at a fixed μ − 2σ, so that
        # the edge of a void does not move with k (V(k − 1) ≥ V(k) ≥ V(k + 1) stays true).
        extent = scene.lesion_extent()
        zone = extent if extent.any() else kept["main"]
        background = _local_background(data, scene.cord, zone, scene.mu, spacing)
        # Decided on a lightly smoothed copy (σ = half the finest voxel): a voxel at the edge
        # is half void by definition, so its noise would otherwise toss it in or out.
        half = _smoothed_for_edges(data, spacing) <= 0.5 * (background + void_level)
        search = scene.regions.search
        for name in ("low", "main", "high"):
            grown = _grow_to_half(kept[name], half & search, spacing, keep_faint=False)
            # A void is half void somewhere in the cord's inner region: a detection that is
            # half void only at the cord's edge or beyond (dark dura, a root, the CSF ring's
            # partial volume on T2*w) is not a void that blooms out of the cord.
            kept[name] = _anchored(grown, half & scene.regions.detect_in)
        kept["low"] &= kept["main"]
        kept["high"] |= kept["main"]
        return kept, support

    def full_level(self, scene: Scene, graft: np.ndarray) -> tuple[float, str, set[str]]:
        """The void (noise-floor) level ``σ_noise·√(π/2)``; flag a threshold near it."""
        full = scene.noise * _RAYLEIGH_MEAN
        source = "reference_sigma" if scene.noise_sigma is None else "noise_sigma"
        near = scene.thresholds["main"] < 2.0 * full
        return full, source, {"threshold_near_noise_floor"} if near else set()

    def graft_flags(self, scene: Scene, graft: np.ndarray, full: float) -> set[str]:
        """``graft_extends_beyond_search_region``: void voxels just outside the search region."""
        outer = _inplane_dilate(graft, 1, scene.spacing) & ~scene.regions.search
        if (outer & scene.abnormal(scene.thresholds["main"])).any():
            return {"graft_extends_beyond_search_region"}
        return set()


def _anchored(mask: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """The 26-connected components of ``mask`` that hold at least one ``anchor`` voxel."""
    if not mask.any():
        return mask
    labels, _ = ndimage.label(mask, structure=FULL_CONNECTIVITY)
    hit = np.unique(labels[mask & anchor])
    return np.isin(labels, hit[hit > 0])


def _local_background(
    data: np.ndarray,
    cord: np.ndarray,
    lesion: np.ndarray,
    mu: float,
    spacing: tuple[float, float, float],
) -> np.ndarray:
    """Each voxel's level without the lesion: the along-cord background, ``μ`` elsewhere.

    Grey matter, white matter and CSF differ by tens of per cent on T2*w: half contrast
    against the cord median would put a void's edge too far out in white matter and not far
    enough in grey matter. The cord beyond the lesion, shifted along the centerline, says what
    each voxel would be (:func:`graftimg.segment.cord_background.along_cord_background`).
    """
    background = np.full(data.shape, float(mu))
    if not lesion.any():
        return background
    present = cord.any(axis=(0, 1))
    line = np.full((data.shape[2], 2), np.nan)
    for z in np.flatnonzero(present):
        line[z] = np.argwhere(cord[..., z]).mean(axis=0)
    zone = ndimage.binary_dilation(lesion, FULL_CONNECTIVITY, iterations=2)
    n_side = max(2, round(2.5 / spacing[2]))
    # Each run of lesion slices gets the cord just beyond it, not beyond a distant satellite.
    runs, n_runs = ndimage.label(zone.any(axis=(0, 1)))
    for i in range(1, n_runs + 1):
        wanted = np.flatnonzero(runs == i)
        part = zone.copy()
        part[..., runs != i] = False
        for z, plane in along_cord_background(data, part, line, wanted, n_side=n_side).items():
            background[..., z] = plane
    return background
