"""``graftimg run`` over a phantom study: outputs, resumability, group table, failures."""

from __future__ import annotations

import csv
import dataclasses
import fnmatch
import json

import nibabel as nib
import numpy as np
import pytest

import graftimg.segment.graft as graft_module
from graftimg.cli import main
from graftimg.phantom.study import write_study
from graftimg.pipeline.session import NULL_VOLUME_KEYS, NULL_VOLUME_REASONS


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study") / "bids"
    write_study(root, n_subjects=1, n_sessions=2, mode="iron", seed=3)
    return root


@pytest.fixture(scope="module")
def truth(study):
    with open(study / "derivatives/truth/truth.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return {r["session_id"]: r for r in rows if r["suffix"] == "T2starw"}


@pytest.fixture(scope="module")
def derivatives(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "derivatives"
    assert main(["run", str(study), str(out), "participant"]) == 0
    return out


def test_participant_level_writes_bids_derivatives(derivatives, truth):
    desc = json.loads((derivatives / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "graftimg"
    for ses in ("01", "02"):
        anat = derivatives / "sub-01" / f"ses-{ses}" / "anat"
        prefix = f"sub-01_ses-{ses}_space-orig"
        assert (anat / f"{prefix}_label-graft_desc-T2starw_mask.nii.gz").is_file()
        assert (anat / f"{prefix}_label-cord_desc-T2starw_mask.nii.gz").is_file()
        result = json.loads((anat / f"{prefix}_desc-T2starw_graft.json").read_text())
        assert result["mode"] == "iron"
        assert result["cord"]["source"] == "companion"
        assert result["echo_time_s"] == pytest.approx(float(truth[f"ses-{ses}"]["echo_time_s"]))
        void = float(truth[f"ses-{ses}"]["void_volume_mm3"])
        # The void measured against its analytic truth (rodent T2*w, 0.1 × 0.1 × 0.4 mm).
        assert result["graft_volume_pv_mm3"] == pytest.approx(void, rel=0.15)
        assert result["graft_volume_low_mm3"] <= void <= result["graft_volume_high_mm3"]
        assert result["provenance"]["inputs"]["image"]["sha256"]
    first, second = (
        json.loads(
            (
                derivatives
                / f"sub-01/ses-{s}/anat/sub-01_ses-{s}_space-orig_desc-T2starw_graft.json"
            ).read_text()
        )
        for s in ("01", "02")
    )
    assert "site_from_registration" in second["study_flags"]
    # The site is given in session 01's coordinates and carried to 02 by registration.
    assert first["injection_site_source"] == "given"
    assert second["injection_site_source"] == "registration"
    assert "graft_volume_null_reason" not in first


def test_rerun_skips_finished_sessions(study, derivatives, capsys):
    before = {p: p.stat().st_mtime_ns for p in derivatives.rglob("*.nii.gz")}
    assert main(["run", str(study), str(derivatives), "participant"]) == 0
    assert "0 sessions done, 2 skipped" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in derivatives.rglob("*.nii.gz")} == before


def test_group_level_table(study, derivatives, capsys):
    assert main(["run", str(study), str(derivatives), "group"]) == 0
    # Issue 11: the group level also writes the survival reports and says where they are.
    assert f"report: {derivatives / 'survival.html'}" in capsys.readouterr().out
    survival = json.loads((derivatives / "sub-01" / "sub-01_survival.json").read_text())
    assert survival["mode"] == "iron" and survival["n_sessions"] == 2
    assert (derivatives / "sub-01" / "sub-01_survival.html").is_file()
    assert (derivatives / "survival.tsv").is_file()
    # BIDS has no name for them: .bidsignore lists them.
    ignore = (derivatives / ".bidsignore").read_text().split()
    for name in ("survival.html", "survival.tsv", "sub-01/sub-01_survival.json"):
        assert any(fnmatch.fnmatch(name, pattern) for pattern in ignore), name
    with open(derivatives / "graft_volumes.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [r["session_id"] for r in rows] == ["ses-01", "ses-02"]
    assert len({r["params_hash"] for r in rows}) == 1
    assert float(rows[1]["days_since_injection"]) > float(rows[0]["days_since_injection"])


def test_unmeasured_graft_is_null_with_its_reason_never_zero(study, tmp_path, monkeypatch, capsys):
    # Issue 8: when no trustworthy normal-cord reference exists the graft algorithm flags
    # reference_unreliable; the volume must then be null with a reason (n/a in the table),
    # never 0, the run still succeeds, and the masks are written empty.
    original = graft_module.segment_graft

    def unreliable(*args, **kwargs):
        seg = original(*args, **kwargs)
        return dataclasses.replace(seg, flags=tuple(sorted({*seg.flags, "reference_unreliable"})))

    monkeypatch.setattr(graft_module, "segment_graft", unreliable)
    out = tmp_path / "derivatives"
    assert main(["run", str(study), str(out), "participant", "--session-label", "01"]) == 0
    captured = capsys.readouterr()
    reason = NULL_VOLUME_REASONS["reference_unreliable"]
    assert f"done sub-01_ses-01 (iron): graft volume: not measured ({reason})" in " ".join(
        captured.err.split()
    )
    anat = out / "sub-01/ses-01/anat"
    result = json.loads((anat / "sub-01_ses-01_space-orig_desc-T2starw_graft.json").read_text())
    for key in NULL_VOLUME_KEYS:
        assert result[key] is None, key
    assert result["graft_volume_null_reason"] == reason
    assert "reference_unreliable" in result["flags"]
    assert result["cord_volume_mm3"] > 0
    graft = nib.load(anat / "sub-01_ses-01_space-orig_label-graft_desc-T2starw_mask.nii.gz")
    assert not np.asanyarray(graft.dataobj).any()
    cord = nib.load(anat / "sub-01_ses-01_space-orig_label-cord_desc-T2starw_mask.nii.gz")
    assert np.asanyarray(cord.dataobj).any()

    assert main(["run", str(study), str(out), "group"]) == 0
    with open(out / "graft_volumes.tsv") as handle:
        (row,) = list(csv.DictReader(handle, delimiter="\t"))
    for key in (k for k in NULL_VOLUME_KEYS if k != "graft_n_voxels"):
        assert row[key] == "n/a", key
    assert row["graft_volume_null_reason"] == reason
    assert float(row["cord_volume_mm3"]) > 0
    sidecar = json.loads((out / "graft_volumes.json").read_text())
    assert "graft_volume_null_reason" in sidecar


def test_group_table_says_n_a_only_for_unmeasured(study, derivatives):
    assert main(["run", str(study), str(derivatives), "group"]) == 0
    with open(derivatives / "graft_volumes.tsv") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    for row in rows:
        assert row["graft_volume_null_reason"] == "n/a"
        assert float(row["graft_volume_pv_mm3"]) > 0


def test_a_broken_session_fails_alone(study, tmp_path, capsys):
    import shutil

    broken = tmp_path / "bids"
    shutil.copytree(study, broken)
    image = broken / "sub-01/ses-02/anat/sub-01_ses-02_T2starw.nii.gz"
    image.write_bytes(image.read_bytes()[:500])
    out = tmp_path / "out"
    assert main(["run", str(broken), str(out), "participant", "--session-label", "02"]) == 1
    captured = capsys.readouterr()
    assert "failed sub-01_ses-02" in captured.err and "Traceback" not in captured.err
    # No mask of the failed session, only the record of its failure.
    anat = out / "sub-01" / "ses-02" / "anat"
    assert sorted(p.name for p in anat.iterdir()) == ["sub-01_ses-02_failed.json"]


def test_output_inside_input_is_refused(study, capsys):
    assert main(["run", str(study), str(study), "participant"]) == 1
    assert "output folder is the input dataset" in capsys.readouterr().err


def test_hostile_participant_label(study, tmp_path, capsys):
    args = ["run", str(study), str(tmp_path / "o"), "participant", "--participant-label", "../x"]
    assert main(args) == 1
    assert "not allowed" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
