"""``graftimg run``: a BIDS-App over a whole study (participant and group levels)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, add_load_options: Callable) -> None:
    """Register ``run``."""
    p = sub.add_parser(
        "run",
        help="analyse a BIDS study (BIDS-App: participant level, then group level)",
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
    p.add_argument("--config", metavar="FILE", help="pipeline configuration (YAML)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg run``."""
    from rich.console import Console

    from graftimg.pipeline.config import load_config
    from graftimg.pipeline.study import run_group, run_participants
    from graftimg.report.volume_text import graft_volume_text

    console = Console(stderr=True)
    if args.level == "group":
        table = run_group(args.out_dir)
        print(f"wrote {table}")
        return 0
    config = load_config(args.config)

    def report(outcome) -> None:
        job = outcome.job
        name = f"sub-{job.subject}" + (f"_ses-{job.session}" if job.session else "")
        if outcome.status == "failed":
            console.print(f"failed {name}: {outcome.message}", markup=False, style="red")
        elif outcome.status == "skipped":
            console.print(f"skipped {name}: {outcome.message}", markup=False)
        else:
            console.print(
                f"done {name} ({job.mode}): {graft_volume_text(outcome.summary or {})}",
                markup=False,
            )

    outcomes, problems = run_participants(
        args.bids_dir,
        args.out_dir,
        participant_labels=args.participant_label,
        session_labels=args.session_label,
        config=config,
        on_outcome=report,
    )
    for line in problems:
        console.print(f"not analysed {line}", markup=False, style="yellow")
    failed = sum(o.status == "failed" for o in outcomes)
    done = sum(o.status == "done" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    unmeasured = sum(
        o.status == "done" and "graft_volume_null_reason" in (o.summary or {}) for o in outcomes
    )
    note = f" ({unmeasured} with the graft not measured: see the reason)" if unmeasured else ""
    print(f"{done} sessions done{note}, {skipped} skipped (already done), {failed} failed")
    return 1 if failed or problems else 0
