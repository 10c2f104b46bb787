"""Provenance records: what made an output, from what, with which parameters, when.

Every output graftimg writes carries a provenance block with the graftimg version, the resolved
parameters and their hash, the hash of every input file, and the time (UTC).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from graftimg._version import __version__

__all__ = ["LIBRARIES", "file_sha256", "library_versions", "params_hash", "provenance_record"]

#: The libraries whose numbers go into a result, by distribution name.
LIBRARIES = ("numpy", "scipy", "SimpleITK", "nibabel", "scikit-image")


def file_sha256(path: str | os.PathLike, *, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, hex encoded.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:12]
    'ba7816bf8f01'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Installed version of each of :data:`LIBRARIES` (``None`` when it is not installed).

    Read from the installed distributions' metadata, so nothing is imported.

    Examples
    --------
    >>> sorted(library_versions())
    ['SimpleITK', 'nibabel', 'numpy', 'scikit-image', 'scipy']
    """
    out: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def params_hash(params: Mapping[str, Any]) -> str:
    """Short, stable hash of a parameter set (key order does not matter).

    Examples
    --------
    >>> params_hash({"k": 3, "mode": "iron"}) == params_hash({"mode": "iron", "k": 3})
    True
    """
    return hashlib.sha256(_canonical_json(params).encode()).hexdigest()[:16]


def provenance_record(
    *, params: Mapping[str, Any], inputs: Mapping[str, str | os.PathLike] | None = None
) -> dict[str, Any]:
    """Build the provenance block stored in every output's JSON.

    Parameters
    ----------
    params : Mapping
        The fully resolved parameters (defaults included).
    inputs : Mapping of str to path, optional
        Named input files; each is recorded with its SHA-256.

    Returns
    -------
    dict
        ``software``, ``version``, ``python``, ``libraries`` (:func:`library_versions`),
        ``params``, ``params_hash``, ``inputs`` and ``time_utc``.
    """
    return {
        "software": "graftimg",
        "version": __version__,
        "python": platform.python_version(),
        "libraries": library_versions(),
        "params": json.loads(_canonical_json(params)),
        "params_hash": params_hash(params),
        "inputs": {
            name: {"path": str(Path(path)), "sha256": file_sha256(path)}
            for name, path in (inputs or {}).items()
        },
        "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
