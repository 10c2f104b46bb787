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

The package holds a module per idea: :mod:`~graftimg.pipeline.study.jobs` (planning, output
names), :mod:`~graftimg.pipeline.study.manifest` (what a result follows from),
:mod:`~graftimg.pipeline.study.run` (the participant level),
:mod:`~graftimg.pipeline.study.group` (the group table),
:mod:`~graftimg.pipeline.study.derivatives` (the dataset's own files) and
:mod:`~graftimg.pipeline.study.reasons` (a failure as one line).
"""

from graftimg.pipeline.study.derivatives import BIDS_VERSION
from graftimg.pipeline.study.group import GROUP_COLUMNS, run_group
from graftimg.pipeline.study.jobs import SessionJob, SessionOutcome, plan_study, session_outputs
from graftimg.pipeline.study.manifest import job_manifest
from graftimg.pipeline.study.run import run_job, run_participants

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
