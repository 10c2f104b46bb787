"""Tests of graftimg.phantom.spec and graftimg.phantom.anatomy (geometry, labels, checks)."""

import dataclasses
import math

import numpy as np
import pytest

from graftimg.errors import ConfigError
from graftimg.phantom.anatomy import (
    BONE_CORTEX,
    BONE_MARROW,
    CORD_LABELS,
    CSF,
    CYST,
    DISC_ANNULUS,
    DISC_NUCLEUS,
    GRAFT,
    anatomy_at,
    cord_radius,
    local_coordinates,
)
from graftimg.phantom.kinetics import graft_volume_mm3, iron_mass_ug
from graftimg.phantom.spec import default_spec


@pytest.mark.parametrize(
    ("scale", "mode", "cord", "rim", "spacing", "orientation"),
    [
        ("human", "t2", (8.5, 12.5), 3.0, (0.8, 0.8, 0.8), "PSR"),
        ("rodent", "iron", (2.2, 3.2), 0.3, (0.1, 0.1, 0.5), "LPS"),
    ],
)
def test_defaults_per_scale(scale, mode, cord, rim, spacing, orientation):
    spec = default_spec(scale, mode)
    assert (spec.cord_ap_mm, spec.cord_lr_mm) == cord
    assert spec.csf_rim_mm == rim
    assert spec.t2w.spacing_mm == spacing
    assert spec.t2w.orientation == orientation


def test_default_scale_follows_mode():
    assert default_spec(mode="iron").scale == "rodent"
    assert default_spec(mode="t2").scale == "human"
    iron = default_spec(mode="iron")
    assert iron.t2starw is not None and iron.t2starw.orientation == "LAS"
    assert default_spec(mode="t2").t2starw is None


def test_default_fov_covers_reference_cord():
    # ±40 mm (human) / ±8 mm (rodent) of cord around the injection for reference statistics.
    human = default_spec("human", "t2").t2w
    assert human.fov_mm[2] / 2 - abs(human.fov_offset_mm[2]) >= 40.0
    rodent = default_spec("rodent", "iron")
    for acq in rodent.acquisitions:
        assert acq.fov_mm[2] / 2 >= 8.0


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(bogus=1), "unknown phantom parameter"),
        (dict(graft_volume0_mm3=2000.0), "graft reaches"),
        (dict(cyst_volume_mm3=400.0), "cyst reaches"),
        (dict(cord_ap_mm=-1.0), "cord_ap_mm"),
        (dict(iron_persistent_fraction=1.5), "iron_persistent_fraction"),
        (dict(disc_height_mm=30.0), "disc_height_mm"),
        (dict(tilt_deg=60.0), "tilt_deg"),
    ],
)
def test_invalid_specs_raise(changes, match):
    with pytest.raises(ConfigError, match=match):
        default_spec("human", "t2", **changes)


def test_invalid_acquisitions_raise():
    spec = default_spec("human", "t2")
    with pytest.raises(ConfigError, match="orientation 'PSX' is not valid"):
        spec.with_acquisition("T2w", orientation="PSX")
    with pytest.raises(ConfigError, match="may leave the T2w field of view"):
        spec.with_acquisition("T2w", shape=(48, 96, 20))
    with pytest.raises(ConfigError, match="no 'T2starw' acquisition"):
        spec.with_acquisition("T2starw", snr=3.0)
    with pytest.raises(ConfigError, match="iron mode needs a T2\\*w"):
        dataclasses.replace(default_spec("rodent", "iron"), t2starw=None)
    with pytest.raises(ConfigError, match="mode must be"):
        default_spec("human", "bold")


def test_graft_volume_law_and_iron_persistence():
    spec = default_spec("human", "t2")
    v0, vinf, lam = spec.graft_volume0_mm3, spec.graft_volume_inf_mm3, spec.graft_rate_per_day
    for days in (0.0, 7.0, 30.0, 365.0):
        expected = vinf + (v0 - vinf) * math.exp(-lam * days)
        assert graft_volume_mm3(spec, days) == pytest.approx(expected, rel=1e-12)
        assert anatomy_at(spec, days).graft_volume_mm3 == pytest.approx(expected, rel=1e-12)
    iron = default_spec("rodent", "iron")
    m0 = iron.cells_injected * iron.iron_pg_per_cell * 1e-6
    assert iron_mass_ug(iron, 0.0) == pytest.approx(m0)
    assert iron_mass_ug(iron, 1e4) == pytest.approx(m0 * iron.iron_persistent_fraction)
    assert iron_mass_ug(spec, 10.0) == 0.0


