"""Graft survival over time.

Timelines, survival fractions, decay fits with intervals, confounder flags and cohort summaries.

Plain functions on numbers: the report layer reads the session results from disk and hands them
over as :class:`SessionPoint` values. See docs/survival.md for the model, the interval method and
the flags.
"""

from graftimg.longitudinal.cohort import CohortSummary, cohort_summary, mixed_effects_log_volume
from graftimg.longitudinal.fit import DecayFit, decay_curve, fit_decay
from graftimg.longitudinal.flags import (
    FLAG_DESCRIPTIONS,
    ConfounderFlag,
    FlagSettings,
    confounder_flags,
)
from graftimg.longitudinal.survival import (
    ACUTE_WINDOW_DAYS,
    SessionSurvival,
    SubjectSurvival,
    SurvivalSettings,
    analyse_subject,
)
from graftimg.longitudinal.timeline import (
    SessionPoint,
    Timeline,
    days_since_injection,
    point_from_result,
    timeline_from_subject,
)
from graftimg.longitudinal.uncertainty import minimum_detectable_change, sigma_from_band

__all__ = [
    "ACUTE_WINDOW_DAYS",
    "FLAG_DESCRIPTIONS",
    "CohortSummary",
    "ConfounderFlag",
    "DecayFit",
    "FlagSettings",
    "SessionPoint",
    "SessionSurvival",
    "SubjectSurvival",
    "SurvivalSettings",
    "Timeline",
    "analyse_subject",
    "cohort_summary",
    "confounder_flags",
    "days_since_injection",
    "decay_curve",
    "fit_decay",
    "minimum_detectable_change",
    "mixed_effects_log_volume",
    "point_from_result",
    "sigma_from_band",
    "timeline_from_subject",
]
