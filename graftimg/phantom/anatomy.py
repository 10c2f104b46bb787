"""Analytic spinal anatomy in the subject frame: cord, CSF, vertebral column, graft, cyst.

Points are ``(N, 3)`` arrays in mm in the subject frame (origin at the injection site, axes
R-L, A-P, S-I; see :mod:`graftimg.phantom.spec`). :meth:`Anatomy.labels` returns one tissue label
per point, so that a renderer can average any number of sub-samples per voxel.

The cord follows a centerline ``y = A·(sin(2πz/P + φ) − sin φ)`` in a frame tilted by
``tilt_deg`` about the R-L axis. Cross-sections are taken in *local coordinates*
``u`` (left-right), ``v`` (ventral positive, measured perpendicular to the local cord axis) and
``s`` (along the column); this is exact for a straight or tilted cord and a first-order
approximation on a curved one. The cord is the ellipse ``(u/a_u)² + (v/a_v)² ≤ 1``; the dural
sac adds the CSF rim; bone is only ever drawn outside the sac plus the epidural gap.

The graft (an ellipsoid aligned with the cord at the injection site; a sphere in ``iron`` mode)
and the cyst (a sphere caudal to the graft) have analytic volumes; :func:`check_geometry` makes
sure they lie inside the cord, so that their truth is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from graftimg.errors import ConfigError
from graftimg.phantom.iron import dipole_constant_mm3, iron_moment_am2
from graftimg.phantom.kinetics import graft_volume_mm3, iron_mass_ug

if TYPE_CHECKING:  # the spec is checked with this module's geometry: no runtime import back
    from graftimg.phantom.spec import PhantomSpec

__all__ = [
    "AIR",
    "BONE_CORTEX",
    "BONE_MARROW",
    "CORD_LABELS",
    "CSF",
    "CYST",
    "DISC_ANNULUS",
    "DISC_NUCLEUS",
    "GRAFT",
    "GREY_MATTER",
    "LABEL_NAMES",
    "SOFT_TISSUE",
    "WHITE_MATTER",
    "Anatomy",
    "anatomy_at",
    "check_geometry",
    "cord_radius",
    "ellipsoid_volume_mm3",
    "local_coordinates",
    "transform_columns",
]

AIR, SOFT_TISSUE, BONE_MARROW, BONE_CORTEX, DISC_NUCLEUS, DISC_ANNULUS = range(6)
CSF, WHITE_MATTER, GREY_MATTER, GRAFT, CYST = range(6, 11)
LABEL_NAMES = (
    "air",
    "soft_tissue",
    "bone_marrow",
    "bone_cortex",
    "disc_nucleus",
    "disc_annulus",
    "csf",
    "white_matter",
    "grey_matter",
    "graft",
    "cyst",
)
"""Name of each label (the fields of :class:`~graftimg.phantom.spec.Intensities`)."""

CORD_LABELS = (WHITE_MATTER, GREY_MATTER, GRAFT, CYST)
"""Labels that belong to the cord (graft and cyst are intramedullary)."""

# Where the posterior arch (laminae, spinous process) sits within one segment, as a fraction of
# the segment length measured from the top endplate of the vertebral body.
_ARCH_START, _ARCH_END = 0.25, 0.85
_SPINOUS_START, _SPINOUS_END, _SPINOUS_SLOPE = 0.35, 0.75, 0.5
_NUCLEUS_FRACTION = 0.55


def ellipsoid_volume_mm3(semi_axes_mm) -> float:
    """Volume ``4/3·π·a·b·c`` of an ellipsoid with the given semi-axes in mm.

    Examples
    --------
    >>> round(ellipsoid_volume_mm3((1.0, 2.0, 3.0)), 4)
    25.1327
    """
    a, b, c = (float(x) for x in semi_axes_mm)
    return 4.0 / 3.0 * math.pi * a * b * c


def _tilt_matrix(tilt_deg: float) -> np.ndarray:
    t = math.radians(tilt_deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def local_coordinates(spec: PhantomSpec, points_mm):
    """Cord-local coordinates ``(u, v, s)`` in mm of subject-frame points.

    Parameters
    ----------
    spec : PhantomSpec
        Cord geometry.
    points_mm : (N, 3) ndarray
        Points in the subject frame.

    Returns
    -------
    u, v, s : (N,) ndarray
        Left-right offset from the centerline, ventral offset perpendicular to the cord axis,
        and position along the (tilted) column axis.

    Examples
    --------
    >>> from graftimg.phantom.spec import default_spec
    >>> spec = default_spec("human", "t2", curvature_amplitude_mm=0.0, tilt_deg=30.0)
    >>> u, v, s = local_coordinates(spec, np.array([[0.0, -0.5, 0.5 * 3**0.5]]))
    >>> [round(float(x), 6) + 0.0 for x in (u[0], v[0], s[0])]
    [0.0, 0.0, 1.0]
    """
    return _local_xyz(spec, *_columns(points_mm))


def _columns(points_mm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Contiguous x, y, z columns (float32 kept, anything else as float64)."""
    pts = np.asarray(points_mm).reshape(-1, 3)
    if pts.dtype != np.float32:
        pts = pts.astype(float)
    return tuple(np.ascontiguousarray(pts[:, i]) for i in range(3))


