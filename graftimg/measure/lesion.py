"""Lesion morphometry as Spinal Cord Toolbox's ``sct_analyze_lesion`` defines it, in mm.

Reimplemented from the published definitions (Spinal Cord Toolbox, De Leener et al.,
*NeuroImage* 2017;145:24, and its documentation;
Smith et al. 2021 for the axial damage ratio, Huber et al. 2017 for tissue bridges), so that
graft masks get the numbers SCT users know. Every length, area and width is corrected for the
cord's angle to the slice using the centerline of :mod:`graftimg.segment.centerline`.

Geometry: RAS+ canonical arrays; axis 0 = x (R-L), axis 1 = y (A-P, anterior = larger index),
axis 2 = z (S-I, superior = larger index). Dorsal = posterior = smaller y index. SCT works in its
"RPI" orientation (nibabel LAS): its y and z axes point the same way as ours, its x axis the
other way, which only matters for the choice of the midsagittal slice (see
:func:`lesion_metrics`).

The lesion is first restricted to the cord mask (voxels outside the cord are counted in
``n_voxels_outside_cord`` and otherwise ignored). All metrics describe the whole mask given;
for per-component values call :func:`lesion_metrics` once per component (labels from
:func:`graftimg.measure.volume.component_table` or ``skimage.measure.label``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from graftimg.arrays import bounding_box
from graftimg.errors import DimensionError
from graftimg.segment.centerline import Centerline, fit_centerline
from graftimg.spacing import validated_spacing

__all__ = ["LesionMetrics", "SagittalBridges", "lesion_metrics"]


@dataclass(frozen=True)
class SagittalBridges:
    """Minimum tissue bridges of one sagittal slice that holds lesion, in mm.

    Attributes
    ----------
    x : int
        Sagittal slice index (axis 0 of the RAS+ array).
    dorsal_mm, ventral_mm : float
        Minimum over the axial rows of the lesion of the dorsal (posterior) and ventral
        (anterior) spared cord, angle-corrected.
    total_mm : float
        ``dorsal_mm + ventral_mm`` (each minimum may come from a different row, as in SCT).
    """

    x: int
    dorsal_mm: float
    ventral_mm: float
    total_mm: float


@dataclass(frozen=True)
class LesionMetrics:
    """SCT-style lesion metrics of one mask (see :func:`lesion_metrics` for definitions).

    Attributes
    ----------
    n_voxels : int
        Lesion voxels inside the cord.
    n_voxels_outside_cord : int
        Lesion voxels outside the cord mask (ignored by every metric).
    n_components : int
        Connected components of the lesion inside the cord (connectivity 2, as SCT).
    z_range : tuple of int or None
        First and last axial slice holding lesion; None if empty.
    volume_mm3 : float
    length_mm : float
    max_equivalent_diameter_mm : float
    max_axial_damage_ratio : float
    mean_cord_angle_deg : float
        Mean of the 3D cord angle over the lesion slices (NaN if empty).
    midsagittal_slice : int or None
        Sagittal slice index (RAS+); None without cord.
    length_midsagittal_mm, width_midsagittal_mm : float
    dorsal_bridge_midsagittal_mm, ventral_bridge_midsagittal_mm, total_bridge_midsagittal_mm
        Tissue bridges of the midsagittal slice (NaN if it holds no lesion).
    dorsal_bridge_min_mm, ventral_bridge_min_mm, total_bridge_min_mm
        Minimum over all sagittal slices holding lesion (NaN if empty).
    bridges : tuple of SagittalBridges
        Per sagittal slice holding lesion, left to right in index order.
    """

    n_voxels: int
    n_voxels_outside_cord: int
    n_components: int
    z_range: tuple[int, int] | None
    volume_mm3: float
    length_mm: float
    max_equivalent_diameter_mm: float
    max_axial_damage_ratio: float
    mean_cord_angle_deg: float
    midsagittal_slice: int | None
    length_midsagittal_mm: float
    width_midsagittal_mm: float
    dorsal_bridge_midsagittal_mm: float
    ventral_bridge_midsagittal_mm: float
    total_bridge_midsagittal_mm: float
    dorsal_bridge_min_mm: float
    ventral_bridge_min_mm: float
    total_bridge_min_mm: float
    bridges: tuple[SagittalBridges, ...] = ()

    def to_dict(self) -> dict:
        """Plain JSON-ready values: floats, ints, lists, and None for NaN or missing.

        Returns
        -------
        dict
            One key per attribute; ``bridges`` is a list of dicts.
        """

        def plain(value):
            if value is None:
                return None
            if isinstance(value, SagittalBridges):
                return {f.name: plain(getattr(value, f.name)) for f in fields(value)}
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if isinstance(value, bool | np.bool_):
                return bool(value)
            if isinstance(value, int | np.integer):
                return int(value)
            value = float(value)
            return None if math.isnan(value) else value

        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}


def _first_last(mask: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first and last True along ``axis`` (meaningless where none)."""
    n = mask.shape[axis]
    first = np.argmax(mask, axis=axis)
    last = n - 1 - np.argmax(np.flip(mask, axis=axis), axis=axis)
    return first, last


