"""Tests of graftimg.measure.volume on phantoms of analytically known volume."""

from __future__ import annotations

import numpy as np
import pytest

from graftimg.errors import DimensionError, SpacingError
from graftimg.measure.volume import (
    component_table,
    n_voxels,
    normal_extent_mm,
    partial_volume_weights,
    pv_region,
    pv_volume_mm3,
    surface_area_mm2,
    surface_band_mm3,
    volume_mm3,
)

SEMI_AXES_100 = (2.0, 3.0, 100.0 / (4 / 3 * np.pi * 6.0))  # an ellipsoid of exactly 100 mm³


def ellipsoid_fraction(shape, spacing, semi_axes, centre, *, oversample=4):
    """Fraction of each voxel inside an ellipsoid (block average of a finer grid)."""
    fine = []
    for n, s in zip(shape, spacing, strict=True):
        sub = (np.arange(oversample) + 0.5) / oversample - 0.5  # sub-voxel centres
        fine.append((np.arange(n)[:, None] + sub[None, :]).ravel() * s)
    x, y, z = np.meshgrid(*fine, indexing="ij")
    r = sum(((c - c0) / a) ** 2 for c, c0, a in zip((x, y, z), centre, semi_axes, strict=True))
    inside = (r <= 1.0).astype(float)
    o = oversample
    return inside.reshape(shape[0], o, shape[1], o, shape[2], o).mean(axis=(1, 3, 5))


def ellipsoid_mask(shape, spacing, semi_axes, centre):
    """Voxels whose centre lies inside the ellipsoid."""
    grids = np.meshgrid(
        *(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij"
    )
    r = sum(((g - c0) / a) ** 2 for g, c0, a in zip(grids, centre, semi_axes, strict=True))
    return r <= 1.0


def grid_for(spacing, fov=(10.0, 12.0, 16.0)):
    return tuple(int(np.ceil(f / s)) for f, s in zip(fov, spacing, strict=True))


# ---------------------------------------------------------------------------- binary volume


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.25, 2.0), (0.1, 0.1, 0.5)])
def test_volume_counts_voxels_times_voxel_volume(spacing):
    mask = np.zeros((6, 7, 8), bool)
    mask[1:4, 2:6, 3:8] = True
    assert n_voxels(mask) == 60
    assert volume_mm3(mask, spacing=spacing) == pytest.approx(60 * np.prod(spacing), rel=1e-12)
    assert volume_mm3(np.zeros((2, 2, 2), bool), spacing=spacing) == 0.0


def test_volume_of_physical_ellipsoid_is_orientation_and_spacing_free():
    # the same 100 mm³ ellipsoid, voxel order permuted and spacing anisotropic
    spacing = (0.4, 0.5, 0.3)
    shape = grid_for(spacing)
    centre = (5.0, 6.0, 8.0)
    mask = ellipsoid_mask(shape, spacing, SEMI_AXES_100, centre)
    v = volume_mm3(mask, spacing=spacing)
    swapped = np.transpose(mask, (2, 0, 1))
    assert volume_mm3(swapped, spacing=(0.3, 0.4, 0.5)) == v
    assert volume_mm3(mask[::-1, :, ::-1], spacing=spacing) == v
    assert v == pytest.approx(100.0, rel=0.05)


def test_volume_validation():
    with pytest.raises(SpacingError, match="positive finite"):
        volume_mm3(np.ones((2, 2, 2), bool), spacing=(1.0, -1.0, 1.0))
    with pytest.raises(SpacingError, match="positive finite"):
        volume_mm3(np.ones((2, 2, 2), bool), spacing=(1.0, np.nan, 1.0))
    with pytest.raises(DimensionError, match="3D"):
        volume_mm3(np.ones((2, 2), bool), spacing=(1.0, 1.0, 1.0))


# ------------------------------------------------------------ partial-volume weighted volume


