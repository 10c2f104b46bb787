"""Voxel-grid helpers shared by the synthesis: read-only arrays, affine points, sub-samples."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__: list[str] = []


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _sample_offsets(factors: Sequence[int]) -> np.ndarray:
    """Offsets (in voxels) of ``∏ factors`` sub-samples centred in a voxel, shape (n, 3)."""
    axes = [(np.arange(n) + 0.5) / n - 0.5 for n in factors]
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:3, :3].T + matrix[:3, 3]
