"""A whole BIDS study, one session at a time: plan, run (resumable), and gather a group table.

For each subject the graft mode and injection site come from ``participants.tsv``. The site is
given in the scanner coordinates of one session (``injection_session``); every other session is
rigidly registered to that one around the cord and the site is mapped through the transform, so
a subject who lies differently in the scanner keeps the right site (its JSON then says
``injection_site_source: registration``). Volumes are always measured in each session's native
grid.

A session is skipped on rerun only when its JSON exists with the same parameter hash and the
same input hashes; outputs are written atomically with the JSON last, so an interrupted run
leaves either a finished session or none.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graftimg._version import __version__
from graftimg.errors import GraftimgError, MetadataError
from graftimg.io.atomic import write_json_atomic, write_text_atomic
from graftimg.io.bids import (
    ImageFile,
    SessionInfo,
    Study,
    SubjectInfo,
    discover_study,
    validate_label,
)
from graftimg.pipeline.config import PipelineConfig
from graftimg.pipeline.session import output_paths
from graftimg.provenance import file_sha256, params_hash

__all__ = [
    "GROUP_COLUMNS",
    "SessionJob",
    "SessionOutcome",
    "plan_study",
    "run_group",
    "run_job",
    "run_participants",
]

#: Image suffixes used per mode, in order of preference.
_GRAFT_SUFFIXES = {"t2": ("T2w",), "iron": ("T2starw", "T2star", "GRE", "SWI", "T2w")}
_CORD_SUFFIXES = ("T2w", "T1w")

GROUP_COLUMNS = (
    "participant_id",
    "session_id",
    "days_since_injection",
    "graft_mode",
    "graft_volume_mm3",
    "graft_volume_pv_mm3",
    "graft_volume_low_mm3",
    "graft_volume_high_mm3",
    "cyst_volume_mm3",
    "graft_volume_null_reason",
    "cord_volume_mm3",
    "echo_time_s",
    "field_strength_T",
    "voxel_size_mm",
    "flags",
    "params_hash",
    "graftimg_version",
)


#: Group columns copied as they are from each session's JSON (``null`` becomes ``n/a``).
_SESSION_COLUMNS = GROUP_COLUMNS[GROUP_COLUMNS.index("graft_volume_mm3") : -3]


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


@dataclasses.dataclass(frozen=True)
class SessionOutcome:
    """What happened to one job."""

    job: SessionJob
    status: str  # "done", "skipped" (already done), "failed"
    message: str = ""
    summary: dict[str, Any] | None = None


def _pick(session: SessionInfo, suffixes: Sequence[str]) -> tuple[ImageFile | None, list[str]]:
    for suffix in suffixes:
        found = session.find(suffix)
        if found:
            flags = [f"several_{suffix}_images_first_used"] if len(found) > 1 else []
            return found[0], flags
    return None, []


def _prefix(out_dir: Path, subject: str, session: str | None) -> Path:
    folder = out_dir / f"sub-{subject}"
    name = f"sub-{subject}"
    if session is not None:
        folder = folder / f"ses-{session}"
        name += f"_ses-{session}"
    return folder / "anat" / f"{name}_space-orig"


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
        if sub.graft_mode is None:
            problems.append(
                f"sub-{sub.label}: graft_mode is missing in participants.tsv (iron or t2)"
            )
            continue
        site_image = _site_image(sub)
        for ses in sub.sessions:
            image, flags = _pick(ses, _GRAFT_SUFFIXES[sub.graft_mode])
            name = f"sub-{sub.label}" + (f"_ses-{ses.label}" if ses.label else "")
            if image is None:
                wanted = "/".join(_GRAFT_SUFFIXES[sub.graft_mode])
                problems.append(f"{name}: no {wanted} image for graft mode {sub.graft_mode}")
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
                    subject=sub.label,
                    session=ses.label,
                    mode=sub.graft_mode,
                    image=image.path,
                    cord_from=cord_from,
                    site_mm=sub.injection.site_mm,
                    site_session_image=site_image,
                    days_since_injection=ses.days_since_injection,
                    out_prefix=_prefix(out_dir, sub.label, ses.label),
                    flags=tuple(flags) + tuple(ses.flags),
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


def _map_site(job: SessionJob, config: PipelineConfig) -> tuple[Any, list[str], dict[str, Any]]:
    """The injection site in this session's scanner coordinates."""
    if job.site_mm is None:
        return None, [], {}
    reference = job.site_session_image
    own_reference = job.cord_from or job.image
    if reference is None:
        return job.site_mm, ["site_not_registered"], {}
    same_session = Path(reference).parent == Path(own_reference).parent
    if same_session:
        return job.site_mm, [], {"site_registration": "same session"}

    from graftimg.io.volume import load_volume
    from graftimg.register.rigid import cord_metric_mask, register_rigid
    from graftimg.segment.contrast import contrast_from_name
    from graftimg.segment.cord import segment_cord

    fixed = load_volume(reference)
    moving = load_volume(own_reference)
    scale = config.resolve_scale(fixed.spacing)
    cord = segment_cord(
        fixed.data, spacing=fixed.spacing, contrast=contrast_from_name(reference), scale=scale
    )
    radius = 40.0 if scale == "human" else 8.0
    dilation = 5.0 if scale == "human" else 1.0
    mask = cord_metric_mask(
        cord.mask, fixed.affine, center_mm=job.site_mm, dilation_mm=dilation, radius_mm=radius
    )
    reg = register_rigid(
        fixed.data,
        fixed.affine,
        moving.data,
        moving.affine,
        fixed_mask=mask,
        center_mm=job.site_mm,
        metric="correlation",
    )
    site = tuple(float(v) for v in reg.map_points(np.asarray(job.site_mm)))
    flags = ["site_from_registration"]
    if reg.flags:
        flags += [f"site_{f}" for f in reg.flags]
    details = {
        "site_registration": f"rigid to {Path(reference).name}",
        "site_registration_correlation": float(reg.correlation),
        "site_registration_rotation_deg": float(reg.rotation_deg),
        "site_registration_translation_mm": [float(v) for v in reg.translation_mm],
    }
    return site, flags, details


