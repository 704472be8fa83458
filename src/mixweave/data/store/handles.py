"""What each process and thread of a store's readers opens for itself: SQLite connections, memmaps, the cache.

A dataset is pickled into DataLoader workers without any of this; each
process opens its own on first use (SQLite forbids sharing a connection
across fork), and each thread its own connection.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable

import numpy as np

from .cache import SlotCache

__all__ = ["ProcessHandles"]

_FORKED_CONNECTIONS: list[sqlite3.Connection] = []  # inherited across fork: never used, never closed


class ProcessHandles:
    """Lazily opened, per-process resources of one dataset.

    Args:
        connect: opens a new SQLite connection.
        open_maps: maps the embedding (and label array) files: name -> array.
        cache_size, size: the sample cache's capacity and the dataset's length.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        open_maps: Callable[[], dict[str, np.ndarray]],
        cache_size: int,
        size: int,
    ) -> None:
        self._connect, self._open_maps = connect, open_maps
        self._cache_size, self._size = cache_size, size
        self.cache = SlotCache(cache_size, size)
        self._local = threading.local()
        self._maps: dict[str, np.ndarray] = {}
        self._maps_pid = -1
        self._maps_lock = threading.Lock()
        self._opened: list[tuple[int, sqlite3.Connection]] = []  # (pid, connection) of every thread
        self.closed = False

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O on a closed ClusterLabeledDataset: open the store again")

    def close(self) -> None:
        """Close this process's connections and drop its memmaps and cache; later reads raise ``ValueError``.

        A connection of another thread cannot be closed from here (SQLite
        refuses); it is closed when that thread's handle is collected.
        """
        self.closed = True
        pid = os.getpid()
        with self._maps_lock:
            self._maps, self._maps_pid = {}, -1
        for owner, con in self._opened:
            if owner == pid:
                with contextlib.suppress(sqlite3.ProgrammingError):  # another thread's connection
                    con.close()
        self._opened = []
        self._local = threading.local()
        self.cache = SlotCache(0, self._size)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use in this process."""
        self._check_open()
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:
            old = getattr(local, "con", None)
            if old is not None:  # inherited through fork: SQLite forbids using it, and closing it could
                _FORKED_CONNECTIONS.append(old)  # disturb the parent's locks; keep it alive, untouched
                self.cache = SlotCache(self._cache_size, self._size)  # the parent's cache and counters are not ours
            elif len(self.cache):
                # Rows cached by another thread, or by a parent process before it opened a connection:
                # commits since they were read are invisible to this new connection's data_version.
                self.cache.invalidate()
            local.con = self._connect()
            self._opened = [(p, c) for p, c in self._opened if p == pid] + [(pid, local.con)]
            local.pid = pid
            local.version = local.con.execute("PRAGMA data_version").fetchone()[0]
        con: sqlite3.Connection = local.con
        return con

    def maps(self) -> dict[str, np.ndarray]:
        """The memmaps, opened once per process."""
        self._check_open()
        if self._maps_pid != os.getpid():
            with self._maps_lock:
                if self._maps_pid != os.getpid():
                    self._maps = self._open_maps()
                    self._maps_pid = os.getpid()
        return self._maps

    def reopen_maps(self) -> None:
        """Map the files again on next use (after a file was added)."""
        with self._maps_lock:
            self._maps_pid = -1

    def refresh(self) -> None:
        """Drop the cache when another connection committed since this thread last looked."""
        con = self.connection()
        version = con.execute("PRAGMA data_version").fetchone()[0]
        if version != self._local.version:
            self.cache.invalidate()
            self._local.version = version
