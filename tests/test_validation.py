"""The issue's acceptance numbers on a few phantom seeds, through the real pipeline.

A fast, deterministic subset of ``benchmarks/validate_phantoms.py`` (which runs 20 seeds per
condition and writes the full table, see ``docs/validation.md``). Each case renders a human-scale
phantom session, writes it as NIfTI as the generator stores it, loads it and runs
``segment_volume`` with the injection site from the truth: the cord automatic on the T2w
(``t2``), or carried from the same-session T2w with ``cord_from`` (``iron``, T2*w). Truth: the
graft (``t2``, cyst apart; at 3 mm slices without the sub-slice cyst, which is checked apart),
analytic volume, occupancy ≥ 0.5 mask; or (``iron``) the void as the acquisition sees it, the
noise-free signal-loss volume and its ≥ 0.5 map, in the image grid.

Five seeds per condition (SNR 10, 20, 40, 10, 20) with the issue's thresholds; the verdict is
the 20-seed campaign (docs/validation.md), these guard against regressions.
"""

from __future__ import annotations

import importlib.util
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "validate_phantoms.py"
_spec = importlib.util.spec_from_file_location("validate_phantoms", _PATH)
vp = importlib.util.module_from_spec(_spec)
sys.modules["validate_phantoms"] = vp
_spec.loader.exec_module(vp)

SEEDS = (0, 1, 2, 3, 4)  # SNR 10, 20, 40, 10, 20 (the median of 3 is too noisy for ±5 %)
CONDITIONS = [(mode, spacing) for mode in vp.MODES for spacing in vp.SPACINGS]
#: Conditions whose seed 0 is also run at k = 2 and with the image × 7.3 (one per mode).
EXTRA = [("t2", "iso"), ("iron", "thick")]


def _cases() -> list:
    cases = [
        vp.accuracy_case(
            mode, spacing, vp.SNRS[seed % 3], seed, extra=seed == 0 and (mode, spacing) in EXTRA
        )
        for mode, spacing in CONDITIONS
        for seed in SEEDS
    ]
    cases.append(vp.Case("t2", "thick", 10.0, 0, kind="subcyst"))
    cases.append(vp.Case("t2", "thick", 40.0, 1002, kind="nograft"))
    cases.append(vp.Case("iron", "thick", 20.0, 2000, kind="cordfrom"))
    # Rat cord, 0.1 mm: Mattes MI diverges here (3.2 mm off); correlation takes over.
    cases.append(vp.Case("iron", "iso", 10.0, 2000, kind="cordfrom", scale="rodent"))
    return cases


@pytest.fixture(scope="module")
def rows() -> dict:
    cases = _cases()
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(vp.run_case, cases))
    return {
        (c.kind, c.mode, c.spacing, c.seed, c.scale): r
        for c, r in zip(cases, results, strict=True)
    }


def _graft_rows(rows, mode, spacing):
    return [rows[("graft", mode, spacing, seed, "human")] for seed in SEEDS]


@pytest.mark.parametrize(("mode", "spacing"), CONDITIONS)
def test_median_pv_volume_error_within_5_percent(rows, mode, spacing):
    errors = [abs(r["pv_error_pct"]) for r in _graft_rows(rows, mode, spacing)]
    assert all(r["truth_n_voxels"] >= 50 for r in _graft_rows(rows, mode, spacing))
    assert np.median(errors) <= vp.ACCEPT["median_abs_pv_error_pct"]


@pytest.mark.parametrize(("mode", "spacing"), CONDITIONS)
def test_dice_at_least_085(rows, mode, spacing):
    dices = [r["dice"] for r in _graft_rows(rows, mode, spacing)]
    assert min(dices) >= vp.ACCEPT["min_dice"]


@pytest.mark.parametrize(("mode", "spacing"), CONDITIONS)
def test_true_volume_inside_band(rows, mode, spacing):
    for r in _graft_rows(rows, mode, spacing):
        assert r["low_mm3"] <= r["truth_volume_mm3"] <= r["high_mm3"]
        assert r["low_mm3"] <= r["volume_mm3"] <= r["high_mm3"]


@pytest.mark.parametrize(("mode", "spacing"), EXTRA)
def test_k2_volume_not_below_k3(rows, mode, spacing):
    r = rows[("graft", mode, spacing, 0, "human")]
    assert r["k2_volume_mm3"] >= r["volume_mm3"]
    assert r["k2_contains_k3"]


@pytest.mark.parametrize(("mode", "spacing"), EXTRA)
def test_global_gain_changes_no_result(rows, mode, spacing):
    r = rows[("graft", mode, spacing, 0, "human")]
    assert r["gain_same_graft"]
    assert r["gain_volume_mm3"] == r["volume_mm3"]
    # N4 and the normalisation run in float32: the PV volume agrees to float32 arithmetic.
    assert r["gain_volume_pv_mm3"] == pytest.approx(r["volume_pv_mm3"], rel=1e-4)


def test_no_graft_gives_under_one_voxel_per_10_mm(rows):
    r = rows[("nograft", "t2", "thick", 1002, "human")]  # SNR 40: grey matter at its most visible
    assert r["window_cord_length_mm"] >= 50.0
    assert r["fp_voxels_per_10mm"] < vp.ACCEPT["fp_voxels_per_10mm"]


def test_subslice_cyst_is_flagged(rows):
    # The 10 mm³ cyst, thinner than the 3 mm slice, mixes with cord into graft-like
    # intensities and is counted in the graft (+30 %); the result says so.
    with_cyst = rows[("subcyst", "t2", "thick", 0, "human")]
    without = rows[("graft", "t2", "thick", 0, "human")]
    assert with_cyst["pv_error_pct"] > without["pv_error_pct"] + 10.0
    assert "possible_subvoxel_cyst" in with_cyst["flags"]
    assert "possible_subvoxel_cyst" not in without["flags"]


def test_cord_from_t2w_with_motion_gives_dice_090(rows):
    r = rows[("cordfrom", "iron", "thick", 2000, "human")]
    assert min(r["motion_mm"].values()) >= 2.0 and max(r["motion_mm"].values()) <= 4.0
    assert r["motion_mm"]["T2w"] != r["motion_mm"]["T2starw"]
    assert r["cord_dice"] >= vp.ACCEPT["cord_from_dice"]


def test_cord_from_on_a_rat_cord_recovers_from_a_diverged_registration(rows):
    r = rows[("cordfrom", "iron", "iso", 2000, "rodent")]
    assert r["relative_shift_mm"] >= 0.5  # a sixth of the cord's width
    assert r["cord_dice"] >= vp.ACCEPT["cord_from_dice"]
    assert "poor_registration" not in r["flags"]
