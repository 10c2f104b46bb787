"""The session record (``_graft.json``) and its published JSON Schema (docs/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from graftimg.cli import main
from graftimg.io.session_record import SCHEMA_VERSION, json_schema

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "docs" / "session_record.schema.json"
SAMPLE = REPO / "sample_data"


def test_published_schema_is_generated_from_the_model():
    assert json.loads(SCHEMA.read_text()) == json_schema(), (
        "docs/session_record.schema.json is stale: "
        "python -m graftimg.io.session_record > docs/session_record.schema.json"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("image", "args"),
    [
        ("sub-01/ses-01/anat/sub-01_ses-01_T2w.nii.gz", ["--mode", "t2"]),
        (
            "sub-02/ses-01/anat/sub-02_ses-01_T2starw.nii.gz",
            ["--mode", "iron", "--cord-from", "sub-02/ses-01/anat/sub-02_ses-01_T2w.nii.gz"],
        ),
    ],
    ids=["t2", "iron"],
)
def test_sample_study_records_validate_against_the_schema(tmp_path, image, args):
    jsonschema = pytest.importorskip("jsonschema")
    participants = (SAMPLE / "participants.tsv").read_text().splitlines()
    header = participants[0].split("\t")
    subject = image.split("/")[0]
    row = dict(zip(header, next(r.split("\t") for r in participants if r.startswith(subject))))
    site = [row["injection_x"], row["injection_y"], row["injection_z"]]
    args = [str(SAMPLE / a) if a.startswith("sub-") else a for a in args]
    prefix = tmp_path / "out"
    assert (
        main(["segment", str(SAMPLE / image), "-o", str(prefix), *args, "--injection", *site]) == 0
    )
    record = json.loads(Path(f"{prefix}_graft.json").read_text())
    jsonschema.validate(record, json.loads(SCHEMA.read_text()))
    assert record["schema_version"] == SCHEMA_VERSION
    assert record["graft_volume_mm3"] > 0
    # a record that breaks the schema is refused: the check can fail
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**record, "graft_volume_mm3": "large"}, json.loads(SCHEMA.read_text())
        )
