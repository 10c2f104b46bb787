"""Cysts in a ``t2`` graft: CSF-like cores, grown to where a voxel is more than half CSF.

The rules (core level, growth to the tissue–CSF midpoint, small cysts back to the graft, the
partial-volume shell of a cyst in normal cord) are set out in :mod:`graftimg.segment.graft`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from graftimg.morphology import cross as _cross
from graftimg.segment.graft.detection import FULL_CONNECTIVITY
from graftimg.segment.graft.params import GraftParams
from graftimg.segment.reference import ReferenceStats
from graftimg.spacing import fine_axes as _fine_axes

__all__: list[str] = []


def _cyst_core_level(
    data: np.ndarray,
    kept: np.ndarray,
    ref: ReferenceStats,
    csf: ReferenceStats,
    threshold: float,
    params: GraftParams,
    noise_sigma: float | None = None,
) -> tuple[float, float, set[str]]:
    """Level of cyst cores and of graft tissue: cores CSF-like by either rule, never below midway.

    Cores are never below the cord–CSF midpoint.

    ``min(μ_CSF − cyst_csf_k_sigma·σ_n, L + cyst_core_fraction·(μ_CSF − L))`` with ``L`` the
    graft tissue level (median of the kept voxels below ``μ_CSF − cyst_csf_k_sigma·σ_n``; the
    threshold when there are none) and ``σ_n`` the image's noise SD — the ring's own spread only
    when no noise estimate is given, because a real ring mixes CSF with partial volume, roots
    and dura (its spread was 0.57 of the cord level on the 1 mm T2w test scan against a noise
    SD of 0.05, which put the CSF-like level on graft tissue at 0.7 of CSF). NaN (no split)
    when CSF is not brighter than the graft threshold.
    """
    if csf.median <= threshold:
        return float("nan"), float("nan"), {"csf_contrast_low"}
    midpoint = 0.5 * (ref.median + csf.median)
    spread = float(noise_sigma) if noise_sigma else csf.sigma
    by_noise = csf.median - params.cyst_csf_k_sigma * spread
    # The graft tissue level: the kept voxels that are not CSF-like by the noise rule. (It used
    # to be those below the cord–CSF midpoint, which for tissue above the midpoint — graft at
    # 0.65 of the way to CSF, 0.77 of CSF — is its partial-volume rim, and put the cyst level
    # on the tissue.)
    tissue = kept & (data < by_noise)
    tissue_level = float(np.median(data[tissue])) if tissue.any() else threshold
    by_contrast = tissue_level + params.cyst_core_fraction * (csf.median - tissue_level)
    core_level = min(by_noise, by_contrast)
    if core_level < midpoint:
        return midpoint, tissue_level, {"csf_contrast_low"}
    return core_level, tissue_level, set()


def _split_cyst(
    data: np.ndarray,
    kept: np.ndarray,
    core_level: float,
    tissue_level: float,
    ref: ReferenceStats,
    csf: ReferenceStats,
    cord_window: np.ndarray,
    threshold: float,
    spacing: tuple[float, float, float],
    params: GraftParams,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Split CSF-like voxels off the t2 graft; return (cyst, partial-volume shell, level).

    Hysteresis, one cyst at a time. Cores are voxels at or above ``core_level`` (one is
    enough). A provisional cyst grows from them through kept voxels at or above its wall level:
    the cord–CSF midpoint, or the graft-tissue–CSF midpoint when the graft tissue
    (``tissue_level``) is brighter than the cord. Its surrounding tissue
    level is the median of the cord voxels two face-steps outside it along the fine axes (the
    first layer is still partly cyst; thick slices would reach far beyond the graft); the cyst
    is then regrown from its cores through kept voxels at or above the midpoint between that
    level and ``μ_CSF`` — more than half CSF under a linear mix. Cysts under
    ``min_component_volume_mm3`` return to the graft. The boundary level returned is that of
    the largest cyst (NaN when there is none).

    A cyst whose surrounding level is below the graft ``threshold`` sits in normal-appearing
    cord: the kept voxels touching it (26-neighbourhood) are then cord–CSF partial volume, not
    graft, and are returned as the shell to take out of the graft.
    """
    empty = np.zeros_like(kept)
    core = kept & (data >= core_level)
    if not core.any():
        return empty, empty, float("nan")
    # A provisional cyst must stop at its wall whatever surrounds it: half-way to CSF from the
    # normal cord, or from the graft tissue when that is brighter (graft at half the cord–CSF
    # contrast lies on the cord–CSF midpoint, and a 2 mm³ cyst inside it took all of it).
    wall = 0.5 * (ref.median + csf.median)
    if np.isfinite(tissue_level):
        wall = max(wall, 0.5 * (tissue_level + csf.median))
    lowest = min(wall, core_level)
    provisional = ndimage.binary_propagation(
        core, structure=FULL_CONNECTIVITY, mask=kept & (data >= lowest)
    )
    labels, _ = ndimage.label(provisional, structure=FULL_CONNECTIVITY)
    voxel_mm3 = float(np.prod(spacing))
    fine = _cross(_fine_axes(spacing))  # the ring stays within a few voxels of fine axes
    cyst = empty.copy()
    shell = empty.copy()
    best_size, best_level = 0, float("nan")
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        box = tuple(
            slice(max(b.start - 3, 0), min(b.stop + 3, n))
            for b, n in zip(box, data.shape, strict=True)
        )
        member = labels[box] == i
        inner = ndimage.binary_dilation(member, fine)
        outer = ndimage.binary_dilation(inner, fine)
        ring = outer & ~inner & cord_window[box] & ~provisional[box]
        values = data[box]
        # The tissue around the cyst: graft when a sixth of the ring is graft (a small graft
        # around a cyst leaves much of the ring in normal cord, whose level would then call
        # the graft around the cyst partial volume and take it away: on real anatomy a cyst
        # inside a thin graft lost 35 % of the graft with a third), else normal cord.
        in_graft = ring & kept[box]
        if ring.any() and in_graft.sum() >= ring.sum() / 6:
            surround = float(np.median(values[in_graft]))
        elif ring.any():
            surround = float(np.median(values[ring]))
        else:
            surround = ref.median
        level = min(0.5 * (surround + csf.median), core_level)
        grown = ndimage.binary_propagation(
            core[box] & member, structure=FULL_CONNECTIVITY, mask=kept[box] & (values >= level)
        )
        size = int(grown.sum())
        if size * voxel_mm3 >= params.min_component_volume_mm3:
            cyst[box] |= grown
            if surround < threshold:
                touching = ndimage.binary_dilation(grown, FULL_CONNECTIVITY) & ~grown
                shell[box] |= touching & kept[box]
            if size > best_size:
                best_size, best_level = size, level
    return cyst, shell & ~cyst, best_level
