"""Voxel spacing: the one check of a spacing argument, and which axes count as in-plane.

Every stage takes ``spacing`` in mm as three positive finite numbers (scikit-image's
``spacing=`` convention); :func:`validated_spacing` is the single place that checks it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graftimg.errors import SpacingError

__all__ = ["FINE_AXIS_RATIO", "fine_axes", "inplane_axes", "validated_spacing"]

#: Axes whose spacing is within this factor of the finest spacing count as "fine" (in-plane).
FINE_AXIS_RATIO = 1.5


def validated_spacing(spacing) -> tuple[float, float, float]:
    """Return ``spacing`` as three positive finite floats (mm), or raise :class:`SpacingError`.

    Examples
    --------
    >>> validated_spacing([0.5, 0.5, 3])
    (0.5, 0.5, 3.0)
    >>> validated_spacing((1.0, 0.0, 1.0))
    Traceback (most recent call last):
    ...
    graftimg.errors.SpacingError: spacing must be three positive finite voxel sizes in mm, ...
    """
    try:
        values = np.asarray(spacing, dtype=float).ravel()
    except (TypeError, ValueError):
        values = np.empty(0)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise SpacingError(
            f"spacing must be three positive finite voxel sizes in mm, got {spacing!r}",
            hint="pass 3 positive numbers, e.g. the volume's spacing (0.5, 0.5, 1.0)",
        )
    return (float(values[0]), float(values[1]), float(values[2]))


def fine_axes(spacing: Sequence[float]) -> tuple[int, ...]:
    """Axes whose voxel size is within 1.5× the finest: the "in-plane" axes of the data.

    Examples
    --------
    >>> fine_axes((0.5, 0.5, 3.0))
    (0, 1)
    >>> fine_axes((1.0, 1.0, 1.2))
    (0, 1, 2)
    """
    finest = min(spacing)
    return tuple(a for a in range(3) if spacing[a] <= FINE_AXIS_RATIO * finest)


def inplane_axes(spacing: Sequence[float]) -> tuple[int, ...]:
    """Axial-plane axes (0, 1) that are not thick-slice axes; (0, 1) if both are thick.

    Examples
    --------
    >>> inplane_axes((0.5, 3.0, 0.5))
    (0,)
    """
    axes = tuple(a for a in (0, 1) if a in fine_axes(spacing))
    return axes or (0, 1)
