"""``graftimg segment-cord`` and ``graftimg segment`` on real scans, in the input's own grid."""

from __future__ import annotations

import dataclasses
import json

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage
from test_io_volume import make_slab

import graftimg.report.qc as qc_module
import graftimg.segment.graft as graft_module
from graftimg.cli import main
from graftimg.io import load_volume
from graftimg.pipeline.session import NULL_VOLUME_KEYS, NULL_VOLUME_REASONS
from graftimg.report.volume_text import format_mm3


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
    # Zero stays zero when the search was made and found nothing.
    assert "graft_volume_null_reason" not in result


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


# --- JSON fields, one printed volume, null volumes (issue 8) --------------------------------

#: The real T2w is stored PSR with an offset affine; the site is a stored voxel inside the cord.
_T2_SITE_VOXEL = ["31", "27", "25"]


def _segment_t2(sct_data, prefix, *extra):
    args = ["segment", str(sct_data / "t2/t2.nii.gz"), "-o", str(prefix), "--mode", "t2"]
    mask = sct_data / "t2/t2_seg-manual.nii.gz"
    return main([*args, "--cord-mask", str(mask), "--injection-voxel", *_T2_SITE_VOXEL, *extra])


@pytest.fixture
def qc_titles(monkeypatch):
    """The titles of the QC figures drawn, whitespace-normalised."""
    titles = []
    original = qc_module.qc_figure

    def spy(image, **kwargs):
        titles.append(" ".join(kwargs["title"].split()))
        return original(image, **kwargs)

    monkeypatch.setattr(qc_module, "qc_figure", spy)
    return titles


def _known_graft(monkeypatch):
    """Make the graft stage return two known blobs in the cord (one at the site)."""
    original = graft_module.segment_graft

    def known(image, cord, s_mm, site, **kwargs):
        seg = original(image, cord, s_mm, site, **kwargs)
        grid = np.indices(cord.shape).transpose(1, 2, 3, 0)
        centre = np.rint(site).astype(int)
        blob = (np.sum((grid - centre) ** 2, axis=-1) <= 4) & cord
        other = centre + np.array([0, 0, 8])
        blob |= (np.sum((grid - other) ** 2, axis=-1) <= 1) & cord
        none = np.zeros_like(blob)
        flags = set(seg.flags) - {"reference_unreliable", "site_outside_cord", "no_graft_found"}
        return dataclasses.replace(
            seg,
            graft_mask=blob,
            graft_mask_low=blob,
            graft_mask_high=blob,
            cyst_mask=none,
            support_mask=None,
            flags=tuple(sorted(flags)),
        )

    monkeypatch.setattr(graft_module, "segment_graft", known)


def test_component_centroid_mm_is_scanner_ras(sct_data, tmp_path, monkeypatch, capsys):
    # The centroid of each component, in scanner RAS mm, maps back to the voxels of that
    # component in the mask as written (stored PSR, non-identity affine).
    _known_graft(monkeypatch)
    assert _segment_t2(sct_data, tmp_path / "t2") == 0
    result = json.loads((tmp_path / "t2_graft.json").read_text())
    components = result["components"]
    assert len(components) == 2
    written = nib.load(tmp_path / "t2_label-graft_mask.nii.gz")
    assert nib.aff2axcodes(written.affine) == ("P", "S", "R")
    stored = np.asanyarray(written.dataobj) > 0
    labels, n = ndimage.label(stored, np.ones((3, 3, 3)))
    assert n == 2
    by_size = {}
    for label in range(1, n + 1):
        ijk = np.argwhere(labels == label)
        by_size[len(ijk)] = (ijk, nib.affines.apply_affine(written.affine, ijk.mean(axis=0)))
    for row in components:
        ijk, centroid_world = by_size[row["n_voxels"]]
        assert row["centroid_mm"] == pytest.approx(centroid_world.tolist(), abs=1e-4)
        # ... and back: the scanner point lands on the stored voxels' centroid.
        back = nib.affines.apply_affine(np.linalg.inv(written.affine), row["centroid_mm"])
        assert back == pytest.approx(ijk.mean(axis=0), abs=1e-4)
    # A non-trivial check: grid mm (index × spacing) is not scanner mm here.
    assert not np.allclose(components[0]["centroid_mm"], components[0]["centroid_voxel"])


def test_cli_and_qc_title_print_the_same_volume(
    sct_data, tmp_path, monkeypatch, capsys, qc_titles
):
    _known_graft(monkeypatch)
    assert _segment_t2(sct_data, tmp_path / "t2", "--qc") == 0
    line = capsys.readouterr().out.splitlines()[0]
    result = json.loads((tmp_path / "t2_graft.json").read_text())
    expected = f"graft volume: {format_mm3(result['graft_volume_pv_mm3'])} mm³"
    assert line.startswith(expected)
    assert result["graft_volume_pv_mm3"] > 0
    (title,) = qc_titles
    assert title == f"t2.nii.gz · t2 · {line}"
    assert (tmp_path / "t2_qc.png").is_file()


