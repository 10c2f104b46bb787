"""``graftimg register``: a known shift between two files is recovered and written."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from graftimg.cli import main


def _pair(shift_mm):
    """A smooth random texture and its copy moved by ``shift_mm`` (fixed q ↔ moving q + shift)."""
    spacing = np.array([1.0, 1.0, 1.5])
    rng = np.random.default_rng(7)
    fixed = ndimage.gaussian_filter(rng.normal(size=(40, 40, 30)), 2.0) * 1000 + 500
    moving = ndimage.shift(fixed, np.asarray(shift_mm) / spacing, order=3, mode="nearest")
    return fixed.astype(np.float32), moving.astype(np.float32), np.diag([*spacing, 1.0])


def test_register_recovers_a_known_shift(tmp_path, capsys):
    fixed, moving, affine = _pair((1.5, -1.0, 2.0))
    nib.save(nib.Nifti1Image(fixed, affine), tmp_path / "fixed.nii.gz")
    nib.save(nib.Nifti1Image(moving, affine), tmp_path / "moving.nii.gz")
    args = [str(tmp_path / "fixed.nii.gz"), str(tmp_path / "moving.nii.gz")]
    assert main(["register", *args, "-o", str(tmp_path / "r"), "--metric", "correlation"]) == 0
    xfm = json.loads((tmp_path / "r_xfm.json").read_text())
    matrix = np.asarray(xfm["world_matrix_fixed_to_moving_ras_mm"])
    centre = np.array([20.0, 20.0, 22.0, 1.0])
    assert (matrix @ centre)[:3] - centre[:3] == pytest.approx([1.5, -1.0, 2.0], abs=0.3)
    assert xfm["rotation_deg"] < 1.0
    out = nib.load(tmp_path / "r_space-fixed.nii.gz")
    assert out.shape == fixed.shape and np.allclose(out.affine, affine)
