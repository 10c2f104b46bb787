"""Agreement between two masks on the same grid: Dice, surface distances, volume similarity.

Definitions follow Taha & Hanbury, *BMC Med Imaging* 2015;15:29 (Dice, Hausdorff, HD95, mean
surface distance; both volume-similarity definitions named). Surface distances are in mm
(``spacing`` is explicit) and are measured between **boundary voxels**: the voxels of a mask with
at least one face-neighbour outside it (the array border counts as outside). For each boundary
voxel of A, the distance to the nearest boundary voxel of B (voxel centre to voxel centre,
``scipy.ndimage.distance_transform_edt`` with ``sampling=spacing``), and the same from B to A;
both lists are merged. HD = max, HD95 = 95th percentile (numpy's linear interpolation), MASD =
mean.

Empty masks, stated once for all functions here:

- Dice, volume similarities: both empty → NaN (undefined: nothing to compare); one empty → the
  formula's value (Dice 0, Taha-Hanbury similarity 0, signed difference ±2).
- Surface distances: either mask empty → NaN (no surface to measure from). The caller flags it.
- ``relative_volume_error``: empty truth → NaN.
"""

from __future__ import annotations

import numpy as np

from graftimg.errors import DimensionError
from graftimg.spacing import validated_spacing

__all__ = [
    "dice",
    "hausdorff95_mm",
    "hausdorff_mm",
    "mean_surface_distance_mm",
    "relative_volume_error",
    "surface_distances_mm",
    "volume_similarity",
    "volume_similarity_signed",
]


def _pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a).astype(bool, copy=False)
    b = np.asarray(b).astype(bool, copy=False)
    if a.ndim != 3 or b.ndim != 3:
        raise DimensionError(f"masks must be 3D (X, Y, Z) arrays, got {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise DimensionError(
            f"masks must share one grid, got shapes {a.shape} and {b.shape}; "
            "resample one onto the other first"
        )
    return a, b


def _voxel_counts(a, b) -> tuple[int, int]:
    """Voxels in each of two masks on one grid."""
    a, b = _pair(a, b)
    return int(a.sum()), int(b.sum())


def dice(a, b) -> float:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)``.

    Parameters
    ----------
    a, b : (X, Y, Z) ndarray of bool
        Masks on the same grid.

    Returns
    -------
    float
        In [0, 1]; NaN if both masks are empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4, 4), bool); a[0:2] = True
    >>> b = np.zeros((4, 4, 4), bool); b[1:3] = True
    >>> dice(a, b)
    0.5
    """
    a, b = _pair(a, b)
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return float("nan")
    return 2.0 * int(np.count_nonzero(a & b)) / total


def _boundary(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_erosion, generate_binary_structure

    interior = binary_erosion(mask, structure=generate_binary_structure(3, 1), border_value=0)
    return mask & ~interior


def surface_distances_mm(a, b, *, spacing) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances between two masks, in mm.

    Parameters
    ----------
    a, b : (X, Y, Z) ndarray of bool
        Masks on the same grid.
    spacing : sequence of 3 float
        Voxel size (sx, sy, sz) in mm.

    Returns
    -------
    d_ab : ndarray
        For each boundary voxel of A, the distance to the nearest boundary voxel of B.
    d_ba : ndarray
        For each boundary voxel of B, the distance to the nearest boundary voxel of A.
        Both are empty if either mask is empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((5, 5, 5), bool); a[2, 2, 2] = True
    >>> b = np.zeros((5, 5, 5), bool); b[2, 2, 4] = True
    >>> surface_distances_mm(a, b, spacing=(1, 1, 0.5))
    (array([1.]), array([1.]))
    """
    from scipy.ndimage import distance_transform_edt

    sp = validated_spacing(spacing)
    a, b = _pair(a, b)
    if not a.any() or not b.any():
        return np.empty(0), np.empty(0)
    # Crop to the union's bounding box plus one empty voxel: distances between boundary voxels
    # do not depend on the rest, and the padding keeps the array border counting as outside.
    idx = np.nonzero(a | b)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
    ba = _boundary(np.pad(a[box], 1))
    bb = _boundary(np.pad(b[box], 1))
    d_to_b = distance_transform_edt(~bb, sampling=sp)
    d_to_a = distance_transform_edt(~ba, sampling=sp)
    return d_to_b[ba], d_to_a[bb]


def _merged_statistic(a, b, spacing, statistic) -> float:
    """``statistic`` of both directions' surface distances merged; NaN if a mask is empty."""
    d_ab, d_ba = surface_distances_mm(a, b, spacing=spacing)
    if d_ab.size == 0:
        return float("nan")
    return float(statistic(np.concatenate([d_ab, d_ba])))


