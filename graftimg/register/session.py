"""Register a session to the subject's baseline in a box around the cord at the injection site.

Follow-up sessions are aligned to the baseline only near the graft: the cord moves relative to
the vertebrae with neck flexion, so a whole-image rigid fit trades accuracy at the injection
site for agreement in the neck and the skull base, and it spends its time on voxels that do not
matter. :func:`register_session`

1. builds the **metric mask** (:func:`site_metric_mask`): the cord, grown by ``rim_mm`` in the
   plane (the cord, the CSF ring around it and a rim of the canal wall beyond it: the cord/CSF
   and CSF/dura boundaries are the edges the metric aligns), kept within ``±half_length_mm`` of
   the injection site along the cord's local axis. The bare cord is a poor mask: its inside is
   almost flat, and with its border outside the mask the optimiser has nothing to hold on to
   (1.4–1.9 mm off on a clinical sagittal T2w, flagged ``poor_registration``);
2. crops the baseline to the box around that mask and the session to the same box grown by the
   motion it may have (:func:`graftimg.register.rigid.register_rigid`), so that the pyramid
   smooths and shrinks a few hundred thousand voxels instead of millions;
3. runs a rigid (6-DOF) SimpleITK registration centred on the site (3 levels, a fixed sample
   budget drawn with a fixed seed) and scores it by the correlation of the two images inside
   the mask; below 0.8 the result carries the flag ``poor_registration``.

Registration only carries positions (the injection site, masks) between sessions; volumes are
always measured in each session's own grid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage

from graftimg.errors import DimensionError, SegmentationError
from graftimg.register.resample import _check_affine
from graftimg.register.rigid import RigidRegistration, register_rigid

__all__ = [
    "SessionRegistration",
    "SiteRegion",
    "check_same_grid",
    "register_session",
    "save_registration",
    "site_metric_mask",
]

#: Defaults per scale: half length of the box along the cord, in-plane rim around the cord and
#: motion allowed beyond the box (mm). Human: a 10–13 mm cord, a 2–4 mm CSF ring; a 10 mm rim
#: reaches through the CSF to the dura and the canal wall (on clinical-size phantom pairs whose
#: graft shrank between sessions, a 7 mm rim left 0.1–0.7 mm at the site, 10 mm ≤ 0.1 mm).
#: Rat: a 3 mm cord, a sub-millimetre ring.
SCALE_DEFAULTS: dict[str, dict[str, float]] = {
    "human": {"half_length_mm": 20.0, "rim_mm": 10.0, "moving_margin_mm": 10.0},
    "rodent": {"half_length_mm": 5.0, "rim_mm": 2.0, "moving_margin_mm": 3.0},
}


@dataclass(frozen=True, eq=False)
class SiteRegion:
    """The metric mask around the injection site and how it was built.

    Attributes
    ----------
    mask : (X, Y, Z) ndarray of bool
        Metric mask in the fixed grid.
    site_mm : tuple of 3 float
        Injection site (fixed world, RAS mm): the centre of the box and of rotation.
    axis : tuple of 3 float
        Unit vector of the cord's local axis at the site (RAS).
    half_length_mm, rim_mm : float
        Extent along the cord on each side of the site, and growth of the cord in the plane.
    """

    mask: np.ndarray
    site_mm: tuple[float, float, float]
    axis: tuple[float, float, float]
    half_length_mm: float
    rim_mm: float


def _spacing(affine: np.ndarray) -> np.ndarray:
    return np.linalg.norm(affine[:3, :3], axis=0)


def _world(affine: np.ndarray, index: np.ndarray) -> np.ndarray:
    return index @ affine[:3, :3].T + affine[:3, 3]


def site_metric_mask(
    cord_mask: np.ndarray,
    affine: np.ndarray,
    site_mm: Sequence[float] | None = None,
    *,
    half_length_mm: float = 20.0,
    rim_mm: float = 10.0,
) -> SiteRegion:
    """The cord, its CSF and a rim, within ``±half_length_mm`` of the site along the cord.

    Parameters
    ----------
    cord_mask : (X, Y, Z) ndarray of bool
        Cord mask in the fixed image's grid.
    affine : (4, 4) ndarray
        Its voxel → RAS mm affine.
    site_mm : sequence of 3 float, optional
        Injection site (RAS mm). Default: the cord voxel nearest the middle of the cord.
    half_length_mm : float, optional
        Half length of the region along the cord's local axis (principal axis of the cord
        voxels within this distance of the site). Default 20 mm (human); 5 mm suits a rat.
    rim_mm : float, optional
        Euclidean growth of the cord (mm): it must reach through the CSF ring to the canal
        wall. Default 10 mm (human); 2 mm suits a rat.

    Returns
    -------
    SiteRegion

    Raises
    ------
    DimensionError
        The mask is not 3D.
    SegmentationError
        The cord mask is empty, or no cord lies within ``half_length_mm`` of the site.

    Examples
    --------
    >>> cord = np.zeros((30, 30, 80), dtype=bool)
    >>> cord[13:17, 13:17, :] = True
    >>> region = site_metric_mask(cord, np.eye(4), (15, 15, 40), half_length_mm=10, rim_mm=3)
    >>> [round(abs(a), 3) for a in region.axis]
    [0.0, 0.0, 1.0]
    >>> bool(region.mask[15, 15, 50]), bool(region.mask[15, 15, 51]), bool(region.mask[10, 15, 40])
    (True, False, True)
    """
    cord = np.asarray(cord_mask, dtype=bool)
    if cord.ndim != 3:
        raise DimensionError(f"expected a 3D cord mask, got shape {cord.shape}")
    if not cord.any():
        raise SegmentationError("the cord mask is empty", hint="check the cord segmentation")
    affine = _check_affine(affine, "affine")
    spacing = _spacing(affine)
    if site_mm is None:
        site = _middle_of_cord(cord, affine)
    else:
        site = np.asarray(site_mm, dtype=np.float64).reshape(3)
    # Work in the box that can hold the region: the EDT of a whole clinical image costs ~1 s.
    reach = math.hypot(half_length_mm, rim_mm) + rim_mm + 2.0 * float(spacing.max())
    inverse = np.linalg.inv(affine)
    centre = inverse[:3, :3] @ site + inverse[:3, 3]
    half = np.abs(inverse[:3, :3]) @ np.full(3, reach)
    low = np.clip(np.floor(centre - half).astype(int), 0, cord.shape)
    high = np.clip(np.ceil(centre + half).astype(int) + 1, 0, cord.shape)
    box = tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))
    sub = cord[box]
    points = _world(affine, np.argwhere(sub) + low) if sub.any() else np.empty((0, 3))
    near = points[np.linalg.norm(points - site, axis=1) <= half_length_mm]
    if len(near) < 3:
        raise SegmentationError(
            f"no cord within {half_length_mm:g} mm of the site {tuple(np.round(site, 2))} "
            "(RAS mm)",
            hint="check the injection coordinates and that the cord mask is in the same space",
        )
    axis = np.linalg.svd(near - near.mean(axis=0), full_matrices=False)[2][0]
    axis = axis if axis[np.argmax(np.abs(axis))] > 0 else -axis
    distance = ndimage.distance_transform_edt(~sub, sampling=spacing)
    # Signed distance along the axis, summed axis by axis: (A·v + t − site)·axis.
    weights = affine[:3, :3].T @ axis
    along = np.float64((affine[:3, 3] - site) @ axis)
    for dim, (a, b) in enumerate(zip(low, high, strict=True)):
        shape = [1, 1, 1]
        shape[dim] = int(b - a)
        along = along + (weights[dim] * np.arange(a, b)).reshape(shape)
    region = (distance <= rim_mm) & (np.abs(along) <= half_length_mm)
    mask = np.zeros(cord.shape, dtype=bool)
    mask[box] = region
    return SiteRegion(
        mask=mask,
        site_mm=tuple(float(v) for v in site),  # type: ignore[arg-type]
        axis=tuple(float(v) for v in axis),  # type: ignore[arg-type]
        half_length_mm=float(half_length_mm),
        rim_mm=float(rim_mm),
    )


def _middle_of_cord(cord: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The cord voxel nearest the middle of the cord's extent along its principal axis."""
    points = _world(affine, np.argwhere(cord).astype(np.float64))
    centre = points.mean(axis=0)
    axis = np.linalg.svd(points - centre, full_matrices=False)[2][0]
    along = (points - centre) @ axis
    middle = centre + axis * 0.5 * (along.min() + along.max())
    return points[np.argmin(np.linalg.norm(points - middle, axis=1))]


