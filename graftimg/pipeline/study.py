"""A whole BIDS study, one session at a time: plan, run (resumable), and gather a group table.

For each subject the graft mode and injection site come from ``participants.tsv``. The site is
given in the scanner coordinates of one session (``injection_session``); every other session is
rigidly registered to that one around the cord and the site is mapped through the transform, so
a subject who lies differently in the scanner keeps the right site (its JSON then says
``injection_site_source: registration``). Volumes are always measured in each session's native
grid.

The output is a BIDS derivatives dataset (``docs/data.md``). A session counts as done only when
the manifest in its ``*_graft.json`` matches everything the result follows from: the hashes of
its images and their sidecars (and of the image the injection site is given in), its rows of
``participants.tsv`` and ``sessions.tsv``, the resolved parameters and the graftimg version.
Otherwise it is recomputed in a hidden temporary folder and its old outputs are replaced, the
JSON last (the commit marker); a failure removes them and leaves a ``*_failed.json`` record
with its one-line reason, so the group table lists the session as failed, never with an old
number. Each session is locked while it runs, so two runs sharing one output folder never do
the same session twice, and leftovers of a killed run are removed at the next start.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import json
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
    write_text_atomic,
)
from graftimg.io.bids import (
    ImageFile,
    SessionInfo,
    Study,
    SubjectInfo,
    check_output_folder,
    discover_study,
    validate_label,
)
from graftimg.io.tsv import tsv_cell
from graftimg.pipeline.config import PipelineConfig
from graftimg.provenance import file_sha256, params_hash

__all__ = [
    "BIDS_VERSION",
    "GROUP_COLUMNS",
    "SessionJob",
    "SessionOutcome",
    "job_manifest",
    "plan_study",
    "run_group",
    "run_job",
    "run_participants",
    "session_outputs",
]

#: BIDS version the derivatives follow.
BIDS_VERSION = "1.10.0"

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
    "cyst_volume_pv_mm3",
    "graft_volume_null_reason",
    "cord_volume_mm3",
    "echo_time_s",
    "field_strength_T",
    "voxel_size_mm",
    "flags",
    "params_hash",
    "graftimg_version",
    "status",
    "reason",
)


#: Group columns copied as they are from each session's JSON (``null`` becomes ``n/a``).
_SESSION_COLUMNS = GROUP_COLUMNS[
    GROUP_COLUMNS.index("graft_volume_mm3") : GROUP_COLUMNS.index("flags")
]

#: Files of the derivatives dataset that BIDS has no name for (listed in ``.bidsignore``).
_BIDSIGNORE = (
    "*_graft.json",
    "*_failed.json",
    "graft_volumes.*",
    "sub-*/figures/",
    "*_survival.*",
    "survival.*",
)


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


# -- manifest ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int, inode: int) -> str:
    return file_sha256(path)


def _sha256(path: Path) -> str:
    """SHA-256 of a file, computed once per run for an unchanged file."""
    stat = os.stat(path)
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


def _sidecar(image: Path) -> Path | None:
    from graftimg.io.volume import sidecar_path

    side = sidecar_path(image)
    return side if side.is_file() else None


def _input_files(job: SessionJob) -> dict[str, Path]:
    """Every file the session's result follows from, by role."""
    files: dict[str, Path] = {"image": job.image}
    if job.cord_from is not None:
        files["cord_from"] = job.cord_from
    if job.site_mm is not None and job.site_session_image is not None:
        own = job.cord_from or job.image
        if Path(job.site_session_image).parent != Path(own).parent:
            files["site_reference"] = job.site_session_image
    for role, path in list(files.items()):
        side = _sidecar(path)
        if side is not None:
            files[f"{role}_sidecar"] = side
    return files


def _config_dump(config: PipelineConfig) -> dict[str, Any]:
    """The parameters as canonical JSON values (comments and descriptions are no parameters)."""
    return json.loads(json.dumps(config.model_dump(mode="json"), sort_keys=True))


