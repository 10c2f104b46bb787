"""One subject's graft survival: reference session, survival fractions, fit and flags.

Survival fraction ``f(t) = V(t) / V(t_ref)``, with ``t_ref`` the first measured session at or
after the end of the acute window (7 days after injection in rodents, 14 in humans, or as
configured): earlier sessions are inflated by oedema and haemorrhage. The decay is fitted on the
sessions from ``t_ref`` on (:func:`graftimg.longitudinal.fit.fit_decay`), with ``t`` counted from
``t_ref``. In ``iron`` mode a session whose protocol differs from the reference session (echo
time, field, voxel size) is left out of the fit, since the void's volume scales with them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from graftimg.longitudinal.fit import DecayFit, fit_decay
from graftimg.longitudinal.flags import (
    ConfounderFlag,
    FlagSettings,
    confounder_flags,
    flag_names,
    voxel_volume_mm3,
)
from graftimg.longitudinal.timeline import SessionPoint, Timeline
from graftimg.longitudinal.uncertainty import minimum_detectable_change, sigma_from_band

__all__ = [
    "ACUTE_WINDOW_DAYS",
    "SessionSurvival",
    "SubjectSurvival",
    "SurvivalSettings",
    "analyse_subject",
]

#: Default end of the acute window after injection, in days, per scale.
ACUTE_WINDOW_DAYS = {"rodent": 7.0, "human": 14.0}


@dataclasses.dataclass(frozen=True)
class SurvivalSettings:
    """How a subject's survival is analysed.

    Attributes
    ----------
    acute_window_days : float or None
        Sessions before this day are in the acute window; None: 7 (rodent) or 14 (human),
        14 when the scale is unknown.
    level : float
        Interval coverage.
    flags : FlagSettings
        Thresholds of the confounder flags.
    """

    acute_window_days: float | None = None
    level: float = 0.95
    flags: FlagSettings = dataclasses.field(default_factory=FlagSettings)

    def window(self, scale: str | None) -> float:
        """The acute window in days for a subject of this scale."""
        if self.acute_window_days is not None:
            return float(self.acute_window_days)
        return ACUTE_WINDOW_DAYS.get(scale or "", ACUTE_WINDOW_DAYS["human"])


@dataclasses.dataclass(frozen=True)
class SessionSurvival:
    """One session in the survival analysis."""

    point: SessionPoint
    t_days: float | None
    sigma_mm3: float | None
    survival_fraction: float | None
    survival_fraction_low: float | None
    survival_fraction_high: float | None
    mdc_mm3: float | None
    change_detectable: bool | None
    used_in_fit: bool
    flags: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        p = self.point
        return {
            "session": p.session,
            "days": p.days,
            "days_since_reference": self.t_days,
            "graft_volume_mm3": p.volume_mm3,
            "graft_volume_low_mm3": p.low_mm3,
            "graft_volume_high_mm3": p.high_mm3,
            "graft_volume_sigma_mm3": self.sigma_mm3,
            "graft_volume_null_reason": p.null_reason,
            "survival_fraction": self.survival_fraction,
            "survival_fraction_low": self.survival_fraction_low,
            "survival_fraction_high": self.survival_fraction_high,
            "minimum_detectable_change_mm3": self.mdc_mm3,
            "change_from_reference_detectable": self.change_detectable,
            "used_in_fit": self.used_in_fit,
            "flags": list(self.flags),
        }


@dataclasses.dataclass(frozen=True)
class SubjectSurvival:
    """The survival analysis of one subject (one graft mode)."""

    timeline: Timeline
    acute_window_days: float
    reference: SessionPoint | None
    sessions: tuple[SessionSurvival, ...]
    fit: DecayFit
    flags: tuple[ConfounderFlag, ...]

    @property
    def flag_names(self) -> list[str]:
        """Distinct names of every flag (session and subject)."""
        return flag_names(self.flags)

    def to_json(self) -> dict[str, Any]:
        """The content of ``sub-X_survival.json`` (without provenance)."""
        fit = self.fit

        def pair(value: tuple | None) -> list | None:
            return None if value is None else list(value)

        return {
            "participant_id": f"sub-{self.timeline.subject}",
            "mode": self.timeline.mode,
            "scale": self.timeline.scale,
            "acute_window_days": self.acute_window_days,
            "reference_session": None if self.reference is None else self.reference.session,
            "reference_days": None if self.reference is None else self.reference.days,
            "model": fit.model,
            "half_life_days": fit.half_life_days,
            "half_life_ci95_days": pair(fit.half_life_ci95_days),
            "plateau_fraction": fit.plateau_fraction,
            "plateau_ci95": pair(fit.plateau_ci95),
            "v0_mm3": fit.v0_mm3,
            "v_inf_mm3": fit.v_inf_mm3,
            "n_sessions": len(self.sessions),
            "n_sessions_used": fit.n_sessions,
            "interval_method": fit.interval_method,
            "fit_chi2": fit.chi2,
            "fit_dof": fit.dof,
            "fit_scatter_factor": fit.scatter_factor,
            "fit_note": fit.reason,
            "flags": self.flag_names,
            "flag_details": [f.to_json() for f in self.flags],
            "sessions": [s.to_json() for s in self.sessions],
        }


def _sigma(point: SessionPoint) -> float | None:
    if point.volume_mm3 is None:
        return None
    return sigma_from_band(
        point.volume_mm3, point.low_mm3, point.high_mm3, floor_mm3=voxel_volume_mm3(point)
    )


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or not reference:
        return None
    return value / reference


def analyse_subject(
    timeline: Timeline,
    *,
    settings: SurvivalSettings | None = None,
    companion: Timeline | None = None,
) -> SubjectSurvival:
    """Survival fractions, decay fit with intervals, and confounder flags of one subject.

    Parameters
    ----------
    timeline : Timeline
        The subject's sessions (one graft mode).
    settings : SurvivalSettings, optional
    companion : Timeline, optional
        The same subject in the other graft mode (for ``label_persistence``).

    Returns
    -------
    SubjectSurvival

    Examples
    --------
    >>> import numpy as np
    >>> days = [3.0, 14.0, 21.0, 35.0, 49.0, 77.0, 119.0]
    >>> volumes = [150.0] + [20 + 80 * np.exp(-(d - 14) / 30) for d in days[1:]]
    >>> points = [SessionPoint(f"{i:02d}", d, v, 0.95 * v, 1.05 * v)
    ...           for i, (d, v) in enumerate(zip(days, volumes), 1)]
    >>> result = analyse_subject(Timeline("01", "t2", tuple(points), scale="human"))
    >>> result.reference.session, result.fit.model, round(result.fit.half_life_days)
    ('02', 'exponential_plateau', 21)
    >>> result.flag_names
    ['acute_window']
    """
    settings = settings or SurvivalSettings()
    window = settings.window(timeline.scale)
    reference = next(
        (
            p
            for p in timeline.points
            if p.measured and p.days is not None and p.days >= window and p.volume_mm3
        ),
        None,
    )
    flags = confounder_flags(
        timeline,
        reference=reference,
        acute_window_days=window,
        companion=companion,
        settings=settings.flags,
    )
    ref_sigma = None if reference is None else _sigma(reference)
    v_ref = None if reference is None else reference.volume_mm3
    sessions: list[SessionSurvival] = []
    fit_t, fit_v, fit_s = [], [], []
    for point in timeline.points:
        names = tuple(flag_names(flags, point.session))
        sigma = _sigma(point)
        t = None
        if reference is not None and point.days is not None and reference.days is not None:
            t = point.days - reference.days
        used = (
            t is not None
            and t >= 0
            and point.volume_mm3 is not None
            and sigma is not None
            and not (timeline.mode == "iron" and "protocol_change" in names)
        )
        if used:
            fit_t.append(t)
            fit_v.append(point.volume_mm3)
            fit_s.append(sigma)
        mdc = detectable = None
        if sigma is not None and ref_sigma is not None and point is not reference:
            mdc = minimum_detectable_change(sigma, ref_sigma)
            detectable = abs((point.volume_mm3 or 0.0) - (v_ref or 0.0)) > mdc
        sessions.append(
            SessionSurvival(
                point=point,
                t_days=t,
                sigma_mm3=sigma,
                survival_fraction=_ratio(point.volume_mm3, v_ref),
                survival_fraction_low=_ratio(point.low_mm3, v_ref),
                survival_fraction_high=_ratio(point.high_mm3, v_ref),
                mdc_mm3=mdc,
                change_detectable=detectable,
                used_in_fit=bool(used),
                flags=names,
            )
        )
    if reference is None:
        fit = DecayFit(
            None,
            reason=f"no session with a graft volume above zero after the acute window "
            f"({window:g} days)",
        )
    else:
        fit = fit_decay(fit_t, fit_v, fit_s, level=settings.level)
    return SubjectSurvival(
        timeline=timeline,
        acute_window_days=window,
        reference=reference,
        sessions=tuple(sessions),
        fit=fit,
        flags=tuple(flags),
    )
