"""The derivatives dataset's own files: its description, ``.bidsignore`` and mask sidecars."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from graftimg._version import __version__
from graftimg.io.atomic import write_json_atomic, write_text_atomic
from graftimg.pipeline.study.jobs import SessionJob, bids_uri
from graftimg.provenance import params_hash

__all__ = ["BIDS_VERSION", "describe_dataset", "mask_sidecar"]

#: BIDS version the derivatives follow.
BIDS_VERSION = "1.10.0"

#: Files of the derivatives dataset that BIDS has no name for (listed in ``.bidsignore``).
_BIDSIGNORE = (
    "*_graft.json",
    "*_failed.json",
    "graft_volumes.*",
    "sub-*/figures/",
    "*_survival.*",
    "survival.*",
)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def mask_sidecar(job: SessionJob, label: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The JSON sidecar of a session's ``label`` mask (``graft``, ``cord``, ``cyst``)."""
    sources = [bids_uri(job, job.image)]
    if label == "cord" and job.cord_from is not None:
        sources.append(bids_uri(job, job.cord_from))
    return {
        "Description": f"graftimg {label} mask in the grid of the {job.image_suffix} image",
        "Type": "ROI",
        "Sources": sources,
        "GraftMode": job.mode,
        "Parameters": manifest["parameters"],
        "ParametersHash": params_hash(manifest["parameters"]),
        "GraftimgVersion": __version__,
    }


def _code_url() -> str:
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        for entry in metadata.metadata("graftimg").get_all("Project-URL") or []:
            label, _, url = entry.partition(",")
            if label.strip().lower() in ("source", "repository", "homepage"):
                return url.strip()
    return "https://pypi.org/project/graftimg/"


def describe_dataset(out_dir: Path, source: Path) -> None:
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