def job_manifest(job: SessionJob, config: PipelineConfig) -> dict[str, Any]:
    """Everything a session's result follows from; a rerun recomputes when any part differs.

    Returns
    -------
    dict
        ``graftimg_version``, ``parameters`` (the validated configuration, so comments and
        descriptions do not count), ``mode``, ``participant`` and ``session`` (the rows of
        ``participants.tsv`` and ``sessions.tsv``) and ``inputs`` (SHA-256 of every image and
        sidecar used, by role).
    """
    return {
        "graftimg_version": __version__,
        "parameters": _config_dump(config),
        "mode": job.mode,
        "participant": dict(job.participant_row),
        "session": dict(job.session_row),
        "inputs": {role: _sha256(path) for role, path in _input_files(job).items()},
    }


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


# -- output names -----------------------------------------------------------------------------
def _bids_uri(job: SessionJob, path: Path) -> str:
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


def _session_files(job: SessionJob) -> list[Path]:
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


# -- one session ------------------------------------------------------------------------------
def _is_done(job: SessionJob, manifest: dict[str, Any]) -> bool:
    done = _read_json(session_outputs(job)["json"])
    if done is None or done.get("manifest") != manifest:
        return False
    # Every output it lists must still be there.
    folder = session_outputs(job)["json"].parent
    figures = session_outputs(job)["qc"].parent
    for key, name in (done.get("outputs") or {}).items():
        if not ((figures if key == "qc" else folder) / str(name)).is_file():
            return False
    return True


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


#: Hints of the per-image commands name their options; inside ``run`` they name what ``run``
#: accepts: the study configuration (``--config``) and the study's own files.
_RUN_HINTS = {
    "--affine-from": "set load: {affine_from: sform} (or qform) in the study configuration "
    "(graftimg run --config FILE)",
    "--volume-index": "set load: {volume_index: N} (0-based) in the study configuration "
    "(graftimg run --config FILE)",
    "--nonfinite": "set load: {nonfinite: zero} in the study configuration (graftimg run "
    "--config FILE) to set them to 0",
    "--injection": "check injection_x/y/z in participants.tsv: scanner RAS mm of the "
    "injection_session's image",
    "--contrast": "set cord: {contrast: t1|t2|t2s|mt} in the study configuration (graftimg run "
    "--config FILE)",
    "--cord-": "add a T2w or T1w image of the same session (the cord is found on it), or "
    "analyse this session with graftimg segment --cord-mask",
}


def _for_run(err: GraftimgError) -> GraftimgError:
    """The error with a hint naming what ``graftimg run`` accepts."""
    for option, hint in _RUN_HINTS.items():
        if err.hint and option in err.hint:
            named = copy.copy(err)
            GraftimgError.__init__(named, err.message, path=err.path, hint=hint)
            return named
    return err


def _reason(err: BaseException, job: SessionJob) -> str:
    """A failure as one line naming the file and what to do."""
    if isinstance(err, GraftimgError):
        return str(_for_run(err))
    if isinstance(err, MemoryError):
        return (
            f"{job.image}: out of memory while analysing this session — free memory or run "
            "it on a larger machine; a small file that needs much memory may be corrupt"
        )
    if isinstance(err, OSError):
        where = err.filename or job.image
        return (
            f"{where}: {err.strerror or type(err).__name__} — check that the file is readable "
            "and the output folder writable"
        )
    text = " ".join(str(err).split())
    return (
        f"{job.image}: internal error {type(err).__name__}: {text} (this is a bug; rerun with "
        "--debug for the traceback and report it)"
    )


