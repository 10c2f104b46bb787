"""A subject's sessions in time: days since injection and what each session measured.

Days since injection are ``acq_time`` (``sub-X_sessions.tsv``) minus ``injection_date``
(``participants.tsv``), in days with the time of day kept; :func:`timeline_from_subject` takes
them from a discovered BIDS subject (:mod:`graftimg.io.bids`) and :func:`point_from_result` from a
session's ``_graft.json`` (which records the same number). Volumes are always those measured in
each session's own grid: nothing here resamples an image.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from graftimg.io.bids import SubjectInfo

__all__ = [
    "SessionPoint",
    "Timeline",
    "days_since_injection",
    "point_from_result",
    "timeline_from_subject",
]


def days_since_injection(acq_time: dt.datetime | str, injection_date: dt.date | str) -> float:
    """Days from the injection (midnight of its date) to a session's acquisition time.

    Examples
    --------
    >>> days_since_injection("2023-01-23T12:00:00", "2023-01-16")
    7.5
    >>> days_since_injection("2023-01-10T00:00:00", "2023-01-16")
    -6.0
    """
    if isinstance(acq_time, str):
        acq_time = dt.datetime.fromisoformat(acq_time)
    if isinstance(injection_date, str):
        injection_date = dt.date.fromisoformat(injection_date)
    start = dt.datetime.combine(injection_date, dt.time())
    return round((acq_time.replace(tzinfo=None) - start).total_seconds() / 86400.0, 6)


@dataclasses.dataclass(frozen=True)
class SessionPoint:
    """What one session contributes to a subject's survival curve.

    Attributes
    ----------
    session : str or None
        Session label (without ``ses-``).
    days : float or None
        Days since injection (negative before it; None when unknown).
    volume_mm3, low_mm3, high_mm3 : float or None
        Graft volume in the session's native grid and its band; None when not measured.
    mode : str
        ``iron`` or ``t2``.
    null_reason : str or None
        Why the volume was not measured.
    echo_time_s, field_strength_T : float or None
        Acquisition parameters (from the image's JSON sidecar).
    voxel_size_mm : tuple of 3 float or None
    snr : float or None
        Cord signal-to-noise ratio of the session.
    registration_correlation : float or None
        Post-registration correlation to the subject's baseline (None when not registered).
    reference_n_voxels : int or None
        Voxels of normal-appearing cord the graft was compared with.
    flags : tuple of str
        The session's own quality flags (from segmentation and registration).
    """

    session: str | None
    days: float | None
    volume_mm3: float | None
    low_mm3: float | None = None
    high_mm3: float | None = None
    mode: str = "t2"
    null_reason: str | None = None
    echo_time_s: float | None = None
    field_strength_T: float | None = None
    voxel_size_mm: tuple[float, float, float] | None = None
    snr: float | None = None
    registration_correlation: float | None = None
    reference_n_voxels: int | None = None
    flags: tuple[str, ...] = ()

    @property
    def measured(self) -> bool:
        """True when the session has a volume and a known time."""
        return self.volume_mm3 is not None and self.days is not None


@dataclasses.dataclass(frozen=True)
class Timeline:
    """A subject's sessions of one graft mode, sorted by days since injection."""

    subject: str
    mode: str
    points: tuple[SessionPoint, ...]
    scale: str | None = None

    def __post_init__(self) -> None:
        def key(p: SessionPoint) -> tuple:
            return (p.days is None, p.days if p.days is not None else 0.0, p.session or "")

        object.__setattr__(self, "points", tuple(sorted(self.points, key=key)))

    @property
    def sessions(self) -> list[str | None]:
        """Session labels in time order."""
        return [p.session for p in self.points]


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if out == out else None  # NaN → None


def point_from_result(result: Mapping[str, Any]) -> SessionPoint:
    """A :class:`SessionPoint` from a session's ``_graft.json`` content.

    Examples
    --------
    >>> p = point_from_result({"session": "02", "days_since_injection": 14.5, "mode": "iron",
    ...     "graft_volume_mm3": 3.0, "graft_volume_low_mm3": 1.6, "graft_volume_high_mm3": 4.4,
    ...     "flags": ["low_snr"], "study_flags": ["site_poor_registration"]})
    >>> p.days, p.volume_mm3, p.flags
    (14.5, 3.0, ('low_snr', 'site_poor_registration'))
    """
    flags = sorted(set(result.get("flags") or ()) | set(result.get("study_flags") or ()))
    voxel = result.get("voxel_size_mm")
    correlation = _float(result.get("site_registration_correlation"))
    cord = result.get("cord") or {}
    if correlation is None and cord.get("registration_applied"):
        correlation = _float(cord.get("registration_correlation"))
    n_ref = result.get("reference_n_voxels")
    return SessionPoint(
        session=result.get("session"),
        days=_float(result.get("days_since_injection")),
        volume_mm3=_float(result.get("graft_volume_mm3")),
        low_mm3=_float(result.get("graft_volume_low_mm3")),
        high_mm3=_float(result.get("graft_volume_high_mm3")),
        mode=str(result.get("mode") or "t2"),
        null_reason=result.get("graft_volume_null_reason"),
        echo_time_s=_float(result.get("echo_time_s")),
        field_strength_T=_float(result.get("field_strength_T")),
        voxel_size_mm=None if not voxel else tuple(float(v) for v in voxel),  # type: ignore[arg-type]
        snr=_float(result.get("snr_cord")),
        registration_correlation=correlation,
        reference_n_voxels=None if n_ref is None else int(n_ref),
        flags=tuple(flags),
    )


def timeline_from_subject(
    subject: SubjectInfo,
    volumes: Mapping[str | None, SessionPoint] | Iterable[SessionPoint],
    *,
    scale: str | None = None,
) -> Timeline:
    """A timeline whose days come from the BIDS subject (``acq_time`` − ``injection_date``).

    Parameters
    ----------
    subject : SubjectInfo
        From :func:`graftimg.io.bids.discover_study`.
    volumes : mapping session → SessionPoint, or iterable of SessionPoint
        What each session measured; their own ``days`` are replaced by the subject's.
    scale : str, optional
        ``human`` or ``rodent`` (sets the default acute window).
    """
    if not isinstance(volumes, Mapping):
        volumes = {p.session: p for p in volumes}
    points: list[SessionPoint] = []
    for ses in subject.sessions:
        point = volumes.get(ses.label)
        if point is None:
            continue
        points.append(dataclasses.replace(point, days=ses.days_since_injection))
    mode = subject.graft_mode or (points[0].mode if points else "t2")
    return Timeline(subject=subject.label, mode=mode, points=tuple(points), scale=scale)
