"""``graftimg sample-data``: write a phantom BIDS study with its ground truth."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

__all__ = ["run"]


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[str], None]]:
    """A bar of sessions written on a terminal, one line per session otherwise."""
    from graftimg.cli.run_study import stderr_console

    console = stderr_console()
    done = 0
    if console.is_terminal:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "writing sessions",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("sessions", total=total)
            yield lambda name: bar.update(task, advance=1)
        return

    def line(name: str) -> None:
        nonlocal done
        done += 1
        console.print(f"[{done}/{total}] wrote {name}", markup=False, highlight=False)

    yield line


def run(args: argparse.Namespace) -> int:
    """Entry point of ``graftimg sample-data``."""
    from graftimg.errors import ConfigError, OutputError
    from graftimg.phantom.study import write_study

    if args.subjects < 1 or args.sessions < 1:
        raise ConfigError("--subjects and --sessions must be at least 1")
    with _progress(args.subjects * args.sessions) as step:
        try:
            out = write_study(
                args.out_dir,
                n_subjects=args.subjects,
                n_sessions=args.sessions,
                mode=args.mode,
                seed=args.seed,
                overwrite=args.overwrite,
                on_session=step,
            )
        except OutputError as err:
            if err.hint and "overwrite=True" in err.hint:
                raise OutputError(
                    err.message,
                    path=err.path,
                    hint="choose an empty or new folder, or add --overwrite to replace a study",
                ) from None
            raise
    print(
        f"wrote a phantom study with {args.subjects} subjects × {args.sessions} sessions to {out}"
    )
    print(f"ground truth: {out / 'derivatives' / 'truth'}")
    return 0
