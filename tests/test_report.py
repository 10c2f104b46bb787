"""QC pictures and the promise that the core does not import plotting or GUI libraries."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from graftimg.report.qc import qc_figure, qc_title, save_qc_png
from graftimg.report.volume_text import graft_volume_text


def test_qc_png_is_written(tmp_path):
    x, y, z = np.meshgrid(np.arange(20), np.arange(24), np.arange(30), indexing="ij")
    cord = (x - 10) ** 2 + (y - 12) ** 2 <= 16
    graft = cord & ((z - 15) ** 2 + (x - 10) ** 2 <= 4)
    image = np.where(cord, 1.0, 3.0) + np.where(graft, 1.0, 0.0)
    out = save_qc_png(tmp_path / "qc.png", image, spacing=(0.5, 0.5, 1.0), cord=cord, graft=graft)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["qc.png"]


def test_qc_title_of_an_unmeasured_graft_says_not_measured():
    # Issue 8: a failed measurement never reads as a volume in the picture.
    summary = {
        "mode": "t2",
        "graft_volume_pv_mm3": None,
        "graft_volume_null_reason": "no trustworthy normal-appearing cord to compare the graft "
        "with: give a field of view that covers normal cord beyond the graft, or check the "
        "cord mask",
    }
    image = np.ones((8, 8, 8))
    fig = qc_figure(image, spacing=(1.0, 1.0, 1.0), title=qc_title("sub-01_T2w.nii.gz", summary))
    shown = " ".join(fig._suptitle.get_text().split())
    assert shown.startswith(
        "sub-01_T2w.nii.gz · t2 · graft volume: not measured (no trustworthy normal-"
    )
    assert graft_volume_text(summary) in shown
    assert "mm³" not in shown
    measured = {
        "mode": "iron",
        "graft_volume_pv_mm3": 0.0,
        "graft_volume_low_mm3": 0.0,
        "graft_volume_high_mm3": 0.0,
        "graft_volume_mm3": 0.0,
    }
    assert qc_title("a.nii", measured) == (
        "a.nii · iron · graft volume: 0 mm³ partial-volume weighted [0, 0], binary 0 mm³"
    )


def test_import_graftimg_pulls_no_gui_or_plotting():
    code = (
        "import sys, graftimg, graftimg.io, graftimg.pipeline.session, graftimg.cli;"
        "heavy = ('matplotlib', 'napari', 'PyQt6', 'PyQt5', 'qtpy');"
        "bad = [m for m in heavy if m in sys.modules];"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
