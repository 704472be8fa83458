"""The label array of a store: ``labels.npy`` kept equal to SQLite under a seqlock.

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
import mmap
import platform
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..._io import atomic_path
from ..._validation import as_numpy, warn
from .format import (
    LABEL_ARRAY_FILE,
    LABEL_COLUMNS,
    LABEL_SEQ_FILE,
    LABEL_TYPES,
    LabelCodec,
    StoreLayout,
    as_matrix,
    check_labels,
    fsync_path,
    label_rows,
    npy_header,
    write_seq_file,
)

__all__ = [
    "LabelArrayWriter",
    "check_label_array",
    "create_label_array",
    "ordered_cpu",
    "read_array_labels",
    "replace_labels",
    "rewrite_label_array",
    "write_labels",
]

# The seqlock relies on stores and loads not being reordered between cores (x86-64's TSO);
# elsewhere labels are read from SQLite (see NOTE [ Label array ]).
_LABEL_ARRAY_MACHINES = frozenset({"x86_64", "amd64"})


def ordered_cpu() -> bool:
    """Whether this machine orders loads and stores as the seqlock needs (x86-64)."""
    return platform.machine().lower() in _LABEL_ARRAY_MACHINES


def check_label_array(dataset_dir: Path, info: Mapping[str, str], size: int, n_clusters: int) -> bool:
    """Validate ``labels.npy``/``labels.seq`` when ``dataset_info`` names them; False for stores without them."""
    if info.get("label_array") != LABEL_ARRAY_FILE:
        return False
    path, seq = dataset_dir / LABEL_ARRAY_FILE, dataset_dir / LABEL_SEQ_FILE
    if not path.is_file() or not seq.is_file():
        warn(
            f"{dataset_dir}: dataset_info names a label array but {path.name} or {seq.name} is missing; "
            "labels are read from SQLite (store.sync_label_array() writes the array again)",
            stacklevel=4,
        )
        return False
    expected = (size, len(LABEL_TYPES), n_clusters)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"{path}: cannot map the label array ({exc}); is the file truncated?") from exc
    if arr.dtype != np.float32 or arr.shape != expected:
        raise ValueError(
            f"{path}: label array of {arr.dtype} {arr.shape}, but dataset_info (dataset_size={size}, "
            f"n_clusters={n_clusters}) needs float32 {expected}"
        )
    if seq.stat().st_size != 8:
        raise ValueError(f"{seq}: {seq.stat().st_size} bytes, expected one int64 (8 bytes)")
    return True


def read_array_labels(seq: np.ndarray, view: np.ndarray, rows: Any) -> np.ndarray | None:
    """Labels of ``rows`` from the array ``view``, or None when a writer is or was mid-update (read SQLite then)."""
    before = int(seq[0])
    if before & 1:
        return None
    picked = view[rows]  # fancy indexing copies; one row is a view, so copy it
    out = picked.copy() if isinstance(rows, (int, np.integer)) else picked
    if int(seq[0]) != before:
        return None
    if not np.isfinite(out).all():  # the array was damaged outside mixweave: SQLite holds the record
        warn(
            "the label array (labels.npy) holds non-finite values: labels are read from SQLite; "
            "`mixweave store sync-labels DIR` rewrites the array",
            stacklevel=5,
        )
        return None
    return out


class LabelArrayWriter:
    """Writable mappings of ``labels.npy`` and ``labels.seq`` for one update (NOTE [ Label array ]).

    Used only while holding SQLite's write lock, so there is one writer at a
    time across processes. :meth:`begin` makes the sequence number odd (and
    durable) before any row changes; :meth:`end` makes it even again after the
    rows are on disk. A writer that dies in between leaves it odd.
    """

    def __init__(self, dataset_dir: Path, codec: LabelCodec) -> None:
        with open(dataset_dir / LABEL_ARRAY_FILE, "r+b") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(f)
            self._offset = f.tell()
            self._map = mmap.mmap(f.fileno(), 0)
        with open(dataset_dir / LABEL_SEQ_FILE, "r+b") as f:
            self._seq_map = mmap.mmap(f.fileno(), 8)
        self.labels = np.ndarray(shape, dtype=dtype, buffer=self._map, offset=self._offset)
        self.seq = np.ndarray((1,), dtype=np.int64, buffer=self._seq_map)
        self._row_bytes = int(np.prod(shape[1:])) * 4
        self._codec = codec
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
        """Set label types ``values`` (position in ``LABEL_TYPES`` -> row) of ``index`` and flush its pages."""
        for pos, value in values.items():
            self.labels[index, pos] = value
        start = self._offset + index * self._row_bytes
        lo = start - start % mmap.ALLOCATIONGRANULARITY
        self._map.flush(lo, start + self._row_bytes - lo)

    def copy_from_sqlite(self, con: sqlite3.Connection, advance: Callable[[int], None] = lambda n: None) -> None:
        """Rewrite every row from SQLite (after a writer died, or labels changed there directly)."""
        for start, labels in label_rows(con, self._codec):
            self.labels[start : start + labels.shape[0]] = labels
            advance(labels.shape[0])
        self._map.flush()

    def end(self) -> None:
        self.seq[0] += 1
        self._seq_map.flush()
        self.open = False

    def close(self) -> None:
        del self.labels, self.seq  # the maps cannot close while arrays point into them
        self._map.close()
        self._seq_map.close()


def write_labels(
    con: sqlite3.Connection,
    update: Callable[[], None],
    writer: LabelArrayWriter | None,
    index: int,
    values: Mapping[int, np.ndarray],
) -> None:
    """Run ``update`` (the SQLite UPDATE) and the same change to the label array in one write transaction.

    On failure SQLite rolls back and the array is rewritten from SQLite (or,
    if even that fails, its sequence number stays odd so readers use SQLite).
    """
    con.execute("BEGIN IMMEDIATE")  # the write lock also serialises writers of the label array
    try:
        update()
        if writer is not None:  # NOTE [ Label array ]: same rows, inside the transaction, under the seqlock
            if writer.begin():  # a writer died mid-update: rewrite everything from SQLite
                writer.copy_from_sqlite(con)
            else:
                writer.write_row(index, values)
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


def replace_labels(
    con: sqlite3.Connection,
    layout: StoreLayout,
    writer: LabelArrayWriter | None,
    sample_id: int,
    new: Mapping[str, Any],
    check: Callable[[], None] = lambda: None,
) -> None:
    """Set the label columns ``new`` (``"source_label"`` -> values, ...) of one sample in SQLite and the array.

    ``check`` runs inside the write transaction, before anything is written
    (the dataset checks there that its store was not replaced meanwhile).

    Raises:
        ValueError: if ``new`` is empty, or a label is not ``n_clusters`` finite, non-negative numbers.
        KeyError: if no sample has ``sample_id``.
    """
    if not new:
        raise ValueError("update_labels needs at least one of source_label, steering_label, combined_label")
    values = {c: as_matrix(np.reshape(as_numpy(v), (1, -1)), c, 1, layout.n_clusters)[0] for c, v in new.items()}
    for column, value in values.items():
        check_labels(value[None], column)

    def update() -> None:
        check()
        assignments = ", ".join(f"{c} = ?" for c in values)
        blobs = [layout.codec.encode(v) for v in values.values()]
        changed = con.execute(f"UPDATE samples SET {assignments} WHERE sample_id = ?", (*blobs, sample_id)).rowcount
        if changed != 1:
            raise KeyError(f"no sample with sample_id {sample_id} in {layout.codec.db_path}")

    positions = {LABEL_COLUMNS.index(c): v for c, v in values.items()}
    write_labels(con, update, writer, layout.index_of(sample_id), positions)


def rewrite_label_array(
    con: sqlite3.Connection, dataset_dir: Path, codec: LabelCodec, advance: Callable[[int], None] = lambda n: None
) -> None:
    """Rewrite an existing label array from SQLite, in place, under the seqlock; ``advance(rows)`` after each chunk."""
    writer = LabelArrayWriter(dataset_dir, codec)
    con.execute("BEGIN IMMEDIATE")
    try:
        writer.begin()
        writer.copy_from_sqlite(con, advance)
        con.execute("COMMIT")
        writer.end()
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        writer.close()


def create_label_array(
    con: sqlite3.Connection,
    dataset_dir: Path,
    codec: LabelCodec,
    size: int,
    advance: Callable[[int], None] = lambda n: None,
) -> None:
    """Write ``labels.npy`` and ``labels.seq`` for a store without them, and name them in ``dataset_info``.

    The files are written beside their final names and renamed into place
    while SQLite's write lock keeps labels from changing.
    """
    try:
        con.execute("BEGIN IMMEDIATE")  # no label changes while the copy is taken
        with atomic_path(dataset_dir / LABEL_SEQ_FILE) as seq:  # the sequence number first: readers need it
            write_seq_file(seq)
        with atomic_path(dataset_dir / LABEL_ARRAY_FILE) as tmp, open(tmp, "wb") as f:
            f.write(npy_header(size, len(LABEL_TYPES), codec.n_clusters))
            for _, labels in label_rows(con, codec):
                f.write(labels.tobytes())
                advance(labels.shape[0])
        fsync_path(dataset_dir)
        con.execute("INSERT OR REPLACE INTO dataset_info VALUES ('label_array', ?)", (LABEL_ARRAY_FILE,))
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise
