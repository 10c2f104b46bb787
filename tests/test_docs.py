"""The API reference (docs/api) builds without warnings; every module is in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
API = REPO / "docs" / "api"


def _modules() -> set[str]:
    out = set()
    for path in (REPO / "graftimg").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        out.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out - {"graftimg._version"}


def test_every_module_is_in_the_api_reference():
    listed = set(re.findall(r"^\.\. automodule:: (\S+)$", (API / "index.rst").read_text(), re.M))
    assert listed == _modules(), {"missing": _modules() - listed, "gone": listed - _modules()}


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
