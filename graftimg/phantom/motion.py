"""Rigid motion of the subject between sessions (the grids stay fixed, the anatomy moves)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["RigidMotion", "random_motion"]


@dataclass(frozen=True)
class RigidMotion:
    """A rotation about a centre followed by a translation, in scanner mm and degrees.

    A point at scanner position ``w`` at the first session is at
    ``R·(w − centre) + centre + translation`` at this session, with ``R = Rz·Ry·Rx`` (rotations
    about the scanner x, then y, then z axes).

    Parameters
    ----------
    rotation_deg : (3,) tuple of float
        Rotations about scanner x (R-L), y (A-P) and z (S-I), in degrees.
    translation_mm : (3,) tuple of float
        Translation in mm.

    Examples
    --------
    >>> m = RigidMotion(rotation_deg=(0.0, 0.0, 90.0), translation_mm=(1.0, 0.0, 0.0))
    >>> m.apply(np.array([[1.0, 0.0, 0.0]]), center_mm=(0.0, 0.0, 0.0)).round(6).tolist()
    [[1.0, 1.0, 0.0]]
    """

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotation_deg", tuple(float(a) for a in self.rotation_deg))
        object.__setattr__(self, "translation_mm", tuple(float(a) for a in self.translation_mm))

    @property
    def rotation_matrix(self) -> np.ndarray:
        """The 3×3 rotation ``Rz·Ry·Rx``."""
        ax, ay, az = (math.radians(a) for a in self.rotation_deg)
        rx = np.array(
            [[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]]
        )
        ry = np.array(
            [[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]]
        )
        rz = np.array(
            [[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]]
        )
        return rz @ ry @ rx

    @property
    def angle_deg(self) -> float:
        """Total rotation angle in degrees."""
        cos = (np.trace(self.rotation_matrix) - 1.0) / 2.0
        return math.degrees(math.acos(min(1.0, max(-1.0, cos))))

    def matrix(self, center_mm) -> np.ndarray:
        """4×4 matrix mapping first-session scanner positions to this session's."""
        r = self.rotation_matrix
        c = np.asarray(center_mm, dtype=float)
        out = np.eye(4)
        out[:3, :3] = r
        out[:3, 3] = c - r @ c + np.asarray(self.translation_mm)
        return out

    def apply(self, points_mm, center_mm) -> np.ndarray:
        """Move ``(N, 3)`` first-session points to this session."""
        m = self.matrix(center_mm)
        return np.asarray(points_mm, dtype=float) @ m[:3, :3].T + m[:3, 3]


def random_motion(
    rng: np.random.Generator, *, max_rotation_deg: float, max_translation_mm: float
) -> RigidMotion:
    """Draw a motion whose total rotation and translation stay within the bounds.

    Each of the three angles and three shifts is uniform in ``±max/√3``.

    Examples
    --------
    >>> m = random_motion(np.random.default_rng(0), max_rotation_deg=3, max_translation_mm=2)
    >>> m.angle_deg <= 3 and float(np.linalg.norm(m.translation_mm)) <= 2
    True
    """
    k = 1.0 / math.sqrt(3.0)
    angles = rng.uniform(-1.0, 1.0, 3) * max_rotation_deg * k
    shift = rng.uniform(-1.0, 1.0, 3) * max_translation_mm * k
    return RigidMotion(
        rotation_deg=tuple(round(float(a), 4) for a in angles),
        translation_mm=tuple(round(float(t), 4) for t in shift),
    )
