"""Detection shared by both modes: the regions, the thresholded components, half-contrast edges.

A :class:`Scene` holds what one segmentation has established before it looks for graft voxels
(the image, the cord, the along-cord distance, the reference levels, the thresholds and the
regions), so that each mode's strategy (:mod:`graftimg.segment.graft.iron`,
:mod:`graftimg.segment.graft.t2`) reads it rather than a dozen arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from graftimg.modes import Mode
from graftimg.morphology import fill_holes_per_slice as _fill_holes_per_slice
from graftimg.segment.graft.params import GraftParams
from graftimg.segment.graft_components import GraftComponent, detect_components
from graftimg.segment.reference import ReferenceStats

__all__ = ["BACKGROUND_ZONE_K", "FULL_CONNECTIVITY", "Regions", "Scene"]

FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)

#: Half-contrast edges: the lesion's extent (iron: for the along-cord background; t2: for the
#: graft's level), in σ from μ, and the closest the t2 edge comes to the normal level.
BACKGROUND_ZONE_K = 2.0


@dataclass(frozen=True, eq=False)
class Regions:
    """Where a mode looks for graft voxels (all ``(X, Y, Z)`` bool on the segmentation's grid).

    Attributes
    ----------
    search : ndarray of bool
        Where graft voxels are kept: the window's cord, dilated in-plane (iron) or without its
        outer layer (t2).
    rim : ndarray of bool
        t2: the cord window's outer layer, added back only where it continues a kept component;
        empty in iron mode.
    detect_in : ndarray of bool
        Where a component may start.
    detect_rim : ndarray of bool
        Where a component may only continue (within ``rim_steps`` steps).
    rim_steps : int
        How far a component may continue into ``detect_rim``, in voxels.
    """

    search: np.ndarray
    rim: np.ndarray
    detect_in: np.ndarray
    detect_rim: np.ndarray
    rim_steps: int


@dataclass(frozen=True, eq=False)
class Scene:
    """What one segmentation knows before it looks for graft voxels.

    Attributes
    ----------
    mode : {"iron", "t2"}
        Contrast mode: iron voids are darker than ``μ``, t2 graft brighter.
    data : (X, Y, Z) ndarray of float64
        The image.
    cord : (X, Y, Z) ndarray of bool
        The cord mask.
    s : (Z,) ndarray
        Along-cord distance of each slice from the site, in mm (NaN off-cord).
    site : tuple of 3 float
        Injection site, voxel coordinates of this grid.
    spacing : tuple of 3 float
        Voxel size in mm.
    params : GraftParams
        Parameters.
    noise_sigma : float or None
        Noise SD of the magnitude image, if known.
    look : (X, Y, Z) ndarray of bool
        Where the reference looked for abnormal tissue.
    abnormal_tissue : (X, Y, Z) ndarray of bool
        What the reference left out as abnormal.
    reference : ReferenceStats
        Normal-cord statistics.
    csf_reference : ReferenceStats or None
        CSF statistics (t2).
    mu, sigma : float
        Normal level ``μ`` and the spread ``σ`` on the graft's side.
    thresholds : dict of str to float
        ``main`` (``k``), ``low`` (``k + band``: the band's low end) and ``high``
        (``k − band``) thresholds.
    regions : Regions
        Where graft voxels are looked for.
    """

    mode: Mode
    data: np.ndarray
    cord: np.ndarray
    s: np.ndarray
    site: tuple[float, float, float]
    spacing: tuple[float, float, float]
    params: GraftParams
    noise_sigma: float | None
    look: np.ndarray
    abnormal_tissue: np.ndarray
    reference: ReferenceStats
    csf_reference: ReferenceStats | None
    mu: float
    sigma: float
    thresholds: dict[str, float]
    regions: Regions

    @property
    def sign(self) -> float:
        """``-1`` in iron mode (voids are darker than ``μ``), ``+1`` in t2 (graft brighter)."""
        return -1.0 if self.mode == "iron" else 1.0

    @property
    def noise(self) -> float:
        """The noise SD: ``noise_sigma`` when given, else ``σ`` (an upper bound)."""
        return self.sigma if self.noise_sigma is None else float(self.noise_sigma)

    def abnormal(self, threshold: float) -> np.ndarray:
        """Voxels beyond ``threshold`` on the graft's side (below it in iron, above in t2)."""
        return self.data < threshold if self.mode == "iron" else self.data > threshold

    def detect(self, threshold: float) -> tuple[np.ndarray, tuple[GraftComponent, ...]]:
        """Kept components beyond ``threshold`` (:func:`_detect` in this scene's regions)."""
        r = self.regions
        return _detect(
            self.abnormal(threshold),
            r.detect_in,
            r.detect_rim,
            self.site,
            self.spacing,
            self.params,
            r.rim_steps,
        )

    def lesion_extent(self) -> np.ndarray:
        """The lesion found at a fixed 2σ from μ: its extent whatever ``k`` is."""
        found, _ = self.detect(self.mu + self.sign * BACKGROUND_ZONE_K * self.sigma)
        return found


def _detect(
    candidates: np.ndarray,
    search: np.ndarray,
    rim: np.ndarray,
    site: tuple[float, float, float],
    spacing: tuple[float, float, float],
    params: GraftParams,
    rim_steps: int = 1,
) -> tuple[np.ndarray, tuple[GraftComponent, ...]]:
    """:func:`detect_components` with the size and distance rules of ``params``."""
    return detect_components(
        candidates,
        search,
        rim,
        site,
        spacing,
        min_volume_mm3=params.min_component_volume_mm3,
        max_site_distance_mm=params.site_distance_mm,
        rim_steps=rim_steps,
    )


def _touching(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """``mask`` within one 26-neighbour step of ``seeds``: the partial-volume halo of a lesion.

    Farther voxels of ``mask`` belong to something else that is merely connected to it (on
    axial T2*w, dark tissue along the cord's posterior edge joined a void and tripled its
    partial-volume volume).
    """
    if not seeds.any():
        return np.zeros_like(mask)
    return mask & ndimage.binary_dilation(seeds, FULL_CONNECTIVITY)


def _smoothed_for_edges(data: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """The image lightly smoothed (σ = half the finest voxel) for half-contrast decisions."""
    finest = min(spacing)
    blur = [0.5 * finest / d if 0.5 * finest / d >= 0.2 else 0.0 for d in spacing]
    return ndimage.gaussian_filter(data, blur, mode="nearest")


def _grow_to_half(
    detected: np.ndarray,
    half: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    keep_faint: bool = True,
) -> np.ndarray:
    """Move a detection's edge to half contrast (see ``GraftParams.iron_boundary``).

    ``keep_faint``: components with no voxel at half contrast stay as detected; otherwise they
    are dropped.
    """
    if not detected.any():
        return detected
    grown = ndimage.binary_propagation(detected & half, structure=FULL_CONNECTIVITY, mask=half)
    labels, n = ndimage.label(detected, structure=FULL_CONNECTIVITY)
    reached = np.zeros(n + 1, dtype=bool)
    reached[labels[detected & half]] = True
    faint = ~reached[labels] & detected if keep_faint else np.zeros_like(detected)
    return _fill_holes_per_slice(grown, spacing) & (half | detected) | faint


def _touches_window_edge(graft: np.ndarray, s: np.ndarray, half_length_mm: float) -> bool:
    """Whether the graft reaches a first or last slice of the window (it may be cut off)."""
    with np.errstate(invalid="ignore"):
        inside = np.abs(s) <= half_length_mm
    padded = np.concatenate([[False], inside, [False]])
    edge = inside & ~(padded[:-2] & padded[2:])
    return bool(graft[..., edge].any())
