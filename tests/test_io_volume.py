"""Loading and writing volumes: geometry on real data, orientation contract, bad input."""

from __future__ import annotations

import gzip
import itertools
import json

import nibabel as nib
import numpy as np
import pytest
from conftest import DATA, SCT_PAIRS

from graftimg.errors import (
    DimensionError,
    GraftimgWarning,
    ImageFormatError,
    ImageTooLargeError,
    NonFiniteDataError,
    OrientationError,
    SpacingError,
)
from graftimg.io import Volume, load_volume, save_like


@pytest.mark.parametrize(("image", "mask", "stored", "spacing"), SCT_PAIRS)
def test_real_scans_load_ras_with_right_spacing(sct_data, image, mask, stored, spacing):
    for name in (image, mask):
        vol = load_volume(sct_data / name)
        assert "".join(vol.orientation) == stored
        assert vol.spacing == pytest.approx(spacing, rel=1e-5)
        assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
        assert vol.data.dtype == np.float32
        # Canonical affine maps the same voxel to the same world point as the stored one.
        raw = nib.load(sct_data / name)
        corner = vol.stored_to_canonical_index([1, 2, 3])
        assert vol.voxel_to_world(corner) == pytest.approx(
            nib.affines.apply_affine(raw.affine, [1, 2, 3]), abs=1e-4
        )


@pytest.mark.parametrize(("image", "mask", "stored", "spacing"), SCT_PAIRS)
def test_mask_round_trip_is_exact(sct_data, tmp_path, image, mask, stored, spacing):
    vol = load_volume(sct_data / mask)
    out = save_like(vol.data > 0.5, vol, tmp_path / "mask.nii.gz")
    original, written = nib.load(sct_data / mask), nib.load(out)
    assert np.array_equal(np.asanyarray(original.dataobj) > 0, np.asanyarray(written.dataobj) > 0)
    assert np.array_equal(original.affine, written.affine)
    assert original.header.get_qform(coded=True)[1] == written.header.get_qform(coded=True)[1]
    assert original.header.get_sform(coded=True)[1] == written.header.get_sform(coded=True)[1]
    assert nib.aff2axcodes(written.affine) == tuple(stored)
    # Volume in mm³ equals voxel count × voxel volume.
    n = int(np.count_nonzero(vol.data > 0.5))
    assert n > 100
    assert n * vol.voxel_volume_mm3 == pytest.approx(n * float(np.prod(spacing)), rel=1e-5)
    assert load_volume(out).voxel_volume_mm3 == pytest.approx(vol.voxel_volume_mm3)


def _ellipsoid_mask(shape, spacing, center_mm, radii_mm):
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center_mm, radii_mm))
    return r2 <= 1.0


def _physical(vol: Volume, mask: np.ndarray) -> tuple[np.ndarray, float]:
    ijk = np.argwhere(mask)
    return vol.voxel_to_world(ijk).mean(axis=0), len(ijk) * vol.voxel_volume_mm3


ORIENTATIONS = [
    (perm, flips)
    for perm in itertools.permutations(range(3))
    for flips in itertools.product((False, True), repeat=3)
]


def test_there_are_48_orientations():
    assert len(ORIENTATIONS) == 48


@pytest.fixture(scope="module")
def reference_mask():
    spacing = (0.5, 0.75, 2.0)  # exact in the float32 header
    shape = (20, 17, 11)
    mask = _ellipsoid_mask(shape, spacing, (4.1, 6.3, 9.0), (3.0, 4.0, 7.0))
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-12.5, 30.25, -7.0)
    return mask, affine


