"""A failed session's reason: one line naming the file and what to do inside ``graftimg run``."""

from __future__ import annotations

import copy

from graftimg.errors import GraftimgError
from graftimg.pipeline.study.jobs import SessionJob

__all__ = ["failure_reason"]

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


def failure_reason(err: BaseException, job: SessionJob) -> str:
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
