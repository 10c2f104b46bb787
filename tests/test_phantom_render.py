"""Tests of phantom rendering: partial volume, geometry, motion, bias and noise."""

import math

import nibabel as nib
import numpy as np
import pytest

from graftimg.phantom.bias import BiasField
from graftimg.phantom.motion import RigidMotion, random_motion
from graftimg.phantom.noise import add_rician_noise, rayleigh_mean
from graftimg.phantom.render import grid_affine, render_session, supersample_factors
from graftimg.phantom.spec import default_spec

MOTION = RigidMotion(rotation_deg=(2.0, -1.5, 1.0), translation_mm=(0.7, -0.4, 1.1))


def _human(spacing=(0.5, 0.5, 0.5), orientation="PSR", **changes):
    spec = default_spec("human", "t2", bias_amplitude=0.0, **changes)
    shape = tuple(round(f / s) for f, s in zip((22.0, 22.0, 30.0), spacing, strict=True))
    return spec.with_acquisition(
        "T2w", shape=shape, spacing_mm=spacing, orientation=orientation, fov_offset_mm=(0, 0, -2.0)
    )


GEOMETRIES = {
    "straight": dict(curvature_amplitude_mm=0.0),
    "curved": dict(curvature_amplitude_mm=3.0, curvature_period_mm=60.0, curvature_phase_rad=0.0),
    "tilted": dict(curvature_amplitude_mm=0.0, tilt_deg=20.0),
}


@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
def test_graft_volume_voxelised_matches_analytic_at_half_mm(geometry):
    # Acceptance: analytic ellipsoid vs Σ occupancy × voxel volume within 1 % at 0.5 mm iso.
    session = render_session(_human(**GEOMETRIES[geometry]), days=14.0, seed=0, motion=MOTION)
    image = session.images["T2w"]
    truth = session.truth
    assert truth.graft_volume_mm3 == pytest.approx(123.422, abs=1e-3)
    assert image.occupancy_volume_mm3("graft") == pytest.approx(truth.graft_volume_mm3, rel=0.01)
    assert image.occupancy_volume_mm3("cyst") == pytest.approx(truth.cyst_volume_mm3, rel=0.02)
    # the binary truth (occupancy >= 0.5) is close too, but not exact
    assert image.mask_volume_mm3("graft") == pytest.approx(truth.graft_volume_mm3, rel=0.03)
    assert set(np.unique(image.masks["graft"])) == {False, True}


def test_partial_volume_accuracy_with_thick_slices():
    session = render_session(_human(spacing=(0.5, 0.5, 1.5)), days=14.0, seed=0, motion=MOTION)
    image = session.images["T2w"]
    assert supersample_factors(image.acquisition) == (4, 8, 4)  # PSR: S-I is the 2nd axis
    assert image.occupancy_volume_mm3("graft") == pytest.approx(
        session.truth.graft_volume_mm3, rel=0.01
    )


@pytest.mark.parametrize("orientation", ["PSR", "LAS", "RAS", "IPL"])
def test_stored_orientation_and_affine_are_consistent(orientation):
    spec = _human(spacing=(1.0, 1.0, 1.0), orientation=orientation)
    session = render_session(spec, days=14.0, seed=2, motion=MOTION)
    image = session.images["T2w"]
    assert "".join(nib.aff2axcodes(image.affine)) == orientation
    assert image.spacing_mm == pytest.approx((1.0, 1.0, 1.0))
    # the voxel holding the moved injection site is fully graft
    site = np.asarray(session.truth.injection_site_mm)
    ijk = np.rint(np.linalg.solve(image.affine[:3, :3], site - image.affine[:3, 3])).astype(int)
    assert image.occupancy["graft"][tuple(ijk)] == 1.0
    # the same anatomy in another stored orientation holds the same graft volume
    assert image.occupancy_volume_mm3("graft") == pytest.approx(123.422, rel=0.01)
    canonical = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(image.clean), image.affine))
    assert canonical.shape == (22, 22, 30)


def test_motion_moves_the_anatomy_not_the_grid():
    spec = _human(spacing=(1.0, 1.0, 1.0))
    still = render_session(spec, days=14.0, seed=0).images["T2w"]
    moved_session = render_session(spec, days=14.0, seed=0, motion=MOTION)
    moved = moved_session.images["T2w"]
    assert np.array_equal(still.affine, moved.affine)
    assert not np.array_equal(still.clean, moved.clean)

    def centroid(image):
        occ = np.asarray(image.occupancy["graft"], dtype=float)
        ijk = np.argwhere(occ > 0)
        weights = occ[occ > 0]
        centre = (ijk * weights[:, None]).sum(0) / weights.sum()
        return image.affine[:3, :3] @ centre + image.affine[:3, 3]

    site = np.asarray(spec.injection_world_mm)
    assert centroid(still) == pytest.approx(site, abs=0.05)
    expected = MOTION.apply(site[None], site)[0]
    assert moved_session.truth.injection_site_mm == pytest.approx(expected)
    assert centroid(moved) == pytest.approx(expected, abs=0.05)
    assert expected - site == pytest.approx(MOTION.translation_mm)


