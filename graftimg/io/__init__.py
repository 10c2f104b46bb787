"""Input and output: NIfTI volumes with exact geometry, BIDS studies, crash-safe writes.

Only this stage builds a :class:`Volume` from a file; every other stage works on arrays.
"""

from graftimg.io.atomic import atomic_path, write_json_atomic, write_text_atomic
from graftimg.io.bids import (
    GRAFT_MODES,
    ImageFile,
    Injection,
    SessionInfo,
    Study,
    SubjectInfo,
    discover_study,
    validate_label,
)
from graftimg.io.volume import Volume, load_volume, read_sidecar, save_like, sidecar_path

__all__ = [
    "GRAFT_MODES",
    "ImageFile",
    "Injection",
    "SessionInfo",
    "Study",
    "SubjectInfo",
    "Volume",
    "atomic_path",
    "discover_study",
    "load_volume",
    "read_sidecar",
    "save_like",
    "sidecar_path",
    "validate_label",
    "write_json_atomic",
    "write_text_atomic",
]
