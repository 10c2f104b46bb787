"""Registration of a session to the baseline in a box around the cord at the injection site."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from graftimg.cli import main
from graftimg.errors import DimensionError, SegmentationError
from graftimg.io.volume import Volume, load_volume
from graftimg.phantom.motion import random_motion
from graftimg.preprocess.noise import highpass_sigma
from graftimg.register.resample import resample_to_grid
from graftimg.register.rigid import register_rigid
from graftimg.register.session import register_session, site_metric_mask

DATA = Path(__file__).parent / "data" / "sct_testing_data"
SCANS = {
    "t2": ("t2/t2.nii.gz", "t2/t2_seg-manual.nii.gz"),
    "t1": ("t1/t1w.nii.gz", "t1/t1w_seg-manual.nii.gz"),
}


@cache
def _scan(name: str) -> tuple[Volume, np.ndarray, np.ndarray]:
    """A real scan, its manual cord mask and a site in the cord (mid-cord centroid)."""
    image, seg = SCANS[name]
    volume = load_volume(DATA / image)
    cord = np.asarray(load_volume(DATA / seg).data) > 0.5
    index = np.argwhere(cord)
    middle = int(np.median(index[:, 2]))
    site = volume.voxel_to_world(index[index[:, 2] == middle].mean(axis=0))
    return volume, cord, np.asarray(site, dtype=float)


def _moved(volume: Volume, site: np.ndarray, seed: int) -> tuple[Volume, np.ndarray]:
    """The scan moved by a known rigid motion (≤ 5°, ≤ 5 mm) plus its own noise level."""
    rng = np.random.default_rng(seed)
    motion = random_motion(rng, max_rotation_deg=5.0, max_translation_mm=5.0).matrix(site)
    data = np.asarray(volume.data, dtype=np.float32)
    moved = resample_to_grid(
        data,
        volume.affine,
        volume.affine,
        volume.shape,
        world_transform=np.linalg.inv(motion),
        order=3,
    )
    sigma = highpass_sigma(data)[0]
    moved = moved + rng.normal(0.0, sigma, moved.shape).astype(np.float32)
    return volume.with_data(moved), motion


@pytest.mark.parametrize("name", ["t2", "t1"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_real_scan_moved_by_a_known_motion_is_found_at_the_site(name, seed):
    fixed, cord, site = _scan(name)
    moving, motion = _moved(fixed, site, seed)
    result = register_session(fixed, moving, cord_mask=cord, site_mm=site)
    truth = motion[:3, :3] @ site + motion[:3, 3]
    assert np.linalg.norm(np.asarray(result.site_in_moving_mm) - truth) <= 0.3
    assert result.flags == ()
    assert result.registration.correlation > 0.8
    assert result.mask_kind == "site"


def test_the_bare_cord_is_a_worse_mask_than_the_cord_with_its_csf():
    fixed, cord, site = _scan("t2")
    moving, motion = _moved(fixed, site, 3)
    truth = motion[:3, :3] @ site + motion[:3, 3]

    def residual(rim_mm):
        result = register_session(fixed, moving, cord_mask=cord, site_mm=site, rim_mm=rim_mm)
        return np.linalg.norm(np.asarray(result.site_in_moving_mm) - truth)

    assert residual(None) <= 0.3 < residual(0.0)  # the default rim vs the bare cord


def test_site_mask_follows_an_oblique_cord():
    # A straight cord at 30° to the z axis in the x-z plane, 1 mm voxels.
    shape = (60, 40, 80)
    grid = np.stack(np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij"), -1)
    site = np.array([30.0, 20.0, 40.0])
    axis = np.array([np.sin(np.radians(30)), 0.0, np.cos(np.radians(30))])
    offset = grid - site
    along = offset @ axis
    radial = np.linalg.norm(offset - along[..., None] * axis, axis=-1)
    cord = radial <= 3.0
    region = site_metric_mask(cord, np.eye(4), site, half_length_mm=10.0, rim_mm=4.0)
    assert abs(abs(np.dot(region.axis, axis)) - 1.0) < 1e-3
    inside = region.mask
    # every point of the 7 mm tube within ±10 mm along the cord (1 mm from the edges) ...
    assert inside[(radial <= 6.0) & (np.abs(along) <= 9.0)].all()
    # ... and nothing beyond it
    assert not inside[(radial >= 8.0) | (np.abs(along) >= 11.0)].any()
    # default site: the middle of the cord
    assert site_metric_mask(cord, np.eye(4)).mask.any()


def test_bad_masks_and_sites_are_refused():
    fixed, cord, site = _scan("t2")
    with pytest.raises(DimensionError, match="cord mask is not on FIXED's grid"):
        register_session(fixed, fixed, cord_mask=cord[:-1], site_mm=site)
    with pytest.raises(SegmentationError, match="no cord within"):
        register_session(fixed, fixed, cord_mask=cord, site_mm=site + 200.0)
    with pytest.raises(SegmentationError, match="empty"):
        register_session(fixed, fixed, cord_mask=np.zeros_like(cord), site_mm=site)


def test_an_unrelated_image_is_flagged_poor_registration():
    fixed, cord, site = _scan("t2")
    noise = np.random.default_rng(0).normal(100.0, 10.0, fixed.shape).astype(np.float32)
    result = register_session(fixed, fixed.with_data(noise), cord_mask=cord, site_mm=site)
    assert result.flags == ("poor_registration",)
    assert result.record()["flags"] == ["poor_registration"]


def test_cropping_the_moving_image_leaves_the_result_unchanged():
    fixed, cord, site = _scan("t2")
    moving, _ = _moved(fixed, site, 4)
    mask = site_metric_mask(cord, fixed.affine, site).mask
    args = (fixed.data, fixed.affine, moving.data, moving.affine)
    whole = register_rigid(*args, fixed_mask=mask, center_mm=site, moving_margin_mm=None)
    cropped = register_rigid(*args, fixed_mask=mask, center_mm=site)
    assert np.allclose(whole.world_matrix, cropped.world_matrix, atol=1e-3)


def test_cli_register_with_a_cord_mask_and_a_site(tmp_path, capsys):
    fixed, _, site = _scan("t2")
    moving, motion = _moved(fixed, site, 5)
    nib.save(nib.Nifti1Image(np.asarray(moving.data), moving.affine), tmp_path / "moving.nii.gz")
    args = [str(DATA / SCANS["t2"][0]), str(tmp_path / "moving.nii.gz")]
    args += ["--cord", str(DATA / SCANS["t2"][1]), "--site", *(repr(float(v)) for v in site)]
    assert main(["register", *args, "-o", str(tmp_path / "out" / "r")]) == 0
    xfm = json.loads((tmp_path / "out" / "r_xfm.json").read_text())
    truth = motion[:3, :3] @ site + motion[:3, 3]
    assert np.linalg.norm(np.asarray(xfm["site_in_moving_mm"]) - truth) <= 0.3
    assert xfm["metric_mask"]["kind"] == "site" and xfm["flags"] == []
    assert xfm["provenance"]["inputs"]["cord"]["sha256"]
    image = nib.load(tmp_path / "out" / "r_space-fixed.nii.gz")
    assert image.shape == nib.load(args[0]).shape
    assert " s\nwrote " in capsys.readouterr().out


def test_cli_register_refuses_a_mask_on_another_grid(tmp_path):
    other = np.zeros((10, 10, 10), dtype=np.uint8)
    nib.save(nib.Nifti1Image(other, np.eye(4)), tmp_path / "cord.nii.gz")
    path = str(DATA / SCANS["t2"][0])
    code = main(
        [
            "register",
            path,
            path,
            "-o",
            str(tmp_path / "r"),
            "--cord",
            str(tmp_path / "cord.nii.gz"),
        ]
    )
    assert code != 0
    assert not list(tmp_path.glob("r_*"))
