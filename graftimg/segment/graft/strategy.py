"""What differs between the contrast modes: one :class:`ModeStrategy` per mode.

:func:`graftimg.segment.graft.segment_graft` runs the same chain for both modes (reference,
thresholds at ``k`` and ``k ± band``, components, optional region growing, edges, classes,
levels, flags) and asks the mode's strategy at each step where they differ: where to look, how
to check the reference, where the edge lies, what is split off, what a voxel entirely graft
looks like, and which flags only that mode raises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from graftimg.modes import Mode
from graftimg.segment.graft.detection import Regions, Scene
from graftimg.segment.graft.params import GraftParams
from graftimg.segment.reference import ReferenceStats

__all__ = ["ClassSplit", "ModeStrategy"]


@dataclass(frozen=True, eq=False)
class ClassSplit:
    """Voxels of the graft at ``k`` that belong to another class (t2: cyst).

    Attributes
    ----------
    cyst : (X, Y, Z) ndarray of bool
        Cyst voxels.
    not_graft : (X, Y, Z) ndarray of bool
        Voxels taken out of every graft mask: the cyst and, for a cyst in normal cord, its
        partial-volume shell.
    grow_threshold : float
        The cyst boundary level (NaN without a cyst).
    full : float
        Level of a voxel entirely cyst (NaN without a cyst).
    """

    cyst: np.ndarray
    not_graft: np.ndarray
    grow_threshold: float = float("nan")
    full: float = float("nan")


class ModeStrategy(ABC):
    """The steps of graft segmentation that depend on the contrast mode.

    The defaults are those of a mode with nothing to split off and no extra levels; iron and t2
    (:mod:`graftimg.segment.graft.iron`, :mod:`graftimg.segment.graft.t2`) override them.
    """

    mode: ClassVar[Mode]

    @abstractmethod
    def look(
        self, cord: np.ndarray, *, spacing: tuple[float, float, float], params: GraftParams
    ) -> np.ndarray:
        """Where the graft-free reference looks for abnormal tissue to leave out."""

    def reference(
        self,
        image: np.ndarray,
        cord: np.ndarray,
        s: np.ndarray,
        ref: ReferenceStats,
        *,
        spacing: tuple[float, float, float],
        params: GraftParams,
    ) -> tuple[ReferenceStats, ReferenceStats | None, set[str]]:
        """Check the normal-cord reference; return it, a CSF reference (or None) and flags."""
        return ref, None, set()

    @abstractmethod
    def regions(
        self,
        cord: np.ndarray,
        s: np.ndarray,
        *,
        spacing: tuple[float, float, float],
        params: GraftParams,
    ) -> Regions:
        """Where graft voxels are looked for, around the site (``s`` centred on it)."""

    def tissue_levels(self, scene: Scene, kept: np.ndarray) -> tuple[float, float, set[str]]:
        """Level of cyst cores and of graft tissue, from the graft at ``k`` (NaN: none)."""
        return float("nan"), float("nan"), set()

    def refine_seeds(self, scene: Scene, kept: np.ndarray, core_level: float) -> np.ndarray:
        """The voxels region growing starts from (the graft at ``k`` by default)."""
        return kept

    @abstractmethod
    def move_edges(
        self, scene: Scene, kept: dict[str, np.ndarray], core_level: float
    ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """Move the edges of the three masks; return them and the support mask (or None)."""

    def split(
        self, scene: Scene, kept: np.ndarray, core_level: float, tissue_level: float
    ) -> ClassSplit:
        """Voxels of the graft at ``k`` that are another class (nothing by default)."""
        empty = np.zeros_like(kept)
        return ClassSplit(cyst=empty, not_graft=empty)

    @abstractmethod
    def full_level(self, scene: Scene, graft: np.ndarray) -> tuple[float, str, set[str]]:
        """Level of a voxel entirely graft, where it comes from, and flags about it."""

    def graft_flags(self, scene: Scene, graft: np.ndarray, full: float) -> set[str]:
        """Flags only this mode raises about a non-empty graft (none by default)."""
        return set()
