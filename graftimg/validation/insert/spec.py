"""What to make of a host (:class:`InsertSpec`) and what comes out (:class:`SyntheticImage`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from graftimg.errors import ConfigError
from graftimg.modes import Mode

__all__ = ["InsertSpec", "Placed", "SyntheticImage"]

#: What is inserted: a graft of one of the modes, or nothing (a control).
InsertMode = Mode | Literal["none"]
Position = Literal["centre", "offcentre", "edge"]


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


@dataclasses.dataclass(frozen=True, eq=False)
class Placed:
    """An insert put into the resampled host, before the crop and the noise.

    Attributes
    ----------
    image : (X, Y, Z) ndarray of float64
        The host with the insert (noise-free insert; the host keeps its own noise).
    truth : dict of str to ndarray
        Partial-volume truth maps (see :class:`SyntheticImage`).
    centre_mm : (3,) ndarray
        The insert's centre, scanner mm.
    info : dict
        JSON-ready record of the insert's choices, in the order they are made.
    residual_scale : ndarray or None
        Per-voxel factor on the host noise left in the image (the signal kept in an iron void).
    """

    image: np.ndarray
    truth: dict[str, np.ndarray]
    centre_mm: np.ndarray
    info: dict[str, Any]
    residual_scale: np.ndarray | None = None


@dataclasses.dataclass
class _Site:
    """Local cord geometry at the insert's centre slice (target grid)."""

    k: int
    centroid_mm: np.ndarray
    rotation: np.ndarray  # columns: e1 (≈ R-L), e2 (≈ A-P), e3 (along the cord)
    half_widths_mm: np.ndarray  # along e1, e2