def test_reference_unreliable_gives_null_volumes_and_says_why(
    sct_data, tmp_path, monkeypatch, capsys, qc_titles
):
    original = graft_module.segment_graft

    def unreliable(*args, **kwargs):
        seg = original(*args, **kwargs)
        found = ("only 12 normal cord voxels remain outside the abnormal tissue",)
        return dataclasses.replace(
            seg,
            flags=tuple(sorted({*seg.flags, "reference_unreliable"})),
            reference=dataclasses.replace(seg.reference, unreliable_reasons=found),
        )

    monkeypatch.setattr(graft_module, "segment_graft", unreliable)
    assert _segment_t2(sct_data, tmp_path / "t2", "--qc") == 0  # the run succeeded
    # The graft stage's own finding, then the generic cause and fix.
    reason = (
        "only 12 normal cord voxels remain outside the abnormal tissue — "
        + NULL_VOLUME_REASONS["reference_unreliable"]
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"graft volume: not measured ({reason})"
    assert out[1] == "cyst volume: not measured"
    result = json.loads((tmp_path / "t2_graft.json").read_text())
    for key in NULL_VOLUME_KEYS:
        assert key in result and result[key] is None, key
    assert result["graft_volume_null_reason"] == reason
    assert result["reference_unreliable_reasons"] == [
        "only 12 normal cord voxels remain outside the abnormal tissue"
    ]
    assert "reference_unreliable" in result["flags"]
    assert result["components"] == []
    for name in ("graft", "cyst"):
        mask = nib.load(tmp_path / f"t2_label-{name}_mask.nii.gz")
        assert not np.asanyarray(mask.dataobj).any()
    (title,) = qc_titles
    assert "not measured" in title and title.endswith(out[0])


def test_segment_runs_on_a_slab_whose_qform_and_sform_differ_by_rounding(sct_data, tmp_path):
    # Issue 8: such a slab was refused by `segment`; it runs, on the sform, and the session's
    # provenance records how far apart the two transforms are.
    image = make_slab(tmp_path, "slab_T2w.nii.gz")
    header = nib.load(image).header
    manual = np.asanyarray(nib.load(sct_data / "t2/t2_seg-manual.nii.gz").dataobj)[:, 18:34, :]
    mask = nib.Nifti1Image(manual.astype(np.uint8), None, header=header)
    mask.set_qform(header.get_qform(), code=1)
    mask.set_sform(header.get_sform(), code=1)
    nib.save(mask, tmp_path / "cord.nii.gz")
    args = ["segment", str(image), "-o", str(tmp_path / "o"), "--mode", "t2"]
    args += ["--cord-mask", str(tmp_path / "cord.nii.gz"), "--injection-voxel", "31", "8", "25"]
    assert main(args) == 0
    result = json.loads((tmp_path / "o_graft.json").read_text())
    shift = load_volume(image).qform_sform_max_displacement_mm
    assert 0.2 < shift < 0.5
    assert result["provenance"]["qform_sform_max_displacement_mm"] == pytest.approx(shift)
    assert result["provenance"]["affine_source"] == "sform"
    written = nib.load(tmp_path / "o_label-cord_mask.nii.gz")
    assert np.array_equal(written.header.get_sform(), header.get_sform())
    assert np.array_equal(np.asanyarray(written.dataobj) > 0, manual > 0)


def test_config_load_section_chooses_the_transform_and_the_command_line_overrides_it(
    sct_data, tmp_path, capsys
):
    # `segment --config` ignored the config's `load:` section: a slab whose qform and sform are
    # 2 mm apart was refused although the config said `affine_from: sform`.
    image = make_slab(tmp_path, "slab_T2w.nii.gz", sform_shift_mm=2.0)
    config = tmp_path / "config.yaml"
    config.write_text("load:\n  affine_from: qform\n")
    args = ["segment", str(image), "-o", str(tmp_path / "o"), "--mode", "t2"]
    args += ["--injection-voxel", "31", "8", "25"]
    assert main(args) == 1
    assert "2.00 mm apart" in capsys.readouterr().err
    assert not (tmp_path / "o_graft.json").exists()

    assert main([*args, "--config", str(config)]) == 0
    provenance = json.loads((tmp_path / "o_graft.json").read_text())["provenance"]
    assert provenance["affine_source"] == "qform"

    assert main([*args, "--config", str(config), "--affine-from", "sform"]) == 0
    provenance = json.loads((tmp_path / "o_graft.json").read_text())["provenance"]
    assert provenance["affine_source"] == "sform"