def test_weights_both_polarities():
    img = np.array([100.0, 80.0, 50.0, 10.0, -5.0, 130.0]).reshape(1, 1, 6)
    iron = partial_volume_weights(img, level_normal=100.0, level_full=0.0)
    np.testing.assert_allclose(iron.ravel(), [0.0, 0.2, 0.5, 0.9, 1.0, 0.0])
    bright = partial_volume_weights(img, level_normal=50.0, level_full=100.0)
    np.testing.assert_allclose(bright.ravel(), [1.0, 0.6, 0.0, 0.0, 0.0, 1.0])
    cand = np.zeros(img.shape, bool)
    cand[..., 1:3] = True
    masked = partial_volume_weights(img, cand, level_normal=100.0, level_full=0.0)
    np.testing.assert_allclose(masked.ravel(), [0.0, 0.2, 0.5, 0.0, 0.0, 0.0])
    assert masked.dtype == np.float64


def test_weights_validation():
    img = np.zeros((2, 2, 2))
    with pytest.raises(ValueError, match="no contrast"):
        partial_volume_weights(img, level_normal=1.0, level_full=1.0)
    with pytest.raises(ValueError, match="finite"):
        partial_volume_weights(img, level_normal=np.nan, level_full=1.0)
    with pytest.raises(ValueError, match="same shape"):
        partial_volume_weights(img, np.ones((2, 2, 3), bool), level_normal=0.0, level_full=1.0)
    with pytest.raises(DimensionError, match="3D"):
        partial_volume_weights(np.zeros(4), level_normal=0.0, level_full=1.0)


def test_pv_region_is_mask_plus_26_shell():
    m = np.zeros((5, 5, 5), bool)
    m[2, 2, 2] = True
    assert pv_region(m).sum() == 27
    m2 = np.zeros((5, 5, 5), bool)
    m2[0, 0, 0] = True  # at a corner of the array: the shell is cut by the border
    assert pv_region(m2).sum() == 8
    within = np.zeros_like(m)
    within[:, :, 2] = True
    assert pv_region(m, within=within).sum() == 9
    with pytest.raises(ValueError, match="same shape"):
        pv_region(m, within=np.ones((5, 5, 4), bool))


def test_pv_volume_ignores_voxels_beyond_the_shell():
    img = np.full((9, 9, 9), 100.0)
    img[4, 4, 4] = 0.0  # one full voxel
    img[4, 4, 5] = 60.0  # a 40 % voxel in the shell
    img[4, 4, 7] = 0.0  # dark, but two voxels away: not graft of this region
    region = np.zeros(img.shape, bool)
    region[4, 4, 4] = True
    v = pv_volume_mm3(img, region, spacing=(1, 1, 2), level_normal=100.0, level_full=0.0)
    assert v == pytest.approx((1.0 + 0.4) * 2.0)
    within = np.ones(img.shape, bool)
    within[:, :, 5] = False
    v_within = pv_volume_mm3(
        img, region, spacing=(1, 1, 2), level_normal=100.0, level_full=0.0, within=within
    )
    assert v_within == pytest.approx(2.0)
    empty = np.zeros(img.shape, bool)
    assert pv_volume_mm3(img, empty, spacing=(1, 1, 1), level_normal=100.0, level_full=0.0) == 0


@pytest.mark.parametrize("polarity", ["iron", "t2"])
def test_pv_and_binary_volume_accuracy_isotropic(polarity):
    """Validation item 2: 100 mm³ ellipsoid at 0.8 mm: binary ±5 %, PV ±2 %, better at 0.4."""
    levels = {"iron": (100.0, 5.0), "t2": (60.0, 85.0)}[polarity]
    normal, full = levels
    errors = {}
    for s in (0.8, 0.4):
        spacing = (s, s, s)
        shape = grid_for(spacing)
        centre = (5.13, 6.07, 7.91)  # off the grid
        frac = ellipsoid_fraction(shape, spacing, SEMI_AXES_100, centre)
        img = normal + (full - normal) * frac
        region = partial_volume_weights(img, level_normal=normal, level_full=full) >= 0.5
        v_bin = volume_mm3(region, spacing=spacing)
        v_pv = pv_volume_mm3(img, region, spacing=spacing, level_normal=normal, level_full=full)
        errors[s] = (v_bin / 100.0 - 1.0, v_pv / 100.0 - 1.0)
    assert abs(errors[0.8][0]) < 0.05
    assert abs(errors[0.8][1]) < 0.02
    assert abs(errors[0.4][1]) < abs(errors[0.8][1])
    assert abs(errors[0.4][1]) < 0.005  # PV is exact up to the oversampling of the phantom


