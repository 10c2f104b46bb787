"""Discover a longitudinal BIDS study: subjects, sessions, images and the injection metadata.

A small parser of the part of BIDS graftimg needs (``sub-*/ses-*/anat/*.nii[.gz]`` with JSON
sidecars, ``sub-*/sub-*_sessions.tsv``, ``participants.tsv``). The injection is study metadata
in ``participants.tsv`` columns (see ``docs/data.md``). Problems that make the study
unusable raise :class:`~graftimg.errors.BIDSError` subclasses; problems that leave it usable
are recorded as flags on the subject or session, never hidden.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from graftimg.errors import BIDSError, GraftimgWarning, LabelError, MetadataError
from graftimg.modes import MODES

__all__ = [
    "GRAFT_MODES",
    "ImageFile",
    "Injection",
    "SessionInfo",
    "Study",
    "SubjectInfo",
    "check_output_folder",
    "discover_study",
    "parse_entities",
    "read_tsv",
    "validate_label",
]

GRAFT_MODES = MODES
_LABEL_RE = re.compile(r"^[A-Za-z0-9]+$")
_NIFTI_RE = re.compile(r"^(?P<stem>.+)\.nii(\.gz)?$")
_MISSING = {"", "n/a", "na", "nan", "none"}


def validate_label(label: str, kind: str = "subject") -> str:
    """Return a BIDS label without its prefix, refusing anything unsafe.

    BIDS labels are alphanumeric; anything else (path separators, ``..``, spaces, dashes) could
    escape the output folder or break file names, so it is refused.

    Parameters
    ----------
    label : str
        ``"01"`` or ``"sub-01"`` (``"ses-…"`` for sessions).
    kind : {'subject', 'session'}
        What the label names (for the prefix and the message).

    Examples
    --------
    >>> validate_label("sub-01"), validate_label("ses-w2", "session")
    ('01', 'w2')
    >>> validate_label("../etc")
    Traceback (most recent call last):
    ...
    graftimg.errors.LabelError: subject label '../etc' is not allowed: ...
    """
    prefix = "sub-" if kind == "subject" else "ses-"
    text = str(label)
    bare = text[len(prefix) :] if text.startswith(prefix) else text
    if not _LABEL_RE.fullmatch(bare):
        raise LabelError(
            f"{kind} label {text!r} is not allowed: BIDS labels hold only letters and digits "
            "(no '/', '\\', '..', '-', '_' or spaces)",
            hint=f"rename it, e.g. {prefix}01",
        )
    return bare


def parse_entities(filename: str) -> tuple[dict[str, str], str]:
    """Split a BIDS file name into its entities and suffix.

    Examples
    --------
    >>> parse_entities("sub-01_ses-02_acq-sag_T2w.nii.gz")
    ({'sub': '01', 'ses': '02', 'acq': 'sag'}, 'T2w')
    """
    match = _NIFTI_RE.match(filename)
    stem = match.group("stem") if match else filename.split(".")[0]
    parts = stem.split("_")
    entities: dict[str, str] = {}
    for part in parts[:-1]:
        key, sep, value = part.partition("-")
        if sep:
            entities[key] = value
    return entities, parts[-1]


def read_tsv(path: Path) -> list[dict[str, str]]:
    """Read a BIDS TSV into a list of row dictionaries (``n/a`` kept as text).

    Raises
    ------
    MetadataError
        If the file cannot be decoded or a row has the wrong number of columns.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise MetadataError(f"cannot read TSV ({err})", path=path) from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise MetadataError("TSV is empty (it needs a header row)", path=path)
    reader = csv.reader(lines, delimiter="\t")
    header = [h.strip() for h in next(reader)]
    if len(set(header)) != len(header):
        raise MetadataError(f"TSV has duplicate columns {header}", path=path)
    rows = []
    for n, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise MetadataError(
                f"line {n} has {len(row)} columns but the header has {len(header)}",
                path=path,
                hint="BIDS TSV files separate columns with tabs; write n/a for missing values",
            )
        rows.append({h: v.strip() for h, v in zip(header, row)})
    return rows


