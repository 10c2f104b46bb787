"""``graftimg report``: survival reports of a finished study (per subject and cohort)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction, add_load_options: Callable) -> None:
    """Register ``report``."""
    p = sub.add_parser(
        "report",
        help="survival reports (per subject JSON + HTML, cohort HTML + TSV) of a run's output",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="output folder of 'graftimg run'")
    p.add_argument(
        "--acute-window-days",
        type=float,
        default=None,
        metavar="D",
        help="sessions before day D are in the acute window (default 7 rodent, 14 human)",
    )
    p.add_argument("--no-qc", action="store_true", help="leave the QC overlays out")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg report``."""
    from graftimg.errors import ConfigError
    from graftimg.longitudinal import SurvivalSettings
    from graftimg.report.survival_report import write_survival_reports

    if args.acute_window_days is not None and args.acute_window_days < 0:
        raise ConfigError(
            f"--acute-window-days must be ≥ 0, got {args.acute_window_days}",
            hint="give the days after injection during which sessions are acute",
        )
    files = write_survival_reports(
        args.out_dir,
        settings=SurvivalSettings(acute_window_days=args.acute_window_days),
        qc=not args.no_qc,
    )
    for path in files.subject_html:
        print(f"wrote {path}")
    print(f"wrote {files.cohort_tsv}")
    print(f"report: {files.cohort_html}")
    return 0
