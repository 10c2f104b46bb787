"""Shared fixtures: paths to the bundled real data and small helpers."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "sct_testing_data"

#: (image, mask, stored orientation, spacing) of every real scan bundled in tests/data.
SCT_PAIRS = [
    ("t2/t2.nii.gz", "t2/t2_seg-manual.nii.gz", "PSR", (1.0, 1.0, 1.0)),
    ("t1/t1w.nii.gz", "t1/t1w_seg-manual.nii.gz", "RAS", (1.0, 1.0, 1.0)),
    ("t2s/t2s.nii.gz", "t2s/t2s_seg.nii.gz", "LAS", (0.5, 0.5, 7.5)),
    ("mt/mt0.nii.gz", "mt/mt0_seg.nii.gz", "LAS", (0.84375, 0.84375, 17.0)),
    ("mt/mt1.nii.gz", "mt/mt1_seg.nii.gz", "LAS", (0.84375, 0.84375, 17.0)),
]


@pytest.fixture(scope="session")
def sct_data() -> Path:
    """Folder of the Spinal Cord Toolbox test images (MIT, licence beside them)."""
    return DATA


# -- every flag the suite writes is a Flag with a glossary entry (docs/flags.md) --------------
#: Flags seen in JSON written during this run: flag -> first test that wrote it.
FLAGS_SEEN: dict[str, str] = {}
_current_test = ["(collection)"]


def _collect_flags(obj, key: str = "") -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _collect_flags(v, str(k))
    elif isinstance(obj, list | tuple):
        if key.endswith("flags"):
            for v in obj:
                if isinstance(v, str):
                    FLAGS_SEEN.setdefault(v, _current_test[0])
        for v in obj:
            _collect_flags(v, key)


def pytest_configure(config):
    import json

    dumps = json.dumps

    def recording_dumps(obj, *args, **kwargs):
        _collect_flags(obj)
        return dumps(obj, *args, **kwargs)

    json.dumps = recording_dumps


def pytest_runtest_setup(item):
    _current_test[0] = item.nodeid


def pytest_sessionfinish(session, exitstatus):
    from graftimg.flags import Flag

    unknown = {}
    for text, test in FLAGS_SEEN.items():
        try:
            Flag.parse(text)
        except ValueError:
            unknown[text] = test
    if unknown:
        lines = [f"  {flag!r} (first written by {test})" for flag, test in sorted(unknown.items())]
        print(
            "\nflags written by the tests but missing from graftimg/flags.py (add each with its "
            "meaning, then `python -m graftimg.flags > docs/flags.md`):\n" + "\n".join(lines)
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
