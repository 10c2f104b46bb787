"""Deterministic NIfTI-1 encoding: the same array and affine give the same bytes.

For writing new images (phantoms, test data, benchmark inputs). A result in the grid of an
input image is written with :func:`graftimg.io.volume.save_like`, which keeps the input's
header.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

from graftimg.io.atomic import write_bytes_atomic

__all__ = ["nifti_gz_bytes", "write_nifti_gz"]


def nifti_gz_bytes(
    data: np.ndarray,
    affine: np.ndarray,
    *,
    dtype: Any,
    slice_axis: int | None = None,
    description: str = "",
) -> bytes:
    """Encode a NIfTI-1 ``.nii.gz`` deterministically (gzip ``mtime=0``, no file name).

    qform and sform are both set to ``affine`` with code 1 (scanner), units are mm and s.

    Parameters
    ----------
    data : ndarray
        Voxel array as stored.
    affine : (4, 4) ndarray
        Voxel-to-scanner affine.
    dtype : numpy dtype
        On-disk data type (values are cast, so round them first).
    slice_axis : int, optional
        Stored axis of the slices of a 2D acquisition (header ``dim_info``).
    description : str
        Header ``descrip`` (at most 79 characters kept).

    Returns
    -------
    bytes

    Examples
    --------
    >>> blob = nifti_gz_bytes(np.zeros((2, 2, 2)), np.eye(4), dtype=np.uint8)
    >>> blob == nifti_gz_bytes(np.zeros((2, 2, 2)), np.eye(4), dtype=np.uint8)
    True
    """
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    header = img.header
    header.set_xyzt_units("mm", "sec")
    if slice_axis is not None:
        header.set_dim_info(slice=slice_axis)
    header["descrip"] = description.encode("ascii", "replace")[:79]
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def write_nifti_gz(
    path: str | os.PathLike, data: np.ndarray, affine: np.ndarray, **options: Any
) -> Path:
    """Write :func:`nifti_gz_bytes` of the arguments to ``path`` atomically; return the path.

    ``options`` are those of :func:`nifti_gz_bytes` (``dtype`` is required).

    Examples
    --------
    >>> import tempfile, pathlib, nibabel
    >>> p = write_nifti_gz(pathlib.Path(tempfile.mkdtemp()) / "a.nii.gz", np.ones((2, 3, 4)),
    ...                    np.diag([0.5, 0.5, 2.0, 1.0]), dtype=np.int16)
    >>> nibabel.load(p).header.get_zooms()
    (np.float32(0.5), np.float32(0.5), np.float32(2.0))
    """
    return write_bytes_atomic(path, nifti_gz_bytes(data, affine, **options))
