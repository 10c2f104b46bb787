"""A graft the automatic cord left outside its search is ``null``, never 0 (issue 8).

On the Spinal Cord Toolbox T2*w (7.5 mm slices, here resampled to 1 mm) the automatic cord's
contour sometimes goes around an inserted iron void: the void is then outside the search and
nothing is found. That is a failed measurement, not a graft that died.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "validate_real.py"
_spec = importlib.util.spec_from_file_location("validate_real", _PATH)
vr = importlib.util.module_from_spec(_spec)
sys.modules["validate_real"] = vr
_spec.loader.exec_module(vr)


@pytest.mark.slow
@pytest.mark.parametrize("cord", ["auto", "manual"])
def test_void_outside_a_doubtful_automatic_cord_is_null_not_zero(cord):
    case = vr.Case(mode="iron", host="T2starw", seed=13, cord=cord)
    row = vr.run_case(case)
    assert row["truth_mm3"] > 20
    if cord == "auto":
        # The automatic cord bends around the void (flagged) and finds nothing: not measured.
        assert {"cord_uncertain", "no_graft_found"} <= set(row["flags"])
        assert row["measured_null"]
        assert row["null_reason"].startswith("nothing was found, but the automatic cord")
    else:
        # With the manual cord the same void is found and measured (its size on this host,
        # whose 7.5 mm slices were interpolated, is a limit of its own: docs/validation.md).
        assert not row["measured_null"]
        assert row["measured_pv_mm3"] > 0.5 * row["truth_mm3"]


@pytest.mark.slow
def test_void_the_automatic_cord_shrank_onto_is_null_not_zero():
    # 0.8 mm grid: at the void's slices the automatic contour shrank onto the void itself (no
    # cord flag); the cord is under half its usual cross-section there, which says so.
    case = vr.Case(mode="iron", host="T2starw", seed=16, grid="iso08")
    row = vr.run_case(case)
    assert row["truth_mm3"] > 20
    assert "cord_narrows_at_site" in row["flags"]
    assert row["measured_null"]
    assert row["null_reason"].startswith("nothing was found, but the automatic cord")
