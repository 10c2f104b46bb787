"""Tests of the iron blooming model (graftimg.phantom.iron) and its rendering."""

import math

import numpy as np
import pytest

from graftimg.phantom.anatomy import anatomy_at
from graftimg.phantom.iron import (
    dipole_constant_mm3,
    dipole_phase_rad,
    in_void,
    iron_moment_am2,
    void_radius_mm,
    void_volume_mm3,
    void_volume_numeric_mm3,
)
from graftimg.phantom.kinetics import iron_mass_ug
from graftimg.phantom.render import render_image, render_session
from graftimg.phantom.spec import default_spec

FAR_FIELD = 4 * math.pi / 3 * 4 / (3 * math.sqrt(3))  # V/K without a core: 3.2245


def _small_iron_spec(echo_time_s=0.008, **changes):
    spec = default_spec("rodent", "iron", bias_amplitude=0.0, **changes)
    # supersample=3 keeps the tests fast; the void volume stays within 1.2 % of the truth.
    small = dict(fov_offset_mm=(0.0, 0.0, 0.0), supersample=3)
    return spec.with_acquisition("T2w", shape=(40, 40, 12), **small).with_acquisition(
        "T2starw", shape=(56, 56, 20), spacing_mm=(0.1, 0.1, 0.4), echo_time_s=echo_time_s, **small
    )


def test_worked_example_of_methods():
    # point-dipole model: 1 µg Fe, 100 A·m²/kg, TE 10 ms, φc 1 rad -> V_void ≈ 90 mm³.
    moment = iron_moment_am2(1.0, 100.0)
    assert moment == pytest.approx(1e-7)
    k = dipole_constant_mm3(moment, 0.010)
    assert k == pytest.approx(26.75, abs=0.01)
    assert void_volume_mm3(k) == pytest.approx(FAR_FIELD * k, rel=1e-12)
    assert void_volume_mm3(k) == pytest.approx(86.26, abs=0.01)


@pytest.mark.parametrize("core", [0.0, 0.5, 1.0, 1.2, 1.3, 2.0])
def test_closed_form_matches_quadrature(core):
    # c = a³/K spans the three regimes (c < 1, 1 <= c < 2, c >= 2) with K = 1.
    assert void_volume_mm3(1.0, core) == pytest.approx(
        void_volume_numeric_mm3(1.0, core), rel=1e-8
    )


def test_void_is_star_shaped_union_of_core_and_lobes():
    k, core = 4.0, 1.0
    assert void_radius_mm(np.array([1.0, 0.0, 1 / math.sqrt(3)]), k, core) == pytest.approx(
        [2.0, 4.0 ** (1 / 3), 1.0]
    )
    u = np.linspace(-1, 1, 41)
    directions = np.column_stack([np.sqrt(1 - u * u), np.zeros_like(u), u])
    radius = void_radius_mm(u, k, core)
    assert in_void(directions * (radius * 0.999)[:, None], k, core).all()
    assert not in_void(directions * (radius * 1.001)[:, None], k, core).any()
    # on the void boundary the dipole phase is ±φc (outside the core)
    lobes = k * np.abs(3 * u * u - 1) > core**3
    phase = dipole_phase_rad(directions[lobes] * radius[lobes, None], k)
    assert np.abs(phase) == pytest.approx(1.0)


def test_void_volume_linear_in_moment_times_echo_time():
    core = 0.6
    rows = []
    for mass in (0.05, 0.1, 0.2):
        for te in (0.005, 0.010, 0.020):
            k = dipole_constant_mm3(iron_moment_am2(mass), te)
            rows.append((mass * te, void_volume_mm3(k, core)))
    mte, volume = np.array(rows).T
    order = np.argsort(mte)
    assert np.all(np.diff(volume[order]) >= 0)  # monotonic in m·TE
    slope, intercept = np.polyfit(mte, volume, 1)
    residual = volume - (slope * mte + intercept)
    r2 = 1 - (residual**2).sum() / ((volume - volume.mean()) ** 2).sum()
    assert r2 > 0.999
    # V/TE constant within 15 % across TE = 5, 10, 20 ms (docs/phantom.md, blooming)
    k = [dipole_constant_mm3(iron_moment_am2(0.05), te) for te in (0.005, 0.01, 0.02)]
    per_te = [
        void_volume_mm3(ki, core) / te for ki, te in zip(k, (0.005, 0.01, 0.02), strict=True)
    ]
    assert max(per_te) / min(per_te) < 1.15
    assert all(void_volume_mm3(ki, core) > 4 / 3 * math.pi * core**3 for ki in k)


def test_rendered_void_grows_with_echo_time_and_matches_truth():
    results = []
    for te in (0.005, 0.010, 0.020):
        spec = _small_iron_spec(te)
        anatomy = anatomy_at(spec, 7.0)
        moment = iron_moment_am2(iron_mass_ug(spec, 7.0))
        star = render_image(anatomy, spec.t2starw, rng=3, iron_moment_am2=moment)
        results.append((star.void_volume_mm3, anatomy.graft_volume_mm3))
        assert star.occupancy_volume_mm3("void") == pytest.approx(star.void_volume_mm3, rel=0.02)
        # the void sits at the noise floor: its mean is the Rayleigh mean of the noise
        core = star.occupancy["void"] == 1.0
        assert star.clean[core].max() == 0.0
        rayleigh = star.noise_sigma * math.sqrt(math.pi / 2)
        assert star.data[core].mean() == pytest.approx(rayleigh, rel=0.1)
    analytic = [r[0] for r in results]
    assert analytic == sorted(analytic) and analytic[-1] / analytic[0] > 3.0
    assert all(v > graft for v, graft in results)  # blooming larger than the deposit
    assert analytic == pytest.approx([2.195, 4.267, 8.472], abs=0.01)


def test_t2w_of_iron_subject_shows_deposit_mildly_without_blooming():
    session = render_session(_small_iron_spec(), days=7.0, seed=1)
    t2w = session.images["T2w"]
    assert "void" not in t2w.occupancy and t2w.void_volume_mm3 is None
    inside = t2w.occupancy["graft"] == 1.0
    cord_only = (t2w.occupancy["cord"] == 1.0) & (t2w.occupancy["graft"] == 0.0)
    graft_signal = float(np.median(t2w.clean[inside]))
    cord_signal = float(np.median(t2w.clean[cord_only]))
    assert 0.4 < graft_signal / cord_signal < 0.9  # darker than cord, far above the floor
    assert t2w.occupancy_volume_mm3("graft") == pytest.approx(
        session.truth.graft_volume_mm3, rel=0.02
    )