def _missing(value: str | None) -> bool:
    return value is None or value.strip().lower() in _MISSING


@dataclasses.dataclass(frozen=True)
class Injection:
    """Where and when the cells went in, from ``participants.tsv``.

    Attributes
    ----------
    date : datetime.date or None
        ``injection_date``.
    site_mm : tuple of 3 float or None
        ``injection_x/y/z``: scanner RAS mm in the session named by ``session``.
    session : str or None
        ``injection_session``; default the subject's first session.
    cells_injected : float or None
        ``cells_injected``.
    """

    date: dt.date | None = None
    site_mm: tuple[float, float, float] | None = None
    session: str | None = None
    cells_injected: float | None = None


@dataclasses.dataclass(frozen=True)
class ImageFile:
    """One NIfTI file of the study and what its name says."""

    path: Path
    subject: str
    session: str | None
    suffix: str
    entities: tuple[tuple[str, str], ...]

    @property
    def sidecar(self) -> Path | None:
        """Path of the JSON sidecar if it exists."""
        from graftimg.io.volume import sidecar_path

        side = sidecar_path(self.path)
        return side if side.is_file() else None

    def entity(self, key: str) -> str | None:
        """Value of one entity (``acq``, ``run``, ...), or None."""
        return dict(self.entities).get(key)


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """One scanning session of one subject."""

    subject: str
    label: str | None
    acq_time: dt.datetime | None
    days_since_injection: float | None
    images: tuple[ImageFile, ...]
    flags: tuple[str, ...] = ()
    #: The session's row of ``sub-<label>_sessions.tsv`` (empty when it has none).
    row: tuple[tuple[str, str], ...] = ()
    #: Why the session cannot be analysed (e.g. its folder is unreadable), or None.
    error: str | None = None

    def find(self, *suffixes: str) -> list[ImageFile]:
        """Images whose suffix is one of ``suffixes`` (case-insensitive), in name order."""
        wanted = {s.lower() for s in suffixes}
        return [im for im in self.images if im.suffix.lower() in wanted]


@dataclasses.dataclass(frozen=True)
class SubjectInfo:
    """One subject: its sessions in time order and its injection metadata."""

    label: str
    sessions: tuple[SessionInfo, ...]
    graft_mode: str | None
    injection: Injection
    participant: tuple[tuple[str, str], ...] = ()
    flags: tuple[str, ...] = ()
    #: Why the subject cannot be analysed (e.g. its folder is unreadable), or None.
    error: str | None = None

    def session(self, label: str | None) -> SessionInfo:
        """The session with ``label``."""
        for ses in self.sessions:
            if ses.label == label:
                return ses
        raise BIDSError(
            f"subject {self.label} has no session {label!r}; it has "
            f"{[s.label for s in self.sessions]}"
        )


@dataclasses.dataclass(frozen=True)
class Study:
    """A discovered BIDS study."""

    root: Path
    name: str
    subjects: tuple[SubjectInfo, ...]
    flags: tuple[str, ...] = ()

    def subject(self, label: str) -> SubjectInfo:
        """The subject with ``label`` (with or without ``sub-``)."""
        bare = validate_label(label)
        for sub in self.subjects:
            if sub.label == bare:
                return sub
        raise BIDSError(
            f"no subject {bare!r} in the study; it has {[s.label for s in self.subjects]}",
            path=self.root,
        )

    def summary(self) -> dict[str, Any]:
        """Subjects, sessions, images and days since injection, JSON-ready."""
        return {
            "root": str(self.root),
            "name": self.name,
            "n_subjects": len(self.subjects),
            "n_sessions": sum(len(s.sessions) for s in self.subjects),
            "flags": list(self.flags),
            "subjects": [
                {
                    "subject": sub.label,
                    "graft_mode": sub.graft_mode,
                    "injection_date": None
                    if sub.injection.date is None
                    else sub.injection.date.isoformat(),
                    "injection_site_mm": None
                    if sub.injection.site_mm is None
                    else list(sub.injection.site_mm),
                    "injection_session": sub.injection.session,
                    "cells_injected": sub.injection.cells_injected,
                    "flags": list(sub.flags),
                    "sessions": [
                        {
                            "session": ses.label,
                            "acq_time": None if ses.acq_time is None else ses.acq_time.isoformat(),
                            "days_since_injection": ses.days_since_injection,
                            "images": [im.path.name for im in ses.images],
                            "flags": list(ses.flags),
                        }
                        for ses in sub.sessions
                    ],
                }
                for sub in self.subjects
            ],
        }


