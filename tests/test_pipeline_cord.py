"""The companion route's choice between the scanner carry and a registration refinement."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from graftimg.io import load_volume
from graftimg.pipeline.cord import _edge_strength


@pytest.fixture
def cord_volume(tmp_path):
    """A straight dark cord (radius 4 mm) in a bright CSF ring, 0.5 mm voxels, noisy."""
    shape, step = (48, 48, 40), 0.5
    x, y = np.meshgrid(*(np.arange(n) * step - 12.0 for n in shape[:2]), indexing="ij")
    r = np.hypot(x, y)
    plane = np.where(r <= 4.0, 300.0, np.where(r <= 6.5, 900.0, 150.0))
    image = np.repeat(plane[:, :, None], shape[2], axis=2)
    image += np.random.default_rng(0).normal(0.0, 20.0, shape)
    affine = np.diag([step, step, step, 1.0])
    path = tmp_path / "T2starw.nii.gz"
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), path)
    truth = np.repeat((r <= 4.0)[:, :, None], shape[2], axis=2)
    return load_volume(path), truth


@pytest.mark.parametrize("shift_voxels", [1, 2, 4])
def test_edge_is_sharpest_under_the_right_cord(cord_volume, shift_voxels):
    volume, truth = cord_volume
    right = _edge_strength(volume, truth)
    wrong = _edge_strength(volume, np.roll(truth, shift_voxels, axis=1))
    assert right > wrong > 0
    assert _edge_strength(volume, np.zeros_like(truth)) == 0.0
