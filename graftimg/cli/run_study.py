"""``graftimg run``: a BIDS-App over a whole study (participant and group levels)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, add_load_options: Callable) -> None:
    """Register ``run``."""
    p = sub.add_parser(
        "run",
        help="analyse a BIDS study (BIDS-App: participant level, then group level)",
        description="Analyse every session of a BIDS study (participant level) into a BIDS "
        "derivatives dataset, then gather one table (group level). Loader choices "
        "(affine_from, volume_index, nonfinite) go in the configuration's load: section.",
    )
    p.add_argument("bids_dir", metavar="BIDS_DIR")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("level", choices=("participant", "group"), help="analysis level")
    p.add_argument(
        "--participant-label", nargs="+", metavar="L", help="only these subjects (without sub-)"
    )
    p.add_argument(
        "--session-label", nargs="+", metavar="S", help="only these sessions (without ses-)"
    )
    p.add_argument(
        "--config",
        metavar="FILE",
        help="pipeline configuration (YAML; its load: section sets affine_from, volume_index "
        "and nonfinite)",
    )
    p.set_defaults(func=run)


def stderr_console() -> Any:
    """A rich console on stderr that never wraps a line (paths stay whole)."""
    from rich.console import Console

    console = Console(stderr=True, soft_wrap=True)
    if not console.is_terminal:
        console = Console(stderr=True, soft_wrap=True, width=10_000)
    return console


class _Feedback:
    """A progress bar (done/total, failures, time left) on a terminal; plain lines otherwise."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.progress: Any = None
        self.task: Any = None
        self.total = 0
        self.finished = 0
        self.failed = 0
        self.started = time.monotonic()

    def planned(self, jobs: list) -> None:
        self.total = len(jobs)
        self.started = time.monotonic()
        if self.console.is_terminal and self.total:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("sessions"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                TextColumn("· left"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.progress.add_task("sessions", total=self.total, failed=0)
            self.progress.start()

    def _eta(self) -> str:
        if not self.finished or self.finished >= self.total:
            return ""
        left = (time.monotonic() - self.started) / self.finished * (self.total - self.finished)
        return f", about {left:.0f} s left"

    def outcome(self, outcome: Any) -> None:
        from graftimg.report.volume_text import graft_volume_text

        self.finished += 1
        job = outcome.job
        if outcome.status == "failed":
            self.failed += 1
            line, style = f"failed {job.name}: {outcome.message}", "red"
        elif outcome.status in ("skipped", "busy"):
            line, style = f"{outcome.status} {job.name}: {outcome.message}", None
        else:
            volume = graft_volume_text(outcome.summary or {})
            line, style = f"done {job.name} ({job.mode}): {volume}", None
        counter = f"[{self.finished}/{self.total}{self._eta()}] "
        self.console.print(counter + line, markup=False, highlight=False, style=style)
        if self.progress is not None:
            self.progress.update(self.task, completed=self.finished, failed=self.failed)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg run``."""
    from graftimg.pipeline.config import load_config
    from graftimg.pipeline.study import run_group, run_participants

    console = stderr_console()
    if args.level == "group":
        from pathlib import Path

        from graftimg.report.survival_report import COHORT_HTML, COHORT_TSV

        table = run_group(args.out_dir, args.bids_dir)
        print(f"wrote {table}")
        out = Path(args.out_dir)
        print(f"wrote {out / COHORT_TSV} and per subject sub-X/sub-X_survival.json and .html")
        print(f"report: {out / COHORT_HTML}")
        return 0
    config = load_config(args.config)
    feedback = _Feedback(console)
    try:
        outcomes, problems = run_participants(
            args.bids_dir,
            args.out_dir,
            participant_labels=args.participant_label,
            session_labels=args.session_label,
            config=config,
            on_planned=feedback.planned,
            on_outcome=feedback.outcome,
            debug=getattr(args, "debug", False),
        )
    finally:
        feedback.close()
    for line in problems:
        console.print(f"not analysed {line}", markup=False, highlight=False, style="yellow")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "skipped", "failed")}
    busy = sum(o.status == "busy" for o in outcomes)
    unmeasured = sum(
        o.status == "done" and "graft_volume_null_reason" in (o.summary or {}) for o in outcomes
    )
    note = f" ({unmeasured} with the graft not measured: see the reason)" if unmeasured else ""
    busy_note = f", {busy} left to another run in progress" if busy else ""
    print(
        f"{counts['done']} sessions done{note}, {counts['skipped']} skipped (already done), "
        f"{counts['failed']} failed{busy_note}"
    )
    return 1 if counts["failed"] or problems else 0
