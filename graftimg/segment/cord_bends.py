"""Give back to the cord the abnormal tissue its contour bent around.

A graft, a lesion or a cyst inside the cord changes its intensity: bright intramedullary tissue on
T2w sits between the cord's and the CSF's level, a dark iron-oxide void below the cord's. The
per-slice contour (:mod:`graftimg.segment.cord_slices`) follows the first clear edge of the
contrast's polarity and can stop at the abnormal tissue instead of at the CSF, so the graft site
ends up "outside the cord". The cord itself changes slowly along its length, so such a bend shows
as a dent: in a few slices the contour lies well inside where the slices above and below put the
cord's edge.

:func:`fill_bends` finds and fills those dents, in a frame that follows the cord:

1. rays from the centreline (the slices' centroids; in a second pass, slices with a dent take
   their centre from the slices without) give the mask's radius per slice and angle;
2. the radius expected from the neighbours is, on each ray angle, the lower of the largest
   radii above and below within half of ``window_mm``: a dent shorter than the window is
   lifted to the rims that bound it on both sides; a smooth change (an enlargement) and the
   slices at either end of the cord are left alone;
3. a dent is a run of at least about 20° of rays lying inside the expected edge by at least
   1.5 voxels and 15 % of it, joined (hysteresis) by the shallower dents (0.5 voxel) around
   it; its rays are filled up to the expected edge, and the slice's holes closed, when CSF
   lies just beyond that edge (at least half-way from the cord's level to the CSF's): the CSF
   ring is intact, so the tissue between the contour and the CSF is the cord's. Where the cord
   is compressed there is no CSF beyond, and the dent stays.

Filled slices are reported (``cord_bends_around_abnormality`` in
:func:`graftimg.segment.cord.segment_cord`): the contour could not see the cord's edge there on
its own.

Examples
--------
A cord (dark) in a CSF ring (bright) whose contour missed a bright lesion in slices 8–11:

>>> import numpy as np
>>> from graftimg.segment.cord_priors import cord_prior
>>> x, y = np.mgrid[:40, :40] - 20.0
>>> r = np.hypot(x, y)
>>> image = np.repeat(np.where(r < 5, 300.0, np.where(r < 8, 900.0, 200.0))[:, :, None], 20, 2)
>>> mask = np.repeat((r < 5)[:, :, None], 20, axis=2)
>>> mask[:, :, 8:12] &= x[:, :, None] < 1  # the contour stopped at a lesion on the right
>>> human = cord_prior("human")
>>> filled = fill_bends(image, mask, spacing=(1.0, 1.0, 1.0), polarity=-1, prior=human)
>>> bool(filled.mask[:, :, 8:12].sum() == (r < 5).sum() * 4), filled.slices
(True, (8, 9, 10, 11))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from graftimg.segment.cord_priors import CordPrior

__all__ = ["BendFill", "fill_bends"]

#: A dent counts when the contour lies this many in-plane voxels inside the expected edge ...
_DENT_VOXELS = 1.5
#: ... and this fraction of the expected radius.
_DENT_FRACTION = 0.15
#: Shallower dents joined to such a dent (along the cord or around it) count too.
_SHALLOW_VOXELS = 1.0
#: Beyond the expected edge, CSF means at least this far from the cord's level to the CSF's.
_CSF_LEVEL = 0.5


@dataclass(frozen=True)
class BendFill:
    """The cord mask with its dents filled, and where they were.

    Attributes
    ----------
    mask : (X, Y, Z) ndarray of bool
        The cord with the filled dents.
    slices : tuple of int
        Axial slices where voxels were added.
    filled_mm3 : float
        Volume added, in mm³.
    filled_fraction : (Z,) ndarray of float
        Area added in each slice over the slice's filled area (0 where nothing was added).
    """

    mask: np.ndarray
    slices: tuple[int, ...]
    filled_mm3: float
    filled_fraction: np.ndarray


def fill_bends(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    spacing: tuple[float, float, float],
    polarity: int,
    prior: CordPrior,
    n_angles: int = 72,
    window_mm: float | None = None,
) -> BendFill:
    """Fill the dents of a cord mask that abnormal tissue inside the cord caused.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical RAS+ image (axial slices along axis 2).
    mask : (X, Y, Z) ndarray of bool
        The cord as traced.
    spacing : tuple of 3 float
        Voxel size in mm.
    polarity : int
        ``+1`` if the cord is brighter than CSF, ``-1`` if darker.
    prior : CordPrior
        Size prior (search reach and CSF rim width).
    n_angles : int, optional
        Rays per slice.
    window_mm : float, optional
        Length along S-I over which the cord's outline is expected to stay smooth; dents
        shorter than this are filled. Default: six mean cord radii (30 mm human, 7.8 mm rat).

    Returns
    -------
    BendFill
        The filled mask and where it changed.
    """
    sx, sy, sz = (float(s) for s in spacing)
    mask = np.asarray(mask, dtype=bool)
    out = mask.copy()
    n_z = mask.shape[2]
    nothing = BendFill(out, (), 0.0, np.zeros(n_z))
    cord = np.flatnonzero(mask.any(axis=(0, 1)))
    if len(cord) < 3:
        return nothing
    first, last = int(cord[0]), int(cord[-1]) + 1
    window = 6.0 * prior.mean_radius_mm if window_mm is None else float(window_mm)
    half = max(1, round(0.5 * window / sz))

    sub = mask[:, :, first:last]
    counts = sub.sum(axis=(0, 1)).astype(float)
    present = counts > 0
    centroids = (
        np.stack(
            [np.arange(sub.shape[0]) @ sub.sum(axis=1), np.arange(sub.shape[1]) @ sub.sum(axis=0)],
            axis=1,
        )
        / np.maximum(counts, 1)[:, None]
    )
    # the centreline: the slices' centroids, except where a dent pulls them (second pass)
    usable = present.copy()
    step = min(sx, sy) / 3.0
    radii = np.arange(0.0, prior.radius_range_mm[1] + prior.csf_rim_mm + step, step)
    angles = 2 * np.pi * np.arange(n_angles) / n_angles
    n_sub = last - first
    sector = 2 * max(1, round(n_angles * 7.5 / 360.0)) + 1  # a dent spans about 20° of rays
    for _ in range(2):
        centres = centroids.copy()
        if not usable.all():
            idx = np.flatnonzero(usable) if usable.any() else np.flatnonzero(present)
            for axis in range(2):
                centres[:, axis] = np.interp(np.arange(n_sub), idx, centroids[idx, axis])
        coords = np.empty((3, n_sub, n_angles, len(radii)))
        coords[0] = centres[:, 0, None, None] + radii * np.cos(angles)[:, None] / sx
        coords[1] = centres[:, 1, None, None] + radii * np.sin(angles)[:, None] / sy
        coords[2] = np.arange(n_sub)[:, None, None]
        inside = ndimage.map_coordinates(sub.astype(np.float32), coords, order=0, cval=0.0) > 0.5
        # the mask's radius on each ray: where the ray first leaves it (0 if it starts outside)
        exits = (~inside).any(axis=2)
        first_exit = np.where(exits, np.argmax(~inside, axis=2), len(radii) - 1)
        traced = np.where(inside[:, :, 0], radii[first_exit], 0.0)
        # the edge expected from the neighbours: the lower of the highest rims above and below
        # within half the window (none beyond the cord's ends: end slices are never bounded)
        padded = np.pad(traced, ((half, half), (0, 0)))
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1, axis=0)
        rims = np.minimum(windows[..., :half].max(axis=-1), windows[..., half + 1 :].max(axis=-1))
        expected = np.maximum(traced, rims)
        depth = expected - traced
        dent = (depth >= _DENT_VOXELS * max(sx, sy)) & (depth >= _DENT_FRACTION * expected)
        # opening over the angles (circular): isolated rays are noise, not a dent
        dent = ndimage.minimum_filter1d(dent.astype(np.uint8), sector, axis=1, mode="wrap")
        dent = ndimage.maximum_filter1d(dent, sector, axis=1, mode="wrap").astype(bool)
        # hysteresis: shallower dents next to a clear one (the tapering ends of a lesion,
        # the flanks of its sector) belong to it
        shallow = (depth >= _SHALLOW_VOXELS * max(sx, sy)) & (
            depth >= 0.5 * _DENT_FRACTION * expected
        )
        labels, _ = ndimage.label(shallow)
        kept = np.unique(labels[dent & shallow])
        dent = np.isin(labels, kept) & shallow
        if not dent.any():
            return nothing
        usable = present & ~dent.any(axis=1)
    coords[2] += first

    # CSF just beyond the expected edge: the dent lies inside an intact CSF ring
    profiles = ndimage.map_coordinates(
        np.asarray(image, dtype=np.float32), coords, order=1, mode="nearest"
    )
    r = radii[None, None, :]
    cord_level = np.array(
        [
            np.median(image[:, :, first + i][sub[:, :, i]]) if present[i] else np.nan
            for i in range(n_sub)
        ]
    )
    ring = (r >= expected[:, :, None]) & (r <= expected[:, :, None] + prior.csf_rim_mm)
    beyond = np.where(ring, -polarity * profiles, -np.inf).max(axis=2) * -polarity
    csf_level = np.nanpercentile(
        np.where(ring, profiles, np.nan).reshape(n_sub, -1), 50 - polarity * 40, axis=1
    )
    span = csf_level - cord_level
    with np.errstate(invalid="ignore", divide="ignore"):
        level = (beyond - cord_level[:, None]) / span[:, None]
    clear = np.isfinite(level) & (-polarity * span[:, None] > 0) & (level >= _CSF_LEVEL)
    # one decision per dent (a lesion is one object): filled when most of its rays see CSF
    n_clear = ndimage.sum_labels(clear & dent, labels, kept)
    n_rays = ndimage.sum_labels(dent, labels, kept)
    fill = dent & np.isin(labels, kept[n_clear >= 0.5 * n_rays])
    if not fill.any():
        return nothing

    filled_radii = np.where(fill, expected, traced)
    gx = np.arange(mask.shape[0])[:, None]
    gy = np.arange(mask.shape[1])[None, :]
    fraction = np.zeros(n_z)
    slices = []
    d_theta = 2 * np.pi / n_angles
    for i in np.flatnonzero(fill.any(axis=1)):
        k = first + int(i)
        dx = (gx - centres[i, 0]) * sx
        dy = (gy - centres[i, 1]) * sy
        position = np.mod(np.arctan2(dy, dx), 2 * np.pi) / d_theta
        i0 = np.floor(position).astype(np.intp) % n_angles
        w = position - np.floor(position)
        boundary = (1 - w) * filled_radii[i, i0] + w * filled_radii[i, (i0 + 1) % n_angles]
        # only the sectors of filled rays grow
        grow = fill[i, i0] | fill[i, (i0 + 1) % n_angles]
        grown = ndimage.binary_fill_holes((np.hypot(dx, dy) <= boundary) & grow | mask[:, :, k])
        added = grown & ~mask[:, :, k]
        if added.any():
            out[:, :, k] = grown
            fraction[k] = added.sum() / out[:, :, k].sum()
            slices.append(k)
    volume = float((out.sum() - mask.sum()) * sx * sy * sz)
    return BendFill(out, tuple(slices), volume, fraction)
