"""The :class:`Volume` value and its NIfTI reader and writer.

A volume is loaded once, checked, and canonicalised to RAS+ (axis 0 points Right, 1 Anterior,
2 Superior). Everything graftimg computes happens in that canonical grid, in millimetres.
Everything it writes goes back to the source file's own on-disk orientation and header, so that
outputs overlay on the input in any viewer.
"""

from __future__ import annotations

import dataclasses
import gzip
import itertools
import json
import os
import struct
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import nibabel as nib
import numpy as np
from nibabel import orientations as ornt_mod

from graftimg.errors import (
    ConfigError,
    DimensionError,
    GraftimgWarning,
    ImageFormatError,
    ImageTooLargeError,
    MetadataError,
    NonFiniteDataError,
    OrientationError,
    SpacingError,
)
from graftimg.io.atomic import atomic_path

__all__ = [
    "DEFAULT_MAX_BYTES",
    "QFORM_SFORM_TOLERANCE_VOXELS",
    "SPACING_RTOL",
    "Volume",
    "field_of_view_displacement_mm",
    "load_volume",
    "read_sidecar",
    "save_like",
    "sidecar_path",
]

#: Largest float32 volume graftimg loads by default (bytes); override with ``max_bytes=`` or the
#: ``GRAFTIMG_MAX_IMAGE_BYTES`` environment variable.
DEFAULT_MAX_BYTES = 4 * 1024**3

#: Largest disagreement between qform and sform, as a fraction of the smallest voxel size, that
#: is taken for float rounding: measured as the largest displacement (mm) between the two
#: transforms over the field of view. Up to it the sform is used and the displacement recorded;
#: beyond it the header is called contradictory.
QFORM_SFORM_TOLERANCE_VOXELS = 0.5

#: Relative tolerance between a :class:`Volume`'s ``spacing`` and its affine's column norms.
SPACING_RTOL = 1e-3

_UNIT_TO_MM = {"mm": 1.0, "micron": 1e-3, "meter": 1e3, "unknown": 1.0}
_NIFTI_SUFFIXES = (".nii.gz", ".nii")


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


