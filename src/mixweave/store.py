"""An embedding store for cluster-labelled samples: SQLite metadata plus numpy memmaps.

A store is a directory::

    dataset.db                 SQLite: table ``samples`` (one row per sample, labels as BLOBs)
                               and table ``dataset_info`` (key/value: n_clusters, embedding_dim, ...)
    base_embeddings.npy        float32 [N, D]
    steering_embeddings.npy    float32 [N, D]
    labels.npy, labels.seq     mixweave's copy of the labels, float32 [N, 3, C] (optional, see below)

The table names and columns are those of the layout other tools already write,
so those tools can read a mixweave store and mixweave can read theirs:

* embeddings as ``.npy`` files with a header, or as raw float32 memmaps whose
  shape comes from ``dataset_info`` (``dataset_size`` x ``embedding_dim``);
* labels as raw float32 bytes (what mixweave writes, with ``label_encoding``,
  ``label_dtype`` and ``label_shape`` recorded in ``dataset_info``) or as
  pickled numpy arrays, which are read only when the caller passes
  ``allow_pickle=True``: unpickling runs code from the file.

:class:`ClusterStoreWriter` builds a store chunk by chunk in a temporary
directory next to the destination and renames it into place on ``close()``,
so a crash leaves either no store or the previous one, never half of one.
:class:`ClusterLabeledDataset` reads it: connections and memmaps are opened
lazily in each process (DataLoader workers under fork or spawn) and in each
thread, and a bounded, thread-safe LRU cache holds recently read samples.

NOTE [ Label array ]
    SQLite stays the record of every label (other tools read the BLOB
    columns), but one SQLite query per batch caps a batched read at about
    0.4x the speed of reading the embedding memmaps. Stores written by
    mixweave therefore also hold ``labels.npy``: all three labels of index
    ``i`` at row ``i``, read with one fancy index like the embeddings. It is
    kept equal to SQLite by :meth:`ClusterLabeledDataset.update_labels`,
    which rewrites the row inside the SQLite write transaction under a
    seqlock (``labels.seq``: odd while rows are being written). A reader
    takes the sequence number before and after copying its rows; if it was
    odd or changed, the read is repeated from SQLite, so a read overlapping an
    update sees all-old or all-new labels. A writer killed mid-update leaves
    the number odd: readers then use SQLite, and the next ``update_labels``
    (or :meth:`ClusterLabeledDataset.sync_label_array`) rewrites the array
    from SQLite in place, under the same lock. The seqlock relies on x86-64's
    ordering of loads and stores between cores; on other machines, on stores
    without the file (written by other tools or older mixweave), and when a
    store is opened with ``return_metadata=True``, labels come from SQLite.
    A tool that changes labels in SQLite directly must call
    ``sync_label_array()`` (or ``mixweave store sync-labels DIR``) afterwards.
"""

from __future__ import annotations

import contextlib
import json
import mmap
import os
import pickle
import platform
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from torch.utils.data import Dataset
from torch.utils.data._utils.collate import default_collate

from ._validation import _show, check_choice, check_int, warn
from .sources import rows

__all__ = ["ClusterLabeledDataset", "ClusterStoreWriter", "SampleBatch", "collate_with_metadata", "store_summary"]

LABEL_TYPES = ("source", "steering", "combined")
MMAP_MODES = ("r", "r+", "c")
DB_FILE = "dataset.db"
EMBEDDING_FILES = {"base": "base_embeddings.npy", "steering": "steering_embeddings.npy"}
FORMAT = "mixweave-cluster-store/1"
LABEL_ARRAY_FILE = "labels.npy"  # float32 (N, 3, C): every label of index i, in LABEL_TYPES order
LABEL_SEQ_FILE = "labels.seq"  # one int64, odd while update_labels rewrites rows of the label array
# The label array's seqlock relies on stores and loads not being reordered between cores
# (x86-64's TSO); elsewhere labels are read from SQLite (see NOTE [ Label array ]).
_LABEL_ARRAY_MACHINES = frozenset({"x86_64", "amd64"})
_COLUMNS = ("sample_id", "embedding_idx", "sample_type", "text", "chroma_id", "suggestions", "steering_mode")
_LABEL_COLUMNS = tuple(f"{t}_label" for t in LABEL_TYPES)
_SCHEMA = """
CREATE TABLE samples (
    sample_id INTEGER PRIMARY KEY,
    embedding_idx INTEGER NOT NULL,
    sample_type TEXT NOT NULL,
    text TEXT NOT NULL,
    chroma_id TEXT NOT NULL,
    suggestions TEXT,
    steering_mode TEXT NOT NULL,
    source_label BLOB NOT NULL,
    steering_label BLOB NOT NULL,
    combined_label BLOB NOT NULL
);
CREATE TABLE dataset_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
_NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER_BYTES = 128  # fixed, so the header can be rewritten in place once the row count is known
_PROGRESS_ROWS = 200_000  # builds at least this large show a progress bar unless told otherwise
_BUILD_CHUNK = 65_536
_SQLITE_MMAP_BYTES = 1 << 30
_FORKED_CONNECTIONS: list[sqlite3.Connection] = []  # inherited across fork: never used, never closed


# --------------------------------------------------------------------------- writing
def _npy_header(rows_: int, *dims: int) -> bytes:
    """A version 1.0 ``.npy`` header for float32 ``(rows_, *dims)``, padded to ``_NPY_HEADER_BYTES``."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({', '.join(map(str, (rows_, *dims)))}), }}"
    body = text.ljust(_NPY_HEADER_BYTES - 10 - 1) + "\n"
    return _NPY_MAGIC + b"\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")


