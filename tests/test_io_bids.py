"""Discovering BIDS studies: sessions, days since injection, metadata errors and flags."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from graftimg.errors import BIDSError, LabelError, MetadataError
from graftimg.io.bids import discover_study, parse_entities, validate_label

PARTICIPANTS = (
    "participant_id\tgraft_mode\tinjection_date\tinjection_x\tinjection_y\tinjection_z"
    "\tinjection_session\tcells_injected\n"
)


def make_study(root, rows=None, sessions=None):
    """A tiny study: sub-01 (iron, 3 sessions) and sub-02 (t2, 2 sessions)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "tiny", "BIDSVersion": "1.9.0"})
    )
    rows = rows or [
        "sub-01\tiron\t2024-01-10\t1.5\t-2.0\t30.0\tpre\t2000000",
        "sub-02\tt2\t2024-02-01\tn/a\tn/a\tn/a\tn/a\tn/a",
    ]
    (root / "participants.tsv").write_text(PARTICIPANTS + "\n".join(rows) + "\n")
    sessions = sessions or {
        "01": [("pre", "2024-01-09T10:00:00"), ("w1", "2024-01-17T12:00:00"), ("w4", "n/a")],
        "02": [("a", "2024-02-15T08:00:00"), ("b", "2024-01-31T08:00:00")],
    }
    for sub, ses_list in sessions.items():
        lines = ["session_id\tacq_time"] + [f"ses-{s}\t{t}" for s, t in ses_list]
        (root / f"sub-{sub}").mkdir(exist_ok=True)
        (root / f"sub-{sub}" / f"sub-{sub}_sessions.tsv").write_text("\n".join(lines) + "\n")
        for ses, _ in ses_list:
            anat = root / f"sub-{sub}" / f"ses-{ses}" / "anat"
            anat.mkdir(parents=True, exist_ok=True)
            for suffix in ("T2w", "T2starw"):
                path = anat / f"sub-{sub}_ses-{ses}_{suffix}.nii.gz"
                nib.save(nib.Nifti1Image(np.zeros((2, 2, 2), np.int16), np.eye(4)), path)
                (anat / f"sub-{sub}_ses-{ses}_{suffix}.json").write_text('{"EchoTime": 0.01}')
    return root


def test_discovers_subjects_sessions_and_days(tmp_path):
    study = discover_study(make_study(tmp_path / "s"))
    assert study.name == "tiny"
    assert [s.label for s in study.subjects] == ["01", "02"]
    sub1 = study.subject("sub-01")
    assert sub1.graft_mode == "iron"
    assert sub1.injection.site_mm == (1.5, -2.0, 30.0)
    assert sub1.injection.cells_injected == 2e6
    assert [s.label for s in sub1.sessions] == ["pre", "w1", "w4"]
    pre, w1, w4 = sub1.sessions
    assert pre.days_since_injection == pytest.approx(-14 / 24)
    assert "before_injection" in pre.flags
    assert w1.days_since_injection == pytest.approx(7.5)
    assert w4.days_since_injection is None and "acq_time_missing" in w4.flags
    assert [im.suffix for im in w1.images] == ["T2starw", "T2w"]
    assert w1.find("t2w")[0].sidecar is not None
    # Sessions sorted by acquisition time, not by name.
    sub2 = study.subject("02")
    assert [s.label for s in sub2.sessions] == ["b", "a"]
    assert "injection_site_missing" in sub2.flags
    assert sub2.injection.session is None


def test_selecting_labels(tmp_path):
    root = make_study(tmp_path / "s")
    study = discover_study(root, participant_labels=["02"], session_labels=["ses-a"])
    assert [s.label for s in study.subjects] == ["02"]
    assert [s.label for s in study.subjects[0].sessions] == ["a"]
    with pytest.raises(BIDSError, match="not found"):
        discover_study(root, participant_labels=["03"])


@pytest.mark.parametrize("label", ["..", "../x", "a/b", "a\\b", "sub-..", "x y", "0-1", ""])
def test_unsafe_labels_are_refused(label):
    with pytest.raises(LabelError, match="not allowed"):
        validate_label(label)


def test_hostile_participant_label_in_tsv(tmp_path):
    root = make_study(tmp_path / "s", rows=["sub-../../etc\tiron\tn/a\tn/a\tn/a\tn/a\tn/a\tn/a"])
    with pytest.raises(LabelError, match="not allowed"):
        discover_study(root)


def test_hostile_participant_label_from_caller(tmp_path):
    with pytest.raises(LabelError):
        discover_study(make_study(tmp_path / "s"), participant_labels=["../01"])


@pytest.mark.parametrize(
    ("row", "match"),
    [
        ("sub-01\tgold\t2024-01-10\t1\t2\t3\tn/a\tn/a", "graft_mode"),
        ("sub-01\tiron\t10/01/2024\t1\t2\t3\tn/a\tn/a", "YYYY-MM-DD"),
        ("sub-01\tiron\t2024-01-10\t1\tn/a\t3\tn/a\tn/a", "only some"),
        ("sub-01\tiron\t2024-01-10\t1\tabc\t3\tn/a\tn/a", "not a number"),
        ("sub-01\tiron\t2024-01-10\t1\t2\t3\tw9\tn/a", "injection_session"),
        ("sub-01\tiron\t2024-01-10\t1\t2", "columns"),
    ],
)
def test_bad_participants_metadata(tmp_path, row, match):
    root = make_study(tmp_path / "s", rows=[row])
    with pytest.raises(MetadataError, match=match):
        discover_study(root)


def test_contradictory_duplicate_participant(tmp_path):
    rows = [
        "sub-01\tiron\t2024-01-10\t1\t2\t3\tn/a\tn/a",
        "sub-01\tt2\t2024-01-10\t1\t2\t3\tn/a\tn/a",
    ]
    with pytest.raises(MetadataError, match="twice"):
        discover_study(make_study(tmp_path / "s", rows=rows))


def test_missing_session_and_bad_acq_time(tmp_path):
    root = make_study(tmp_path / "s")
    tsv = root / "sub-02" / "sub-02_sessions.tsv"
    tsv.write_text(tsv.read_text() + "ses-c\t2024-03-01T00:00:00\n")
    sub2 = discover_study(root).subject("02")
    assert "session_missing_on_disk:c" in sub2.flags
    tsv.write_text("session_id\tacq_time\nses-a\tyesterday\n")
    with pytest.raises(MetadataError, match="ISO 8601"):
        discover_study(root)


def test_file_in_wrong_folder(tmp_path):
    root = make_study(tmp_path / "s")
    anat = root / "sub-01" / "ses-w1" / "anat"
    (anat / "sub-01_ses-w1_T2w.nii.gz").rename(anat / "sub-02_ses-w1_T2w.nii.gz")
    with pytest.raises(MetadataError, match="folder"):
        discover_study(root)


def test_not_a_study(tmp_path):
    with pytest.raises(BIDSError, match="not a folder"):
        discover_study(tmp_path / "absent")
    with pytest.raises(BIDSError, match="no sub-"):
        discover_study(tmp_path)


def test_parse_entities():
    assert parse_entities("sub-1_ses-2_run-3_T2starw.nii") == (
        {"sub": "1", "ses": "2", "run": "3"},
        "T2starw",
    )
