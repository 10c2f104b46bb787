"""Graft voxels around the injection site, in ``iron`` and ``t2`` modes.

Every decision is relative to the statistics of normal-appearing cord
(:func:`graftimg.segment.graft_reference.graft_free_reference`: median ``μ`` and ``σ``, the
larger of ``1.4826·MAD`` and the one-sided spread on the graft's side, ``(Q97.5 − μ)/1.96`` in
t2 and ``(μ − Q2.5)/1.96`` in iron, from cord that is demonstrably not graft), so a global
intensity gain changes no result and a lower ``k`` never gives a smaller graft. The one-sided
spread matters in t2: grey matter is brighter than white matter, the MAD follows the
white-matter majority, and at SNR ≥ 20 ``μ + 3·MAD`` reaches grey matter. When no trustworthy
reference exists the result carries ``reference_unreliable`` and empty masks: the volume is
then not measured (``null``), never 0.

``iron`` (T2*w/GRE/SWI, iron-labelled cells)
    Voids are detected as voxels darker than ``μ − kσ`` at least ``iron_edge_mm`` inside the
    cord within the window ``|s| ≤ L``; a void continues into the cord's edge layer and the
    ring one voxel beyond (blooming reaches past the cord), but nothing is detected there on
    its own (dark tissue hugging the cord would pass for a thin void). The edge then moves to
    half contrast (``iron_boundary``).
``t2`` (T2w, unlabelled cells)
    Graft = voxels brighter than ``μ + kσ`` inside the cord within the window, its edge at half
    contrast (``t2_boundary``). The outer layer of the cord mask (one voxel in-plane) is left
    out of the search, because CSF partial volume makes it bright all along the cord; it is
    added back only where it touches a kept graft component and is itself above threshold.
    CSF-like voxels are split off as **cyst**:

    - cyst cores are CSF-like voxels: ``≥ μ_CSF − 2σ_n`` (σ_n the image's noise SD), where
      ``μ_CSF`` is the bright mode of a ring just outside the cord
      (:func:`graftimg.segment.reference.csf_stats`), or at least 75 % of the way from the
      graft tissue level to ``μ_CSF`` (a small cyst in thick slices has no pure-CSF voxel: a
      0.1 mm³ rodent cyst peaked at 93 % of CSF); the core level is never allowed below the
      cord–CSF midpoint ``(μ + μ_CSF)/2`` (flag ``csf_contrast_low`` when it had to be
      raised); a single core voxel is enough;
    - cores grow, through 26-connected graft voxels, into every voxel at or above the midpoint
      between the level of the tissue around that cyst (graft or normal cord: the median two
      face-steps outside it along the fine axes) and ``μ_CSF``. A voxel there is more than
      half CSF when it mixes tissue and CSF linearly, so the binary cyst volume is unbiased by
      partial volume at its wall;
    - cysts smaller than ``min_component_volume_mm3`` return to the graft;
    - a cyst in normal-appearing cord (the tissue around it is below the graft threshold) has
      a rim of cord–CSF partial-volume voxels above the threshold; they belong to neither mask.

    The midpoint rule is not used without cores: oedema and graft tissue reach 0.6–0.85 of CSF
    on T2w, so bright tissue with no CSF-like voxel stays tissue. T2w alone cannot tell oedema
    at ≥ 0.9 of CSF from a cyst (Karthik et al., Radiol AI 2024); it is counted as cyst.

Common steps (:func:`graftimg.segment.graft_components.detect_components`): a clean-up that
removes noise specks and one-voxel threads but keeps anything two voxels across, hole filling
slice by slice, connected components with 26-connectivity; a component is **kept** when it is at
least ``min_component_volume_mm3`` and its nearest voxel (as a box) lies within
``site_distance_mm`` of the injection site (distance 0 when one of its voxels holds the site).
Optional region growing (SimpleITK ``ConnectedThreshold`` or ``ConfidenceConnected``) from the
deepest graft voxel is off by default.

The same chain runs at ``k + 1`` and ``k − 1`` for the uncertainty band's low and high masks
(``graft_mask_low``, ``graft_mask_high``: named by the end of the volume band they give,
docs/conventions.md); the cyst (and its rim) found at ``k`` is removed from all three, so
``low ⊆ graft ⊆ high``.

The input should be bias-corrected (N4): thresholds are global within the window, so a residual
bias along the cord of a few σ shifts them. Methods and their validation: docs/methods.md and
docs/validation.md.

Modules: :mod:`~graftimg.segment.graft.params` (:class:`GraftParams`),
:mod:`~graftimg.segment.graft.results` (:class:`GraftLevels`, :class:`GraftSegmentation`),
:mod:`~graftimg.segment.graft.segment` (:func:`segment_graft`, the chain both modes share),
:mod:`~graftimg.segment.graft.detection` (regions, components, half-contrast edges),
:mod:`~graftimg.segment.graft.strategy` with one strategy per mode
(:mod:`~graftimg.segment.graft.iron`, :mod:`~graftimg.segment.graft.t2` and its
:mod:`~graftimg.segment.graft.cyst`), and :mod:`~graftimg.segment.graft.refine` (region
growing).
"""

from graftimg.segment.graft.params import GraftParams
from graftimg.segment.graft.results import GraftLevels, GraftSegmentation
from graftimg.segment.graft.segment import segment_graft
from graftimg.segment.graft_components import GraftComponent

__all__ = [
    "GraftComponent",
    "GraftLevels",
    "GraftParams",
    "GraftSegmentation",
    "segment_graft",
]
