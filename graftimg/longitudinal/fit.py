"""Fit a graft's volume decay and give 95 % intervals that the data can support.

Model (``exponential_plateau``, 4 or more sessions)::

    V(t) = V∞ + (V0 − V∞) · exp(−λ t),   t½ = ln 2 / λ,   plateau fraction p = V∞ / V0

with ``t`` in days since the reference session, bounds ``λ ≥ 0`` and ``0 ≤ V∞ ≤ V0``. Each
session's volume has a standard uncertainty ``σ_i`` taken from its low/high band
(:func:`graftimg.longitudinal.uncertainty.sigma_from_band`); the fit is weighted least squares,
i.e. the Gaussian likelihood with those σ.

Intervals are by **profile likelihood** (Venzon & Moolgavkar, *Appl Stat* 1988;37:87; Raue et
al., *Bioinformatics* 2009;25:1923): written as ``V(t) = V0 · (p + (1 − p) e^{−λt})`` the model is
linear in ``V0`` for fixed ``(p, λ)``, so χ² is minimised exactly over ``V0`` on a grid of
``p ∈ [0, 1]`` × ``t½`` (log-spaced from span/1000 to 100 × span of the sessions). The profile of
``t½`` is the minimum over ``p`` and that of ``p`` the minimum over ``t½``; the 95 % interval
holds the values whose profile is within ``χ²₁(0.95) · c`` of the best, where
``c = max(1, χ²_min / (n − 3))`` widens the interval when the sessions scatter more than their
bands say. An interval that reaches the longest half-life of the grid is open (upper bound
``None``): the data cannot rule out that the graft does not shrink.

With 2 or 3 sessions the fallback is ``log_linear``: weighted least squares of ``log V`` on ``t``
(σ of ``log V`` = σ_i / V_i), normal interval of the slope (``c`` as above with ``n − 2``), no
plateau. Fewer than 2 usable sessions, or no volume above zero, give no fit: ``model = None``
and the reason.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from graftimg.errors import DimensionError

__all__ = ["DecayFit", "decay_curve", "fit_decay"]

#: Sessions needed for the exponential model with a plateau (three parameters).
MIN_SESSIONS_EXPONENTIAL = 4
_LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class DecayFit:
    """Result of :func:`fit_decay`.

    Attributes
    ----------
    model : str or None
        ``exponential_plateau``, ``log_linear``, or None when no fit is possible.
    half_life_days : float or None
        None when there is no fit or the volume does not fall.
    half_life_ci95_days : tuple (low, high) or None
        ``high`` is None when the data cannot bound it (no decay is compatible with them).
    plateau_fraction : float or None
        ``V∞ / V0`` (``exponential_plateau`` only).
    plateau_ci95 : tuple (low, high) or None
    v0_mm3, v_inf_mm3 : float or None
        Fitted volume at ``t = 0`` (the reference session) and the plateau.
    n_sessions : int
        Sessions used.
    interval_method : str
        How the intervals were made.
    chi2, dof : float, int
        Weighted residual sum of squares at the best fit and its degrees of freedom.
    scatter_factor : float
        ``c``: how much the intervals were widened for excess scatter (1 = the bands explain it).
    reason : str or None
        Why ``model`` is None or a quantity is None.
    """

    model: str | None
    half_life_days: float | None = None
    half_life_ci95_days: tuple[float, float | None] | None = None
    plateau_fraction: float | None = None
    plateau_ci95: tuple[float, float] | None = None
    v0_mm3: float | None = None
    v_inf_mm3: float | None = None
    n_sessions: int = 0
    interval_method: str = ""
    chi2: float | None = None
    dof: int = 0
    scatter_factor: float = 1.0
    reason: str | None = None

    def curve(self, t_days: np.ndarray) -> np.ndarray | None:
        """The fitted volume at ``t_days`` since the reference session (None without a fit)."""
        return decay_curve(self, t_days)


def decay_curve(fit: DecayFit, t_days: np.ndarray) -> np.ndarray | None:
    """Volume predicted by ``fit`` at ``t_days`` since the reference session.

    Examples
    --------
    >>> fit = DecayFit("exponential_plateau", half_life_days=10.0, v0_mm3=100.0, v_inf_mm3=20.0)
    >>> decay_curve(fit, np.array([0.0, 10.0])).round(1).tolist()
    [100.0, 60.0]
    """
    t = np.asarray(t_days, dtype=float)
    if fit.model is None or fit.v0_mm3 is None:
        return None
    lam = 0.0 if fit.half_life_days is None else _LN2 / fit.half_life_days
    v_inf = fit.v_inf_mm3 or 0.0
    return v_inf + (fit.v0_mm3 - v_inf) * np.exp(-lam * t)


def _interval(values: np.ndarray, inside: np.ndarray) -> tuple[float, float]:
    return float(values[inside].min()), float(values[inside].max())


def _refine(
    t: np.ndarray, v: np.ndarray, s: np.ndarray, v0: float, p: float, half_life: float
) -> tuple[float, float, float]:
    """Polish the grid's best point by bounded least squares (kept only when it is better)."""

    def residuals(x: np.ndarray) -> np.ndarray:
        g = x[1] + (1.0 - x[1]) * np.exp(-_LN2 / np.exp(x[2]) * t)
        return (v - x[0] * g) / s

    start = np.array([v0, p, math.log(half_life)])
    if v0 <= 0:
        return v0, p, half_life
    span = float(np.ptp(t))
    lower = [0.0, 0.0, math.log(span / 1000.0)]
    upper = [np.inf, 1.0, math.log(span * 100.0)]
    start = np.clip(start, lower, upper)
    try:
        found = optimize.least_squares(residuals, start, bounds=(lower, upper))
    except (ValueError, np.linalg.LinAlgError):
        return v0, p, half_life
    if found.success and (found.fun**2).sum() <= (residuals(start) ** 2).sum():
        return float(found.x[0]), float(found.x[1]), float(math.exp(found.x[2]))
    return v0, p, half_life


