"""Survival reports of a finished study: per subject JSON and HTML, cohort HTML and TSV.

Reads every session result (``sub-*/**/*_graft.json``) under a ``graftimg run`` output folder,
analyses each subject (:func:`graftimg.longitudinal.analyse_subject`) and writes:

- ``sub-X/sub-X_survival.json``: half-life and plateau with their 95 % intervals, the model,
  the flags with their evidence, the sessions used, provenance;
- ``sub-X/sub-X_survival.html``: a self-contained page (figures embedded as PNG) with volume and
  survival fraction over time, QC overlays of every session, flags and provenance;
- ``survival.html`` and ``survival.tsv``: the cohort.

Every file is written atomically; nothing is written when the results cannot be read.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from graftimg._version import __version__
from graftimg.errors import GraftimgError, MetadataError
from graftimg.io.atomic import write_json_atomic, write_text_atomic
from graftimg.io.session_record import find_session_results, read_session_result
from graftimg.io.tsv import tsv_cell
from graftimg.longitudinal import (
    FLAG_DESCRIPTIONS,
    SubjectSurvival,
    SurvivalSettings,
    Timeline,
    analyse_subject,
    cohort_summary,
    point_from_result,
)
from graftimg.provenance import file_sha256, params_hash

__all__ = [
    "COHORT_COLUMNS",
    "COHORT_HTML",
    "COHORT_TSV",
    "ReportFiles",
    "SessionResult",
    "load_session_results",
    "write_survival_reports",
]

#: Names of the cohort page and table in the output folder.
COHORT_HTML = "survival.html"
COHORT_TSV = "survival.tsv"

#: Columns of the cohort table ``survival.tsv``.
COHORT_COLUMNS = (
    "participant_id",
    "session_id",
    "graft_mode",
    "days",
    "days_since_reference",
    "graft_volume_mm3",
    "graft_volume_low_mm3",
    "graft_volume_high_mm3",
    "survival_fraction",
    "survival_fraction_low",
    "survival_fraction_high",
    "used_in_fit",
    "flags",
    "param_hash",
)


@dataclasses.dataclass(frozen=True)
class SessionResult:
    """One session's ``_graft.json``: where it is and what it says."""

    path: Path
    data: dict[str, Any]

    @property
    def subject(self) -> str:
        """Subject label."""
        return str(self.data.get("subject"))

    @property
    def param_hash(self) -> str | None:
        """Hash of the parameters the session was analysed with."""
        prov = self.data.get("provenance") or {}
        return (
            prov.get("study_params_hash")
            or prov.get("params_hash")
            or self.data.get("params_hash")
        )


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_survival_reports` wrote."""

    subject_json: tuple[Path, ...]
    subject_html: tuple[Path, ...]
    cohort_html: Path
    cohort_tsv: Path


def load_session_results(
    out_dir: str | os.PathLike, *, stale: Mapping[Path, str] | None = None
) -> list[SessionResult]:
    """Every session result under ``out_dir``; an unreadable one is an error naming it.

    A session whose analysis failed (``*_failed.json``) is kept as a session without a volume,
    its reason as ``graft_volume_null_reason``; so is a result named in ``stale`` (results
    JSON → why it no longer holds, e.g. its inputs changed since it was made).
    """
    stale = {Path(p).resolve(): reason for p, reason in (stale or {}).items()}
    out_dir = Path(out_dir)
    files = sorted(find_session_results(out_dir) + find_session_results(out_dir, "failed"))
    if not files:
        raise MetadataError(
            "no session results (*_graft.json) found",
            path=out_dir,
            hint="run 'graftimg run BIDS_DIR OUT_DIR participant' first",
        )
    results = []
    for path in files:
        data = read_session_result(path)
        if "subject" not in data:
            raise MetadataError(
                "session result has no 'subject'", path=path, hint="rerun that session"
            )
        reason = stale.get(path.resolve())
        if reason is None and data.get("status") == "failed":
            reason = f"analysis failed: {data.get('reason')}"
        if reason is not None:
            data = {
                **data,
                "status": "failed",
                "graft_volume_mm3": None,
                "graft_volume_null_reason": reason,
            }
        results.append(SessionResult(path, data))
    return results


def _timelines(results: Sequence[SessionResult]) -> dict[str, dict[str, Timeline]]:
    """Subject → mode → timeline."""
    grouped: dict[tuple[str, str], list[SessionResult]] = defaultdict(list)
    for result in results:
        grouped[(result.subject, str(result.data.get("mode")))].append(result)
    out: dict[str, dict[str, Timeline]] = defaultdict(dict)
    for (subject, mode), rows in sorted(grouped.items()):
        out[subject][mode] = Timeline(
            subject=subject,
            mode=mode,
            points=tuple(point_from_result(r.data) for r in rows),
            scale=rows[0].data.get("scale"),
        )
    return out


def _primary_mode(modes: dict[str, Timeline]) -> str:
    """The mode with most sessions (iron first on a tie: it is the labelled graft)."""
    return max(modes, key=lambda m: (len(modes[m].points), m == "iron"))


def _source_roots(out_dir: Path) -> list[Path]:
    """Folders the input dataset may be in, from ``dataset_description.json``."""
    try:
        desc = json.loads((out_dir / "dataset_description.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return []
    links = [(desc.get("DatasetLinks") or {}).get("raw")]
    links += [s.get("URL") for s in desc.get("SourceDatasets") or [] if isinstance(s, dict)]
    roots = []
    for link in links:
        if not isinstance(link, str) or not link or link.startswith("bids:"):
            continue
        if link.startswith("file://"):
            from urllib.parse import unquote, urlparse

            roots.append(Path(unquote(urlparse(link).path)))
        elif "://" not in link:
            path = Path(link)
            roots.append(path if path.is_absolute() else out_dir / path)
    return roots


def _find_image(result: SessionResult, out_dir: Path) -> Path | None:
    """The session's image, as recorded or below the input dataset.

    The recorded path may be relative to the folder ``graftimg run`` was started in, or a
    ``bids:raw:`` reference; the input dataset is named in ``dataset_description.json``.
    """
    data = result.data
    image = ((data.get("provenance") or {}).get("inputs") or {}).get("image") or {}
    roots = _source_roots(out_dir)
    for text in (data.get("source"), image.get("path")):
        if not text:
            continue
        text = str(text).removeprefix("bids:raw:")
        path = Path(text)
        if path.is_file():
            return path
        parts = path.parts
        start = next((n for n, p in enumerate(parts) if p.startswith("sub-")), None)
        for root in roots:
            candidate = root.joinpath(*parts[start:]) if start is not None else root / path
            if candidate.is_file():
                return candidate
    return None


def _qc_panel(result: SessionResult, out_dir: Path) -> dict[str, Any]:
    """The QC overlay of one session as base64 PNG, or the reason it is missing."""
    from graftimg.io.volume import load_volume
    from graftimg.report.survival_figures import figure_png_base64, qc_overlay_figure

    data = result.data
    name = f"ses-{data.get('session')}" if data.get("session") else "session"
    if data.get("status") == "failed":
        return {"session": name, "png": None, "note": data["graft_volume_null_reason"]}
    image_path = _find_image(result, out_dir)
    if image_path is None:
        return {"session": name, "png": None, "note": "the session's image was not found"}
    try:
        volume = load_volume(image_path)
        masks: dict[str, np.ndarray | None] = {}
        for key, label in (("cord_mask", "cord"), ("graft_mask", "graft"), ("cyst_mask", "cyst")):
            file = (data.get("outputs") or {}).get(key)
            path = result.path.parent / file if file else None
            masks[label] = (
                load_volume(path).data > 0.5 if path is not None and path.is_file() else None
            )
    except GraftimgError as err:
        return {"session": name, "png": None, "note": f"could not load: {err}"}
    graft = masks.get("graft")
    if graft is not None and graft.any():
        centre = np.argwhere(graft).mean(axis=0)
    elif data.get("injection_site_mm") is not None:
        centre = volume.world_to_voxel(data["injection_site_mm"])
    elif masks.get("cord") is not None and masks["cord"].any():
        centre = np.argwhere(masks["cord"]).mean(axis=0)
    else:
        centre = np.asarray(volume.shape) / 2
    field = 15.0 if data.get("scale") == "human" else 2.5
    volume_text = data.get("graft_volume_mm3")
    label = "not measured" if volume_text is None else f"{volume_text:.3g} mm³"
    days = data.get("days_since_injection")
    when = "day n/a" if days is None else f"day {days:.1f}"
    title = f"{name} · {when} · graft {label}"
    fig = qc_overlay_figure(
        volume.data,
        spacing=volume.spacing,
        centre_voxel=centre,
        masks=masks,
        field_mm=field,
        title=title,
    )
    return {"session": name, "png": figure_png_base64(fig), "note": image_path.name}


def _fmt(value: Any, digits: int = 3) -> str:
    """A value as a table entry of the pages, with few digits (TSV cells: io.tsv.tsv_cell)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v, digits) for v in value) + "]"
    return str(value)


def _template(name: str) -> Any:
    try:
        import jinja2
    except ImportError:
        raise GraftimgError("reports need jinja2", hint="pip install 'graftimg[report]'") from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("graftimg.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fmt"] = _fmt
    return env.get_template(name)


def _provenance(results: Sequence[SessionResult], settings: SurvivalSettings) -> dict[str, Any]:
    import datetime as dt

    params = dataclasses.asdict(settings)
    return {
        "software": "graftimg",
        "version": __version__,
        "survival_params": params,
        "survival_params_hash": params_hash(params),
        "session_param_hashes": sorted({str(r.param_hash) for r in results}),
        "inputs": {str(r.path.name): {"sha256": file_sha256(r.path)} for r in results},
        "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _subject_json(
    analysis: SubjectSurvival,
    companion: SubjectSurvival | None,
    provenance: dict[str, Any],
) -> dict[str, Any]:
    out = analysis.to_json()
    if companion is not None:
        out["companion"] = companion.to_json()
    out["note"] = (
        "iron mode follows the iron label's signal void: it blooms beyond the cells and persists "
        "in macrophages after cells die, so a steady void is not survival"
        if analysis.timeline.mode == "iron"
        else "t2 mode follows graft tissue brighter than normal cord; cysts are counted apart"
    )
    out["provenance"] = provenance
    return out


def write_survival_reports(
    out_dir: str | os.PathLike,
    *,
    settings: SurvivalSettings | None = None,
    qc: bool = True,
    stale: Mapping[Path, str] | None = None,
) -> ReportFiles:
    """Analyse every subject under ``out_dir`` and write the survival reports.

    Parameters
    ----------
    out_dir : path-like
        Output folder of ``graftimg run`` (participant level done).
    settings : SurvivalSettings, optional
    qc : bool
        Draw the QC overlays (needs the session images, found as recorded or below the source
        dataset named in ``dataset_description.json``).
    stale : mapping of results JSON path → reason, optional
        Results that no longer hold (their inputs changed): kept as sessions without a volume.

    Returns
    -------
    ReportFiles
    """
    from graftimg.report.survival_figures import (
        cohort_figure,
        figure_png_base64,
        survival_figure,
        volume_figure,
    )

    out_dir = Path(out_dir)
    settings = settings or SurvivalSettings()
    results = load_session_results(out_dir, stale=stale)
    param_sets = sorted({str(r.param_hash) for r in results if r.param_hash is not None})
    if len(param_sets) > 1:
        raise MetadataError(
            f"results were made with different parameter sets {param_sets}",
            path=out_dir,
            hint="rerun the participant level with one configuration",
        )
    by_subject: dict[str, list[SessionResult]] = defaultdict(list)
    for r in results:
        by_subject[r.subject].append(r)
    timelines = _timelines(results)
    analyses: list[SubjectSurvival] = []
    hashes: dict[str, str] = {}
    json_files, html_files, rows = [], [], []
    subject_rows = []
    for subject, modes in timelines.items():
        primary = _primary_mode(modes)
        others = [m for m in modes if m != primary]
        companion_tl = modes[others[0]] if others else None
        analysis = analyse_subject(modes[primary], settings=settings, companion=companion_tl)
        companion = (
            analyse_subject(companion_tl, settings=settings, companion=modes[primary])
            if companion_tl is not None
            else None
        )
        analyses.append(analysis)
        subject_results = sorted(
            by_subject[subject], key=lambda r: (str(r.data.get("mode")), r.path.name)
        )
        provenance = _provenance(subject_results, settings)
        for r in subject_results:
            hashes[f"{subject}/{r.data.get('session')}/{r.data.get('mode')}"] = str(r.param_hash)
        summary = _subject_json(analysis, companion, provenance)
        folder = out_dir / f"sub-{subject}"
        json_path = write_json_atomic(folder / f"sub-{subject}_survival.json", summary)
        json_files.append(json_path)
        panels = (
            [_qc_panel(r, out_dir) for r in subject_results if r.data.get("mode") == primary]
            if qc
            else []
        )
        panels.sort(key=lambda p: p["session"])
        html = _template("subject.html.j2").render(
            s=summary,
            analysis=analysis,
            volume_png=figure_png_base64(volume_figure(analysis)),
            survival_png=figure_png_base64(survival_figure(analysis)),
            panels=panels,
            flag_descriptions=FLAG_DESCRIPTIONS,
            provenance_json=json.dumps(provenance, indent=2),
        )
        html_files.append(write_text_atomic(folder / f"sub-{subject}_survival.html", html))
        subject_rows.append(
            {"summary": summary, "html": f"sub-{subject}/sub-{subject}_survival.html"}
        )
        for ses in analysis.sessions:
            p = ses.point
            rows.append(
                {
                    "participant_id": f"sub-{subject}",
                    "session_id": f"ses-{p.session}" if p.session else None,
                    "graft_mode": analysis.timeline.mode,
                    "days": p.days,
                    "days_since_reference": ses.t_days,
                    "graft_volume_mm3": p.volume_mm3,
                    "graft_volume_low_mm3": p.low_mm3,
                    "graft_volume_high_mm3": p.high_mm3,
                    "survival_fraction": ses.survival_fraction,
                    "survival_fraction_low": ses.survival_fraction_low,
                    "survival_fraction_high": ses.survival_fraction_high,
                    "used_in_fit": ses.used_in_fit,
                    "flags": list(ses.flags),
                    "param_hash": hashes.get(f"{subject}/{p.session}/{analysis.timeline.mode}"),
                }
            )
    lines = ["\t".join(COHORT_COLUMNS)]
    lines += ["\t".join(tsv_cell(row[c]) for c in COHORT_COLUMNS) for row in rows]
    tsv = write_text_atomic(out_dir / COHORT_TSV, "\n".join(lines) + "\n")
    cohort = [c.to_json() for c in cohort_summary(analyses)]
    cohort_html = _template("cohort.html.j2").render(
        subjects=subject_rows,
        cohort=cohort,
        cohort_png=figure_png_base64(cohort_figure(analyses)),
        flag_descriptions=FLAG_DESCRIPTIONS,
        version=__version__,
        provenance_json=json.dumps(_provenance(results, settings), indent=2),
    )
    cohort_path = write_text_atomic(out_dir / COHORT_HTML, cohort_html)
    return ReportFiles(tuple(json_files), tuple(html_files), cohort_path, tsv)
