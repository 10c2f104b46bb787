"""Grafts of known volume inserted into real spinal cord scans, with partial-volume truth.

A *host* is a real scan with its manual cord mask (:func:`load_host`). :func:`synthesize` turns
it into one validation image:

1. **Resampling** (:func:`resample_host`). The host is carried onto an axis-aligned RAS target
   grid (any voxel size) through a rigid motion of the subject (≤ 3°, ≤ 2 mm by default), in one
   resampling: the image by cubic B-spline interpolation, the manual mask by linear
   interpolation of its 0/1 values (kept where ≥ 0.5). Where a target voxel is much thicker than
   the host's along an axis (a 3 mm slice from a 1 mm scan) each voxel averages ``⌈2·ratio⌉``
   points across that axis — the slice profile — instead of reading one point of a 3 mm slab.
   The host's own noise σ₀ is measured on the scan (:func:`graftimg.preprocess.noise
   .estimate_noise`); what is left of it after resampling, ``g·σ₀``, is found by passing white
   noise of σ = 1 through the same interpolation (``g`` is the *noise gain*, < 1: cubic
   interpolation and slice averaging smooth noise).
2. **Placement.** A centre slice is drawn on the manual cord away from the grid's ends; the
   insert is an ellipsoid elongated along the local cord axis (the line through the manual
   mask's centroids 3 slices either side), in-plane semi-axes a fraction of the local cord
   half-widths, length from the requested volume (at most 12 mm half-length and what the field
   of view allows). Its surface must lie inside the manual cord (linear interpolation of the
   mask ≥ 0.5 at 12 × 24 surface points); ``centre`` puts it on the cord's centroid,
   ``edge`` slides it in a random in-plane direction until its surface touches the cord's
   boundary, ``offcentre`` half that far. If even the centred ellipsoid does not fit, its
   in-plane axes shrink (the length grows to keep the volume) — and the volume shrinks when the
   length hits its bound; the volume inserted is always the one recorded.
3. **Insertion** (all noise-free; truth = partial-volume fractions from
   ``4 × 4 × 4`` sub-samples per voxel, up to 12 along a thick axis):

   - ``t2``: tissue at ``μ_cord + f·(μ_CSF − μ_cord)`` (:func:`cord_and_csf_levels`), times a
     smooth multiplicative texture ``1 + t·g`` (``g`` unit-variance Gaussian-smoothed white
     noise, 1.5 mm correlation, ``t`` 5–10 %). The change is *added* to the host,
     ``I + p_graft·(G·texture − μ_cord) + p_cyst·(μ_CSF − μ_cord)``: a voxel part graft and part
     cord or CSF takes the right mixture, and the host's texture and noise stay. An optional
     cyst (CSF level) is a smaller ellipsoid (35–60 % of each semi-axis) at the graft's centre
     or towards one end, clipped to the graft; the graft truth excludes it.
   - ``iron``: a deposit of radius ``a`` blooming as the dipole of
     :mod:`graftimg.phantom.iron` (``K`` sized so that the analytic void has the requested
     volume; B0 along scanner z). Each voxel's signal is multiplied by the magnitude of the
     sub-sample mean of ``0`` (in the void) or ``exp(iφ)`` (outside) — the through-voxel
     dephasing of the phantom renderer, :mod:`graftimg.phantom.render`. The truth is the
     noise-free *signal loss* ``1 − S/B`` per voxel (S with iron, B without), the definition of
     ``benchmarks/validate_phantoms.py``: its sum × voxel volume is the void as this acquisition
     sees it, a little larger than the analytic ``|φ| ≥ φc`` void.
4. **Field of view.** The grid is cropped along S-I to the requested length, the insert (every
   voxel of truth > 0.001) fully inside with a random offset.
5. **Noise** (:func:`add_noise_to_snr`). ``σ_t = median(cord)/SNR``; Rician noise
   ``|I + n_r + i·n_i|`` of ``σ_add = √(σ_t² − σ_res²)`` is added (``σ_res`` the host noise left
   after resampling, scaled by the signal kept in an iron void, so that the noise is uniform).
   When the host is noisier than the target, nothing is added and the SNR reached is recorded,
   never the target.

The host's texture, bias field, partial volume at the cord edge and noise are real; what is
synthetic is the insert. Every random choice comes from one seed.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from graftimg.errors import ConfigError, DimensionError, SegmentationError
from graftimg.io.volume import Volume, load_volume
from graftimg.modes import Mode
from graftimg.phantom.iron import (
    dipole_phase_xyz,
    in_void_xyz,
    void_radius_mm,
    void_volume_mm3,
)
from graftimg.phantom.motion import RigidMotion, random_motion
from graftimg.preprocess.noise import estimate_noise

__all__ = [
    "HostScan",
    "InsertSpec",
    "Levels",
    "ResampledHost",
    "SyntheticImage",
    "add_noise_to_snr",
    "cord_and_csf_levels",
    "ellipsoid_fraction",
    "load_host",
    "resample_host",
    "synthesize",
]

#: What is inserted: a graft of one of the modes, or nothing (a control).
InsertMode = Mode | Literal["none"]
Position = Literal["centre", "offcentre", "edge"]

#: Largest half-length of an insert along the cord, in mm.
MAX_HALF_LENGTH_MM = 12.0
#: Sub-samples per axis on the finest axis for the truth maps, and the cap on thick axes.
_SUBSAMPLES = 4
_MAX_SUBSAMPLES = 12
#: Correlation length (Gaussian σ) of the graft texture, in mm.
_TEXTURE_MM = 1.5
#: Largest dipole-phase change across a voxel left un-sub-sampled (as the phantom renderer).
_PHASE_STEP_RAD = 0.25
#: Truth values below this count as "not touched" when the crop is placed (1 % of a voxel, or
#: 1 % signal loss in the far dephasing halo of an iron deposit).
_TRUTH_FLOOR = 1e-2


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# -- host --------------------------------------------------------------------------------------


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


# -- resampling --------------------------------------------------------------------------------


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


def _sample_offsets(factors: Sequence[int]) -> np.ndarray:
    """Offsets (in voxels) of ``∏ factors`` sub-samples centred in a voxel, shape (n, 3)."""
    axes = [(np.arange(n) + 0.5) / n - 0.5 for n in factors]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]


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


# -- intensity levels --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Levels:
    """Local cord and CSF intensity levels (:func:`cord_and_csf_levels`).

    Attributes
    ----------
    cord : float
        Median of the in-plane-eroded cord in the slices, outside ``exclude``.
    csf : float
        Robust CSF level of the ring just outside the cord.
    n_cord, n_csf : int
        Voxels behind each level.
    ring_median : float
        Plain median of the ring (what a naive estimate would give).
    """

    cord: float
    csf: float
    n_cord: int
    n_csf: int
    ring_median: float


def cord_and_csf_levels(
    image: np.ndarray,
    cord: np.ndarray,
    *,
    spacing: Sequence[float],
    slices: Sequence[int],
    exclude: np.ndarray | None = None,
    ring_width_mm: float = 2.5,
) -> Levels:
    """Cord and CSF levels in some axial slices of an image with a cord mask.

    The cord level is the median of the cord eroded by one voxel in-plane (no partial volume
    with CSF), outside ``exclude``. The CSF level comes from a ring one voxel outside the cord
    and ``ring_width_mm`` wide (in-plane distance). The ring mixes CSF with dura, roots,
    vessels, bone and fat and with partial-volume edge voxels, all darker than CSF where CSF is
    bright (T2w, T2*w), so its plain median sits well below CSF. The robust level is the median
    of the ring voxels brighter than halfway between the cord level and the ring's 95th
    percentile: the bright (CSF) mode, with the percentile rather than the maximum setting the
    cut so that single bright outliers (noise, flow) do not.

    Parameters
    ----------
    image : (X, Y, Z) ndarray
        Image (RAS+ axes, axial slices along the last).
    cord : (X, Y, Z) ndarray of bool
        Cord mask.
    spacing : sequence of 3 float
        Voxel size in mm.
    slices : sequence of int
        Axial slices to use.
    exclude : (X, Y, Z) ndarray of bool, optional
        Voxels left out of the cord level (e.g. where an insert goes).
    ring_width_mm : float
        Radial width of the CSF ring, in mm.

    Returns
    -------
    Levels

    Raises
    ------
    SegmentationError
        No eroded cord voxel or no ring voxel in these slices.

    Examples
    --------
    >>> img = np.full((30, 30, 4), 100.0)
    >>> yy, xx = np.mgrid[:30, :30]
    >>> disc = (xx - 15) ** 2 + (yy - 15) ** 2 <= 36
    >>> csf = ((xx - 15) ** 2 + (yy - 15) ** 2 <= 100) & ~disc
    >>> img[csf] = 300.0
    >>> img[disc] = 120.0
    >>> cord = np.repeat(disc[:, :, None], 4, axis=2)
    >>> lv = cord_and_csf_levels(img, cord, spacing=(1, 1, 1), slices=[1, 2])
    >>> lv.cord, lv.csf
    (120.0, 300.0)
    """
    image = np.asarray(image, dtype=np.float64)
    cord = np.asarray(cord, dtype=bool)
    slices = [int(k) for k in slices if 0 <= int(k) < image.shape[2]]
    sx, sy = float(spacing[0]), float(spacing[1])
    cross = ndimage.generate_binary_structure(2, 1)
    cord_values, ring_values = [], []
    for k in slices:
        sl = cord[:, :, k]
        if not sl.any():
            continue
        eroded = ndimage.binary_erosion(sl, cross)
        if exclude is not None:
            eroded &= ~np.asarray(exclude)[:, :, k]
        cord_values.append(image[:, :, k][eroded])
        distance = ndimage.distance_transform_edt(~sl, sampling=(sx, sy))
        gap = max(sx, sy) * 1.01
        ring = (distance > gap) & (distance <= gap + ring_width_mm)
        ring_values.append(image[:, :, k][ring])
    cord_v = np.concatenate(cord_values) if cord_values else np.zeros(0)
    ring_v = np.concatenate(ring_values) if ring_values else np.zeros(0)
    if cord_v.size == 0 or ring_v.size == 0:
        raise SegmentationError(
            f"no cord or CSF-ring voxel in slices {slices}",
            hint="place the insert where the manual cord mask is",
        )
    mu_cord = float(np.median(cord_v))
    cut = 0.5 * (mu_cord + float(np.percentile(ring_v, 95.0)))
    bright = ring_v[ring_v >= cut]
    csf = float(np.median(bright)) if bright.size else float(np.median(ring_v))
    return Levels(mu_cord, csf, int(cord_v.size), int(bright.size), float(np.median(ring_v)))


# -- partial-volume maps -----------------------------------------------------------------------


def _truth_factors(spacing: Sequence[float]) -> tuple[int, int, int]:
    finest = min(spacing)
    return tuple(  # type: ignore[return-value]
        int(min(_MAX_SUBSAMPLES, max(_SUBSAMPLES, round(_SUBSAMPLES * s / finest))))
        for s in spacing
    )


def _box_around(
    affine: np.ndarray, shape: Sequence[int], centre_mm: np.ndarray, radius_mm: float
) -> tuple[slice, slice, slice] | None:
    """Index box of the voxels within ``radius_mm`` (per axis) of a point, or None."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    c = np.linalg.solve(affine[:3, :3], np.asarray(centre_mm, float) - affine[:3, 3])
    reach = radius_mm / spacing + 1.0
    lo = np.maximum(np.floor(c - reach), 0).astype(int)
    hi = np.minimum(np.ceil(c + reach) + 1, np.asarray(shape)).astype(int)
    if np.any(hi <= lo):
        return None
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))  # type: ignore[return-value]