def _parse_date(value: str, path: Path, what: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise MetadataError(
            f"{what} {value!r} is not a date in YYYY-MM-DD form", path=path
        ) from None


def _parse_datetime(value: str, path: Path, what: str) -> dt.datetime:
    try:
        stamp = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise MetadataError(
            f"{what} {value!r} is not an ISO 8601 date-time (e.g. 2024-03-01T09:30:00)",
            path=path,
        ) from None
    return stamp.replace(tzinfo=None) if stamp.tzinfo else stamp


def _parse_float(value: str, path: Path, what: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise MetadataError(f"{what} {value!r} is not a number", path=path) from None
    if not math.isfinite(number):
        raise MetadataError(f"{what} {value!r} must be finite", path=path)
    return number


def _participants(root: Path) -> dict[str, dict[str, str]]:
    path = root / "participants.tsv"
    if not path.is_file():
        return {}
    rows = read_tsv(path)
    if rows and "participant_id" not in rows[0]:
        raise MetadataError(
            "participants.tsv has no participant_id column",
            path=path,
            hint="the first column must be participant_id (sub-<label>)",
        )
    table: dict[str, dict[str, str]] = {}
    for row in rows:
        label = validate_label(row["participant_id"])
        if label in table and table[label] != row:
            raise MetadataError(
                f"sub-{label} is listed twice with different values",
                path=path,
                hint="keep one row per participant",
            )
        table[label] = row
    return table


def _injection(row: dict[str, str], path: Path, label: str) -> tuple[Injection, str | None]:
    what = f"sub-{label}"
    date = None
    if not _missing(row.get("injection_date")):
        date = _parse_date(row["injection_date"], path, f"{what} injection_date")
    coords = [row.get(f"injection_{axis}") for axis in "xyz"]
    present = [not _missing(c) for c in coords]
    site = None
    if all(present):
        site = tuple(
            _parse_float(c or "", path, f"{what} injection_{a}") for c, a in zip(coords, "xyz")
        )
    elif any(present):
        raise MetadataError(
            f"{what} has only some of injection_x/y/z",
            path=path,
            hint="give all three (scanner RAS mm) or none (the site is then proposed)",
        )
    session = None
    if not _missing(row.get("injection_session")):
        session = validate_label(row["injection_session"], "session")
    cells = None
    if not _missing(row.get("cells_injected")):
        cells = _parse_float(row["cells_injected"], path, f"{what} cells_injected")
    mode = None
    if not _missing(row.get("graft_mode")):
        mode = row["graft_mode"].strip().lower()
        if mode not in GRAFT_MODES:
            raise MetadataError(
                f"{what} graft_mode {row['graft_mode']!r} is not one of {GRAFT_MODES}", path=path
            )
    return Injection(date, site, session, cells), mode  # type: ignore[arg-type]


def _bids_folders(folder: Path, prefix: str) -> dict[str, Path]:
    """Sub-folders named ``<prefix>-<label>`` by label; other names are skipped with a warning.

    A folder such as ``sub-01_old`` is no BIDS entity: it is left alone (one warning line), so
    one stray folder never makes the whole study unusable.
    """
    kind = "subject" if prefix == "sub" else "session"
    found = {}
    for path in sorted(folder.iterdir()):
        if not (path.name.startswith(f"{prefix}-") and path.is_dir()):
            continue
        try:
            found[validate_label(path.name, kind)] = path
        except LabelError:
            warnings.warn(
                f"{path}: skipped, not a BIDS {kind} folder ({prefix}-<letters and digits>)",
                GraftimgWarning,
                stacklevel=2,
            )
    return found


def _images(folder: Path, subject: str, session: str | None) -> tuple[ImageFile, ...]:
    anat = folder / "anat"
    if not anat.is_dir():
        return ()
    found = []
    for path in sorted(anat.iterdir()):
        if not _NIFTI_RE.match(path.name) or path.name.startswith("."):
            continue
        entities, suffix = parse_entities(path.name)
        if entities.get("sub") != subject or entities.get("ses") != session:
            raise MetadataError(
                f"file name says sub-{entities.get('sub')}"
                + (f"_ses-{entities.get('ses')}" if entities.get("ses") else "")
                + f" but the file is in the folder of sub-{subject}"
                + (f"/ses-{session}" if session else ""),
                path=path,
                hint="rename or move the file so its name matches its folder",
            )
        found.append(ImageFile(path, subject, session, suffix, tuple(entities.items())))
    return tuple(found)


def _readable_images(
    folder: Path, subject: str, session: str | None
) -> tuple[tuple[ImageFile, ...], str | None]:
    """:func:`_images`, with an unreadable folder as a reason instead of an exception."""
    try:
        return _images(folder, subject, session), None
    except OSError as err:
        return (), f"{err.filename or folder}: cannot read the folder ({err.strerror})"


def _sessions_table(sub_dir: Path, label: str) -> dict[str, dict[str, str]] | None:
    path = sub_dir / f"sub-{label}_sessions.tsv"
    if not path.is_file():
        return None
    rows = read_tsv(path)
    if rows and "session_id" not in rows[0]:
        raise MetadataError("sessions.tsv has no session_id column", path=path)
    table = {}
    for row in rows:
        ses = validate_label(row["session_id"], "session")
        if ses in table and table[ses] != row:
            raise MetadataError(f"ses-{ses} is listed twice with different values", path=path)
        table[ses] = row
    return table


def _subject(
    root: Path, sub_dir: Path, label: str, row: dict[str, str] | None, sessions_wanted: set | None
) -> SubjectInfo:
    flags: list[str] = []
    ppath = root / "participants.tsv"
    if row is None:
        injection, mode = Injection(), None
        flags.append("not_in_participants_tsv")
    else:
        injection, mode = _injection(row, ppath, label)
    if mode is None:
        flags.append("graft_mode_missing")
    if injection.date is None:
        flags.append("injection_date_missing")
    if injection.site_mm is None:
        flags.append("injection_site_missing")

    ses_dirs = sorted(_bids_folders(sub_dir, "ses").items())
    table = _sessions_table(sub_dir, label)
    tsv_path = sub_dir / f"sub-{label}_sessions.tsv"
    if table is None and ses_dirs:
        flags.append("sessions_tsv_missing")
    sessions: list[SessionInfo] = []
    if not ses_dirs:
        images, error = _readable_images(sub_dir, label, None)
        if images or error:
            flags.append("no_session_folders")
            sessions.append(
                SessionInfo(label, None, None, None, images, ("acq_time_missing",), error=error)
            )
    on_disk = set()
    for ses, ses_dir in ses_dirs:
        on_disk.add(ses)
        if sessions_wanted is not None and ses not in sessions_wanted:
            continue
        ses_flags = []
        acq_time = None
        if table is not None and ses in table and not _missing(table[ses].get("acq_time")):
            acq_time = _parse_datetime(table[ses]["acq_time"], tsv_path, f"ses-{ses} acq_time")
        else:
            ses_flags.append("acq_time_missing")
        days = None
        if acq_time is not None and injection.date is not None:
            delta = acq_time - dt.datetime.combine(injection.date, dt.time())
            days = round(delta.total_seconds() / 86400.0, 6)
            if days < 0:
                ses_flags.append("before_injection")
        images, error = _readable_images(ses_dir, label, ses)
        if not images and error is None:
            ses_flags.append("no_images")
        ses_row = tuple(table[ses].items()) if table is not None and ses in table else ()
        sessions.append(
            SessionInfo(label, ses, acq_time, days, images, tuple(ses_flags), ses_row, error)
        )
    if table is not None:
        for ses in sorted(set(table) - on_disk):
            flags.append(f"session_missing_on_disk:{ses}")
    if injection.session is not None and injection.session not in on_disk:
        raise MetadataError(
            f"sub-{label} injection_session {injection.session!r} has no folder; sessions on "
            f"disk: {sorted(on_disk)}",
            path=ppath,
            hint="name an existing session (without ses-) or leave it n/a (first session)",
        )

    def order(ses: SessionInfo) -> tuple:
        stamp = ses.acq_time or dt.datetime.max
        return (stamp, ses.label or "")

    sessions.sort(key=order)
    if injection.session is None and sessions and injection.site_mm is not None:
        injection = dataclasses.replace(injection, session=sessions[0].label)
    return SubjectInfo(
        label=label,
        sessions=tuple(sessions),
        graft_mode=mode,
        injection=injection,
        participant=tuple((row or {}).items()),
        flags=tuple(flags),
    )


def discover_study(
    root: str | os.PathLike,
    *,
    participant_labels: Sequence[str] | None = None,
    session_labels: Iterable[str] | None = None,
) -> Study:
    """Index a BIDS study folder.

    Parameters
    ----------
    root : path-like
        The BIDS dataset (holding ``sub-*`` folders and ``participants.tsv``).
    participant_labels, session_labels : sequence of str, optional
        Restrict to these subjects / sessions (labels with or without prefix).

    Returns
    -------
    Study

    Raises
    ------
    BIDSError
        If ``root`` is not a folder, holds no subject, or a requested label is absent.
    LabelError, MetadataError
        For unsafe labels and unreadable or contradictory metadata.
    """
    root = Path(root)
    if not root.is_dir():
        raise BIDSError("not a folder", path=root, hint="give the BIDS dataset's top folder")
    name = root.name
    flags: list[str] = []
    desc = root / "dataset_description.json"
    if desc.is_file():
        import json

        try:
            name = json.loads(desc.read_text(encoding="utf-8")).get("Name", name)
        except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
            raise MetadataError(
                "dataset_description.json is not a JSON object", path=desc
            ) from None
    else:
        flags.append("dataset_description_missing")
    participants = _participants(root)
    sub_dirs = _bids_folders(root, "sub")
    if not sub_dirs:
        raise BIDSError(
            "no sub-* folders: this is not a BIDS dataset", path=root, hint="check the path"
        )
    for label in sorted(set(participants) - set(sub_dirs)):
        flags.append(f"participant_without_folder:{label}")
    wanted = None
    if participant_labels:
        wanted = [validate_label(lab) for lab in participant_labels]
        absent = [lab for lab in wanted if lab not in sub_dirs]
        if absent:
            raise BIDSError(
                f"participant label(s) {absent} not found; the study has {sorted(sub_dirs)}",
                path=root,
            )
    ses_wanted = None
    if session_labels:
        ses_wanted = {validate_label(s, "session") for s in session_labels}
    subjects = []
    for label in sorted(sub_dirs):
        if wanted is not None and label not in wanted:
            continue
        try:
            subject = _subject(root, sub_dirs[label], label, participants.get(label), ses_wanted)
        except OSError as err:
            # One unreadable subject folder leaves the others usable.
            reason = f"{err.filename or sub_dirs[label]}: cannot read ({err.strerror})"
            subject = SubjectInfo(label, (), None, Injection(), error=reason)
        subjects.append(subject)
    return Study(root=root, name=str(name), subjects=tuple(subjects), flags=tuple(flags))


def _dataset_type(folder: Path) -> str | None:
    """``DatasetType`` of the dataset rooted at ``folder`` (``raw`` when unsaid), or None."""
    desc = folder / "dataset_description.json"
    if not desc.is_file():
        return None
    import json

    try:
        data = json.loads(desc.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "raw"
    kind = data.get("DatasetType", "raw") if isinstance(data, dict) else "raw"
    return str(kind).lower()


def check_output_folder(bids_dir: str | os.PathLike, out_dir: str | os.PathLike) -> None:
    """Refuse an output folder where derivatives would mix with raw data.

    Refused: the input dataset itself or any folder inside it except under its
    ``derivatives/``; a folder that holds a raw BIDS dataset, or lies inside one (outside its
    ``derivatives/``). Another tool's derivatives are refused too, so they are never mixed.

    Raises
    ------
    OutputError
        Naming the folder and where to write instead.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> check_output_folder(root / "raw", root / "raw" / "derivatives" / "graftimg")
    >>> check_output_folder(root / "raw", root / "raw" / "sub-01" / "out")
    Traceback (most recent call last):
    ...
    graftimg.errors.OutputError: ...: the output folder is inside the input dataset — ...
    """
    from graftimg.errors import OutputError

    source = Path(bids_dir).resolve()
    out = Path(out_dir).resolve()
    hint = f"write derivatives to {source / 'derivatives' / 'graftimg'} or a folder outside it"
    if out == source:
        raise OutputError("the output folder is the input dataset", path=out_dir, hint=hint)
    if out.is_relative_to(source):
        if out.relative_to(source).parts[0] != "derivatives":
            raise OutputError(
                "the output folder is inside the input dataset", path=out_dir, hint=hint
            )
        if len(out.relative_to(source).parts) == 1:
            raise OutputError(
                "the output folder is the input's derivatives/ folder itself",
                path=out_dir,
                hint=hint,
            )
    # The folder itself, then each parent up to the first derivatives/ folder.
    for folder in (out, *out.parents):
        kind = _dataset_type(folder)
        if kind is not None and kind != "derivative":
            where = "holds" if folder == out else "is inside"
            raise OutputError(
                f"the output folder {where} a raw BIDS dataset ({folder})",
                path=out_dir,
                hint="give a new folder, or one under that dataset's derivatives/",
            )
        if kind == "derivative" and folder == out:
            _refuse_foreign_derivatives(out, out_dir)
        if folder.name == "derivatives" or kind == "derivative":
            break
    if out.is_dir() and _dataset_type(out) is None:  # noqa: SIM102
        if any(p.name.startswith("sub-") for p in out.iterdir()):
            raise OutputError(
                "the output folder holds sub-* folders but no dataset_description.json: it "
                "looks like a BIDS dataset, not graftimg derivatives",
                path=out_dir,
                hint="give a new or empty folder",
            )


def _refuse_foreign_derivatives(out: Path, shown: str | os.PathLike) -> None:
    import json

    from graftimg.errors import OutputError

    try:
        data = json.loads((out / "dataset_description.json").read_text(encoding="utf-8"))
        names = {g.get("Name") for g in data.get("GeneratedBy", []) if isinstance(g, dict)}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        names = set()
    if names and "graftimg" not in names:
        raise OutputError(
            f"the output folder holds derivatives of another tool ({', '.join(sorted(names))})",
            path=shown,
            hint="give a new folder for graftimg's derivatives",
        )
