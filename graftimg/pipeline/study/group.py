"""The group level: every session's result gathered into ``graft_volumes.tsv``.

One row per session with its ``status``: ``done`` (with its numbers) or ``failed`` (its reason,
every number n/a). A result whose inputs changed since it was made is listed as failed too,
never with its old number.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graftimg.errors import BIDSError, MetadataError
from graftimg.io.atomic import write_json_atomic, write_text_atomic
from graftimg.io.bids import discover_study
from graftimg.io.session_record import find_session_results, read_session_result
from graftimg.io.tsv import tsv_cell
from graftimg.pipeline.config import PipelineConfig
from graftimg.pipeline.stages import NULL_VOLUME_KEYS
from graftimg.pipeline.study.jobs import plan_study, session_outputs
from graftimg.pipeline.study.manifest import job_manifest, recorded_manifest
from graftimg.pipeline.study.reasons import failure_reason

__all__ = ["GROUP_COLUMNS", "run_group"]

GROUP_COLUMNS = (
    "participant_id",
    "session_id",
    "days_since_injection",
    "graft_mode",
    # The volumes a session reports (null together when the graft could not be measured).
    *(key for key in NULL_VOLUME_KEYS if key != "graft_n_voxels"),
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
        recorded = recorded_manifest(path)
        if recorded is None:
            continue
        try:
            current = job_manifest(job, PipelineConfig())
        except OSError as err:
            stale[path] = failure_reason(err, job)
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
    done, failed = find_session_results(out_dir), find_session_results(out_dir, "failed")
    if not done and not failed:
        raise MetadataError(
            "no session results (*_graft.json) found",
            path=out_dir,
            hint="run the participant level first",
        )
    stale = {} if bids_dir is None else _stale_reasons(Path(bids_dir), out_dir, done)
    rows = []
    for path in done + failed:
        data = read_session_result(path)
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
            "graft_volume_low_mm3": {
                "Description": "uncertainty band, low end",
                "Units": "mm^3",
            },
            "graft_volume_high_mm3": {
                "Description": "uncertainty band, high end",
                "Units": "mm^3",
            },
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
