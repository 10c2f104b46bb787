"""The ``graftimg`` command: argument parsing, dispatch, and errors as one clear line.

Every sub-command is a thin shell over library functions. ``main(argv)`` returns the exit code
so tests call it in-process; :func:`run` is the console-script entry point.

Exit codes: 0 success, 1 a graftimg error (bad input, failed step, a file that cannot be read
or written, out of memory), 2 a usage error, 3 an unexpected internal error, 130 interrupted.
Messages go to stderr on one line each, never wrapped, so paths stay whole.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence

from graftimg._version import __version__
from graftimg.errors import GraftimgError

__all__ = ["build_parser", "main", "run"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting, so ``main`` keeps control."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(f"{self.prog}: {message}")


class _UsageError(Exception):
    pass


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("loading")
    group.add_argument(
        "--affine-from",
        choices=("header", "sform", "qform"),
        default="header",
        help="which header transform to trust when qform and sform disagree (default: refuse)",
    )
    group.add_argument(
        "--volume-index", type=int, default=None, help="volume of a 4D series to use"
    )
    group.add_argument(
        "--nonfinite",
        choices=("raise", "zero"),
        default="raise",
        help="NaN/Inf voxels: refuse the image (default) or set them to 0",
    )


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to render the command-line docs)."""
    from graftimg.cli import info as info_cmd
    from graftimg.cli import sample_data as sample_cmd

    parser = _Parser(
        prog="graftimg",
        description="Track transplanted stem-cell grafts in spinal cord MRI over time.",
    )
    parser.add_argument("--version", action="version", version=f"graftimg {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks for unexpected errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", help="describe an image, or summarise a BIDS study folder")
    p.add_argument("path", metavar="IMAGE", help="a NIfTI file or a BIDS study folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_load_options(p)
    p.set_defaults(func=info_cmd.run)

    p = sub.add_parser("sample-data", help="write a phantom BIDS study with ground truth")
    p.add_argument("out_dir", metavar="OUT_DIR")
    p.add_argument("--subjects", type=int, default=2, help="number of subjects (default 2)")
    p.add_argument("--sessions", type=int, default=4, help="sessions per subject (default 4)")
    p.add_argument(
        "--mode",
        choices=("iron", "t2"),
        default=None,
        help="graft mode of every subject (default: alternate iron and t2)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace OUT_DIR if it already holds files"
    )
    p.set_defaults(func=sample_cmd.run)

    _register_optional(sub)
    return parser


def _register_optional(sub: argparse._SubParsersAction) -> None:
    """Sub-commands living in their own modules register themselves here."""
    import importlib

    for name in ("segment_cord", "segment", "register", "run_study", "report", "view"):
        try:
            module = importlib.import_module(f"graftimg.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"graftimg.cli.{name}":
                raise
            continue
        module.add_parser(sub, _add_load_options)


@contextlib.contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    def show(message, category, filename, lineno, file=None, line=None):
        print(f"graftimg: warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = show
        yield


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` and return the exit code.

    Examples
    --------
    >>> main(["--version"])
    graftimg ...
    0
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser()
        args = parser.parse_args(args_list)
    except _UsageError as err:
        print(f"{err}\nTry 'graftimg --help'.", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as err:  # --help and --version
        return int(err.code or 0)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        with _warnings_to_stderr():
            return int(func(args) or 0)
    except GraftimgError as err:
        print(f"graftimg: error: {err}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # output piped into e.g. `head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print("graftimg: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except MemoryError:
        print(
            "graftimg: error: out of memory — free memory, or run on a larger machine; a small "
            "file that needs much memory may be corrupt",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(
            f"graftimg: error: {where}{err.strerror or err} — check that the file is readable "
            "and the output folder writable",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except Exception as err:
        if getattr(args, "debug", False):
            raise
        print(
            f"graftimg: internal error: {type(err).__name__}: {err} (this is a bug; rerun "
            "with --debug for the traceback and report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
