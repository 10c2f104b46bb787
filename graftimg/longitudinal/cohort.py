"""A cohort of subjects: median half-life with its interval, optional mixed-effects model.

With few subjects (four in a first-in-human trial) the per-subject curves are the result; the
cohort numbers describe them. The median half-life's 95 % interval is a percentile bootstrap over
subjects (seeded, so reports are reproducible). The mixed model, ``log V_ij = (β0 + b0_i) +
(β1 + b1_i) · t_ij + ε_ij`` with a random intercept and slope per subject (Laird & Ware,
*Biometrics* 1982;38:963), is fitted with statsmodels' ``MixedLM`` when statsmodels is installed;
otherwise it is ``None`` with the reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from graftimg.longitudinal.survival import SubjectSurvival

__all__ = ["CohortSummary", "cohort_summary", "mixed_effects_log_volume"]


@dataclasses.dataclass(frozen=True)
class CohortSummary:
    """What a cohort's subjects say together (one graft mode)."""

    mode: str
    n_subjects: int
    n_with_half_life: int
    median_half_life_days: float | None
    median_half_life_ci95_days: tuple[float, float] | None
    median_plateau_fraction: float | None
    mixed_model: dict[str, Any] | None
    mixed_model_reason: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = dataclasses.asdict(self)
        ci = self.median_half_life_ci95_days
        out["median_half_life_ci95_days"] = None if ci is None else list(ci)
        return out


def _median_ci(values: np.ndarray, *, n_boot: int, seed: int) -> tuple[float, float] | None:
    if values.size < 2:
        return None
    rng = np.random.default_rng(seed)
    draws = rng.choice(values, size=(n_boot, values.size), replace=True)
    low, high = np.percentile(np.median(draws, axis=1), [2.5, 97.5])
    return float(low), float(high)


def mixed_effects_log_volume(
    subjects: Sequence[SubjectSurvival],
) -> tuple[dict[str, Any] | None, str | None]:
    """Random intercept and slope model of log graft volume over days since t_ref.

    Returns
    -------
    model : dict or None
        ``slope_per_day``, ``slope_ci95``, ``half_life_days`` (from the fixed slope, None when
        it does not fall), ``n_subjects``, ``n_sessions``.
    reason : str or None
        Why there is no model.
    """
    if importlib.util.find_spec("statsmodels") is None:
        return None, "statsmodels is not installed (pip install statsmodels)"
    rows = [
        (s.timeline.subject, ses.t_days, math.log(ses.point.volume_mm3))
        for s in subjects
        for ses in s.sessions
        if ses.used_in_fit and ses.point.volume_mm3 and ses.point.volume_mm3 > 0
    ]
    groups = sorted({r[0] for r in rows})
    if len(groups) < 3:
        return None, "the mixed model needs at least 3 subjects with sessions after t_ref"
    import statsmodels.api as sm

    group = np.array([r[0] for r in rows])
    t = np.array([r[1] for r in rows], dtype=float)
    y = np.array([r[2] for r in rows], dtype=float)
    exog = sm.add_constant(t)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sm.MixedLM(y, exog, groups=group, exog_re=exog).fit(reml=True)
    except (np.linalg.LinAlgError, ValueError) as err:
        return None, f"the mixed model did not fit: {err}"
    slope = float(model.fe_params[1])
    low, high = (float(v) for v in np.asarray(model.conf_int())[1])
    return {
        "slope_per_day": slope,
        "slope_ci95": [low, high],
        "half_life_days": math.log(2) / -slope if slope < 0 else None,
        "n_subjects": len(groups),
        "n_sessions": len(rows),
        "converged": bool(model.converged),
    }, None


def cohort_summary(
    subjects: Sequence[SubjectSurvival], *, n_boot: int = 2000, seed: int = 0
) -> list[CohortSummary]:
    """Summaries of a cohort, one per graft mode present.

    Examples
    --------
    >>> cohort_summary([])
    []
    """
    out = []
    for mode in sorted({s.timeline.mode for s in subjects}):
        group = [s for s in subjects if s.timeline.mode == mode]
        half = np.array(
            [s.fit.half_life_days for s in group if s.fit.half_life_days is not None], dtype=float
        )
        plateau = [s.fit.plateau_fraction for s in group if s.fit.plateau_fraction is not None]
        mixed, reason = mixed_effects_log_volume(group)
        out.append(
            CohortSummary(
                mode=mode,
                n_subjects=len(group),
                n_with_half_life=int(half.size),
                median_half_life_days=float(np.median(half)) if half.size else None,
                median_half_life_ci95_days=_median_ci(half, n_boot=n_boot, seed=seed),
                median_plateau_fraction=float(np.median(plateau)) if plateau else None,
                mixed_model=mixed,
                mixed_model_reason=reason,
            )
        )
    return out