@dataclasses.dataclass(frozen=True, eq=False)
class Volume:
    """An immutable 3D image in canonical RAS+ orientation with its geometry.

    Only :func:`load_volume` builds one from a file; derive new volumes with
    :meth:`with_data` (or :func:`dataclasses.replace`).

    Attributes
    ----------
    data : (X, Y, Z) ndarray of float32
        Voxel values, axes Right, Anterior, Superior. Read-only.
    affine : (4, 4) ndarray of float64
        Maps canonical voxel indices to scanner RAS coordinates in mm. Read-only.
    spacing : tuple of 3 float
        Voxel size along the canonical axes, in mm.
    orientation : tuple of 3 str
        Axis codes of the file as stored on disk, in nibabel's convention (the direction each
        axis *points to*; Spinal Cord Toolbox's "RPI" is nibabel's "LAS").
    source : Path or None
        The file it was read from.
    metadata : Mapping
        Acquisition metadata from the BIDS JSON sidecar (``EchoTime`` in s, ...). Read-only.
    header : nibabel.Nifti1Header or None
        A copy of the source header, used to write results back like the source.
    stored_affine : (4, 4) ndarray of float64
        Affine of the file as stored, in the header's own units.
    stored_shape : tuple of int
        Shape of the 3D array as stored.
    n_nonfinite : int
        Number of NaN/Inf voxels that were replaced at load time (see ``nonfinite=``).
    affine_source : {'sform', 'qform', 'pixdim'} or None
        Which header transform the affine comes from (None: not from a file).
    qform_sform_max_displacement_mm : float or None
        When the header sets both qform and sform: the largest distance, in mm, between where
        the two put a point of the field of view (see :func:`field_of_view_displacement_mm`).
        None when only one (or neither) is set.

    Raises
    ------
    DimensionError
        If ``data`` is not 3D.
    SpacingError
        If the affine is not 4×4, or ``spacing`` is not finite and positive, or contradicts
        the voxel sizes the affine implies (its column norms).

    Examples
    --------
    >>> import numpy as np
    >>> vol = Volume.from_array(np.zeros((4, 5, 6)), spacing=(0.5, 0.5, 2.0))
    >>> vol.shape, vol.spacing, vol.voxel_volume_mm3
    ((4, 5, 6), (0.5, 0.5, 2.0), 0.5)
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    orientation: tuple[str, str, str] = ("R", "A", "S")
    source: Path | None = None
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    header: Any = None
    stored_affine: np.ndarray | None = None
    stored_shape: tuple[int, int, int] | None = None
    n_nonfinite: int = 0
    affine_source: str | None = None
    qform_sform_max_displacement_mm: float | None = None

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 3:
            raise DimensionError(f"a Volume holds 3D data, got shape {data.shape}")
        if data.dtype != np.float32 or data.flags.writeable:
            data = _readonly(np.array(data, dtype=np.float32))
        affine = _readonly(np.array(self.affine, dtype=np.float64))
        if affine.shape != (4, 4):
            raise SpacingError(f"affine must be 4x4, got {affine.shape}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "affine", affine)
        spacing = tuple(float(s) for s in self.spacing)
        _check_spacing_matches_affine(spacing, affine, self.source)
        object.__setattr__(self, "spacing", spacing)
        if not isinstance(self.metadata, MappingProxyType):
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        stored = self.affine if self.stored_affine is None else self.stored_affine
        object.__setattr__(self, "stored_affine", _readonly(np.array(stored, dtype=np.float64)))
        if self.stored_shape is None:
            object.__setattr__(self, "stored_shape", data.shape)

    @classmethod
    def from_array(
        cls,
        data: np.ndarray,
        *,
        spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
        affine: np.ndarray | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Volume:
        """Wrap an array already in RAS+ order (phantoms, tests); no file behind it."""
        if affine is None:
            affine = np.diag([*map(float, spacing), 1.0])
        return cls(data=data, affine=affine, spacing=spacing, metadata=metadata or {})

    @property
    def shape(self) -> tuple[int, int, int]:
        """Shape of the canonical array."""
        return self.data.shape

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³."""
        return float(np.prod(self.spacing))

    @property
    def _to_stored(self) -> np.ndarray:
        """Orientation transform from the canonical array back to the stored one."""
        stored_ornt = ornt_mod.axcodes2ornt(self.orientation)
        return ornt_mod.ornt_transform(ornt_mod.axcodes2ornt(("R", "A", "S")), stored_ornt)

    def with_data(self, data: np.ndarray, **changes: Any) -> Volume:
        """Return a copy holding ``data`` (same grid) and any other changed fields."""
        data = np.asarray(data)
        if data.shape != self.shape:
            raise DimensionError(f"new data shape {data.shape} differs from {self.shape}")
        return dataclasses.replace(self, data=data, **changes)

    def world_to_voxel(self, xyz_mm: Any) -> np.ndarray:
        """Scanner RAS mm → continuous canonical voxel indices, shape (..., 3)."""
        xyz = np.asarray(xyz_mm, dtype=np.float64)
        return nib.affines.apply_affine(np.linalg.inv(self.affine), xyz)

    def voxel_to_world(self, ijk: Any) -> np.ndarray:
        """Canonical voxel indices → scanner RAS mm, shape (..., 3)."""
        return nib.affines.apply_affine(self.affine, np.asarray(ijk, dtype=np.float64))

    def stored_to_canonical_index(self, ijk_stored: Any) -> np.ndarray:
        """Voxel index of the file as stored on disk → canonical voxel index.

        Examples
        --------
        >>> import numpy as np
        >>> vol = Volume.from_array(np.zeros((2, 3, 4)))
        >>> vol.stored_to_canonical_index([1, 2, 3]).tolist()
        [1.0, 2.0, 3.0]
        """
        ijk = np.asarray(ijk_stored, dtype=np.float64)
        world = nib.affines.apply_affine(self._stored_affine_mm, ijk)
        return self.world_to_voxel(world)

    @property
    def _stored_affine_mm(self) -> np.ndarray:
        scale = np.diag([*([self._unit_scale] * 3), 1.0])
        return scale @ self.stored_affine

    @property
    def _unit_scale(self) -> float:
        if self.header is None:
            return 1.0
        unit = self.header.get_xyzt_units()[0]
        return _UNIT_TO_MM.get(unit, 1.0)

    def to_stored(self, array: np.ndarray) -> np.ndarray:
        """Reorder a canonical-grid array into the file's stored axis order."""
        array = np.asarray(array)
        if array.shape[:3] != self.shape:
            raise DimensionError(
                f"array of shape {array.shape} does not match the volume's grid {self.shape}"
            )
        return ornt_mod.apply_orientation(array, self._to_stored)

    def summary(self) -> dict[str, Any]:
        """Geometry and intensity facts, JSON-ready (what ``graftimg info`` prints)."""
        finite = self.data[np.isfinite(self.data)]
        return {
            "source": None if self.source is None else str(self.source),
            "stored_shape": list(self.stored_shape or self.shape),
            "stored_orientation": "".join(self.orientation),
            "canonical_shape": list(self.shape),
            "spacing_mm": [round(s, 6) for s in self.spacing],
            "voxel_volume_mm3": round(self.voxel_volume_mm3, 9),
            "field_of_view_mm": [round(n * s, 3) for n, s in zip(self.shape, self.spacing)],
            "stored_dtype": None if self.header is None else str(self.header.get_data_dtype()),
            "units": None if self.header is None else self.header.get_xyzt_units()[0],
            "intensity_min": float(finite.min()) if finite.size else None,
            "intensity_max": float(finite.max()) if finite.size else None,
            "n_nonfinite_replaced": self.n_nonfinite,
            "affine_source": self.affine_source,
            "qform_sform_max_displacement_mm": self.qform_sform_max_displacement_mm,
            "affine_ras_mm": np.round(self.affine, 6).tolist(),
            "metadata": dict(self.metadata),
        }


