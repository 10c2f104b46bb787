"""``graftimg sample-data``: write a phantom BIDS study with its ground truth."""

from __future__ import annotations

import argparse

__all__ = ["run"]


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg sample-data``."""
    from graftimg.errors import ConfigError
    from graftimg.phantom.study import write_study

    if args.subjects < 1 or args.sessions < 1:
        raise ConfigError("--subjects and --sessions must be at least 1")
    out = write_study(
        args.out_dir,
        n_subjects=args.subjects,
        n_sessions=args.sessions,
        mode=args.mode,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(
        f"wrote a phantom study with {args.subjects} subjects × {args.sessions} sessions to {out}"
    )
    print(f"ground truth: {out / 'derivatives' / 'truth'}")
    return 0