def _inputs(job: SessionJob) -> dict[str, str]:
    inputs = {"image": str(job.image)}
    if job.cord_from is not None:
        inputs["cord_from"] = str(job.cord_from)
    return inputs


def _is_done(job: SessionJob, config_hash: str) -> bool:
    path = output_paths(job.out_prefix)["json"]
    if not path.is_file():
        return False
    try:
        done = json.loads(path.read_text(encoding="utf-8"))
        prov = done["provenance"]
    except (json.JSONDecodeError, KeyError, OSError, UnicodeDecodeError):
        return False
    if prov.get("study_params_hash") != config_hash:
        return False
    recorded = prov.get("inputs", {})
    for name, file in _inputs(job).items():
        if recorded.get(name, {}).get("sha256") != file_sha256(file):
            return False
    return True


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def run_job(job: SessionJob, config: PipelineConfig) -> SessionOutcome:
    """Analyse one session and write its outputs; errors become a failed outcome."""
    from graftimg.pipeline.session import json_ready, run_session

    config_hash = params_hash(config.model_dump())
    try:
        if _is_done(job, config_hash):
            return SessionOutcome(job, "skipped", "already done with these parameters")
        site, site_flags, site_details = _map_site(job, config)
        carried = "site_from_registration" in site_flags
        result = run_session(
            job.image,
            job.out_prefix,
            mode=job.mode,  # type: ignore[arg-type]
            config=config,
            injection_world=site,
            injection_site_source="registration" if carried else "given",
            cord_from=job.cord_from,
            extra={
                "subject": job.subject,
                "session": job.session,
                "days_since_injection": job.days_since_injection,
                "study_flags": sorted(set(job.flags) | set(site_flags)),
                **site_details,
            },
            study_params_hash=config_hash,
            qc=_has_matplotlib(),
        )
    except GraftimgError as err:
        return SessionOutcome(job, "failed", str(err))
    return SessionOutcome(job, "done", "", json_ready(result.summary))


def _describe(out_dir: Path, source: Path) -> None:
    desc = out_dir / "dataset_description.json"
    if desc.exists():
        return
    write_json_atomic(
        desc,
        {
            "Name": f"graftimg derivatives of {source.name}",
            "BIDSVersion": "1.9.0",
            "DatasetType": "derivative",
            "GeneratedBy": [{"Name": "graftimg", "Version": __version__}],
            "SourceDatasets": [{"URL": str(source.resolve())}],
        },
    )