def hausdorff_mm(a, b, *, spacing) -> float:
    """Hausdorff distance in mm: the largest surface distance, both directions.

    Parameters
    ----------
    a, b, spacing
        Two masks on one grid and its voxel size, as in :func:`surface_distances_mm`.

    Returns
    -------
    float
        The largest distance in mm; NaN if either mask is empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((6, 6, 6), bool); a[1:4, 1:4, 1:4] = True
    >>> hausdorff_mm(a, np.roll(a, 1, axis=0), spacing=(0.5, 1, 1))
    0.5
    """
    return _merged_statistic(a, b, spacing, np.max)


def hausdorff95_mm(a, b, *, spacing) -> float:
    """95th percentile of the merged surface distances (HD95), in mm.

    Parameters
    ----------
    a, b, spacing
        Two masks on one grid and its voxel size, as in :func:`surface_distances_mm`.

    Returns
    -------
    float
        Distance in mm (``np.percentile``, linear interpolation); NaN if either mask is empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((14, 12, 12), bool); a[1:11, 1:11, 1:11] = True
    >>> hausdorff95_mm(a, np.roll(a, 1, axis=0), spacing=(0.8, 0.8, 0.8))
    0.8
    """
    return _merged_statistic(a, b, spacing, lambda d: np.percentile(d, 95))


def mean_surface_distance_mm(a, b, *, spacing) -> float:
    """Mean (average symmetric) surface distance, MASD, in mm.

    The mean of the merged list of directed distances from A's boundary voxels to B's and from
    B's to A's (so the larger surface weighs more).

    Parameters
    ----------
    a, b, spacing
        Two masks on one grid and its voxel size, as in :func:`surface_distances_mm`.

    Returns
    -------
    float
        The mean distance in mm; NaN if either mask is empty.

    Examples
    --------
    A mask against itself is 0 mm away; shifted by one voxel, 10 of each mask's 26 boundary
    voxels lie 1 mm from the other's boundary, the rest on it:

    >>> import numpy as np
    >>> a = np.zeros((6, 5, 5), bool); a[1:4, 1:4, 1:4] = True
    >>> mean_surface_distance_mm(a, a, spacing=(1, 1, 1))
    0.0
    >>> round(mean_surface_distance_mm(a, np.roll(a, 1, axis=0), spacing=(1, 1, 1)), 4)
    0.3846
    """
    return _merged_statistic(a, b, spacing, np.mean)


def volume_similarity(a, b) -> float:
    """Volume similarity after Taha & Hanbury (2015): ``1 − |V_a − V_b| / (V_a + V_b)``.

    Symmetric, in [0, 1], 1 for equal volumes whatever the overlap. Not to be confused with
    SimpleITK's signed "VolumeSimilarity", which is :func:`volume_similarity_signed`.

    Parameters
    ----------
    a, b : (X, Y, Z) ndarray of bool
        Masks on the same grid (the voxel volume cancels).

    Returns
    -------
    float
        In [0, 1]; NaN if both masks are empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4, 4), bool); a[:3] = True
    >>> b = np.zeros((4, 4, 4), bool); b[:1] = True
    >>> volume_similarity(a, b)
    0.5
    """
    va, vb = _voxel_counts(a, b)
    return float("nan") if va + vb == 0 else 1.0 - abs(va - vb) / (va + vb)


def volume_similarity_signed(a, b) -> float:
    """Signed volume difference ``2 (V_a − V_b) / (V_a + V_b)``, SimpleITK's "VolumeSimilarity".

    The value of ``sitk.LabelOverlapMeasuresImageFilter().GetVolumeSimilarity()`` after
    ``Execute(a, b)``: in [−2, 2], positive when ``a`` is larger, 0 for equal volumes.

    Parameters
    ----------
    a, b
        As in :func:`volume_similarity`; the order sets the sign.

    Returns
    -------
    float
        In [−2, 2]; NaN if both masks are empty.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4, 4), bool); a[:3] = True
    >>> empty = np.zeros_like(a)
    >>> volume_similarity_signed(a, empty), volume_similarity_signed(empty, a)
    (2.0, -2.0)
    """
    va, vb = _voxel_counts(a, b)
    return float("nan") if va + vb == 0 else 2.0 * (va - vb) / (va + vb)


def relative_volume_error(pred, truth) -> float:
    """Relative volume error ``(V_pred − V_true) / V_true``.

    Parameters
    ----------
    pred, truth : (X, Y, Z) ndarray of bool
        Predicted and true masks on the same grid.

    Returns
    -------
    float
        NaN if the truth is empty.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.zeros((4, 4, 4), bool); t[:2] = True
    >>> p = np.zeros((4, 4, 4), bool); p[:3] = True
    >>> relative_volume_error(p, t)
    0.5
    """
    p, t = _pair(pred, truth)
    vt = int(t.sum())
    if vt == 0:
        return float("nan")
    return (int(p.sum()) - vt) / vt
