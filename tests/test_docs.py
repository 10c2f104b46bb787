"""The API reference (docs/api) builds without warnings from every module's docstrings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "api"


@pytest.mark.slow
def test_api_reference_builds_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    # -W: a warning fails the build; the dummy builder reads and checks every page, writes none.
    # A subprocess: Sphinx's own deprecation warnings are not this suite's to turn into errors.
    args = ["-E", "-q", "-W", "--keep-going", "-b", "dummy", str(API), str(tmp_path / "build")]
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
