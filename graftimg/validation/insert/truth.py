"""Partial-volume truth: the mean of a function over sub-samples of each voxel."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from graftimg.validation.insert.grid import _apply, _sample_offsets

__all__ = ["ellipsoid_fraction"]

#: Sub-samples per axis on the finest axis for the truth maps, and the cap on thick axes.
_SUBSAMPLES = 4
_MAX_SUBSAMPLES = 12


def _truth_factors(spacing: Sequence[float]) -> tuple[int, int, int]:
    finest = min(spacing)
    return tuple(  # type: ignore[return-value]
        int(min(_MAX_SUBSAMPLES, max(_SUBSAMPLES, round(_SUBSAMPLES * s / finest))))
        for s in spacing
    )


def _box_around(
    affine: np.ndarray, shape: Sequence[int], centre_mm: np.ndarray, radius_mm: float
) -> tuple[slice, slice, slice] | None:
    """Index box of the voxels within ``radius_mm`` (per axis) of a point, or None."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    c = np.linalg.solve(affine[:3, :3], np.asarray(centre_mm, float) - affine[:3, 3])
    reach = radius_mm / spacing + 1.0
    lo = np.maximum(np.floor(c - reach), 0).astype(int)
    hi = np.minimum(np.ceil(c + reach) + 1, np.asarray(shape)).astype(int)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _box_means(
    affine: np.ndarray,
    box: tuple[slice, slice, slice],
    factors: Sequence[int],
    origin_mm: np.ndarray,
    function: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Mean of ``function(dx, dy, dz)`` over sub-samples of each voxel of ``box``.

    ``function`` gets offsets from ``origin_mm`` (scanner axes) of ``n_voxels·n_sub`` points and
    returns ``(..., n_points)`` values; the result has shape ``(..., *box shape)``.
    """
    shape = tuple(s.stop - s.start for s in box)
    index = np.stack(
        np.meshgrid(*[np.arange(s.start, s.stop, dtype=float) for s in box], indexing="ij"),
        axis=-1,
    ).reshape(-1, 3)
    offsets = _sample_offsets(factors) @ affine[:3, :3].T
    centres = _apply(affine, index) - np.asarray(origin_mm, float)
    n_sub = offsets.shape[0]
    chunk = max(1, 1_500_000 // n_sub)
    out = None
    for start in range(0, index.shape[0], chunk):
        c = centres[start : start + chunk]
        pts = (c[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        values = np.asarray(function(pts[:, 0], pts[:, 1], pts[:, 2]))
        lead = values.shape[:-1]
        means = values.reshape(*lead, c.shape[0], n_sub).mean(axis=-1)
        if out is None:
            out = np.zeros((*lead, index.shape[0]), dtype=means.dtype)
        out[..., start : start + c.shape[0]] = means
    assert out is not None
    return out.reshape(*out.shape[:-1], *shape)


def _in_ellipsoid(
    dx: np.ndarray,
    dy: np.ndarray,
    dz: np.ndarray,
    semi_axes: Sequence[float],
    rotation: np.ndarray,
    shift: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Which points (offsets from the reference point, scanner axes) lie in an ellipsoid.

    ``rotation`` holds the ellipsoid's axes as columns; ``shift`` moves its centre.
    """
    d = np.stack([dx - shift[0], dy - shift[1], dz - shift[2]], axis=0)
    u = rotation.T @ d
    a = np.asarray(semi_axes, float)[:, None]
    return np.sum((u / a) ** 2, axis=0) <= 1.0


def ellipsoid_fraction(
    affine: np.ndarray,
    shape: Sequence[int],
    centre_mm: Sequence[float],
    semi_axes_mm: Sequence[float],
    rotation: np.ndarray | None = None,
    *,
    factors: Sequence[int] | None = None,
) -> np.ndarray:
    """Partial-volume fraction of an ellipsoid in every voxel of a grid (sub-sampled).

    Parameters
    ----------
    affine : (4, 4) ndarray
        Voxel → scanner mm.
    shape : sequence of 3 int
        Grid shape.
    centre_mm : sequence of 3 float
        Ellipsoid centre, scanner mm.
    semi_axes_mm : sequence of 3 float
        Semi-axes in mm, along the columns of ``rotation``.
    rotation : (3, 3) ndarray, optional
        Axes of the ellipsoid as columns (scanner coordinates); identity by default.
    factors : sequence of 3 int, optional
        Sub-samples per axis; default 4 on the finest axis, more (≤ 12) on thick ones.

    Returns
    -------
    (X, Y, Z) ndarray of float64
        Fraction of each voxel inside, in [0, 1].

    Examples
    --------
    >>> aff = np.diag([0.5, 0.5, 3.0, 1.0])
    >>> pv = ellipsoid_fraction(aff, (40, 40, 12), (10.0, 10.0, 18.0), (3.0, 2.0, 7.0))
    >>> analytic = 4 / 3 * np.pi * 3 * 2 * 7
    >>> bool(abs(pv.sum() * 0.75 / analytic - 1) < 0.01)
    True
    """
    affine = np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, float)
    factors = _truth_factors(spacing) if factors is None else tuple(factors)
    out = np.zeros(tuple(shape))
    box = _box_around(affine, shape, np.asarray(centre_mm), float(max(semi_axes_mm)))
    if box is None:
        return out
    out[box] = _box_means(
        affine,
        box,
        factors,
        np.asarray(centre_mm, float),
        lambda x, y, z: _in_ellipsoid(x, y, z, semi_axes_mm, rotation).astype(np.float32),
    )
    return out
