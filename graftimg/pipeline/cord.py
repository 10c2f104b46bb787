"""The cord of one session, by one of three routes, in this order of preference.

(a) a mask the user gives (e.g. Spinal Cord Toolbox output), carried into the image's grid
    through scanner coordinates when its grid differs;
(b) a companion image of the same session (T2w or T1w): its cord is segmented, carried into this
    image's grid through scanner coordinates, and refined by a rigid registration around the
    cord when the acquisitions moved — the normal route for iron-mode T2*w;
(c) automatic on the image itself, with an optional seed for hard contrasts.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Any, Literal

import numpy as np

from graftimg.arrays import bounding_box
from graftimg.errors import SegmentationError
from graftimg.io.volume import Volume, load_volume

__all__ = ["CordResult", "cord_for_session", "resolve_contrast"]


@dataclasses.dataclass(frozen=True, eq=False)
class CordResult:
    """The cord mask of a session and how it was obtained.

    Attributes
    ----------
    mask : (X, Y, Z) ndarray of bool
        Cord mask in the session image's canonical grid.
    source : {'mask', 'companion', 'image'}
        Which route gave it.
    confidence : float
        1 for a user mask; the automatic segmentation's confidence otherwise.
    flags : tuple of str
        ``cord_uncertain`` and its reasons, ``cord_bends_around_abnormality``,
        ``cord_mask_resampled``, ``poor_registration``...
    csa_mm2 : (Z,) ndarray
        Cross-sectional area per axial slice of the canonical grid, mm².
    details : dict
        JSON-ready facts (contrast, method, registration numbers).
    """

    mask: np.ndarray
    source: Literal["mask", "companion", "image"]
    confidence: float
    flags: tuple[str, ...]
    csa_mm2: np.ndarray
    details: dict[str, Any]


def resolve_contrast(contrast: str, volume: Volume) -> str:
    """The contrast to segment ``volume`` with: explicit, or from its BIDS suffix."""
    from graftimg.segment.contrast import check_contrast, contrast_from_name

    if contrast != "auto":
        return check_contrast(contrast)
    if volume.source is None:
        raise SegmentationError(
            "contrast 'auto' needs a file name with a BIDS suffix",
            hint="pass --contrast t1|t2|t2s|mt",
        )
    return contrast_from_name(volume.source)


def _csa(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    return mask.sum(axis=(0, 1)) * spacing[0] * spacing[1]


def _same_grid(a: Volume, b: Volume) -> bool:
    return a.shape == b.shape and np.allclose(a.affine, b.affine, atol=1e-3)


def _carry(mask: np.ndarray, source: Volume, target: Volume, transform=None) -> np.ndarray:
    """Carry a mask from ``source``'s grid into ``target``'s through scanner coordinates."""
    from graftimg.register.resample import resample_mask

    # Fractional (linear on the float mask, ≥ 0.5): keeps position and footprint on
    # thick-slice targets; volumes are always measured in the native grid.
    return resample_mask(
        mask,
        source.affine,
        target.affine,
        target.shape,
        world_transform=transform,
        method="fractional",
    )


#: A registration correction that moves no cord voxel by more than this fraction of the finest
#: voxel size is no correction.
_NO_MOVE_VOXELS = 0.05


def _largest_move_mm(matrix: np.ndarray, volume: Volume, mask: np.ndarray) -> float:
    """Largest displacement, in mm, of a corner of the mask's box under a 4 × 4 world matrix.

    A rigid move is largest at a corner of the box.
    """
    ends = [(axis.start, axis.stop - 1) for axis in bounding_box(mask)]
    corners = np.array(list(itertools.product(*ends)))
    world = volume.voxel_to_world(corners)
    moved = world @ matrix[:3, :3].T + matrix[:3, 3]
    return float(np.linalg.norm(moved - world, axis=1).max())


#: A refinement whose cord-rim edge strength is within this fraction below the scanner carry's
#: still counts as at least as good (ties must not flip with float rounding).
_EDGE_TOLERANCE = 0.05


def _edge_strength(volume: Volume, mask: np.ndarray) -> float:
    """Mean image gradient (per unit of the image's median) on the in-plane rim of ``mask``."""
    from scipy import ndimage

    box = bounding_box(mask, 4)
    if box is None:
        return 0.0
    mask = mask[box]
    data = np.asarray(volume.data[box], dtype=np.float32)
    sigma = [min(volume.spacing) / s for s in volume.spacing]
    gradient = ndimage.gaussian_gradient_magnitude(data, sigma=sigma)
    inplane = np.zeros((3, 3, 3), dtype=bool)
    inplane[:, :, 1] = ndimage.generate_binary_structure(2, 1)
    rim = mask & ~ndimage.binary_erosion(mask, inplane)
    scale = float(np.median(data[mask])) or 1.0
    return float(gradient[rim].mean()) / scale


def cord_for_session(
    volume: Volume,
    *,
    cord_mask: str | os.PathLike | None = None,
    cord_from: str | os.PathLike | None = None,
    seed_voxel: tuple[float, float, float] | None = None,
    contrast: str = "auto",
    companion_contrast: str = "auto",
    scale: Literal["human", "rodent"] = "human",
    refine_registration: bool = True,
    load_options: dict[str, Any] | None = None,
) -> CordResult:
    """Get the cord of ``volume`` by the first route that is given.

    Parameters
    ----------
    volume : Volume
        The session image.
    cord_mask : path-like, optional
        Route (a): a binary cord mask file.
    cord_from : path-like, optional
        Route (b): a companion image of the same session (T2w/T1w).
    seed_voxel : tuple of 3 float, optional
        Route (c): one canonical voxel inside the cord.
    contrast, companion_contrast : str
        Contrast of the image and of the companion (``auto`` reads the BIDS suffix).
    scale : {'human', 'rodent'}
        Size priors of the automatic segmentation.
    refine_registration : bool
        Route (b): refine the companion's position by rigid registration around the cord.
    load_options : dict, optional
        Passed to :func:`load_volume` for the mask or companion.

    Returns
    -------
    CordResult
    """
    from graftimg.segment.cord import segment_cord

    opts = dict(load_options or {})
    spacing = volume.spacing
    if cord_mask is not None:
        given = load_volume(cord_mask, **opts)
        flags: list[str] = []
        if _same_grid(given, volume):
            mask = given.data > 0.5
        else:
            mask = _carry(given.data > 0.5, given, volume)
            flags.append("cord_mask_resampled")
        if not mask.any():
            raise SegmentationError(
                "the cord mask is empty in this image's field of view",
                path=cord_mask,
                hint="check that the mask belongs to this image",
            )
        return CordResult(
            mask, "mask", 1.0, tuple(flags), _csa(mask, spacing), {"cord_mask": str(cord_mask)}
        )

    if cord_from is not None:
        companion = load_volume(cord_from, **opts)
        comp_contrast = resolve_contrast(companion_contrast, companion)
        seg = segment_cord(
            companion.data, spacing=companion.spacing, contrast=comp_contrast, scale=scale
        )
        flags = list(seg.flags)
        details: dict[str, Any] = {
            "cord_from": str(cord_from),
            "companion_contrast": comp_contrast,
            "companion_confidence": seg.confidence,
            "method": seg.method,
        }
        transform = None
        mask = _carry(seg.mask, companion, volume)
        if refine_registration:
            # Mattes MI first; if it loses, normalised correlation (T2w and T2*w both have a
            # bright CSF ring around a darker cord; on rat cords at 0.1 mm Mattes diverged in
            # 4 of 10 phantom sessions, correlation in none). A refinement is kept only if the
            # cord–CSF edge is sharper under it than under the scanner-coordinate carry: two
            # images of one session agree in scanner coordinates to within the motion.
            edge_carried = _edge_strength(volume, mask)
            details["registration_edge_strength_scanner"] = edge_carried
            for metric in ("mattes", "correlation"):
                matrix, reg_details = _refine(volume, companion, mask, metric)
                details.update(reg_details)
                if matrix is None:
                    break
                if _largest_move_mm(matrix, volume, mask) < _NO_MOVE_VOXELS * min(volume.spacing):
                    # Below what registration can resolve: the images already agree in scanner
                    # coordinates. Carrying through a transform that differs from the identity
                    # only by float rounding flips every voxel whose centre lies half-way
                    # between the companion's (hundreds on grids offset by half a voxel), and a
                    # global gain of the image changes that rounding.
                    details["registration_edge_strength"] = edge_carried
                    details["registration_below_precision"] = True
                    break
                refined = _carry(seg.mask, companion, volume, matrix)
                edge_refined = _edge_strength(volume, refined)
                details["registration_edge_strength"] = edge_refined
                # Within 5 %: a tie (no motion), decided for the refinement whatever the
                # rounding; a diverged registration loses most of the edge (−80 to −90 %).
                kept = edge_refined >= (1.0 - _EDGE_TOLERANCE) * edge_carried
                if kept and not reg_details["registration_implausible"]:
                    transform, mask = matrix, refined
                    break
            if transform is None and "registration_edge_strength" in details:
                flags.append("poor_registration")
            details["registration_applied"] = transform is not None
        if not mask.any():
            raise SegmentationError(
                "the companion's cord does not overlap this image's field of view",
                path=cord_from,
                hint="check that both images are of the same session",
            )
        return CordResult(
            mask,
            "companion",
            float(seg.confidence),
            tuple(sorted(set(flags))),
            _csa(mask, spacing),
            details,
        )

    own = resolve_contrast(contrast, volume)
    seg = segment_cord(
        volume.data, spacing=spacing, contrast=own, seed_voxel=seed_voxel, scale=scale
    )
    details = {"contrast": own, "method": seg.method, **dict(seg.details)}
    if seed_voxel is not None:
        details["seed_voxel"] = [float(v) for v in seed_voxel]
    return CordResult(
        np.asarray(seg.mask, dtype=bool),
        "image",
        float(seg.confidence),
        tuple(seg.flags),
        np.asarray(seg.csa_mm2, dtype=float),
        details,
    )


def _refine(
    target: Volume,
    companion: Volume,
    carried: np.ndarray,
    metric: Literal["mattes", "correlation"] = "mattes",
):
    """Rigid registration of the companion onto the target around ``carried``.

    ``carried`` is the companion's cord already carried into the target's grid through scanner
    coordinates.
    """
    from scipy import ndimage

    from graftimg.register.rigid import register_rigid

    if not carried.any():
        return None, {"registration": "skipped: cord outside the target's field of view"}
    # Metric mask: the carried cord dilated by 5 mm (human) / 1 mm (rodent). A margin that only
    # reaches through the CSF ring lets the optimiser settle on anti-correlated fits.
    human = min(target.spacing) >= 0.25
    margin_mm = 5.0 if human else 1.0
    distance = ndimage.distance_transform_edt(~carried, sampling=target.spacing)
    metric_mask = distance <= margin_mm
    center = target.voxel_to_world(np.argwhere(carried).mean(axis=0))
    # In units of the target's cord level: a global gain of the target then changes nothing
    # but float rounding (the metric's histogram bins and the optimiser's steps follow the
    # intensity scale).
    level = float(np.median(target.data[carried])) or 1.0
    reg = register_rigid(
        np.asarray(target.data, dtype=np.float64) / level,
        target.affine,
        companion.data,
        companion.affine,
        fixed_mask=metric_mask,
        center_mm=center,
        metric=metric,
    )
    # Within one session the subject moves a few mm at most; a larger correction means the
    # optimiser followed something else (a human cord is ~10 mm across, a rat's ~3 mm).
    max_shift_mm = 15.0 if human else 4.0
    shift = np.linalg.norm(reg.map_points(center) - center)
    implausible = bool(shift > max_shift_mm or reg.rotation_deg > 15.0)
    details = {
        "registration": f"rigid, {metric}, cord-masked",
        "registration_cord_shift_mm": float(shift),
        "registration_correlation": float(reg.correlation),
        "registration_translation_mm": [float(v) for v in reg.translation_mm],
        "registration_rotation_deg": float(reg.rotation_deg),
        "registration_flags": list(reg.flags),
        # Cross-contrast (T2w → T2*w) correlation is low even when aligned: only the
        # registration's own failure flags count.
        "registration_implausible": implausible,
    }
    return reg.world_matrix, details