def _check_spacing_matches_affine(
    spacing: tuple[float, ...], affine: np.ndarray, source: Path | None
) -> None:
    """Refuse a spacing that is not the voxel size the affine implies."""
    if len(spacing) != 3 or not all(np.isfinite(spacing)) or min(spacing) <= 0:
        raise SpacingError(
            f"spacing {spacing} must be three finite, positive voxel sizes in mm", path=source
        )
    norms = np.linalg.norm(affine[:3, :3], axis=0)
    if not np.allclose(spacing, norms, rtol=SPACING_RTOL, atol=1e-9):
        raise SpacingError(
            f"spacing {tuple(round(v, 6) for v in spacing)} mm contradicts the affine, whose "
            f"columns give voxel sizes {tuple(round(float(v), 6) for v in norms)} mm",
            path=source,
            hint="build the Volume with spacing equal to the affine's column norms "
            "(or an affine scaled by the spacing)",
        )


def field_of_view_displacement_mm(
    affine_a: np.ndarray, affine_b: np.ndarray, shape: tuple[int, ...]
) -> float:
    """Largest distance between where two affines put a point of a grid's field of view.

    The field of view is the box from voxel index −½ to ``n − ½`` on each axis (the outer
    faces of the edge voxels). The displacement ``(A − B)·x`` is affine in ``x``, so its norm
    is convex and its largest value over the box is reached at one of the 8 corners.

    Parameters
    ----------
    affine_a, affine_b : (4, 4) ndarray
        Voxel → world transforms (same units; mm for a result in mm).
    shape : tuple of int
        Grid shape (the first three entries are used).

    Returns
    -------
    float
        Largest displacement, in the affines' units.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.eye(4)
    >>> b = np.eye(4)
    >>> b[0, 3] = 0.25  # a 0.25 mm shift moves every point by 0.25 mm
    >>> field_of_view_displacement_mm(a, b, (10, 10, 10))
    0.25
    >>> b = np.eye(4)
    >>> b[0, 1] = 0.01  # a shear grows across the field of view: 0.01 × 100 at the far edge
    >>> round(field_of_view_displacement_mm(a, b, (100, 100, 1)), 3)
    0.995
    """
    corners = np.array(list(itertools.product(*[(-0.5, n - 0.5) for n in shape[:3]])))
    moved = nib.affines.apply_affine(np.asarray(affine_a, dtype=np.float64), corners)
    moved -= nib.affines.apply_affine(np.asarray(affine_b, dtype=np.float64), corners)
    return float(np.max(np.linalg.norm(moved, axis=1)))


