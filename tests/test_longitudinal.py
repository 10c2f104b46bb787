"""graftimg.longitudinal: timeline, survival fraction, decay fit with intervals, cohort."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graftimg.errors import DimensionError
from graftimg.io.bids import discover_study
from graftimg.longitudinal import (
    SessionPoint,
    SurvivalSettings,
    Timeline,
    analyse_subject,
    cohort_summary,
    days_since_injection,
    fit_decay,
    minimum_detectable_change,
    point_from_result,
    sigma_from_band,
    timeline_from_subject,
)

# The reference decay: V(t) = 20 + 80·exp(−t/30), t½ = 30·ln 2 = 20.79 days.
TRUE_HALF_LIFE = 30 * math.log(2)
T_SESSIONS = np.array([0.0, 7.0, 21.0, 35.0, 63.0, 105.0])


def _truth(t):
    return 20 + 80 * np.exp(-np.asarray(t) / 30)


def _noisy_fit(rng, noise=0.10):
    v = _truth(T_SESSIONS) * (1 + noise * rng.standard_normal(T_SESSIONS.size))
    return fit_decay(T_SESSIONS, v, noise * v)


def test_noise_free_decay_is_recovered():
    v = _truth(T_SESSIONS)
    fit = fit_decay(T_SESSIONS, v, 0.05 * v)
    assert fit.model == "exponential_plateau"
    assert fit.half_life_days == pytest.approx(TRUE_HALF_LIFE, rel=1e-3)
    assert fit.plateau_fraction == pytest.approx(0.2, abs=1e-3)
    assert fit.v0_mm3 == pytest.approx(100.0, rel=1e-3)
    low, high = fit.half_life_ci95_days
    assert low < TRUE_HALF_LIFE < high
    assert fit.curve(np.array([30.0]))[0] == pytest.approx(_truth(30.0), rel=1e-3)


def test_half_life_interval_covers_truth_seeded():
    # The full campaign (100 simulations, coverage >= 90 %) is benchmarks/survival_coverage.py.
    rng = np.random.default_rng(11)
    fits = [_noisy_fit(rng) for _ in range(30)]
    covered = [
        f.half_life_ci95_days[0] <= TRUE_HALF_LIFE <= (f.half_life_ci95_days[1] or np.inf)
        for f in fits
    ]
    assert np.mean(covered) >= 0.85
    widths = [
        f.half_life_ci95_days[1] - f.half_life_ci95_days[0]
        for f in fits
        if f.half_life_ci95_days[1]
    ]
    assert 3.0 < np.median(widths) < 60.0


def test_intervals_widen_when_sessions_scatter_more_than_their_bands():
    # Bands 15 times too narrow must not make the interval 15 times narrower.
    rng = np.random.default_rng(4)
    v = _truth(T_SESSIONS) * (1 + 0.10 * rng.standard_normal(T_SESSIONS.size))
    honest = fit_decay(T_SESSIONS, v, 0.10 * v)
    overconfident = fit_decay(T_SESSIONS, v, (0.10 / 15) * v)
    assert overconfident.scatter_factor > 10
    assert overconfident.half_life_days == pytest.approx(honest.half_life_days, rel=1e-3)

    def width(fit):
        low, high = fit.half_life_ci95_days
        return high - low

    assert width(overconfident) >= 0.9 * width(honest)


def test_three_sessions_fall_back_to_log_linear():
    t = np.array([0.0, 20.0, 40.0])
    v = 100 * np.exp(-t * math.log(2) / 20)
    fit = fit_decay(t, v, 0.05 * v)
    assert fit.model == "log_linear"
    assert fit.half_life_days == pytest.approx(20.0, rel=1e-6)
    assert fit.plateau_fraction is None and "no plateau" in fit.reason
    low, high = fit.half_life_ci95_days
    assert low < 20.0 < high


def test_a_growing_graft_has_no_half_life():
    t = np.array([0.0, 20.0, 40.0])
    fit = fit_decay(t, [10.0, 20.0, 40.0], [0.5, 1.0, 2.0])
    assert fit.model == "log_linear"
    assert fit.half_life_days is None and fit.half_life_ci95_days is None
    assert "does not fall" in fit.reason


def test_flat_volumes_leave_the_half_life_unbounded():
    v = np.full(T_SESSIONS.size, 50.0)
    fit = fit_decay(T_SESSIONS, v, 0.1 * v)
    assert fit.model == "exponential_plateau"
    assert fit.half_life_ci95_days[1] is None


@pytest.mark.parametrize(
    ("t", "v", "reason"),
    [
        ([0.0], [10.0], "fewer than 2 sessions"),
        ([0.0, 10.0, 20.0, 30.0], [0.0, 0.0, 0.0, 0.0], "no graft volume above zero"),
        ([5.0, 5.0], [10.0, 8.0], "same day"),
    ],
)
def test_no_fit_is_null_with_a_reason(t, v, reason):
    fit = fit_decay(t, v, [1.0] * len(t))
    assert fit.model is None and fit.half_life_days is None
    assert reason in fit.reason


def test_mismatched_lengths_are_refused():
    with pytest.raises(DimensionError, match="one value per session"):
        fit_decay([0.0, 1.0], [1.0], [1.0])


def test_sigma_and_minimum_detectable_change():
    assert sigma_from_band(100.0, 80.4, 119.6) == pytest.approx(10.0, rel=1e-3)
    assert sigma_from_band(0.0, 0.0, 0.0, floor_mm3=0.5) == 0.5
    assert minimum_detectable_change(3.0, 4.0) == pytest.approx(1.96 * 5.0, rel=1e-3)


def test_days_since_injection():
    assert days_since_injection("2023-06-08T12:00:00", "2023-06-01") == 7.5


def test_timeline_days_come_from_sessions_tsv_and_injection_date():
    subject = discover_study("sample_data").subject("01")
    points = [SessionPoint(s.label, None, 10.0) for s in subject.sessions]
    timeline = timeline_from_subject(subject, points, scale="human")
    # sessions.tsv: ses-01 2023-01-23T14:04; participants.tsv: injection 2023-01-16.
    assert timeline.points[0].days == pytest.approx(7 + (14 * 60 + 4) / 1440, abs=1e-5)
    assert [p.days for p in timeline.points] == sorted(p.days for p in timeline.points)
    assert timeline.mode == "t2"


def _subject(days, volumes, *, mode="t2", scale="human", rel_band=0.1, **extra):
    points = [
        SessionPoint(
            f"{n:02d}",
            d,
            v,
            None if v is None else v * (1 - 1.96 * rel_band),
            None if v is None else v * (1 + 1.96 * rel_band),
            mode=mode,
            voxel_size_mm=(0.8, 0.8, 0.8),
            echo_time_s=0.1,
            field_strength_T=3.0,
            **extra,
        )
        for n, (d, v) in enumerate(zip(days, volumes), 1)
    ]
    return Timeline("01", mode, tuple(points), scale=scale)


def test_survival_fraction_is_relative_to_the_first_session_after_the_acute_window():
    days = [3.0, 16.0, 30.0, 60.0]
    timeline = _subject(days, [200.0, 100.0, 80.0, 50.0])
    result = analyse_subject(timeline)
    assert result.acute_window_days == 14.0
    assert result.reference.session == "02"
    fractions = [s.survival_fraction for s in result.sessions]
    assert fractions == pytest.approx([2.0, 1.0, 0.8, 0.5])
    assert [s.used_in_fit for s in result.sessions] == [False, True, True, True]
    assert result.sessions[0].t_days == pytest.approx(-13.0)
    # A shorter window, set by the user, makes the first session the reference.
    early = analyse_subject(timeline, settings=SurvivalSettings(acute_window_days=2.0))
    assert early.reference.session == "01"
    assert early.fit.model == "exponential_plateau"


def test_rodent_default_acute_window_is_seven_days():
    result = analyse_subject(_subject([5.0, 8.0, 20.0], [5.0, 4.0, 3.0], scale="rodent"))
    assert result.acute_window_days == 7.0 and result.reference.session == "02"


def test_unmeasured_session_is_kept_out_of_the_fit_and_json_says_why():
    timeline = _subject([20.0, 40.0, 60.0], [100.0, None, 60.0])
    timeline = Timeline(
        "01",
        "t2",
        tuple(
            p
            if p.volume_mm3 is not None
            else SessionPoint(p.session, p.days, None, null_reason="no reference")
            for p in timeline.points
        ),
        scale="human",
    )
    result = analyse_subject(timeline)
    out = result.to_json()
    assert out["n_sessions_used"] == 2 and out["model"] == "log_linear"
    assert out["sessions"][1]["graft_volume_null_reason"] == "no reference"
    assert out["sessions"][1]["survival_fraction"] is None


def test_no_session_after_the_acute_window_gives_null_with_reason():
    result = analyse_subject(_subject([2.0, 5.0], [10.0, 9.0]))
    out = result.to_json()
    assert out["model"] is None and out["half_life_days"] is None
    assert "after the acute window" in out["fit_note"]


def test_change_detectable_against_minimum_detectable_change():
    result = analyse_subject(_subject([20.0, 40.0, 60.0], [100.0, 95.0, 40.0], rel_band=0.05))
    detect = [s.change_detectable for s in result.sessions]
    assert detect == [None, False, True]
    # MDC of two sessions with σ = 5 and 4.75 mm³.
    assert result.sessions[1].mdc_mm3 == pytest.approx(1.96 * math.hypot(5.0, 4.75), rel=1e-3)


def test_point_from_result_reads_a_session_json():
    point = point_from_result(
        {
            "subject": "01",
            "session": "03",
            "mode": "t2",
            "days_since_injection": 58.3,
            "graft_volume_mm3": None,
            "graft_volume_null_reason": "why",
            "voxel_size_mm": [0.8, 0.8, 0.8],
            "snr_cord": 18.9,
            "reference_n_voxels": 2138,
            "site_registration_correlation": 0.98,
            "flags": ["low_snr"],
        }
    )
    assert point.volume_mm3 is None and not point.measured
    assert point.null_reason == "why" and point.snr == 18.9
    assert point.registration_correlation == 0.98 and point.reference_n_voxels == 2138


def test_cohort_summary_median_and_interval():
    rng = np.random.default_rng(5)
    subjects = []
    for n in range(5):
        v = _truth(T_SESSIONS) * (1 + 0.05 * rng.standard_normal(T_SESSIONS.size))
        points = [
            SessionPoint(f"{k:02d}", 14.0 + t, x, 0.9 * x, 1.1 * x)
            for k, (t, x) in enumerate(zip(T_SESSIONS, v), 1)
        ]
        subjects.append(analyse_subject(Timeline(f"{n:02d}", "t2", tuple(points), scale="human")))
    (summary,) = cohort_summary(subjects)
    assert summary.n_subjects == 5 and summary.n_with_half_life == 5
    assert summary.median_half_life_days == pytest.approx(TRUE_HALF_LIFE, rel=0.25)
    low, high = summary.median_half_life_ci95_days
    assert low <= summary.median_half_life_days <= high
    if summary.mixed_model is None:
        assert "statsmodels" in summary.mixed_model_reason
    else:
        assert summary.mixed_model["slope_per_day"] < 0
