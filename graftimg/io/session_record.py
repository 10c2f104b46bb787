"""The session record: what ``OUT_PREFIX_graft.json`` holds, as a versioned pydantic model.

The pipeline writes one record per segmented session; the study table, the survival reports and
scripts read it. Its JSON Schema is published as ``docs/session_record.schema.json``
(regenerate with ``python -m graftimg.io.session_record > docs/session_record.schema.json``).
Fields not listed here are kept as they are (the record grows with the methods), so the model
describes the part readers rely on and checks its types.

``schema_version`` changes its major number when a listed field changes meaning, name or type,
its minor number when fields are added. Version 2.0 named the threshold sweep's part of the
band after the band's ends, ``low`` and ``high`` (docs/conventions.md), and gave each flag one
name; :func:`read_session_result` reads a 1.x record in the names of today
(:data:`RENAMED_KEYS`, :data:`RENAMED_FLAGS`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from graftimg.errors import MetadataError
from graftimg.io.jsonable import jsonable
from graftimg.modes import Mode

__all__ = [
    "RENAMED_FLAGS",
    "RENAMED_KEYS",
    "SCHEMA_VERSION",
    "Provenance",
    "SessionRecord",
    "find_session_results",
    "json_schema",
    "read_session_result",
    "record_json",
    "upgrade_record",
]

SCHEMA_VERSION = "2.0"

#: Keys of a 1.x record → their name since 2.0 (the band's ends are ``low`` and ``high``).
RENAMED_KEYS = {
    "graft_volume_k_plus_1_mm3": "graft_volume_low_mask_mm3",
    "graft_volume_k_minus_1_mm3": "graft_volume_high_mask_mm3",
}
#: Flags of a 1.x record → their name since 2.0.
RENAMED_FLAGS = {"registration_poor": "poor_registration"}


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Provenance(_Open):
    """What made the record: software, versions, resolved parameters, input hashes, time."""

    software: str = Field(description="Always 'graftimg'.")
    version: str = Field(description="graftimg version.")
    python: str | None = Field(None, description="Python version.")
    libraries: dict[str, str | None] | None = Field(
        None, description="Versions of numpy, scipy, SimpleITK, nibabel, scikit-image."
    )
    params: dict[str, Any] = Field(description="Every parameter as resolved (defaults included).")
    params_hash: str = Field(description="Short hash of params: rows with one hash compare.")
    inputs: dict[str, dict[str, str]] = Field(
        description="Named input files, each with its path and sha256."
    )
    time_utc: str = Field(description="When the record was made (ISO 8601, UTC).")


class SessionRecord(_Open):
    """One segmented session: graft volumes with their band, the cord, flags and provenance.

    Volumes are in mm³; a volume is ``null`` (never 0) when it could not be measured, with the
    reason in ``graft_volume_null_reason``.

    Examples
    --------
    >>> record = SessionRecord.model_validate(
    ...     {"mode": "t2", "flags": ["low_snr"], "graft_volume_mm3": None,
    ...      "graft_volume_null_reason": "no trustworthy reference", "voxel_size_mm": [1, 1, 2],
    ...      "provenance": {"software": "graftimg", "version": "0.1.0", "params": {},
    ...                     "params_hash": "0", "inputs": {}, "time_utc": "2026-01-01T00:00:00"},
    ...      "extra_field": 1})
    >>> record.schema_version, record.voxel_size_mm, record.model_dump()["extra_field"]
    ('2.0', [1.0, 1.0, 2.0], 1)
    """

    schema_version: str = Field(SCHEMA_VERSION, description="Version of this record's layout.")
    mode: Mode = Field(description="Graft mode: 'iron' (signal void) or 't2' (bright graft).")
    scale: str | None = Field(None, description="'human' or 'rodent' (sets default sizes).")
    source: str | None = Field(None, description="The image segmented.")
    flags: list[str] = Field(description="What deserves a look (docs/flags.md).")
    graft_volume_mm3: float | None = Field(description="Binary graft volume.")
    graft_volume_pv_mm3: float | None = Field(None, description="Partial-volume-weighted volume.")
    graft_volume_low_mm3: float | None = Field(None, description="Low end of the band.")
    graft_volume_high_mm3: float | None = Field(None, description="High end of the band.")
    graft_volume_null_reason: str | None = Field(
        None, description="Why the graft volume is null (absent when it was measured)."
    )
    graft_n_voxels: int | None = Field(None, description="Voxels in the graft mask.")
    cyst_volume_mm3: float | None = Field(None, description="t2 mode: cyst volume.")
    cyst_volume_pv_mm3: float | None = Field(
        None, description="t2 mode: cyst volume, partial-volume weighted."
    )
    cord_volume_mm3: float | None = Field(None, description="Cord volume in the image.")
    voxel_size_mm: list[float] = Field(description="Voxel size (canonical x, y, z).")
    injection_site_mm: list[float] | None = Field(
        None, description="Injection site, scanner RAS mm."
    )
    injection_site_source: str | None = Field(
        None, description="Where the site came from: given, proposed, registration, ..."
    )
    components: list[dict[str, Any]] = Field(
        default_factory=list, description="Connected components of the graft, one row each."
    )
    outputs: dict[str, str] = Field(
        default_factory=dict, description="Files written beside the record (names)."
    )
    provenance: Provenance


def record_json(summary: dict[str, Any]) -> dict[str, Any]:
    """A session summary checked against :class:`SessionRecord`, as JSON values to write.

    Adds ``schema_version``; NaN becomes ``null``; keys the summary does not have stay absent.

    Examples
    --------
    >>> out = record_json({"mode": "iron", "flags": [], "graft_volume_mm3": float("nan"),
    ...                    "voxel_size_mm": (0.5, 0.5, 3), "provenance": {
    ...                        "software": "graftimg", "version": "0", "params": {},
    ...                        "params_hash": "0", "inputs": {}, "time_utc": "now"}})
    >>> out["schema_version"], out["graft_volume_mm3"], "cyst_volume_mm3" in out
    ('2.0', None, False)
    """
    values = {**jsonable(summary), "schema_version": SCHEMA_VERSION}
    return SessionRecord.model_validate(values).model_dump(mode="json", exclude_unset=True)


def find_session_results(
    out_dir: str | os.PathLike, kind: Literal["graft", "failed"] = "graft"
) -> list[Path]:
    """Every session result file of one kind under a ``graftimg run`` output folder, sorted.

    Parameters
    ----------
    out_dir : path-like
        The derivatives folder.
    kind : {'graft', 'failed'}
        ``graft``: the records of finished sessions (``sub-*/**/*_graft.json``); ``failed``: the
        reasons of failed ones (``*_failed.json``).

    Returns
    -------
    list of Path
        Files in hidden folders (a run's temporary files) are left out.
    """
    out_dir = Path(out_dir)
    return sorted(
        path
        for path in out_dir.glob(f"sub-*/**/*_{kind}.json")
        if not any(part.startswith(".") for part in path.relative_to(out_dir).parts)
    )


def read_session_result(path: str | os.PathLike) -> dict[str, Any]:
    """A session result file (``*_graft.json`` or ``*_failed.json``) as its JSON object.

    The one reader of these files: the study table, the survival reports and the rerun check
    all read them here.

    Parameters
    ----------
    path : path-like
        The file.

    Returns
    -------
    dict
        The record as written.

    Raises
    ------
    MetadataError
        When the file cannot be read or does not hold a JSON object.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict):
        raise MetadataError("session result is unreadable", path=path, hint="rerun that session")
    return upgrade_record(data)