def _mask_sidecar(job: SessionJob, label: str, manifest: dict[str, Any]) -> dict[str, Any]:
    sources = [_bids_uri(job, job.image)]
    if label == "cord" and job.cord_from is not None:
        sources.append(_bids_uri(job, job.cord_from))
    return {
        "Description": f"graftimg {label} mask in the grid of the {job.image_suffix} image",
        "Type": "ROI",
        "Sources": sources,
        "GraftMode": job.mode,
        "Parameters": manifest["parameters"],
        "ParametersHash": params_hash(manifest["parameters"]),
        "GraftimgVersion": __version__,
    }


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
                write_json_atomic(side, _mask_sidecar(job, label, manifest))
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
    old = _session_files(job)
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
    _remove([p for p in _session_files(job) if p != outputs["failed"]])
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
        return SessionOutcome(job, "failed", _reason(err, job))
    with lock as held:
        if not held:
            return SessionOutcome(job, "busy", "another graftimg run is analysing it")
        manifest = None
        try:
            if job.error is not None:
                raise BIDSError(job.error)
            manifest = job_manifest(job, config)
            if _is_done(job, manifest):
                return SessionOutcome(job, "skipped", "already done with these inputs")
            summary = _analyse(job, config, manifest)
        except Exception as err:
            if debug and not isinstance(err, GraftimgError | OSError | MemoryError):
                raise
            reason = _reason(err, job)
            del err  # drop the frames (and their arrays) before writing anything
            with contextlib.suppress(GraftimgError, OSError, MemoryError):
                _record_failure(job, manifest, reason)
            return SessionOutcome(job, "failed", reason)
    return SessionOutcome(job, "done", "", summary)


def _code_url() -> str:
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        for entry in metadata.metadata("graftimg").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("source", "repository", "homepage"):
                return url.strip()
    return "https://pypi.org/project/graftimg/"


def _describe(out_dir: Path, source: Path) -> None:
    """Write ``dataset_description.json`` (a derivative linked to its raw dataset).

    Also ``.bidsignore``, listing graftimg's own files that BIDS has no name for.
    """
    source = source.resolve()
    out = out_dir.resolve()
    # A relative link when the derivatives live in the dataset's derivatives/, else absolute.
    link = source.as_uri()
    if out.is_relative_to(source):
        link = "../" * len(out.relative_to(source).parts)
    name = source.name
    raw = _read_json(source / "dataset_description.json")
    if raw is not None and raw.get("Name"):
        name = str(raw["Name"])
    description = {
        "Name": f"graftimg derivatives of {name}",
        "BIDSVersion": BIDS_VERSION,
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "graftimg", "Version": __version__, "CodeURL": _code_url()}],
        "SourceDatasets": [{"URL": "bids:raw:"}],
        "DatasetLinks": {"raw": link},
    }
    desc = out_dir / "dataset_description.json"
    if _read_json(desc) != description:
        write_json_atomic(desc, description)
    ignore = "\n".join(_BIDSIGNORE) + "\n"
    path = out_dir / ".bidsignore"
    if not path.is_file() or path.read_text(encoding="utf-8") != ignore:
        write_text_atomic(path, ignore)


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
    _describe(out_dir, bids_dir)
    if on_planned is not None:
        on_planned(jobs)
    outcomes = []
    for job in jobs:
        outcome = run_job(job, config, debug=debug)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes, problems


def _done_row(data: dict[str, Any]) -> dict[str, Any]:
    prov = data.get("provenance", {})
    return {
        "participant_id": f"sub-{data.get('subject')}",
        "session_id": f"ses-{data.get('session')}" if data.get("session") else None,
        "days_since_injection": data.get("days_since_injection"),
        "graft_mode": data.get("mode"),
        **{key: data.get(key) for key in _SESSION_COLUMNS},
        "flags": sorted(set(data.get("flags", [])) | set(data.get("study_flags", []))),
        "params_hash": prov.get("study_params_hash", prov.get("params_hash")),
        "graftimg_version": prov.get("version"),
        "status": "done",
        "reason": None,
    }