def transform_columns(x, y, z, matrix: np.ndarray):
    """Return the columns of ``p @ matrix`` for points ``p`` given as columns ``x, y, z``.

    Column by column, without BLAS (whose threads stall on busy machines).

    Examples
    --------
    >>> transform_columns(np.array([1.0]), np.array([2.0]), np.array([3.0]), np.eye(3))
    (array([1.]), array([2.]), array([3.]))
    """
    m = [[float(v) for v in row] for row in matrix]
    return tuple(x * m[0][j] + y * m[1][j] + z * m[2][j] for j in range(3))


def _local_xyz(spec: PhantomSpec, x, y, z):
    if spec.tilt_deg != 0.0:
        x, y, z = transform_columns(x, y, z, _tilt_matrix(spec.tilt_deg))
    amplitude = spec.curvature_amplitude_mm
    if amplitude == 0.0:
        return x, y, z
    k = 2.0 * math.pi / spec.curvature_period_mm
    arg = z * k + spec.curvature_phase_rad
    centre_y = amplitude * (np.sin(arg) - math.sin(spec.curvature_phase_rad))
    slope = np.cos(arg) * (amplitude * k)
    cos_beta = 1.0 / np.sqrt(1.0 + slope * slope)
    return x, (y - centre_y) * cos_beta, z


def cord_radius(spec: PhantomSpec, points_mm, *, rim_mm: float = 0.0):
    """Normalised elliptical radius of points in the cord cross-section (<= 1: inside).

    With ``rim_mm`` the ellipse is enlarged by that margin (``csf_rim_mm``: the dural sac).

    Examples
    --------
    >>> from graftimg.phantom.spec import default_spec
    >>> spec = default_spec("human", "t2", curvature_amplitude_mm=0.0)
    >>> cord_radius(spec, np.array([[6.25, 0.0, 0.0], [0.0, 4.25, 3.0]])).round(6).tolist()
    [1.0, 1.0]
    """
    u, v, _ = local_coordinates(spec, points_mm)
    a_u, a_v = spec.cord_semi_axes_mm
    return np.sqrt((u / (a_u + rim_mm)) ** 2 + (v / (a_v + rim_mm)) ** 2)


def _graft_axes(spec: PhantomSpec) -> np.ndarray:
    """Columns: graft axes (R-L, A-P, along the cord) at the injection site, subject frame."""
    k = 2.0 * math.pi / spec.curvature_period_mm
    slope = spec.curvature_amplitude_mm * k * math.cos(spec.curvature_phase_rad)
    e_z = np.array([0.0, slope, 1.0]) / math.hypot(1.0, slope)
    e_x = np.array([1.0, 0.0, 0.0])
    e_y = np.cross(e_z, e_x)
    return _tilt_matrix(spec.tilt_deg) @ np.column_stack([e_x, e_y, e_z])


