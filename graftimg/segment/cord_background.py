"""What a slice of cord would look like without a lesion, from the cord just beyond it.

Used by the graft segmentation (each voxel's level for the half-contrast edge) and by the
partial-volume measurement (:func:`graftimg.measure.graft.partial_volume_mm3`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = ["along_cord_background"]


def along_cord_background(
    image: np.ndarray,
    lesion: np.ndarray,
    centerline_voxels: np.ndarray,
    slices: Sequence[int],
    *,
    n_side: int,
) -> dict[int, np.ndarray]:
    """What each axial slice would look like without the lesion, from the cord beyond it.

    On each side of ``lesion`` along axis 2 (the cord axis), the ``n_side`` nearest slices that
    hold none of it are shifted in-plane onto their mean
    centerline position and averaged. The background of slice ``z`` is each side's average
    shifted onto the centerline at ``z``, interpolated linearly in ``z`` between the two sides
    (one side alone when the other is outside the image or off the centerline).

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical image.
    lesion : (X, Y, Z) ndarray of bool
        Voxels that must not enter the background (give the lesion with a margin: partial
        volume reaches one voxel past a mask).
    centerline_voxels : (Z, 2) ndarray
        In-plane centerline position per slice, in voxels; NaN off the cord.
    slices : sequence of int
        Slices to return a background for.
    n_side : int
        Slices averaged on each side.

    Returns
    -------
    dict of int to (X, Y) ndarray
        Background per requested slice; slices without one (no side found, or off the
        centerline) are absent.

    Examples
    --------
    >>> image = np.tile(np.arange(5.0)[:, None, None], (1, 5, 20))
    >>> lesion = np.zeros(image.shape, bool)
    >>> lesion[1:4, 1:4, 8:12] = True
    >>> image[lesion] = 50.0
    >>> line = np.full((20, 2), 2.0)
    >>> along_cord_background(image, lesion, line, [10], n_side=2)[10][:, 2].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0]
    """
    n_z = image.shape[2]
    on_cord = np.all(np.isfinite(centerline_voxels), axis=1)
    in_lesion = lesion.any(axis=(0, 1))
    hit = np.flatnonzero(in_lesion)
    if hit.size == 0:
        return {}
    sides = []
    for step, start in ((-1, int(hit[0]) - 1), (1, int(hit[-1]) + 1)):
        picked: list[int] = []
        z = start
        while len(picked) < n_side and 0 <= z < n_z:
            if on_cord[z] and not in_lesion[z]:
                picked.append(z)
            z += step
        if picked:
            anchor = centerline_voxels[picked].mean(axis=0)
            planes = [
                ndimage.shift(
                    image[..., z].astype(np.float64),
                    anchor - centerline_voxels[z],
                    order=1,
                    mode="nearest",
                )
                for z in picked
            ]
            sides.append((float(np.mean(picked)), anchor, np.mean(planes, axis=0)))
    out: dict[int, np.ndarray] = {}
    if not sides:
        return out
    for z in slices:
        if not on_cord[z]:
            continue
        moved = [
            (zc, ndimage.shift(plane, centerline_voxels[z] - anchor, order=1, mode="nearest"))
            for zc, anchor, plane in sides
        ]
        if len(moved) == 1:
            out[int(z)] = moved[0][1]
        else:
            (z0, b0), (z1, b1) = moved
            t = float(np.clip((z - z0) / (z1 - z0), 0.0, 1.0))
            out[int(z)] = (1.0 - t) * b0 + t * b1
    return out