def check_same_grid(shape, affine, grid_shape, grid_affine, *, name: str, path=None) -> None:
    """Refuse a mask that is not on the fixed image's grid.

    Parameters
    ----------
    shape, affine : tuple and (4, 4) ndarray
        The mask's grid.
    grid_shape, grid_affine : tuple and (4, 4) ndarray
        The fixed image's grid.
    name : str
        What the mask is, for the message.
    path : str or path-like, optional
        The mask's file, named in the error.

    Raises
    ------
    DimensionError
        Shapes differ or the affines differ by more than 1e-3 mm.

    Examples
    --------
    >>> check_same_grid((2, 2, 2), np.eye(4), (2, 2, 2), np.eye(4), name="mask")
    >>> check_same_grid((2, 2, 3), np.eye(4), (2, 2, 2), np.eye(4), name="mask")
    Traceback (most recent call last):
    ...
    graftimg.errors.DimensionError: the mask is not on FIXED's grid (shape (2, 2, 3), ...
    """
    if tuple(shape) != tuple(grid_shape) or not np.allclose(affine, grid_affine, atol=1e-3):
        raise DimensionError(
            f"the {name} is not on FIXED's grid (shape {tuple(shape)}, FIXED {tuple(grid_shape)})",
            path=path,
            hint="resample it into FIXED's grid first",
        )