def _failed_row(data: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
    """A session without a number: every measurement n/a, the reason said."""
    return {
        **dict.fromkeys(GROUP_COLUMNS),
        "participant_id": f"sub-{data.get('subject')}",
        "session_id": f"ses-{data.get('session')}" if data.get("session") else None,
        "days_since_injection": data.get("days_since_injection"),
        "graft_mode": data.get("mode"),
        "flags": [],
        "params_hash": data.get("params_hash"),
        "graftimg_version": data.get("graftimg_version"),
        "status": "failed",
        "reason": reason or data.get("reason"),
    }


def _stale_reasons(bids_dir: Path, out_dir: Path, results: Sequence[Path]) -> dict[Path, str]:
    """Results whose inputs changed since they were made (results JSON → what changed)."""
    jobs, _ = plan_study(discover_study(bids_dir), out_dir)
    current_paths = {session_outputs(job)["json"] for job in jobs if job.error is None}
    # A result no session of the input leads to any more (its image was renamed or removed).
    stale = {
        path: f"{path.name}: no image of {bids_dir} leads to this result any more — rerun the "
        "participant level"
        for path in results
        if path not in current_paths
    }
    for job in jobs:
        if job.error is not None:
            continue
        path = session_outputs(job)["json"]
        recorded = (_read_json(path) or {}).get("manifest")
        if recorded is None:
            continue
        try:
            current = job_manifest(job, PipelineConfig())
        except OSError as err:
            stale[path] = _reason(err, job)
            continue
        changed = [
            key
            for key in ("mode", "participant", "session", "inputs")
            if recorded.get(key) != current[key]
        ]
        if changed:
            stale[path] = (
                f"{job.name}: its {', '.join(changed)} changed since the participant level — "
                "rerun the participant level"
            )
    return stale


def _hidden(path: Path, root: Path) -> bool:
    """In a hidden folder (a run's temporary files), relative to ``root``."""
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def run_group(
    out_dir: str | os.PathLike,
    bids_dir: str | os.PathLike | None = None,
    *,
    reports: bool = True,
) -> Path:
    """Group level: gather every session under ``out_dir`` into ``graft_volumes.tsv``.

    One row per session with its ``status``: ``done`` (with its numbers) or ``failed`` (its
    ``reason``, every number n/a). Given ``bids_dir``, a result whose inputs changed since it
    was made is listed as failed too, never with its old number. Every row carries its
    parameter hash, so a table never mixes parameter sets silently; a mix is reported as an
    error naming the hashes. With ``reports`` the survival reports follow
    (:func:`graftimg.report.survival_report.write_survival_reports`: per subject
    ``sub-X_survival.json`` and ``.html``, the cohort's ``survival.html`` and ``survival.tsv``),
    with the same stale results left unmeasured.
    """
    out_dir = Path(out_dir)
    if bids_dir is not None and not Path(bids_dir).is_dir():
        raise BIDSError("not a folder", path=bids_dir, hint="give the BIDS dataset's top folder")
    done, failed = (
        sorted(p for p in out_dir.glob(f"sub-*/**/*_{kind}.json") if not _hidden(p, out_dir))
        for kind in ("graft", "failed")
    )
    if not done and not failed:
        raise MetadataError(
            "no session results (*_graft.json) found",
            path=out_dir,
            hint="run the participant level first",
        )
    stale = {} if bids_dir is None else _stale_reasons(Path(bids_dir), out_dir, done)
    rows = []
    for path in done + failed:
        data = _read_json(path)
        if data is None:
            raise MetadataError("result JSON is unreadable", path=path)
        if path in stale:
            row = _failed_row(data, stale[path])
            row["params_hash"] = _done_row(data)["params_hash"]
        else:
            row = _done_row(data) if path in done else _failed_row(data)
        rows.append(row)
    rows.sort(key=lambda r: (str(r["participant_id"]), str(r["session_id"])))
    hashes = sorted({str(r["params_hash"]) for r in rows if r["params_hash"] is not None})
    if len(hashes) > 1:
        raise MetadataError(
            f"results were made with different parameter sets {hashes}",
            path=out_dir,
            hint="rerun the participant level with one configuration",
        )
    lines = ["\t".join(GROUP_COLUMNS)]
    lines += ["\t".join(tsv_cell(row[c]) for c in GROUP_COLUMNS) for row in rows]
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
            "cyst_volume_pv_mm3": {
                "Description": "t2 mode: CSF-like cyst, partial-volume weighted",
                "Units": "mm^3",
            },
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
            "graftimg_version": {"Description": "graftimg version that made the result"},
            "status": {
                "Description": "done: measured; failed: not measured (see reason), every "
                "number n/a",
                "Levels": {"done": "measured", "failed": "not measured, see reason"},
            },
            "reason": {"Description": "why the session failed (file and fix); n/a when done"},
        },
    )
    if reports:
        from graftimg.report.survival_report import write_survival_reports

        write_survival_reports(out_dir, stale=stale)
    return table
