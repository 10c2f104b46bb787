"""Per-session volume uncertainty and the minimum detectable change between two sessions.

Each session's graft volume comes with a low/high band (threshold sweep and half-voxel surface
bound, see docs/methods.md). The survival analysis reads that band as a 95 % range of the
volume, so its standard uncertainty is ``(high − low) / (2 · 1.96)``. The minimum detectable
change between two sessions at 95 % is then ``1.96 · √(σ_a² + σ_b²)``: the standard error of the
measurement difference (Weir, *J Strength Cond Res* 2005;19:231; Beckerman et al., *Clin
Rehabil* 2001;15:9 for the SEM-based form).
"""

from __future__ import annotations

import math

__all__ = ["Z95", "minimum_detectable_change", "sigma_from_band"]

#: Two-sided 95 % normal quantile.
Z95 = 1.959963984540054


def sigma_from_band(
    volume_mm3: float,
    low_mm3: float | None,
    high_mm3: float | None,
    *,
    floor_mm3: float = 0.0,
    relative_floor: float = 0.02,
) -> float:
    """Standard uncertainty of a volume from its low/high band, read as a 95 % range.

    Parameters
    ----------
    volume_mm3 : float
        The measured volume.
    low_mm3, high_mm3 : float or None
        The band; when either is missing the band is taken as ±``2 · relative_floor``.
    floor_mm3 : float
        Absolute floor, so that a zero volume with a zero band still has an uncertainty (e.g.
        one voxel's volume).
    relative_floor : float
        Floor relative to the volume: a band narrower than this is not believed.

    Returns
    -------
    float
        σ in mm³ (> 0 unless volume and both floors are 0).

    Examples
    --------
    >>> round(sigma_from_band(100.0, 80.4, 119.6), 3)
    10.0
    >>> sigma_from_band(100.0, 100.0, 100.0)
    2.0
    """
    floor = max(float(floor_mm3), relative_floor * abs(float(volume_mm3)))
    if low_mm3 is None or high_mm3 is None:
        return max(floor, 2 * relative_floor * abs(float(volume_mm3)))
    return max(floor, (float(high_mm3) - float(low_mm3)) / (2 * Z95))


def minimum_detectable_change(sigma_a_mm3: float, sigma_b_mm3: float) -> float:
    """Smallest volume change between two sessions that exceeds their noise (95 %).

    Examples
    --------
    >>> round(minimum_detectable_change(10.0, 10.0), 2)
    27.72
    """
    return Z95 * math.hypot(float(sigma_a_mm3), float(sigma_b_mm3))
