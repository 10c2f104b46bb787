"""Smooth multiplicative bias field: the exponential of a low-order Legendre polynomial."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["BiasField"]


def _legendre(x: np.ndarray, order: int) -> list[np.ndarray]:
    values = [np.ones_like(x), x]
    for n in range(1, order):
        values.append(((2 * n + 1) * x * values[n] - n * values[n - 1]) / (n + 1))
    return values[: order + 1]


def _terms(order: int) -> list[tuple[int, int, int]]:
    return [t for t in itertools.product(range(order + 1), repeat=3) if 0 < sum(t) <= order]


@dataclass(frozen=True, eq=False)
class BiasField:
    """Multiplicative field ``b = (1 + amplitude)^L`` with ``L`` a Legendre polynomial in [−1, 1].

    The field lives in scanner coordinates (the coil does not move with the subject), so the
    T2w and T2*w of one session share it. ``L`` is normalised so that its largest magnitude on
    the cube ``center ± scale`` is 1: the factor spans ``[1/(1+a), 1+a]``.

    Parameters
    ----------
    coefficients : (n_terms,) ndarray
        One coefficient per Legendre product ``P_i(x)P_j(y)P_k(z)`` with ``0 < i+j+k <= order``.
    order : int
        Polynomial order.
    center_mm : (3,) tuple of float
        Centre of the normalisation cube (scanner mm).
    scale_mm : float
        Half-size of the cube; coordinates beyond it are clamped.
    amplitude : float
        0.3 gives a field between 0.77 and 1.3.

    Examples
    --------
    >>> field = BiasField.random(np.random.default_rng(1), center_mm=(0, 0, 0), scale_mm=50.0)
    >>> b = field(np.random.default_rng(2).uniform(-50, 50, (1000, 3)))
    >>> bool(b.min() >= 1 / 1.3 - 1e-9 and b.max() <= 1.3 + 1e-9 and b.max() > 1.1)
    True
    """

    coefficients: np.ndarray
    order: int
    center_mm: tuple[float, float, float]
    scale_mm: float
    amplitude: float
    norm: float = 1.0

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        *,
        center_mm,
        scale_mm: float,
        order: int = 3,
        amplitude: float = 0.3,
        posterior_gain: float = 1.0,
    ) -> BiasField:
        """Draw coefficients ~ N(0, 1/(1+i+j+k)) plus a posterior-to-anterior fall-off.

        ``posterior_gain`` adds ``−gain·y`` to the log field (a spine coil behind the subject:
        posterior is brighter).
        """
        terms = _terms(order)
        coefficients = np.array([rng.normal(0.0, 1.0 / (1 + sum(t))) for t in terms])
        if order >= 1:
            coefficients[terms.index((0, 1, 0))] -= posterior_gain
        field = cls(
            coefficients=coefficients,
            order=order,
            center_mm=tuple(float(c) for c in center_mm),
            scale_mm=float(scale_mm),
            amplitude=float(amplitude),
        )
        grid = np.linspace(-1.0, 1.0, 9)
        cube = np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
        peak = float(np.abs(field._log_polynomial(cube)).max())
        object.__setattr__(field, "norm", peak if peak > 0 else 1.0)
        field.coefficients.setflags(write=False)
        return field

    def _log_polynomial(self, unit_points: np.ndarray) -> np.ndarray:
        px, py, pz = (_legendre(unit_points[:, a], self.order) for a in range(3))
        out = np.zeros(len(unit_points))
        for c, (i, j, k) in zip(self.coefficients, _terms(self.order), strict=True):
            out += c * px[i] * py[j] * pz[k]
        return out

    def __call__(self, points_mm) -> np.ndarray:
        """Field value at ``(N, 3)`` scanner points."""
        pts = np.asarray(points_mm, dtype=float)
        if self.amplitude == 0 or self.order == 0:
            return np.ones(len(pts))
        unit = np.clip((pts - np.asarray(self.center_mm)) / self.scale_mm, -1.0, 1.0)
        level = np.clip(self._log_polynomial(unit) / self.norm, -1.0, 1.0)
        return np.exp(level * math.log1p(self.amplitude))
