"""The one error type the ``mixweave`` command reports as a single line (exit code 2)."""

from __future__ import annotations

__all__ = ["CLIError"]


class CLIError(Exception):
    """An error reported to the user as one line, with exit code 2."""
