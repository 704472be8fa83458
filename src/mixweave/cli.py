"""The ``mixweave`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._version import __version__

__all__ = ["build_parser", "main"]


class CLIError(Exception):
    """An error reported to the user as one line, with exit code 2."""


def _cmd_demo(args: argparse.Namespace) -> int:
    print("mixweave demo: not yet implemented (tracked in the demo issue); nothing to run.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mixweave`` command (subcommands included)."""
    parser = argparse.ArgumentParser(
        prog="mixweave",
        description="Control what a PyTorch model sees: weighted mixing, balancing and curricula.",
    )
    parser.add_argument("--version", action="version", version=f"mixweave {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser("demo", help="run the demonstration on bundled data")
    demo.set_defaults(func=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixweave`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (CLIError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"mixweave: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