def test_pv_volume_anisotropic_thick_slices():
    """Validation item 3: 0.5 × 0.5 × 5 mm, inclusion ≥ 3 slices thick: PV within ±10 %."""
    spacing = (0.5, 0.5, 5.0)
    semi = (2.5, 2.0, 8.0)  # 16 mm along z: more than three slices
    true_v = 4 / 3 * np.pi * np.prod(semi)
    shape = grid_for(spacing, fov=(10.0, 10.0, 40.0))
    for dz in (0.0, 1.3, 2.6):
        frac = ellipsoid_fraction(shape, spacing, semi, (5.1, 4.9, 18.0 + dz), oversample=8)
        img = 100.0 - 95.0 * frac
        region = img <= 52.5
        v_pv = pv_volume_mm3(img, region, spacing=spacing, level_normal=100.0, level_full=5.0)
        assert v_pv == pytest.approx(true_v, rel=0.02)
        # the binary volume lies within its half-voxel surface band
        v_bin = volume_mm3(region, spacing=spacing)
        assert abs(v_bin - true_v) <= surface_band_mm3(region, spacing=spacing)


@pytest.mark.parametrize("spacing", [(0.8, 0.8, 0.8), (0.5, 0.5, 2.0), (0.5, 0.5, 5.0)])
def test_binary_error_inside_surface_band(spacing):
    rng = np.random.default_rng(7)
    semi = (2.5, 3.0, 6.0)
    true_v = 4 / 3 * np.pi * np.prod(semi)
    shape = grid_for(spacing, fov=(10.0, 12.0, 24.0))
    inside = 0
    for _ in range(20):
        centre = np.array([5.0, 6.0, 12.0]) + rng.uniform(-1, 1, 3) * np.asarray(spacing)
        mask = ellipsoid_mask(shape, spacing, semi, centre)
        band = surface_band_mm3(mask, spacing=spacing)
        inside += abs(volume_mm3(mask, spacing=spacing) - true_v) <= band
    assert inside == 20


# ------------------------------------------------------------------------- surface measures


def test_surface_area_of_sphere_and_scaling():
    r = 10
    n = 2 * r + 4
    g = np.indices((n, n, n)) - (n - 1) / 2
    sphere = (g**2).sum(axis=0) <= r * r
    a1 = surface_area_mm2(sphere, spacing=(1, 1, 1))
    assert a1 / (4 * np.pi * r * r) == pytest.approx(1.085, abs=0.01)  # binary staircase: +8.5 %
    assert surface_area_mm2(sphere, spacing=(0.5, 0.5, 0.5)) == pytest.approx(a1 / 4, rel=1e-6)
    assert surface_band_mm3(sphere, spacing=(1, 1, 1)) == pytest.approx(0.5 * a1, rel=1e-9)
    assert surface_area_mm2(np.zeros((4, 4, 4), bool), spacing=(1, 1, 1)) == 0.0
    assert surface_band_mm3(np.zeros((4, 4, 4), bool), spacing=(1, 1, 1)) == 0.0
    assert np.isnan(normal_extent_mm(np.zeros((4, 4, 4), bool), spacing=(1, 1, 1)))


def test_surface_closes_at_array_border():
    full = np.ones((6, 6, 6), bool)
    inner = np.zeros((8, 8, 8), bool)
    inner[1:7, 1:7, 1:7] = True
    assert surface_area_mm2(full, spacing=(1, 2, 3)) == pytest.approx(
        surface_area_mm2(inner, spacing=(1, 2, 3)), rel=1e-9
    )


