"""The per-process sample cache of a store: a bounded LRU kept in preallocated arrays.

The dataset talks to it through a small API (:meth:`SlotCache.lookup`,
:meth:`~SlotCache.get_one`, :meth:`~SlotCache.insert`,
:meth:`~SlotCache.count_and_insert`, :meth:`~SlotCache.insert_one`,
:meth:`~SlotCache.invalidate`, :meth:`~SlotCache.stats`); its fields are its own.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SlotCache"]


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


class SlotCache:
    """A bounded LRU cache of samples kept in preallocated arrays, guarded by one lock.

    Slot ``j`` holds one sample's rows in ``arrays[k][j]`` (and ``meta[j]``);
    ``slot_of[i]`` is the slot of dataset index ``i`` (-1 when not cached) and
    ``used[j]`` the tick of the slot's last use. Lookups, fills and evictions
    of a whole batch are array operations with no Python loop over its rows.
    Memory: ``capacity`` rows, plus 4 bytes per dataset index for ``slot_of``
    (allocated on the first insert) and 4 more for the ghost of a cache that
    steps aside (allocated the first time it does).
    """

    #: NOTE [ A cache that steps aside ]: reads are counted in windows of WINDOW samples once the cache is
    #: full (the misses that fill it say nothing about reuse, so a store that fits is never left); when
    #: fewer than LOW of a window's reads hit, the cache is bypassed: reads go straight to storage and are
    #: not kept. About one read call in PROBE (64; the gaps vary between 32 and 95 calls, so that a loop
    #: whose period divides 64 is not seen through the same call each time) keeps measuring without
    #: touching the cache: its keys are looked up in a ghost, the probe number at which each dataset
    #: index was last probed (4 bytes per index, allocated when the cache first steps aside). A probed key
    #: counts as a hit when an earlier probe within the last ``max(1, capacity // len(keys))`` probes read
    #: it too, i.e. when the keys come back often enough that the cache would have kept them (scaled by
    #: ``capacity / len(keys)`` when a call holds more keys than the cache). When a
    #: window of PROBE_WINDOW probed reads hits at LOW or above, the cache is used again. Random reads
    #: over a store much larger than the cache then cost what cache_size=0 costs (a probe is one gather
    #: and one scatter of its keys); repeated reads are noticed. Reuse within fewer calls than the gap
    #: between probes is not.
    WINDOW, LOW, PROBE, PROBE_WINDOW = 2048, 0.05, 64, 256

    def __init__(self, capacity: int, size: int) -> None:
        self.capacity = capacity
        self.bypassed = False
        self._window: list[float] = [0, 0]  # hits (estimated, while probing), reads of the current window
        self._calls = 0
        self._next_probe = 0
        self._probes = 0
        self._ghost: np.ndarray | None = None  # probe number of each index's last probe (0: never probed)
        self.size = size
        self.lock = threading.Lock()
        self.hits = self.misses = 0
        self.generation = 0  # bumped by every invalidation; a read that spans one is not cached
        self.slot_of: np.ndarray | None = None
        self.count = 0
        self.arrays: list[np.ndarray] = []  # allocated on first insert, when the widths are known
        self.meta: np.ndarray | None = None
        self.keys = np.full(capacity, -1, dtype=np.int64)
        self.used = np.zeros(capacity, dtype=np.int64)
        self.tick = 0

    def use(self, keys: Any) -> bool:
        """Whether this read call of dataset indices ``keys`` goes through the cache.

        While the cache steps aside, about every ``PROBE``-th call's keys are
        checked against the ghost instead (NOTE [ A cache that steps aside ]).
        """
        if not self.bypassed:
            return True
        self._calls += 1
        if self._calls >= self._next_probe:
            # the next gap: PROBE // 2 + (a hash of the probe number) % PROBE calls, PROBE on average
            spread = (((self._probes + 1) * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)) >> 40
            self._next_probe = self._calls + self.PROBE // 2 + spread % self.PROBE
            self._probe(np.asarray(keys, dtype=np.int64).reshape(-1))
        return False

    def reset_measurement(self) -> None:
        """Forget what the windows measured: the cache is used again and starts a new window."""
        with self.lock:
            self.bypassed = False
            self._window[0] = self._window[1] = 0

    def _probe(self, keys: np.ndarray) -> None:
        """Count which of ``keys`` an earlier probe within the cache's reach also read; record them."""
        with self.lock:
            if self._ghost is None:
                self._ghost = np.zeros(self.size, dtype=np.int32)
            self._probes += 1
            reach = max(1, self.capacity // max(keys.size, 1))
            # looked up before the scatter below, so a key repeated within this call is not its own hit
            hits = int(np.count_nonzero(self._ghost[keys] >= max(1, self._probes - reach)))
            self._ghost[keys] = self._probes
            # A cache smaller than one call keeps only a part of what the last probe read: count that part.
            self._tally(hits * min(1.0, self.capacity / max(keys.size, 1)), keys.size)

    def _count(self, hits: int, reads: int) -> None:
        """Count a read of the cache in the stats and the current window (under the lock)."""
        self.hits += hits
        self.misses += reads - hits
        self._tally(hits, reads)

    def _tally(self, hits: float, reads: int) -> None:
        """Add to the current window; at its end, decide whether to step aside (under the lock)."""
        if not self.bypassed and self.count < self.capacity:
            return  # still filling: its misses are the ones every cache pays once
        window = self._window
        window[0] += hits
        window[1] += reads
        if window[1] >= (self.PROBE_WINDOW if self.bypassed else self.WINDOW):
            self.bypassed = window[0] < self.LOW * window[1]
            window[0] = window[1] = 0

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` are cached (a snapshot; :meth:`lookup` decides under the lock)."""
        slot_of = self.slot_of
        return np.zeros(keys.shape, dtype=bool) if slot_of is None else slot_of[keys] >= 0

    def __contains__(self, key: int) -> bool:
        """Whether ``key`` is cached (a snapshot; :meth:`get_one` decides under the lock)."""
        slot_of = self.slot_of
        return slot_of is not None and int(slot_of[key]) >= 0

    def get_one(self, key: int) -> tuple[list[np.ndarray] | None, int]:
        """Copies of one cached sample's rows (counted as a hit), or None (a miss); and the generation.

        Pass the generation to :meth:`insert_one` with the rows read from storage
        after a miss: if an invalidation happened in between, they are not kept.
        """
        with self.lock:
            slot = -1 if self.slot_of is None else int(self.slot_of[key])
            if slot < 0:
                self._count(0, 1)
                return None, self.generation
            self._count(1, 1)
            self.tick += 1
            self.used[slot] = self.tick
            return [a[slot].copy() for a in self.arrays], self.generation

    def row_shapes(self) -> list[tuple[int, ...]]:
        """The shape of one sample's row in each cached array (empty before the first insert)."""
        with self.lock:
            return [a.shape[1:] for a in self.arrays]

    def stats(self) -> dict[str, Any]:
        """``hits``, ``misses``, ``hit_rate`` (0.0 before any read), ``size``, ``capacity`` and ``bypassed``.

        Reads made while the cache stepped aside, probes included, are not counted
        (NOTE [ A cache that steps aside ]).
        """
        with self.lock:
            total = self.hits + self.misses
            return {
                "hits": self.hits,
                "misses": self.misses,
                "hit_rate": self.hits / total if total else 0.0,
                "size": self.count,
                "capacity": self.capacity,
                "bypassed": self.bypassed,
            }

    def lookup(self, keys: np.ndarray, out: list[np.ndarray], meta: list[Any] | None) -> np.ndarray:
        """Copy cached rows of unique ``keys`` into ``out`` (and ``meta``); return the mask of hits."""
        with self.lock:
            found = self.slot_of[keys] if self.slot_of is not None else np.full(keys.shape, -1, dtype=np.int32)
            hit = found >= 0
            n_hit = int(hit.sum())
            self._count(n_hit, keys.size)
            if n_hit:
                where = np.flatnonzero(hit)
                slots = found[where]
                for dst, src in zip(out, self.arrays, strict=True):
                    if n_hit == keys.size:  # every row cached: one gather straight into the batch
                        # mode="clip" writes into `out` directly ("raise" buffers it); the slots are all valid
                        np.take(src, slots, axis=0, out=dst, mode="clip")
                    else:
                        dst[where] = src[slots]
                if meta is not None and self.meta is not None:
                    for j, m in zip(where.tolist(), self.meta[slots].tolist(), strict=True):
                        meta[j] = m
                self.tick += 1
                self.used[slots] = self.tick
            return hit

    def _index(self) -> np.ndarray:
        """``slot_of``, allocated on first use (call under the lock)."""
        if self.slot_of is None:
            self.slot_of = np.full(self.size, -1, dtype=np.int32)
        return self.slot_of

    def _take_slots(self, n: int) -> np.ndarray:
        """``n`` slots for new rows: free ones first, else the least recently used, evicted (under the lock)."""
        if self.capacity - self.count >= n:
            return np.flatnonzero(self.keys < 0)[:n]
        slots = np.argpartition(np.where(self.keys < 0, -1, self.used), n - 1)[:n]
        old = self.keys[slots]
        old = old[old >= 0]
        self._index()[old] = -1
        self.count -= old.size
        return slots

    def insert(self, keys: np.ndarray, arrays: Sequence[np.ndarray], meta: list[Any] | None, generation: int) -> None:
        """Store rows of unique ``keys`` (not already cached), evicting the least recently used."""
        if not self.capacity or not keys.size:
            return
        with self.lock:
            if generation != self.generation:
                return  # an update happened while these rows were read: they may be stale
            slot_of = self._index()
            new = slot_of[keys] < 0
            if not new.all():  # another thread cached some of them meanwhile
                keys, arrays = keys[new], [a[new] for a in arrays]
                meta = None if meta is None else [m for m, fresh in zip(meta, new.tolist(), strict=True) if fresh]
            keep = slice(-min(keys.size, self.capacity), None)
            keys = keys[keep]
            if not keys.size:
                return
            if not self.arrays:
                self.arrays = [np.empty((self.capacity, *a.shape[1:]), dtype=a.dtype) for a in arrays]
                if meta is not None:
                    self.meta = np.empty(self.capacity, dtype=object)
            slots = self._take_slots(keys.size)
            for dst, src in zip(self.arrays, arrays, strict=True):
                dst[slots] = src[keep]
            if meta is not None and self.meta is not None:
                self.meta[slots] = _objects(meta[keep])
            self.keys[slots] = keys
            self.tick += 1
            self.used[slots] = self.tick
            slot_of[keys] = slots
            self.count += keys.size

    def count_and_insert(
        self, keys: np.ndarray, arrays: Sequence[np.ndarray], meta: list[Any] | None, generation: int
    ) -> None:
        """Count a batch read in full from storage as hits and misses, and keep its uncached rows.

        ``arrays`` (and ``meta``) hold every key's row as read from storage; a
        cached row is the same (updates drop theirs), so hits are only counted and
        marked as used. New rows go in with one scatter per array: cached keys
        rewrite their own slot, which saves gathering the new rows first. Falls back
        to :meth:`insert` when the new rows do not fit beside this batch's hits.
        """
        with self.lock:
            slot_of = self._index()
            slots = slot_of[keys].astype(np.int64)
            new = slots < 0
            n_new = int(new.sum())
            self._count(keys.size - n_new, keys.size)
            self.tick += 1
            self.used[slots[~new]] = self.tick  # this batch's hits: most recently used, not to be evicted
            if not n_new or not self.capacity or generation != self.generation:
                return
            fallback = n_new > self.capacity - (keys.size - n_new) or meta is not None or not self.arrays
            if not fallback:
                chosen = self._take_slots(n_new)
                slots[new] = chosen
                for dst, src in zip(self.arrays, arrays, strict=True):
                    dst[slots] = src
                self.keys[chosen] = keys[new]
                self.used[chosen] = self.tick
                slot_of[keys[new]] = chosen
                self.count += n_new
        if fallback:
            where = np.flatnonzero(new)
            rows_ = [a[where] for a in arrays]
            self.insert(keys[where], rows_, None if meta is None else [meta[j] for j in where.tolist()], generation)

    def insert_one(self, key: int, rows_: Sequence[np.ndarray], generation: int) -> None:
        """Store one sample, in a free slot or the least recently used one."""
        with self.lock:
            slot_of = self._index()
            if generation != self.generation or slot_of[key] >= 0:
                return
            if not self.arrays:
                self.arrays = [np.empty((self.capacity, *r.shape), dtype=r.dtype) for r in rows_]
            slot = int(np.argmin(self.used))  # free slots have used == 0
            if self.keys[slot] >= 0:
                slot_of[self.keys[slot]] = -1
                self.count -= 1
            for dst, src in zip(self.arrays, rows_, strict=True):
                dst[slot] = src
            self.keys[slot] = key
            self.tick += 1
            self.used[slot] = self.tick
            slot_of[key] = slot
            self.count += 1

    def invalidate(self, key: int | None = None) -> None:
        """Drop ``key`` (default: every sample) and start a new generation, so reads in flight are not kept."""
        with self.lock:
            self.generation += 1
            if self.slot_of is None:
                return
            if key is None:
                self.slot_of[self.keys[self.keys >= 0]] = -1
                self.keys[:] = -1
                self.used[:] = 0
                self.count = 0
            elif (slot := int(self.slot_of[key])) >= 0:
                self.slot_of[key] = -1
                self.keys[slot] = -1
                self.used[slot] = 0
                self.count -= 1

    def __len__(self) -> int:
        return self.count