def _fit_exponential(t: np.ndarray, v: np.ndarray, s: np.ndarray, level: float) -> DecayFit:
    n = t.size
    span = float(t.max() - t.min())
    half_lives = np.geomspace(span / 1000.0, span * 100.0, 400)
    fractions = np.linspace(0.0, 1.0, 201)
    w = 1.0 / s**2
    decay = np.exp(-(_LN2 / half_lives)[:, None] * t[None, :])  # (H, N)
    g = fractions[None, :, None] + (1.0 - fractions[None, :, None]) * decay[:, None, :]
    v0 = np.clip((w * v * g).sum(-1) / (w * g * g).sum(-1), 0.0, None)  # (H, P)
    chi2 = (w * (v - v0[..., None] * g) ** 2).sum(-1)
    best_h, best_p = np.unravel_index(int(chi2.argmin()), chi2.shape)
    chi2_min = float(chi2[best_h, best_p])
    dof = n - 3
    scatter = max(1.0, chi2_min / dof) if dof > 0 else 1.0
    threshold = float(stats.chi2.ppf(level, 1)) * scatter
    in_h = chi2.min(axis=1) - chi2_min <= threshold
    in_p = chi2.min(axis=0) - chi2_min <= threshold
    h_low, h_high = _interval(half_lives, in_h)
    reason = None
    if in_h[-1]:
        h_high_out: float | None = None
        reason = "the sessions are compatible with no decay: the half-life has no upper bound"
    else:
        h_high_out = h_high
    if in_h[0]:
        h_low = 0.0
    v0_best, p_best, half_life_best = _refine(
        t, v, s, float(v0[best_h, best_p]), float(fractions[best_p]), float(half_lives[best_h])
    )
    half_life: float | None = half_life_best
    if v0_best <= 0.0:
        return DecayFit(None, n_sessions=n, reason="no graft volume above zero to fit")
    if p_best >= 0.999 or (in_h[-1] and best_h == half_lives.size - 1):
        half_life = None
        reason = "the fitted volume does not fall: no half-life"
    return DecayFit(
        model="exponential_plateau",
        half_life_days=half_life,
        half_life_ci95_days=(h_low, h_high_out),
        plateau_fraction=p_best,
        plateau_ci95=_interval(fractions, in_p),
        v0_mm3=v0_best,
        v_inf_mm3=p_best * v0_best,
        n_sessions=n,
        interval_method=(
            "profile likelihood (chi-square 1 dof, 95 %) over a (plateau, half-life) grid, "
            "weights from each session's volume band"
        ),
        chi2=chi2_min,
        dof=dof,
        scatter_factor=scatter,
        reason=reason,
    )