def sidecar_path(path: str | os.PathLike) -> Path:
    """The BIDS JSON sidecar beside a NIfTI file (``x.nii.gz`` → ``x.json``)."""
    p = Path(path)
    name = p.name
    for suffix in _NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return p.with_name(name[: -len(suffix)] + ".json")
    return p.with_suffix(".json")


def read_sidecar(path: str | os.PathLike) -> dict[str, Any]:
    """Read the JSON sidecar of an image; an absent sidecar gives ``{}``.

    Raises
    ------
    MetadataError
        If the sidecar exists but is not a JSON object.
    """
    side = sidecar_path(path)
    if not side.is_file():
        return {}
    try:
        obj = json.loads(side.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise MetadataError(
            f"sidecar is not valid JSON ({err})", path=side, hint="fix or remove the sidecar"
        ) from None
    if not isinstance(obj, dict):
        raise MetadataError("sidecar must hold a JSON object", path=side)
    return obj


def _max_bytes(max_bytes: int | None) -> int:
    """The memory cap: ``max_bytes``, else ``GRAFTIMG_MAX_IMAGE_BYTES``, else the default.

    Examples
    --------
    >>> _max_bytes(1000)
    1000
    """
    if max_bytes is not None:
        return int(max_bytes)
    env = os.environ.get("GRAFTIMG_MAX_IMAGE_BYTES", "").strip()
    if not env:
        return DEFAULT_MAX_BYTES
    try:
        value = int(env.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(
            f"GRAFTIMG_MAX_IMAGE_BYTES={env!r} is not a whole number of bytes above 0",
            hint="set it to e.g. 8589934592 (8 GiB), or unset it for the 4 GiB default",
        )
    return value


def _gzip_isize(path: Path) -> int | None:
    """Uncompressed size mod 2**32 from a gzip trailer, or None if unreadable."""
    try:
        with open(path, "rb") as handle:
            handle.seek(-4, os.SEEK_END)
            return struct.unpack("<I", handle.read(4))[0]
    except OSError:
        return None


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageFormatError("file not found", path=path, hint="check the path")
    if path.is_dir():
        raise ImageFormatError("is a folder, not a NIfTI file", path=path)
    if path.stat().st_size == 0:
        raise ImageFormatError("file is empty", path=path, hint="re-export or re-copy the image")
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head == b"\x1f\x8b":
        if not path.name.endswith(".gz"):
            raise ImageFormatError(
                "file is gzip-compressed but not named .gz", path=path, hint="rename it to .nii.gz"
            )
    elif path.name.endswith(".gz"):
        raise ImageFormatError(
            "file is named .gz but is not gzip-compressed",
            path=path,
            hint="rename it to .nii or recompress it",
        )


def _open_header(path: Path) -> nib.Nifti1Image | nib.Nifti2Image:
    _check_file(path)
    try:
        img = nib.load(path)
    except (nib.filebasedimages.ImageFileError, EOFError, OSError, ValueError, zlib.error) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageFormatError(
            f"not a readable NIfTI image ({reason})",
            path=path,
            hint="check that the file is a complete .nii or .nii.gz",
        ) from None
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise ImageFormatError(
            f"is a {type(img).__name__}, graftimg reads NIfTI only",
            path=path,
            hint="convert it to NIfTI (e.g. dcm2niix, or nibabel.save as .nii.gz)",
        )
    return img


def _raw_pixdim(path: Path, img: Any) -> np.ndarray:
    opener = gzip.open if path.name.endswith(".gz") else open
    size = img.header.sizeof_hdr
    try:
        with opener(path, "rb") as handle:
            block = handle.read(size)
        raw = type(img.header)(block, check=False)
    except (OSError, EOFError, ValueError, zlib.error):
        return np.asarray(img.header.get_zooms(), dtype=np.float64)
    ndim = int(raw["dim"][0])
    return np.asarray(raw["pixdim"][1 : 1 + max(ndim, 3)], dtype=np.float64)


def _check_size(path: Path, img: Any, max_bytes: int) -> None:
    header = img.header
    shape = tuple(int(n) for n in header.get_data_shape())
    if any(n <= 0 for n in shape):
        raise DimensionError(f"header declares an empty shape {shape}", path=path)
    n_voxels = int(np.prod(shape, dtype=np.int64))
    stored_bytes = n_voxels * header.get_data_dtype().itemsize
    as_float32 = n_voxels * 4
    if max(as_float32, stored_bytes) > max_bytes:
        raise ImageTooLargeError(
            f"header declares {shape} voxels ({as_float32 / 1024**3:.1f} GiB as float32), above "
            f"the memory cap of {max_bytes / 1024**3:.1f} GiB",
            path=path,
            hint="crop the image, or raise the cap with max_bytes= or GRAFTIMG_MAX_IMAGE_BYTES",
        )
    offset = int(header.get_data_offset())
    needed = offset + stored_bytes
    if path.name.endswith(".gz"):
        isize = _gzip_isize(path)
        if needed < 2**32 and isize is not None and isize < needed:
            raise ImageTooLargeError(
                f"header declares {shape} voxels ({needed} bytes) but the compressed file "
                f"holds only {isize} bytes: truncated or wrong header",
                path=path,
                hint="re-export the image; the file is incomplete",
            )
    elif path.stat().st_size < needed:
        raise ImageTooLargeError(
            f"header declares {shape} voxels ({needed} bytes) but the file has "
            f"{path.stat().st_size} bytes: truncated or wrong header",
            path=path,
            hint="re-export the image; the file is incomplete",
        )


@dataclasses.dataclass(frozen=True)
class _AffineChoice:
    affine: np.ndarray
    source: str  # "sform", "qform" or "pixdim"
    displacement_mm: float | None


def _choose_affine(
    path: Path, header: Any, affine_from: Literal["header", "sform", "qform"]
) -> _AffineChoice:
    qform, qcode = header.get_qform(coded=True)
    sform, scode = header.get_sform(coded=True)
    has_q = qform is not None and bool(qcode)
    has_s = sform is not None and bool(scode)
    displacement = None
    if has_q and has_s:
        unit = _UNIT_TO_MM.get(header.get_xyzt_units()[0], 1.0)
        shape = tuple(int(n) for n in header.get_data_shape())
        displacement = field_of_view_displacement_mm(qform, sform, shape) * unit
    if affine_from == "sform":
        if not has_s:
            raise OrientationError("affine_from='sform' but the sform is not set", path=path)
        return _AffineChoice(sform, "sform", displacement)
    if affine_from == "qform":
        if not has_q:
            raise OrientationError("affine_from='qform' but the qform is not set", path=path)
        return _AffineChoice(qform, "qform", displacement)
    if displacement is not None:
        voxel = min(
            float(np.min(np.linalg.norm(a[:3, :3], axis=0))) * unit for a in (qform, sform)
        )
        limit = QFORM_SFORM_TOLERANCE_VOXELS * voxel
        if not displacement <= limit:
            raise OrientationError(
                f"qform and sform place the field of view up to {displacement:.2f} mm apart "
                f"(more than half the smallest voxel, {limit:.2f} mm), so the image's position "
                "in the scanner is ambiguous",
                path=path,
                hint="choose one explicitly: affine_from='sform' or 'qform' "
                "(command line: --affine-from sform|qform)",
            )
        return _AffineChoice(sform, "sform", displacement)
    if has_s:
        return _AffineChoice(sform, "sform", None)
    if has_q:
        return _AffineChoice(qform, "qform", None)
    return _AffineChoice(img_affine(header), "pixdim", None)


def img_affine(header: Any) -> np.ndarray:
    """Return nibabel's choice of affine for a header (sform, else qform, else zooms)."""
    return header.get_best_affine()


def _squeeze_to_3d(
    path: Path, shape: tuple[int, ...], volume_index: int | None
) -> tuple[int, ...] | None:
    """Return the index tuple selecting the 3D volume, or None for plain 3D."""
    if len(shape) < 3:
        raise DimensionError(
            f"is {len(shape)}D with shape {shape}; graftimg needs a 3D volume",
            path=path,
            hint="supply the 3D acquisition (a single slice cannot be segmented in 3D)",
        )
    extra = shape[3:]
    if all(n == 1 for n in extra):
        if volume_index not in (None, 0):
            raise DimensionError(
                f"volume_index={volume_index} but the image holds one volume", path=path
            )
        return None if not extra else (0,) * len(extra)
    if len(shape) >= 5 and any(n > 1 for n in shape[4:]):
        raise DimensionError(
            f"is {len(shape)}D with shape {shape}, a vector field (e.g. a warp), not an image",
            path=path,
            hint="give graftimg the anatomical image instead",
        )
    if volume_index is None:
        raise DimensionError(
            f"is 4D with {shape[3]} volumes (shape {shape})",
            path=path,
            hint="choose one with volume_index= (command line: --volume-index N)",
        )
    if not 0 <= volume_index < shape[3]:
        raise DimensionError(
            f"volume_index={volume_index} is outside 0..{shape[3] - 1}", path=path
        )
    return (volume_index,) + (0,) * (len(shape) - 4)


def load_volume(
    path: str | os.PathLike,
    *,
    volume_index: int | None = None,
    affine_from: Literal["header", "sform", "qform"] = "header",
    nonfinite: Literal["raise", "zero"] = "raise",
    max_bytes: int | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Volume:
    """Load a NIfTI file as a checked, canonical (RAS+) float32 :class:`Volume`.

    Parameters
    ----------
    path : path-like
        ``.nii`` or ``.nii.gz`` file. Its BIDS JSON sidecar, if any, becomes ``metadata``.
    volume_index : int, optional
        Which volume of a 4D series to load; 4D input without it is refused.
    affine_from : {'header', 'sform', 'qform'}
        ``'header'`` uses the sform (else the qform, else the voxel sizes). When both are set
        it measures how far apart they place the field of view
        (:func:`field_of_view_displacement_mm`): up to :data:`QFORM_SFORM_TOLERANCE_VOXELS`
        of the smallest voxel (float rounding) the sform is used and the displacement kept in
        ``qform_sform_max_displacement_mm``; beyond it the file is refused. ``'sform'`` and
        ``'qform'`` choose explicitly (the displacement is still recorded).
    nonfinite : {'raise', 'zero'}
        What to do with NaN/Inf voxels: refuse the file, or set them to 0 (with a warning and
        the count kept in ``n_nonfinite``). An image with no finite voxel is always refused.
    max_bytes : int, optional
        Memory cap checked against the header before anything is read.
    metadata : Mapping, optional
        Extra metadata merged over the sidecar's.

    Returns
    -------
    Volume

    Raises
    ------
    ImageFormatError, DimensionError, SpacingError, OrientationError, NonFiniteDataError,
    ImageTooLargeError, MetadataError
        Each names the file and the fix.

    Examples
    --------
    >>> import tempfile, pathlib, nibabel as nib, numpy as np
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.nii.gz"
    >>> nib.save(nib.Nifti1Image(np.ones((2, 3, 4), np.int16), np.diag([-1, 2, 3, 1])), p)
    >>> vol = load_volume(p)
    >>> vol.orientation, vol.spacing, vol.shape
    (('L', 'A', 'S'), (1.0, 2.0, 3.0), (2, 3, 4))
    """
    path = Path(path)
    img = _open_header(path)
    header = img.header
    _check_size(path, img, _max_bytes(max_bytes))

    shape = tuple(int(n) for n in header.get_data_shape())
    index = _squeeze_to_3d(path, shape, volume_index)

    # nibabel silently replaces zero pixdims by 1 when it loads; check the raw bytes instead.
    zooms = np.asarray(_raw_pixdim(path, img)[:3], dtype=np.float64)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise SpacingError(
            f"voxel sizes {tuple(float(z) for z in zooms)} must be finite and positive",
            path=path,
            hint="fix pixdim in the header (e.g. with nibabel or fslmodhd)",
        )
    choice = _choose_affine(path, header, affine_from)
    stored_affine = np.asarray(choice.affine, dtype=np.float64)
    if not np.all(np.isfinite(stored_affine)):
        raise SpacingError("affine holds non-finite values", path=path, hint="fix the header")

    unit = header.get_xyzt_units()[0]
    scale = _UNIT_TO_MM.get(unit, 1.0)
    affine_mm = np.diag([scale, scale, scale, 1.0]) @ stored_affine
    column_norms = np.linalg.norm(affine_mm[:3, :3], axis=0)
    if np.any(column_norms <= 1e-9) or abs(np.linalg.det(affine_mm[:3, :3])) < 1e-12:
        raise SpacingError(
            "affine is singular (a voxel axis has zero length)",
            path=path,
            hint="fix the qform/sform in the header",
        )
    if not np.allclose(column_norms, zooms * scale, rtol=1e-3, atol=1e-6):
        warnings.warn(
            f"{path}: header zooms {tuple(zooms)} differ from the affine's voxel sizes "
            f"{tuple(np.round(column_norms, 6))}; using the affine's",
            GraftimgWarning,
            stacklevel=2,
        )

    try:
        proxy = img.dataobj
        # The index tuple selects along the axes after the three spatial ones.
        raw = np.asanyarray(proxy[(slice(None),) * 3 + index] if index is not None else proxy)
    except (EOFError, OSError, ValueError, zlib.error) as err:
        raise ImageFormatError(
            f"voxel data cannot be read ({type(err).__name__}: {err}); the file is truncated "
            "or corrupt",
            path=path,
            hint="re-export or re-copy the image",
        ) from None
    data = np.asarray(raw, dtype=np.float32)
    if data.ndim != 3:
        data = data.reshape(shape[:3])

    finite = np.isfinite(data)
    n_bad = int(data.size - np.count_nonzero(finite))
    if n_bad:
        if n_bad == data.size:
            raise NonFiniteDataError(
                "every voxel is NaN or infinite", path=path, hint="re-export the image"
            )
        if nonfinite == "raise":
            raise NonFiniteDataError(
                f"{n_bad} of {data.size} voxels are NaN or infinite",
                path=path,
                hint="pass nonfinite='zero' (command line: --nonfinite zero) to set them to 0",
            )
        warnings.warn(f"{path}: {n_bad} NaN/Inf voxels set to 0", GraftimgWarning, stacklevel=2)
        data = np.where(finite, data, np.float32(0))

    stored_ornt = ornt_mod.io_orientation(affine_mm)
    to_ras = ornt_mod.ornt_transform(stored_ornt, ornt_mod.axcodes2ornt(("R", "A", "S")))
    canonical = ornt_mod.apply_orientation(data, to_ras)
    affine_ras = affine_mm @ ornt_mod.inv_ornt_aff(to_ras, data.shape)
    spacing = tuple(float(v) for v in np.linalg.norm(affine_ras[:3, :3], axis=0))

    meta = read_sidecar(path)
    if metadata:
        meta.update(metadata)
    return Volume(
        data=np.ascontiguousarray(canonical),
        affine=affine_ras,
        spacing=spacing,  # type: ignore[arg-type]
        orientation=tuple(ornt_mod.ornt2axcodes(stored_ornt)),  # type: ignore[arg-type]
        source=path,
        metadata=meta,
        header=header.copy(),
        stored_affine=stored_affine,
        stored_shape=tuple(shape[:3]),  # type: ignore[arg-type]
        n_nonfinite=n_bad,
        affine_source=choice.source,
        qform_sform_max_displacement_mm=choice.displacement_mm,
    )


def save_like(
    array: np.ndarray,
    reference: Volume,
    path: str | os.PathLike,
    *,
    dtype: Any = None,
    description: str | None = None,
) -> Path:
    """Write a canonical-grid array the way ``reference`` was stored on disk, atomically.

    The array is reordered back to the reference file's axis order and written with the
    reference's header (affine, qform/sform and their codes, units), so it overlays on the
    input in any viewer.

    Parameters
    ----------
    array : (X, Y, Z) ndarray
        Data in the reference's canonical grid. Boolean arrays are written as uint8 masks.
    reference : Volume
        The volume whose grid and header to copy.
    path : path-like
        Destination ``.nii.gz`` or ``.nii``; written through a temporary file and a rename.
    dtype : numpy dtype, optional
        On-disk type; default uint8 for boolean/integer masks with values in 0..255, else
        float32.
    description : str, optional
        Short text put in the header's ``descrip`` field (at most 80 bytes).

    Returns
    -------
    Path
    """
    array = np.asarray(array)
    stored = reference.to_stored(array)
    if dtype is None:
        if array.dtype == bool or (
            np.issubdtype(array.dtype, np.integer)
            and (array.size == 0 or (array.min() >= 0 and array.max() <= 255))
        ):
            dtype = np.uint8
        elif np.issubdtype(array.dtype, np.integer):
            dtype = np.int32
        else:
            dtype = np.float32
    stored = stored.astype(dtype)
    if reference.header is not None:
        header = reference.header.copy()
        header.set_data_shape(stored.shape)
        header.set_data_dtype(dtype)
        # Stored values are exact; no scaling.
        header["scl_slope"] = np.nan
        header["scl_inter"] = np.nan
        header["cal_min"] = 0
        header["cal_max"] = 0
        qform, qcode = header.get_qform(coded=True)
        sform, scode = header.get_sform(coded=True)
        img = nib.Nifti1Image(stored, reference.stored_affine, header=header)
        if qform is not None:
            img.set_qform(qform, code=int(qcode))
        if sform is not None:
            img.set_sform(sform, code=int(scode))
        else:
            img.set_sform(None, code=0)
    else:
        img = nib.Nifti1Image(stored, reference.stored_affine)
        img.set_qform(reference.stored_affine, code=1)
        img.set_sform(reference.stored_affine, code=1)
        img.header.set_xyzt_units("mm")
    if description:
        img.header["descrip"] = description.encode("ascii", "replace")[:79]
    with atomic_path(path) as tmp:
        nib.save(img, tmp)
    return Path(path)
