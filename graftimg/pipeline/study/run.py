"""The participant level: each session analysed, resumable, its outputs replaced atomically.

A session is recomputed in a hidden temporary folder and its old outputs are replaced, the JSON
last (the commit marker); a failure removes them and leaves a ``*_failed.json`` record with its
one-line reason. Each session is locked while it runs, so two runs sharing one output folder
never do the same session twice, and leftovers of a killed run are removed at the next start.
The injection site is carried to each session by rigid registration (see the package).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from graftimg._version import __version__
from graftimg.errors import BIDSError, GraftimgError, MetadataError
from graftimg.io.atomic import (
    LOCK_PREFIX,
    clean_temporaries,
    exclusive_lock,
    fsync_folder,
    temporary_folder,
    write_json_atomic,
)
from graftimg.io.bids import check_output_folder, discover_study, validate_label
from graftimg.pipeline.config import PipelineConfig
from graftimg.pipeline.study.derivatives import describe_dataset, mask_sidecar
from graftimg.pipeline.study.jobs import (
    SessionJob,
    SessionOutcome,
    plan_study,
    session_files,
    session_outputs,
)
from graftimg.pipeline.study.manifest import is_done, job_manifest
from graftimg.pipeline.study.reasons import failure_reason
from graftimg.provenance import params_hash

__all__ = ["run_job", "run_participants"]


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
    from graftimg.register.session import register_session
    from graftimg.segment.contrast import contrast_from_name
    from graftimg.segment.cord import segment_cord

    options = {k: v for k, v in config.load.options().items() if k != "volume_index"}
    fixed = load_volume(reference, **options)
    moving = load_volume(own_reference, **options)
    scale = config.resolve_scale(fixed.spacing)
    cord = segment_cord(
        fixed.data, spacing=fixed.spacing, contrast=contrast_from_name(reference), scale=scale
    )
    result = register_session(
        fixed, moving, cord_mask=cord.mask, site_mm=job.site_mm, metric="correlation", scale=scale
    )
    reg = result.registration
    site = result.site_in_moving_mm
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


def _remove(paths: Sequence[Path]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _analyse(job: SessionJob, config: PipelineConfig, manifest: dict[str, Any]) -> dict:
    """Compute the session in a hidden folder, then replace its old outputs (JSON last)."""
    from graftimg.pipeline.session import json_ready, run_session

    outputs = session_outputs(job)
    folder = outputs["json"].parent
    with temporary_folder(folder) as staging:
        staged = {key: staging / path.name for key, path in outputs.items()}
        site, site_flags, site_details = _map_site(job, config)
        carried = "site_from_registration" in site_flags
        result = run_session(
            job.image,
            job.out_prefix,
            mode=job.mode,  # type: ignore[arg-type]
            config=config,
            load_options=config.load.options(),
            injection_world=site,
            injection_site_source="registration" if carried else "given",
            cord_from=job.cord_from,
            extra={
                "status": "done",
                "subject": job.subject,
                "session": job.session,
                "days_since_injection": job.days_since_injection,
                "study_flags": sorted(set(job.flags) | set(site_flags)),
                **site_details,
                "manifest": manifest,
            },
            study_params_hash=params_hash(manifest["parameters"]),
            qc=_has_matplotlib(),
            paths={k: staged[k] for k in ("graft_mask", "cord_mask", "cyst_mask", "json", "qc")},
        )
        written = result.summary["outputs"]
        moves = []
        for key in ("graft_mask", "cord_mask", "cyst_mask"):
            if key in written:
                label = key.split("_")[0]
                side = staged[key].with_name(staged[key].name.replace(".nii.gz", ".json"))
                write_json_atomic(side, mask_sidecar(job, label, manifest))
                moves += [
                    (staged[key], outputs[key]),
                    (side, outputs[key].with_suffix("").with_suffix(".json")),
                ]
        if "qc" in written:
            moves.append((staged["qc"], outputs["qc"]))
        _commit(job, moves, staged["json"], outputs["json"])
    return json_ready(result.summary)


def _commit(job: SessionJob, moves: list[tuple[Path, Path]], marker: Path, final: Path) -> None:
    """Replace the session's outputs by the staged ones; the results JSON goes last."""
    old = session_files(job)
    outputs = session_outputs(job)
    # From here until the marker is in place the session reads as not done.
    _remove([outputs["json"], outputs["failed"]])
    for source, target in moves:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
    _remove([p for p in old if p not in {t for _, t in moves} and p != final])
    for folder in {t.parent for _, t in moves}:
        fsync_folder(folder)
    os.replace(marker, final)
    fsync_folder(final.parent)


