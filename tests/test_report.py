"""QC pictures and the promise that the core does not import plotting or GUI libraries."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from graftimg.report.qc import save_qc_png


def test_qc_png_is_written(tmp_path):
    x, y, z = np.meshgrid(np.arange(20), np.arange(24), np.arange(30), indexing="ij")
    cord = (x - 10) ** 2 + (y - 12) ** 2 <= 16
    graft = cord & ((z - 15) ** 2 + (x - 10) ** 2 <= 4)
    image = np.where(cord, 1.0, 3.0) + np.where(graft, 1.0, 0.0)
    out = save_qc_png(tmp_path / "qc.png", image, spacing=(0.5, 0.5, 1.0), cord=cord, graft=graft)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert out.stat().st_size > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["qc.png"]


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
