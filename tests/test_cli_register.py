"""``graftimg register``: a known shift between two files is recovered and written."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from graftimg.cli import main


def _tube(shift_mm=(0.0, 0.0, 0.0)):
    spacing = np.array([1.0, 1.0, 1.5])
    x, y, z = np.meshgrid(np.arange(40), np.arange(40), np.arange(30), indexing="ij")
    pts = np.stack([x, y, z], axis=-1) * spacing - np.asarray(shift_mm)
    cx, cy = 20 + 2 * np.sin(pts[..., 2] / 9.0), 20.0
    r2 = ((pts[..., 0] - cx) / 4.0) ** 2 + ((pts[..., 1] - cy) / 3.0) ** 2
    image = np.where(r2 <= 1, 300.0, np.where(r2 <= 2.5, 1000.0, 200.0))
    image += 150.0 * ((pts[..., 2] % 12.0) < 3) * (pts[..., 1] > 28)
    image = ndimage.gaussian_filter(image, 0.7)
    affine = np.diag([*spacing, 1.0])
    return image.astype(np.float32), affine


def test_register_recovers_a_known_shift(tmp_path, capsys):
    fixed, affine = _tube()
    moving, _ = _tube(shift_mm=(1.5, -1.0, 2.0))
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
