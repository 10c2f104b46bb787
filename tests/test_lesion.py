"""Tests of graftimg.measure.lesion (SCT-style metrics) on analytic cord + lesion phantoms."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from graftimg.errors import DimensionError, SpacingError
from graftimg.measure.lesion import LesionMetrics, lesion_metrics
from graftimg.segment.centerline import fit_centerline

# Cord cross-section (semi-axes, mm) and a lesion inside it, shifted dorsally (−y) by 0.5 mm.
CORD_AX = (6.0, 4.0)
LES_AX = (2.5, 1.5)
LES_DY = -0.5
DORSAL_GAP = (LES_DY - LES_AX[1]) + CORD_AX[1]  # 2.0 mm at the midline
VENTRAL_GAP = CORD_AX[1] - (LES_DY + LES_AX[1])  # 3.0 mm at the midline


def cord_frame(shape, spacing, theta_deg):
    """Voxel-centre coordinates in the cord's frame: x, y' (A-P across the cord), s (along it).

    The cord axis runs through the centre of the grid, tilted by theta in the y-z plane.
    The grid centre sits on a voxel centre in x, so the midsagittal slice is the middle one.
    """
    axes = [np.arange(n) * s for n, s in zip(shape, spacing, strict=True)]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    c = [
        (shape[0] // 2) * spacing[0],
        (shape[1] - 1) * spacing[1] / 2,
        (shape[2] - 1) * spacing[2] / 2,
    ]
    th = np.radians(theta_deg)
    rx, ry, rz = x - c[0], y - c[1], z - c[2]
    yp = ry * np.cos(th) - rz * np.sin(th)
    s = ry * np.sin(th) + rz * np.cos(th)
    return rx, yp, s


def straight_phantom(spacing, *, n_lesion_slices=7):
    """Straight cord along z with an elliptic-cylinder lesion over n slices."""
    shape = (round(16 / spacing[0]) | 1, round(12 / spacing[1]), 24)
    x, yp, _ = cord_frame(shape, spacing, 0.0)
    cord = (x / CORD_AX[0]) ** 2 + (yp / CORD_AX[1]) ** 2 <= 1
    lesion = (x / LES_AX[0]) ** 2 + ((yp - LES_DY) / LES_AX[1]) ** 2 <= 1
    z0 = 8
    lesion[:, :, :z0] = False
    lesion[:, :, z0 + n_lesion_slices :] = False
    return cord, lesion, x[:, 0, 0], shape


def analytic_gaps(xs):
    """Dorsal and ventral gaps (mm) at lateral positions xs inside the lesion's R-L extent."""
    half_cord = CORD_AX[1] * np.sqrt(1 - (xs / CORD_AX[0]) ** 2)
    half_les = LES_AX[1] * np.sqrt(1 - (xs / LES_AX[0]) ** 2)
    return (LES_DY - half_les) + half_cord, half_cord - (LES_DY + half_les)


@pytest.mark.parametrize(
    "spacing", [(0.25, 0.25, 1.0), (0.5, 0.25, 2.0), (0.3, 0.5, 0.5), (0.2, 0.2, 3.0)]
)
def test_straight_phantom(spacing):
    cord, lesion, xs, shape = straight_phantom(spacing)
    m = lesion_metrics(lesion, cord, spacing=spacing)
    _, sy, sz = spacing
    # length: exactly n slices
    assert m.length_mm == pytest.approx(7 * sz, rel=1e-12)
    assert m.length_midsagittal_mm == pytest.approx(7 * sz, rel=1e-12)
    assert m.z_range == (8, 14)
    assert m.mean_cord_angle_deg == pytest.approx(0.0, abs=1e-9)
    # max equivalent diameter vs the analytic ellipse area π·a·b
    assert m.max_equivalent_diameter_mm == pytest.approx(2 * np.sqrt(np.prod(LES_AX)), rel=0.03)
    # digitisation: a 1.5 mm semi-axis is only 3 voxels at sy = 0.5 mm
    assert m.max_axial_damage_ratio == pytest.approx(np.prod(LES_AX) / np.prod(CORD_AX), rel=0.1)
    assert m.volume_mm3 == pytest.approx(np.pi * np.prod(LES_AX) * 7 * sz, rel=0.05)
    # midsagittal slice: the middle one; bridges within one voxel of the known gaps
    assert m.midsagittal_slice == shape[0] // 2
    assert m.dorsal_bridge_midsagittal_mm == pytest.approx(DORSAL_GAP, abs=sy)
    assert m.ventral_bridge_midsagittal_mm == pytest.approx(VENTRAL_GAP, abs=sy)
    assert m.total_bridge_midsagittal_mm == pytest.approx(
        m.dorsal_bridge_midsagittal_mm + m.ventral_bridge_midsagittal_mm
    )
    assert m.width_midsagittal_mm == pytest.approx(2 * LES_AX[1], abs=sy)
    # minimum over the sagittal slices holding lesion vs the analytic gap at those slices
    with_lesion = np.array([b.x for b in m.bridges])
    dorsal, ventral = analytic_gaps(xs[with_lesion])
    assert m.dorsal_bridge_min_mm == pytest.approx(dorsal.min(), abs=sy)
    assert m.ventral_bridge_min_mm == pytest.approx(ventral.min(), abs=sy)
    assert m.total_bridge_min_mm == pytest.approx((dorsal + ventral).min(), abs=2 * sy)
    for b in m.bridges:
        d, v = analytic_gaps(xs[b.x])
        assert b.dorsal_mm == pytest.approx(d, abs=sy)
        assert b.ventral_mm == pytest.approx(v, abs=sy)


