"""What graft segmentation returns: its intensity levels and the masks with their evidence."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from graftimg.modes import Mode
from graftimg.segment.graft.params import GraftParams
from graftimg.segment.graft_components import GraftComponent
from graftimg.segment.reference import ReferenceStats

__all__ = ["GraftLevels", "GraftSegmentation"]


@dataclass(frozen=True)
class GraftLevels:
    """Intensity levels used for one segmentation (image units).

    Attributes
    ----------
    normal : float
        Normal cord level ``μ`` (reference median).
    sigma : float
        The spread used, ``σ``: the larger of the reference's ``1.4826·MAD`` and its one-sided
        spread on the graft's side (``sigma_upper`` in t2, ``sigma_lower`` in iron).
    threshold : float
        ``μ − kσ`` (iron) or ``μ + kσ`` (t2).
    threshold_low : float
        Threshold at ``k + band_k_sigma``: the one of the band's low end (the stricter).
    threshold_high : float
        Threshold at ``k − band_k_sigma``: the one of the band's high end.
    full : float
        Level of a voxel entirely graft, for partial-volume weights
        ``clip((I − normal)/(full − normal), 0, 1)``: iron → the void (noise-floor) level
        ``σ_noise·√(π/2)``; t2 → the median of the graft voxels (NaN when there are none).
    full_source : str
        ``"noise_sigma"`` (iron, noise estimate given), ``"reference_sigma"`` (iron, σ used as an
        upper bound of the noise SD) or ``"graft_median"`` (t2).
    cyst_threshold : float
        t2: CSF-like level of cyst cores; NaN in iron mode or when no split was possible.
    cyst_grow_threshold : float
        t2: the cyst boundary, midpoint between the tissue around the (largest) cyst and CSF;
        NaN otherwise.
    cyst_full : float
        t2: CSF level ``μ_CSF`` (full level of cyst voxels); NaN otherwise.
    """

    normal: float
    sigma: float
    threshold: float
    threshold_low: float
    threshold_high: float
    full: float
    full_source: str
    cyst_threshold: float = float("nan")
    cyst_grow_threshold: float = float("nan")
    cyst_full: float = float("nan")


@dataclass(frozen=True, eq=False)
class GraftSegmentation:
    """Result of :func:`graftimg.segment.graft.segment_graft`.

    Attributes
    ----------
    mode : {"iron", "t2"}
        Contrast mode.
    graft_mask : (X, Y, Z) ndarray of bool
        Graft voxels at ``k`` (t2: without cyst).
    cyst_mask : (X, Y, Z) ndarray of bool
        Cyst voxels (t2; all False in iron mode).
    graft_mask_low : (X, Y, Z) ndarray of bool
        Graft at ``k + band_k_sigma`` (the low end of the uncertainty band).
    graft_mask_high : (X, Y, Z) ndarray of bool
        Graft at ``k − band_k_sigma`` (the high end of the uncertainty band).
    search_mask : (X, Y, Z) ndarray of bool
        Where graft voxels were looked for (window ∩ dilated cord, or ∩ cord in t2).
    support_mask : (X, Y, Z) ndarray of bool or None
        iron with a ``half_contrast`` boundary: the detections at ``k − 1`` before the edge
        moved that lie within one voxel of the void at ``k`` (the dephasing halo; the
        partial-volume measurement weighs them too); None otherwise (t2 weighs the graft's own
        shell only).
    s_from_site_mm : (Z,) ndarray
        Along-cord distance of each slice from the site, in mm (NaN off-cord).
    reference : ReferenceStats
        Normal-cord statistics.
    csf_reference : ReferenceStats or None
        CSF statistics (t2 mode).
    levels : GraftLevels
        Thresholds and levels used.
    components : tuple of GraftComponent
        Every candidate component at ``k`` after clean-up, kept or not.
    flags : tuple of str
        Sorted, e.g. ``no_graft_found``, ``reference_too_small``, ``low_snr``,
        ``graft_touches_window_edge``, ``graft_extends_beyond_search_region``,
        ``components_far_from_site``, ``site_outside_cord``, ``threshold_near_noise_floor``,
        ``csf_contrast_low``, ``csf_reference_too_small``, ``possible_subvoxel_cyst`` (t2: graft
        voxels brighter than the graft's median by > 3 noise SDs but not CSF-like — a cyst
        thinner than the voxel, or oedema, counted in the graft; or a graft so short through
        the slice that no voxel is pure graft, whose level and PV volume are then unsure).
    site_voxel : tuple of float
        Injection site used, canonical voxel coordinates.
    spacing : tuple of float
        Voxel size in mm.
    params : GraftParams
        Parameters used.
    """

    mode: Mode
    graft_mask: np.ndarray
    cyst_mask: np.ndarray
    graft_mask_low: np.ndarray
    graft_mask_high: np.ndarray
    search_mask: np.ndarray
    s_from_site_mm: np.ndarray
    reference: ReferenceStats
    csf_reference: ReferenceStats | None
    levels: GraftLevels
    components: tuple[GraftComponent, ...]
    flags: tuple[str, ...]
    site_voxel: tuple[float, float, float]
    spacing: tuple[float, float, float]
    params: GraftParams = field(default_factory=GraftParams)
    support_mask: np.ndarray | None = None

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel, in mm³."""
        return float(np.prod(self.spacing))

    @property
    def n_voxels(self) -> int:
        """Number of graft voxels."""
        return int(self.graft_mask.sum())

    @property
    def volume_mm3(self) -> float:
        """Binary graft volume (voxel count × voxel volume), in mm³."""
        return self.n_voxels * self.voxel_volume_mm3

    @property
    def cyst_volume_mm3(self) -> float:
        """Binary cyst volume, in mm³."""
        return int(self.cyst_mask.sum()) * self.voxel_volume_mm3
