"""Parameters of graft detection (:class:`GraftParams`), with the human and rodent defaults."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graftimg.errors import ConfigError

__all__ = ["Boundary", "GraftParams", "Refine"]

Refine = Literal["none", "connected_threshold", "confidence_connected"]
Boundary = Literal["half_contrast", "threshold"]

_Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
_Count = Annotated[int, Field(ge=0)]

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


class GraftParams(BaseModel):
    """Parameters of graft detection, with units in the names (defaults: human scale).

    Use :meth:`for_scale` for the rodent defaults. Every value is recorded in provenance. A
    frozen pydantic model: a value of the wrong type or out of range raises
    :class:`~graftimg.errors.ConfigError` naming the field.

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

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    window_half_length_mm: _Positive = 30.0
    reference_band_mm: _Positive = 10.0
    reference_erode_voxels: _Count = 1
    reference_min_voxels: _Count = 200
    search_dilate_voxels: _Count = 1
    t2_exclude_rim_voxels: _Count = 1
    iron_edge_mm: _Positive = 1.0
    k_sigma: _Positive = 3.0
    band_k_sigma: _NonNegative = 1.0
    min_component_volume_mm3: _NonNegative = 1.0
    site_distance_mm: _NonNegative = 10.0
    csf_ring_gap_voxels: _Count = 1
    csf_ring_width_mm: _Positive = 1.5
    cyst_csf_k_sigma: _NonNegative = 2.0
    cyst_core_fraction: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.75
    min_snr: _NonNegative = 5.0
    refine: Refine = "none"
    iron_boundary: Boundary = "half_contrast"
    t2_boundary: Boundary = "half_contrast"
    confidence_multiplier: _Positive = 2.5
    confidence_iterations: _Count = 3
    confidence_radius_voxels: _Count = 1

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as err:
            raise _config_error(err) from None

    @classmethod
    def for_scale(cls, scale: Literal["human", "rodent"], **overrides: Any) -> GraftParams:
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

        Raises
        ------
        ConfigError
            An unknown scale, or an override of the wrong type or out of range.
        """
        if scale not in _SCALES:
            raise ConfigError(f"scale must be 'human' or 'rodent', got {scale!r}")
        return cls(**{**_SCALES[scale], **overrides})


def _config_error(err: ValidationError) -> ConfigError:
    """One line naming each rejected field, what it must be and the value given."""
    problems = []
    for e in err.errors():
        name = ".".join(map(str, e["loc"])) or "GraftParams"
        value, ctx = e.get("input"), e.get("ctx", {})
        must = {
            "greater_than": "be positive",
            "greater_than_equal": "not be negative",
            "less_than_equal": f"be at most {ctx.get('le', 0):g}",
            "finite_number": "be finite",
            "literal_error": f"be {ctx.get('expected')}",
            "int_type": "be a whole number",
            "float_type": "be a number",
        }.get(e["type"])
        if e["type"] == "extra_forbidden":
            known = ", ".join(GraftParams.model_fields)
            problems.append(f"unknown graft parameter {name!r} (known: {known})")
        elif must is None:
            problems.append(f"{name}: {e['msg']}, got {value!r}")
        else:
            problems.append(f"{name} must {must}, got {value!r}")
    return ConfigError("; ".join(problems))