def test_t2_graft_is_ellipsoid_with_aspect():
    spec = default_spec("human", "t2")
    a = anatomy_at(spec, 0.0)
    assert np.asarray(a.graft_semi_axes_mm) / a.graft_semi_axes_mm[0] == pytest.approx(
        spec.graft_aspect
    )
    assert 4 / 3 * math.pi * np.prod(a.graft_semi_axes_mm) == pytest.approx(150.0)
    iron = anatomy_at(default_spec("rodent", "iron"), 0.0)
    assert len(set(iron.graft_semi_axes_mm)) == 1  # sphere


def test_local_coordinates_tilted_straight_cord_are_exact():
    spec = default_spec("human", "t2", curvature_amplitude_mm=0.0, tilt_deg=20.0)
    t = math.radians(20.0)
    axis = np.array([0.0, -math.sin(t), math.cos(t)])  # cord axis in the subject frame
    normal = np.array([0.0, math.cos(t), math.sin(t)])  # ventral direction
    pts = np.array([2.0 * axis + 3.0 * normal + 1.5 * np.array([1.0, 0, 0])])
    u, v, s = local_coordinates(spec, pts)
    assert (u[0], v[0], s[0]) == pytest.approx((1.5, 3.0, 2.0))


@pytest.mark.parametrize(
    "changes",
    [
        dict(curvature_amplitude_mm=0.0),
        dict(curvature_amplitude_mm=3.0, curvature_period_mm=60.0, curvature_phase_rad=0.0),
        dict(curvature_amplitude_mm=0.0, tilt_deg=25.0),
    ],
)
def test_labels_respect_the_anatomy(changes):
    spec = default_spec("human", "t2", **changes)
    anatomy = anatomy_at(spec, 7.0)
    rng = np.random.default_rng(0)
    pts = rng.uniform(-1, 1, (400_000, 3)) * np.array([20.0, 30.0, 40.0])
    labels = anatomy.labels(pts)
    r_cord = cord_radius(spec, pts)
    r_canal = cord_radius(spec, pts, rim_mm=spec.csf_rim_mm)
    bone = np.isin(labels, [BONE_MARROW, BONE_CORTEX, DISC_NUCLEUS, DISC_ANNULUS])
    assert bone.sum() > 1000 and r_canal[bone].min() > 1.0  # bone never in the canal
    cord = np.isin(labels, CORD_LABELS)
    assert r_cord[cord].max() <= 1.0 and r_cord[~cord & (labels == CSF)].min() > 1.0
    assert (labels[(r_cord <= 1.0)] != CSF).all()  # the cord is inside the CSF
    assert np.isin(labels[r_canal <= 1.0], (CSF, *CORD_LABELS)).all()
    # graft centred at the injection site, inside the cord; the cyst does not touch it
    graft = labels == GRAFT
    assert graft.sum() > 100 and r_cord[graft].max() < 0.97
    assert np.linalg.norm(pts[graft].mean(axis=0)) < 0.3
    cyst = labels == CYST
    assert cyst.sum() > 5
    assert np.linalg.norm(pts[cyst].mean(0) - anatomy.cyst_center_mm) < 0.5


def test_vertebral_bodies_are_anterior_and_periodic():
    spec = default_spec("human", "t2", curvature_amplitude_mm=0.0)
    anatomy = anatomy_at(spec, 7.0)
    z = np.linspace(-40, 40, 801)
    front = np.column_stack([np.zeros_like(z), np.full_like(z, 20.0), z])  # 20 mm anterior
    labels = anatomy.labels(front)
    marrow = labels == BONE_MARROW
    disc = np.isin(labels, [DISC_NUCLEUS, DISC_ANNULUS])
    assert marrow.mean() > 0.5 and disc.mean() > 0.15
    # disc centres repeat with the vertebral period
    starts = z[1:][np.diff(disc.astype(int)) == 1]
    assert np.diff(starts) == pytest.approx(spec.vertebra_period_mm, abs=0.11)
    behind = front * np.array([1, -1, 1])  # 20 mm posterior: arch or soft tissue, no body
    assert not np.isin(anatomy.labels(behind), [DISC_NUCLEUS, DISC_ANNULUS]).any()