def _graft_semi_axes(spec: PhantomSpec, volume_mm3: float) -> tuple[float, float, float]:
    if spec.mode == "iron":
        r = (3.0 * volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
        return (r, r, r)
    aspect = spec.graft_aspect
    scale = (volume_mm3 / ellipsoid_volume_mm3(aspect)) ** (1.0 / 3.0)
    return tuple(scale * a for a in aspect)


@dataclass(frozen=True, eq=False)
class Anatomy:
    """Geometry of one subject at one time point (subject frame, mm).

    Build it with :func:`anatomy_at`. The graft is centred at the origin (the injection site).

    Attributes
    ----------
    spec : PhantomSpec
        The subject's parameters.
    days : float
        Days since injection.
    graft_volume_mm3 : float
        Analytic graft volume (ellipsoid, or sphere in ``iron`` mode).
    graft_semi_axes_mm : (3,) tuple of float
        Semi-axes along the graft axes (R-L, A-P, along the cord).
    graft_axes : (3, 3) ndarray
        Columns: the graft axes in the subject frame.
    cyst_radius_mm : float
        Radius of the spherical cyst (0: none).
    cyst_center_mm : (3,) ndarray
        Cyst centre in the subject frame.
    """

    spec: PhantomSpec
    days: float
    graft_volume_mm3: float
    graft_semi_axes_mm: tuple[float, float, float]
    graft_axes: np.ndarray
    cyst_radius_mm: float
    cyst_center_mm: np.ndarray

    @property
    def cyst_volume_mm3(self) -> float:
        """Analytic cyst volume in mm³."""
        return 4.0 / 3.0 * math.pi * self.cyst_radius_mm**3

    def labels(self, points_mm) -> np.ndarray:
        """Tissue label of each point.

        Parameters
        ----------
        points_mm : (N, 3) ndarray
            Points in the subject frame, mm.

        Returns
        -------
        (N,) ndarray of uint8
            Values from :data:`LABEL_NAMES` (``AIR`` … ``CYST``).

        Examples
        --------
        >>> from graftimg.phantom.spec import default_spec
        >>> anatomy = anatomy_at(default_spec("human", "t2"), days=7.0)
        >>> pts = np.array([[0, 0, 0], [0, 0, 20.0], [0, -5.5, 20.0], [0, 15, 0], [0, -60, 0]])
        >>> [LABEL_NAMES[i] for i in anatomy.labels(pts)]
        ['graft', 'white_matter', 'csf', 'bone_marrow', 'air']
        """
        return self.labels_xyz(*_columns(points_mm))

    def labels_xyz(self, x, y, z) -> np.ndarray:
        """:meth:`labels` of points given as three coordinate arrays (subject frame, mm)."""
        spec = self.spec
        out = np.zeros(x.shape, dtype=np.uint8)
        body = (x * (2 / spec.body_lr_mm)) ** 2 + (
            (y - spec.body_offset_ap_mm) * (2 / spec.body_ap_mm)
        ) ** 2 <= 1.0
        inside = np.flatnonzero(body)
        out[inside] = SOFT_TISSUE
        if inside.size == 0:
            return out
        x, y, z = x[inside], y[inside], z[inside]
        u, v, s = _local_xyz(spec, x, y, z)
        a_u, a_v = spec.cord_semi_axes_mm
        c_u, c_v = spec.canal_semi_axes_mm
        in_canal = (u * (1 / c_u)) ** 2 + (v * (1 / c_v)) ** 2 <= 1.0

        # -- canal: CSF, cord, grey matter, graft, cyst ----------------------------------
        canal = inside[in_canal]
        out[canal] = CSF
        uc, vc = u[in_canal] * (1 / a_u), v[in_canal] * (1 / a_v)
        in_cord = uc * uc + vc * vc <= 1.0
        cord = canal[in_cord]
        out[cord] = WHITE_MATTER
        if spec.grey_matter:
            out[cord[_grey_matter(uc[in_cord], vc[in_cord])]] = GREY_MATTER
        sel = np.flatnonzero(in_canal)[in_cord]
        xc, yc, zc = x[sel], y[sel], z[sel]
        q = transform_columns(xc, yc, zc, self.graft_axes)
        radius2 = sum(
            (qi * (1 / si)) ** 2 for qi, si in zip(q, self.graft_semi_axes_mm, strict=True)
        )
        out[cord[radius2 <= 1.0]] = GRAFT
        if self.cyst_radius_mm > 0:
            cx, cy, cz = (float(c) for c in self.cyst_center_mm)
            d2 = (xc - cx) ** 2 + (yc - cy) ** 2 + (zc - cz) ** 2
            out[cord[d2 <= self.cyst_radius_mm**2]] = CYST

        # -- outside the canal: vertebral bodies, discs, posterior arch ------------------
        outside = inside[~in_canal]
        out[outside] = self._bone(u[~in_canal], v[~in_canal], s[~in_canal])
        return out

    def _bone(self, u, v, s) -> np.ndarray:
        spec = self.spec
        labels = np.full(u.shape, SOFT_TISSUE, dtype=np.uint8)
        c_u, c_v = spec.canal_semi_axes_mm
        gap = spec.epidural_gap_mm
        cortex = spec.cortex_thickness_mm
        period = spec.vertebra_period_mm
        body_len = period - spec.disc_height_mm
        phase = np.mod(s + spec.vertebra_offset_mm, period)

        # Posterior arch: laminae and pedicles (a shell around the sac), spinous process.
        in_arch = (phase >= _ARCH_START * period) & (phase < _ARCH_END * period)
        e1u, e1v = c_u + gap, c_v + gap
        t = spec.lamina_thickness_mm
        r1 = (u / e1u) ** 2 + (v / e1v) ** 2
        r2 = (u / (e1u + t)) ** 2 + (v / (e1v + t)) ** 2
        v_body = c_v + gap + spec.vertebral_body_ap_mm / 2
        lamina = in_arch & (r1 > 1.0) & (r2 <= 1.0) & (v <= v_body)
        ci = min(cortex, t / 3)
        r1i = (u / (e1u + ci)) ** 2 + (v / (e1v + ci)) ** 2
        r2i = (u / (e1u + t - ci)) ** 2 + (v / (e1v + t - ci)) ** 2
        labels[lamina] = np.where(
            (r1i[lamina] > 1.0) & (r2i[lamina] <= 1.0), BONE_MARROW, BONE_CORTEX
        )
        half_w = spec.spinous_width_mm / 2
        tip = -(e1v + t + spec.spinous_length_mm)
        # The spinous process slopes caudally as it runs posterior, as in the real column.
        sloped = np.mod(phase + _SPINOUS_SLOPE * (-v - e1v), period)
        in_spinous = (sloped >= _SPINOUS_START * period) & (sloped < _SPINOUS_END * period)
        spinous = in_spinous & (np.abs(u) <= half_w) & (v <= -e1v) & (v >= tip) & (r1 > 1.0)
        ci = min(cortex, half_w / 3)
        core = (np.abs(u) <= half_w - ci) & (v >= tip + ci)
        labels[spinous] = np.where(core[spinous], BONE_MARROW, BONE_CORTEX)

        # Vertebral bodies (cortical shell, marrow) and discs (annulus, nucleus) in front.
        b_u, b_v = spec.vertebral_body_lr_mm / 2, spec.vertebral_body_ap_mm / 2
        dv = v - v_body
        in_column = (u / b_u) ** 2 + (dv / b_v) ** 2 <= 1.0
        in_body = in_column & (phase < body_len)
        marrow = (
            ((u / (b_u - cortex)) ** 2 + (dv / (b_v - cortex)) ** 2 <= 1.0)
            & (phase >= cortex)
            & (phase < body_len - cortex)
        )
        labels[in_body] = np.where(marrow[in_body], BONE_MARROW, BONE_CORTEX)
        in_disc = in_column & (phase >= body_len)
        f = _NUCLEUS_FRACTION
        nucleus = (u / (f * b_u)) ** 2 + (dv / (f * b_v)) ** 2 <= 1.0
        middle = np.abs(phase - body_len - spec.disc_height_mm / 2) <= f * spec.disc_height_mm / 2
        labels[in_disc] = np.where((nucleus & middle)[in_disc], DISC_NUCLEUS, DISC_ANNULUS)
        return labels


def _ellipse(du, dv, along, across, angle_rad):
    ca, sa = math.cos(angle_rad), math.sin(angle_rad)
    a = du * ca + dv * sa
    b = -du * sa + dv * ca
    return (a / along) ** 2 + (b / across) ** 2 <= 1.0


def _grey_matter(un, vn):
    """Butterfly in normalised cord coordinates (un: left-right, vn: ventral positive)."""
    au = np.abs(un)
    ventral = _ellipse(au - 0.38, vn - 0.30, 0.30, 0.21, math.radians(60))
    dorsal = _ellipse(au - 0.27, vn + 0.40, 0.38, 0.10, math.radians(-65))
    commissure = (au <= 0.38) & (np.abs(vn + 0.02) <= 0.09)
    return ventral | dorsal | commissure


def anatomy_at(spec: PhantomSpec, days: float) -> Anatomy:
    """Return the subject's anatomy ``days`` after injection.

    Examples
    --------
    >>> from graftimg.phantom.spec import default_spec
    >>> anatomy = anatomy_at(default_spec("human", "t2"), days=0.0)
    >>> round(anatomy.graft_volume_mm3, 6), round(anatomy.cyst_volume_mm3, 6)
    (150.0, 10.0)
    """
    volume = graft_volume_mm3(spec, days)
    semi = _graft_semi_axes(spec, volume)
    largest = _graft_semi_axes(spec, max(spec.graft_volume0_mm3, spec.graft_volume_inf_mm3))
    axes = _graft_axes(spec)
    radius = (3.0 * spec.cyst_volume_mm3 / (4.0 * math.pi)) ** (1.0 / 3.0)
    # Caudal to the largest graft the subject ever has, so that the two never overlap (for a
    # point on the major axis beyond the pole, the nearest graft point is the pole).
    distance = largest[2] + spec.cyst_gap_mm + radius
    centre = -distance * axes[:, 2]
    axes.setflags(write=False)
    centre.setflags(write=False)
    return Anatomy(
        spec=spec,
        days=float(days),
        graft_volume_mm3=ellipsoid_volume_mm3(semi),
        graft_semi_axes_mm=semi,
        graft_axes=axes,
        cyst_radius_mm=float(radius),
        cyst_center_mm=centre,
    )


def _sphere_points(n: int = 4000) -> np.ndarray:
    i = np.arange(n) + 0.5
    z = 1.0 - 2.0 * i / n
    r = np.sqrt(1.0 - z * z)
    phi = math.pi * (3.0 - math.sqrt(5.0)) * i
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def check_geometry(spec: PhantomSpec) -> None:
    """Raise :class:`ConfigError` unless graft, cyst and blooming fit where they must.

    The graft at its largest and the cyst lie inside the cord (elliptical radius < 0.97 on
    4000 surface points), and every object with an analytic volume (graft, cyst, iron void at
    the largest iron amount) stays in every field of view despite the session motion.
    """
    anatomy = anatomy_at(spec, days=0.0)
    largest = _graft_semi_axes(spec, max(spec.graft_volume0_mm3, spec.graft_volume_inf_mm3))
    sphere = _sphere_points()
    graft_surface = (sphere * np.asarray(largest)) @ anatomy.graft_axes.T
    worst = float(cord_radius(spec, graft_surface).max())
    if worst >= 0.97:
        raise ConfigError(
            f"the graft reaches {worst:.2f} of the cord radius (it must stay inside the cord)",
            hint="reduce graft_volume0_mm3 / graft_volume_inf_mm3 or graft_aspect, "
            "or enlarge the cord or reduce its curvature",
        )
    if anatomy.cyst_radius_mm > 0:
        cyst_surface = sphere * anatomy.cyst_radius_mm + anatomy.cyst_center_mm
        worst = float(cord_radius(spec, cyst_surface).max())
        if worst >= 0.97:
            raise ConfigError(
                f"the cyst reaches {worst:.2f} of the cord radius (it must stay inside the cord)",
                hint="reduce cyst_volume_mm3 or cyst_gap_mm",
            )

    # Objects with an analytic volume: centre (subject frame) and bounding radius.
    objects = [("graft", np.zeros(3), max(largest), None)]
    if anatomy.cyst_radius_mm > 0:
        cyst_r = anatomy.cyst_radius_mm
        objects.append(("cyst", np.asarray(anatomy.cyst_center_mm), cyst_r, None))
    if spec.mode == "iron" and spec.t2starw is not None:
        moment = iron_moment_am2(iron_mass_ug(spec, 0.0), spec.magnetization_am2_per_kg)
        k = dipole_constant_mm3(
            moment, spec.t2starw.echo_time_s, phase_threshold_rad=spec.void_phase_rad
        )
        objects.append(("iron void", np.zeros(3), max((2 * k) ** (1 / 3), largest[0]), "T2starw"))
    rotation = math.radians(spec.max_rotation_deg) * math.sqrt(2.0)
    for acq in spec.acquisitions:
        half = np.asarray(acq.fov_mm) / 2 - np.asarray(acq.spacing_mm)
        for name, centre, radius, only in objects:
            if only is not None and acq.suffix != only:
                continue
            reach = (
                np.abs(centre - np.asarray(acq.fov_offset_mm))
                + radius
                + spec.max_translation_mm
                + rotation * float(np.linalg.norm(centre))
            )
            if np.any(reach > half):
                raise ConfigError(
                    f"the {name} may leave the {acq.suffix} field of view "
                    f"(reach {np.round(reach, 2).tolist()} mm vs half-FOV "
                    f"{np.round(half, 2).tolist()} mm)",
                    hint="enlarge the acquisition's shape or spacing_mm, or shrink the object",
                )
