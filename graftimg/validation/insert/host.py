"""The host: a real scan with its manual cord mask, loaded and resampled onto a target grid."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from graftimg.errors import ConfigError, DimensionError, SegmentationError
from graftimg.io.volume import Volume, load_volume
from graftimg.phantom.motion import RigidMotion
from graftimg.preprocess.noise import estimate_noise
from graftimg.validation.insert.grid import _apply, _readonly, _sample_offsets

__all__ = ["HostScan", "ResampledHost", "load_host", "resample_host"]


@dataclasses.dataclass(frozen=True, eq=False)
class HostScan:
    """A real scan and its manual cord mask, in the scan's canonical (RAS+) grid.

    Attributes
    ----------
    name : str
        Short label (e.g. ``'T2w'``).
    image : Volume
        The scan as :func:`graftimg.io.load_volume` gives it.
    cord : (X, Y, Z) ndarray of bool
        The manual cord mask on the same grid. Read-only.
    """

    name: str
    image: Volume
    cord: np.ndarray

    def __post_init__(self) -> None:
        cord = np.asarray(self.cord, dtype=bool)
        if cord.shape != self.image.shape:
            raise DimensionError(
                f"cord mask shape {cord.shape} differs from the image's {self.image.shape}",
                hint="resample the manual mask onto the image grid first",
            )
        object.__setattr__(self, "cord", _readonly(cord.copy()))


def load_host(
    image_path: str | os.PathLike, cord_path: str | os.PathLike, *, name: str | None = None
) -> HostScan:
    """Load a real scan and its manual cord mask (both through :func:`load_volume`).

    Parameters
    ----------
    image_path, cord_path : path-like
        The scan and its manual cord mask (non-zero = cord), on the same voxel grid.
    name : str, optional
        Label of the host; default: the image's file name.

    Returns
    -------
    HostScan

    Raises
    ------
    DimensionError
        The mask's grid (shape or affine, 0.01 mm) differs from the image's.
    SegmentationError
        The mask is empty.
    """
    image = load_volume(image_path)
    mask = load_volume(cord_path)
    if mask.shape != image.shape or not np.allclose(mask.affine, image.affine, atol=0.01):
        raise DimensionError(
            f"the cord mask's grid (shape {list(mask.shape)}) is not the image's "
            f"(shape {list(image.shape)}) or their affines differ by more than 0.01 mm",
            path=cord_path,
            hint=f"resample the mask onto {image_path} first",
        )
    cord = mask.data > 0.5
    if not cord.any():
        raise SegmentationError(
            "the manual cord mask is empty", path=cord_path, hint="give the scan's cord mask"
        )
    return HostScan(name or _file_stem(image_path), image, cord)


def _file_stem(path: str | os.PathLike) -> str:
    """File name without the NIfTI suffix."""
    name = os.path.basename(os.fspath(path))
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclasses.dataclass(frozen=True, eq=False)
class ResampledHost:
    """A host carried onto a target grid (:func:`resample_host`).

    Attributes
    ----------
    host_name : str
        The host's label.
    image : (X, Y, Z) ndarray of float64
        Resampled image (RAS+ axes), ≥ 0. Read-only.
    cord_fraction : (X, Y, Z) ndarray of float64
        Linearly interpolated manual mask (slice-averaged on thick axes). Read-only.
    affine : (4, 4) ndarray
        Target voxel → scanner RAS mm.
    spacing : tuple of 3 float
        Target voxel size in mm.
    motion : RigidMotion
        Subject motion applied (about ``motion_center_mm``, the manual cord's centroid).
    motion_center_mm : tuple of 3 float
        Centre of the rotation, scanner mm.
    host_sigma : float
        Noise σ₀ measured on the host scan.
    host_noise_method : str
        Estimator that gave ``host_sigma``.
    noise_gain : float
        σ of white noise of σ = 1 after the same resampling.
    subsamples : tuple of 3 int
        Points averaged per target voxel along each axis.
    """

    host_name: str
    image: np.ndarray
    cord_fraction: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    motion: RigidMotion
    motion_center_mm: tuple[float, float, float]
    host_sigma: float
    host_noise_method: str
    noise_gain: float
    subsamples: tuple[int, int, int]

    @property
    def cord(self) -> np.ndarray:
        """The resampled manual cord mask: ``cord_fraction ≥ 0.5``."""
        return self.cord_fraction >= 0.5

    @property
    def residual_sigma(self) -> float:
        """Host noise σ left after resampling, ``noise_gain · host_sigma``."""
        return self.noise_gain * self.host_sigma

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one target voxel in mm³."""
        return float(np.prod(self.spacing))


def _host_spacing_along_world(affine: np.ndarray) -> np.ndarray:
    """Host voxel size along each scanner axis (largest component of the matching column)."""
    m = np.abs(np.asarray(affine)[:3, :3])
    return m.max(axis=1)


def _subsample_factors(target: np.ndarray, host: np.ndarray) -> tuple[int, int, int]:
    ratio = np.asarray(target, float) / np.asarray(host, float)
    return tuple(math.ceil(2.0 * r) if r > 1.5 else 1 for r in ratio)  # type: ignore[return-value]


def resample_host(
    host: HostScan,
    *,
    spacing: Sequence[float],
    motion: RigidMotion | None = None,
    noise_seed: int = 0,
) -> ResampledHost:
    """Carry a host onto an axis-aligned RAS grid of voxel size ``spacing``, moved rigidly.

    The grid tiles the host's extent from face to face; along S-I it keeps the slices whose
    cord region (the manual mask's in-plane box plus 5 mm, both faces of the slice) maps inside
    the host's S-I extent after the motion.

    Parameters
    ----------
    host : HostScan
        The scan and its manual cord mask.
    spacing : sequence of 3 float
        Target voxel size (R-L, A-P, S-I) in mm.
    motion : RigidMotion, optional
        Motion of the subject (about the manual cord's centroid); none by default.
    noise_seed : int
        Seed of the white noise that measures the noise gain.

    Returns
    -------
    ResampledHost

    Raises
    ------
    SegmentationError
        No target slice maps inside the host.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> vol = Volume.from_array(rng.normal(100.0, 2.0, (20, 20, 30)))
    >>> cord = np.zeros((20, 20, 30), bool)
    >>> cord[6:14, 6:14, :] = True
    >>> rs = resample_host(HostScan("cube", vol, cord), spacing=(0.5, 0.5, 3.0))
    >>> rs.image.shape, rs.subsamples, round(float(rs.image.mean()))
    ((40, 40, 10), (1, 1, 6), 100)
    >>> round(float(rs.cord_fraction.sum() * rs.voxel_volume_mm3 / cord.sum()), 2)
    1.0
    """
    spacing_t = np.asarray(spacing, dtype=float)
    if spacing_t.shape != (3,) or np.any(spacing_t <= 0) or not np.all(np.isfinite(spacing_t)):
        raise ConfigError(f"spacing must be 3 positive mm values, got {list(spacing)}")
    motion = RigidMotion() if motion is None else motion
    image = host.image
    a_host = np.asarray(image.affine, dtype=float)
    shape_h = np.asarray(image.shape)
    corners = np.array(list(itertools.product(*[(0, n - 1) for n in shape_h])), float)
    world = _apply(a_host, corners)
    # The grid tiles the host's extent from its outer faces (a 7.5 mm slice reaches 3.75 mm
    # past its centre): target voxel faces never lie outside the host's.
    host_step = _host_spacing_along_world(a_host)
    faces = world.min(axis=0) - 0.5 * host_step
    extent = world.max(axis=0) - world.min(axis=0) + host_step
    n_t = np.floor(extent / spacing_t + 1e-6).astype(int)
    lo = faces + 0.5 * spacing_t
    a_target = np.eye(4)
    a_target[:3, :3] = np.diag(spacing_t)
    a_target[:3, 3] = lo

    cord_world = _apply(a_host, np.argwhere(host.cord).astype(float))
    centre = cord_world.mean(axis=0)
    move = motion.matrix(centre)
    # target index -> target world -> host world (undo the motion) -> host index
    to_host = np.linalg.inv(a_host) @ np.linalg.inv(move) @ a_target

    # Slices whose cord region maps inside the host.
    margin = 5.0
    box_lo = np.floor((cord_world.min(axis=0)[:2] - margin - lo[:2]) / spacing_t[:2])
    box_hi = np.ceil((cord_world.max(axis=0)[:2] + margin - lo[:2]) / spacing_t[:2])
    box_lo = np.clip(box_lo, 0, n_t[:2] - 1)
    box_hi = np.clip(box_hi, 0, n_t[:2] - 1)
    inside = np.zeros(n_t[2], dtype=bool)
    for k in range(n_t[2]):
        probes = np.array(
            [
                [x, y, k + dz]
                for x in (box_lo[0], box_hi[0])
                for y in (box_lo[1], box_hi[1])
                for dz in (-0.5, 0.5)
            ],
            float,
        )
        # The slice's faces must lie in the host along S-I (in-plane, far corners may leave the
        # host and take its edge values, away from the cord).
        idx = _apply(to_host, probes)[:, 2]
        inside[k] = bool(np.all((idx >= -0.5 - 1e-6) & (idx <= shape_h[2] - 0.5 + 1e-6)))
    if not inside.any():
        raise SegmentationError(
            "no slice of the target grid maps inside the host scan",
            path=image.source,
            hint="use a smaller motion",
        )
    runs = _runs(inside)
    k0, k1 = max(runs, key=lambda r: r[1] - r[0])
    n_t[2] = k1 - k0
    a_target[:3, 3] = lo + np.array([0.0, 0.0, k0 * spacing_t[2]])
    to_host = np.linalg.inv(a_host) @ np.linalg.inv(move) @ a_target

    factors = _subsample_factors(spacing_t, _host_spacing_along_world(a_host))
    offsets = _sample_offsets(factors)
    grid = np.stack(
        np.meshgrid(*[np.arange(n, dtype=float) for n in n_t], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    data = np.asarray(image.data, dtype=np.float64)
    cord_f = np.asarray(host.cord, dtype=np.float64)
    coeffs = ndimage.spline_filter(data, order=3, mode="nearest")
    out = np.zeros(grid.shape[0])
    frac = np.zeros(grid.shape[0])
    for off in offsets:
        idx = _apply(to_host, grid + off).T
        out += ndimage.map_coordinates(coeffs, idx, order=3, mode="nearest", prefilter=False)
        frac += ndimage.map_coordinates(cord_f, idx, order=1, mode="nearest")
    out = np.clip(out / len(offsets), 0.0, None).reshape(tuple(n_t))
    frac = (frac / len(offsets)).reshape(tuple(n_t))

    noise = estimate_noise(data, spacing=image.spacing)
    gain = _noise_gain(to_host, tuple(shape_h), frac >= 0.5, offsets, noise_seed)
    return ResampledHost(
        host_name=host.name,
        image=_readonly(out),
        cord_fraction=_readonly(frac),
        affine=_readonly(a_target),
        spacing=tuple(float(s) for s in spacing_t),  # type: ignore[arg-type]
        motion=motion,
        motion_center_mm=tuple(float(c) for c in centre),  # type: ignore[arg-type]
        host_sigma=float(noise.sigma),
        host_noise_method=noise.method,
        noise_gain=gain,
        subsamples=factors,
    )


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Half-open ``[start, stop)`` runs of True."""
    padded = np.concatenate([[False], flags, [False]]).astype(int)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]


def _noise_gain(
    to_host: np.ndarray,
    host_shape: tuple[int, ...],
    cord: np.ndarray,
    offsets: np.ndarray,
    seed: int,
    n_probe: int = 4000,
) -> float:
    """σ after resampling of white noise of σ = 1, at up to ``n_probe`` cord voxels."""
    rng = np.random.default_rng([seed, 104729])
    white = rng.standard_normal(host_shape)
    coeffs = ndimage.spline_filter(white, order=3, mode="nearest")
    voxels = np.argwhere(cord).astype(float)
    if voxels.shape[0] == 0:
        voxels = np.argwhere(np.ones(cord.shape, bool)).astype(float)
    if voxels.shape[0] > n_probe:
        voxels = voxels[rng.choice(voxels.shape[0], n_probe, replace=False)]
    total = np.zeros(voxels.shape[0])
    for off in offsets:
        idx = _apply(to_host, voxels + off).T
        total += ndimage.map_coordinates(coeffs, idx, order=3, mode="nearest", prefilter=False)
    return float(np.std(total / len(offsets)))
