"""Library code leaves process-wide state alone (issue 9): umask, matplotlib backend, env parsing.

Also: provenance records the numerical libraries' versions, and library functions raise the
typed errors of graftimg.errors, never a bare ValueError.
"""

from __future__ import annotations

import ast
import os
import stat
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from graftimg.errors import ConfigError, ImageTooLargeError
from graftimg.io.atomic import hidden_folder, write_text_atomic
from graftimg.io.volume import load_volume
from graftimg.provenance import provenance_record

ROOT = Path(__file__).resolve().parents[1] / "graftimg"


def _library_sources():
    for path in sorted(ROOT.rglob("*.py")):
        yield path, ast.parse(path.read_text(), filename=str(path))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.fixture
def no_umask_calls(monkeypatch):
    """Fail any os.umask call: it would change the mask for every running thread."""

    def refuse(*_):
        raise AssertionError("library code called os.umask")

    mask = _umask()
    monkeypatch.setattr(os, "umask", refuse)
    return mask


def test_atomic_files_and_folders_get_plain_permissions_without_umask(tmp_path, no_umask_calls):
    out = write_text_atomic(tmp_path / "a.txt", "x")
    folder = hidden_folder(tmp_path, ".study.tmp-")
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~no_umask_calls
    assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~no_umask_calls
    assert folder.parent == tmp_path and folder.name.startswith(".study.tmp-")


def test_phantom_study_written_without_umask(tmp_path, no_umask_calls):
    from graftimg.phantom.study import write_study

    study = write_study(tmp_path / "study", n_subjects=1, n_sessions=1, seed=0, scale="rodent")
    assert stat.S_IMODE((study / "participants.tsv").stat().st_mode) == 0o666 & ~no_umask_calls
    assert stat.S_IMODE(study.stat().st_mode) == 0o777 & ~no_umask_calls
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_no_umask_matplotlib_use_or_pyplot_in_library_code():
    found = []
    for path, tree in _library_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and ast.unparse(node) in {
                "os.umask",
                "matplotlib.use",
            }:
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                names += [a.name for a in node.names]
                if any("pyplot" in n for n in names):
                    found.append(f"{path.name}:{node.lineno} pyplot")
    assert not found, found


def test_no_bare_value_error_in_library_code():
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path, tree in _library_sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and ast.unparse(node.exc.func) == "ValueError"
    ]
    assert not found, found


def _small_image(tmp_path) -> Path:
    path = tmp_path / "small.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), path)
    return path


@pytest.mark.parametrize("value", ["lots", "2e9", "-5", "0", "4 GiB"])
def test_max_image_bytes_env_must_be_a_positive_integer(tmp_path, monkeypatch, value):
    monkeypatch.setenv("GRAFTIMG_MAX_IMAGE_BYTES", value)
    with pytest.raises(ConfigError, match=r"GRAFTIMG_MAX_IMAGE_BYTES=.* whole number of bytes"):
        load_volume(_small_image(tmp_path))


def test_max_image_bytes_env_sets_the_cap(tmp_path, monkeypatch):
    path = _small_image(tmp_path)
    monkeypatch.setenv("GRAFTIMG_MAX_IMAGE_BYTES", "100")  # 256 bytes as float32
    with pytest.raises(ImageTooLargeError, match="memory cap"):
        load_volume(path)
    monkeypatch.setenv("GRAFTIMG_MAX_IMAGE_BYTES", "1_000")
    assert load_volume(path).shape == (4, 4, 4)
    monkeypatch.delenv("GRAFTIMG_MAX_IMAGE_BYTES")
    assert load_volume(path).shape == (4, 4, 4)


def test_provenance_records_library_versions():
    libraries = provenance_record(params={})["libraries"]
    assert libraries == {
        name: metadata.version(name)
        for name in ("numpy", "scipy", "SimpleITK", "nibabel", "scikit-image")
    }
