"""Tests of graftimg.segment.centerline on phantoms with known geometry."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.integrate import quad

from graftimg.errors import DimensionError, SegmentationError, SpacingError
from graftimg.segment.centerline import Centerline, fit_centerline


def voxel_centres_mm(shape, spacing):
    """Physical coordinates (x, y, z) of every voxel centre, index × spacing."""
    return np.meshgrid(
        *(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij"
    )


def tilted_cord(shape, spacing, *, theta_deg, plane="yz", a=4.0, b=3.0, centre=None):
    """Elliptical cylinder (semi-axes a along x', b along y') whose axis is tilted by theta.

    The axis lies in the y-z plane (``plane="yz"``) or the x-z plane (``plane="xz"``) and passes
    through ``centre`` (mm). The cross-section perpendicular to the axis is the ellipse.
    """
    x, y, z = voxel_centres_mm(shape, spacing)
    if centre is None:
        centre = [(n - 1) * s / 2 for n, s in zip(shape, spacing, strict=True)]
    rx, ry, rz = x - centre[0], y - centre[1], z - centre[2]
    th = np.radians(theta_deg)
    if plane == "yz":
        xp, yp = rx, ry * np.cos(th) - rz * np.sin(th)
    else:
        xp, yp = rx * np.cos(th) - rz * np.sin(th), ry
    return (xp / a) ** 2 + (yp / b) ** 2 <= 1.0


def sinusoid_cord(shape, spacing, *, amplitude, period, a=4.0, b=3.0):
    """Axial ellipses whose centres follow y = y0 + A·sin(2πz/P): centroid exactly on the curve."""
    x, y, z = voxel_centres_mm(shape, spacing)
    x0 = (shape[0] - 1) * spacing[0] / 2
    y0 = (shape[1] - 1) * spacing[1] / 2
    yc = y0 + amplitude * np.sin(2 * np.pi * z / period)
    return ((x - x0) / a) ** 2 + ((y - yc) / b) ** 2 <= 1.0


def test_straight_cord_is_exact():
    cord = np.zeros((12, 12, 30), bool)
    cord[3:9, 4:9, 5:25] = True
    cl = fit_centerline(cord, spacing=(0.5, 0.5, 1.5))
    ext = slice(5, 25)
    assert cl.n_slices == 30
    assert cl.z_extent == (5, 24)
    np.testing.assert_array_equal(cl.angle_3d_rad[ext], 0.0)
    np.testing.assert_allclose(cl.angle_sag_rad[ext], 0.0, atol=1e-12)
    np.testing.assert_allclose(cl.s_mm[ext], np.arange(20) * 1.5, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cl.points_mm[ext, 0], 5.5 * 0.5, atol=1e-12)
    np.testing.assert_allclose(cl.points_mm[ext, 1], 6.0 * 0.5, atol=1e-12)
    np.testing.assert_allclose(cl.tangents[ext], [[0, 0, 1]] * 20, atol=1e-12)
    assert cl.length_mm == pytest.approx(19 * 1.5, abs=1e-12)
    # outside the extent: NaN
    assert np.isnan(cl.points_mm[:5]).all() and np.isnan(cl.s_mm[25:]).all()
    assert np.isnan(cl.angle_3d_rad[:5]).all() and np.isnan(cl.centroids_mm[25:]).all()


def test_along_cord_and_slice_of_s_are_inverse():
    cord = sinusoid_cord((24, 40, 80), (0.5, 0.5, 0.5), amplitude=3.0, period=30.0)
    cl = fit_centerline(cord, spacing=(0.5, 0.5, 0.5))
    s = cl.along_cord_mm(40)
    assert s[40] == 0.0
    assert np.all(np.diff(s) > 0)
    assert s[41] > 0.5  # along a curve a slice step is longer than sz
    np.testing.assert_allclose(cl.slice_of_s(s, z_origin=40), np.arange(80), atol=1e-9)
    np.testing.assert_allclose(cl.slice_of_s(cl.s_mm), np.arange(80), atol=1e-9)
    # fractional origin, scalar and out-of-range queries
    s_frac = cl.along_cord_mm(40.5)
    assert s_frac[40] < 0 < s_frac[41]
    assert cl.slice_of_s(0.0, z_origin=40.5) == pytest.approx(40.5, abs=1e-9)
    assert np.isnan(cl.slice_of_s(-1.0))
    assert np.isnan(cl.slice_of_s(cl.length_mm + 1.0))
    assert cl.slice_of_s(cl.length_mm) == pytest.approx(79)


@pytest.mark.parametrize("spacing", [(0.5, 0.5, 0.5), (0.3, 0.3, 1.0), (0.4, 0.25, 2.0)])
@pytest.mark.parametrize("theta_deg", [10.0, 20.0, 35.0])
def test_tilted_cord_angle_and_length(spacing, theta_deg):
    fov = (14.0, 44.0, 40.0)
    shape = tuple(round(f / s) for f, s in zip(fov, spacing, strict=True))
    cord = tilted_cord(shape, spacing, theta_deg=theta_deg)
    cl = fit_centerline(cord, spacing=spacing)
    z0, z1 = cl.z_extent
    assert (z0, z1) == (0, shape[2] - 1)
    inner = slice(z0 + 2, z1 - 1)
    np.testing.assert_allclose(np.degrees(cl.angle_3d_rad[inner]), theta_deg, atol=0.25)
    np.testing.assert_allclose(np.degrees(cl.angle_sag_rad[inner]), theta_deg, atol=0.25)
    true_length = (z1 - z0) * spacing[2] / np.cos(np.radians(theta_deg))
    assert cl.length_mm == pytest.approx(true_length, rel=5e-3)
    assert np.all(cl.tangents[inner, 1] > 0)  # the axis advances anteriorly going up


def test_tilt_in_coronal_plane_has_no_sagittal_angle():
    spacing = (0.5, 0.5, 0.5)
    cord = tilted_cord((80, 24, 80), spacing, theta_deg=25.0, plane="xz")
    cl = fit_centerline(cord, spacing=spacing)
    inner = slice(5, 75)
    np.testing.assert_allclose(np.degrees(cl.angle_3d_rad[inner]), 25.0, atol=0.25)
    np.testing.assert_allclose(cl.angle_sag_rad[inner], 0.0, atol=1e-3)


def test_curved_cord_follows_sinusoid():
    amp, period, sz = 3.0, 60.0, 0.5
    cord = sinusoid_cord((24, 44, 240), (0.5, 0.5, sz), amplitude=amp, period=period)
    cl = fit_centerline(cord, spacing=(0.5, 0.5, sz))
    k = 2 * np.pi / period
    z_mm = np.arange(240) * sz
    true_slope = amp * k * np.cos(k * z_mm)
    true_angle = np.degrees(np.arctan(np.abs(true_slope)))
    inner = slice(20, 220)  # away from the spline's free ends
    err = np.abs(np.degrees(cl.angle_3d_rad[inner]) - true_angle[inner])
    assert err.max() < 1.0
    true_s, _ = quad(lambda z: np.sqrt(1 + (amp * k * np.cos(k * z)) ** 2), 0, z_mm[-1])
    assert cl.length_mm == pytest.approx(true_s, rel=2e-3)
    # the y of the smoothed curve follows the analytic centre within 0.1 mm
    y0 = 21.5 * 0.5
    np.testing.assert_allclose(
        cl.points_mm[inner, 1], y0 + amp * np.sin(k * z_mm[inner]), atol=0.1
    )


def test_default_smoothing_from_cord_size():
    spacing = (0.5, 0.5, 1.0)
    cord = tilted_cord((24, 24, 30), spacing, theta_deg=0.0, a=4.0, b=4.0)
    cl = fit_centerline(cord, spacing=spacing)
    diameter = 2 * np.sqrt(np.median(cord.sum(axis=(0, 1))) * 0.25 / np.pi)
    assert diameter == pytest.approx(8.0, rel=0.02)
    assert cl.smoothing_mm == pytest.approx(2 * diameter)
    thick = fit_centerline(cord[:, :, ::10], spacing=(0.5, 0.5, 10.0), smoothing=None)
    assert thick.smoothing_mm == 40.0  # at least four slice thicknesses


def test_smoothing_removes_slice_jitter():
    rng = np.random.default_rng(20240607)
    cord = np.zeros((24, 24, 60), bool)
    shifts = rng.integers(-1, 2, size=(60, 2))  # ±0.5 mm jitter of a 8 mm wide cord
    for z, (dx, dy) in enumerate(shifts):
        cord[4 + dx : 20 + dx, 4 + dy : 20 + dy, z] = True
    spacing = (0.5, 0.5, 0.5)
    smooth = fit_centerline(cord, spacing=spacing)
    raw = fit_centerline(cord, spacing=spacing, smoothing=0)
    # interpolation passes through the centroids, smoothing does not follow the jitter
    np.testing.assert_allclose(raw.points_mm, raw.centroids_mm, atol=1e-9)
    assert np.degrees(raw.angle_3d_rad).max() > 30
    assert np.degrees(smooth.angle_3d_rad[5:55]).max() < 5
    assert smooth.length_mm == pytest.approx(59 * 0.5, rel=5e-3)


def test_gaps_are_bridged_inside_the_extent():
    spacing = (0.5, 0.5, 0.5)
    full = tilted_cord((24, 50, 60), spacing, theta_deg=20.0)
    cord = full.copy()
    cord[:, :, 25:31] = False  # a gap of six slices inside the cord
    cord[:, :, :4] = False  # and no cord below slice 4
    cl = fit_centerline(cord, spacing=spacing)
    assert cl.z_extent == (4, 59)
    assert not cl.has_cord[25:31].any() and cl.has_cord[4:25].all()
    assert np.isnan(cl.centroids_mm[25:31]).all()
    assert np.isfinite(cl.points_mm[25:31]).all()
    np.testing.assert_allclose(np.degrees(cl.angle_3d_rad[25:31]), 20.0, atol=0.25)
    ref = fit_centerline(full, spacing=spacing)
    np.testing.assert_allclose(cl.points_mm[25:31], ref.points_mm[25:31], atol=0.05)
    s = cl.along_cord_mm(28)
    assert np.isnan(s[:4]).all() and np.isfinite(s[4:]).all()


@pytest.mark.parametrize("n_slices", [1, 2, 4])
def test_few_slices(n_slices):
    cord = np.zeros((10, 20, 8), bool)
    for i in range(n_slices):
        cord[3:7, 4 + i : 8 + i, 2 + i] = True
    cl = fit_centerline(cord, spacing=(1.0, 1.0, 1.0))
    ext = slice(2, 2 + n_slices)
    expected = 0.0 if n_slices == 1 else 45.0
    np.testing.assert_allclose(np.degrees(cl.angle_sag_rad[ext]), expected, atol=1e-9)
    assert cl.length_mm == pytest.approx((n_slices - 1) * np.sqrt(2))


def test_centerline_is_frozen_and_read_only():
    cord = np.zeros((6, 6, 6), bool)
    cord[2:4, 2:4, :] = True
    cl = fit_centerline(cord, spacing=(1, 1, 1))
    assert isinstance(cl, Centerline)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cl.smoothing_mm = 3.0
    with pytest.raises(ValueError, match="read-only"):
        cl.s_mm[0] = 5.0


def test_validation_errors():
    cord = np.zeros((6, 6, 6), bool)
    cord[2:4, 2:4, 1:5] = True
    with pytest.raises(DimensionError, match="3D"):
        fit_centerline(cord[:, :, 0], spacing=(1, 1, 1))
    with pytest.raises(SpacingError, match="positive finite"):
        fit_centerline(cord, spacing=(1, 0, 1))
    with pytest.raises(SpacingError, match="positive finite"):
        fit_centerline(cord, spacing=(1, 1))
    with pytest.raises(SegmentationError, match="empty"):
        fit_centerline(np.zeros_like(cord), spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="smoothing"):
        fit_centerline(cord, spacing=(1, 1, 1), smoothing=-1.0)
    cl = fit_centerline(cord, spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="outside the cord's S-I extent"):
        cl.along_cord_mm(0)
    with pytest.raises(ValueError, match="outside the cord's S-I extent"):
        cl.slice_of_s(0.0, z_origin=5.5)


def test_origin_within_half_a_slice_of_the_cord_ends():
    # Issue 8: a site at z = 4.0000002 on a cord ending at slice 4 (float rounding of a
    # world-to-voxel mapping) was refused with "outside the cord's S-I extent".
    cord = np.zeros((6, 6, 6), bool)
    cord[2:4, 2:4, 1:5] = True
    cl = fit_centerline(cord, spacing=(1, 1, 1))
    assert cl.along_cord_mm(4 + 2.4e-7)[4] == pytest.approx(0.0)
    assert cl.along_cord_mm(1 - 8e-8)[1] == pytest.approx(0.0)
    assert np.array_equal(cl.along_cord_mm(4.4), cl.along_cord_mm(4), equal_nan=True)
    with pytest.raises(ValueError, match="outside the cord's S-I extent"):
        cl.along_cord_mm(4.6)