def upgrade_record(data: dict[str, Any]) -> dict[str, Any]:
    """A record of an older layout in the names of today (a current record is returned as is).

    Keys renamed since (:data:`RENAMED_KEYS`) take their new name, and so do renamed flags
    (:data:`RENAMED_FLAGS`) in ``flags``, ``study_flags`` and ``cord.flags``; nothing else
    changes. A record without ``schema_version`` (a failed session's reason, or a record
    written before versions) is read as 1.x.

    Examples
    --------
    >>> old = {"schema_version": "1.0", "graft_volume_low_mm3": 1.5,
    ...        "graft_volume_k_plus_1_mm3": 1.2, "flags": ["registration_poor"]}
    >>> new = upgrade_record(old)
    >>> new["graft_volume_low_mm3"], new["graft_volume_low_mask_mm3"], new["flags"]
    (1.5, 1.2, ['poor_registration'])
    >>> "graft_volume_k_plus_1_mm3" in new
    False
    """
    version = str(data.get("schema_version") or "1.0")
    if int(version.split(".")[0]) >= 2:
        return data

    def flags(values: Any) -> Any:
        if not isinstance(values, list):
            return values
        return [RENAMED_FLAGS.get(f, f) if isinstance(f, str) else f for f in values]

    out = {RENAMED_KEYS.get(key, key): value for key, value in data.items()}
    for key in ("flags", "study_flags"):
        if key in out:
            out[key] = flags(out[key])
    if isinstance(out.get("cord"), dict) and "flags" in out["cord"]:
        out["cord"] = {**out["cord"], "flags": flags(out["cord"]["flags"])}
    return out


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`SessionRecord` (what docs/session_record.schema.json holds)."""
    schema = SessionRecord.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"graftimg-session-record-{SCHEMA_VERSION}"
    return schema


if __name__ == "__main__":  # pragma: no cover - the docs generator
    sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