@dataclass(frozen=True, eq=False)
class SessionRegistration:
    """A session registered to the baseline: the transform, its quality and how it was made.

    Attributes
    ----------
    registration : RigidRegistration
        Transform (fixed world → moving world, RAS mm), rotation, translation at the site,
        metric value, correlation inside the mask and flags (``poor_registration``).
    mask_kind : {'site', 'given', 'none'}
        ``'site'``: cord + CSF + rim near the site (:func:`site_metric_mask`); ``'given'``: the
        caller's mask; ``'none'``: the whole image.
    site_mm : tuple of 3 float or None
        Injection site in the fixed world (RAS mm), the centre of rotation.
    site_in_moving_mm : tuple of 3 float or None
        The same anatomical point in the moving image's world.
    half_length_mm, rim_mm : float or None
        Extent of a ``'site'`` mask.
    mask_voxels : int
        Voxels of the metric mask (of the whole fixed image without one).
    elapsed_s : float
        Wall time of the registration (mask, crop and optimisation).
    """

    registration: RigidRegistration
    mask_kind: Literal["site", "given", "none"]
    site_mm: tuple[float, float, float] | None
    site_in_moving_mm: tuple[float, float, float] | None
    half_length_mm: float | None
    rim_mm: float | None
    mask_voxels: int
    elapsed_s: float

    @property
    def flags(self) -> tuple[str, ...]:
        """The registration's flags (``poor_registration``)."""
        return self.registration.flags

    def record(self) -> dict[str, Any]:
        """JSON-ready record (the ``_xfm.json`` of ``graftimg register`` without provenance).

        Examples
        --------
        >>> from graftimg.register.rigid import RigidRegistration
        >>> reg = RigidRegistration(np.eye(4), (0, 0, 0), 0.0, (0, 0, 0), "mattes", -1, 1, 1, "")
        >>> rec = SessionRegistration(reg, "none", None, None, None, None, 8, 0.1).record()
        >>> rec["rotation_deg"], rec["flags"], rec["metric_mask"]["kind"]
        (0.0, [], 'none')
        """
        reg = self.registration

        def number(value):  # JSON has no NaN: an undefined correlation is null
            return float(value) if math.isfinite(value) else None

        def listed(values):
            return None if values is None else [number(v) for v in values]

        return {
            "world_matrix_fixed_to_moving_ras_mm": np.asarray(reg.world_matrix).tolist(),
            "center_mm": listed(reg.center_mm),
            "rotation_deg": float(reg.rotation_deg),
            "translation_mm": listed(reg.translation_mm),
            "metric": reg.metric,
            "metric_value": number(reg.metric_value),
            "correlation": number(reg.correlation),
            "n_iterations": int(reg.n_iterations),
            "stop_condition": reg.stop_condition,
            "flags": list(reg.flags),
            "site_mm": listed(self.site_mm),
            "site_in_moving_mm": listed(self.site_in_moving_mm),
            "metric_mask": {
                "kind": self.mask_kind,
                "half_length_mm": self.half_length_mm,
                "rim_mm": self.rim_mm,
                "voxels": int(self.mask_voxels),
            },
            "elapsed_s": float(self.elapsed_s),
        }


