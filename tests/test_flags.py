"""The Flag enum and its glossary (docs/flags.md); conftest checks every flag the suite writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import FLAGS_SEEN

from graftimg.flags import Flag, glossary_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs" / "flags.md"


def test_glossary_page_is_generated_from_the_enum():
    assert DOCS.read_text(encoding="utf-8") == glossary_markdown(), (
        "docs/flags.md is stale: python -m graftimg.flags > docs/flags.md"
    )


def test_every_member_is_explained_once():
    text = DOCS.read_text(encoding="utf-8")
    for flag in Flag:
        assert flag.description.strip() and flag.source.strip()
        assert text.count(f"| `{flag.value}` |") == 1, flag


def test_flags_are_plain_strings_in_json():
    assert json.dumps({"flags": [Flag.LOW_SNR, Flag.NO_GRAFT_FOUND]}) == (
        '{"flags": ["low_snr", "no_graft_found"]}'
    )
    assert Flag("reference_unreliable") is Flag.REFERENCE_UNRELIABLE
    assert Flag.parse("participant_without_folder:03") is Flag.PARTICIPANT_WITHOUT_FOLDER
    with pytest.raises(ValueError):
        Flag.parse("made_up_flag")


def test_flags_written_are_recorded(tmp_path):
    from graftimg.io.atomic import write_json_atomic

    write_json_atomic(tmp_path / "x.json", {"summary": {"flags": ["low_snr", "x:1"]}})
    assert {"low_snr", "x:1"} <= set(FLAGS_SEEN)
    del FLAGS_SEEN["x:1"]  # a made-up flag: keep the end-of-run check meaningful