def run_participants(
    bids_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    participant_labels: Sequence[str] | None = None,
    session_labels: Sequence[str] | None = None,
    config: PipelineConfig | None = None,
    on_outcome: Callable[[SessionOutcome], None] | None = None,
) -> tuple[list[SessionOutcome], list[str]]:
    """Participant level: every selected session, one after the other.

    Returns
    -------
    outcomes : list of SessionOutcome
    problems : list of str
        Subjects or sessions that could not be planned.
    """
    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    if out_dir.resolve() == bids_dir.resolve():
        raise MetadataError(
            "the output folder is the input dataset", path=out_dir, hint="choose another folder"
        )
    # The whole subject is discovered even when sessions are selected: the injection site may
    # be given in a session that is not analysed now.
    study = discover_study(bids_dir, participant_labels=participant_labels)
    config = config or PipelineConfig()
    jobs, problems = plan_study(study, out_dir)
    if session_labels:
        wanted = {validate_label(s, "session") for s in session_labels}
        present = {s.label for sub in study.subjects for s in sub.sessions}
        absent = sorted(wanted - present)
        if absent:
            raise MetadataError(
                f"session label(s) {absent} not found; sessions: {sorted(map(str, present))}",
                path=bids_dir,
            )
        jobs = [job for job in jobs if job.session in wanted]
    out_dir.mkdir(parents=True, exist_ok=True)
    _describe(out_dir, bids_dir)
    outcomes = []
    for job in jobs:
        outcome = run_job(job, config)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes, problems


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value) or "n/a"
    return str(value)


def run_group(out_dir: str | os.PathLike) -> Path:
    """Group level: gather every session JSON under ``out_dir`` into ``graft_volumes.tsv``.

    Every row carries its parameter hash, so a table never mixes parameter sets silently; a
    mix is reported as an error naming the hashes.
    """
    out_dir = Path(out_dir)
    files = sorted(out_dir.glob("sub-*/**/*_graft.json"))
    if not files:
        raise MetadataError(
            "no session results (*_graft.json) found",
            path=out_dir,
            hint="run the participant level first",
        )
    rows = []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise MetadataError("result JSON is unreadable", path=path) from None
        prov = data.get("provenance", {})
        rows.append(
            {
                "participant_id": f"sub-{data.get('subject')}",
                "session_id": f"ses-{data.get('session')}" if data.get("session") else None,
                "days_since_injection": data.get("days_since_injection"),
                "graft_mode": data.get("mode"),
                **{key: data.get(key) for key in _SESSION_COLUMNS},
                "flags": sorted(set(data.get("flags", [])) | set(data.get("study_flags", []))),
                "params_hash": prov.get("study_params_hash", prov.get("params_hash")),
                "graftimg_version": prov.get("version"),
            }
        )
    hashes = sorted({str(r["params_hash"]) for r in rows})
    if len(hashes) > 1:
        raise MetadataError(
            f"results were made with different parameter sets {hashes}",
            path=out_dir,
            hint="rerun the participant level with one configuration",
        )
    lines = ["\t".join(GROUP_COLUMNS)]
    lines += ["\t".join(_cell(row[c]) for c in GROUP_COLUMNS) for row in rows]
    table = out_dir / "graft_volumes.tsv"
    write_text_atomic(table, "\n".join(lines) + "\n")
    write_json_atomic(
        out_dir / "graft_volumes.json",
        {
            "days_since_injection": {"Description": "acq_time − injection_date", "Units": "d"},
            "graft_volume_mm3": {"Description": "binary graft volume", "Units": "mm^3"},
            "graft_volume_pv_mm3": {"Description": "partial-volume weighted", "Units": "mm^3"},
            "graft_volume_low_mm3": {"Description": "uncertainty band, low", "Units": "mm^3"},
            "graft_volume_high_mm3": {"Description": "uncertainty band, high", "Units": "mm^3"},
            "cyst_volume_mm3": {"Description": "t2 mode: CSF-like cyst", "Units": "mm^3"},
            "graft_volume_null_reason": {
                "Description": "why the graft was not measured (its volumes are n/a); n/a "
                "when it was measured. A volume of 0 means the search was done and found "
                "nothing"
            },
            "cord_volume_mm3": {"Description": "cord mask volume", "Units": "mm^3"},
            "echo_time_s": {"Description": "iron mode: echo time", "Units": "s"},
            "field_strength_T": {"Description": "iron mode: B0", "Units": "T"},
            "flags": {"Description": "confounders and quality flags, comma-separated"},
            "params_hash": {"Description": "hash of the pipeline configuration"},
        },
    )
    return table
