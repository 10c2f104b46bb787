"""The whole synthesis of one validation image: resample, place, insert, crop, add noise."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import numpy as np

from graftimg.errors import ConfigError
from graftimg.phantom.motion import random_motion
from graftimg.validation.insert.grid import _apply, _readonly
from graftimg.validation.insert.host import HostScan, resample_host
from graftimg.validation.insert.iron import place_iron
from graftimg.validation.insert.noise import add_noise_to_snr
from graftimg.validation.insert.placement import _local_site
from graftimg.validation.insert.spec import InsertSpec, SyntheticImage
from graftimg.validation.insert.t2 import place_t2

__all__ = ["MAX_HALF_LENGTH_MM", "synthesize"]

#: Largest half-length of an insert along the cord, in mm.
MAX_HALF_LENGTH_MM = 12.0
#: Truth values below this count as "not touched" when the crop is placed (1 % of a voxel, or
#: 1 % signal loss in the far dephasing halo of an iron deposit).
_TRUTH_FLOOR = 1e-2


def synthesize(host: HostScan, spec: InsertSpec) -> SyntheticImage:
    """Make one validation image of ``host``: resample, insert, crop, add noise.

    See :mod:`graftimg.validation.insert` for each step. The same host and spec give the same
    arrays.

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
    volume = float(spec.n_voxels) * voxel
    place = place_iron if spec.mode == "iron" else place_t2
    placed = place(rs, site, spec, volume=volume, half_z_max=half_z_max, rng=rng)
    image, truth, centre = placed.image, placed.truth, placed.centre_mm
    residual_scale = placed.residual_scale
    info.update(placed.info)

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
