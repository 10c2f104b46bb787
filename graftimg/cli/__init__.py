"""The ``graftimg`` command line (a thin shell over the library)."""

from graftimg.cli.main import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