def test_random_motion_stays_within_bounds():
    rng = np.random.default_rng(0)
    for _ in range(200):
        m = random_motion(rng, max_rotation_deg=3.0, max_translation_mm=2.0)
        assert m.angle_deg <= 3.0 + 1e-9
        assert np.linalg.norm(m.translation_mm) <= 2.0 + 1e-9


def test_relative_intensities_of_t2w():
    spec = _human(
        spacing=(1.0, 1.0, 1.0),
        curvature_amplitude_mm=0.0,
        grey_matter=False,
        cyst_volume_mm3=30.0,
    )
    image = render_session(spec, days=14.0, seed=0).images["T2w"]
    clean = np.asarray(image.clean)
    graft = image.occupancy["graft"] == 1.0
    cord = (image.occupancy["cord"] == 1.0) & ~graft & (image.occupancy["cyst"] == 0)
    csf = float(clean.max())
    assert csf == pytest.approx(1000.0)  # CSF = signal_scale
    assert np.median(clean[graft]) / csf == pytest.approx(0.60)
    assert np.median(clean[cord]) / csf == pytest.approx(0.35)
    cyst = image.occupancy["cyst"] == 1.0
    assert np.median(clean[cyst]) / csf == pytest.approx(0.95)


def test_noise_is_rician_at_the_requested_snr():
    spec = _human(spacing=(1.0, 1.0, 1.0), curvature_amplitude_mm=0.0)
    spec = spec.with_acquisition("T2w", snr=10.0)
    image = render_session(spec, days=14.0, seed=4).images["T2w"]
    assert image.noise_sigma == pytest.approx(350.0 / 10.0)
    bright = np.asarray(image.clean) > 300  # Rician ≈ Gaussian at SNR >= 10
    residual = np.asarray(image.data)[bright] - np.asarray(image.clean)[bright]
    assert residual.std() == pytest.approx(image.noise_sigma, rel=0.05)
    assert np.array_equal(image.data, np.rint(image.data))  # stored as integers
    rng = np.random.default_rng(1)
    air = add_rician_noise(np.zeros(100_000), 7.0, rng)
    assert air.mean() == pytest.approx(rayleigh_mean(7.0), rel=0.01)
    assert air.std() == pytest.approx(7.0 * math.sqrt(2 - math.pi / 2), rel=0.02)


def test_bias_field_is_smooth_and_bounded():
    spec = _human(spacing=(1.0, 1.0, 1.0))
    spec_biased = default_spec("human", "t2").with_acquisition(
        "T2w", **{k: getattr(spec.t2w, k) for k in ("shape", "spacing_mm", "fov_offset_mm")}
    )
    image = render_session(spec_biased, days=14.0, seed=5).images["T2w"]
    field = np.asarray(image.bias_field)
    assert field.min() >= 1 / 1.3 - 1e-6 and field.max() <= 1.3 + 1e-6
    assert np.abs(np.diff(field, axis=0)).max() < 0.02  # smooth at the voxel scale
    flat = render_session(spec, days=14.0, seed=5).images["T2w"]
    assert np.all(np.asarray(flat.bias_field) == 1.0)
    # posterior is brighter on average (spine coil behind the subject)
    bias = BiasField.random(np.random.default_rng(0), center_mm=(0, 0, 0), scale_mm=50.0)
    y = np.linspace(-50, 50, 11)
    line = bias(np.column_stack([np.zeros_like(y), y, np.zeros_like(y)]))
    assert line.shape == (11,)


def test_same_seed_same_arrays_different_seed_different():
    spec = _human(spacing=(1.0, 1.0, 1.0))
    a = render_session(spec, days=3.0, seed=11).images["T2w"]
    b = render_session(spec, days=3.0, seed=11).images["T2w"]
    c = render_session(spec, days=3.0, seed=12).images["T2w"]
    assert np.array_equal(a.data, b.data)
    assert not np.array_equal(a.data, c.data)
    assert np.array_equal(a.clean, c.clean)  # only bias and noise depend on the seed


def test_arrays_are_read_only():
    image = render_session(_human(spacing=(1.0, 1.0, 1.0)), days=3.0, seed=0).images["T2w"]
    with pytest.raises(ValueError, match="read-only"):
        image.data[0, 0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        image.affine[0, 0] = 2.0


def test_grid_affine_centres_the_fov():
    spec = default_spec("rodent", "iron")
    affine, shape = grid_affine(spec.t2w, (1.0, 2.0, 3.0))
    assert shape == (96, 104, 36)  # LPS: R-L, A-P, S-I
    centre = affine @ np.array([*(np.asarray(shape) - 1) / 2, 1.0])
    assert centre[:3] == pytest.approx((1.0, 2.0, 3.0))
    assert "".join(nib.aff2axcodes(affine)) == "LPS"
