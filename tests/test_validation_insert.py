"""Truth of the real-anatomy insertion (graftimg.validation.insert), issue 8 deliverable 1.

Each test checks a number the campaign relies on against an independent computation: the
partial-volume maps against analytic ellipsoid volumes, the inserted tissue level against the
cord and CSF levels measured apart, the SNR reached against the noise measured on the output, the
resampled manual cord against the host's, and determinism by seed.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from graftimg.errors import ConfigError, DimensionError, SegmentationError
from graftimg.io import Volume
from graftimg.phantom.iron import void_volume_mm3
from graftimg.phantom.motion import RigidMotion, random_motion
from graftimg.preprocess.noise import estimate_noise
from graftimg.validation.insert import (
    HostScan,
    InsertSpec,
    add_noise_to_snr,
    cord_and_csf_levels,
    ellipsoid_fraction,
    load_host,
    resample_host,
    synthesize,
)

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def t2_host(sct_data):
    return load_host(sct_data / "t2/t2.nii.gz", sct_data / "t2/t2_seg-manual.nii.gz", name="T2w")


@pytest.fixture(scope="module")
def t2s_host(sct_data):
    return load_host(sct_data / "t2s/t2s.nii.gz", sct_data / "t2s/t2s_seg.nii.gz", name="T2starw")


def _rotation(deg_x: float, deg_y: float) -> np.ndarray:
    return RigidMotion(rotation_deg=(deg_x, deg_y, 0.0)).rotation_matrix


# -- partial-volume maps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 0.8), (0.5, 0.5, 3.0)], ids=["1mm", "0.8mm", "axial"]
)
@pytest.mark.parametrize("semi_axes", [(1.2, 0.9, 2.5), (3.0, 2.2, 7.0)], ids=["small", "large"])
def test_ellipsoid_pv_sum_matches_analytic_volume(spacing, semi_axes):
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-13.3, 4.1, -20.7)  # grid offset: the ellipsoid is not voxel-centred
    shape = tuple(round(40 / s) for s in spacing)
    centre = affine[:3, 3] + np.array([20.17, 19.63, 20.41])
    pv = ellipsoid_fraction(affine, shape, centre, semi_axes, _rotation(2.5, -3.0))
    analytic = 4.0 / 3.0 * math.pi * np.prod(semi_axes)
    measured = pv.sum() * np.prod(spacing)
    assert measured == pytest.approx(analytic, rel=0.012)
    assert pv.min() >= 0.0 and pv.max() == 1.0


def test_t2_truth_maps_sum_to_the_inserted_ellipsoid(t2_host):
    synth = synthesize(t2_host, InsertSpec("t2", n_voxels=150, cyst=True, seed=3))
    graft, cyst = synth.truth["graft"], synth.truth["cyst"]
    v = synth.voxel_volume_mm3
    semi = synth.info["semi_axes_mm"]
    analytic = 4.0 / 3.0 * math.pi * np.prod(semi)
    # the cyst lies inside the graft ellipsoid; graft truth excludes it
    assert (graft + cyst).sum() * v == pytest.approx(analytic, rel=0.01)
    assert cyst.sum() * v == pytest.approx(
        4.0 / 3.0 * math.pi * np.prod(synth.info["cyst_semi_axes_mm"]), rel=0.03
    )
    assert np.all(graft + cyst <= 1.0 + 1e-6)
    assert synth.info["truth_graft_pv_mm3"] == pytest.approx(graft.sum() * v)


# -- levels ------------------------------------------------------------------------------------


def test_csf_level_is_robust_to_dark_ring_structures():
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[:48, :48]
    r2 = (xx - 24.0) ** 2 + (yy - 24.0) ** 2
    cord2d = r2 <= 36
    ring2d = (r2 > 36) & (r2 <= 110)
    image = np.full((48, 48, 6), 80.0)
    image[cord2d] = 300.0
    image[ring2d] = 900.0
    # dura, roots and bone in 60 % of the ring (darker than the cord)
    dark = ring2d & (np.arctan2(yy - 24.0, xx - 24.0) > -0.6)
    image[dark] = 150.0
    image += rng.normal(0.0, 25.0, image.shape)
    cord = np.repeat(cord2d[:, :, None], 6, axis=2)
    levels = cord_and_csf_levels(image, cord, spacing=(1.0, 1.0, 1.0), slices=range(6))
    assert levels.cord == pytest.approx(300.0, rel=0.02)
    assert levels.csf == pytest.approx(900.0, rel=0.03)
    assert levels.ring_median < 0.5 * 900.0  # what a plain median would have given


def test_levels_refuse_slices_without_cord():
    image = np.ones((10, 10, 3))
    cord = np.zeros((10, 10, 3), bool)
    with pytest.raises(SegmentationError, match="no cord or CSF-ring voxel"):
        cord_and_csf_levels(image, cord, spacing=(1, 1, 1), slices=[0, 1])


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.75])
def test_inserted_level_is_the_fraction_between_measured_cord_and_csf(t2_host, fraction):
    # No texture, no added noise (SNR far above the host's): the image minus the resampled host
    # is exactly (tissue − cord level) wherever the voxel is all graft.
    spec = InsertSpec("t2", n_voxels=200, fraction=fraction, texture=0.0, snr=1e6, seed=7)
    synth = synthesize(t2_host, spec)
    info = synth.info
    assert info["sigma_added"] == 0.0
    motion = random_motion(np.random.default_rng([7, 8]), max_rotation_deg=3, max_translation_mm=2)
    rs = resample_host(t2_host, spacing=spec.spacing_mm, motion=motion, noise_seed=7)
    start = info["crop_start_slice"]
    host = rs.image[:, :, start : start + synth.data.shape[2]]
    full = synth.truth["graft"] >= 0.999
    assert full.sum() >= 20
    delta = np.asarray(synth.data, dtype=np.float64)[full] - host[full]
    # the levels, measured apart on the resampled host around the insert
    touched = np.zeros(rs.image.shape, bool)
    touched[:, :, start : start + synth.data.shape[2]] = synth.truth["graft"] > 0
    zs = np.flatnonzero(touched.any(axis=(0, 1)))
    levels = cord_and_csf_levels(
        rs.image, rs.cord, spacing=rs.spacing, slices=range(zs[0] - 2, zs[-1] + 3), exclude=touched
    )
    assert info["cord_level"] == pytest.approx(levels.cord)
    assert info["csf_level"] == pytest.approx(levels.csf)
    expected = levels.cord + fraction * (levels.csf - levels.cord)
    assert info["tissue_level"] == pytest.approx(expected)
    assert np.allclose(delta, expected - levels.cord, rtol=0, atol=0.02 * levels.cord)
    # CSF clearly brighter than the cord on this T2w (real contrast, not a default)
    assert levels.csf > 2.0 * levels.cord


# -- noise -------------------------------------------------------------------------------------


def test_add_noise_reaches_the_target_sigma():
    rng = np.random.default_rng(0)
    noisy, info = add_noise_to_snr(
        np.full(200_000, 400.0), signal=400.0, snr=20.0, residual_sigma=12.0, rng=rng
    )
    assert info["sigma_added"] == pytest.approx(16.0)
    assert float(noisy.std()) == pytest.approx(16.0, rel=0.02)
    assert info["snr_reached"] == pytest.approx(20.0)


def test_unreachable_snr_is_recorded_not_pretended():
    _, info = add_noise_to_snr(
        np.full(10, 100.0), signal=100.0, snr=40.0, residual_sigma=5.0, rng=np.random.default_rng()
    )
    assert info["sigma_added"] == 0.0
    assert info["snr_reached"] == pytest.approx(20.0)


def test_add_noise_refuses_a_bad_snr():
    with pytest.raises(ConfigError, match="snr must be positive"):
        add_noise_to_snr(np.ones(3), signal=1.0, snr=0.0, residual_sigma=0.1, rng=None)


@pytest.mark.parametrize("snr", [10.0, 20.0])
def test_reached_snr_matches_the_noise_measured_on_the_output(t2_host, snr):
    synth = synthesize(t2_host, InsertSpec("t2", n_voxels=60, snr=snr, seed=11))
    assert synth.info["snr_reached"] == pytest.approx(snr)
    sigma = estimate_noise(np.asarray(synth.data), spacing=synth.spacing).sigma
    cord_median = float(np.median(np.asarray(synth.data)[synth.cord_manual]))
    assert cord_median / sigma == pytest.approx(snr, rel=0.10)


def test_host_noise_is_measured_and_resampling_lowers_it(t2_host):
    rs1 = resample_host(t2_host, spacing=(1.0, 1.0, 1.0), motion=RigidMotion((2.0, 1.0, 0.5)))
    rs3 = resample_host(t2_host, spacing=(0.5, 0.5, 3.0), motion=RigidMotion((2.0, 1.0, 0.5)))
    expected = estimate_noise(t2_host.image.data, spacing=t2_host.image.spacing).sigma
    assert rs1.host_sigma == pytest.approx(expected)
    # cubic interpolation off the grid smooths noise; a 3 mm slice averages ~3 host slices
    assert 0.5 < rs1.noise_gain < 1.0
    assert rs3.noise_gain < rs1.noise_gain
    assert rs3.subsamples == (1, 1, 6)


# -- resampling of the manual cord -------------------------------------------------------------


@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (0.8, 0.8, 0.8), (0.5, 0.5, 3.0)], ids=["1mm", "0.8mm", "axial"]
)
def test_resampled_manual_cord_keeps_its_volume(t2_host, spacing):
    host_area = t2_host.cord.sum() / t2_host.cord.any(axis=(0, 1)).sum()  # mm² (1 mm host)
    still = resample_host(t2_host, spacing=spacing)
    volume = still.cord.sum() * still.voxel_volume_mm3
    assert volume == pytest.approx(t2_host.cord.sum(), rel=0.03)
    moved = resample_host(
        t2_host, spacing=spacing, motion=RigidMotion((1.5, -2.0, 1.0), (1.0, -0.8, 0.6))
    )
    slices = moved.cord.any(axis=(0, 1)).sum()
    area = moved.cord.sum() * moved.voxel_volume_mm3 / (slices * moved.spacing[2])
    assert area == pytest.approx(host_area, rel=0.04)


def test_motion_moves_the_cord(t2_host):
    still = resample_host(t2_host, spacing=(1.0, 1.0, 1.0))
    moved = resample_host(
        t2_host, spacing=(1.0, 1.0, 1.0), motion=RigidMotion((0, 0, 0), (2, 0, 0))
    )
    k = still.image.shape[2] // 2
    cx_still = np.argwhere(still.cord[:, :, k])[:, 0].mean()
    cx_moved = np.argwhere(moved.cord[:, :, k])[:, 0].mean()
    assert cx_moved - cx_still == pytest.approx(2.0, abs=0.25)


# -- iron --------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 3.0)], ids=["1mm", "axial"])
def test_iron_signal_loss_truth(t2s_host, spacing):
    synth = synthesize(t2s_host, InsertSpec("iron", n_voxels=120, spacing_mm=spacing, seed=5))
    loss = synth.truth["loss"]
    info = synth.info
    analytic = void_volume_mm3(info["dipole_constant_mm3"], info["core_radius_mm"])
    assert info["void_analytic_mm3"] == pytest.approx(analytic)
    assert loss.min() >= 0.0 and loss.max() <= 1.0
    assert loss.max() == pytest.approx(1.0)  # the core is fully dark
    # dephasing around the |φ| ≥ φc void makes the signal loss a little larger than the void
    loss_mm3 = synth.truth_volume_mm3("loss")
    assert analytic < loss_mm3 < 1.3 * analytic


def test_iron_core_sits_at_the_noise_floor(t2_host):
    synth = synthesize(t2_host, InsertSpec("iron", n_voxels=150, snr=20.0, seed=2))
    core = synth.truth["loss"] > 0.999
    data = np.asarray(synth.data, dtype=np.float64)
    sigma = synth.info["sigma_target"]
    # Rayleigh mean σ√(π/2): the noise is uniform, also where the host's own noise was removed
    assert data[core].mean() == pytest.approx(sigma * math.sqrt(math.pi / 2), rel=0.25)


# -- placement, crop, determinism --------------------------------------------------------------


@pytest.mark.parametrize("position", ["centre", "offcentre", "edge"])
def test_insert_stays_inside_the_manual_cord(t2_host, position):
    synth = synthesize(t2_host, InsertSpec("t2", n_voxels=80, position=position, seed=9))
    pv = synth.truth["graft"] + synth.truth["cyst"]
    outside = pv[~synth.cord_manual].sum() / pv.sum()
    assert outside < 0.05
    if position == "edge":  # touching: the insert reaches the manual cord's boundary voxels
        boundary = synth.cord_manual & ~_erode_in_plane(synth.cord_manual)
        assert pv[boundary].max() > 0.3


def _erode_in_plane(mask):
    from scipy import ndimage

    structure = np.zeros((3, 3, 3), bool)
    structure[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    return ndimage.binary_erosion(mask, structure)


@pytest.mark.parametrize("fov", [16.0, 24.0])
def test_crop_holds_the_whole_insert(t2_host, fov):
    synth = synthesize(t2_host, InsertSpec("t2", n_voxels=300, fov_mm=fov, seed=1))
    assert synth.data.shape[2] == round(fov)
    pv = synth.truth["graft"]
    zs = np.flatnonzero((pv > 1e-3).any(axis=(0, 1)))
    assert zs.min() >= 1 and zs.max() <= synth.data.shape[2] - 2
    # inserted volume recorded is what the truth holds (capped by the FOV, never pretended)
    assert synth.truth_volume_mm3("graft") == pytest.approx(
        synth.info["inserted_volume_mm3"], rel=0.01
    )


def test_same_seed_same_arrays_other_seed_other_arrays(t2_host):
    spec = InsertSpec("t2", n_voxels=90, cyst=True, fov_mm=32.0, seed=4)
    a, b = synthesize(t2_host, spec), synthesize(t2_host, spec)
    assert np.array_equal(a.data, b.data)
    assert np.array_equal(a.truth["graft"], b.truth["graft"])
    assert a.site_mm == b.site_mm and a.info == b.info
    c = synthesize(t2_host, InsertSpec("t2", n_voxels=90, cyst=True, fov_mm=32.0, seed=5))
    assert not np.array_equal(a.data, c.data) or a.site_mm != c.site_mm


def test_nothing_inserted_leaves_no_truth(t2_host):
    synth = synthesize(t2_host, InsertSpec("none", fov_mm=24.0, seed=0))
    assert dict(synth.truth) == {}
    assert synth.data.shape[2] == 24


# -- errors ------------------------------------------------------------------------------------


def test_fov_longer_than_the_host_is_refused(t2_host):
    with pytest.raises(ConfigError, match="field of view of 64"):
        synthesize(t2_host, InsertSpec("t2", fov_mm=64.0))


def test_t2_graft_needs_csf_brighter_than_cord():
    rng = np.random.default_rng(0)
    image = rng.normal(500.0, 5.0, (40, 40, 30))  # "T1w": CSF darker than cord
    yy, xx = np.mgrid[:40, :40]
    r2 = (xx - 20.0) ** 2 + (yy - 20.0) ** 2
    cord2d = r2 <= 30
    image[(r2 > 30) & (r2 <= 80)] = rng.normal(150.0, 5.0, ((r2 > 30) & (r2 <= 80)).sum())[:, None]
    cord = np.repeat(cord2d[:, :, None], 30, axis=2)
    host = HostScan("fake-T1w", Volume.from_array(image), cord)
    with pytest.raises(SegmentationError, match="T2-weighted host"):
        synthesize(host, InsertSpec("t2", n_voxels=40, seed=0))


def test_mask_on_another_grid_is_refused(sct_data):
    with pytest.raises(DimensionError, match=r"t2s_seg\.nii\.gz: the cord mask's grid"):
        load_host(sct_data / "t2/t2.nii.gz", sct_data / "t2s/t2s_seg.nii.gz")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("mode", "bright", "mode must be"),
        ("position", "inside", "position must be"),
        ("fraction", 1.5, "fraction must lie"),
        ("n_voxels", 0.0, "n_voxels must be positive"),
        ("fov_mm", -1.0, "fov_mm must be positive"),
    ],
)
def test_bad_spec_is_refused(field, value, match):
    with pytest.raises(ConfigError, match=match):
        InsertSpec(**{field: value})


# -- the campaign ------------------------------------------------------------------------------


def _campaign():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "validate_real.py"
    spec = importlib.util.spec_from_file_location("validate_real", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["validate_real"] = module
    spec.loader.exec_module(module)
    return module


def test_campaign_has_twenty_seeds_per_condition_and_says_what_it_skips():
    vr = _campaign()
    notes: list[str] = []
    cases = vr.campaign_cases(20, notes=notes)
    assert len(cases) == len(set(cases))
    t2_fov = [c for c in cases if c.mode == "t2" and c.insert and c.grid == "iso1"]
    for fov in (16.0, 24.0, 32.0, 48.0, None):
        seeds = {
            c.seed
            for c in t2_fov
            if c.fov == fov and c.snr == 20.0 and c.fraction == 0.5 and c.size is None
        }
        assert seeds == set(range(20))
    assert any("FOV 64 mm skipped on host T2w" in n for n in notes)
    assert not any(c.host == "T1w" for c in cases)  # holdout host stays out of tuning
    holdout = vr.campaign_cases(20, modes=["iron"], holdout=True)
    assert {c.host for c in holdout} == {"T1w"} and min(c.seed for c in holdout) == 1000


@pytest.mark.slow
def test_one_case_runs_through_the_pipeline():
    vr = _campaign()
    row = vr.run_case(vr.Case("t2", "T2w", 0, fov=24.0, size=120.0))
    assert "synth_error" not in row
    assert row["truth_mm3"] == pytest.approx(row["synth"]["truth_graft_pv_mm3"])
    # a pipeline failure is a recorded, failed case; otherwise the comparison is complete
    assert "error" in row or {"error_pct", "dice", "cord_dice", "graft_share_pct"} <= set(row)