def tilted_phantom(spacing, theta_deg, *, half_length=15.0):
    """Cord tilted in the y-z plane with an ellipsoidal lesion elongated along the cord."""
    fov = (16.0, 14.0 + 60.0 * np.tan(np.radians(theta_deg)), 50.0)
    shape = tuple(round(f / s) for f, s in zip(fov, spacing, strict=True))
    shape = (shape[0] | 1, shape[1], shape[2])
    x, yp, s = cord_frame(shape, spacing, theta_deg)
    cord = (x / CORD_AX[0]) ** 2 + (yp / CORD_AX[1]) ** 2 <= 1
    lesion = (x / LES_AX[0]) ** 2 + ((yp - LES_DY) / LES_AX[1]) ** 2 + (s / half_length) ** 2 <= 1
    return cord, lesion


@pytest.mark.parametrize(
    "spacing", [(0.5, 0.5, 0.5), (0.25, 0.25, 0.5), (0.4, 0.4, 1.0), (0.5, 0.3, 0.8)]
)
def test_tilted_cord_length_is_angle_corrected(spacing):
    theta = 20.0
    true_length = 30.0
    cord, lesion = tilted_phantom(spacing, theta, half_length=true_length / 2)
    m = lesion_metrics(lesion, cord, spacing=spacing)
    assert m.mean_cord_angle_deg == pytest.approx(theta, abs=0.3)
    assert m.length_mm == pytest.approx(true_length, rel=0.05)
    uncorrected = (m.z_range[1] - m.z_range[0] + 1) * spacing[2]
    assert abs(m.length_mm - true_length) < abs(uncorrected - true_length)
    # cross-section perpendicular to the cord
    assert m.max_equivalent_diameter_mm == pytest.approx(2 * np.sqrt(np.prod(LES_AX)), rel=0.03)
    # bridges measured along y and corrected by cos(angle_sag): the gap across the cord
    sy = spacing[1]
    assert m.dorsal_bridge_midsagittal_mm == pytest.approx(DORSAL_GAP, abs=sy)
    assert m.ventral_bridge_midsagittal_mm == pytest.approx(VENTRAL_GAP, abs=sy)
    assert m.width_midsagittal_mm == pytest.approx(2 * LES_AX[1], abs=sy)


def test_given_centerline_is_used_and_checked():
    spacing = (0.5, 0.5, 0.5)
    cord, lesion = tilted_phantom(spacing, 20.0)
    cl = fit_centerline(cord, spacing=spacing)
    assert lesion_metrics(lesion, cord, spacing=spacing, centerline=cl) == lesion_metrics(
        lesion, cord, spacing=spacing
    )
    with pytest.raises(ValueError, match="does not match"):
        lesion_metrics(lesion, cord, spacing=(0.5, 0.5, 1.0), centerline=cl)
    with pytest.raises(ValueError, match="does not match"):
        lesion_metrics(lesion[:, :, :-1], cord[:, :, :-1], spacing=spacing, centerline=cl)