def _fit_log_linear(t: np.ndarray, v: np.ndarray, s: np.ndarray, level: float) -> DecayFit:
    keep = v > 0
    t, v, s = t[keep], v[keep], s[keep]
    n = t.size
    if n < 2:
        return DecayFit(
            None,
            n_sessions=n,
            reason="fewer than 2 sessions with a graft volume above zero after the acute window",
        )
    y = np.log(v)
    w = (v / s) ** 2
    x_mean = float((w * t).sum() / w.sum())
    sxx = float((w * (t - x_mean) ** 2).sum())
    if sxx <= 0:
        return DecayFit(None, n_sessions=n, reason="all usable sessions are on the same day")
    slope = float((w * (t - x_mean) * y).sum() / sxx)
    intercept = float((w * y).sum() / w.sum()) - slope * x_mean
    chi2 = float((w * (y - intercept - slope * t) ** 2).sum())
    dof = n - 2
    scatter = max(1.0, chi2 / dof) if dof > 0 else 1.0
    z = float(stats.norm.ppf(0.5 + level / 2))
    half_width = z * math.sqrt(scatter / sxx)
    lam, lam_low, lam_high = -slope, -slope - half_width, -slope + half_width
    ci: tuple[float, float | None] | None
    reason = None
    if lam_high <= 0:
        half_life, ci = None, None
        reason = "the volume does not fall between the sessions: no half-life"
    else:
        half_life = _LN2 / lam if lam > 0 else None
        ci = (_LN2 / lam_high, _LN2 / lam_low if lam_low > 0 else None)
        if lam_low <= 0:
            reason = "the sessions are compatible with no decay: the half-life has no upper bound"
        if half_life is None:
            reason = "the fitted volume does not fall: no half-life"
    return DecayFit(
        model="log_linear",
        half_life_days=half_life,
        half_life_ci95_days=ci,
        v0_mm3=math.exp(intercept),
        v_inf_mm3=None,
        n_sessions=n,
        interval_method="normal interval of the weighted log-linear slope",
        chi2=chi2,
        dof=dof,
        scatter_factor=scatter,
        reason=reason or "the log-linear model (fewer than 4 sessions) has no plateau",
    )


def fit_decay(
    t_days: Sequence[float],
    volumes_mm3: Sequence[float],
    sigmas_mm3: Sequence[float],
    *,
    level: float = 0.95,
    min_sessions_exponential: int = MIN_SESSIONS_EXPONENTIAL,
) -> DecayFit:
    """Fit the decay of graft volume over time, with intervals.

    Parameters
    ----------
    t_days : sequence of float
        Days since the reference session (t_ref), one per session.
    volumes_mm3 : sequence of float
        Measured volumes (native grid of each session).
    sigmas_mm3 : sequence of float
        Standard uncertainty of each volume (> 0).
    level : float
        Interval coverage.
    min_sessions_exponential : int
        Fewer sessions than this use the log-linear model.

    Returns
    -------
    DecayFit

    Examples
    --------
    >>> t = np.array([0.0, 7, 21, 35, 63, 105])
    >>> v = 20 + 80 * np.exp(-t / 30)
    >>> fit = fit_decay(t, v, 0.05 * v)
    >>> fit.model, round(fit.half_life_days, 0), round(fit.plateau_fraction, 2)
    ('exponential_plateau', 21.0, 0.2)
    >>> fit_decay([0.0], [10.0], [1.0]).reason
    'fewer than 2 sessions after the acute window'
    """
    t = np.asarray(t_days, dtype=float)
    v = np.asarray(volumes_mm3, dtype=float)
    s = np.asarray(sigmas_mm3, dtype=float)
    if not (t.shape == v.shape == s.shape):
        raise DimensionError(
            f"t_days, volumes_mm3 and sigmas_mm3 have lengths {t.shape}, {v.shape}, {s.shape}",
            hint="give one value per session in each",
        )
    finite = np.isfinite(t) & np.isfinite(v) & np.isfinite(s) & (s > 0)
    t, v, s = t[finite], v[finite], s[finite]
    if t.size < 2:
        return DecayFit(
            None, n_sessions=int(t.size), reason="fewer than 2 sessions after the acute window"
        )
    if not np.any(v > 0):
        return DecayFit(
            None,
            n_sessions=int(t.size),
            reason="no graft volume above zero after the acute window",
        )
    if np.ptp(t) <= 0:
        return DecayFit(
            None, n_sessions=int(t.size), reason="all usable sessions are on the same day"
        )
    if t.size < min_sessions_exponential:
        return _fit_log_linear(t, v, s, level)
    return _fit_exponential(t, v, s, level)
