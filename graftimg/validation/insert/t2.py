"""The ``t2`` insert: textured graft tissue between the cord and CSF levels, optionally a cyst."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import ndimage

from graftimg.errors import ConfigError, SegmentationError
from graftimg.validation.insert.host import ResampledHost
from graftimg.validation.insert.levels import cord_and_csf_levels
from graftimg.validation.insert.placement import _fits, _slide, _sphere_directions
from graftimg.validation.insert.spec import InsertSpec, Placed, _Site
from graftimg.validation.insert.truth import _box_around, _box_means, _in_ellipsoid, _truth_factors

__all__ = ["place_t2"]

#: Correlation length (Gaussian σ) of the graft texture, in mm.
_TEXTURE_MM = 1.5


def place_t2(
    rs: ResampledHost,
    site: _Site,
    spec: InsertSpec,
    *,
    volume: float,
    half_z_max: float,
    rng: np.random.Generator,
) -> Placed:
    """Size, fit and place a ``t2`` graft at ``site`` (``none``: the same draws, no insert).

    The ellipsoid (:func:`_t2_axes`) shrinks in-plane until it fits the manual cord, then moves
    to ``spec.position``; with ``spec.mode == "t2"`` the graft (and cyst) is inserted
    (:func:`_insert_t2`).

    Raises
    ------
    ConfigError
        No ellipsoid of the requested volume fits the cord at this slice.
    """
    u = rng.uniform(0.45, 0.75)
    semi, volume = _t2_axes(site.half_widths_mm * u, volume, half_z_max, site.rotation)
    for _ in range(20):
        if _fits(rs, site.centroid_mm, _surface_t2(semi, site.rotation)):
            break
        shrunk = semi[:2] * 0.88
        semi, volume = _t2_axes(shrunk, volume, half_z_max, site.rotation)
    else:
        raise ConfigError(
            f"no ellipsoid of {spec.n_voxels} voxels fits the manual cord of host "
            f"{rs.host_name} at slice {site.k}"
        )
    surface = _surface_t2(semi, site.rotation)
    centre = _slide(rs, site, surface, spec.position, rng)
    info: dict[str, Any] = {"semi_axes_mm": semi.tolist(), "inserted_volume_mm3": volume}
    image = np.array(rs.image)
    truth: dict[str, np.ndarray] = {}
    if spec.mode == "t2":
        image, truth, t2_info = _insert_t2(rs, image, centre, semi, site, spec, rng)
        info.update(t2_info)
    return Placed(image, truth, centre, info)


def _surface_t2(semi_axes: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    return (_sphere_directions() * semi_axes[None, :]) @ rotation.T


def _t2_axes(
    in_plane: np.ndarray, volume: float, half_z_max: float, rotation: np.ndarray
) -> tuple[np.ndarray, float]:
    """Semi-axes (a, b, c) of an ellipsoid of ``volume`` with in-plane ``(a, b)``.

    Elongated along the cord (``c ≥ 1.2·max(a, b)``, in-plane axes shrunk if needed); its
    half-extent along scanner z (axes ``rotation``: the cord's tilt) at most ``half_z_max``
    (``c`` and the volume shrink if the in-plane axes cannot hold it).
    """
    a, b = (float(v) for v in in_plane)
    c = 3.0 * volume / (4.0 * np.pi * a * b)
    if c < 1.2 * max(a, b):
        # shrink a, b by s and grow c by 1/s² until c = 1.2·max(a, b)
        s = (c / (1.2 * max(a, b))) ** (1.0 / 3.0)
        a, b, c = a * s, b * s, c / s**2
    r = np.asarray(rotation, float)[2]
    room = half_z_max**2 - (r[0] * a) ** 2 - (r[1] * b) ** 2
    c_max = math.sqrt(max(room, 0.0)) / max(abs(r[2]), 1e-6)
    if c > c_max:
        c = max(c_max, 0.5 * min(a, b))
        volume = 4.0 / 3.0 * np.pi * a * b * c
    return np.array([a, b, c]), float(volume)


def _insert_t2(
    rs: ResampledHost,
    image: np.ndarray,
    centre: np.ndarray,
    semi: np.ndarray,
    site: _Site,
    spec: InsertSpec,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    shape = image.shape
    rotation = site.rotation
    cyst_semi = None
    cyst_shift = np.zeros(3)
    if spec.cyst:
        ratio = rng.uniform(0.35, 0.6)
        cyst_semi = semi * ratio
        if rng.uniform() < 0.5:  # towards one end of the graft, inside it
            sign = 1.0 if rng.uniform() < 0.5 else -1.0
            cyst_shift = sign * 0.9 * (semi[2] - cyst_semi[2]) * rotation[:, 2]

    def classes(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        graft = _in_ellipsoid(x, y, z, semi, rotation)
        if cyst_semi is None:
            return np.stack([graft, np.zeros_like(graft)]).astype(np.float32)
        cyst = graft & _in_ellipsoid(x, y, z, cyst_semi, rotation, cyst_shift)
        return np.stack([graft & ~cyst, cyst]).astype(np.float32)

    box = _box_around(rs.affine, shape, centre, float(semi.max()))
    assert box is not None
    fractions = _box_means(rs.affine, box, _truth_factors(rs.spacing), centre, classes)
    graft = np.zeros(shape)
    cyst = np.zeros(shape)
    graft[box], cyst[box] = fractions[0], fractions[1]
    touched = (graft + cyst) > 0
    zs = np.flatnonzero(touched.any(axis=(0, 1)))
    reach = math.ceil(2.0 / rs.spacing[2])
    slices = range(int(zs.min()) - reach, int(zs.max()) + reach + 1)
    levels = cord_and_csf_levels(
        rs.image, rs.cord, spacing=rs.spacing, slices=slices, exclude=touched
    )
    if levels.csf <= levels.cord:
        raise SegmentationError(
            f"the CSF around the cord of host {rs.host_name} ({levels.csf:.4g}) is not "
            f"brighter than the cord ({levels.cord:.4g}): a t2 graft needs a T2-weighted host",
            hint="use a T2w or T2*w host for t2 grafts",
        )
    tissue = levels.cord + spec.fraction * (levels.csf - levels.cord)
    amplitude = rng.uniform(0.05, 0.10) if spec.texture is None else float(spec.texture)
    white = rng.standard_normal(tuple(s.stop - s.start for s in box))
    smooth = ndimage.gaussian_filter(white, np.asarray(_TEXTURE_MM) / np.asarray(rs.spacing))
    smooth /= max(float(smooth.std()), 1e-12)
    texture = np.ones(shape)
    texture[box] = 1.0 + amplitude * smooth
    out = image + graft * (tissue * texture - levels.cord) + cyst * (levels.csf - levels.cord)
    info = {
        "fraction": spec.fraction,
        "cyst": spec.cyst,
        "cord_level": levels.cord,
        "csf_level": levels.csf,
        "csf_ring_median": levels.ring_median,
        "n_cord_level_voxels": levels.n_cord,
        "n_csf_level_voxels": levels.n_csf,
        "tissue_level": tissue,
        "texture_amplitude": amplitude,
        "cyst_semi_axes_mm": None if cyst_semi is None else cyst_semi.tolist(),
        "cyst_at_end": bool(np.any(cyst_shift)),
    }
    return np.clip(out, 0.0, None), {"graft": graft, "cyst": cyst}, info
