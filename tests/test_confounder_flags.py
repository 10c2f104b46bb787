"""Confounder flags: each fires on a study made to trigger it and stays silent on a clean one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from graftimg.longitudinal import SessionPoint, Timeline, analyse_subject

DAYS = (15.0, 22.0, 36.0, 50.0, 78.0, 120.0)


def _volumes(v0=100.0, plateau=20.0, tau=30.0):
    t = np.asarray(DAYS) - DAYS[0]
    return plateau + (v0 - plateau) * np.exp(-t / tau)


def _study(mode="t2", volumes=None, days=DAYS, rel_band=0.05, **changes_by_session):
    """A clean subject; ``changes_by_session={"03": {"snr": 4.0}}`` alters one session."""
    volumes = _volumes() if volumes is None else volumes
    points = []
    for n, (d, v) in enumerate(zip(days, volumes), 1):
        label = f"{n:02d}"
        point = SessionPoint(
            session=label,
            days=d,
            volume_mm3=float(v),
            low_mm3=float(v) * (1 - 1.96 * rel_band),
            high_mm3=float(v) * (1 + 1.96 * rel_band),
            mode=mode,
            echo_time_s=0.008 if mode == "iron" else 0.12,
            field_strength_T=9.4 if mode == "iron" else 3.0,
            voxel_size_mm=(0.1, 0.1, 0.4) if mode == "iron" else (0.8, 0.8, 0.8),
            snr=25.0,
            registration_correlation=0.97,
            reference_n_voxels=2000,
        )
        points.append(dataclasses.replace(point, **changes_by_session.get(label, {})))
    return Timeline("01", mode, tuple(points), scale="rodent" if mode == "iron" else "human")


def _flags(result, name):
    return [f for f in result.flags if f.name == name]


@pytest.mark.parametrize("mode", ["t2", "iron"])
def test_clean_study_raises_no_flag(mode):
    result = analyse_subject(_study(mode))
    assert result.flags == ()
    assert all(s.flags == () for s in result.sessions)
    assert result.fit.model == "exponential_plateau"


def test_clean_iron_and_t2_that_shrink_together_raise_no_label_persistence():
    iron, t2 = _study("iron"), _study("t2")
    assert analyse_subject(iron, companion=t2).flags == ()


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"echo_time_s": 0.012}, "echo_time_s"),
        ({"field_strength_T": 7.0}, "field_strength_T"),
        ({"voxel_size_mm": (0.1, 0.1, 0.5)}, "voxel_size_k_mm"),
    ],
)
def test_protocol_change_fires_with_evidence(change, key):
    result = analyse_subject(_study("iron", **{"04": change}))
    (session_flag,) = [f for f in _flags(result, "protocol_change") if f.session]
    assert session_flag.session == "04"
    assert session_flag.evidence[key]["relative_change"] > 0.10
    assert session_flag.evidence["reference_session"] == "01"
    assert [f.evidence for f in _flags(result, "protocol_change") if f.session is None] == [
        {"sessions": ["04"]}
    ]
    # iron void volume scales with the protocol: the changed session is left out of the fit.
    assert [s.used_in_fit for s in result.sessions] == [True, True, True, False, True, True]


def test_protocol_change_within_tolerance_is_silent():
    assert analyse_subject(_study("iron", **{"04": {"echo_time_s": 0.0084}})).flags == ()


def test_acute_window_fires_on_an_early_session():
    days = (4.0, *DAYS[1:])
    result = analyse_subject(_study(days=days))
    (flag,) = _flags(result, "acute_window")
    assert flag.session == "01" and flag.evidence == {"days": 4.0, "acute_window_days": 14.0}
    assert result.reference.session == "02"


def test_signal_before_injection_fires_on_a_pre_injection_void():
    days = (-5.0, *DAYS[1:])
    volumes = _volumes()
    result = analyse_subject(_study("iron", volumes=volumes, days=days))
    (session_flag, subject_flag) = _flags(result, "signal_before_injection")
    assert session_flag.session == "01" and session_flag.evidence["days"] == -5.0
    assert session_flag.evidence["graft_volume_mm3"] == pytest.approx(volumes[0])
    assert subject_flag.session is None


def test_nothing_before_injection_is_silent():
    days = (-5.0, *DAYS[1:])
    volumes = _volumes().copy()
    volumes[0] = 0.0
    assert analyse_subject(_study("iron", volumes=volumes, days=days)).flags == ()


def test_label_persistence_fires_when_the_void_stays_while_t2_tissue_shrinks():
    steady = np.full(len(DAYS), 5.0)
    iron = _study("iron", volumes=steady)
    t2 = _study("t2", volumes=_volumes(v0=100.0, plateau=10.0, tau=20.0))
    result = analyse_subject(iron, companion=t2)
    (flag,) = _flags(result, "label_persistence")
    assert flag.session is None
    assert abs(flag.evidence["iron_change_mm3"]) < flag.evidence["iron_mdc_mm3"]
    assert -flag.evidence["t2_change_mm3"] > flag.evidence["t2_mdc_mm3"]
    # Either timeline sees it.
    assert _flags(analyse_subject(t2, companion=iron), "label_persistence")


@pytest.mark.parametrize(
    "change", [{"snr": 6.0}, {"flags": ("low_snr",)}], ids=["snr_value", "pipeline_flag"]
)
def test_low_snr_fires(change):
    result = analyse_subject(_study(**{"03": change}))
    (flag,) = _flags(result, "low_snr")
    assert flag.session == "03" and flag.evidence["min_snr"] == 10.0


@pytest.mark.parametrize(
    "change",
    [{"registration_correlation": 0.6}, {"flags": ("site_poor_registration",)}],
    ids=["correlation", "pipeline_flag"],
)
def test_poor_registration_fires(change):
    result = analyse_subject(_study(**{"05": change}))
    (flag,) = _flags(result, "poor_registration")
    assert flag.session == "05"


@pytest.mark.parametrize(
    "change",
    [{"reference_n_voxels": 50}, {"flags": ("reference_unreliable",)}],
    ids=["too_few_voxels", "pipeline_flag"],
)
def test_reference_unreliable_fires(change):
    result = analyse_subject(_study(**{"02": change}))
    (flag,) = _flags(result, "reference_unreliable")
    assert flag.session == "02"
    assert "02" in [s.point.session for s in result.sessions if "reference_unreliable" in s.flags]
