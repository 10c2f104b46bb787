"""Where an insert goes: the local cord geometry at a slice and a place in its cross-section."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from graftimg.validation.insert.grid import _apply
from graftimg.validation.insert.host import ResampledHost
from graftimg.validation.insert.spec import _Site

__all__: list[str] = []


def _local_site(rs: ResampledHost, k: int) -> _Site:
    cord = rs.cord
    slices = [j for j in range(k - 3, k + 4) if 0 <= j < cord.shape[2] and cord[:, :, j].any()]
    cents = np.array([[*np.argwhere(cord[:, :, j]).mean(axis=0).tolist(), j] for j in slices])
    world = _apply(rs.affine, cents)
    if len(world) >= 2:
        tangent = np.polyfit(world[:, 2], world[:, :2], 1)[0]
        e3 = np.array([tangent[0], tangent[1], 1.0])
    else:
        e3 = np.array([0.0, 0.0, 1.0])
    e3 /= np.linalg.norm(e3)
    e1 = np.array([1.0, 0.0, 0.0]) - e3[0] * e3
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    xy = np.argwhere(cord[:, :, k])
    centroid = _apply(rs.affine, np.array([[*xy.mean(axis=0), k]]))[0]
    widths = []
    for e in (e1, e2):
        # Half-width along e through the centroid: walk until the mask falls below 0.5.
        steps = np.arange(0.0, 20.0, 0.1)
        reach = []
        for sign in (1.0, -1.0):
            pts = centroid[None, :] + sign * steps[:, None] * e[None, :]
            f = _fraction_at(rs, pts)
            out = np.flatnonzero(f < 0.5)
            reach.append(steps[out[0]] if out.size else steps[-1])
        widths.append(0.5 * (reach[0] + reach[1]))
    return _Site(k, centroid, np.stack([e1, e2, e3], axis=1), np.array(widths))


def _fraction_at(rs: ResampledHost, points_mm: np.ndarray) -> np.ndarray:
    idx = _apply(np.linalg.inv(rs.affine), np.asarray(points_mm, float)).T
    return ndimage.map_coordinates(rs.cord_fraction, idx, order=1, mode="constant", cval=0.0)


def _sphere_directions(n_theta: int = 12, n_phi: int = 24) -> np.ndarray:
    theta = (np.arange(n_theta) + 0.5) / n_theta * np.pi
    phi = np.arange(n_phi) / n_phi * 2 * np.pi
    t, p = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)


def _fits(rs: ResampledHost, centre: np.ndarray, surface: np.ndarray) -> bool:
    return bool(np.all(_fraction_at(rs, centre[None, :] + surface) >= 0.5))


def _slide(
    rs: ResampledHost, site: _Site, surface: np.ndarray, position: str, rng: np.random.Generator
) -> np.ndarray:
    """Centre of the insert for ``position`` (assumes it fits at the centroid)."""
    angle = rng.uniform(0.0, 2 * np.pi)
    direction = math.cos(angle) * site.rotation[:, 0] + math.sin(angle) * site.rotation[:, 1]
    if position == "centre":
        return site.centroid_mm
    lo, hi = 0.0, float(site.half_widths_mm.max()) + 1.0
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        if _fits(rs, site.centroid_mm + mid * direction, surface):
            lo = mid
        else:
            hi = mid
    shift = lo if position == "edge" else 0.5 * lo
    return site.centroid_mm + shift * direction
