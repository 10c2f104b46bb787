"""Time laws of the phantom: graft volume and iron amount against days since injection."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # laws of a spec's numbers; the spec module builds on them
    from graftimg.phantom.spec import PhantomSpec

__all__ = [
    "exponential_approach",
    "graft_volume_mm3",
    "iron_mass_ug",
]


def exponential_approach(days, initial, final, rate_per_day):
    """Return ``final + (initial − final)·exp(−rate·days)``.

    Parameters
    ----------
    days : float or ndarray
        Time since injection in days.
    initial, final : float
        Value at day 0 and the plateau.
    rate_per_day : float
        Decay rate λ in 1/day (half-life ``ln 2 / λ``).

    Returns
    -------
    float or ndarray

    Examples
    --------
    >>> round(float(exponential_approach(30.0, 100.0, 20.0, math.log(2) / 30.0)), 6)
    60.0
    """
    return final + (initial - final) * np.exp(-rate_per_day * np.asarray(days, dtype=float))


def graft_volume_mm3(spec: PhantomSpec, days: float) -> float:
    """Analytic graft volume in mm³ at ``days`` since injection.

    ``V(t) = V∞ + (V0 − V∞)·exp(−λ t)`` with the spec's ``graft_volume0_mm3``,
    ``graft_volume_inf_mm3`` and ``graft_rate_per_day``.

    Examples
    --------
    >>> from graftimg.phantom.spec import default_spec
    >>> graft_volume_mm3(default_spec("human", "t2"), 0.0)
    150.0
    """
    return float(
        exponential_approach(
            days, spec.graft_volume0_mm3, spec.graft_volume_inf_mm3, spec.graft_rate_per_day
        )
    )


def iron_mass_ug(spec: PhantomSpec, days: float) -> float:
    """Iron mass in µg at ``days`` since injection (0 in ``t2`` mode).

    ``m(t) = m0·(f + (1 − f)·exp(−λ_Fe t))`` with ``m0 = cells × pg/cell``: a fraction ``f``
    persists (iron from dead cells stays in macrophages).

    Examples
    --------
    >>> from graftimg.phantom.spec import default_spec
    >>> iron_mass_ug(default_spec("rodent", "iron"), 0.0)  # 50 000 cells x 1 pg
    0.05
    """
    if spec.mode != "iron":
        return 0.0
    m0 = spec.cells_injected * spec.iron_pg_per_cell * 1e-6  # pg -> µg
    f = spec.iron_persistent_fraction
    value = m0 * (f + (1.0 - f) * math.exp(-spec.iron_rate_per_day * float(days)))
    return float(round(value, 12))