def test_normal_extent_follows_face_orientation():
    # isotropic: exactly the voxel size, whatever the shape
    ball = np.indices((9, 9, 9)) - 4
    ball = (ball**2).sum(axis=0) <= 12
    assert normal_extent_mm(ball, spacing=(0.6, 0.6, 0.6)) == pytest.approx(0.6, rel=1e-9)
    # a wide flat slab one thick slice high: mostly faces normal to z → towards sz; its rim
    # (chamfered, 5 mm high, normals almost in-plane) pulls it down
    slab = np.zeros((200, 200, 3), bool)
    slab[1:199, 1:199, 1] = True
    assert 4.5 < normal_extent_mm(slab, spacing=(0.5, 0.5, 5.0)) < 5.0
    # a long rod along z: mostly faces normal to x or y → close to 0.5
    rod = np.zeros((4, 4, 200), bool)
    rod[1:3, 1:3, 1:199] = True
    assert normal_extent_mm(rod, spacing=(0.5, 0.5, 5.0)) == pytest.approx(0.5, rel=0.01)


# ---------------------------------------------------------------------------- components


def test_component_table_values():
    mask = np.zeros((8, 8, 8), bool)
    mask[0:2, 0:2, 0:2] = True  # 8 voxels
    mask[5:8, 6, 4:6] = True  # 6 voxels
    img = np.arange(mask.size, dtype=float).reshape(mask.shape)
    rows = component_table(mask, spacing=(0.5, 1.0, 2.0), image=img)
    assert [r["label"] for r in rows] == [1, 2]
    a, b = rows
    assert a["n_voxels"] == 8 and a["volume_mm3"] == pytest.approx(8.0)
    assert b["n_voxels"] == 6 and b["volume_mm3"] == pytest.approx(6.0)
    assert a["centroid_mm"] == pytest.approx((0.25, 0.5, 1.0))
    assert b["centroid_mm"] == pytest.approx((3.0, 6.0, 9.0))
    assert b["centroid_voxel"] == pytest.approx((6.0, 6.0, 4.5))
    assert b["bbox"] == (5, 6, 4, 8, 7, 6)
    assert b["bbox_size_mm"] == pytest.approx((1.5, 1.0, 4.0))
    assert b["n_slices"] == 2
    assert a["mean_intensity"] == pytest.approx(img[0:2, 0:2, 0:2].mean())
    assert b["max_intensity"] == img[7, 6, 5]
    assert all(type(v) in (int, float, tuple) for r in rows for v in r.values())


def test_component_table_equals_regionprops_on_the_whole_grid():
    # component_table works in the mask's bounding box (performance issue: segment ≤ 10×
    # load-and-save); positions and intensities must be those of the whole grid, to the bit.
    from skimage.measure import label, regionprops

    rng = np.random.default_rng(5)
    mask = np.zeros((40, 50, 30), bool)
    mask[17:31, 22:41, 9:26] = rng.random((14, 19, 17)) < 0.2
    img = rng.normal(100.0, 10.0, mask.shape)
    spacing = (0.3, 0.45, 1.7)
    rows = component_table(mask, spacing=spacing, image=img)
    labels = label(mask, connectivity=3)
    expected = regionprops(labels, intensity_image=img, spacing=spacing)
    assert len(rows) == len(expected) > 1
    for row, region in zip(rows, expected, strict=True):
        assert row["centroid_mm"] == tuple(region.centroid)
        assert row["bbox"] == tuple(region.bbox)
        assert row["mean_intensity"] == img[labels == region.label].mean()


def test_component_table_connectivity():
    mask = np.zeros((4, 4, 4), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # touch by a corner only
    assert len(component_table(mask, spacing=(1, 1, 1))) == 1
    assert len(component_table(mask, spacing=(1, 1, 1), connectivity=2)) == 2
    assert len(component_table(mask, spacing=(1, 1, 1), connectivity=1)) == 2
    assert "mean_intensity" not in component_table(mask, spacing=(1, 1, 1))[0]
    assert component_table(np.zeros((3, 3, 3), bool), spacing=(1, 1, 1)) == []
    with pytest.raises(ValueError, match="connectivity"):
        component_table(mask, spacing=(1, 1, 1), connectivity=4)
    with pytest.raises(ValueError, match="same shape"):
        component_table(mask, spacing=(1, 1, 1), image=np.zeros((4, 4, 5)))
