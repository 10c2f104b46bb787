"""Trace the cord's edge in every axial slice around a known centre.

From the centre of each slice, rays are cast every few degrees and the image is sampled along
them (a polar resampling). The cord's edge is the closed contour ``r(θ)`` that follows cord→CSF
edges of the contrast's polarity (dark→bright going outward on T2-like images, bright→dark on
T1w) while changing radius smoothly with the angle; it is found exactly by dynamic programming
over the angles (:func:`~graftimg.segment.optimal_path.best_closed_paths`), for all slices at
once. The edge sits at the steepest intensity change, the half-partial-volume point of the
boundary. Four rules keep it on the cord:

* polarity: inner edges of the wrong sign (the bright grey-matter butterfly on T2*w) and the
  outer edge of the CSF (dura, fat) do not attract it;
* on CSF-bright contrasts an edge counts in proportion to how CSF-bright its outer side is, so
  where the cord lies on the dura without CSF the contour is not pulled to muscle or fat;
* the first clear edge wins: going outward past a clear edge costs its height (the largest
  drop of the edge score on the way out), so the contour stops at the cord rather than at a
  stronger edge in the tissue beyond;
* an optional shape prior (expected radii, e.g. from :func:`fit_ellipses` pooled along S-I)
  carries the contour where the edge is weak or missing.

On thin slices the polar edge maps of neighbouring slices are blended (a Gaussian of
``prior.z_smooth_mm`` along S-I), which keeps the contour from jumping between slices.

Examples
--------
>>> import numpy as np
>>> from graftimg.segment.cord_priors import cord_prior
>>> x, y = np.mgrid[:64, :64] * 0.25
>>> r = np.hypot((x - 8) / 1.5, (y - 8) / 1.0)
>>> axial = np.where(r < 1, 0.35, np.where(r < 1.4, 1.0, 0.3))
>>> image = np.repeat(axial[:, :, None], 3, axis=2)
>>> centres = np.full((3, 2), 32.0)
>>> contours = trace_slices(
...     image, centres, spacing=(0.25, 0.25, 0.5), polarity=-1, prior=cord_prior("rodent")
... )
>>> mask = rasterize(contours, image.shape, spacing=(0.25, 0.25, 0.5))
>>> area = mask[:, :, 1].sum() * 0.25 * 0.25
>>> bool(abs(area - np.pi * 1.5 * 1.0) < 0.1 * np.pi * 1.5 * 1.0)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from graftimg.errors import ConfigError
from graftimg.segment.cord_priors import CordPrior
from graftimg.segment.optimal_path import best_closed_paths

__all__ = [
    "EllipseFit",
    "SliceContours",
    "fit_ellipses",
    "place_at_level",
    "rasterize",
    "trace_slices",
]

_EPS = 1e-6


@dataclass(frozen=True)
class SliceContours:
    """The cord's edge in each axial slice, as a radius per ray angle.

    Attributes
    ----------
    centres_vox : (Z, 2) ndarray of float
        Origin of the rays (x, y) in each slice, in voxel indices.
    angles : (A,) ndarray of float
        Ray angles in radians, counter-clockwise from the +x axis (0 = +x, towards the
        subject's right in RAS+; π/2 = +y, anterior).
    radii_mm : (Z, A) ndarray of float
        Distance from the origin to the contour along each ray, in mm.
    edge_radii_mm : (Z, A) ndarray of float
        Distance from the origin to the steepest point of the edge, in mm (the contour itself
        unless it was placed at a boundary level, see :func:`place_at_level`).
    edge : (Z, A) ndarray of float
        Edge strength at the contour (relative gradient × the prior's minor semi-axis).
    contrast : (Z, A) ndarray of float
        Michelson contrast across the contour, signed so that a cord/CSF boundary of the
        expected polarity is positive (about 0.2–0.6 for a clear CSF ring).
    outer_brightness : (Z, A) ndarray of float
        Intensity just outside the contour relative to the slice's 95th percentile (near 1
        where bright CSF borders a T2-like cord).
    """

    centres_vox: np.ndarray
    angles: np.ndarray
    radii_mm: np.ndarray
    edge_radii_mm: np.ndarray
    edge: np.ndarray
    contrast: np.ndarray
    outer_brightness: np.ndarray

    def area_mm2(self) -> np.ndarray:
        """Area enclosed by each slice's contour, in mm² (polygon area)."""
        d_theta = 2 * np.pi / len(self.angles)
        return (
            0.5
            * np.sin(d_theta)
            * np.sum(self.radii_mm * np.roll(self.radii_mm, -1, axis=1), axis=1)
        )

    def centroids_vox(self, spacing: tuple[float, float, float]) -> np.ndarray:
        """Centroid (x, y) of each slice's contour polygon, in voxel indices."""
        r0 = self.radii_mm
        r1 = np.roll(r0, -1, axis=1)
        a0 = self.angles[None, :]
        a1 = np.roll(self.angles, -1)[None, :]
        x0, y0 = r0 * np.cos(a0), r0 * np.sin(a0)
        x1, y1 = r1 * np.cos(a1), r1 * np.sin(a1)
        cross = x0 * y1 - x1 * y0
        area = 0.5 * cross.sum(axis=1)
        area = np.where(np.abs(area) < _EPS, _EPS, area)
        gx = ((x0 + x1) * cross).sum(axis=1) / (6 * area)
        gy = ((y0 + y1) * cross).sum(axis=1) / (6 * area)
        return self.centres_vox + np.stack([gx / spacing[0], gy / spacing[1]], axis=1)


def _crop_box(
    centres: np.ndarray, reach_mm: float, spacing: tuple[float, float, float], shape: tuple
) -> tuple[slice, slice]:
    box = []
    for axis in range(2):
        reach = reach_mm / spacing[axis] + 2
        lo = int(max(0, np.floor(centres[:, axis].min() - reach)))
        hi = int(min(shape[axis], np.ceil(centres[:, axis].max() + reach) + 1))
        box.append(slice(lo, max(hi, lo + 1)))
    return box[0], box[1]


def trace_slices(
    image: np.ndarray,
    centres_vox: np.ndarray,
    *,
    spacing: tuple[float, float, float],
    polarity: int,
    prior: CordPrior,
    n_angles: int = 72,
    smoothness: float = 0.3,
    expected_radii_mm: np.ndarray | None = None,
    shape_weight: float = 1.0,
    shape_tolerance: float = 0.15,
    inner_preference: float = 1.0,
    boundary_level: float | None = None,
) -> SliceContours:
    """Find the cord's closed edge in each axial slice around the given centres.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Canonical RAS+ image.
    centres_vox : (Z, 2) ndarray
        A point inside the cord in each slice (x, y voxel indices), ideally near its middle.
    spacing : tuple of 3 float
        Voxel size in mm.
    polarity : int
        ``+1`` if the cord is brighter than CSF, ``-1`` if darker.
    prior : CordPrior
        Size prior; rays are searched between ``prior.radius_range_mm``.
    n_angles : int, optional
        Number of rays per slice.
    smoothness : float, optional
        Cost of a radius change of one typical arc length between neighbouring rays, in units
        of edge strength.
    expected_radii_mm : (Z, A) ndarray, optional
        A shape prior: the radius expected on each ray (e.g. from :func:`fit_ellipses`), NaN
        where there is none. A contour point at relative distance ``d`` from it costs
        ``shape_weight · (d / shape_tolerance)²``, so weak or missing edges follow the prior
        while clear edges may depart from it.
    shape_weight, shape_tolerance : float, optional
        Strength and relative width of the shape prior.
    inner_preference : float, optional
        Cost, per unit of edge height, of placing the contour beyond a clear edge (0 lets the
        strongest edge win wherever it is).
    boundary_level : float, optional
        Where on the cord→CSF intensity transition the contour is placed, as a fraction of the
        way from the cord's level (0) to the CSF's (1), both read on the ray itself. ``None``
        (default) keeps the steepest point of the edge (about 0.5); see
        :func:`place_at_level`.

    Returns
    -------
    SliceContours
        Radii, edge strength and contrast per slice and ray.
    """
    image = np.asarray(image, dtype=np.float32)
    centres_vox = np.asarray(centres_vox, dtype=np.float64)
    sx, sy, sz = (float(s) for s in spacing)
    r_min, r_max = prior.radius_range_mm
    step = min(sx, sy) / 3.0
    offset = max(min(sx, sy), 0.5 * prior.csf_rim_mm)
    radii = np.arange(0.0, r_max + 2 * offset + step, step)
    angles = 2 * np.pi * np.arange(n_angles) / n_angles

    bx, by = _crop_box(centres_vox, radii[-1], spacing, image.shape)
    crop_raw = image[bx, by, :]
    sigma = [max(0.5, 0.1 * prior.minor_mm / s) for s in (sx, sy)] + [0.0]
    crop = ndimage.gaussian_filter(crop_raw, sigma, mode="nearest")

    n_z = image.shape[2]
    cx = centres_vox[:, 0] - bx.start
    cy = centres_vox[:, 1] - by.start
    cos_a, sin_a = np.cos(angles), np.sin(angles)
    coords = np.empty((3, n_z, n_angles, len(radii)))
    coords[0] = cx[:, None, None] + radii[None, None, :] * cos_a[None, :, None] / sx
    coords[1] = cy[:, None, None] + radii[None, None, :] * sin_a[None, :, None] / sy
    coords[2] = np.arange(n_z)[:, None, None]
    profiles = ndimage.map_coordinates(crop, coords, order=1, mode="nearest")

    level = profiles[:, :, radii <= r_max].mean(axis=(1, 2)) + _EPS
    edge = -polarity * np.gradient(profiles, step, axis=2)
    edge *= prior.minor_mm / level[:, None, None]
    n_off = round(offset / step)
    reference = np.percentile(profiles.reshape(n_z, -1), 95, axis=1) + _EPS
    # brightest value within `offset` outside each radius
    outer = ndimage.maximum_filter1d(
        profiles, size=n_off + 1, axis=2, origin=-((n_off + 1) // 2), mode="nearest"
    )
    brightness = np.clip(outer / reference[:, None, None], 0.0, 1.0)
    if polarity < 0:
        # CSF is the brightest tissue around the cord: an edge counts in proportion to how
        # CSF-bright its outer side is, so edges to muscle or fat beyond a missing CSF rim
        # (the cord often touches the dura posteriorly) do not pull the contour out
        edge = np.where(edge > 0, edge * brightness**2, edge)
    z_sigma = prior.z_smooth_mm / sz
    if z_sigma >= 0.3:
        edge_search = ndimage.gaussian_filter1d(edge, z_sigma, axis=0, mode="nearest")
    else:
        edge_search = edge.copy()
    if inner_preference > 0:
        # a contour beyond a clear edge of the right polarity must pay for crossing it: the
        # cord ends at the first clear edge, not at a stronger one in the tissue further out.
        # The price is the largest drop of the edge score met on the way out (the "maximum
        # drawdown" from an earlier peak), so the rising flank of an edge costs nothing.
        rising = np.clip(edge_search, 0, None)
        rising[:, :, radii < r_min] = 0.0
        drop = np.maximum.accumulate(rising, axis=2) - edge_search
        crossed = np.maximum.accumulate(np.clip(drop, 0, None), axis=2)
        edge_search = edge_search - inner_preference * crossed
    if expected_radii_mm is not None:
        expected = np.asarray(expected_radii_mm, dtype=np.float64)[:, :, None]
        deviation = (radii[None, None, :] - expected) / (shape_tolerance * expected)
        edge_search -= np.nan_to_num(shape_weight * deviation**2, nan=0.0)
    outside = (radii < r_min) | (radii > r_max)
    edge_search[:, :, outside] = -np.inf

    arc = prior.mean_radius_mm * 2 * np.pi / n_angles
    reach = max(1, int(np.ceil(1.2 * arc / step)))
    offsets = np.arange(-reach, reach + 1)[:, None]
    penalties = smoothness * (offsets[:, 0] * step / arc) ** 2
    scores = np.moveaxis(edge_search, 1, 0)  # (A, Z, R)
    idx = best_closed_paths(scores, offsets, penalties)[:, :, 0].T  # (Z, A)

    # sub-sample refinement: vertex of the parabola through the edge peak
    zi, ai = np.indices(idx.shape)
    inner = np.clip(idx, 1, len(radii) - 2)
    e_m = edge_search[zi, ai, inner - 1]
    e_0 = edge_search[zi, ai, inner]
    e_p = edge_search[zi, ai, inner + 1]
    denom = e_m - 2 * e_0 + e_p
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(np.isfinite(denom) & (denom < -_EPS), 0.5 * (e_m - e_p) / denom, 0.0)
    radii_mm = radii[inner] + np.clip(shift, -0.5, 0.5) * step

    edge_radii_mm = radii_mm
    if boundary_level is not None:
        raw = ndimage.map_coordinates(crop_raw, coords, order=1, mode="nearest")
        radii_mm = place_at_level(
            raw, radii, radii_mm, polarity=polarity, level=boundary_level, window_mm=prior.minor_mm
        )

    p_in = profiles[zi, ai, np.clip(inner - n_off, 0, len(radii) - 1)]
    p_out = profiles[zi, ai, np.clip(inner + n_off, 0, len(radii) - 1)]
    contrast = -polarity * (p_out - p_in) / (np.abs(p_out) + np.abs(p_in) + _EPS)
    return SliceContours(
        centres_vox=centres_vox.copy(),
        angles=angles,
        radii_mm=radii_mm,
        edge_radii_mm=edge_radii_mm,
        edge=edge[zi, ai, inner],
        contrast=contrast,
        outer_brightness=brightness[zi, ai, inner],
    )


def place_at_level(
    profiles: np.ndarray,
    radii: np.ndarray,
    edge_radii_mm: np.ndarray,
    *,
    polarity: int,
    level: float,
    window_mm: float,
) -> np.ndarray:
    """Move each contour point inward from its edge to a level of the cord→CSF transition.

    On every ray the cord's level ``c`` is the mean of the profile between ``window_mm`` and
    ``window_mm / 2`` inside the edge, the CSF's level ``o`` the extreme of the contrast's
    polarity (brightest on T2-like, darkest on T1w) within ``window_mm / 2`` outside it. The
    contour goes to the outermost point at or inside the edge where the profile is still at
    ``c + level · (o − c)``, interpolated between samples. A ray whose transition has the
    wrong sign, or never falls back to that level within the window, keeps its edge. The
    inward moves are then smoothed by a circular median over about 25° of rays, since the
    blur of an edge changes slowly around the cord.

    Parameters
    ----------
    profiles : (Z, A, R) ndarray
        Image samples along each ray (unsmoothed: smoothing widens the transition).
    radii : (R,) ndarray
        Distances of the samples from the ray origin, in mm, evenly spaced.
    edge_radii_mm : (Z, A) ndarray
        The edge (steepest point) on each ray, in mm.
    polarity : int
        ``+1`` if the cord is brighter than CSF, ``-1`` if darker.
    level : float
        Fraction of the way from the cord's level to the CSF's, in [0, 1].
    window_mm : float
        Reach of the level estimates, in mm (the prior's minor semi-axis).

    Returns
    -------
    (Z, A) ndarray
        The moved radii, in mm, never outside ``edge_radii_mm``.

    Examples
    --------
    A linear ramp from cord (0) to CSF (1) between 4 and 5 mm: its quarter level is 4.25 mm.

    >>> import numpy as np
    >>> radii = np.arange(0.0, 10.0, 0.1)
    >>> ramp = np.clip(radii - 4.0, 0.0, 1.0)[None, None, :].repeat(8, axis=1)
    >>> moved = place_at_level(
    ...     ramp, radii, np.full((1, 8), 4.5), polarity=-1, level=0.25, window_mm=4.0
    ... )
    >>> np.round(moved, 2).tolist()[0][:3]
    [4.25, 4.25, 4.25]
    """
    if not 0.0 <= level <= 1.0:
        raise ConfigError(f"boundary level must lie in [0, 1], got {level}")
    step = float(radii[1] - radii[0])
    r = radii[None, None, :]
    edge = edge_radii_mm[:, :, None]
    inner = (r >= edge - 0.5 * window_mm) & (r <= edge - 0.25 * window_mm)
    n_inner = inner.sum(axis=2)
    cord = np.where(inner, profiles, 0.0).sum(axis=2) / np.maximum(n_inner, 1)
    outer = (r >= edge) & (r <= edge + 0.5 * window_mm)
    extreme = np.where(outer, -polarity * profiles, -np.inf).max(axis=2) * -polarity
    span = extreme - cord
    usable = (n_inner > 0) & np.isfinite(span) & (-polarity * span > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (profiles - cord[:, :, None]) / np.where(usable, span, 1.0)[:, :, None]
    window = (r >= edge - 0.5 * window_mm) & (r <= edge)
    below = window & (t <= level)
    found = usable & below.any(axis=2)
    last = below.shape[2] - 1 - np.argmax(below[:, :, ::-1], axis=2)
    nxt = np.minimum(last + 1, len(radii) - 1)
    t0 = np.take_along_axis(t, last[:, :, None], axis=2)[:, :, 0]
    t1 = np.take_along_axis(t, nxt[:, :, None], axis=2)[:, :, 0]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(t1 > t0, (level - t0) / (t1 - t0), 0.0)
    crossing = radii[last] + np.clip(frac, 0.0, 1.0) * step
    move = np.where(found, np.clip(edge_radii_mm - crossing, 0.0, None), 0.0)
    n_angles = move.shape[1]
    half = max(1, round(n_angles * 12.5 / 360))
    if n_angles > 2 * half:
        windows = np.stack([np.roll(move, shift, axis=1) for shift in range(-half, half + 1)])
        move = np.median(windows, axis=0)
    return edge_radii_mm - move


def rasterize(
    contours: SliceContours,
    shape: tuple[int, int, int],
    *,
    spacing: tuple[float, float, float],
    slices: np.ndarray | None = None,
) -> np.ndarray:
    """Voxels whose centres lie inside each slice's contour.

    Parameters
    ----------
    contours : SliceContours
        The traced contours.
    shape : tuple of 3 int
        Shape of the output grid (the image's).
    spacing : tuple of 3 float
        Voxel size in mm.
    slices : (Z,) ndarray of bool, optional
        Slices to fill; all by default.

    Returns
    -------
    (X, Y, Z) ndarray of bool
        The mask.
    """
    sx, sy = float(spacing[0]), float(spacing[1])
    mask = np.zeros(shape, dtype=bool)
    keep = np.ones(shape[2], dtype=bool) if slices is None else np.asarray(slices, bool)
    if not keep.any():
        return mask
    centres = contours.centres_vox
    reach = float(contours.radii_mm[keep].max())
    bx, by = _crop_box(centres[keep], reach, (sx, sy, 1.0), shape)
    gx = np.arange(bx.start, bx.stop)[:, None, None]
    gy = np.arange(by.start, by.stop)[None, :, None]
    z = np.flatnonzero(keep)
    dx = (gx - centres[z, 0][None, None, :]) * sx
    dy = (gy - centres[z, 1][None, None, :]) * sy
    rho = np.hypot(dx, dy)
    n_angles = len(contours.angles)
    position = np.mod(np.arctan2(dy, dx), 2 * np.pi) / (2 * np.pi / n_angles)
    i0 = np.floor(position).astype(np.intp) % n_angles
    i1 = (i0 + 1) % n_angles
    w = position - np.floor(position)
    radii = contours.radii_mm[z]
    zz = np.broadcast_to(np.arange(len(z))[None, None, :], i0.shape)
    boundary = (1 - w) * radii[zz, i0] + w * radii[zz, i1]
    mask[bx, by, z] = rho <= boundary
    return mask


@dataclass(frozen=True)
class EllipseFit:
    """An ellipse fitted to each slice's contour.

    Attributes
    ----------
    conics : (Z, 5) ndarray of float
        Coefficients ``(A, B, C, D, E)`` of ``A x² + B xy + C y² + D x + E y = 1`` in mm,
        relative to each slice's ray origin (``origins_vox``).
    origins_vox : (Z, 2) ndarray of float
        The ray origins the coefficients refer to.
    valid : (Z,) ndarray of bool
        Whether the fit is an ellipse enclosing the origin.
    centres_vox : (Z, 2) ndarray of float
        Centre of each ellipse (x, y) in voxel indices (the origin where not valid).
    semi_axes_mm : (Z, 2) ndarray of float
        Major and minor semi-axes in mm (NaN where not valid).
    """

    conics: np.ndarray
    origins_vox: np.ndarray
    valid: np.ndarray
    centres_vox: np.ndarray
    semi_axes_mm: np.ndarray

    def radii_mm(
        self,
        angles: np.ndarray,
        origins_vox: np.ndarray | None = None,
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
    ) -> np.ndarray:
        """Distance from each origin to its ellipse along ``angles``.

        Parameters
        ----------
        angles : (A,) ndarray
            Ray angles in radians.
        origins_vox : (Z, 2) ndarray, optional
            Ray origins in voxel indices; the fit's own origins by default. An origin outside
            its ellipse gives NaN.
        spacing : tuple of 3 float
            Voxel size in mm (needed with ``origins_vox``).

        Returns
        -------
        (Z, A) ndarray
            Radii in mm, NaN where the fit is not valid.
        """
        conics = self.conics
        if origins_vox is not None:
            t = (np.asarray(origins_vox) - self.origins_vox) * np.asarray(spacing[:2])
            a_c, b_c, c_c, d_c, e_c = conics.T
            tx, ty = t[:, 0], t[:, 1]
            f_t = a_c * tx**2 + b_c * tx * ty + c_c * ty**2 + d_c * tx + e_c * ty
            with np.errstate(invalid="ignore", divide="ignore"):
                norm = 1.0 / (1.0 - f_t)  # < 0 when the new origin is outside the ellipse
            d_new = 2 * a_c * tx + b_c * ty + d_c
            e_new = b_c * tx + 2 * c_c * ty + e_c
            conics = np.stack([a_c, b_c, c_c, d_new, e_new], axis=1) * norm[:, None]
            conics[norm <= 0] = np.nan
        r = _conic_radii(conics, angles)
        r[~self.valid] = np.nan
        return r


def fit_ellipses(
    contours: SliceContours,
    *,
    spacing: tuple[float, float, float],
    weights: np.ndarray,
    n_iterations: int = 4,
) -> EllipseFit:
    """Robust weighted ellipse fit to every slice's contour at once.

    A general conic through no fixed point is fitted by weighted least squares (iteratively
    reweighted with a Cauchy function of the radial residual, so contour points that leaked
    to another edge lose their say). scikit-image's ``EllipseModel`` fits one unweighted
    point set at a time; here all slices are solved in one batch of 5 × 5 systems.

    Parameters
    ----------
    contours : SliceContours
        Traced contours.
    spacing : tuple of 3 float
        Voxel size in mm.
    weights : (Z, A) ndarray
        Prior reliability of each contour point (e.g. its contrast), ≥ 0.
    n_iterations : int, optional
        Reweighting iterations.

    Returns
    -------
    EllipseFit
        The fits.
    """
    angles = contours.angles
    r = contours.radii_mm
    scale = float(np.nanmedian(r)) or 1.0
    x = r * np.cos(angles)[None, :] / scale
    y = r * np.sin(angles)[None, :] / scale
    design = np.stack([x * x, x * y, y * y, x, y], axis=-1)  # (Z, A, 5)
    base = np.clip(np.nan_to_num(np.asarray(weights, dtype=np.float64)), 0, None)
    w = base.copy()
    ridge = 1e-6 * np.eye(5)
    coef = np.zeros((r.shape[0], 5))
    for _ in range(n_iterations):
        normal = np.einsum("za,zai,zaj->zij", w, design, design) + ridge
        rhs = np.einsum("za,zai->zi", w, design)
        coef = np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]
        fitted = _conic_radii(coef, angles)
        residual = np.where(np.isfinite(fitted), r / scale - fitted, 10.0)
        spread = 1.4826 * np.median(np.abs(residual), axis=1, keepdims=True)
        spread = np.maximum(spread, 0.05)
        w = base / (1.0 + (residual / (2.0 * spread)) ** 2)
    # back to mm: x_mm = scale * x  →  A/s², B/s², C/s², D/s, E/s
    conics = coef / np.array([scale**2, scale**2, scale**2, scale, scale])
    a_coef, b_coef, c_coef, d_coef, e_coef = conics.T
    det = 4 * a_coef * c_coef - b_coef**2
    valid = (det > 0) & (a_coef > 0) & np.all(np.isfinite(conics), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ex = (b_coef * e_coef - 2 * c_coef * d_coef) / det
        ey = (b_coef * d_coef - 2 * a_coef * e_coef) / det
        # value of the conic form at the centre gives the axes
        k = 1 - (a_coef * ex**2 + b_coef * ex * ey + c_coef * ey**2 + d_coef * ex + e_coef * ey)
        tr = a_coef + c_coef
        root = np.sqrt((a_coef - c_coef) ** 2 + b_coef**2)
        lam_small, lam_large = (tr - root) / 2, (tr + root) / 2
        major = np.sqrt(k / lam_small)
        minor = np.sqrt(k / lam_large)
    valid &= np.isfinite(major) & np.isfinite(minor) & (k > 0)
    centres = contours.centres_vox.copy()
    shift = np.stack([ex / spacing[0], ey / spacing[1]], axis=1)
    centres[valid] += shift[valid]
    axes = np.stack([major, minor], axis=1)
    axes[~valid] = np.nan
    return EllipseFit(
        conics=conics,
        origins_vox=contours.centres_vox.copy(),
        valid=valid,
        centres_vox=centres,
        semi_axes_mm=axes,
    )


def _conic_radii(coef: np.ndarray, angles: np.ndarray) -> np.ndarray:
    cos_a, sin_a = np.cos(angles)[None, :], np.sin(angles)[None, :]
    quad = coef[:, 0, None] * cos_a**2 + coef[:, 1, None] * cos_a * sin_a
    quad = quad + coef[:, 2, None] * sin_a**2
    lin = coef[:, 3, None] * cos_a + coef[:, 4, None] * sin_a
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (-lin + np.sqrt(lin**2 + 4 * quad)) / (2 * quad)
    return np.where(np.isfinite(r) & (r > 0), r, np.nan)
