"""Layer 6, the face: the ``mixweave`` command. Each sub-command lives in its own module and calls the library's
public API only.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import zipfile
from collections.abc import Sequence

from .._optional import require
from .._version import __version__
from . import cmd_demo, cmd_pipeline, cmd_split, cmd_store
from .errors import CLIError

__all__ = ["CLIError", "build_parser", "main"]

#: The command modules, in the order ``mixweave --help`` lists them; each registers itself with ``add_parser``.
_COMMANDS = (cmd_demo, cmd_split, cmd_store, cmd_pipeline)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mixweave`` command (subcommands included)."""
    parser = argparse.ArgumentParser(
        prog="mixweave",
        description="Control what a PyTorch model sees: weighted mixing, balancing and curricula.",
    )
    parser.add_argument("--version", action="version", version=f"mixweave {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixweave`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        require("rich", extra="cli", feature="the mixweave command")  # its tables and progress bars
        return int(args.func(args))
    except (CLIError, ValueError, TypeError, OSError, sqlite3.Error, zipfile.BadZipFile, ImportError) as exc:
        # OSError: missing files, a path through a file (NotADirectoryError), no permission, a full disk;
        # sqlite3.Error: a damaged store database; BadZipFile: a truncated .npz; ImportError: a missing extra
        print(f"mixweave: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError as exc:  # e.g. inspect of an epoch of 10^12 samples: every index of a plan is drawn
        print(
            f"mixweave: error: not enough memory ({exc or 'MemoryError'}); is an epoch this long meant?",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