#: Settings of the box registration: 3 levels, at most 10 000 metric samples per level (drawn
#: with a fixed seed), a first step of one voxel shortened by 0.8 at each turn of the gradient,
#: stopping below a hundredth of a voxel or after 50 iterations per level (the fine level
#: takes 15–35), and the moving image's gradient taken at the samples (see
#: :func:`graftimg.register.rigid.register_rigid`).
_BOX_SETTINGS: dict[str, Any] = {
    "shrink_factors": (4, 2, 1),
    "smoothing_voxels": (2.0, 1.0, 0.0),
    "max_samples": 10_000,
    "learning_rate_voxels": 1.0,
    "min_step_voxels": 1e-2,
    "relaxation": 0.8,
    "n_iterations": 50,
    "moving_gradient_filter": False,
}


def register_session(
    fixed,
    moving,
    *,
    cord_mask: np.ndarray | None = None,
    metric_mask: np.ndarray | None = None,
    site_mm: Sequence[float] | None = None,
    metric: Literal["mattes", "correlation"] = "mattes",
    scale: Literal["auto", "human", "rodent"] = "auto",
    half_length_mm: float | None = None,
    rim_mm: float | None = None,
    min_correlation: float = 0.8,
) -> SessionRegistration:
    """Rigidly register a session (``moving``) to the baseline (``fixed``) near the site.

    Parameters
    ----------
    fixed, moving : Volume
        The baseline and the session (:class:`graftimg.io.volume.Volume`, or anything with
        ``data``, ``affine`` and ``shape``).
    cord_mask : (X, Y, Z) ndarray of bool, optional
        Cord in the fixed grid: the metric mask is then the cord + CSF + rim within
        ``±half_length_mm`` of the site (:func:`site_metric_mask`) — the fast, accurate way.
    metric_mask : (X, Y, Z) ndarray of bool, optional
        A ready metric mask in the fixed grid, used as it is (both images are still cropped
        around it). Ignored when ``cord_mask`` is given.
    site_mm : sequence of 3 float, optional
        Injection site (fixed world, RAS mm): centre of the region and of rotation. Default:
        the middle of the cord (with ``cord_mask``), the mask's centroid, or the image centre.
    metric : {'mattes', 'correlation'}, optional
        Mattes mutual information (any contrasts) or normalised correlation (same contrast).
    scale : {'auto', 'human', 'rodent'}, optional
        Picks the defaults of ``half_length_mm`` and ``rim_mm`` (20 / 10 mm human, 5 / 2 mm
        rodent) and of the motion allowed (10 / 3 mm). ``'auto'``: rodent when the fixed
        image's finest voxel is below 0.25 mm.
    half_length_mm, rim_mm : float, optional
        Override the region's extent (see :func:`site_metric_mask`).
    min_correlation : float, optional
        Below this correlation inside the mask, the flag ``poor_registration`` is set.

    Returns
    -------
    SessionRegistration

    Raises
    ------
    DimensionError
        A mask is not on the fixed grid.
    SegmentationError
        Empty masks, no cord near the site, or SimpleITK fails (the images do not overlap).

    Examples
    --------
    A smooth texture moved by 1.5 mm along x, registered around a 4 mm "cord":

    >>> from scipy import ndimage
    >>> from graftimg.io.volume import Volume
    >>> texture = ndimage.gaussian_filter(np.random.default_rng(0).normal(size=(40, 40, 60)), 2)
    >>> fixed = Volume.from_array(texture.astype(np.float32), spacing=(1.0, 1.0, 1.0))
    >>> moving = fixed.with_data(ndimage.shift(texture, (1.5, 0, 0), order=3).astype(np.float32))
    >>> x, y, z = np.mgrid[:40, :40, :60]
    >>> cord = np.hypot(x - 20, y - 20) < 4
    >>> result = register_session(fixed, moving, cord_mask=cord, site_mm=(20, 20, 30))
    >>> np.round(result.site_in_moving_mm, 1).tolist(), result.flags
    ([21.5, 20.0, 30.0], ())
    """
    t0 = time.perf_counter()
    fixed_data = np.asarray(fixed.data)
    fixed_affine = np.asarray(fixed.affine, dtype=np.float64)
    if scale == "auto":
        finest = float(_spacing(fixed_affine).min())
        scale = "rodent" if finest < 0.25 else "human"
    defaults = SCALE_DEFAULTS[scale]
    half = defaults["half_length_mm"] if half_length_mm is None else float(half_length_mm)
    rim = defaults["rim_mm"] if rim_mm is None else float(rim_mm)
    kind: Literal["site", "given", "none"]
    if cord_mask is not None:
        check_same_grid(
            np.shape(cord_mask), fixed_affine, fixed_data.shape, fixed_affine, name="cord mask"
        )
        region = site_metric_mask(
            cord_mask, fixed_affine, site_mm, half_length_mm=half, rim_mm=rim
        )
        mask, site, kind = region.mask, region.site_mm, "site"
    elif metric_mask is not None:
        check_same_grid(
            np.shape(metric_mask), fixed_affine, fixed_data.shape, fixed_affine, name="mask"
        )
        mask, kind = np.asarray(metric_mask, dtype=bool), "given"
        site = None if site_mm is None else tuple(float(v) for v in site_mm)
        half = rim = None  # type: ignore[assignment]
    else:
        mask, kind = None, "none"
        site = None if site_mm is None else tuple(float(v) for v in site_mm)
        half = rim = None  # type: ignore[assignment]
    settings: dict[str, Any] = {}
    if mask is not None:
        settings = {**_BOX_SETTINGS, "moving_margin_mm": defaults["moving_margin_mm"]}
    reg = register_rigid(
        fixed_data,
        fixed_affine,
        np.asarray(moving.data),
        np.asarray(moving.affine, dtype=np.float64),
        fixed_mask=mask,
        center_mm=site,
        metric=metric,
        min_correlation=min_correlation,
        **settings,
    )
    centre = site if site is not None else reg.center_mm
    mask_voxels = int(fixed_data.size) if mask is None else int(np.count_nonzero(mask))
    return SessionRegistration(
        registration=reg,
        mask_kind=kind,
        site_mm=tuple(float(v) for v in centre),  # type: ignore[arg-type]
        site_in_moving_mm=tuple(float(v) for v in reg.map_points(np.asarray(centre))),  # type: ignore[arg-type]
        half_length_mm=half,
        rim_mm=rim,
        mask_voxels=mask_voxels,
        elapsed_s=time.perf_counter() - t0,
    )


