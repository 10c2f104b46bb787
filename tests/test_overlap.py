"""Tests of graftimg.measure.overlap on hand-computed toy cases."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.distance import cdist

from graftimg.errors import DimensionError, SpacingError
from graftimg.measure.overlap import (
    dice,
    hausdorff95_mm,
    hausdorff_mm,
    mean_surface_distance_mm,
    relative_volume_error,
    surface_distances_mm,
    volume_similarity,
    volume_similarity_signed,
)


def cube(n=10, shift=(0, 0, 0), size=16):
    m = np.zeros((size, size, size), bool)
    lo = np.array([2, 2, 2]) + np.asarray(shift)
    m[lo[0] : lo[0] + n, lo[1] : lo[1] + n, lo[2] : lo[2] + n] = True
    return m


def brute_force_distances(a, b, spacing):
    """Boundary voxels by explicit 6-neighbour test, then all pairwise distances."""

    def boundary(m):
        p = np.pad(m, 1)
        inner = p[1:-1, 1:-1, 1:-1]
        all_in = np.ones_like(m)
        for axis in range(3):
            for step in (-1, 1):
                all_in &= np.roll(p, step, axis=axis)[1:-1, 1:-1, 1:-1]
        return inner & ~all_in

    pa = np.argwhere(boundary(a)) * np.asarray(spacing)
    pb = np.argwhere(boundary(b)) * np.asarray(spacing)
    d = cdist(pa, pb)
    return d.min(axis=1), d.min(axis=0)


def sitk_image(mask, spacing):
    img = sitk.GetImageFromArray(np.transpose(mask.astype(np.uint8), (2, 1, 0)))
    img.SetSpacing(tuple(float(s) for s in spacing))
    return img


def test_cube_shifted_by_one_voxel_isotropic():
    a, b = cube(), cube(shift=(1, 0, 0))
    # boundary of a 10-cube: 1000 − 512 = 488 voxels per mask; 100 (face left behind) + 64
    # (inner part of the face moved into) are 1 voxel away, the other 324 coincide.
    assert hausdorff_mm(a, b, spacing=(1, 1, 1)) == 1.0
    assert hausdorff95_mm(a, b, spacing=(1, 1, 1)) == 1.0
    assert mean_surface_distance_mm(a, b, spacing=(1, 1, 1)) == pytest.approx(164 / 488)
    d_ab, d_ba = surface_distances_mm(a, b, spacing=(1, 1, 1))
    assert d_ab.size == d_ba.size == 488
    assert np.count_nonzero(d_ab) == 164
    assert dice(a, b) == pytest.approx(2 * 900 / 2000)


@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 0.5), (2.0, 1.0, 1.0), (0.3, 0.6, 3.0)]
)
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_hausdorff_scales_with_spacing(spacing, axis):
    shift = [0, 0, 0]
    shift[axis] = 2
    a, b = cube(n=6), cube(n=6, shift=shift)
    hd = hausdorff_mm(a, b, spacing=spacing)
    assert hd == pytest.approx(2 * spacing[axis])
    ref_ab, ref_ba = brute_force_distances(a, b, spacing)
    d_ab, d_ba = surface_distances_mm(a, b, spacing=spacing)
    np.testing.assert_allclose(np.sort(d_ab), np.sort(ref_ab), atol=1e-12)
    np.testing.assert_allclose(np.sort(d_ba), np.sort(ref_ba), atol=1e-12)
    merged = np.concatenate([ref_ab, ref_ba])
    assert mean_surface_distance_mm(a, b, spacing=spacing) == pytest.approx(merged.mean())
    assert hausdorff95_mm(a, b, spacing=spacing) == pytest.approx(np.percentile(merged, 95))


def test_irregular_shapes_match_brute_force():
    rng = np.random.default_rng(3)
    a = rng.random((9, 10, 11)) < 0.3
    b = rng.random((9, 10, 11)) < 0.3
    spacing = (0.4, 0.7, 1.3)
    ref_ab, ref_ba = brute_force_distances(a, b, spacing)
    d_ab, d_ba = surface_distances_mm(a, b, spacing=spacing)
    np.testing.assert_allclose(np.sort(d_ab), np.sort(ref_ab), atol=1e-12)
    np.testing.assert_allclose(np.sort(d_ba), np.sort(ref_ba), atol=1e-12)


def test_masks_touching_the_array_border():
    full = np.ones((5, 6, 7), bool)
    cut = full.copy()
    cut[:, :, 6] = False
    assert hausdorff_mm(full, full, spacing=(1, 1, 2)) == 0.0
    assert hausdorff_mm(full, cut, spacing=(1, 1, 2)) == 2.0


def test_agrees_with_simpleitk():
    a = cube(n=8)
    b = cube(n=6, shift=(1, 2, 0))
    spacing = (0.5, 0.7, 1.1)
    f = sitk.LabelOverlapMeasuresImageFilter()
    f.Execute(sitk_image(a, spacing), sitk_image(b, spacing))
    assert dice(a, b) == pytest.approx(f.GetDiceCoefficient())
    assert volume_similarity_signed(a, b) == pytest.approx(f.GetVolumeSimilarity())
    assert volume_similarity_signed(a, b) > 0  # a is the larger
    h = sitk.HausdorffDistanceImageFilter()
    h.Execute(sitk_image(a, spacing), sitk_image(cube(n=8, shift=(0, 0, 1)), spacing))
    assert hausdorff_mm(a, cube(n=8, shift=(0, 0, 1)), spacing=spacing) == pytest.approx(
        h.GetHausdorffDistance()
    )


def test_volume_similarity_definitions_are_named():
    a = np.zeros((4, 4, 4), bool)
    a[:3] = True  # 48 voxels
    b = np.zeros((4, 4, 4), bool)
    b[3:] = True  # 16 voxels, no overlap
    assert volume_similarity(a, b) == pytest.approx(1 - 32 / 64)
    assert volume_similarity(a, b) == volume_similarity(b, a)
    assert volume_similarity_signed(a, b) == pytest.approx(2 * 32 / 64)
    assert volume_similarity_signed(b, a) == pytest.approx(-1.0)
    assert relative_volume_error(a, b) == pytest.approx(2.0)
    assert relative_volume_error(b, a) == pytest.approx(-2 / 3)
    assert volume_similarity(a, a) == 1.0 and dice(a, b) == 0.0


def test_empty_mask_conventions():
    empty = np.zeros((5, 5, 5), bool)
    one = empty.copy()
    one[2, 2, 2] = True
    sp = (1, 1, 1)
    # both empty: nothing to compare
    for value in (
        dice(empty, empty),
        volume_similarity(empty, empty),
        volume_similarity_signed(empty, empty),
        hausdorff_mm(empty, empty, spacing=sp),
        hausdorff95_mm(empty, empty, spacing=sp),
        mean_surface_distance_mm(empty, empty, spacing=sp),
        relative_volume_error(empty, empty),
    ):
        assert np.isnan(value)
    # one empty: overlap metrics take their formula's value, distances are undefined
    assert dice(one, empty) == 0.0
    assert volume_similarity(one, empty) == 0.0
    assert volume_similarity_signed(one, empty) == 2.0
    assert volume_similarity_signed(empty, one) == -2.0
    assert relative_volume_error(empty, one) == -1.0
    assert relative_volume_error(one, empty) != relative_volume_error(one, empty)  # NaN
    assert np.isnan(hausdorff_mm(one, empty, spacing=sp))
    assert np.isnan(hausdorff95_mm(empty, one, spacing=sp))
    assert np.isnan(mean_surface_distance_mm(one, empty, spacing=sp))
    d_ab, d_ba = surface_distances_mm(one, empty, spacing=sp)
    assert d_ab.size == 0 and d_ba.size == 0


def test_validation():
    a = np.zeros((4, 4, 4), bool)
    with pytest.raises(ValueError, match="share one grid"):
        dice(a, np.zeros((4, 4, 5), bool))
    with pytest.raises(DimensionError, match="3D"):
        dice(a[0], a[0])
    with pytest.raises(SpacingError, match="positive finite"):
        hausdorff_mm(a, a, spacing=(1, 1, 0))
