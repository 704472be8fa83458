"""Progress bars for long jobs: on stderr, only when it is a terminal, and never required.

One helper for every long loop (store builds, label-array syncs, store
summaries, large splits). The bar needs rich (the ``cli`` extra): ``None``
shows one when the job is large, stderr is a terminal and rich is installed;
``True`` insists (``ImportError`` naming the extra without rich); ``False``
never shows one. Nothing is ever written to stdout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator

from ._optional import require

__all__ = ["LARGE_JOB_ROWS", "progress_bar", "wanted"]

#: Jobs over at least this many rows show a bar unless told otherwise.
LARGE_JOB_ROWS = 200_000


def wanted(progress: bool | None, total: int | None, large: int = LARGE_JOB_ROWS) -> bool:
    """Whether a bar is shown for a job of ``total`` rows when the caller asked for ``progress``."""
    if progress is None:
        return (
            total is not None
            and total >= large
            and sys.stderr.isatty()
            and importlib.util.find_spec("rich") is not None
        )
    return bool(progress)


@contextlib.contextmanager
def progress_bar(
    description: str, total: int | None, progress: bool | None = None, *, large: int = LARGE_JOB_ROWS
) -> Iterator[Callable[[int], None]]:
    """A context giving ``advance(n)``: a rich bar on stderr when :func:`wanted`, else a no-op.

    >>> with progress_bar("counting", total=10, progress=False) as advance:
    ...     advance(10)
    """
    if not wanted(progress, total, large):
        yield lambda n: None
        return
    rich_progress = require("rich.progress", extra="cli", feature="progress bars")
    rich_console = require("rich.console", extra="cli", feature="progress bars")
    with rich_progress.Progress(transient=True, console=rich_console.Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
