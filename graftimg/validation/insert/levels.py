"""Local cord and CSF intensity levels of a host, which a ``t2`` graft's level is set between."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from graftimg.errors import SegmentationError

__all__ = ["Levels", "cord_and_csf_levels"]


@dataclasses.dataclass(frozen=True)
class Levels:
    """Local cord and CSF intensity levels (:func:`cord_and_csf_levels`).

    Attributes
    ----------
    cord : float
        Median of the in-plane-eroded cord in the slices, outside ``exclude``.
    csf : float
        Robust CSF level of the ring just outside the cord.
    n_cord, n_csf : int
        Voxels behind each level.
    ring_median : float
        Plain median of the ring (what a naive estimate would give).
    """

    cord: float
    csf: float
    n_cord: int
    n_csf: int
    ring_median: float


def cord_and_csf_levels(
    image: np.ndarray,
    cord: np.ndarray,
    *,
    spacing: Sequence[float],
    slices: Sequence[int],
    exclude: np.ndarray | None = None,
    ring_width_mm: float = 2.5,
) -> Levels:
    """Cord and CSF levels in some axial slices of an image with a cord mask.

    The cord level is the median of the cord eroded by one voxel in-plane (no partial volume
    with CSF), outside ``exclude``. The CSF level comes from a ring one voxel outside the cord
    and ``ring_width_mm`` wide (in-plane distance). The ring mixes CSF with dura, roots,
    vessels, bone and fat and with partial-volume edge voxels, all darker than CSF where CSF is
    bright (T2w, T2*w), so its plain median sits well below CSF. The robust level is the median
    of the ring voxels brighter than halfway between the cord level and the ring's 95th
    percentile: the bright (CSF) mode, with the percentile rather than the maximum setting the
    cut so that single bright outliers (noise, flow) do not.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Image (RAS+ axes, axial slices along the last).
    cord : (X, Y, Z) ndarray of bool
        Cord mask.
    spacing : sequence of 3 float
        Voxel size in mm.
    slices : sequence of int
        Axial slices to use.
    exclude : (X, Y, Z) ndarray of bool, optional
        Voxels left out of the cord level (e.g. where an insert goes).
    ring_width_mm : float
        Radial width of the CSF ring, in mm.

    Returns
    -------
    Levels

    Raises
    ------
    SegmentationError
        No eroded cord voxel or no ring voxel in these slices.

    Examples
    --------
    >>> img = np.full((30, 30, 4), 100.0)
    >>> yy, xx = np.mgrid[:30, :30]
    >>> disc = (xx - 15) ** 2 + (yy - 15) ** 2 <= 36
    >>> csf = ((xx - 15) ** 2 + (yy - 15) ** 2 <= 100) & ~disc
    >>> img[csf] = 300.0
    >>> img[disc] = 120.0
    >>> cord = np.repeat(disc[:, :, None], 4, axis=2)
    >>> lv = cord_and_csf_levels(img, cord, spacing=(1, 1, 1), slices=[1, 2])
    >>> lv.cord, lv.csf
    (120.0, 300.0)
    """
    image = np.asarray(image, dtype=np.float64)
    cord = np.asarray(cord, dtype=bool)
    slices = [int(k) for k in slices if 0 <= int(k) < image.shape[2]]
    sx, sy = float(spacing[0]), float(spacing[1])
    cross = ndimage.generate_binary_structure(2, 1)
    cord_values, ring_values = [], []
    for k in slices:
        sl = cord[:, :, k]
        if not sl.any():
            continue
        eroded = ndimage.binary_erosion(sl, cross)
        if exclude is not None:
            eroded &= ~np.asarray(exclude)[:, :, k]
        cord_values.append(image[:, :, k][eroded])
        distance = ndimage.distance_transform_edt(~sl, sampling=(sx, sy))
        gap = max(sx, sy) * 1.01
        ring = (distance > gap) & (distance <= gap + ring_width_mm)
        ring_values.append(image[:, :, k][ring])
    cord_v = np.concatenate(cord_values) if cord_values else np.zeros(0)
    ring_v = np.concatenate(ring_values) if ring_values else np.zeros(0)
    if cord_v.size == 0 or ring_v.size == 0:
        raise SegmentationError(
            f"no cord or CSF-ring voxel in slices {slices}",
            hint="place the insert where the manual cord mask is",
        )
    mu_cord = float(np.median(cord_v))
    cut = 0.5 * (mu_cord + float(np.percentile(ring_v, 95.0)))
    bright = ring_v[ring_v >= cut]
    csf = float(np.median(bright)) if bright.size else float(np.median(ring_v))
    return Levels(mu_cord, csf, int(cord_v.size), int(bright.size), float(np.median(ring_v)))
