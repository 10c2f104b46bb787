"""Small array helpers shared by the stages."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bounding_box"]


def bounding_box(mask: np.ndarray, margin: int | Sequence[int] = 0) -> tuple[slice, ...] | None:
    """Smallest box holding every voxel of ``mask``, grown by ``margin`` voxels per axis.

    The box is clipped to the array. ``None`` when the mask is empty.

    Examples
    --------
    >>> mask = np.zeros((6, 5), dtype=bool)
    >>> mask[2:4, 1] = True
    >>> bounding_box(mask)
    (slice(2, 4, None), slice(1, 2, None))
    >>> bounding_box(mask, 1)
    (slice(1, 5, None), slice(0, 3, None))
    >>> bounding_box(np.zeros((3, 3), bool)) is None
    True
    """
    margins = [int(margin)] * mask.ndim if np.isscalar(margin) else [int(m) for m in margin]
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        lo = max(int(hits[0]) - margins[axis], 0)
        hi = min(int(hits[-1]) + 1 + margins[axis], mask.shape[axis])
        box.append(slice(lo, hi))
    return tuple(box)
