"""Confounders of graft survival, flagged per session and per subject with their evidence.

A flag never hides or changes a number: it says why a number may not mean survival. Each flag
carries the values that raised it, so a reader can judge it.

``protocol_change``
    echo time, field strength or a voxel dimension differs by more than 10 % from the reference
    session (iron void volume scales with echo time × field; partial volume with voxel size)
``acute_window``
    the session is between the injection and the end of the acute window (oedema, haemorrhage
    and the injection track inflate the graft)
``signal_before_injection``
    a session before the injection already has graft signal whose band excludes zero (a bleed
    or an old lesion mimics the graft)
``label_persistence``
    iron mode with a T2w graft of the same subject: the iron void changes less than its minimum
    detectable change while the T2w graft shrinks by more than its own (iron from dead cells
    stays in macrophages)
``low_snr``
    cord SNR below the threshold (10), or the segmentation said so
``poor_registration``
    the registration to the baseline correlates below 0.8, or the pipeline flagged it poor
``reference_unreliable``
    the normal-cord reference the graft is compared with was flagged unreliable or too small
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from graftimg.longitudinal.timeline import SessionPoint, Timeline
from graftimg.longitudinal.uncertainty import minimum_detectable_change, sigma_from_band

__all__ = [
    "FLAG_DESCRIPTIONS",
    "ConfounderFlag",
    "FlagSettings",
    "confounder_flags",
    "flag_names",
    "voxel_volume_mm3",
]

#: One line per flag, shown in reports and docs.
FLAG_DESCRIPTIONS = {
    "protocol_change": "echo time, field strength or voxel size changed by more than 10 % from "
    "the reference session: volumes are not comparable",
    "acute_window": "session inside the acute window after injection (oedema, haemorrhage): "
    "not used as reference nor in the fit",
    "signal_before_injection": "graft-like signal already present before the injection",
    "label_persistence": "iron void steady while the T2w graft shrinks: persisting label is not "
    "survival (iron from dead cells stays in macrophages)",
    "low_snr": "low signal-to-noise ratio in the cord",
    "poor_registration": "registration to the baseline session is poor: the injection site may "
    "be misplaced",
    "reference_unreliable": "the normal-cord reference the graft is compared with is unreliable",
}

_POOR_REGISTRATION = ("poor_registration", "site_poor_registration")
_UNRELIABLE_REFERENCE = ("reference_unreliable", "reference_too_small", "reference_no_variance")


@dataclasses.dataclass(frozen=True)
class FlagSettings:
    """Thresholds of the confounder flags."""

    protocol_tolerance: float = 0.10
    min_snr: float = 10.0
    min_registration_correlation: float = 0.8
    min_reference_voxels: int = 200


@dataclasses.dataclass(frozen=True)
class ConfounderFlag:
    """One confounder: its name, the session it concerns (None: the subject) and its evidence."""

    name: str
    session: str | None
    evidence: dict[str, Any]

    @property
    def description(self) -> str:
        """What the flag means, in one line."""
        return FLAG_DESCRIPTIONS.get(self.name, self.name)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"name": self.name, "session": self.session, "evidence": self.evidence}


def voxel_volume_mm3(point: SessionPoint) -> float:
    """Volume of one voxel of the session (0 when unknown)."""
    if not point.voxel_size_mm:
        return 0.0
    x, y, z = point.voxel_size_mm
    return float(x * y * z)


def _sigma(point: SessionPoint) -> float:
    return sigma_from_band(
        point.volume_mm3 or 0.0,
        point.low_mm3,
        point.high_mm3,
        floor_mm3=voxel_volume_mm3(point),
    )


def _relative_change(reference: float, value: float) -> float:
    return abs(value - reference) / abs(reference) if reference else float(value != reference)


def _protocol(
    point: SessionPoint, reference: SessionPoint, tolerance: float
) -> dict[str, Any] | None:
    changes: dict[str, Any] = {}
    pairs: list[tuple[str, float | None, float | None]] = [
        ("echo_time_s", reference.echo_time_s, point.echo_time_s),
        ("field_strength_T", reference.field_strength_T, point.field_strength_T),
    ]
    if reference.voxel_size_mm and point.voxel_size_mm:
        for axis, a, b in zip("ijk", reference.voxel_size_mm, point.voxel_size_mm):
            pairs.append((f"voxel_size_{axis}_mm", a, b))
    for name, ref, value in pairs:
        if ref is None or value is None:
            continue
        change = _relative_change(ref, value)
        if change > tolerance:
            changes[name] = {
                "reference": ref,
                "session": value,
                "relative_change": round(change, 4),
            }
    if not changes:
        return None
    return {"reference_session": reference.session, "tolerance": tolerance, **changes}


def _session_flags(
    point: SessionPoint,
    reference: SessionPoint | None,
    acute_window_days: float,
    settings: FlagSettings,
) -> list[ConfounderFlag]:
    out: list[ConfounderFlag] = []
    ses = point.session

    def add(name: str, **evidence: Any) -> None:
        out.append(ConfounderFlag(name, ses, evidence))

    if reference is not None and point is not reference:
        changed = _protocol(point, reference, settings.protocol_tolerance)
        if changed:
            add("protocol_change", **changed)
    if point.days is not None and 0 <= point.days < acute_window_days:
        add("acute_window", days=point.days, acute_window_days=acute_window_days)
    if point.days is not None and point.days < 0 and point.volume_mm3:
        low = point.low_mm3
        if low is None or low > 0:
            add(
                "signal_before_injection",
                days=point.days,
                graft_volume_mm3=point.volume_mm3,
                graft_volume_low_mm3=low,
            )
    pipeline_snr = "low_snr" in point.flags
    if pipeline_snr or (point.snr is not None and point.snr < settings.min_snr):
        add("low_snr", snr=point.snr, min_snr=settings.min_snr, pipeline_flag=pipeline_snr)
    poor = [f for f in point.flags if f in _POOR_REGISTRATION]
    corr = point.registration_correlation
    if poor or (corr is not None and corr < settings.min_registration_correlation):
        add(
            "poor_registration",
            correlation=corr,
            min_correlation=settings.min_registration_correlation,
            pipeline_flags=poor,
        )
    unreliable = [f for f in point.flags if f in _UNRELIABLE_REFERENCE]
    n_ref = point.reference_n_voxels
    small = n_ref is not None and n_ref < settings.min_reference_voxels
    if unreliable or small:
        add(
            "reference_unreliable",
            reference_n_voxels=n_ref,
            min_reference_voxels=settings.min_reference_voxels,
            pipeline_flags=unreliable,
        )
    return out


def _label_persistence(iron: Timeline, t2: Timeline, acute_window_days: float) -> dict | None:
    def usable(timeline: Timeline) -> dict[str | None, SessionPoint]:
        return {
            p.session: p
            for p in timeline.points
            if p.measured and p.days is not None and p.days >= acute_window_days
        }

    a, b = usable(iron), usable(t2)
    common = [p.session for p in iron.points if p.session in a and p.session in b]
    if len(common) < 2:
        return None
    first, last = common[0], common[-1]
    d_iron = (a[last].volume_mm3 or 0.0) - (a[first].volume_mm3 or 0.0)
    d_t2 = (b[last].volume_mm3 or 0.0) - (b[first].volume_mm3 or 0.0)
    mdc_iron = minimum_detectable_change(_sigma(a[first]), _sigma(a[last]))
    mdc_t2 = minimum_detectable_change(_sigma(b[first]), _sigma(b[last]))
    if abs(d_iron) < mdc_iron and -d_t2 > mdc_t2:
        return {
            "sessions": [first, last],
            "iron_change_mm3": d_iron,
            "iron_mdc_mm3": mdc_iron,
            "t2_change_mm3": d_t2,
            "t2_mdc_mm3": mdc_t2,
        }
    return None


def confounder_flags(
    timeline: Timeline,
    *,
    reference: SessionPoint | None,
    acute_window_days: float,
    companion: Timeline | None = None,
    settings: FlagSettings | None = None,
) -> list[ConfounderFlag]:
    """Every confounder of one subject's timeline, session flags first, then subject flags.

    Parameters
    ----------
    timeline : Timeline
        The subject's sessions of one graft mode.
    reference : SessionPoint or None
        The reference session (t_ref) protocols are compared with; the first measured session
        when None.
    acute_window_days : float
        Sessions from day 0 to this are in the acute window.
    companion : Timeline, optional
        The same subject in the other graft mode (``t2`` for an ``iron`` timeline, or the
        reverse), for ``label_persistence``.
    settings : FlagSettings, optional

    Returns
    -------
    list of ConfounderFlag
        Subject-level flags have ``session=None``.
    """
    settings = settings or FlagSettings()
    if reference is None:
        reference = next((p for p in timeline.points if p.measured), None)
    flags: list[ConfounderFlag] = []
    for point in timeline.points:
        flags += _session_flags(point, reference, acute_window_days, settings)
    for name in ("protocol_change", "signal_before_injection"):
        sessions = [f.session for f in flags if f.name == name]
        if sessions:
            flags.append(ConfounderFlag(name, None, {"sessions": sessions}))
    if companion is not None and {timeline.mode, companion.mode} == {"iron", "t2"}:
        iron, t2 = (timeline, companion) if timeline.mode == "iron" else (companion, timeline)
        evidence = _label_persistence(iron, t2, acute_window_days)
        if evidence:
            flags.append(ConfounderFlag("label_persistence", None, evidence))
    return flags


def flag_names(flags: Sequence[ConfounderFlag], session: str | None = None) -> list[str]:
    """Sorted distinct names of the flags of one session (or of all flags when None)."""
    return sorted({f.name for f in flags if session is None or f.session == session})