def lesion_metrics(
    lesion_mask,
    cord_mask,
    *,
    spacing,
    centerline: Centerline | None = None,
) -> LesionMetrics:
    """Volume, length, diameter, damage ratio and tissue bridges of a lesion or graft.

    Definitions (sx, sy, sz = spacing; ``θ3(z)``, ``θs(z)`` = the 3D and sagittal cord angles of
    slice z from the centerline; the lesion L is first restricted to the cord C):

    - **volume** ``= n_voxels · sx·sy·sz``.
    - **length** ``= Σ_{z: L_z ≠ ∅} sz / cos θ3(z)`` — the slices holding lesion, each
      stretched to its length along the tilted cord.
    - **max equivalent diameter** ``= 2·sqrt(max_z A_z / π)`` with ``A_z = n_z·cos θ3(z)·sx·sy``
      (``n_z`` lesion voxels in slice z; the cosine turns the oblique axial cut into the cross
      section perpendicular to the cord).
    - **max axial damage ratio** ``= max_z |L_z| / |C_z|`` (Smith et al. 2021), no angle
      correction (it cancels).
    - **midsagittal slice**: the middle of the cord's R-L extent ``[x0, x1]`` over the whole
      mask, ``ceil((x0 + x1) / 2)``: on an even count this is the slice SCT picks, whose RPI
      x index runs right to left and is rounded down.
    - **midsagittal length** ``= Σ sz / cos θs(z)`` over the axial rows holding lesion in the
      midsagittal slice.
    - **midsagittal width** ``= max_z (y_last − y_first + 1)·sy·cos θs(z)`` over those rows: the
      lesion's A-P thickness perpendicular to the cord. (SCT sums ``sy·cos θs`` over the distinct
      A-P rows of the whole midsagittal section; for a straight cord and a lesion convex along y
      the two agree, on a tilted cord SCT's projection also counts the tilt.)
    - **tissue bridges** (Huber et al. 2017): in each sagittal slice holding lesion and each
      axial row z with lesion, ``dorsal = first_lesion_y − first_cord_y`` and ``ventral =
      last_cord_y − last_lesion_y`` in voxels, clipped at 0, times ``sy·cos θs(z)``; the
      minimum over z is the slice's bridge. Reported: the midsagittal slice's dorsal, ventral
      and total (= dorsal + ventral), NaN if that slice holds no lesion; and the minimum over
      all sagittal slices of the dorsal, the ventral and the total bridges.

    Parameters
    ----------
    lesion_mask : (X, Y, Z) ndarray of bool
        Lesion or graft mask, RAS+ canonical.
    cord_mask : (X, Y, Z) ndarray of bool
        Cord mask on the same grid.
    spacing : sequence of 3 float
        Voxel size (sx, sy, sz) in mm.
    centerline : Centerline, optional
        A centerline fitted on ``cord_mask`` with the same spacing; fitted with the defaults
        of :func:`~graftimg.segment.centerline.fit_centerline` if not given.

    Returns
    -------
    LesionMetrics
        For an empty lesion (or no lesion inside the cord): zeros for sizes, NaN (None in
        :meth:`LesionMetrics.to_dict`) for bridges and angles.

    Raises
    ------
    DimensionError
        If a mask is not 3D.
    ValueError
        If the masks' shapes differ, or the centerline does not match the grid or spacing.
    SpacingError
        If the spacing is not three positive finite numbers.

    Examples
    --------
    A straight box cord 7 voxels deep (A-P), with a lesion 2 voxels deep, 2 voxels from the
    dorsal surface and 3 from the ventral one, over 4 slices:

    >>> import numpy as np
    >>> cord = np.zeros((7, 9, 10), bool)
    >>> cord[1:6, 1:8, :] = True
    >>> lesion = np.zeros_like(cord)
    >>> lesion[2:5, 3:5, 3:7] = True
    >>> m = lesion_metrics(lesion, cord, spacing=(0.5, 0.5, 2.0))
    >>> m.length_mm, m.max_axial_damage_ratio, m.midsagittal_slice
    (8.0, 0.17142857142857143, 3)
    >>> m.dorsal_bridge_midsagittal_mm, m.ventral_bridge_midsagittal_mm, m.width_midsagittal_mm
    (1.0, 1.5, 1.0)
    """
    from skimage.measure import label

    sx, sy, sz = spacing = validated_spacing(spacing)
    lesion_in = np.asarray(lesion_mask)
    cord = np.asarray(cord_mask)
    for name, arr in (("lesion_mask", lesion_in), ("cord_mask", cord)):
        if arr.ndim != 3:
            raise DimensionError(f"{name} must be a 3D (X, Y, Z) array, got shape {arr.shape}")
    if lesion_in.shape != cord.shape:
        raise DimensionError(
            f"lesion_mask and cord_mask must share one grid, got {lesion_in.shape} and "
            f"{cord.shape}"
        )
    lesion_in = lesion_in.astype(bool, copy=False)
    cord = cord.astype(bool, copy=False)
    n_lesion = int(np.count_nonzero(lesion_in))
    nan = float("nan")

    # Everything below happens in the cord's bounding box along x and y (the lesion is cut to
    # the cord; z stays whole for the per-slice angles); x0 turns its x back to the grid's.
    mid_x = None
    x0 = 0
    cord_full = cord
    box = bounding_box(cord)
    if box is not None:
        x0 = box[0].start
        mid_x = int((box[0].start + box[0].stop) // 2)  # ceil of the middle of [x_first, x_last]
        crop = (box[0], box[1], slice(None))
        cord = cord[crop]
        lesion = lesion_in[crop] & cord
    else:
        lesion = np.zeros((0, 0, cord.shape[2]), dtype=bool)
    n_vox = int(np.count_nonzero(lesion))
    n_outside = n_lesion - n_vox

    if n_vox == 0:
        return LesionMetrics(
            n_voxels=0,
            n_voxels_outside_cord=n_outside,
            n_components=0,
            z_range=None,
            volume_mm3=0.0,
            length_mm=0.0,
            max_equivalent_diameter_mm=0.0,
            max_axial_damage_ratio=0.0,
            mean_cord_angle_deg=nan,
            midsagittal_slice=mid_x,
            length_midsagittal_mm=0.0,
            width_midsagittal_mm=0.0,
            dorsal_bridge_midsagittal_mm=nan,
            ventral_bridge_midsagittal_mm=nan,
            total_bridge_midsagittal_mm=nan,
            dorsal_bridge_min_mm=nan,
            ventral_bridge_min_mm=nan,
            total_bridge_min_mm=nan,
        )

    if centerline is None:
        centerline = fit_centerline(cord_full, spacing=spacing)
    elif centerline.n_slices != cord.shape[2] or not np.allclose(centerline.spacing, spacing):
        raise DimensionError(
            f"the centerline ({centerline.n_slices} slices, spacing {centerline.spacing}) does "
            f"not match the masks ({cord.shape[2]} slices, spacing {spacing}); fit it on this "
            "cord mask"
        )
    cos3 = np.cos(centerline.angle_3d_rad)
    cos_sag = np.cos(centerline.angle_sag_rad)

    # Axial measures.
    n_z = lesion.sum(axis=(0, 1))
    cord_z = cord.sum(axis=(0, 1))
    zs = np.flatnonzero(n_z)
    length = float(np.sum(sz / cos3[zs]))
    area_z = n_z[zs] * cos3[zs] * sx * sy
    diameter = 2.0 * math.sqrt(float(area_z.max()) / math.pi)
    damage = float(np.max(n_z[zs] / cord_z[zs]))

    # Sagittal measures: per (x, z) column along y.
    les_any = lesion.any(axis=1)  # (X, Z)
    les_first, les_last = _first_last(lesion, axis=1)
    cord_first, cord_last = _first_last(cord, axis=1)
    scale = sy * cos_sag[None, :]  # (1, Z)
    dorsal = np.where(les_any, np.clip(les_first - cord_first, 0, None) * scale, np.inf)
    ventral = np.where(les_any, np.clip(cord_last - les_last, 0, None) * scale, np.inf)
    bridges = []
    for x in np.flatnonzero(les_any.any(axis=1)):
        d, v = float(dorsal[x].min()), float(ventral[x].min())
        bridges.append(SagittalBridges(x=int(x) + x0, dorsal_mm=d, ventral_mm=v, total_mm=d + v))
    by_x = {b.x: b for b in bridges}

    mid = by_x.get(mid_x)
    if mid is not None:
        mid_local = mid_x - x0
        rows = les_any[mid_local]
        length_mid = float(np.sum(sz / cos_sag[rows]))
        thickness = (les_last[mid_local] - les_first[mid_local] + 1) * sy * cos_sag
        width_mid = float(thickness[rows].max())
    else:
        length_mid = width_mid = 0.0

    return LesionMetrics(
        n_voxels=n_vox,
        n_voxels_outside_cord=n_outside,
        n_components=int(label(lesion, connectivity=2).max()),
        z_range=(int(zs[0]), int(zs[-1])),
        volume_mm3=n_vox * sx * sy * sz,
        length_mm=length,
        max_equivalent_diameter_mm=diameter,
        max_axial_damage_ratio=damage,
        mean_cord_angle_deg=float(np.degrees(np.mean(centerline.angle_3d_rad[zs]))),
        midsagittal_slice=mid_x,
        length_midsagittal_mm=length_mid,
        width_midsagittal_mm=width_mid,
        dorsal_bridge_midsagittal_mm=nan if mid is None else mid.dorsal_mm,
        ventral_bridge_midsagittal_mm=nan if mid is None else mid.ventral_mm,
        total_bridge_midsagittal_mm=nan if mid is None else mid.total_mm,
        dorsal_bridge_min_mm=min(b.dorsal_mm for b in bridges),
        ventral_bridge_min_mm=min(b.ventral_mm for b in bridges),
        total_bridge_min_mm=min(b.total_mm for b in bridges),
        bridges=tuple(bridges),
    )
