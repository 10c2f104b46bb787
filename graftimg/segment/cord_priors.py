"""Size priors of the spinal cord, in millimetres, for human and rodent scans.

Every size the cord segmentation uses comes from here, in mm, and is turned into voxels only
where it is used, so that the same code runs on a 1 mm human T2w and a 0.1 mm rat T2*w. Human
cervical cord about 8–9 × 11–14 mm, CSA 75–120 mm² (Sherman et al., AJNR 1990;11:369; Kato et
al., Eur Spine J 2012); rat cord about 2–2.5 × 3–4 mm.

Examples
--------
>>> prior = cord_prior("rodent")
>>> prior.semi_axes_mm
(1.5, 1.1)
>>> prior.minor_mm
1.1
"""

from __future__ import annotations

from dataclasses import dataclass

from graftimg.errors import ConfigError

__all__ = ["CORD_PRIORS", "SCALES", "CordPrior", "cord_prior"]

#: Scales accepted by :func:`graftimg.segment.cord.segment_cord`.
SCALES: tuple[str, ...] = ("human", "rodent")


@dataclass(frozen=True)
class CordPrior:
    """Plausible size and course of the spinal cord at one scale (all lengths in mm).

    Attributes
    ----------
    scale : str
        ``"human"`` or ``"rodent"``.
    semi_axes_mm : tuple of 2 float
        Typical semi-axes of the cord's cross-section along R-L (x) and A-P (y).
    radius_range_mm : tuple of 2 float
        Smallest and largest distance from the cord's centre to its edge that is searched.
    csf_rim_mm : float
        Typical width of the CSF ring around the cord.
    csa_range_mm2 : tuple of 2 float
        Plausible cross-sectional area; slices outside it are flagged ``csa_implausible``.
    detect_scales : tuple of float
        Multiples of ``semi_axes_mm`` tried by the tube detector.
    z_smooth_mm : float
        Length along S-I over which edges and centres are regularised.
    shape_window_mm : float
        Half-length along S-I over which the cord's cross-sectional shape is pooled (median)
        into the shape prior of each slice.
    max_slope : float
        Largest in-plane displacement of the cord's centre per mm along S-I (tangent of the
        largest tilt of the cord against the S-I axis that is searched).
    typical_slope : float
        A displacement per mm along S-I that costs little (tangent of a common tilt).
    """

    scale: str
    semi_axes_mm: tuple[float, float]
    radius_range_mm: tuple[float, float]
    csf_rim_mm: float
    csa_range_mm2: tuple[float, float]
    detect_scales: tuple[float, ...] = (0.75, 1.0, 1.3)
    z_smooth_mm: float = 2.0
    shape_window_mm: float = 5.0
    max_slope: float = 1.0
    typical_slope: float = 0.5

    @property
    def minor_mm(self) -> float:
        """The smaller typical semi-axis, in mm."""
        return float(min(self.semi_axes_mm))

    @property
    def mean_radius_mm(self) -> float:
        """Mean of the typical semi-axes, in mm."""
        return float(sum(self.semi_axes_mm) / 2.0)


CORD_PRIORS: dict[str, CordPrior] = {
    "human": CordPrior(
        scale="human",
        semi_axes_mm=(6.0, 4.0),
        radius_range_mm=(1.0, 10.0),
        csf_rim_mm=2.0,
        csa_range_mm2=(30.0, 125.0),
        z_smooth_mm=2.0,
        shape_window_mm=5.0,
    ),
    "rodent": CordPrior(
        scale="rodent",
        semi_axes_mm=(1.5, 1.1),
        radius_range_mm=(0.25, 2.6),
        csf_rim_mm=0.3,
        csa_range_mm2=(1.0, 14.0),
        z_smooth_mm=0.5,
        shape_window_mm=1.25,
    ),
}


def cord_prior(scale: str) -> CordPrior:
    """Return the :class:`CordPrior` of ``scale`` (``"human"`` or ``"rodent"``).

    Raises
    ------
    ConfigError
        If ``scale`` is not one of :data:`SCALES`.
    """
    key = str(scale).strip().lower()
    if key not in CORD_PRIORS:
        raise ConfigError(f"unknown scale {scale!r}", hint=f"use one of {', '.join(SCALES)}")
    return CORD_PRIORS[key]