def save_registration(
    result: SessionRegistration,
    fixed,
    moving,
    out_prefix: str | Path,
    *,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the moving image resampled into the fixed grid and the transform record.

    Parameters
    ----------
    result : SessionRegistration
        From :func:`register_session`.
    fixed, moving : Volume
        The volumes that were registered (``fixed`` gives the output grid and header).
    out_prefix : str or Path
        Writes ``{out_prefix}_space-fixed.nii.gz`` and ``{out_prefix}_xfm.json``, each
        atomically (a failure leaves no half-written file).
    provenance : dict, optional
        Stored under ``"provenance"`` in the JSON.

    Returns
    -------
    dict of str to Path
        ``{"image": ..., "json": ...}``.
    """
    from graftimg.io.atomic import write_json_atomic
    from graftimg.io.volume import save_like
    from graftimg.register.resample import resample_to_grid

    prefix = Path(out_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    resampled = resample_to_grid(
        np.asarray(moving.data),
        moving.affine,
        fixed.affine,
        fixed.shape,
        world_transform=result.registration.world_matrix,
    )
    image_path = Path(f"{prefix}_space-fixed.nii.gz")
    save_like(resampled.astype(np.float32), fixed, image_path, description="graftimg register")
    record = {**result.record(), "resampled_moving": image_path.name}
    if provenance is not None:
        record["provenance"] = provenance
    json_path = write_json_atomic(Path(f"{prefix}_xfm.json"), record)
    return {"image": image_path, "json": Path(json_path)}