@pytest.mark.parametrize(("perm", "flips"), ORIENTATIONS)
def test_centroid_and_volume_identical_in_all_48_orientations(
    tmp_path, reference_mask, perm, flips
):
    mask, affine = reference_mask
    ref = Volume.from_array(mask, spacing=(0.5, 0.75, 2.0), affine=affine)
    ref_centroid, ref_volume = _physical(ref, mask)

    # Store the same physical image with permuted and flipped axes.
    data = np.transpose(mask, perm)
    new_affine = affine[:, [*perm, 3]].copy()
    for axis, flip in enumerate(flips):
        if flip:
            data = np.flip(data, axis)
            n = data.shape[axis]
            new_affine[:3, 3] += new_affine[:3, axis] * (n - 1)
            new_affine[:3, axis] *= -1
    img = nib.Nifti1Image(data.astype(np.uint8), new_affine)
    img.set_qform(new_affine, code=1)
    img.set_sform(new_affine, code=1)
    path = tmp_path / "m.nii.gz"
    nib.save(img, path)

    vol = load_volume(path)
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert vol.shape == mask.shape
    centroid, volume = _physical(vol, vol.data > 0.5)
    assert np.max(np.abs(centroid - ref_centroid)) < 1e-6
    assert volume == pytest.approx(ref_volume, rel=1e-12)
    # Writing back restores the stored layout exactly.
    out = save_like(vol.data > 0.5, vol, tmp_path / "back.nii.gz")
    assert np.array_equal(np.asanyarray(nib.load(out).dataobj), data.astype(np.uint8))
    assert np.allclose(nib.load(out).affine, new_affine)


@pytest.mark.parametrize(("unit", "factor"), [("micron", 1e-3), ("meter", 1e3), ("mm", 1.0)])
def test_header_units_are_converted_to_mm(tmp_path, unit, factor):
    img = nib.Nifti1Image(np.ones((3, 4, 5), np.float32), np.diag([100.0, 100.0, 200.0, 1]))
    img.header.set_xyzt_units(unit)
    nib.save(img, tmp_path / "u.nii")
    vol = load_volume(tmp_path / "u.nii")
    assert vol.spacing == pytest.approx((100 * factor, 100 * factor, 200 * factor))


def test_sidecar_metadata_is_read(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5), np.float32), np.eye(4)), tmp_path / "a.nii.gz")
    (tmp_path / "a.json").write_text(json.dumps({"EchoTime": 0.012, "MagneticFieldStrength": 3}))
    vol = load_volume(tmp_path / "a.nii.gz")
    assert vol.metadata["EchoTime"] == 0.012
    with pytest.raises(TypeError):
        vol.metadata["EchoTime"] = 1  # type: ignore[index]


