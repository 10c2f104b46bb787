"""The ``iron`` insert: a deposit whose dipole field dephases the voxels around it (blooming)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graftimg.errors import ConfigError
from graftimg.phantom.iron import dipole_phase_xyz, in_void_xyz, void_radius_mm, void_volume_mm3
from graftimg.validation.insert.host import ResampledHost
from graftimg.validation.insert.placement import _fits, _slide, _sphere_directions
from graftimg.validation.insert.spec import InsertSpec, Placed, _Site
from graftimg.validation.insert.truth import _box_around, _box_means, _truth_factors

__all__ = ["place_iron"]

#: Largest dipole-phase change across a voxel left un-sub-sampled (as the phantom renderer).
_PHASE_STEP_RAD = 0.25


def place_iron(
    rs: ResampledHost,
    site: _Site,
    spec: InsertSpec,
    *,
    volume: float,
    half_z_max: float,
    rng: np.random.Generator,
) -> Placed:
    """Size, fit and place an ``iron`` deposit at ``site`` and apply its signal loss.

    The core takes a random share of the void; the dipole constant ``K`` gives the requested
    void volume (:func:`_void_k_for_volume`), which shrinks by 15 % steps until the void fits the
    cord, the window and the manual mask. The image is multiplied by the voxel attenuation
    (:func:`_iron_attenuation`); the truth is the signal loss ``1 − attenuation``.

    Raises
    ------
    ConfigError
        No void of the requested volume fits the host.
    """
    core_share = rng.uniform(0.25, 0.5)
    r_max = 0.85 * float(site.half_widths_mm.min())
    for _ in range(40):
        core = (core_share * 3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0)
        k_mm3 = _void_k_for_volume(volume, core)
        reach_xy = max(core, k_mm3 ** (1.0 / 3.0))
        reach_z = max(core, (2.0 * k_mm3) ** (1.0 / 3.0))
        if (
            reach_xy <= r_max
            and reach_z <= half_z_max
            and _fits(rs, site.centroid_mm, _surface_iron(k_mm3, core))
        ):
            break
        volume *= 0.85
    else:
        raise ConfigError(f"no void of {spec.n_voxels} voxels fits host {rs.host_name}")
    centre = _slide(rs, site, _surface_iron(k_mm3, core), spec.position, rng)
    attenuation = _iron_attenuation(rs.affine, rs.image.shape, centre, k_mm3, core)
    info = {
        "core_radius_mm": core,
        "dipole_constant_mm3": k_mm3,
        "void_analytic_mm3": void_volume_mm3(k_mm3, core),
        "inserted_volume_mm3": void_volume_mm3(k_mm3, core),
    }
    return Placed(
        np.array(rs.image) * attenuation,
        {"loss": 1.0 - attenuation},
        centre,
        info,
        residual_scale=attenuation,
    )


def _surface_iron(k_mm3: float, core_mm: float) -> np.ndarray:
    d = _sphere_directions()
    return d * void_radius_mm(d[:, 2], k_mm3, core_mm)[:, None]


def _void_k_for_volume(volume_mm3: float, core_mm: float) -> float:
    """``K`` whose void (core ``core_mm``) has ``volume_mm3`` (bisection; 0 if the core is it)."""
    if void_volume_mm3(0.0, core_mm) >= volume_mm3:
        return 0.0
    lo, hi = 0.0, float(volume_mm3)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if void_volume_mm3(mid, core_mm) < volume_mm3:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _iron_attenuation(
    affine: np.ndarray, shape: Sequence[int], centre: np.ndarray, k_mm3: float, core: float
) -> np.ndarray:
    """``|mean over sub-samples of (0 in the void, exp(iφ) outside)|`` per voxel (1 far away)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    thickest = float(spacing.max())
    reach = (6.0 * k_mm3 * thickest / _PHASE_STEP_RAD) ** 0.25 if k_mm3 > 0 else 0.0
    reach = max(reach, core, (2.0 * k_mm3) ** (1.0 / 3.0)) + thickest
    out = np.ones(tuple(shape))
    box = _box_around(affine, shape, centre, reach)
    if box is None:
        return out

    def signal(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        void = in_void_xyz(x, y, z, k_mm3, core)
        phase = dipole_phase_xyz(x, y, z, k_mm3)
        return np.where(void, 0.0, np.exp(1j * phase))

    out[box] = np.abs(_box_means(affine, box, _truth_factors(spacing), centre, signal))
    return np.clip(out, 0.0, 1.0)
