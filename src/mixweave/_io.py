"""Files written whole or not at all: the one temp-file-and-rename helper every writer uses.

A helper below the layers (like ``_validation``): any layer may import it, it imports none.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, flush it to disk and rename it over ``path``.

    A crash or an exception inside the block leaves ``path`` as it was (old
    content or absent) and removes the temporary file. The parent folder is
    created if missing.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "report.txt"
        >>> with atomic_path(target) as tmp:
        ...     _ = tmp.write_text("done")
        >>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
        ('done', ['report.txt'])
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