def test_empty_lesion_gives_zeros_and_none():
    cord, lesion, _, shape = straight_phantom((0.5, 0.5, 1.0))
    m = lesion_metrics(np.zeros_like(lesion), cord, spacing=(0.5, 0.5, 1.0))
    assert (m.n_voxels, m.volume_mm3, m.length_mm, m.max_equivalent_diameter_mm) == (0, 0, 0, 0)
    assert m.max_axial_damage_ratio == 0.0 and m.n_components == 0 and m.z_range is None
    assert m.midsagittal_slice == shape[0] // 2
    d = m.to_dict()
    assert d["dorsal_bridge_min_mm"] is None and d["total_bridge_midsagittal_mm"] is None
    assert d["mean_cord_angle_deg"] is None and d["bridges"] == []
    json.dumps(d, allow_nan=False)
    # no cord at all: nothing inside the cord, no midsagittal slice
    none = lesion_metrics(lesion, np.zeros_like(cord), spacing=(0.5, 0.5, 1.0))
    assert none.n_voxels == 0 and none.n_voxels_outside_cord == lesion.sum()
    assert none.midsagittal_slice is None


def test_lesion_is_masked_by_the_cord_and_bridges_clip_at_zero():
    cord = np.zeros((9, 12, 10), bool)
    cord[2:7, 2:10, :] = True
    lesion = np.zeros_like(cord)
    lesion[3:6, 0:5, 2:6] = True  # sticks out dorsally, beyond the cord surface
    m = lesion_metrics(lesion, cord, spacing=(1.0, 1.0, 1.0))
    assert m.n_voxels_outside_cord == 3 * 2 * 4
    assert m.n_voxels == 3 * 3 * 4
    assert m.dorsal_bridge_midsagittal_mm == 0.0
    assert m.ventral_bridge_midsagittal_mm == 5.0  # cord y 2..9, lesion up to y = 4
    assert m.width_midsagittal_mm == 3.0


def test_parasagittal_lesion_has_no_midsagittal_bridges():
    cord = np.zeros((11, 10, 8), bool)
    cord[1:10, 1:9, :] = True  # midsagittal slice: (1 + 9 + 1) // 2 = 5
    lesion = np.zeros_like(cord)
    lesion[7:9, 3:5, 2:4] = True
    lesion[1, 2:4, 5] = True  # a second, separate component
    m = lesion_metrics(lesion, cord, spacing=(1.0, 1.0, 1.0))
    assert m.midsagittal_slice == 5
    assert np.isnan(m.dorsal_bridge_midsagittal_mm) and m.length_midsagittal_mm == 0.0
    assert [b.x for b in m.bridges] == [1, 7, 8]
    assert m.dorsal_bridge_min_mm == 1.0  # x = 1: lesion from y = 2, cord from y = 1
    assert m.ventral_bridge_min_mm == 4.0  # x = 7, 8: lesion up to y = 4, cord up to y = 8
    assert m.total_bridge_min_mm == 6.0  # x = 1: 1 + (8 − 3) = 6; x = 7: 2 + 4 = 6
    assert m.n_components == 2
    assert m.to_dict()["dorsal_bridge_midsagittal_mm"] is None


def test_even_extent_picks_the_sct_midsagittal_slice():
    cord = np.zeros((10, 6, 4), bool)
    cord[2:8, 1:5, :] = True  # x 2..7: the middle is 4.5; SCT's (RPI, rounded down) is x = 5
    lesion = np.zeros_like(cord)
    lesion[5, 2, 1] = True
    m = lesion_metrics(lesion, cord, spacing=(1, 1, 1))
    assert m.midsagittal_slice == 5
    assert (m.dorsal_bridge_midsagittal_mm, m.ventral_bridge_midsagittal_mm) == (1.0, 2.0)


def test_to_dict_is_plain_json():
    cord, lesion, _, _ = straight_phantom((0.5, 0.5, 1.0))
    m = lesion_metrics(lesion, cord, spacing=(0.5, 0.5, 1.0))
    d = m.to_dict()
    assert isinstance(m, LesionMetrics)
    assert set(d) == {f.name for f in dataclasses.fields(LesionMetrics)}
    assert type(d["length_mm"]) is float and type(d["n_voxels"]) is int
    assert d["z_range"] == [8, 14] and isinstance(d["bridges"][0]["x"], int)
    assert json.loads(json.dumps(d, allow_nan=False)) == d
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.length_mm = 1.0


def test_validation():
    cord = np.ones((4, 4, 4), bool)
    with pytest.raises(ValueError, match="share one grid"):
        lesion_metrics(np.zeros((4, 4, 5), bool), cord, spacing=(1, 1, 1))
    with pytest.raises(DimensionError, match="3D"):
        lesion_metrics(cord[0], cord[0], spacing=(1, 1, 1))
    with pytest.raises(SpacingError, match="positive finite"):
        lesion_metrics(cord, cord, spacing=(1, 1, np.inf))
