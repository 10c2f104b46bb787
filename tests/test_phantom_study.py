"""Tests of the BIDS phantom study writer (graftimg.phantom.study)."""

import csv
import datetime as dt
import hashlib
import json
import os
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import graftimg.phantom.study as study_module
from graftimg.errors import ConfigError, OutputError
from graftimg.phantom.spec import default_spec
from graftimg.phantom.study import write_study


def _small_specs():
    centred = dict(fov_offset_mm=(0.0, 0.0, 0.0), supersample=2)  # fast; 2 % accurate
    t2 = default_spec("rodent", "t2").with_acquisition("T2w", shape=(44, 44, 14), **centred)
    iron = default_spec("rodent", "iron")
    iron = iron.with_acquisition("T2w", shape=(40, 40, 12), **centred).with_acquisition(
        "T2starw", shape=(44, 44, 14), **centred
    )
    return {"t2": t2, "iron": iron}


def _write(path, seed=0, **kwargs):
    options = dict(n_subjects=2, n_sessions=2, seed=seed, spec=_small_specs())
    options.update(kwargs)
    return write_study(path, **options)


def _read_tsv(path):
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("phantom") / "study", seed=3)


def test_layout_and_file_names(study):
    files = {str(p.relative_to(study)) for p in study.rglob("*") if p.is_file()}
    raw = {
        "dataset_description.json",
        "README.md",
        "participants.tsv",
        "participants.json",
        "sub-01/sub-01_sessions.tsv",
        "sub-02/sub-02_sessions.tsv",
    }
    for ses in ("ses-01", "ses-02"):
        for sub, suffixes in (("sub-01", ["T2w"]), ("sub-02", ["T2w", "T2starw"])):
            for suffix in suffixes:
                for ext in (".nii.gz", ".json"):
                    raw.add(f"{sub}/{ses}/anat/{sub}_{ses}_{suffix}{ext}")
    assert raw <= files
    truth = "derivatives/truth/"
    stem = f"{truth}sub-02/ses-01/anat/sub-02_ses-01_space-orig"
    assert {
        f"{truth}dataset_description.json",
        f"{truth}truth.tsv",
        f"{truth}truth.json",
        f"{truth}phantom.json",
        f"{stem}_label-void_desc-T2starw_mask.nii.gz",
        f"{stem}_label-void_desc-T2starw_probseg.nii.gz",
        f"{stem}_label-graft_desc-T2w_mask.nii.gz",
        f"{stem}_label-cord_desc-T2starw_mask.nii.gz",
        f"{truth}sub-01/ses-02/anat/sub-01_ses-02_space-orig_label-cyst_desc-T2w_mask.nii.gz",
    } <= files
    assert not any("T2starw" in f for f in files if f.startswith("sub-01/"))  # t2 subject
    assert not [p for p in study.parent.iterdir() if p.name.startswith(".")]  # no staging left
    mask = os.umask(0o022)
    os.umask(mask)
    assert stat.S_IMODE((study / "participants.tsv").stat().st_mode) == 0o666 & ~mask
    assert stat.S_IMODE(study.stat().st_mode) == 0o777 & ~mask
    description = json.loads((study / "derivatives/truth/dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert json.loads((study / "dataset_description.json").read_text())["DatasetType"] == "raw"


def test_participants_and_sessions(study):
    participants = _read_tsv(study / "participants.tsv")
    assert list(participants[0]) == [
        "participant_id",
        "species",
        "graft_mode",
        "injection_date",
        "injection_x",
        "injection_y",
        "injection_z",
        "injection_session",
        "cells_injected",
    ]
    assert [p["graft_mode"] for p in participants] == ["t2", "iron"]
    described = json.loads((study / "participants.json").read_text())
    assert set(described) == set(participants[0])
    truth = _read_tsv(study / "derivatives/truth/truth.tsv")
    for p in participants:
        date = dt.date.fromisoformat(p["injection_date"])
        sessions = _read_tsv(study / p["participant_id"] / f"{p['participant_id']}_sessions.tsv")
        assert [s["session_id"] for s in sessions] == ["ses-01", "ses-02"]
        for s in sessions:
            acq = dt.datetime.fromisoformat(s["acq_time"])
            rows = [
                r
                for r in truth
                if r["participant_id"] == p["participant_id"]
                and r["session_id"] == s["session_id"]
            ]
            assert rows and all(int(r["days"]) == (acq.date() - date).days for r in rows)
        # the site is given in the scanner space of injection_session
        first = next(r for r in truth if r["participant_id"] == p["participant_id"])
        site = [float(p[f"injection_{a}"]) for a in "xyz"]
        assert site == pytest.approx([float(first[f"injection_{a}_mm"]) for a in "xyz"])
        mask = nib.load(study / "derivatives/truth" / first["graft_mask"])
        ijk = np.rint(np.linalg.solve(mask.affine[:3, :3], site - mask.affine[:3, 3])).astype(int)
        assert np.asarray(mask.dataobj)[tuple(ijk)] == 1


def test_headers_orientation_and_sidecars(study):
    image = nib.load(study / "sub-02/ses-01/anat/sub-02_ses-01_T2starw.nii.gz")
    header = image.header
    assert "".join(nib.aff2axcodes(image.affine)) == "LAS"
    assert (int(header["qform_code"]), int(header["sform_code"])) == (1, 1)
    assert np.allclose(image.get_qform(), image.get_sform())
    assert header.get_xyzt_units() == ("mm", "sec")
    assert header.get_dim_info() == (None, None, 2)
    assert image.get_data_dtype() == np.int16
    assert header.get_zooms() == pytest.approx((0.1, 0.1, 0.4))
    t2w = nib.load(study / "sub-02/ses-01/anat/sub-02_ses-01_T2w.nii.gz")
    assert "".join(nib.aff2axcodes(t2w.affine)) == "LPS"
    sidecar = json.loads((study / "sub-02/ses-01/anat/sub-02_ses-01_T2starw.json").read_text())
    assert sidecar["EchoTime"] == 0.008 and sidecar["MagneticFieldStrength"] == 9.4
    assert sidecar["RepetitionTime"] == 0.8 and sidecar["SliceThickness"] == pytest.approx(0.4)
    mask = nib.load(
        study / "derivatives/truth/sub-02/ses-01/anat/"
        "sub-02_ses-01_space-orig_label-void_desc-T2starw_mask.nii.gz"
    )
    assert mask.shape == image.shape and np.allclose(mask.affine, image.affine)


def test_truth_table(study):
    rows = _read_tsv(study / "derivatives/truth/truth.tsv")
    assert len(rows) == 2 * 1 + 2 * 2  # t2 subject: T2w; iron subject: T2w + T2starw
    columns = json.loads((study / "derivatives/truth/truth.json").read_text())
    assert set(rows[0]) == set(columns)
    for row in rows:
        analytic = float(row["graft_volume_mm3"])
        assert float(row["graft_volume_pv_mm3"]) == pytest.approx(analytic, rel=0.02)
        if row["suffix"] == "T2starw":
            void = float(row["void_volume_mm3"])
            assert float(row["void_volume_pv_mm3"]) == pytest.approx(void, rel=0.03)
            assert void > analytic
            assert float(row["echo_time_s"]) == 0.008
        else:
            assert row["void_volume_mm3"] == "n/a" and row["void_mask"] == "n/a"
        if row["graft_mode"] == "t2":
            assert float(row["cyst_volume_mm3"]) == pytest.approx(0.1)
    second = [r for r in rows if r["session_id"] == "ses-02"]
    assert all(float(r["motion_tx_mm"]) != 0.0 for r in second)
    first = [r for r in rows if r["session_id"] == "ses-01"]
    assert all(float(r["motion_rx_deg"]) == 0.0 for r in first)


def test_same_seed_gives_identical_bytes(tmp_path, study):
    again = _write(tmp_path / "again", seed=3)
    other = _write(tmp_path / "other", seed=4)
    reference = _hashes(study)
    assert _hashes(again) == reference
    different = _hashes(other)
    assert set(different) == set(reference)
    images = [k for k in reference if k.startswith("sub-") and k.endswith(".nii.gz")]
    assert all(different[k] != reference[k] for k in images)


def test_refuses_to_overwrite(tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "precious.txt").write_text("keep me")
    with pytest.raises(OutputError, match="folder is not empty"):
        _write(busy, n_subjects=1, n_sessions=1)
    with pytest.raises(OutputError, match="not a graftimg phantom study"):
        _write(busy, n_subjects=1, n_sessions=1, overwrite=True)
    assert (busy / "precious.txt").read_text() == "keep me"
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        _write(target, n_subjects=1, n_sessions=1)


def test_overwrite_replaces_a_previous_study(tmp_path):
    out = _write(tmp_path / "study", n_subjects=1, n_sessions=2, seed=1)
    _write(out, n_subjects=1, n_sessions=1, seed=1, overwrite=True)
    assert not (out / "sub-01" / "ses-02").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study"]


def test_failure_leaves_no_half_written_study(tmp_path, monkeypatch):
    real = study_module.render_session
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(study_module, "render_session", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _write(tmp_path / "study", n_subjects=1, n_sessions=2)
    assert list(tmp_path.iterdir()) == []


def test_modes_alternate_and_validation():
    specs = study_module._resolve_specs(3, None, None, 12.0, None)
    assert [(s.mode, s.scale) for s in specs] == [
        ("t2", "human"),
        ("iron", "rodent"),
        ("t2", "human"),
    ]
    assert all(a.snr == 12.0 for s in specs for a in s.acquisitions)
    human_iron = study_module._resolve_specs(1, "iron", "human", None, None)[0]
    assert human_iron.scale == "human" and human_iron.t2starw.orientation == "LAS"
    with pytest.raises(ConfigError, match="n_subjects=0 must be a positive integer"):
        write_study("unused", n_subjects=0)
    with pytest.raises(ConfigError, match="contradicts"):
        write_study("unused", mode="iron", spec=default_spec("human", "t2"))
    with pytest.raises(ConfigError, match="seed=-1"):
        write_study("unused", seed=-1)


def test_file_names_pass_the_bids_schema(study):
    validator = pytest.importorskip("bidsschematools.validator")
    for root in (study, study / "derivatives" / "truth"):
        result = validator.validate_bids(str(root))
        assert result["path_listing"]
        assert result["path_tracking"] == []  # every file matched a BIDS rule
