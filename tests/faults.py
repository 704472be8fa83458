"""Fault injection for the store tests: a full disk, and a process killed at a chosen step.

Reusable: the next change to the store is checked the same way (docs/reliability.md).

* :func:`disk_full` makes the files a module opens for writing fail with ``ENOSPC``
  once ``budget`` bytes have been written -- on ``write``, ``flush`` and ``close``,
  as a real full disk does when buffered data reaches it.
* :data:`KILL_AT_CALL` is a script prefix for a child process: it wraps a function
  so that the process SIGKILLs itself (no cleanup, no ``finally``) on its n-th call.
"""

from __future__ import annotations

import builtins
import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


class _FullDiskFile:
    """A writable file whose disk fills up after ``budget`` bytes (shared by all files of one injection)."""

    def __init__(self, real: Any, budget: list[int]) -> None:
        self._real, self._budget = real, budget

    def _spend(self, n: int) -> None:
        self._budget[0] -= n
        if self._budget[0] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(self, data: bytes) -> int:
        self._spend(len(data))
        return int(self._real.write(data))

    def flush(self) -> None:
        if self._budget[0] < 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._real.flush()

    def close(self) -> None:
        try:
            self.flush()  # a full disk fails again when the buffer is flushed on close
        finally:
            self._real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __enter__(self) -> _FullDiskFile:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextmanager
def disk_full(monkeypatch: pytest.MonkeyPatch, module: Any, budget: int) -> Iterator[list[int]]:
    """Files ``module`` opens for writing fail with ENOSPC after ``budget`` bytes in all (yields the budget left)."""
    left = [budget]
    real_open = builtins.open

    def fake_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(file, mode, *args, **kwargs)
        return _FullDiskFile(handle, left) if any(c in mode for c in "wa+") else handle

    monkeypatch.setattr(module, "open", fake_open, raising=False)  # the module's global shadows the builtin
    yield left


#: Prepend to a child script, then ``kill_at_call(module, "name", n)``: the n-th call of ``module.name``
#: runs the real function and then SIGKILLs the process (``after=False``: before the real function runs).
KILL_AT_CALL = """
import os, signal

def kill_at_call(owner, name, n, after=True):
    real = getattr(owner, name)
    calls = [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n and not after:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        if calls[0] == n and after:
            os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, wrapper)
"""