def _box_means(
    affine: np.ndarray,
    box: tuple[slice, slice, slice],
    factors: Sequence[int],
    origin_mm: np.ndarray,
    function: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Mean of ``function(dx, dy, dz)`` over sub-samples of each voxel of ``box``.

    ``function`` gets offsets from ``origin_mm`` (scanner axes) of ``n_voxels·n_sub`` points and
    returns ``(..., n_points)`` values; the result has shape ``(..., *box shape)``.
    """
    shape = tuple(s.stop - s.start for s in box)
    index = np.stack(
        np.meshgrid(*[np.arange(s.start, s.stop, dtype=float) for s in box], indexing="ij"),
        axis=-1,
    ).reshape(-1, 3)
    offsets = _sample_offsets(factors) @ affine[:3, :3].T
    centres = _apply(affine, index) - np.asarray(origin_mm, float)
    n_sub = offsets.shape[0]
    chunk = max(1, 1_500_000 // n_sub)
    out = None
    for start in range(0, index.shape[0], chunk):
        c = centres[start : start + chunk]
        pts = (c[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
        values = np.asarray(function(pts[:, 0], pts[:, 1], pts[:, 2]))
        lead = values.shape[:-1]
        means = values.reshape(*lead, c.shape[0], n_sub).mean(axis=-1)
        if out is None:
            out = np.zeros((*lead, index.shape[0]), dtype=means.dtype)
        out[..., start : start + c.shape[0]] = means
    assert out is not None
    return out.reshape(*out.shape[:-1], *shape)


def _in_ellipsoid(
    dx: np.ndarray,
    dy: np.ndarray,
    dz: np.ndarray,
    semi_axes: Sequence[float],
    rotation: np.ndarray,
    shift: Sequence[float] = (0.0, 0.0, 0.0),
) -> np.ndarray:
    """Which points (offsets from the reference point, scanner axes) lie in an ellipsoid.

    ``rotation`` holds the ellipsoid's axes as columns; ``shift`` moves its centre.
    """
    d = np.stack([dx - shift[0], dy - shift[1], dz - shift[2]], axis=0)
    u = rotation.T @ d
    a = np.asarray(semi_axes, float)[:, None]
    return np.sum((u / a) ** 2, axis=0) <= 1.0


def ellipsoid_fraction(
    affine: np.ndarray,
    shape: Sequence[int],
    centre_mm: Sequence[float],
    semi_axes_mm: Sequence[float],
    rotation: np.ndarray | None = None,
    *,
    factors: Sequence[int] | None = None,
) -> np.ndarray:
    """Partial-volume fraction of an ellipsoid in every voxel of a grid (sub-sampled).

    Parameters
    ----------
    affine : (4, 4) ndarray
        Voxel → scanner mm.
    shape : sequence of 3 int
        Grid shape.
    centre_mm : sequence of 3 float
        Ellipsoid centre, scanner mm.
    semi_axes_mm : sequence of 3 float
        Semi-axes in mm, along the columns of ``rotation``.
    rotation : (3, 3) ndarray, optional
        Axes of the ellipsoid as columns (scanner coordinates); identity by default.
    factors : sequence of 3 int, optional
        Sub-samples per axis; default 4 on the finest axis, more (≤ 12) on thick ones.

    Returns
    -------
    (X, Y, Z) ndarray of float64
        Fraction of each voxel inside, in [0, 1].

    Examples
    --------
    >>> aff = np.diag([0.5, 0.5, 3.0, 1.0])
    >>> pv = ellipsoid_fraction(aff, (40, 40, 12), (10.0, 10.0, 18.0), (3.0, 2.0, 7.0))
    >>> analytic = 4 / 3 * np.pi * 3 * 2 * 7
    >>> bool(abs(pv.sum() * 0.75 / analytic - 1) < 0.01)
    True
    """
    affine = np.asarray(affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    rotation = np.eye(3) if rotation is None else np.asarray(rotation, float)
    factors = _truth_factors(spacing) if factors is None else tuple(factors)
    out = np.zeros(tuple(shape))
    box = _box_around(affine, shape, np.asarray(centre_mm), float(max(semi_axes_mm)))
    if box is None:
        return out
    out[box] = _box_means(
        affine,
        box,
        factors,
        np.asarray(centre_mm, float),
        lambda x, y, z: _in_ellipsoid(x, y, z, semi_axes_mm, rotation).astype(np.float32),
    )
    return out


# -- noise -------------------------------------------------------------------------------------


def add_noise_to_snr(
    image: np.ndarray,
    *,
    signal: float,
    snr: float,
    residual_sigma: float,
    rng: np.random.Generator,
    residual_scale: np.ndarray | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Add Rician noise so that ``signal / σ_total`` reaches ``snr`` (if the image allows).

    Parameters
    ----------
    image : ndarray
        Image that already holds noise of σ ``residual_sigma`` (times ``residual_scale``).
    signal : float
        The signal the SNR refers to (median of the cord).
    snr : float
        Target SNR.
    residual_sigma : float
        σ of the noise already in the image.
    rng : numpy.random.Generator
        Noise source.
    residual_scale : ndarray, optional
        Per-voxel factor on the residual noise (the signal kept in an iron void); the added σ
        makes every voxel's total σ the same.

    Returns
    -------
    noisy : ndarray of float64
        ``|I + n_r + i·n_i|``.
    info : dict
        ``sigma_target``, ``sigma_added`` (where the residual is unscaled), ``sigma_residual``,
        ``snr_target``, ``snr_reached`` and ``signal``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noisy, info = add_noise_to_snr(np.full(50_000, 200.0), signal=200.0, snr=20.0,
    ...                                residual_sigma=6.0, rng=rng)
    >>> round(info["sigma_added"], 2), round(float(noisy.std()), 1)
    (8.0, 8.0)
    >>> info = add_noise_to_snr(np.full(10, 200.0), signal=200.0, snr=40.0,
    ...                         residual_sigma=6.0, rng=rng)[1]
    >>> info["sigma_added"], round(info["snr_reached"], 2)
    (0.0, 33.33)
    """
    if not (snr > 0 and math.isfinite(snr)):
        raise ConfigError(f"snr must be positive and finite, got {snr}")
    target = float(signal) / float(snr)
    residual = float(residual_sigma)
    scale = 1.0 if residual_scale is None else np.asarray(residual_scale, dtype=float)
    added = np.sqrt(np.clip(target**2 - (scale * residual) ** 2, 0.0, None))
    image = np.asarray(image, dtype=np.float64)
    real = image + rng.standard_normal(image.shape) * added
    imag = rng.standard_normal(image.shape) * added
    added_plain = math.sqrt(max(target**2 - residual**2, 0.0))
    total = math.hypot(residual, added_plain)
    info = {
        "signal": float(signal),
        "snr_target": float(snr),
        "sigma_target": target,
        "sigma_residual": residual,
        "sigma_added": added_plain,
        "snr_reached": float(signal) / total if total > 0 else math.inf,
    }
    return np.hypot(real, imag), info


# -- the whole synthesis -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class InsertSpec:
    """What to make of a host (:func:`synthesize`).

    Attributes
    ----------
    mode : {'t2', 'iron', 'none'}
        Graft tissue, iron void, or nothing (false-positive checks).
    spacing_mm : tuple of 3 float
        Target voxel size (R-L, A-P, S-I) in mm.
    fov_mm : float or None
        Field of view along S-I in mm (None: everything the host gives).
    snr : float
        Target SNR in the cord (median / σ).
    n_voxels : float
        Insert volume in target voxels (``t2``: graft + cyst; ``iron``: analytic void).
    position : {'centre', 'offcentre', 'edge'}
        Where in the cord cross-section.
    fraction : float
        ``t2``: tissue level between the cord (0) and CSF (1).
    cyst : bool
        ``t2``: a CSF-level cyst inside the graft.
    texture : float or None
        ``t2``: relative amplitude of the texture; None draws 5–10 %.
    max_rotation_deg, max_translation_mm : float
        Bounds of the random rigid motion.
    seed : int
        Seeds every random choice.
    """

    mode: InsertMode = "t2"
    spacing_mm: tuple[float, float, float] = (1.0, 1.0, 1.0)
    fov_mm: float | None = None
    snr: float = 20.0
    n_voxels: float = 100.0
    position: Position = "centre"
    fraction: float = 0.5
    cyst: bool = False
    texture: float | None = None
    max_rotation_deg: float = 3.0
    max_translation_mm: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in ("t2", "iron", "none"):
            raise ConfigError(f"mode must be 't2', 'iron' or 'none', got {self.mode!r}")
        if self.position not in ("centre", "offcentre", "edge"):
            raise ConfigError(f"position must be centre/offcentre/edge, got {self.position!r}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"fraction must lie in [0, 1], got {self.fraction}")
        if self.n_voxels <= 0:
            raise ConfigError(f"n_voxels must be positive, got {self.n_voxels}")
        if self.fov_mm is not None and self.fov_mm <= 0:
            raise ConfigError(f"fov_mm must be positive, got {self.fov_mm}")


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticImage:
    """One validation image and its truth (:func:`synthesize`).

    Attributes
    ----------
    data : (X, Y, Z) ndarray of float32
        The image (RAS+ axes, noisy, ≥ 0). Read-only.
    affine : (4, 4) ndarray
        Voxel → scanner RAS mm.
    spacing : tuple of 3 float
        Voxel size in mm.
    truth : Mapping of str to ndarray
        Partial-volume truth maps: ``graft`` and ``cyst`` (``t2``), ``loss`` (``iron``: the
        noise-free signal loss ``1 − S/B``); empty for ``none``.
    cord_manual : (X, Y, Z) ndarray of bool
        The resampled manual cord mask.
    site_mm : tuple of 3 float
        Insert centre (the injection site), scanner mm.
    info : dict
        JSON-ready record of every choice (motion, levels, semi-axes, noise, SNR reached...).
    """

    data: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    truth: Mapping[str, np.ndarray]
    cord_manual: np.ndarray
    site_mm: tuple[float, float, float]
    info: dict[str, Any]

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm³."""
        return float(np.prod(self.spacing))

    def truth_volume_mm3(self, name: str, *, binary: bool = False) -> float:
        """Truth volume in mm³: ``Σ fraction × voxel`` (or the count of fraction ≥ 0.5)."""
        if name not in self.truth:
            return 0.0
        t = self.truth[name]
        n = float(np.count_nonzero(t >= 0.5)) if binary else float(t.sum(dtype=np.float64))
        return n * self.voxel_volume_mm3


@dataclasses.dataclass
class _Site:
    """Local cord geometry at the insert's centre slice (target grid)."""

    k: int
    centroid_mm: np.ndarray
    rotation: np.ndarray  # columns: e1 (≈ R-L), e2 (≈ A-P), e3 (along the cord)
    half_widths_mm: np.ndarray  # along e1, e2


def _local_site(rs: ResampledHost, k: int) -> _Site:
    cord = rs.cord
    slices = [j for j in range(k - 3, k + 4) if 0 <= j < cord.shape[2] and cord[:, :, j].any()]
    cents = np.array([[*np.argwhere(cord[:, :, j]).mean(axis=0).tolist(), j] for j in slices])
    world = _apply(rs.affine, cents)
    if len(world) >= 2:
        tangent = np.polyfit(world[:, 2], world[:, :2], 1)[0]
        e3 = np.array([tangent[0], tangent[1], 1.0])
    else:
        e3 = np.array([0.0, 0.0, 1.0])
    e3 /= np.linalg.norm(e3)
    e1 = np.array([1.0, 0.0, 0.0]) - e3[0] * e3
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    xy = np.argwhere(cord[:, :, k])
    centroid = _apply(rs.affine, np.array([[*xy.mean(axis=0), k]]))[0]
    widths = []
    for e in (e1, e2):
        # Half-width along e through the centroid: walk until the mask falls below 0.5.
        steps = np.arange(0.0, 20.0, 0.1)
        reach = []
        for sign in (1.0, -1.0):
            pts = centroid[None, :] + sign * steps[:, None] * e[None, :]
            f = _fraction_at(rs, pts)
            out = np.flatnonzero(f < 0.5)
            reach.append(steps[out[0]] if out.size else steps[-1])
        widths.append(0.5 * (reach[0] + reach[1]))
    return _Site(k, centroid, np.stack([e1, e2, e3], axis=1), np.array(widths))


def _fraction_at(rs: ResampledHost, points_mm: np.ndarray) -> np.ndarray:
    idx = _apply(np.linalg.inv(rs.affine), np.asarray(points_mm, float)).T
    return ndimage.map_coordinates(rs.cord_fraction, idx, order=1, mode="constant", cval=0.0)


def _sphere_directions(n_theta: int = 12, n_phi: int = 24) -> np.ndarray:
    theta = (np.arange(n_theta) + 0.5) / n_theta * np.pi
    phi = np.arange(n_phi) / n_phi * 2 * np.pi
    t, p = np.meshgrid(theta, phi, indexing="ij")
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)


def _surface_t2(semi_axes: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    return (_sphere_directions() * semi_axes[None, :]) @ rotation.T


def _surface_iron(k_mm3: float, core_mm: float) -> np.ndarray:
    d = _sphere_directions()
    return d * void_radius_mm(d[:, 2], k_mm3, core_mm)[:, None]


def _fits(rs: ResampledHost, centre: np.ndarray, surface: np.ndarray) -> bool:
    return bool(np.all(_fraction_at(rs, centre[None, :] + surface) >= 0.5))


def _slide(
    rs: ResampledHost, site: _Site, surface: np.ndarray, position: str, rng: np.random.Generator
) -> np.ndarray:
    """Centre of the insert for ``position`` (assumes it fits at the centroid)."""
    angle = rng.uniform(0.0, 2 * np.pi)
    direction = math.cos(angle) * site.rotation[:, 0] + math.sin(angle) * site.rotation[:, 1]
    if position == "centre":
        return site.centroid_mm
    lo, hi = 0.0, float(site.half_widths_mm.max()) + 1.0
    for _ in range(14):
        mid = 0.5 * (lo + hi)
        if _fits(rs, site.centroid_mm + mid * direction, surface):
            lo = mid
        else:
            hi = mid
    shift = lo if position == "edge" else 0.5 * lo
    return site.centroid_mm + shift * direction


def _void_k_for_volume(volume_mm3: float, core_mm: float) -> float:
    """``K`` whose void (core ``core_mm``) has ``volume_mm3`` (bisection; 0 if the core is it)."""
    if void_volume_mm3(0.0, core_mm) >= volume_mm3:
        return 0.0
    lo, hi = 0.0, float(volume_mm3)
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if void_volume_mm3(mid, core_mm) < volume_mm3:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def synthesize(host: HostScan, spec: InsertSpec) -> SyntheticImage:
    """Make one validation image of ``host``: resample, insert, crop, add noise.

    See the module description for each step. The same host and spec give the same arrays.

    Parameters
    ----------
    host : HostScan
        Real scan and manual cord mask.
    spec : InsertSpec
        What to insert, where, on which grid, at which SNR.

    Returns
    -------
    SyntheticImage

    Raises
    ------
    ConfigError
        The field of view is longer than the host's cord, or no insert fits it.
    SegmentationError
        No CSF brighter than the cord around a ``t2`` insert (a host of the wrong contrast).
    """
    rng = np.random.default_rng([spec.seed, 8])
    motion = random_motion(
        rng, max_rotation_deg=spec.max_rotation_deg, max_translation_mm=spec.max_translation_mm
    )
    rs = resample_host(host, spacing=spec.spacing_mm, motion=motion, noise_seed=spec.seed)
    cord = rs.cord
    sz = rs.spacing[2]
    nz = rs.image.shape[2]
    cord_slices = np.flatnonzero(cord.any(axis=(0, 1)))
    k_lo, k_hi = int(cord_slices.min()), int(cord_slices.max())
    n_cord_slices = k_hi - k_lo + 1
    n_fov = n_cord_slices if spec.fov_mm is None else round(spec.fov_mm / sz)
    if n_fov > n_cord_slices:
        raise ConfigError(
            f"a field of view of {spec.fov_mm} mm along the cord needs {n_fov} slices; host "
            f"{host.name} gives {n_cord_slices} ({n_cord_slices * sz:.0f} mm) on this grid",
            hint="choose a shorter field of view or a longer host",
        )
    # Half-length allowed along z: the insert's voxels plus one voxel each side in the crop.
    half_z_max = min(MAX_HALF_LENGTH_MM, 0.5 * (n_fov - 3) * sz)
    if half_z_max <= 0.5 * sz:
        raise ConfigError(f"a field of view of {spec.fov_mm} mm leaves no room for an insert")
    margin = math.ceil(half_z_max / sz) + 1
    candidates = np.arange(max(k_lo, margin), min(k_hi, nz - 1 - margin) + 1)
    candidates = candidates[cord[:, :, candidates].any(axis=(0, 1))]
    if candidates.size == 0:
        raise ConfigError(f"host {host.name} has no cord slice far enough from the grid's ends")
    k_c = int(rng.choice(candidates))
    site = _local_site(rs, k_c)
    voxel = rs.voxel_volume_mm3
    info: dict[str, Any] = {
        "host": host.name,
        "mode": spec.mode,
        "seed": spec.seed,
        "spacing_mm": list(rs.spacing),
        "motion_rotation_deg": list(motion.rotation_deg),
        "motion_translation_mm": list(motion.translation_mm),
        "motion_angle_deg": motion.angle_deg,
        "host_sigma": rs.host_sigma,
        "host_noise_method": rs.host_noise_method,
        "noise_gain": rs.noise_gain,
        "subsamples": list(rs.subsamples),
        "requested_n_voxels": float(spec.n_voxels),
        "position": spec.position,
        "cord_half_widths_mm": site.half_widths_mm.tolist(),
        "cord_axis": site.rotation[:, 2].tolist(),
    }
    image = np.array(rs.image)
    truth: dict[str, np.ndarray] = {}
    residual_scale = None
    volume = float(spec.n_voxels) * voxel
    shape = image.shape

    if spec.mode in ("t2", "none"):
        u = rng.uniform(0.45, 0.75)
        semi, volume = _t2_axes(site.half_widths_mm * u, volume, half_z_max, site.rotation)
        for _ in range(20):
            if _fits(rs, site.centroid_mm, _surface_t2(semi, site.rotation)):
                break
            shrunk = semi[:2] * 0.88
            semi, volume = _t2_axes(shrunk, volume, half_z_max, site.rotation)
        else:
            raise ConfigError(
                f"no ellipsoid of {spec.n_voxels} voxels fits the manual cord of host "
                f"{host.name} at slice {k_c}"
            )
        surface = _surface_t2(semi, site.rotation)
        centre = _slide(rs, site, surface, spec.position, rng)
        info.update(semi_axes_mm=semi.tolist(), inserted_volume_mm3=volume)
        if spec.mode == "t2":
            image, truth, t2_info = _insert_t2(rs, image, centre, semi, site, spec, rng)
            info.update(t2_info)
        else:
            truth = {}
    else:  # iron
        core_share = rng.uniform(0.25, 0.5)
        r_max = 0.85 * float(site.half_widths_mm.min())
        for _ in range(40):
            core = (core_share * 3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0)
            k_mm3 = _void_k_for_volume(volume, core)
            reach_xy = max(core, k_mm3 ** (1.0 / 3.0))
            reach_z = max(core, (2.0 * k_mm3) ** (1.0 / 3.0))
            if (
                reach_xy <= r_max
                and reach_z <= half_z_max
                and _fits(rs, site.centroid_mm, _surface_iron(k_mm3, core))
            ):
                break
            volume *= 0.85
        else:
            raise ConfigError(f"no void of {spec.n_voxels} voxels fits host {host.name}")
        centre = _slide(rs, site, _surface_iron(k_mm3, core), spec.position, rng)
        attenuation = _iron_attenuation(rs.affine, shape, centre, k_mm3, core)
        image = image * attenuation
        residual_scale = attenuation
        truth = {"loss": 1.0 - attenuation}
        info.update(
            core_radius_mm=core,
            dipole_constant_mm3=k_mm3,
            void_analytic_mm3=void_volume_mm3(k_mm3, core),
            inserted_volume_mm3=void_volume_mm3(k_mm3, core),
        )

    # Crop along S-I around the insert, with a random offset.
    c_index = np.linalg.solve(rs.affine[:3, :3], centre - rs.affine[:3, 3])
    touched = [t for t in truth.values() if t.any()]
    if touched:
        any_truth = np.any(np.stack([t > _TRUTH_FLOOR for t in touched]), axis=0)
        zs = np.flatnonzero(any_truth.any(axis=(0, 1)))
        z0, z1 = int(zs.min()) - 1, int(zs.max()) + 1
    else:
        # nothing inserted: the crop only has to hold the site's slice
        z0 = z1 = round(float(c_index[2]))
    first = max(k_lo, z1 - n_fov + 1)
    last = min(z0, k_hi - n_fov + 1)
    if last < first:
        raise ConfigError(
            f"the insert spans slices {z0}..{z1}, more than a field of view of {n_fov} slices"
        )
    start = int(rng.integers(first, last + 1))
    crop = (slice(None), slice(None), slice(start, start + n_fov))
    affine = np.array(rs.affine)
    affine[:3, 3] = _apply(rs.affine, np.array([[0.0, 0.0, float(start)]]))[0]
    image = image[crop]
    cord_crop = cord[crop]
    truth = {name: np.ascontiguousarray(t[crop]) for name, t in truth.items()}
    if residual_scale is not None:
        residual_scale = residual_scale[crop]
    signal = float(np.median(rs.image[crop][cord_crop]))
    noisy, noise_info = add_noise_to_snr(
        image,
        signal=signal,
        snr=spec.snr,
        residual_sigma=rs.residual_sigma,
        rng=rng,
        residual_scale=residual_scale,
    )
    info.update(noise_info)
    info.update(
        fov_mm=n_fov * sz,
        fov_requested_mm=spec.fov_mm,
        crop_start_slice=start,
        shape=list(noisy.shape),
        site_mm=[float(v) for v in centre],
        cord_slices_in_crop=int(cord_crop.any(axis=(0, 1)).sum()),
    )
    for name, t in truth.items():
        info[f"truth_{name}_pv_mm3"] = float(t.sum(dtype=np.float64)) * voxel
        info[f"truth_{name}_n_voxels"] = int(np.count_nonzero(t >= 0.5))
    return SyntheticImage(
        data=_readonly(noisy.astype(np.float32)),
        affine=_readonly(affine),
        spacing=rs.spacing,
        truth=MappingProxyType({k: _readonly(v) for k, v in truth.items()}),
        cord_manual=_readonly(np.ascontiguousarray(cord_crop)),
        site_mm=tuple(float(v) for v in centre),  # type: ignore[arg-type]
        info=info,
    )


def _t2_axes(
    in_plane: np.ndarray, volume: float, half_z_max: float, rotation: np.ndarray
) -> tuple[np.ndarray, float]:
    """Semi-axes (a, b, c) of an ellipsoid of ``volume`` with in-plane ``(a, b)``.

    Elongated along the cord (``c ≥ 1.2·max(a, b)``, in-plane axes shrunk if needed); its
    half-extent along scanner z (axes ``rotation``: the cord's tilt) at most ``half_z_max``
    (``c`` and the volume shrink if the in-plane axes cannot hold it).
    """
    a, b = (float(v) for v in in_plane)
    c = 3.0 * volume / (4.0 * np.pi * a * b)
    if c < 1.2 * max(a, b):
        # shrink a, b by s and grow c by 1/s² until c = 1.2·max(a, b)
        s = (c / (1.2 * max(a, b))) ** (1.0 / 3.0)
        a, b, c = a * s, b * s, c / s**2
    r = np.asarray(rotation, float)[2]
    room = half_z_max**2 - (r[0] * a) ** 2 - (r[1] * b) ** 2
    c_max = math.sqrt(max(room, 0.0)) / max(abs(r[2]), 1e-6)
    if c > c_max:
        c = max(c_max, 0.5 * min(a, b))
        volume = 4.0 / 3.0 * np.pi * a * b * c
    return np.array([a, b, c]), float(volume)


def _insert_t2(
    rs: ResampledHost,
    image: np.ndarray,
    centre: np.ndarray,
    semi: np.ndarray,
    site: _Site,
    spec: InsertSpec,
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, Any]]:
    shape = image.shape
    rotation = site.rotation
    cyst_semi = None
    cyst_shift = np.zeros(3)
    if spec.cyst:
        ratio = rng.uniform(0.35, 0.6)
        cyst_semi = semi * ratio
        if rng.uniform() < 0.5:  # towards one end of the graft, inside it
            sign = 1.0 if rng.uniform() < 0.5 else -1.0
            cyst_shift = sign * 0.9 * (semi[2] - cyst_semi[2]) * rotation[:, 2]

    def classes(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        graft = _in_ellipsoid(x, y, z, semi, rotation)
        if cyst_semi is None:
            return np.stack([graft, np.zeros_like(graft)]).astype(np.float32)
        cyst = graft & _in_ellipsoid(x, y, z, cyst_semi, rotation, cyst_shift)
        return np.stack([graft & ~cyst, cyst]).astype(np.float32)

    box = _box_around(rs.affine, shape, centre, float(semi.max()))
    assert box is not None
    fractions = _box_means(rs.affine, box, _truth_factors(rs.spacing), centre, classes)
    graft = np.zeros(shape)
    cyst = np.zeros(shape)
    graft[box], cyst[box] = fractions[0], fractions[1]
    touched = (graft + cyst) > 0
    zs = np.flatnonzero(touched.any(axis=(0, 1)))
    reach = math.ceil(2.0 / rs.spacing[2])
    slices = range(int(zs.min()) - reach, int(zs.max()) + reach + 1)
    levels = cord_and_csf_levels(
        rs.image, rs.cord, spacing=rs.spacing, slices=slices, exclude=touched
    )
    if levels.csf <= levels.cord:
        raise SegmentationError(
            f"the CSF around the cord of host {rs.host_name} ({levels.csf:.4g}) is not "
            f"brighter than the cord ({levels.cord:.4g}): a t2 graft needs a T2-weighted host",
            hint="use a T2w or T2*w host for t2 grafts",
        )
    tissue = levels.cord + spec.fraction * (levels.csf - levels.cord)
    amplitude = rng.uniform(0.05, 0.10) if spec.texture is None else float(spec.texture)
    white = rng.standard_normal(tuple(s.stop - s.start for s in box))
    smooth = ndimage.gaussian_filter(white, np.asarray(_TEXTURE_MM) / np.asarray(rs.spacing))
    smooth /= max(float(smooth.std()), 1e-12)
    texture = np.ones(shape)
    texture[box] = 1.0 + amplitude * smooth
    out = image + graft * (tissue * texture - levels.cord) + cyst * (levels.csf - levels.cord)
    info = {
        "fraction": spec.fraction,
        "cyst": spec.cyst,
        "cord_level": levels.cord,
        "csf_level": levels.csf,
        "csf_ring_median": levels.ring_median,
        "n_cord_level_voxels": levels.n_cord,
        "n_csf_level_voxels": levels.n_csf,
        "tissue_level": tissue,
        "texture_amplitude": amplitude,
        "cyst_semi_axes_mm": None if cyst_semi is None else cyst_semi.tolist(),
        "cyst_at_end": bool(np.any(cyst_shift)),
    }
    return np.clip(out, 0.0, None), {"graft": graft, "cyst": cyst}, info


def _iron_attenuation(
    affine: np.ndarray, shape: Sequence[int], centre: np.ndarray, k_mm3: float, core: float
) -> np.ndarray:
    """``|mean over sub-samples of (0 in the void, exp(iφ) outside)|`` per voxel (1 far away)."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    thickest = float(spacing.max())
    reach = (6.0 * k_mm3 * thickest / _PHASE_STEP_RAD) ** 0.25 if k_mm3 > 0 else 0.0
    reach = max(reach, core, (2.0 * k_mm3) ** (1.0 / 3.0)) + thickest
    out = np.ones(tuple(shape))
    box = _box_around(affine, shape, centre, reach)
    if box is None:
        return out

    def signal(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
        void = in_void_xyz(x, y, z, k_mm3, core)
        phase = dipole_phase_xyz(x, y, z, k_mm3)
        return np.where(void, 0.0, np.exp(1j * phase))

    out[box] = np.abs(_box_means(affine, box, _truth_factors(spacing), centre, signal))
    return np.clip(out, 0.0, 1.0)