def _as_matrix(value: Any, name: str, rows_: int | None, cols: int | None) -> np.ndarray:
    """``value`` as a C-contiguous float32 matrix of finite numbers with the expected shape."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"`{name}` must be an array of real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (rows, columns), got shape {arr.shape}")
    if rows_ is not None and arr.shape[0] != rows_:
        raise ValueError(f"`{name}` has {arr.shape[0]} rows but `base_embeddings` has {rows_}")
    if cols is not None and arr.shape[1] != cols:
        raise ValueError(f"`{name}` must have {cols} columns, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"`{name}` must be finite, got {arr[r, c]} at row {r}, column {c}")
    return arr


def _check_labels(arr: np.ndarray, name: str) -> None:
    negative = arr < 0
    if negative.any():
        r, c = np.argwhere(negative)[0]
        raise ValueError(f"`{name}` must be non-negative (one-hot or a distribution), got {arr[r, c]} at row {r}")


def _strings(value: Any, name: str, rows_: int, default: str | None) -> list[Any]:
    if value is None:
        return [default] * rows_
    if isinstance(value, str):
        raise TypeError(f"`{name}` must be a sequence of strings, one per row, got a single str")
    out = list(value)
    if len(out) != rows_:
        raise ValueError(f"`{name}` has {len(out)} entries but there are {rows_} rows")
    if default is not None and any(v is None for v in out):
        raise ValueError(f"`{name}` must not contain None (column is NOT NULL)")
    return [v if v is None or isinstance(v, str) else json.dumps(v) for v in out]


def _blobs(labels: np.ndarray) -> list[bytes]:
    """One raw float32 BLOB per row, without a Python loop over the values."""
    blobs: list[bytes] = labels.view(np.dtype((np.void, labels.shape[1] * 4))).ravel().tolist()  # type: ignore[assignment]
    return blobs


def _write_seq_file(path: Path) -> None:
    """A new ``labels.seq``: one int64 zero (even: no writer inside), flushed to disk."""
    with open(path, "wb") as f:
        f.write(np.zeros(1, dtype=np.int64).tobytes())
        f.flush()
        os.fsync(f.fileno())


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ClusterStoreWriter:
    """Write a store chunk by chunk; it appears at ``dataset_dir`` only when :meth:`close` succeeds.

    Rows go to a temporary directory beside ``dataset_dir``; ``close()``
    finishes the headers, flushes everything to disk and renames the
    directory into place. Used as a context manager, an exception discards
    the partial store. A store larger than memory is built by calling
    :meth:`append` once per chunk.

    Args:
        dataset_dir: where the store will live.
        embedding_dim: ``D``, the width of both embedding matrices.
        n_clusters: ``C``, the width of every label.
        alpha: combined label ``alpha * source + (1 - alpha) * steering`` for
            chunks that do not give ``combined_labels``.
        overwrite: replace an existing store at ``dataset_dir`` (only a store:
            a directory without ``dataset.db`` is never deleted).
        total: the number of rows, if known, for the progress bar.
        progress: show a progress bar (``None``: when ``total`` is at least 200,000).

    Raises:
        FileExistsError: if ``dataset_dir`` exists and ``overwrite`` is false.
        ValueError: for a non-positive ``embedding_dim``/``n_clusters`` or
            ``alpha`` outside [0, 1].

    Example:
        >>> import numpy as np, tempfile, os
        >>> d = os.path.join(tempfile.mkdtemp(), "store")
        >>> with ClusterStoreWriter(d, embedding_dim=4, n_clusters=3) as w:
        ...     for _ in range(2):
        ...         w.append(np.ones((5, 4)), np.zeros((5, 4)), np.eye(3)[[0, 1, 2, 0, 1]], np.eye(3)[[1] * 5])
        >>> len(ClusterLabeledDataset(d))
        10
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike[str],
        *,
        embedding_dim: int,
        n_clusters: int,
        alpha: float = 0.5,
        overwrite: bool = False,
        total: int | None = None,
        progress: bool | None = None,
    ) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", minimum=1)
        self.n_clusters = check_int(n_clusters, "n_clusters", minimum=1)
        if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0:
            raise ValueError(f"`alpha` must be a number in [0, 1], got {_show(alpha)}")
        self.alpha = float(alpha)
        self.overwrite = bool(overwrite)
        _check_destination(self.dataset_dir, self.overwrite)
        self.dataset_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.dataset_dir.name}.building-", dir=self.dataset_dir.parent))
        self._files: dict[str, BinaryIO] = {}
        for key, name in EMBEDDING_FILES.items():
            f = open(self._tmp / name, "wb")  # noqa: SIM115 - closed in close()/abort()
            f.write(_npy_header(0, self.embedding_dim))
            self._files[key] = f
        self._files["labels"] = open(self._tmp / LABEL_ARRAY_FILE, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._files["labels"].write(_npy_header(0, len(LABEL_TYPES), self.n_clusters))
        self._con = sqlite3.connect(self._tmp / DB_FILE, isolation_level=None)
        self._con.executescript(_SCHEMA)
        self._con.execute("PRAGMA synchronous=OFF")  # a crash discards the temporary directory anyway
        self._con.execute("BEGIN")
        self.num_rows = 0
        self._closed = False
        self._progress: Any = None
        if progress or (progress is None and total is not None and total >= _PROGRESS_ROWS):
            from rich.progress import Progress

            self._progress = Progress(transient=True)
            self._progress.start()
            self._task = self._progress.add_task(f"building {self.dataset_dir.name}", total=total)

    def append(
        self,
        base_embeddings: Any,
        steering_embeddings: Any,
        source_labels: Any,
        steering_labels: Any,
        combined_labels: Any = None,
        *,
        texts: Sequence[str] | None = None,
        sample_types: Sequence[str] | None = None,
        chroma_ids: Sequence[str] | None = None,
        suggestions: Sequence[Any] | None = None,
        steering_modes: Sequence[str] | None = None,
    ) -> None:
        """Add one chunk of ``k`` rows (embeddings ``(k, D)``, labels ``(k, C)``, metadata of length ``k``).

        ``suggestions`` entries that are not strings are stored as JSON.

        Raises:
            ValueError: for a shape that disagrees with ``D``, ``C`` or the
                chunk's row count, a non-finite value or a negative label.
        """
        if self._closed:
            raise RuntimeError("this ClusterStoreWriter is closed")
        base = _as_matrix(base_embeddings, "base_embeddings", None, self.embedding_dim)
        k = base.shape[0]
        steering = _as_matrix(steering_embeddings, "steering_embeddings", k, self.embedding_dim)
        labels = {
            "source": _as_matrix(source_labels, "source_labels", k, self.n_clusters),
            "steering": _as_matrix(steering_labels, "steering_labels", k, self.n_clusters),
        }
        if combined_labels is None:
            labels["combined"] = (self.alpha * labels["source"] + (1 - self.alpha) * labels["steering"]).astype(
                np.float32
            )
        else:
            labels["combined"] = _as_matrix(combined_labels, "combined_labels", k, self.n_clusters)
        for key, arr in labels.items():
            _check_labels(arr, f"{key}_labels")
        columns = (
            range(self.num_rows, self.num_rows + k),
            range(self.num_rows, self.num_rows + k),
            _strings(sample_types, "sample_types", k, "unknown"),
            _strings(texts, "texts", k, ""),
            _strings(chroma_ids, "chroma_ids", k, ""),
            _strings(suggestions, "suggestions", k, None),
            _strings(steering_modes, "steering_modes", k, "none"),
            *(_blobs(labels[t]) for t in LABEL_TYPES),
        )
        self._con.executemany(f"INSERT INTO samples VALUES ({', '.join('?' * 10)})", zip(*columns, strict=True))
        self._files["base"].write(base.tobytes())
        self._files["steering"].write(steering.tobytes())
        self._files["labels"].write(np.stack([labels[t] for t in LABEL_TYPES], axis=1).tobytes())
        self.num_rows += k
        if self._progress is not None:
            self._progress.advance(self._task, k)

    def close(self) -> ClusterLabeledDataset:
        """Finish the store, move it into place and return it opened with default settings.

        Raises:
            ValueError: if no rows were appended.
        """
        if self._closed:
            raise RuntimeError("this ClusterStoreWriter is closed")
        if self.num_rows == 0:
            self.abort()
            raise ValueError(f"no rows were appended; nothing was written to {self.dataset_dir}")
        try:
            for key, f in self._files.items():
                f.seek(0)
                dims = (len(LABEL_TYPES), self.n_clusters) if key == "labels" else (self.embedding_dim,)
                f.write(_npy_header(self.num_rows, *dims))
                f.flush()
                os.fsync(f.fileno())
                f.close()
            _write_seq_file(self._tmp / LABEL_SEQ_FILE)
            info = {
                "format": FORMAT,
                "n_clusters": self.n_clusters,
                "embedding_dim": self.embedding_dim,
                "dataset_size": self.num_rows,
                "alpha": self.alpha,
                "label_encoding": "raw",
                "label_dtype": "float32",
                "label_shape": json.dumps([self.n_clusters]),
                "embedding_format": "npy",
                "layout": "contiguous",
                "first_sample_id": 0,
                "label_array": LABEL_ARRAY_FILE,
            }
            self._con.executemany("INSERT INTO dataset_info VALUES (?, ?)", ((k, str(v)) for k, v in info.items()))
            self._con.execute("COMMIT")
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.close()
            _fsync(self._tmp / DB_FILE)
            _fsync(self._tmp)
            _replace_dir(self._tmp, self.dataset_dir, self.overwrite)
        except BaseException:
            self.abort()
            raise
        finally:
            self._stop_progress()
        self._closed = True
        return ClusterLabeledDataset(self.dataset_dir)

    def abort(self) -> None:
        """Discard everything written so far; ``dataset_dir`` is left as it was."""
        self._closed = True
        self._stop_progress()
        for f in self._files.values():
            f.close()
        with contextlib.suppress(sqlite3.Error):
            self._con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> ClusterStoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def _check_destination(path: Path, overwrite: bool) -> None:
    if not path.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace the store there")
    if not path.is_dir() or not (path / DB_FILE).is_file():
        raise ValueError(f"{path} exists but is not a store (no {DB_FILE}); refusing to replace it")


def _replace_dir(src: Path, dst: Path, overwrite: bool) -> None:
    """Rename ``src`` to ``dst``; an old store at ``dst`` is moved aside first and deleted last."""
    if not dst.exists():
        os.rename(src, dst)
    else:
        _check_destination(dst, overwrite)
        old = dst.parent / f".{dst.name}.replaced-{uuid.uuid4().hex[:8]}"
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    _fsync(dst.parent)


# --------------------------------------------------------------------------- reading
class _SlotCache:
    """A bounded LRU cache of samples kept in preallocated arrays, guarded by one lock.

    Slot ``j`` holds one sample's rows in ``arrays[k][j]`` (and ``meta[j]``);
    ``slot_of[i]`` is the slot of dataset index ``i`` (-1 when not cached) and
    ``used[j]`` the tick of the slot's last use. Lookups, fills and evictions
    of a whole batch are array operations with no Python loop over its rows.
    Memory: ``capacity`` rows, plus 4 bytes per dataset index for ``slot_of``
    (allocated on the first insert).
    """

    def __init__(self, capacity: int, size: int) -> None:
        self.capacity = capacity
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

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Which of ``keys`` are cached (a snapshot; :meth:`lookup` decides under the lock)."""
        slot_of = self.slot_of
        return np.zeros(keys.shape, dtype=bool) if slot_of is None else slot_of[keys] >= 0

    def slot(self, key: int) -> int:
        """The slot of one key, or -1 (call under the lock)."""
        return -1 if self.slot_of is None else int(self.slot_of[key])

    def lookup(self, keys: np.ndarray, out: list[np.ndarray], meta: list[Any] | None) -> np.ndarray:
        """Copy cached rows of unique ``keys`` into ``out`` (and ``meta``); return the mask of hits."""
        with self.lock:
            found = self.slot_of[keys] if self.slot_of is not None else np.full(keys.shape, -1, dtype=np.int32)
            hit = found >= 0
            n_hit = int(hit.sum())
            self.hits += n_hit
            self.misses += keys.size - n_hit
            if n_hit:
                where = np.flatnonzero(hit)
                slots = found[where]
                for dst, src in zip(out, self.arrays, strict=True):
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
            self.hits += keys.size - n_new
            self.misses += n_new
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


def _objects(values: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


class SampleBatch(Sequence[tuple[Any, ...]]):
    """What :meth:`ClusterLabeledDataset.__getitems__` returns: a batch held as stacked tensors.

    It is a sequence of per-sample tuples, so any ``collate_fn`` (torch's
    ``default_collate`` included) works; indexing it creates the views of one
    sample only. :func:`collate_with_metadata` recognises it and returns the
    stacked tensors as they are, without splitting and re-stacking them.
    """

    def __init__(self, columns: tuple[torch.Tensor, ...], meta: list[dict[str, Any]] | None = None) -> None:
        self.columns = columns
        self.meta = meta

    def __len__(self) -> int:
        return int(self.columns[0].shape[0])

    def _sample(self, j: int) -> tuple[Any, ...]:
        item = tuple(c[j] for c in self.columns)
        return item if self.meta is None else (*item, self.meta[j])

    def __getitem__(self, j: Any) -> Any:
        if isinstance(j, slice):
            return [self._sample(k) for k in range(*j.indices(len(self)))]
        n = len(self)
        if not -n <= j < n:
            raise IndexError(f"sample {j} is out of range for a batch of {n}")
        return self._sample(j % n)

    def __iter__(self) -> Any:
        if self.meta is None:
            return iter(rows(list(self.columns)))
        return ((*item, meta) for item, meta in zip(rows(list(self.columns)), self.meta, strict=True))

    def collate(self) -> tuple[Any, ...]:
        """The stacked tensors (and, with metadata, the list of metadata dicts)."""
        return self.columns if self.meta is None else (*self.columns, self.meta)


class _LabelArrayWriter:
    """Writable mappings of ``labels.npy`` and ``labels.seq`` for one update (NOTE [ Label array ]).

    Used only while holding SQLite's write lock, so there is one writer at a
    time across processes. :meth:`begin` makes the sequence number odd (and
    durable) before any row changes; :meth:`end` makes it even again after the
    rows are on disk. A writer that dies in between leaves it odd.
    """

    def __init__(self, dataset: ClusterLabeledDataset) -> None:
        path = dataset.dataset_dir / LABEL_ARRAY_FILE
        with open(path, "r+b") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
            self._offset = f.tell()
            self._map = mmap.mmap(f.fileno(), 0)
        with open(dataset.dataset_dir / LABEL_SEQ_FILE, "r+b") as f:
            self._seq_map = mmap.mmap(f.fileno(), 8)
        self.labels = np.ndarray(shape, dtype=dtype, buffer=self._map, offset=self._offset)
        self.seq = np.ndarray((1,), dtype=np.int64, buffer=self._seq_map)
        self._row_bytes = int(np.prod(shape[1:])) * 4
        self._dataset = dataset
        self.open = False

    def begin(self) -> bool:
        """Make the sequence number odd; True if it already was (a writer died: the array needs a full copy)."""
        died = bool(int(self.seq[0]) & 1)
        if not died:
            self.seq[0] += 1
        self._seq_map.flush()
        self.open = True
        return died

    def write_row(self, index: int, values: Mapping[int, np.ndarray]) -> None:
        for pos, value in values.items():
            self.labels[index, pos] = value
        start = self._offset + index * self._row_bytes
        lo = start - start % mmap.ALLOCATIONGRANULARITY
        self._map.flush(lo, start + self._row_bytes - lo)

    def copy_from_sqlite(self, con: sqlite3.Connection) -> None:
        for start, labels in self._dataset._label_rows(con):
            self.labels[start : start + labels.shape[0]] = labels
        self._map.flush()

    def end(self) -> None:
        self.seq[0] += 1
        self._seq_map.flush()
        self.open = False

    def close(self) -> None:
        del self.labels, self.seq  # the maps cannot close while arrays point into them
        self._map.close()
        self._seq_map.close()


class _Info(dict[str, str]):
    def need(self, key: str, path: Path) -> int:
        if key not in self:
            raise ValueError(
                f"{path}: table dataset_info has no {key!r}; a store records n_clusters, embedding_dim and dataset_size"
            )
        try:
            return int(self[key])
        except ValueError:
            raise ValueError(f"{path}: dataset_info {key!r} must be an integer, got {self[key]!r}") from None


class ClusterLabeledDataset(Dataset[tuple[Any, ...]]):
    """Triplets ``(base_embedding, steering_embedding, label)`` from a store on disk.

    Index ``i`` is the ``i``-th sample in ``sample_id`` order. With
    ``return_metadata=True`` a fourth element is a dict with ``sample_id``,
    ``sample_type``, ``text``, ``chroma_id``, ``suggestions``,
    ``steering_mode`` and all three labels (``source_label``,
    ``steering_label``, ``combined_label``) as tensors.

    Args:
        dataset_dir: the store directory (see the module docstring).
        label_type: which label is the third element: ``"source"``,
            ``"steering"`` or ``"combined"``.
        return_metadata: add the metadata dict as a fourth element.
        mmap_mode: numpy memmap mode for the embeddings: ``"r"`` (default,
            shared read-only pages), ``"c"`` (copy-on-write) or ``"r+"``.
            ``"w+"`` would truncate the files and is refused.
        cache_size: samples kept in this process's LRU cache (0 disables it).
            Each DataLoader worker has its own cache.
        allow_pickle: read labels stored as pickled arrays by other tools.
            Unpickling runs code from the file; only enable it for stores you trust.

    Raises:
        FileNotFoundError: if ``dataset_dir/dataset.db`` or an embedding file is missing.
        ValueError: for an invalid ``label_type``/``mmap_mode``, pickled
            labels without ``allow_pickle``, embedding files whose shape
            disagrees with ``dataset_info`` or each other, truncated files, or
            labels whose width is not ``n_clusters``.

    Attributes:
        has_label_array: the store holds ``labels.npy`` (NOTE [ Label array ]);
            :meth:`sync_label_array` creates it for stores that lack it.
        reads_label_array: reads take labels from that array (see the property).

    Concurrency: each process opens its own SQLite connection per thread and
    its own memmaps on first use, so the dataset can be handed to
    DataLoader workers under fork or spawn. :meth:`update_labels` is one
    SQLite transaction followed by invalidation of this process's cache
    entry. After it returns, every read of that sample that starts later —
    in this or any other thread or process — returns the new labels: other
    processes and threads notice the commit through SQLite's
    ``data_version`` before serving a cached sample and drop their cache.
    A read that overlaps the update returns either all old or all new labels
    of the row (one SQLite snapshot per read). Embeddings are never changed
    by this class.

    Example:
        >>> import numpy as np, tempfile, os
        >>> rng = np.random.default_rng(0)
        >>> d = os.path.join(tempfile.mkdtemp(), "store")
        >>> ds = ClusterLabeledDataset.build(d, rng.random((6, 4)), rng.random((6, 4)),
        ...                                  np.eye(3)[[0, 1, 2, 0, 1, 2]], np.eye(3)[[1, 1, 1, 2, 2, 2]])
        >>> base, steering, label = ds[0]
        >>> base.shape, label.tolist()
        (torch.Size([4]), [0.5, 0.5, 0.0])
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike[str],
        label_type: str = "combined",
        return_metadata: bool = False,
        mmap_mode: str = "r",
        cache_size: int = 1000,
        *,
        allow_pickle: bool = False,
    ) -> None:
        self.label_type = check_choice(label_type, "label_type", LABEL_TYPES)
        if mmap_mode == "w+":
            raise ValueError("`mmap_mode` 'w+' would truncate the embedding files; use 'r', 'c' or 'r+'")
        self.mmap_mode = check_choice(mmap_mode, "mmap_mode", MMAP_MODES)
        self.cache_size = check_int(cache_size, "cache_size", minimum=0)
        self.return_metadata = bool(return_metadata)
        self.allow_pickle = bool(allow_pickle)
        self.dataset_dir = Path(dataset_dir)
        self.db_path = self.dataset_dir / DB_FILE
        if not self.db_path.is_file():
            raise FileNotFoundError(f"no {DB_FILE} in {self.dataset_dir}: not a cluster store (or a wrong path)")
        con = self._connect()
        try:
            self._open(con)
        finally:
            con.close()
        for key in EMBEDDING_FILES:  # validate both files now; reopened lazily per process
            self._open_embeddings(key)
        self._label_pos = LABEL_TYPES.index(self.label_type)
        self._ordered_cpu = platform.machine().lower() in _LABEL_ARRAY_MACHINES
        self.has_label_array = self._check_label_array()
        self._label_col = f"{self.label_type}_label"
        self._sql_one = f"SELECT {self._label_col} FROM samples WHERE sample_id = ?"
        self._init_process_state()

    # -- opening --------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        uri = f"{self.db_path.resolve().as_uri()}?mode=rw"
        con = sqlite3.connect(uri, uri=True, timeout=30.0, isolation_level=None, check_same_thread=True)
        con.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")  # random row lookups read mapped pages, not pread()
        return con

    def _open(self, con: sqlite3.Connection) -> None:
        try:
            info = _Info(con.execute("SELECT key, value FROM dataset_info").fetchall())
            columns = {r[1] for r in con.execute("PRAGMA table_info(samples)")}
        except sqlite3.DatabaseError as exc:
            raise ValueError(f"{self.db_path}: not a readable cluster store ({exc})") from exc
        missing = [c for c in (*_COLUMNS, *_LABEL_COLUMNS) if c not in columns]
        if not columns or missing:
            raise ValueError(f"{self.db_path}: table samples lacks column(s) {missing}")
        self.info: dict[str, str] = dict(info)
        self.n_clusters = info.need("n_clusters", self.db_path)
        self.embedding_dim = info.need("embedding_dim", self.db_path)
        self._size = info.need("dataset_size", self.db_path)
        count, first, last, e_min, e_max, shifted = (
            con.execute(
                "SELECT COUNT(*), MIN(sample_id), MAX(sample_id), MIN(embedding_idx), MAX(embedding_idx), "
                "SUM(embedding_idx != sample_id - (SELECT MIN(sample_id) FROM samples)) FROM samples"
            ).fetchone()
            if info.get("layout") != "contiguous"
            else (self._size, int(info.get("first_sample_id", 0)), 0, 0, self._size - 1, 0)
        )
        if count != self._size:
            raise ValueError(
                f"{self.db_path}: dataset_info says dataset_size={self._size} but samples has {count} rows"
            )
        if count and (e_min < 0 or e_max >= self._size):
            raise ValueError(
                f"{self.db_path}: embedding_idx ranges over [{e_min}, {e_max}], outside the {self._size} embedding rows"
            )
        self._first_id = int(first or 0)
        self._ids: np.ndarray | None = None  # sample_id of each index when ids are not first_id + index
        self._emb_idx: np.ndarray | None = None
        if info.get("layout") != "contiguous" and (shifted or (count and int(last) - int(first) + 1 != count)):
            table = np.array(
                con.execute("SELECT sample_id, embedding_idx FROM samples ORDER BY sample_id").fetchall(),
                dtype=np.int64,
            ).reshape(-1, 2)
            self._ids, self._emb_idx = table[:, 0].copy(), table[:, 1].copy()
        self._encoding = info.get("label_encoding") or self._detect_encoding(con)
        if self._encoding not in ("raw", "pickle"):
            raise ValueError(f"{self.db_path}: unknown label_encoding {self._encoding!r} (known: 'raw', 'pickle')")
        if self._encoding == "pickle" and not self.allow_pickle:
            raise ValueError(
                f"{self.db_path} stores labels as pickled numpy arrays; unpickling can run arbitrary code, so it is "
                "off by default. Pass allow_pickle=True only if you trust this file."
            )
        if count:
            row = con.execute(f"SELECT {', '.join(_LABEL_COLUMNS)} FROM samples ORDER BY sample_id LIMIT 1").fetchone()
            for column, blob in zip(_LABEL_COLUMNS, row, strict=True):
                self._decode(blob, column, self._first_id if self._ids is None else int(self._ids[0]))

    def _detect_encoding(self, con: sqlite3.Connection) -> str:
        """Stores from other tools do not say how labels are encoded: pickles start with PROTO and end with STOP."""
        row = con.execute("SELECT source_label FROM samples LIMIT 1").fetchone()
        if row is None:
            return "raw"
        blob = bytes(row[0])
        return "pickle" if blob[:1] == b"\x80" and blob[-1:] == b"." else "raw"

    def _open_embeddings(self, key: str) -> np.ndarray:
        path = self.dataset_dir / EMBEDDING_FILES[key]
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing from the store")
        expected = (self._size, self.embedding_dim)
        with open(path, "rb") as f:
            magic = f.read(6)
        if magic == _NPY_MAGIC:
            try:
                arr = np.load(path, mmap_mode=self.mmap_mode, allow_pickle=False)  # type: ignore[arg-type]
            except ValueError as exc:
                raise ValueError(f"{path}: cannot map the array ({exc}); is the file truncated?") from exc
            if arr.dtype != np.float32:
                raise ValueError(f"{path}: embeddings must be float32, got {arr.dtype}")
            if arr.shape != expected:
                raise ValueError(
                    f"{path}: shape {arr.shape} does not match dataset_info (dataset_size={expected[0]}, "
                    f"embedding_dim={expected[1]})"
                )
            return arr
        size, need = path.stat().st_size, expected[0] * expected[1] * 4
        if size != need:
            raise ValueError(
                f"{path}: raw float32 memmap of {size} bytes, but dataset_info (dataset_size={expected[0]}, "
                f"embedding_dim={expected[1]}) needs {need}; the file is truncated or the shape is wrong"
            )
        return np.memmap(path, dtype=np.float32, mode=self.mmap_mode, shape=expected)  # type: ignore[call-overload]

    @property
    def reads_label_array(self) -> bool:
        """Labels come from the label array (NOTE [ Label array ]) rather than one SQLite query per read."""
        return self.has_label_array and not self.return_metadata and self._ordered_cpu

    def _check_label_array(self) -> bool:
        """Validate ``labels.npy``/``labels.seq`` when ``dataset_info`` names them; False for stores without them."""
        if self.info.get("label_array") != LABEL_ARRAY_FILE:
            return False
        path, seq = self.dataset_dir / LABEL_ARRAY_FILE, self.dataset_dir / LABEL_SEQ_FILE
        if not path.is_file() or not seq.is_file():
            warn(
                f"{self.dataset_dir}: dataset_info names a label array but {path.name} or {seq.name} is missing; "
                "labels are read from SQLite (store.sync_label_array() writes the array again)"
            )
            return False
        expected = (self._size, len(LABEL_TYPES), self.n_clusters)
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise ValueError(f"{path}: cannot map the label array ({exc}); is the file truncated?") from exc
        if arr.dtype != np.float32 or arr.shape != expected:
            raise ValueError(
                f"{path}: label array of {arr.dtype} {arr.shape}, but dataset_info (dataset_size={self._size}, "
                f"n_clusters={self.n_clusters}) needs float32 {expected}"
            )
        if seq.stat().st_size != 8:
            raise ValueError(f"{seq}: {seq.stat().st_size} bytes, expected one int64 (8 bytes)")
        return True

    def _array_labels(self, rows_: Any) -> np.ndarray | None:
        """Labels of index ``rows_`` from the label array, or None when a writer is or was mid-update."""
        maps = self._embeddings()
        seq = maps["seq"]
        before = int(seq[0])
        if before & 1:
            return None
        picked = maps["label_view"][rows_]  # fancy indexing copies; one row is a view, so copy it
        out = picked.copy() if isinstance(rows_, (int, np.integer)) else picked
        return out if int(seq[0]) == before else None

    def _init_process_state(self) -> None:
        self._cache = _SlotCache(self.cache_size, self._size)
        self._local = threading.local()
        self._maps: dict[str, np.ndarray] = {}
        self._maps_pid = -1
        self._maps_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_cache", "_local", "_maps", "_maps_pid", "_maps_lock"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    # -- per-process, per-thread resources -------------------------------------
    def _con(self) -> sqlite3.Connection:
        local = self._local
        pid = os.getpid()
        if getattr(local, "pid", None) != pid:
            old = getattr(local, "con", None)
            if old is not None:  # inherited through fork: SQLite forbids using it, and closing it could
                _FORKED_CONNECTIONS.append(old)  # disturb the parent's locks; keep it alive, untouched
                self._cache = _SlotCache(self.cache_size, self._size)  # the parent's cache and counters are not ours
            local.con = self._connect()
            local.pid = pid
            local.version = local.con.execute("PRAGMA data_version").fetchone()[0]
        con: sqlite3.Connection = local.con
        return con

    def _embeddings(self) -> dict[str, np.ndarray]:
        if self._maps_pid != os.getpid():
            with self._maps_lock:
                if self._maps_pid != os.getpid():
                    # plain ndarray views: numpy's memmap subclass adds microseconds to every index
                    maps = {k: np.asarray(self._open_embeddings(k)) for k in EMBEDDING_FILES}
                    if self.has_label_array:
                        maps["labels"] = np.asarray(np.load(self.dataset_dir / LABEL_ARRAY_FILE, mmap_mode="r"))
                        maps["label_view"] = maps["labels"][:, self._label_pos]  # (N, C), strided
                        seq = np.memmap(self.dataset_dir / LABEL_SEQ_FILE, dtype=np.int64, mode="r", shape=(1,))
                        maps["seq"] = np.asarray(seq)
                    self._maps = maps
                    self._maps_pid = os.getpid()
        return self._maps

    def _fresh(self, con: sqlite3.Connection) -> None:
        """Drop the cache when another connection committed since this thread last looked."""
        version = con.execute("PRAGMA data_version").fetchone()[0]
        if version != self._local.version:
            self._cache.invalidate()
            self._local.version = version

    # -- decoding ---------------------------------------------------------------
    def _decode(self, blob: Any, column: str, sample_id: int) -> np.ndarray:
        if self._encoding == "pickle":
            arr = np.asarray(pickle.loads(blob), dtype=np.float32).reshape(-1)  # allow_pickle was checked in __init__
        else:
            if len(blob) % 4:
                raise ValueError(
                    f"{self.db_path}: {column} of sample_id {sample_id} is {len(blob)} bytes, "
                    "not a whole number of float32 values"
                )
            arr = np.frombuffer(blob, dtype=np.float32).copy()
        if arr.size != self.n_clusters:
            raise ValueError(
                f"{self.db_path}: {column} of sample_id {sample_id} has {arr.size} values but "
                f"n_clusters={self.n_clusters}"
            )
        return arr

    def _decode_many(self, blobs: Sequence[Any], column: str, ids: np.ndarray) -> np.ndarray:
        if self._encoding == "pickle":
            return np.stack([self._decode(b, column, int(i)) for b, i in zip(blobs, ids, strict=True)])
        width = 4 * self.n_clusters
        lengths = np.fromiter(map(len, blobs), dtype=np.int64, count=len(blobs))
        bad = np.flatnonzero(lengths != width)
        if bad.size:
            self._decode(blobs[bad[0]], column, int(ids[bad[0]]))  # raises with the details
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), self.n_clusters).copy()

    # -- indexing ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    def _positions(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        if not idx.size:
            return idx
        low, high = int(idx.min()), int(idx.max())
        if low < -self._size or high >= self._size:
            bad = low if low < -self._size else high
            raise IndexError(f"index {bad} is out of range for a store of {self._size} samples")
        return np.where(idx < 0, idx + self._size, idx) if low < 0 else idx

    def _sample_ids(self, idx: np.ndarray) -> np.ndarray:
        return idx + self._first_id if self._ids is None else self._ids[idx]

    def _embedding_rows(self, idx: np.ndarray) -> np.ndarray:
        return idx if self._emb_idx is None else self._emb_idx[idx]

    def _select(self, columns: str, ids: np.ndarray) -> list[Any]:
        con = self._con()
        if ids.size == 1:
            return con.execute(
                f"SELECT sample_id, {columns} FROM samples WHERE sample_id = ?", (int(ids[0]),)
            ).fetchall()
        return con.execute(
            f"SELECT s.sample_id, {columns} FROM samples AS s JOIN json_each(?) AS j ON s.sample_id = j.value",
            (json.dumps(ids.tolist()),),
        ).fetchall()

    def _read(
        self, idx: np.ndarray, order: np.ndarray | None = None
    ) -> tuple[list[np.ndarray], list[dict[str, Any]] | None]:
        """Rows at unique positions ``idx``: one SQLite query and one fancy index per memmap.

        Returns the arrays (base, steering, then the label, or all three
        labels with metadata) and, with metadata, one dict per row. With
        ``order`` (positions into ``idx``) every output comes in that order:
        the memmaps are indexed once, straight into it.
        """
        if self.reads_label_array:
            rows_ = idx if order is None else idx[order]
            from_array = self._array_labels(rows_)
            if from_array is not None:
                maps = self._embeddings()
                emb = self._embedding_rows(rows_)
                return [maps["base"][emb], maps["steering"][emb], from_array], None
        ids = self._sample_ids(idx)
        label_col = f"{self.label_type}_label"
        if self.return_metadata:
            fetched = self._select(", ".join((*_COLUMNS[2:], *_LABEL_COLUMNS)), ids)
        else:
            fetched = self._select(label_col, ids)
        got = np.fromiter((r[0] for r in fetched), dtype=np.int64, count=len(fetched))
        if got.size != ids.size or not np.array_equal(np.sort(got), np.sort(ids)):
            raise ValueError(f"{self.db_path}: table samples changed its sample ids while this dataset was open")
        if not np.array_equal(got, ids):  # put the database's order into the order of `ids`
            where = np.empty(ids.size, dtype=np.int64)
            where[np.argsort(ids, kind="stable")] = np.argsort(got, kind="stable")
            fetched = [fetched[j] for j in where.tolist()]
        maps = self._embeddings()
        emb = self._embedding_rows(idx if order is None else idx[order])
        arrays = [maps["base"][emb], maps["steering"][emb]]
        if not self.return_metadata:
            labels = [self._decode_many([r[1] for r in fetched], label_col, ids)]
            meta = None
        else:
            labels = [self._decode_many([r[6 + k] for r in fetched], c, ids) for k, c in enumerate(_LABEL_COLUMNS)]
            meta = [dict(zip(_COLUMNS[:1] + _COLUMNS[2:], r[:6], strict=True)) for r in fetched]
        if order is not None:
            labels = [a[order] for a in labels]
            meta = None if meta is None else [meta[j] for j in order.tolist()]
        return arrays + labels, meta

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if self.return_metadata or not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            return self.__getitems__([index])[0]
        i = int(index)
        if not -self._size <= i < self._size:
            raise IndexError(f"index {i} is out of range for a store of {self._size} samples")
        i %= self._size
        con = self._con()
        cache = self._cache
        if self.cache_size:  # the one-sample path of __getitems__, without its array bookkeeping
            if cache.slot(i) >= 0:  # about to serve from the cache: first make sure no one committed since
                self._fresh(con)
            with cache.lock:
                slot = cache.slot(i)
                if slot >= 0:
                    cache.hits += 1
                    cache.tick += 1
                    cache.used[slot] = cache.tick
                    return tuple(torch.from_numpy(a[slot].copy()) for a in cache.arrays)
                cache.misses += 1
                generation = cache.generation
        label = self._array_labels(i) if self.reads_label_array else None
        if label is None:
            sample_id = i + self._first_id if self._ids is None else int(self._ids[i])
            row = con.execute(self._sql_one, (sample_id,)).fetchone()
            if row is None:
                raise ValueError(f"{self.db_path}: sample_id {sample_id} vanished from table samples")
            label = self._decode(row[0], self._label_col, sample_id)
        emb = i if self._emb_idx is None else int(self._emb_idx[i])
        maps = self._embeddings()
        arrays = [maps["base"][emb].copy(), maps["steering"][emb].copy(), label]
        if self.cache_size:
            cache.insert_one(i, arrays, generation)
        return tuple(torch.from_numpy(a) for a in arrays)

    def __getitems__(self, indices: Sequence[int]) -> SampleBatch:
        """A batch of samples: cached rows from the cache, the rest in one vectorised read.

        ``DataLoader`` calls this with automatic batching. The result is a
        :class:`SampleBatch`, a sequence of per-sample tuples in the order of
        ``indices``; its tensors are new, so writing into them never changes
        the store or the cache.
        """
        idx = self._positions(indices)
        con = self._con()
        if not self.cache_size:
            unique, order = np.unique(idx, return_inverse=True)
            arrays, meta = self._read(unique, order)  # embeddings read straight into batch order
            return self._batch(arrays, meta)
        # Without repeated indices work in the batch's own order: nothing to reorder at the end.
        ordered = np.sort(idx)
        inverse: np.ndarray | None
        if (ordered[1:] != ordered[:-1]).all():
            keys, unique, inverse = idx, ordered, None
        else:
            unique, inverse = np.unique(idx, return_inverse=True)
            keys = unique
        cached = self._cache.contains(keys)
        if cached.any():
            self._fresh(con)  # some will be served from the cache: first make sure no one committed since
        generation = self._cache.generation
        if 2 * int(cached.sum()) < max(cached.size, 1):  # mostly misses (an empty batch counts as such)
            # Mostly misses: read every row from storage into the output (one fancy index per
            # array, cheaper than scattering the misses around the few hits, whose cached copies
            # hold the same values: updates drop their rows from the cache), then keep the new rows.
            arrays, meta = self._read(keys)
            self._cache.count_and_insert(keys, arrays, meta, generation)
        else:
            # Mostly hits: take them from the cache and read only the misses from storage.
            with self._cache.lock:
                shapes = [a.shape[1:] for a in self._cache.arrays]
            arrays = [np.empty((keys.size, *sh), dtype=np.float32) for sh in shapes]
            meta = [{}] * keys.size if self.return_metadata else None
            hit = self._cache.lookup(keys, arrays, meta)
            missing = np.flatnonzero(~hit)
            if missing.size:
                fresh, fresh_meta = self._read(keys[missing])
                for dst, src in zip(arrays, fresh, strict=True):
                    dst[missing] = src
                if meta is not None and fresh_meta is not None:
                    for j, m in zip(missing.tolist(), fresh_meta, strict=True):
                        meta[j] = m
                self._cache.insert(keys[missing], fresh, fresh_meta, generation)
        if inverse is not None:
            arrays = [a[inverse] for a in arrays]
            meta = None if meta is None else [meta[j] for j in inverse.tolist()]
        return self._batch(arrays, meta)

    def _batch(self, arrays: list[np.ndarray], meta: list[dict[str, Any]] | None) -> SampleBatch:
        tensors = [torch.from_numpy(a) for a in arrays]
        if meta is None:
            return SampleBatch(tuple(tensors))
        labels = dict(zip(_LABEL_COLUMNS, tensors[2:], strict=True))
        full = [{**m, **{c: t[j] for c, t in labels.items()}} for j, m in enumerate(meta)]
        return SampleBatch((tensors[0], tensors[1], labels[f"{self.label_type}_label"]), full)

    # -- lookups and updates ---------------------------------------------------------
    def get_sample_by_id(self, sample_id: int) -> dict[str, Any] | None:
        """Everything stored for one ``sample_id`` (metadata, labels, embeddings), or ``None`` if absent.

        The dict has the metadata keys of ``return_metadata``, plus
        ``index`` (its position in this dataset), ``base_embedding`` and
        ``steering_embedding``. The cache is bypassed.
        """
        sample_id = check_int(sample_id, "sample_id")
        con = self._con()
        row = con.execute(
            f"SELECT {', '.join((*_COLUMNS, *_LABEL_COLUMNS))} FROM samples WHERE sample_id = ?", (sample_id,)
        ).fetchone()
        if row is None:
            return None
        out: dict[str, Any] = dict(zip(_COLUMNS, row[:7], strict=True))
        for k, column in enumerate(_LABEL_COLUMNS):
            out[column] = torch.from_numpy(self._decode(row[7 + k], column, sample_id))
        emb = int(out.pop("embedding_idx"))
        maps = self._embeddings()
        out["base_embedding"] = torch.from_numpy(np.array(maps["base"][emb]))
        out["steering_embedding"] = torch.from_numpy(np.array(maps["steering"][emb]))
        out["index"] = self._index_of(sample_id)
        return out

    def _index_of(self, sample_id: int) -> int:
        if self._ids is None:
            return sample_id - self._first_id
        return int(np.searchsorted(self._ids, sample_id))

    def label_matrix(self, label_type: str | None = None) -> np.ndarray:
        """All labels of ``label_type`` (default: this dataset's), float32 ``(len(self), n_clusters)``, row i = index i.

        Read from SQLite in chunks; no embedding is touched. Used to balance
        or inspect a store without loading its samples.
        """
        column = f"{check_choice(label_type or self.label_type, 'label_type', LABEL_TYPES)}_label"
        out = np.empty((len(self), self.n_clusters), dtype=np.float32)
        for start, labels in self._label_rows(self._con(), (column,)):
            out[start : start + labels.shape[0]] = labels[:, 0]
        return out

    def update_labels(
        self,
        sample_id: int,
        source_label: Any = None,
        steering_label: Any = None,
        combined_label: Any = None,
    ) -> None:
        """Replace some labels of one sample, in one SQLite transaction, then invalidate its cache entry.

        Labels left as ``None`` keep their stored value (the combined label
        is *not* recomputed from the others). See the class docstring for
        what other readers see.

        Raises:
            ValueError: if no label is given, or one is not ``n_clusters``
                finite, non-negative numbers.
            KeyError: if no sample has ``sample_id``.
        """
        sample_id = check_int(sample_id, "sample_id")
        given = {
            c: v
            for c, v in zip(_LABEL_COLUMNS, (source_label, steering_label, combined_label), strict=True)
            if v is not None
        }
        if not given:
            raise ValueError("update_labels needs at least one of source_label, steering_label, combined_label")
        blobs, values = {}, {}
        for column, value in given.items():
            arr = _as_matrix(
                np.reshape(np.asarray(value), (1, -1)) if not isinstance(value, torch.Tensor) else value.reshape(1, -1),
                column,
                1,
                self.n_clusters,
            )
            _check_labels(arr, column)
            values[_LABEL_COLUMNS.index(column)] = arr[0]
            blobs[column] = pickle.dumps(arr[0]) if self._encoding == "pickle" else arr[0].tobytes()
        con = self._con()
        assignments = ", ".join(f"{c} = ?" for c in blobs)
        writer = _LabelArrayWriter(self) if self.has_label_array else None
        con.execute("BEGIN IMMEDIATE")  # the write lock also serialises writers of the label array
        try:
            changed = con.execute(
                f"UPDATE samples SET {assignments} WHERE sample_id = ?", (*blobs.values(), sample_id)
            ).rowcount
            if changed != 1:
                raise KeyError(f"no sample with sample_id {sample_id} in {self.db_path}")
            if writer is not None:  # NOTE [ Label array ]: same rows, inside the transaction, under the seqlock
                if writer.begin():  # a writer died mid-update: rewrite everything from SQLite
                    writer.copy_from_sqlite(con)
                else:
                    writer.write_row(self._index_of(sample_id), values)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            if writer is not None and writer.open:
                with contextlib.suppress(Exception):  # on failure the sequence number stays odd: readers use SQLite
                    writer.copy_from_sqlite(con)
                    writer.end()
                writer.close()
            raise
        if writer is not None:
            writer.end()
            writer.close()
        self._cache.invalidate(self._index_of(sample_id))

    def sync_label_array(self) -> None:
        """Rewrite the label array from SQLite, in place; create it for stores that lack it.

        Needed only after labels were changed in SQLite by something other
        than :meth:`update_labels` (see NOTE [ Label array ] in
        :mod:`mixweave.store`). Creating the array adds ``labels.npy``,
        ``labels.seq`` and a ``label_array`` key in ``dataset_info``; the
        files are written beside their final names and renamed into place.
        Readers in other processes that opened the store before it had an
        array keep reading labels from SQLite.
        """
        con = self._con()
        if not self.has_label_array:
            self._create_label_array(con)
        else:
            writer = _LabelArrayWriter(self)
            con.execute("BEGIN IMMEDIATE")
            try:
                writer.begin()
                writer.copy_from_sqlite(con)
                con.execute("COMMIT")
                writer.end()
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                writer.close()
        self._cache.invalidate()

    def _create_label_array(self, con: sqlite3.Connection) -> None:
        shape = (len(LABEL_TYPES), self.n_clusters)
        paths = {name: self.dataset_dir / name for name in (LABEL_ARRAY_FILE, LABEL_SEQ_FILE)}
        tmp = {name: path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp") for name, path in paths.items()}
        try:
            con.execute("BEGIN IMMEDIATE")  # no label changes while the copy is taken
            with open(tmp[LABEL_ARRAY_FILE], "wb") as f:
                f.write(_npy_header(self._size, *shape))
                for _, labels in self._label_rows(con):
                    f.write(labels.tobytes())
                f.flush()
                os.fsync(f.fileno())
            _write_seq_file(tmp[LABEL_SEQ_FILE])
            for name in (LABEL_SEQ_FILE, LABEL_ARRAY_FILE):
                os.replace(tmp[name], paths[name])
            _fsync(self.dataset_dir)
            con.execute("INSERT OR REPLACE INTO dataset_info VALUES ('label_array', ?)", (LABEL_ARRAY_FILE,))
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            for path in tmp.values():
                path.unlink(missing_ok=True)
            raise
        self.info["label_array"] = LABEL_ARRAY_FILE
        self.has_label_array = self._check_label_array()
        with self._maps_lock:
            self._maps_pid = -1  # reopen the maps, now with the label array

    def _label_rows(self, con: sqlite3.Connection, columns: Sequence[str] = _LABEL_COLUMNS, chunk: int = 65_536) -> Any:
        """Yield ``(start, labels)`` from SQLite in index (sample_id) order, ``chunk`` rows at a time.

        ``labels`` is float32 ``(k, len(columns), C)`` for rows ``start .. start + k``; no embedding is read.
        """
        cursor = con.execute(f"SELECT sample_id, {', '.join(columns)} FROM samples ORDER BY sample_id")
        start = 0
        while batch := cursor.fetchmany(chunk):
            ids = np.fromiter((r[0] for r in batch), dtype=np.int64, count=len(batch))
            labels = np.stack(
                [self._decode_many([r[1 + k] for r in batch], c, ids) for k, c in enumerate(columns)], axis=1
            )
            yield start, labels
            start += ids.size

    # -- cache ------------------------------------------------------------------
    def get_cache_stats(self) -> dict[str, Any]:
        """This process's cache: ``hits``, ``misses``, ``hit_rate`` (0.0 before any read), ``size``, ``capacity``."""
        c = self._cache
        with c.lock:
            total = c.hits + c.misses
            return {
                "hits": c.hits,
                "misses": c.misses,
                "hit_rate": c.hits / total if total else 0.0,
                "size": len(c),
                "capacity": c.capacity,
            }

    def prefill_cache(self, indices: Iterable[int]) -> None:
        """Read ``indices`` into the cache (the last ``cache_size`` distinct ones stay); not counted as misses."""
        idx = self._positions(list(indices))
        if not self.cache_size or not idx.size:
            return
        unique = np.unique(idx)[-self.cache_size :]
        with self._cache.lock:
            unique = unique[~self._cache.contains(unique)]
        generation = self._cache.generation
        arrays, meta = self._read(unique)
        self._cache.insert(unique, arrays, meta, generation)

    def clear_cache(self) -> None:
        """Empty this process's cache (the hit/miss counters are kept)."""
        self._cache.invalidate()

    # -- building ---------------------------------------------------------------
    @classmethod
    def build(
        cls,
        dataset_dir: str | os.PathLike[str],
        base_embeddings: Any,
        steering_embeddings: Any,
        source_labels: Any,
        steering_labels: Any,
        combined_labels: Any = None,
        *,
        alpha: float = 0.5,
        texts: Sequence[str] | None = None,
        sample_types: Sequence[str] | None = None,
        chroma_ids: Sequence[str] | None = None,
        suggestions: Sequence[Any] | None = None,
        steering_modes: Sequence[str] | None = None,
        overwrite: bool = False,
        progress: bool | None = None,
    ) -> ClusterLabeledDataset:
        """Write a store from in-memory arrays and open it.

        ``combined_labels`` defaults to ``alpha * source + (1 - alpha) * steering``.
        The store is written beside ``dataset_dir`` and renamed into place,
        in chunks of 65,536 rows with a progress bar from 200,000 rows on.
        For data larger than memory use :class:`ClusterStoreWriter`.
        Rows whose labels do not sum to 1 are legal (multi-label or
        unnormalised scores) but draw one warning.
        """
        base = base_embeddings
        n = len(base)
        if n == 0:
            raise ValueError("`base_embeddings` has no rows")
        shape = np.shape(base)
        if len(shape) != 2:
            raise ValueError(f"`base_embeddings` must be 2-D (rows, dim), got shape {shape}")
        n_clusters = np.shape(source_labels)[-1] if np.ndim(source_labels) == 2 else 0
        if n_clusters == 0:
            raise ValueError(f"`source_labels` must be 2-D (rows, n_clusters), got shape {np.shape(source_labels)}")
        meta = {
            "texts": texts,
            "sample_types": sample_types,
            "chroma_ids": chroma_ids,
            "suggestions": suggestions,
            "steering_modes": steering_modes,
        }
        for name, value in meta.items():
            if isinstance(value, str):
                raise TypeError(f"`{name}` must be a sequence of strings, one per row, got a single str")
            if value is not None and len(value) != n:
                raise ValueError(f"`{name}` has {len(value)} entries but there are {n} rows")
        off_simplex = 0
        with ClusterStoreWriter(
            dataset_dir,
            embedding_dim=shape[1],
            n_clusters=n_clusters,
            alpha=alpha,
            overwrite=overwrite,
            total=n,
            progress=progress,
        ) as writer:
            for lo in range(0, n, _BUILD_CHUNK):
                hi = min(lo + _BUILD_CHUNK, n)
                chunk = {k: (None if v is None else list(v[lo:hi])) for k, v in meta.items()}
                src = np.asarray(source_labels[lo:hi])
                off_simplex += int((np.abs(np.asarray(src, dtype=np.float64).sum(axis=1) - 1) > 1e-3).sum())
                writer.append(
                    base[lo:hi],
                    steering_embeddings[lo:hi],
                    src,
                    steering_labels[lo:hi],
                    None if combined_labels is None else combined_labels[lo:hi],
                    **chunk,
                )
            if off_simplex:
                warn(f"{off_simplex} of {n} rows of `source_labels` do not sum to 1; stored as given", stacklevel=3)
        return cls(dataset_dir)


def collate_with_metadata(batch: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """``collate_fn`` for a :class:`ClusterLabeledDataset`: stacked tensors, plus a list of metadata dicts.

    A :class:`SampleBatch` (what the dataset's ``__getitems__`` returns) is
    passed through as its stacked tensors, with no copy. Other samples with a
    metadata dict as fourth element are stacked with the dicts kept as a
    list; anything else goes to torch's ``default_collate``.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from torch.utils.data import DataLoader
        >>> rng = np.random.default_rng(0)
        >>> d = os.path.join(tempfile.mkdtemp(), "store")
        >>> _ = ClusterLabeledDataset.build(d, rng.random((10, 4)), rng.random((10, 4)), np.eye(3)[[0, 1, 2] * 3 + [0]],
        ...                                 np.eye(3)[[1] * 10], texts=[f"q{i}" for i in range(10)])
        >>> dataset = ClusterLabeledDataset(d, return_metadata=True)
        >>> loader = DataLoader(dataset, batch_size=4, collate_fn=collate_with_metadata)
        >>> base, steering, label, metadata = next(iter(loader))
        >>> base.shape, [m["text"] for m in metadata]
        (torch.Size([4, 4]), ['q0', 'q1', 'q2', 'q3'])
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    if isinstance(batch, SampleBatch):
        return batch.collate()
    if len(batch[0]) != 4 or not isinstance(batch[0][3], Mapping):
        return default_collate(list(batch))  # type: ignore[no-any-return,unused-ignore]
    base, steering, label = default_collate([b[:3] for b in batch])
    return base, steering, label, [dict(b[3]) for b in batch]


def store_summary(
    dataset_dir: str | os.PathLike[str], *, allow_pickle: bool = False, chunk: int = 65_536
) -> dict[str, Any]:
    """What ``mixweave store info`` prints: sizes, shapes and a summary of each label type.

    Labels are read in chunks of ``chunk`` rows, so a store larger than
    memory can be summarised. For each label type: the share of one-hot
    rows, the mean entropy (nats) and how many rows have each cluster as
    their largest label value.
    """
    ds = ClusterLabeledDataset(dataset_dir, cache_size=0, allow_pickle=allow_pickle)
    files = {p.name: p.stat().st_size for p in sorted(ds.dataset_dir.iterdir()) if p.is_file()}
    per_row = 2 * ds.embedding_dim * 4 + ds.n_clusters * 4
    summary: dict[str, Any] = {
        "path": str(ds.dataset_dir),
        "samples": len(ds),
        "embedding_dim": ds.embedding_dim,
        "n_clusters": ds.n_clusters,
        "label_encoding": ds._encoding,
        "label_array": ds.has_label_array,
        "files": files,
        "bytes": sum(files.values()),
        "labels": {},
        "cache_advice": {
            "cache_size": max(100, len(ds) // 10),
            "bytes_per_cached_sample": per_row,
            "note": (
                "10% of the samples per process when the same samples come back soon; for random batches over "
                "the whole store cache_size=0 reads faster (every DataLoader worker keeps its own cache)"
            ),
        },
    }
    for column in _LABEL_COLUMNS:
        one_hot = 0
        entropy = 0.0
        argmax = np.zeros(ds.n_clusters, dtype=np.int64)
        for _, chunk_labels in ds._label_rows(ds._con(), (column,), chunk):
            labels = chunk_labels[:, 0].astype(np.float64)
            one_hot += int((((labels == 1).sum(axis=1) == 1) & ((labels == 0).sum(axis=1) == ds.n_clusters - 1)).sum())
            p = labels / np.maximum(labels.sum(axis=1, keepdims=True), 1e-300)
            entropy += float(-(p * np.log(np.where(p > 0, p, 1.0))).sum())
            argmax += np.bincount(labels.argmax(axis=1), minlength=ds.n_clusters)
        n = max(len(ds), 1)
        summary["labels"][column.removesuffix("_label")] = {
            "one_hot_share": one_hot / n,
            "mean_entropy": entropy / n,
            "argmax_counts": argmax.tolist(),
        }
    return summary
