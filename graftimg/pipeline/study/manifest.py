"""The manifest of a session: everything its result follows from.

A session counts as done only when the manifest in its ``*_graft.json`` matches the current one:
the hashes of its images and their sidecars (and of the image the injection site is given in),
its rows of ``participants.tsv`` and ``sessions.tsv``, the resolved parameters and the graftimg
version, and every output the record lists is still there.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from graftimg._version import __version__
from graftimg.errors import MetadataError
from graftimg.io.session_record import read_session_result
from graftimg.pipeline.config import PipelineConfig
from graftimg.pipeline.study.jobs import SessionJob, session_outputs
from graftimg.provenance import file_sha256

__all__ = ["is_done", "job_manifest", "recorded_manifest"]


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


def recorded_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest a session's ``*_graft.json`` was made with; None when absent or unreadable."""
    try:
        return read_session_result(path).get("manifest")
    except MetadataError:
        return None


def is_done(job: SessionJob, manifest: dict[str, Any]) -> bool:
    """Whether the session's result was made from ``manifest`` and its outputs are all there."""
    path = session_outputs(job)["json"]
    try:
        done = read_session_result(path)
    except MetadataError:
        return False
    if done.get("manifest") != manifest:
        return False
    # Every output it lists must still be there.
    folder = path.parent
    figures = session_outputs(job)["qc"].parent
    for key, name in (done.get("outputs") or {}).items():
        if not ((figures if key == "qc" else folder) / str(name)).is_file():
            return False
    return True