def _record_failure(job: SessionJob, manifest: dict[str, Any] | None, reason: str) -> None:
    """Remove the session's old outputs and leave ``*_failed.json`` with the reason."""
    outputs = session_outputs(job)
    _remove([outputs["json"]])  # first: never a finished-looking session with old numbers
    _remove([p for p in session_files(job) if p != outputs["failed"]])
    record = {
        "status": "failed",
        "reason": reason,
        "subject": job.subject,
        "session": job.session,
        "mode": job.mode,
        "days_since_injection": job.days_since_injection,
        "source": None if job.error else str(job.image),
        "manifest": manifest,
        "params_hash": None if manifest is None else params_hash(manifest["parameters"]),
        "graftimg_version": __version__,
    }
    write_json_atomic(outputs["failed"], record)


def run_job(job: SessionJob, config: PipelineConfig, *, debug: bool = False) -> SessionOutcome:
    """Analyse one session and write its outputs; every error becomes a failed outcome.

    graftimg's own errors, OSError (e.g. PermissionError) and MemoryError are reported with
    their one-line reason and never stop the caller; so are unexpected errors (named as a
    bug), unless ``debug`` asks for them to propagate.
    """
    folder = session_outputs(job)["json"].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = exclusive_lock(folder / f"{LOCK_PREFIX}{job.name}")
    except (GraftimgError, OSError) as err:
        return SessionOutcome(job, "failed", failure_reason(err, job))
    with lock as held:
        if not held:
            return SessionOutcome(job, "busy", "another graftimg run is analysing it")
        manifest = None
        try:
            if job.error is not None:
                raise BIDSError(job.error)
            manifest = job_manifest(job, config)
            if is_done(job, manifest):
                return SessionOutcome(job, "skipped", "already done with these inputs")
            summary = _analyse(job, config, manifest)
        except Exception as err:
            if debug and not isinstance(err, GraftimgError | OSError | MemoryError):
                raise
            reason = failure_reason(err, job)
            del err  # drop the frames (and their arrays) before writing anything
            with contextlib.suppress(GraftimgError, OSError, MemoryError):
                _record_failure(job, manifest, reason)
            return SessionOutcome(job, "failed", reason)
    return SessionOutcome(job, "done", "", summary)


def run_participants(
    bids_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    participant_labels: Sequence[str] | None = None,
    session_labels: Sequence[str] | None = None,
    config: PipelineConfig | None = None,
    on_outcome: Callable[[SessionOutcome], None] | None = None,
    on_planned: Callable[[list[SessionJob]], None] | None = None,
    debug: bool = False,
) -> tuple[list[SessionOutcome], list[str]]:
    """Participant level: every selected session, one after the other.

    Parameters
    ----------
    on_planned : callable, optional
        Called once with the jobs before the first one runs (e.g. to size a progress bar).
    on_outcome : callable, optional
        Called after each job.
    debug : bool
        Let unexpected (non-graftimg) errors propagate with their traceback.

    Returns
    -------
    outcomes : list of SessionOutcome
    problems : list of str
        Subjects that could not be planned.

    Raises
    ------
    OutputError
        When ``out_dir`` would mix derivatives with raw data (:func:`check_output_folder`).
    """
    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    if not bids_dir.is_dir():
        raise BIDSError("not a folder", path=bids_dir, hint="give the BIDS dataset's top folder")
    check_output_folder(bids_dir, out_dir)
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
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        from graftimg.errors import OutputError

        raise OutputError(
            f"cannot create the output folder ({err.strerror})", path=out_dir
        ) from None
    clean_temporaries(out_dir)
    describe_dataset(out_dir, bids_dir)
    if on_planned is not None:
        on_planned(jobs)
    outcomes = []
    for job in jobs:
        outcome = run_job(job, config, debug=debug)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes, problems
