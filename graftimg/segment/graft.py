"""Graft voxels around the injection site, in ``iron`` and ``t2`` modes.

Every decision is relative to the statistics of normal-appearing cord
(:func:`graftimg.segment.graft_reference.graft_free_reference`: median ``μ`` and ``σ``, the
larger of ``1.4826·MAD`` and the one-sided spread on the graft's side, ``(Q97.5 − μ)/1.96`` in
t2 and ``(μ − Q2.5)/1.96`` in iron, from cord that is demonstrably not graft), so a global
intensity gain changes no result and a lower ``k`` never gives a smaller graft. The one-sided
spread matters in t2: grey matter is brighter than white matter, the MAD follows the
white-matter majority, and at SNR ≥ 20 ``μ + 3·MAD`` reaches grey matter. When no trustworthy
reference exists the result carries ``reference_unreliable`` and empty masks: the volume is
then not measured (``null``), never 0.

``iron`` (T2*w/GRE/SWI, iron-labelled cells)
    Voids are detected as voxels darker than ``μ − kσ`` at least ``iron_edge_mm`` inside the
    cord within the window ``|s| ≤ L``; a void continues into the cord's edge layer and the
    ring one voxel beyond (blooming reaches past the cord), but nothing is detected there on
    its own (dark tissue hugging the cord would pass for a thin void). The edge then moves to
    half contrast (``iron_boundary``).
``t2`` (T2w, unlabelled cells)
    Graft = voxels brighter than ``μ + kσ`` inside the cord within the window, its edge at half
    contrast (``t2_boundary``). The outer layer of the cord mask (one voxel in-plane) is left
    out of the search, because CSF partial volume makes it bright all along the cord; it is
    added back only where it touches a kept graft component and is itself above threshold.
    CSF-like voxels are split off as **cyst**:

    - cyst cores are CSF-like voxels: ``≥ μ_CSF − 2σ_n`` (σ_n the image's noise SD), where
      ``μ_CSF`` is the bright mode of a ring just outside the cord
      (:func:`graftimg.segment.reference.csf_stats`), or at least 75 % of the way from the
      graft tissue level to ``μ_CSF`` (a small cyst in thick slices has no pure-CSF voxel: a
      0.1 mm³ rodent cyst peaked at 93 % of CSF); the core level is never allowed below the
      cord–CSF midpoint ``(μ + μ_CSF)/2`` (flag ``csf_contrast_low`` when it had to be
      raised); a single core voxel is enough;
    - cores grow, through 26-connected graft voxels, into every voxel at or above the midpoint
      between the level of the tissue around that cyst (graft or normal cord: the median two
      face-steps outside it along the fine axes) and ``μ_CSF``. A voxel there is more than
      half CSF when it mixes tissue and CSF linearly, so the binary cyst volume is unbiased by
      partial volume at its wall;
    - cysts smaller than ``min_component_volume_mm3`` return to the graft;
    - a cyst in normal-appearing cord (the tissue around it is below the graft threshold) has
      a rim of cord–CSF partial-volume voxels above the threshold; they belong to neither mask.

    The midpoint rule is not used without cores: oedema and graft tissue reach 0.6–0.85 of CSF
    on T2w, so bright tissue with no CSF-like voxel stays tissue. T2w alone cannot tell oedema
    at ≥ 0.9 of CSF from a cyst (Karthik et al., Radiol AI 2024); it is counted as cyst.

Common steps (:func:`graftimg.segment.graft_components.detect_components`): a clean-up that
removes noise specks and one-voxel threads but keeps anything two voxels across, hole filling
slice by slice, connected components with 26-connectivity; a component is **kept** when it is at
least ``min_component_volume_mm3`` and its nearest voxel (as a box) lies within
``site_distance_mm`` of the injection site (distance 0 when one of its voxels holds the site).
Optional region growing (SimpleITK ``ConnectedThreshold`` or ``ConfidenceConnected``) from the
deepest graft voxel is off by default.

The same chain runs at ``k − 1`` ("sensitive") and ``k + 1`` ("strict") for the uncertainty band;
the cyst (and its rim) found at ``k`` is removed from all three, so
``strict ⊆ graft ⊆ sensitive``.

The input should be bias-corrected (N4): thresholds are global within the window, so a residual
bias along the cord of a few σ shifts them. Methods and their validation: docs/methods.md and
docs/validation.md.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np
from scipy import ndimage

from graftimg.errors import ConfigError, SegmentationError
from graftimg.modes import Mode
from graftimg.morphology import cross as _cross
from graftimg.morphology import fill_holes_per_slice as _fill_holes_per_slice
from graftimg.morphology import inplane_dilate as _inplane_dilate
from graftimg.morphology import inplane_erode as _inplane_erode
from graftimg.segment.cord_background import along_cord_background
from graftimg.segment.graft_components import GraftComponent, detect_components
from graftimg.segment.graft_reference import graft_free_reference, reference_sigma
from graftimg.segment.injection import center_on_site, injection_window
from graftimg.segment.reference import ReferenceStats, _check_inputs, csf_stats
from graftimg.spacing import fine_axes as _fine_axes
from graftimg.spacing import validated_spacing as _check_spacing

__all__ = [
    "GraftComponent",
    "GraftLevels",
    "GraftParams",
    "GraftSegmentation",
    "segment_graft",
]

_FULL_CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)
_RAYLEIGH_MEAN = float(np.sqrt(np.pi / 2.0))

Refine = Literal["none", "connected_threshold", "confidence_connected"]

#: Half-contrast edges: the lesion's extent (iron: for the along-cord background; t2: for the
#: graft's level), in σ from μ, and the closest the t2 edge comes to the normal level.
_BACKGROUND_ZONE_K = 2.0

#: t2: a normal-cord reference at this fraction of the CSF level or above is not normal cord.
_CORD_CSF_RATIO_MAX = 0.6

#: t2: graft voxels above the graft level by this many noise SDs raise ``possible_subvoxel_cyst``.
_SUBVOXEL_CYST_K = 3.0

_SCALES: dict[str, dict[str, float]] = {
    # Human cord (≈ 8.5 × 12.5 mm), grafts 20–500 mm³, voxels 0.5–0.8 mm in-plane.
    "human": {},
    # Rat/mouse cord (≈ 2.2 × 3.2 mm), grafts 0.5–10 mm³, voxels ≈ 0.1 mm in-plane, CSF rim
    # 0.1–0.3 mm.
    "rodent": {
        "window_half_length_mm": 5.0,
        "reference_band_mm": 4.0,
        "min_component_volume_mm3": 0.005,
        "site_distance_mm": 2.0,
        "csf_ring_width_mm": 0.2,
        "iron_edge_mm": 0.15,
    },
}


@dataclass(frozen=True)
class GraftParams:
    """Parameters of graft detection, with units in the names (defaults: human scale).

    Use :meth:`for_scale` for the rodent defaults. Every value is recorded in provenance.

    Attributes
    ----------
    window_half_length_mm : float
        Half-length ``L`` of the injection window along the cord (human 30, rodent 5).
    reference_band_mm : float
        Length of each reference band beyond the window (human 10, rodent 4).
    reference_erode_voxels : int
        In-plane erosion of the cord for the reference (1).
    reference_min_voxels : int
        Fewer reference voxels than this: widen the region and flag ``reference_too_small``
        (200; also the minimum for the CSF ring).
    search_dilate_voxels : int
        ``iron``: in-plane dilation of the cord for the search region, in voxels (1).
    iron_edge_mm : float
        ``iron``: voids are detected this far inside the cord's edge (at least one voxel); the
        outer layer joins a void only where it continues one (human 1.0, rodent 0.15). Dark
        tissue against the cord where no CSF lies between (dura and ligament along the posterior
        edge on axial T2*w) otherwise passes for a thin void: 8.7–17 false voxels per 10 mm on
        the Spinal Cord Toolbox T2*w.
    t2_exclude_rim_voxels : int
        ``t2``: outer cord layer left out of the search (CSF partial volume), in voxels (1).
    k_sigma : float
        Threshold in robust SDs (3: ≈ 0.13 % false voxels for Gaussian noise).
    band_k_sigma : float
        Step of the threshold sweep: the uncertainty band uses ``k ± band_k_sigma`` (1).
    min_component_volume_mm3 : float
        Smallest kept component, in mm³ (human 1.0 ≈ 2 voxels of 0.8 mm; rodent 0.005 = 5
        voxels of 0.1 mm).
    site_distance_mm : float
        Largest distance from the site to a kept component's nearest voxel, in mm (human 10,
        rodent 2).
    csf_ring_gap_voxels : int
        ``t2``: voxels skipped between cord and CSF ring (1).
    csf_ring_width_mm : float
        ``t2``: radial width of the CSF ring (human 1.5, rodent 0.2).
    cyst_csf_k_sigma : float
        ``t2``: a voxel ``≥ μ_CSF − cyst_csf_k_sigma · σ_CSF`` is a cyst core (2).
    cyst_core_fraction : float
        ``t2``: so is a voxel at least this fraction of the way from the graft tissue level to
        ``μ_CSF`` (0.75: ≈ 0.9 of CSF for tissue at 0.6, the lower end of cysts and above
        oedema on T2w; catches small cysts without a pure-CSF voxel).
    min_snr : float
        Flag ``low_snr`` when ``μ / σ_noise`` (or ``μ / σ`` without a noise estimate) is below
        this (5: thresholds on Rician magnitude are unreliable below ≈ 5; Gudbjartsson & Patz
        1995).
    refine : {"none", "connected_threshold", "confidence_connected"}
        Optional region growing from the most abnormal kept voxel ("none").
    iron_boundary : {"half_contrast", "threshold"}
        ``iron``: where the mask's edge lies. ``"threshold"``: every voxel below ``μ − kσ``.
        ``"half_contrast"`` (default): the ``μ − kσ`` voxels detect the void, and its edge is
        put where a voxel is at least half void — grown from the detections through 26-connected
        voxels at or below ``(μ + void level) / 2`` within the search region, dropping detected
        voxels above it; a component with no such voxel is no void (dark tissue along the
        posterior edge of an axial T2*w passed μ − kσ as 12–15 voxels per 10 mm of cord, with
        nothing at half signal loss), and is dropped. ``μ − kσ`` moves
        with the SNR (7.5 % signal loss at SNR 40, ≈ 50 % at SNR 10 with cord texture); the
        half-contrast edge does not, so the mask matches the void at every SNR.
    t2_boundary : {"half_contrast", "threshold"}
        ``t2``: where the mask's edge lies. ``"threshold"``: every voxel above ``μ + kσ``.
        ``"half_contrast"`` (default): the ``μ + kσ`` voxels detect the graft, and its edge is
        put where a voxel is at least half graft — at ``(μ_local + G)/2`` with ``μ_local`` the
        normal cord beside the graft and ``G`` the median of the interior of the tissue found at
        ``μ + 2σ`` that is not CSF-like, never below ``μ_local + 2σ`` so that the edge cannot
        wander into noise. With ``refine`` other than ``"none"`` the region growing sets the
        edge instead. On grafts inserted into a real 1 mm T2w at half
        the cord–CSF contrast, ``μ + 3σ`` lay at 0.6–0.7 of the graft's contrast and the
        threshold mask missed 5–26 % of the volume.
    confidence_multiplier : float
        ``ConfidenceConnected`` multiplier (2.5).
    confidence_iterations : int
        ``ConfidenceConnected`` iterations (3).
    confidence_radius_voxels : int
        ``ConfidenceConnected`` initial neighbourhood radius, in voxels (1).

    Examples
    --------
    >>> p = GraftParams.for_scale("rodent", k_sigma=2.5)
    >>> p.window_half_length_mm, p.reference_band_mm, p.k_sigma
    (5.0, 4.0, 2.5)
    """

    window_half_length_mm: float = 30.0
    reference_band_mm: float = 10.0
    reference_erode_voxels: int = 1
    reference_min_voxels: int = 200
    search_dilate_voxels: int = 1
    t2_exclude_rim_voxels: int = 1
    iron_edge_mm: float = 1.0
    k_sigma: float = 3.0
    band_k_sigma: float = 1.0
    min_component_volume_mm3: float = 1.0
    site_distance_mm: float = 10.0
    csf_ring_gap_voxels: int = 1
    csf_ring_width_mm: float = 1.5
    cyst_csf_k_sigma: float = 2.0
    cyst_core_fraction: float = 0.75
    min_snr: float = 5.0
    refine: Refine = "none"
    iron_boundary: Literal["half_contrast", "threshold"] = "half_contrast"
    t2_boundary: Literal["half_contrast", "threshold"] = "half_contrast"
    confidence_multiplier: float = 2.5
    confidence_iterations: int = 3
    confidence_radius_voxels: int = 1

    def __post_init__(self) -> None:
        positive = (
            "window_half_length_mm",
            "reference_band_mm",
            "k_sigma",
            "csf_ring_width_mm",
            "iron_edge_mm",
            "confidence_multiplier",
            "cyst_core_fraction",
        )
        non_negative = (
            "reference_erode_voxels",
            "reference_min_voxels",
            "search_dilate_voxels",
            "t2_exclude_rim_voxels",
            "band_k_sigma",
            "min_component_volume_mm3",
            "site_distance_mm",
            "csf_ring_gap_voxels",
            "cyst_csf_k_sigma",
            "min_snr",
            "confidence_iterations",
            "confidence_radius_voxels",
        )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("iron_boundary", "t2_boundary"):
                if value not in ("half_contrast", "threshold"):
                    raise ConfigError(
                        f"{f.name} must be 'half_contrast' or 'threshold', got {value!r}"
                    )
                continue
            if f.name == "refine":
                if value not in ("none", "connected_threshold", "confidence_connected"):
                    raise ConfigError(
                        f"refine must be 'none', 'connected_threshold' or "
                        f"'confidence_connected', got {value!r}"
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{f.name} must be a number, got {value!r}")
            if not np.isfinite(value):
                raise ConfigError(f"{f.name} must be finite, got {value!r}")
            if f.name in positive and not value > 0:
                raise ConfigError(f"{f.name} must be positive, got {value!r}")
            if f.name in non_negative and value < 0:
                raise ConfigError(f"{f.name} must not be negative, got {value!r}")
        if self.cyst_core_fraction > 1:
            raise ConfigError(
                f"cyst_core_fraction must be at most 1, got {self.cyst_core_fraction!r}"
            )

    @classmethod
    def for_scale(cls, scale: Literal["human", "rodent"], **overrides: object) -> GraftParams:
        """Defaults for a human or rodent cord, with optional overrides.

        Parameters
        ----------
        scale : {"human", "rodent"}
            Species scale.
        **overrides
            Any field of :class:`GraftParams`.

        Returns
        -------
        GraftParams
            The parameters.
        """
        if scale not in _SCALES:
            raise ConfigError(f"scale must be 'human' or 'rodent', got {scale!r}")
        return cls(**{**_SCALES[scale], **overrides})  # type: ignore[arg-type]


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
    threshold_strict : float
        Threshold at ``k + band_k_sigma``.
    threshold_sensitive : float
        Threshold at ``k − band_k_sigma``.
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
    threshold_strict: float
    threshold_sensitive: float
    full: float
    full_source: str
    cyst_threshold: float = float("nan")
    cyst_grow_threshold: float = float("nan")
    cyst_full: float = float("nan")


@dataclass(frozen=True, eq=False)
class GraftSegmentation:
    """Result of :func:`segment_graft`.

    Attributes
    ----------
    mode : {"iron", "t2"}
        Contrast mode.
    graft_mask : (X, Y, Z) ndarray of bool
        Graft voxels at ``k`` (t2: without cyst).
    cyst_mask : (X, Y, Z) ndarray of bool
        Cyst voxels (t2; all False in iron mode).
    graft_mask_strict : (X, Y, Z) ndarray of bool
        Graft at ``k + band_k_sigma`` (the low end of the uncertainty band).
    graft_mask_sensitive : (X, Y, Z) ndarray of bool
        Graft at ``k − band_k_sigma`` (the high end of the uncertainty band).
    search_mask : (X, Y, Z) ndarray of bool
        Where graft voxels were looked for (window ∩ dilated cord, or ∩ cord in t2).
    support_mask : (X, Y, Z) ndarray of bool or None
        With a ``half_contrast`` boundary: the detections at ``k − 1`` before the edge moved
        that lie within one voxel of the graft at ``k`` (the partial-volume measurement weighs
        them too); None otherwise.
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
    graft_mask_strict: np.ndarray
    graft_mask_sensitive: np.ndarray
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
    if mode not in ("iron", "t2"):
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
        graft_mask_strict=uncrop(inner.graft_mask_strict),
        graft_mask_sensitive=uncrop(inner.graft_mask_sensitive),
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
    s = center_on_site(s_raw, site[2])
    flags: set[str] = set()

    if mode == "iron":
        look = _inplane_dilate(cord, params.search_dilate_voxels, spacing)
    else:
        look = _inplane_erode(cord, params.t2_exclude_rim_voxels, spacing)
    ref, abnormal_tissue = graft_free_reference(
        image,
        cord,
        s,
        site,
        mode=mode,
        k_sigma=_BACKGROUND_ZONE_K,
        look=look,
        spacing=spacing,
        window_mm=params.window_half_length_mm,
        band_mm=params.reference_band_mm,
        erode_voxels=params.reference_erode_voxels,
        min_voxels=params.reference_min_voxels,
        min_component_volume_mm3=params.min_component_volume_mm3,
        site_distance_mm=params.site_distance_mm,
    )
    csf_ref: ReferenceStats | None = None
    if mode == "t2":
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
        flags.update(csf_ref.flags)
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
    flags.update(ref.flags)
    mu = ref.median
    sigma = reference_sigma(ref, mode)
    sign = -1.0 if mode == "iron" else 1.0
    k, dk = params.k_sigma, params.band_k_sigma
    ks = {"main": k, "strict": k + dk, "sensitive": max(k - dk, 0.0)}
    thresholds = {name: mu + sign * kk * sigma for name, kk in ks.items()}
    data = image.astype(np.float64, copy=False)

    if mode == "iron":
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
    else:
        cord_window = injection_window(
            cord,
            s,
            half_length_mm=params.window_half_length_mm,
            dilate_inplane_voxels=0,
            spacing=spacing,
        )
        search = _inplane_erode(cord_window, params.t2_exclude_rim_voxels, spacing)
        rim = cord_window & ~search
        detect_in, detect_rim = search, rim
        rim_steps = 1
    site_index = tuple(
        int(np.clip(np.rint(c), 0, n - 1)) for c, n in zip(site, image.shape, strict=True)
    )
    if not (search | rim)[site_index]:
        flags.add("site_outside_cord")

    def abnormal(threshold: float) -> np.ndarray:
        return data < threshold if mode == "iron" else data > threshold

    kept: dict[str, np.ndarray] = {}
    components: tuple[GraftComponent, ...] = ()
    for name, threshold in thresholds.items():
        mask, comps = _detect(
            abnormal(threshold), detect_in, detect_rim, site, spacing, params, rim_steps
        )
        if "reference_unreliable" in ref.flags:  # nothing can be measured against it
            mask = np.zeros_like(mask)
        kept[name] = mask
        if name == "main":
            components = comps
    if any(c.reason == "far_from_site" for c in components):
        flags.add("components_far_from_site")

    core_level = tissue_level = float("nan")
    if mode == "t2" and csf_ref is not None:
        core_level, tissue_level, level_flags = _cyst_core_level(
            data, kept["main"], ref, csf_ref, thresholds["main"], params, noise_sigma
        )
        flags.update(level_flags)

    if params.refine != "none" and kept["main"].any():
        # Seed in graft tissue, not in a cyst (t2), so that the region grows through tissue.
        tissue = kept["main"] & ~(data >= core_level) if mode == "t2" else kept["main"]
        seeds = tissue if tissue.any() else kept["main"]
        refined = _refine(data, seeds, search, thresholds["main"], mode, params)
        refined = _fill_holes_per_slice(refined, spacing) & search
        if rim.any():
            refined |= _inplane_dilate(refined, 1, spacing) & rim & abnormal(thresholds["main"])
        kept["main"] = refined
        kept["strict"] = kept["strict"] & refined
        kept["sensitive"] = kept["sensitive"] | refined

    def detected_at_2_sigma() -> np.ndarray:
        """The lesion found at a fixed 2σ from μ: its extent whatever ``k`` is."""
        found, _ = _detect(
            abnormal(mu + sign * _BACKGROUND_ZONE_K * sigma),
            detect_in,
            detect_rim,
            site,
            spacing,
            params,
            rim_steps,
        )
        return found

    support = None
    if mode == "iron" and params.iron_boundary == "half_contrast":
        support = _touching(kept["sensitive"], kept["main"])
        void_level = _RAYLEIGH_MEAN * (sigma if noise_sigma is None else float(noise_sigma))
        # The lesion's extent for the background is its detection at a fixed μ − 2σ, so that
        # the edge of a void does not move with k (V(k − 1) ≥ V(k) ≥ V(k + 1) stays true).
        extent = detected_at_2_sigma()
        zone = extent if extent.any() else kept["main"]
        background = _local_background(data, cord, zone, mu, spacing)
        # Decided on a lightly smoothed copy (σ = half the finest voxel): a voxel at the edge
        # is half void by definition, so its noise would otherwise toss it in or out.
        half = _smoothed_for_edges(data, spacing) <= 0.5 * (background + void_level)
        for name in ("strict", "main", "sensitive"):
            kept[name] = _grow_to_half(kept[name], half & search, spacing, keep_faint=False)
        kept["strict"] &= kept["main"]
        kept["sensitive"] |= kept["main"]
    if (
        mode == "t2"
        and params.t2_boundary == "half_contrast"
        and params.refine == "none"
        and kept["main"].any()
    ):
        support = _touching(kept["sensitive"], kept["main"])
        # The graft's level and the edge level are fixed whatever k is, so that the band stays
        # nested and V(k − 1) ≥ V(k) ≥ V(k + 1): the level is the median of the interior of the
        # tissue found at μ + 2σ (one voxel in from its partial-volume shell; CSF-like voxels
        # left out), or its upper quartile when it has no interior.
        zone = detected_at_2_sigma()
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
            local = _local_normal_level(data, look & ~abnormal_tissue, zone, mu)
            half_level = max(0.5 * (local + level), local + _BACKGROUND_ZONE_K * sigma)
            half = _smoothed_for_edges(data, spacing) >= half_level
            for name in ("strict", "main", "sensitive"):
                grown = _grow_to_half(kept[name], half & search, spacing)
                if rim.any():
                    grown |= _inplane_dilate(grown, 1, spacing) & rim & kept[name]
                kept[name] = grown
            kept["strict"] &= kept["main"]
            kept["sensitive"] |= kept["main"]

    cyst = np.zeros_like(kept["main"])
    not_graft = cyst
    cyst_grow = cyst_full = float("nan")
    if mode == "t2" and csf_ref is not None and np.isfinite(core_level):
        cyst, shell, cyst_grow = _split_cyst(
            data,
            kept["main"],
            core_level,
            tissue_level,
            ref,
            csf_ref,
            search | rim,
            thresholds["main"],
            spacing,
            params,
        )
        not_graft = cyst | shell
        cyst_full = csf_ref.median if cyst.any() else float("nan")

    graft = kept["main"] & ~not_graft
    strict = kept["strict"] & ~not_graft
    sensitive = kept["sensitive"] & ~not_graft

    if mode == "iron":
        noise = sigma if noise_sigma is None else float(noise_sigma)
        full = noise * _RAYLEIGH_MEAN
        full_source = "reference_sigma" if noise_sigma is None else "noise_sigma"
        if thresholds["main"] < 2.0 * full:
            flags.add("threshold_near_noise_floor")
    else:
        full = float(np.median(data[graft])) if graft.any() else float("nan")
        full_source = "graft_median"
    snr_noise = sigma if noise_sigma is None else float(noise_sigma)
    if snr_noise > 0 and mu / snr_noise < params.min_snr:
        flags.add("low_snr")

    if mode == "t2" and graft.any():
        # Brighter than graft tissue can be, yet not CSF-like: a cyst thinner than the voxel
        # (or oedema) mixed with cord. Intensity cannot tell it from graft, so it is counted in
        # the graft; say so.
        bright = int((graft & (data > full + _SUBVOXEL_CYST_K * snr_noise)).sum())
        if bright >= 3 and bright * float(np.prod(spacing)) >= params.min_component_volume_mm3:
            flags.add("possible_subvoxel_cyst")
    if not graft.any():
        flags.add("no_graft_found")
    else:
        if _touches_window_edge(graft, s, params.window_half_length_mm):
            flags.add("graft_touches_window_edge")
        if mode == "iron":
            outer = _inplane_dilate(graft, 1, spacing) & ~search
            if (outer & abnormal(thresholds["main"])).any():
                flags.add("graft_extends_beyond_search_region")

    levels = GraftLevels(
        normal=mu,
        sigma=sigma,
        threshold=thresholds["main"],
        threshold_strict=thresholds["strict"],
        threshold_sensitive=thresholds["sensitive"],
        full=full,
        full_source=full_source,
        cyst_threshold=core_level,
        cyst_grow_threshold=cyst_grow,
        cyst_full=cyst_full,
    )
    return GraftSegmentation(
        mode=mode,
        graft_mask=graft,
        cyst_mask=cyst,
        graft_mask_strict=strict,
        graft_mask_sensitive=sensitive,
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


def _cyst_core_level(
    data: np.ndarray,
    kept: np.ndarray,
    ref: ReferenceStats,
    csf: ReferenceStats,
    threshold: float,
    params: GraftParams,
    noise_sigma: float | None = None,
) -> tuple[float, float, set[str]]:
    """Level of cyst cores and of graft tissue: cores CSF-like by either rule, never below midway.

    Cores are never below the cord–CSF midpoint.

    ``min(μ_CSF − cyst_csf_k_sigma·σ_n, L + cyst_core_fraction·(μ_CSF − L))`` with ``L`` the
    graft tissue level (median of the kept voxels below ``μ_CSF − cyst_csf_k_sigma·σ_n``; the
    threshold when there are none) and ``σ_n`` the image's noise SD — the ring's own spread only
    when no noise estimate is given, because a real ring mixes CSF with partial volume, roots
    and dura (its spread was 0.57 of the cord level on the 1 mm T2w test scan against a noise
    SD of 0.05, which put the CSF-like level on graft tissue at 0.7 of CSF). NaN (no split)
    when CSF is not brighter than the graft threshold.
    """
    if csf.median <= threshold:
        return float("nan"), float("nan"), {"csf_contrast_low"}
    midpoint = 0.5 * (ref.median + csf.median)
    spread = float(noise_sigma) if noise_sigma else csf.sigma
    by_noise = csf.median - params.cyst_csf_k_sigma * spread
    # The graft tissue level: the kept voxels that are not CSF-like by the noise rule. (It used
    # to be those below the cord–CSF midpoint, which for tissue above the midpoint — graft at
    # 0.65 of the way to CSF, 0.77 of CSF — is its partial-volume rim, and put the cyst level
    # on the tissue.)
    tissue = kept & (data < by_noise)
    tissue_level = float(np.median(data[tissue])) if tissue.any() else threshold
    by_contrast = tissue_level + params.cyst_core_fraction * (csf.median - tissue_level)
    core_level = min(by_noise, by_contrast)
    if core_level < midpoint:
        return midpoint, tissue_level, {"csf_contrast_low"}
    return core_level, tissue_level, set()


def _split_cyst(
    data: np.ndarray,
    kept: np.ndarray,
    core_level: float,
    tissue_level: float,
    ref: ReferenceStats,
    csf: ReferenceStats,
    cord_window: np.ndarray,
    threshold: float,
    spacing: tuple[float, float, float],
    params: GraftParams,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Split CSF-like voxels off the t2 graft; return (cyst, partial-volume shell, level).

    Hysteresis, one cyst at a time. Cores are voxels at or above ``core_level`` (one is
    enough). A provisional cyst grows from them through kept voxels at or above its wall level:
    the cord–CSF midpoint, or the graft-tissue–CSF midpoint when the graft tissue
    (``tissue_level``) is brighter than the cord. Its surrounding tissue
    level is the median of the cord voxels two face-steps outside it along the fine axes (the
    first layer is still partly cyst; thick slices would reach far beyond the graft); the cyst
    is then regrown from its cores through kept voxels at or above the midpoint between that
    level and ``μ_CSF`` — more than half CSF under a linear mix. Cysts under
    ``min_component_volume_mm3`` return to the graft. The boundary level returned is that of
    the largest cyst (NaN when there is none).

    A cyst whose surrounding level is below the graft ``threshold`` sits in normal-appearing
    cord: the kept voxels touching it (26-neighbourhood) are then cord–CSF partial volume, not
    graft, and are returned as the shell to take out of the graft.
    """
    empty = np.zeros_like(kept)
    core = kept & (data >= core_level)
    if not core.any():
        return empty, empty, float("nan")
    # A provisional cyst must stop at its wall whatever surrounds it: half-way to CSF from the
    # normal cord, or from the graft tissue when that is brighter (graft at half the cord–CSF
    # contrast lies on the cord–CSF midpoint, and a 2 mm³ cyst inside it took all of it).
    wall = 0.5 * (ref.median + csf.median)
    if np.isfinite(tissue_level):
        wall = max(wall, 0.5 * (tissue_level + csf.median))
    lowest = min(wall, core_level)
    provisional = ndimage.binary_propagation(
        core, structure=_FULL_CONNECTIVITY, mask=kept & (data >= lowest)
    )
    labels, _ = ndimage.label(provisional, structure=_FULL_CONNECTIVITY)
    voxel_mm3 = float(np.prod(spacing))
    fine = _cross(_fine_axes(spacing))  # the ring stays within a few voxels of fine axes
    cyst = empty.copy()
    shell = empty.copy()
    best_size, best_level = 0, float("nan")
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        box = tuple(
            slice(max(b.start - 3, 0), min(b.stop + 3, n))
            for b, n in zip(box, data.shape, strict=True)
        )
        member = labels[box] == i
        inner = ndimage.binary_dilation(member, fine)
        outer = ndimage.binary_dilation(inner, fine)
        ring = outer & ~inner & cord_window[box] & ~provisional[box]
        values = data[box]
        # The tissue around the cyst: graft when a third of the ring is graft (a small graft
        # around a cyst leaves part of the ring in normal cord, whose level would then call
        # the graft around the cyst partial volume and take it away), else normal cord.
        in_graft = ring & kept[box]
        if ring.any() and in_graft.sum() >= ring.sum() / 3:
            surround = float(np.median(values[in_graft]))
        elif ring.any():
            surround = float(np.median(values[ring]))
        else:
            surround = ref.median
        level = min(0.5 * (surround + csf.median), core_level)
        grown = ndimage.binary_propagation(
            core[box] & member, structure=_FULL_CONNECTIVITY, mask=kept[box] & (values >= level)
        )
        size = int(grown.sum())
        if size * voxel_mm3 >= params.min_component_volume_mm3:
            cyst[box] |= grown
            if surround < threshold:
                touching = ndimage.binary_dilation(grown, _FULL_CONNECTIVITY) & ~grown
                shell[box] |= touching & kept[box]
            if size > best_size:
                best_size, best_level = size, level
    return cyst, shell & ~cyst, best_level


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
    zone = ndimage.binary_dilation(lesion, _FULL_CONNECTIVITY, iterations=2)
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


def _touching(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """``mask`` within one 26-neighbour step of ``seeds``: the partial-volume halo of a lesion.

    Farther voxels of ``mask`` belong to something else that is merely connected to it (on
    axial T2*w, dark tissue along the cord's posterior edge joined a void and tripled its
    partial-volume volume).
    """
    if not seeds.any():
        return np.zeros_like(mask)
    return mask & ndimage.binary_dilation(seeds, _FULL_CONNECTIVITY)


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
    grown = ndimage.binary_propagation(detected & half, structure=_FULL_CONNECTIVITY, mask=half)
    labels, n = ndimage.label(detected, structure=_FULL_CONNECTIVITY)
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
    labels, _ = ndimage.label(grown, structure=_FULL_CONNECTIVITY)
    seed_label = labels[seed]
    return labels == seed_label if seed_label else seeds.copy()
