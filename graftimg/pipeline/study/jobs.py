"""Planning a study: one :class:`SessionJob` per session, and where its outputs go.

For each subject the graft mode and injection site come from ``participants.tsv``; each session
takes the image of its graft mode, and a companion T2w or T1w for the cord when that image is
neither. A session that cannot be analysed still becomes a job (with its ``error``), so that its
failure is recorded and listed. The outputs form a BIDS derivatives dataset (``docs/data.md``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graftimg.io.bids import ImageFile, SessionInfo, Study, SubjectInfo

__all__ = [
    "SessionJob",
    "SessionOutcome",
    "bids_uri",
    "plan_study",
    "session_files",
    "session_outputs",
]

#: Image suffixes used per mode, in order of preference.
_GRAFT_SUFFIXES = {"t2": ("T2w",), "iron": ("T2starw", "T2star", "GRE", "SWI", "T2w")}
_CORD_SUFFIXES = ("T2w", "T1w")


@dataclasses.dataclass(frozen=True)
class SessionJob:
    """Everything needed to analyse one session (picklable, for batch runners)."""

    subject: str
    session: str | None
    mode: str
    image: Path
    cord_from: Path | None
    site_mm: tuple[float, float, float] | None
    site_session_image: Path | None
    days_since_injection: float | None
    out_prefix: Path
    flags: tuple[str, ...] = ()
    #: The subject's row of participants.tsv and the session's row of sessions.tsv.
    participant_row: tuple[tuple[str, str], ...] = ()
    session_row: tuple[tuple[str, str], ...] = ()
    #: BIDS suffix of the analysed image (``T2w``, ``T2starw``): the ``desc`` of the masks.
    image_suffix: str = ""
    #: Root of the input dataset (for ``bids:raw:`` URIs).
    bids_root: Path | None = None
    #: Why the session cannot be analysed at all (found while planning), or None.
    error: str | None = None

    @property
    def name(self) -> str:
        """``sub-<label>[_ses-<label>]``."""
        return f"sub-{self.subject}" + (f"_ses-{self.session}" if self.session else "")


@dataclasses.dataclass(frozen=True)
class SessionOutcome:
    """What happened to one job."""

    job: SessionJob
    status: str  # "done", "skipped" (already done), "failed", "busy" (another run has it)
    message: str = ""
    summary: dict[str, Any] | None = None


def _pick(session: SessionInfo, suffixes: Sequence[str]) -> tuple[ImageFile | None, list[str]]:
    for suffix in suffixes:
        found = session.find(suffix)
        if found:
            flags = [f"several_{suffix}_images_first_used"] if len(found) > 1 else []
            return found[0], flags
    return None, []


def _prefix(
    out_dir: Path, subject: str, session: str | None, image: ImageFile | None = None
) -> Path:
    """``OUT/sub-X/[ses-Y/]anat/sub-X_[ses-Y_][acq-…_run-…_]space-orig`` for one image."""
    folder = out_dir / f"sub-{subject}"
    name = f"sub-{subject}"
    if session is not None:
        folder = folder / f"ses-{session}"
        name += f"_ses-{session}"
    for key, value in image.entities if image is not None else ():
        if key not in ("sub", "ses", "space", "desc", "label"):
            name += f"_{key}-{value}"
    return folder / "anat" / f"{name}_space-orig"


def _session_folder(out_dir: Path, subject: str, session: str | None) -> Path:
    folder = out_dir / f"sub-{subject}"
    return (folder if session is None else folder / f"ses-{session}") / "anat"


def plan_study(study: Study, out_dir: str | os.PathLike) -> tuple[list[SessionJob], list[str]]:
    """Turn a discovered study into session jobs; problems that stop a subject are returned.

    Returns
    -------
    jobs : list of SessionJob
    problems : list of str
        One line per subject or session that cannot be analysed, and why.
    """
    out_dir = Path(out_dir)
    jobs: list[SessionJob] = []
    problems: list[str] = []
    for sub in study.subjects:
        if sub.error is not None:
            problems.append(f"sub-{sub.label}: {sub.error}")
            continue
        if sub.graft_mode is None:
            problems.append(
                f"sub-{sub.label}: graft_mode is missing in participants.tsv (iron or t2)"
            )
            continue
        site_image = _site_image(sub)
        for ses in sub.sessions:
            common = {
                "subject": sub.label,
                "session": ses.label,
                "mode": sub.graft_mode,
                "site_mm": sub.injection.site_mm,
                "site_session_image": site_image,
                "days_since_injection": ses.days_since_injection,
                "participant_row": sub.participant,
                "session_row": ses.row,
                "bids_root": study.root,
            }
            image, flags = _pick(ses, _GRAFT_SUFFIXES[sub.graft_mode])
            error = ses.error
            if image is None and error is None:
                wanted = "/".join(_GRAFT_SUFFIXES[sub.graft_mode])
                error = f"no {wanted} image for graft mode {sub.graft_mode}"
            if image is None:
                # Not analysable: still a job, so the failure is recorded and listed.
                jobs.append(
                    SessionJob(
                        **common,
                        image=Path(),
                        cord_from=None,
                        out_prefix=_session_folder(out_dir, sub.label, ses.label) / "none",
                        flags=tuple(ses.flags),
                        error=error,
                    )
                )
                continue
            cord_from = None
            if image.suffix not in _CORD_SUFFIXES:
                companion, _ = _pick(ses, _CORD_SUFFIXES)
                cord_from = None if companion is None else companion.path
                if companion is None:
                    flags.append("no_companion_for_cord")
            if sub.injection.site_mm is None:
                flags.append("injection_site_missing")
            jobs.append(
                SessionJob(
                    **common,
                    image=image.path,
                    cord_from=cord_from,
                    out_prefix=_prefix(out_dir, sub.label, ses.label, image),
                    flags=tuple(flags) + tuple(ses.flags),
                    image_suffix=image.suffix,
                )
            )
    return jobs, problems


def _site_image(sub: SubjectInfo) -> Path | None:
    """The image whose scanner coordinates the injection site is given in (for registration)."""
    if sub.injection.site_mm is None or not sub.sessions:
        return None
    label = sub.injection.session or sub.sessions[0].label
    session = sub.session(label)
    image, _ = _pick(session, _CORD_SUFFIXES + _GRAFT_SUFFIXES["iron"])
    return None if image is None else image.path


def bids_uri(job: SessionJob, path: Path) -> str:
    """``bids:raw:<path in the input dataset>`` (the ``raw`` link is in dataset_description)."""
    if job.bids_root is not None:
        with contextlib.suppress(ValueError):
            return f"bids:raw:{Path(path).resolve().relative_to(job.bids_root.resolve())}"
    return str(path)


def session_outputs(job: SessionJob) -> dict[str, Path]:
    """Where a session's outputs go in the derivatives dataset.

    Masks are named by the image they belong to (``desc-<suffix>``), e.g.
    ``sub-01_ses-01_space-orig_label-graft_desc-T2starw_mask.nii.gz`` with a JSON sidecar;
    the QC figure goes to ``sub-01/figures/``; ``*_graft.json`` (the results, written last)
    and ``*_failed.json`` (a failure's reason) sit beside the masks.
    """
    prefix = job.out_prefix
    desc = f"desc-{job.image_suffix}" if job.image_suffix else "desc-none"
    outputs = {
        f"{label}_mask": prefix.with_name(f"{prefix.name}_label-{label}_{desc}_mask.nii.gz")
        for label in ("graft", "cord", "cyst")
    }
    outputs["json"] = prefix.with_name(f"{prefix.name}_{desc}_graft.json")
    figure = prefix.name.replace("_space-orig", "") + f"_desc-qc_{job.image_suffix}.png"
    outputs["qc"] = _subject_folder(job, prefix) / "figures" / figure
    outputs["failed"] = prefix.parent / f"{job.name}_failed.json"
    return outputs


def _subject_folder(job: SessionJob, prefix: Path) -> Path:
    folder = prefix.parent.parent  # anat -> ses-X or sub-X
    return folder.parent if job.session is not None else folder


def session_files(job: SessionJob) -> list[Path]:
    """Files of this session already in the derivatives (any name a run may have given)."""
    outputs = session_outputs(job)
    found = []
    for folder in {outputs["json"].parent, outputs["qc"].parent}:
        if folder.is_dir():
            found += [
                p for p in folder.iterdir() if p.name.startswith(f"{job.name}_") and p.is_file()
            ]
    return sorted(found)


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
