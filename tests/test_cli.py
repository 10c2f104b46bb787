"""The command line: exit codes, one-line errors, no tracebacks, nothing written on failure."""

from __future__ import annotations

import json

import pytest
from conftest import SCT_PAIRS
from test_io_bids import make_study
from test_io_volume import BAD_NAMES, make_bad_inputs, make_slab

from graftimg.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("graftimg ")


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2


def test_unknown_option_is_one_line(capsys):
    assert main(["info", "x.nii", "--frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "unrecognized arguments" in err


@pytest.mark.parametrize(("image", "mask", "stored", "spacing"), SCT_PAIRS[:3])
def test_info_json_on_real_scan(sct_data, capsys, image, mask, stored, spacing):
    assert main(["info", str(sct_data / image), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["stored_orientation"] == stored
    assert out["spacing_mm"] == pytest.approx(spacing, rel=1e-5)


def test_info_table_on_real_scan(sct_data, capsys):
    assert main(["info", str(sct_data / "t2/t2.nii.gz")]) == 0
    assert "PSR" in capsys.readouterr().out


def test_info_on_study(tmp_path, capsys):
    root = make_study(tmp_path / "study")
    assert main(["info", str(root), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n_subjects"] == 2 and summary["n_sessions"] == 5
    days = [s["days_since_injection"] for s in summary["subjects"][0]["sessions"]]
    assert days[1] == pytest.approx(7.5)
    assert main(["info", str(root)]) == 0
    assert "7.5" in capsys.readouterr().out


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("badcli"))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(bad_inputs, capsys, name):
    path = bad_inputs[name][0]
    before = sorted(p.name for p in path.parent.iterdir())
    assert main(["info", str(path)]) == 1
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("graftimg:")]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("graftimg: error: ")
    assert str(path) in lines[0]
    assert "Traceback" not in captured.err
    assert sorted(p.name for p in path.parent.iterdir()) == before


def test_info_loads_a_slab_whose_qform_and_sform_differ_by_rounding(tmp_path, capsys):
    # Issue 8: a real T2w whose qform and sform differ by float rounding (0.26 mm at the field
    # of view's corners, below half the 1 mm voxel) was refused; it loads, the sform is used and
    # the disagreement is shown.
    path = make_slab(tmp_path, "slab_rounded.nii.gz")
    assert main(["info", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["affine_source"] == "sform"
    assert 0.2 < out["qform_sform_max_displacement_mm"] < 0.5
    assert main(["info", str(path)]) == 0
    captured = capsys.readouterr()
    shown = f"{out['qform_sform_max_displacement_mm']:.2f} mm apart"
    assert shown in captured.out
    assert captured.err == ""


def test_info_refuses_a_slab_whose_qform_and_sform_are_2_mm_apart(tmp_path, capsys):
    path = make_slab(tmp_path, "slab_shifted.nii.gz", sform_shift_mm=2.0)
    assert main(["info", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"graftimg: error: {path}: qform and sform place")
    assert "2.00 mm apart" in err and "--affine-from sform|qform" in err
    assert main(["info", str(path), "--affine-from", "sform", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["qform_sform_max_displacement_mm"] == pytest.approx(2.0, abs=1e-6)


def test_hostile_study_label_is_one_line(tmp_path, capsys):
    root = make_study(tmp_path / "s", rows=["sub-a/b\tiron\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a"])
    assert main(["info", str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not allowed" in err


@pytest.mark.parametrize("name", BAD_NAMES)
def test_segment_on_bad_input_writes_nothing(bad_inputs, tmp_path, capsys, name):
    path = bad_inputs[name][0]
    out = tmp_path / "out"
    assert main(["segment", str(path), "-o", str(out / "sub-01"), "--mode", "iron"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("graftimg: error: ") and str(path) in err
    assert not out.exists()


def test_segment_keeps_existing_outputs_when_input_is_bad(bad_inputs, tmp_path, capsys):
    keep = tmp_path / "s_graft.json"
    keep.write_text('{"graft_volume_mm3": 1.0}')
    path = bad_inputs["truncated"][0]
    assert main(["segment", str(path), "-o", str(tmp_path / "s"), "--mode", "t2"]) == 1
    assert keep.read_text() == '{"graft_volume_mm3": 1.0}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s_graft.json"]


def test_sample_data_refuses_to_overwrite(tmp_path, capsys):
    target = tmp_path / "study"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    assert main(["sample-data", str(target), "--subjects", "1", "--sessions", "1"]) == 1
    assert "graftimg: error:" in capsys.readouterr().err
    assert sorted(p.name for p in target.iterdir()) == ["precious.txt"]
