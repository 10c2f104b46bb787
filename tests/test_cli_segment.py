"""``graftimg segment-cord`` and ``graftimg segment`` on real scans, in the input's own grid."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from graftimg.cli import main


def _dice(a, b):
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.mark.parametrize(
    ("image", "manual", "extra"),
    [
        ("t2/t2.nii.gz", "t2/t2_seg-manual.nii.gz", []),
        ("t1/t1w.nii.gz", "t1/t1w_seg-manual.nii.gz", []),
        ("t2s/t2s.nii.gz", "t2s/t2s_seg.nii.gz", ["--contrast", "t2s"]),
    ],
)
def test_segment_cord_writes_mask_in_input_grid(sct_data, tmp_path, image, manual, extra):
    out = tmp_path / "cord.nii.gz"
    assert main(["segment-cord", str(sct_data / image), "-o", str(out), *extra]) == 0
    src, mask, ref = nib.load(sct_data / image), nib.load(out), nib.load(sct_data / manual)
    assert mask.shape == src.shape
    assert np.array_equal(mask.affine, src.affine)
    assert nib.aff2axcodes(mask.affine) == nib.aff2axcodes(src.affine)  # PSR stays PSR
    dice = _dice(np.asanyarray(mask.dataobj) > 0, np.asanyarray(ref.dataobj) > 0)
    assert dice >= 0.90
    sidecar = json.loads((tmp_path / "cord.json").read_text())
    assert 0.0 <= sidecar["confidence"] <= 1.0
    assert "cord_uncertain" not in sidecar["flags"]
    assert len(sidecar["csa_mm2_per_axial_slice"]) > 0
    assert sidecar["provenance"]["inputs"]["image"]["sha256"]


def test_segment_cord_needs_a_contrast_without_bids_suffix(sct_data, tmp_path, capsys):
    out = tmp_path / "c.nii.gz"
    assert main(["segment-cord", str(sct_data / "mt/mt1.nii.gz"), "-o", str(out)]) == 1
    assert "--contrast" in capsys.readouterr().err
    assert not out.exists()


def test_segment_cord_with_seed_voxel(sct_data, tmp_path):
    out = tmp_path / "mt.nii.gz"
    seed = ["--cord-seed-voxel", "22", "19", "2"]
    args = ["segment-cord", str(sct_data / "mt/mt1.nii.gz"), "-o", str(out), "--contrast", "mt"]
    assert main(args + seed) == 0
    ref = np.asanyarray(nib.load(sct_data / "mt/mt1_seg.nii.gz").dataobj) > 0
    assert _dice(np.asanyarray(nib.load(out).dataobj) > 0, ref) >= 0.80


def test_segment_on_healthy_cord_finds_nothing_and_says_so(sct_data, tmp_path):
    prefix = tmp_path / "t2"
    assert (
        main(["segment", str(sct_data / "t2/t2.nii.gz"), "-o", str(prefix), "--mode", "t2"]) == 0
    )
    result = json.loads((tmp_path / "t2_graft.json").read_text())
    assert result["graft_volume_mm3"] == 0.0
    assert {"injection_site_automatic", "no_graft_found"} <= set(result["flags"])
    graft = nib.load(tmp_path / "t2_label-graft_mask.nii.gz")
    assert nib.aff2axcodes(graft.affine) == ("P", "S", "R")
    assert not np.asanyarray(graft.dataobj).any()
    for key in ("graft_volume_pv_mm3", "graft_volume_low_mm3", "graft_volume_high_mm3", "mode"):
        assert key in result


def test_segment_with_user_cord_mask(sct_data, tmp_path):
    prefix = tmp_path / "t1"
    args = ["segment", str(sct_data / "t1/t1w.nii.gz"), "-o", str(prefix), "--mode", "t2"]
    mask = sct_data / "t1/t1w_seg-manual.nii.gz"
    assert main([*args, "--cord-mask", str(mask), "--injection-voxel", "21", "40", "40"]) == 0
    result = json.loads((tmp_path / "t1_graft.json").read_text())
    assert result["cord"]["source"] == "mask"
    manual = np.asanyarray(nib.load(mask).dataobj) > 0
    written = np.asanyarray(nib.load(tmp_path / "t1_label-cord_mask.nii.gz").dataobj) > 0
    assert np.array_equal(manual, written)


def test_segment_reports_a_preprocessing_failure_of_the_worker_thread(tmp_path, capsys):
    # The body mask and N4 run in a worker thread beside the cord: their errors must still
    # reach the user as one message naming the file, with nothing written.
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    image = tmp_path / "sub-01_T2w.nii.gz"
    nib.save(nib.Nifti1Image(np.full((20, 20, 12), 100.0, np.float32), affine), image)
    cord = np.zeros((20, 20, 12), np.uint8)
    cord[8:12, 8:12, :] = 1
    mask = tmp_path / "cord.nii.gz"
    nib.save(nib.Nifti1Image(cord, affine), mask)
    prefix = tmp_path / "out" / "s"
    args = ["segment", str(image), "-o", str(prefix), "--mode", "t2", "--cord-mask", str(mask)]
    assert main([*args, "--injection-voxel", "10", "10", "6"]) == 1
    err = capsys.readouterr().err
    assert "constant" in err
    assert "sub-01_T2w.nii.gz" in err
    assert not list(tmp_path.glob("out/*"))