def test_volume_is_immutable():
    vol = Volume.from_array(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="read-only"):
        vol.data[0, 0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        vol.affine[0, 0] = 2
    with pytest.raises(AttributeError):
        vol.spacing = (2, 2, 2)  # type: ignore[misc]


def test_4d_needs_an_index(tmp_path):
    data = np.stack([np.full((3, 4, 5), i, np.float32) for i in range(3)], axis=-1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "f.nii.gz")
    with pytest.raises(DimensionError, match="volume_index"):
        load_volume(tmp_path / "f.nii.gz")
    chosen = load_volume(tmp_path / "f.nii.gz", volume_index=2).data
    assert chosen.min() == chosen.max() == 2  # the third volume, whole


def test_partial_nan_is_explicit(tmp_path):
    data = np.ones((4, 4, 4), np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "n.nii.gz")
    with pytest.raises(NonFiniteDataError, match="nonfinite='zero'"):
        load_volume(tmp_path / "n.nii.gz")
    with pytest.warns(GraftimgWarning, match="1 NaN"):
        vol = load_volume(tmp_path / "n.nii.gz", nonfinite="zero")
    assert vol.n_nonfinite == 1
    assert vol.data[0, 0, 0] == 0


# --- bad-input corpus -------------------------------------------------------------------


def _write(path, data, affine=None):
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def make_bad_inputs(folder):
    """Write one file per kind of bad input; return {name: (path, error class, match)}."""
    good = _write(folder / "good.nii.gz", np.ones((8, 8, 8), np.int16))
    corpus = {}
    (folder / "empty.nii.gz").write_bytes(b"")
    corpus["empty"] = (folder / "empty.nii.gz", ImageFormatError, "empty")
    raw = good.read_bytes()
    (folder / "truncated.nii.gz").write_bytes(raw[: len(raw) // 2])
    corpus["truncated"] = (folder / "truncated.nii.gz", ImageFormatError, "truncated|readable")
    plain = bytearray(gzip.decompress(raw))
    plain[344:348] = b"abcd"
    (folder / "magic.nii").write_bytes(bytes(plain))
    corpus["wrong magic"] = (folder / "magic.nii", ImageFormatError, "not a readable NIfTI")
    (folder / "notes.nii").write_text("this is a text file, not an image\n" * 20)
    corpus["text file"] = (folder / "notes.nii", ImageFormatError, "not a readable NIfTI")
    corpus["2D image"] = (
        _write(folder / "slice.nii.gz", np.ones((8, 8), np.float32)),
        DimensionError,
        "2D",
    )
    corpus["5D warp field"] = (
        _write(folder / "warp.nii.gz", np.zeros((4, 4, 4, 1, 3), np.float32)),
        DimensionError,
        "vector field",
    )
    zero = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    zero.header.set_zooms((1.0, 0.0, 1.0))
    nib.save(zero, folder / "zero_zoom.nii.gz")
    corpus["zero zoom"] = (folder / "zero_zoom.nii.gz", SpacingError, "finite and positive")
    corpus["NaN-filled"] = (
        _write(folder / "nan.nii.gz", np.full((4, 4, 4), np.nan, np.float32)),
        NonFiniteDataError,
        "every voxel",
    )
    conflict = nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4))
    shifted = np.eye(4)
    shifted[:3, 3] = (5.0, 0.0, 0.0)
    conflict.set_qform(np.eye(4), code=1)
    conflict.set_sform(shifted, code=1)
    nib.save(conflict, folder / "conflict.nii.gz")
    corpus["qform/sform conflict"] = (
        folder / "conflict.nii.gz",
        OrientationError,
        "--affine-from",
    )
    huge = nib.Nifti1Header()
    huge.set_data_shape((30000, 30000, 2000))
    huge.set_data_dtype(np.int16)
    header_bytes = huge.binaryblock + b"\x00" * 4 + b"\x00" * 1000
    (folder / "huge.nii").write_bytes(header_bytes)
    corpus["huge declared dimensions"] = (folder / "huge.nii", ImageTooLargeError, "memory cap")
    small = nib.Nifti1Header()
    small.set_data_shape((200, 200, 200))
    small.set_data_dtype(np.float32)
    (folder / "short.nii").write_bytes(small.binaryblock + b"\x00" * 5000)
    corpus["declared larger than file"] = (folder / "short.nii", ImageTooLargeError, "truncated")
    return corpus


BAD_NAMES = [
    "empty",
    "truncated",
    "wrong magic",
    "text file",
    "2D image",
    "5D warp field",
    "zero zoom",
    "NaN-filled",
    "qform/sform conflict",
    "huge declared dimensions",
    "declared larger than file",
]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_input_raises_its_own_error(bad_inputs, name):
    path, error, match = bad_inputs[name]
    with pytest.raises(error, match=match) as info:
        load_volume(path)
    assert str(path) in str(info.value)


def test_qform_sform_conflict_has_an_explicit_opt_out(bad_inputs):
    path = bad_inputs["qform/sform conflict"][0]
    assert load_volume(path, affine_from="sform").affine[0, 3] == pytest.approx(5.0)
    assert load_volume(path, affine_from="qform").affine[0, 3] == pytest.approx(0.0)


# --- qform/sform disagreement measured in mm over the field of view (issue 8) ---------------


def make_slab(folder, name, *, sform_shift_mm=None):
    """A 16 mm slab of the real T2w, oblique (16.5° about x), qform exact.

    The sform is the qform rounded to two decimals (elements differ by up to 0.004, as a float
    rounding does; the field of view's corners move by 0.26 mm) or, with ``sform_shift_mm``,
    the qform shifted by that many mm along y.
    """
    from nibabel.eulerangles import euler2mat

    src = nib.load(DATA / "t2/t2.nii.gz")  # PSR, 1 mm: stored axis 1 runs along the cord
    data = np.asanyarray(src.dataobj)[:, 18:34, :]
    affine = src.affine.copy()
    affine[:3, 3] = nib.affines.apply_affine(src.affine, [0, 18, 0])
    tilt = np.eye(4)
    tilt[:3, :3] = euler2mat(0.0, 0.0, np.deg2rad(16.5))
    qform = tilt @ affine
    if sform_shift_mm is None:
        sform = np.round(qform, 2)
    else:
        sform = qform.copy()
        sform[1, 3] += sform_shift_mm
    img = nib.Nifti1Image(data, qform, header=src.header)
    img.set_qform(qform, code=1)
    img.set_sform(sform, code=1)
    path = folder / name
    nib.save(img, path)
    return path


def _dense_displacement(path):
    """Largest qform/sform displacement over a dense sample of the field of view (independent
    of the corner argument)."""
    img = nib.load(path)
    axes = [np.linspace(-0.5, n - 0.5, 9) for n in img.shape]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    q, s = img.header.get_qform(), img.header.get_sform()
    moved = nib.affines.apply_affine(q, points) - nib.affines.apply_affine(s, points)
    return float(np.max(np.linalg.norm(moved, axis=1)))


def test_qform_sform_rounding_loads_with_the_sform_and_records_the_displacement(tmp_path):
    path = make_slab(tmp_path, "slab_rounded.nii.gz")
    header = nib.load(path).header
    assert 0.003 < np.max(np.abs(header.get_qform() - header.get_sform())) < 0.005
    vol = load_volume(path)
    assert vol.shape == (52, 60, 16)
    assert vol.affine_source == "sform"
    expected = _dense_displacement(path)
    assert 0.2 < expected < 0.5  # below half the 1 mm voxel
    assert vol.qform_sform_max_displacement_mm == pytest.approx(expected, rel=1e-9)
    assert vol.summary()["qform_sform_max_displacement_mm"] == pytest.approx(expected)
    # The sform is the one used: a stored voxel lands where the sform puts it.
    ijk = np.array([3.0, 7.0, 11.0])
    world = nib.affines.apply_affine(header.get_sform(), ijk)
    assert vol.voxel_to_world(vol.stored_to_canonical_index(ijk)) == pytest.approx(world)


def test_qform_sform_two_mm_apart_is_refused_with_the_displacement(tmp_path):
    path = make_slab(tmp_path, "slab_shifted.nii.gz", sform_shift_mm=2.0)
    assert _dense_displacement(path) == pytest.approx(2.0, abs=1e-6)
    with pytest.raises(OrientationError, match=r"up to 2\.00 mm apart") as info:
        load_volume(path)
    message = str(info.value)
    assert message.startswith(str(path))
    assert "--affine-from sform|qform" in message
    # The explicit choice still loads, and the disagreement is recorded.
    vol = load_volume(path, affine_from="qform")
    assert vol.affine_source == "qform"
    assert vol.qform_sform_max_displacement_mm == pytest.approx(2.0, abs=1e-6)


def test_real_scans_record_their_qform_sform_agreement(sct_data):
    for image, _, _, _ in SCT_PAIRS:
        vol = load_volume(sct_data / image)
        assert vol.affine_source == "sform"
        assert 0.0 <= vol.qform_sform_max_displacement_mm < 1e-3


def test_volume_spacing_must_match_the_affine():
    with pytest.raises(SpacingError, match=r"spacing \(1\.0, 1\.0, 1\.0\) mm contradicts"):
        Volume.from_array(
            np.zeros((2, 3, 4)), spacing=(1.0, 1.0, 1.0), affine=np.diag([2.0] * 3 + [1])
        )
    with pytest.raises(SpacingError, match="finite, positive"):
        Volume.from_array(np.zeros((2, 3, 4)), spacing=(1.0, 0.0, 1.0))
    # A rotated affine whose columns have the voxel sizes is consistent.
    c, s = np.cos(0.3), np.sin(0.3)
    affine = np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    affine[:3, :3] *= [0.5, 0.5, 2.0]
    vol = Volume.from_array(np.zeros((2, 3, 4)), spacing=(0.5, 0.5, 2.0), affine=affine)
    assert vol.voxel_volume_mm3 == pytest.approx(0.5)


def test_save_like_is_atomic_on_failure(tmp_path):
    vol = Volume.from_array(np.zeros((3, 3, 3)))
    target = tmp_path / "keep.nii.gz"
    target.write_bytes(b"precious")
    with pytest.raises(DimensionError):
        save_like(np.zeros((2, 2, 2)), vol, target)
    assert target.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.nii.gz"]


def test_written_files_get_ordinary_permissions(tmp_path):
    import os

    vol = Volume.from_array(np.zeros((3, 3, 3)))
    out = save_like(np.ones((3, 3, 3), bool), vol, tmp_path / "m.nii.gz")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
