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
