"""The on-disk format of a cluster store: files, tables, label encodings, and how a store is opened and checked.

A store is a directory::

    dataset.db                 SQLite: table ``samples`` (one row per sample, labels as BLOBs)
                               and table ``dataset_info`` (key/value: n_clusters, embedding_dim, ...)
    base_embeddings.npy        float32 [N, D]
    steering_embeddings.npy    float32 [N, D]
    labels.npy, labels.seq     mixweave's copy of the labels, float32 [N, 3, C] (optional;
                               NOTE [ Label array ] in :mod:`mixweave.data.store.labels`)

The table names and columns are those of the layout other tools already write,
so those tools can read a mixweave store and mixweave can read theirs:

* embeddings as ``.npy`` files with a header, or as raw float32 memmaps whose
  shape comes from ``dataset_info`` (``dataset_size`` x ``embedding_dim``);
* labels as raw float32 bytes (what mixweave writes, with ``label_encoding``,
  ``label_dtype`` and ``label_shape`` recorded in ``dataset_info``), as JSON
  text lists (what RAG_supporters' ``DomainAssessmentDatasetBuilder`` writes),
  or as pickled numpy arrays, which are read only when the caller passes
  ``allow_pickle=True``: unpickling runs code from the file;
* the embedding files at their default names, or where an
  ``embeddings_meta`` table (``embedding_type``, ``file_path``) says (the
  builder's layout; a relative ``file_path`` is looked up beside
  ``dataset.db`` first, as the builder writes it relative to its own working
  directory);
* the store's size from ``dataset_info`` ``dataset_size``, or the number of
  rows in ``samples`` when that key is absent.

Nothing here holds state: these are the functions the writer, the dataset and
the summary share.
"""

from __future__ import annotations

import json
import os
import pickle
import sqlite3
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..._validation import as_numpy
from ...core.names import LABEL_TYPES

__all__ = [
    "COLUMNS",
    "DB_FILE",
    "EMBEDDING_FILES",
    "FORMAT",
    "LABEL_ARRAY_FILE",
    "LABEL_COLUMNS",
    "LABEL_ENCODINGS",
    "LABEL_SEQ_FILE",
    "LABEL_TYPES",
    "MMAP_MODES",
    "NPY_MAGIC",
    "SCHEMA",
    "LabelCodec",
    "StoreLayout",
    "as_matrix",
    "blobs",
    "check_labels",
    "connect",
    "embedding_paths",
    "fsync_path",
    "identity",
    "is_read_only",
    "label_rows",
    "missing_store_message",
    "npy_header",
    "open_embeddings",
    "read_layout",
    "read_sample",
    "select_rows",
    "strings",
    "write_seq_file",
]

MMAP_MODES = ("r", "r+", "c")
DB_FILE = "dataset.db"
EMBEDDING_FILES = {"base": "base_embeddings.npy", "steering": "steering_embeddings.npy"}
FORMAT = "mixweave-cluster-store/1"
LABEL_ARRAY_FILE = "labels.npy"  # float32 (N, 3, C): every label of index i, in LABEL_TYPES order
LABEL_SEQ_FILE = "labels.seq"  # one int64, odd while update_labels rewrites rows of the label array
COLUMNS = ("sample_id", "embedding_idx", "sample_type", "text", "chroma_id", "suggestions", "steering_mode")
LABEL_COLUMNS = tuple(f"{t}_label" for t in LABEL_TYPES)
SCHEMA = """
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
NPY_MAGIC = b"\x93NUMPY"
_NPY_HEADER_BYTES = 128  # fixed, so the header can be rewritten in place once the row count is known


# --------------------------------------------------------------------------- writing helpers
def npy_header(rows: int, *dims: int) -> bytes:
    """A version 1.0 ``.npy`` header for float32 ``(rows, *dims)``, padded to a fixed 128 bytes."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({', '.join(map(str, (rows, *dims)))}), }}"
    body = text.ljust(_NPY_HEADER_BYTES - 10 - 1) + "\n"
    return NPY_MAGIC + b"\x01\x00" + len(body).to_bytes(2, "little") + body.encode("latin1")


def as_matrix(value: Any, name: str, rows: int | None, cols: int | None) -> np.ndarray:
    """``value`` as a C-contiguous float32 matrix of finite numbers with the expected shape."""
    arr = np.asarray(as_numpy(value))
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"`{name}` must be an array of real numbers, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 2-D (rows, columns), got shape {arr.shape}")
    if rows is not None and arr.shape[0] != rows:
        raise ValueError(f"`{name}` has {arr.shape[0]} rows but `base_embeddings` has {rows}")
    if cols is not None and arr.shape[1] != cols:
        raise ValueError(f"`{name}` must have {cols} columns, got shape {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"`{name}` must be finite, got {arr[r, c]} at row {r}, column {c}")
    return arr


def check_labels(arr: np.ndarray, name: str) -> None:
    """Labels are one-hot rows or distributions: no negative value."""
    negative = arr < 0
    if negative.any():
        r, c = np.argwhere(negative)[0]
        raise ValueError(f"`{name}` must be non-negative (one-hot or a distribution), got {arr[r, c]} at row {r}")


def strings(value: Any, name: str, rows: int, default: str | None) -> list[Any]:
    """A text column of ``rows`` entries (``default`` when absent); non-strings become JSON."""
    if value is None:
        return [default] * rows
    if isinstance(value, str):
        raise TypeError(f"`{name}` must be a sequence of strings, one per row, got a single str")
    out = list(value)
    if len(out) != rows:
        raise ValueError(f"`{name}` has {len(out)} entries but there are {rows} rows")
    if default is not None and any(v is None for v in out):
        raise ValueError(f"`{name}` must not contain None (column is NOT NULL)")
    return [v if v is None or isinstance(v, str) else json.dumps(v) for v in out]


def blobs(labels: np.ndarray) -> list[bytes]:
    """One raw float32 BLOB per row, without a Python loop over the values."""
    out: list[bytes] = labels.view(np.dtype((np.void, labels.shape[1] * 4))).ravel().tolist()  # type: ignore[assignment]
    return out


def write_seq_file(path: Path) -> None:
    """A new ``labels.seq``: one int64 zero (even: no writer inside), flushed to disk."""
    with open(path, "wb") as f:
        f.write(np.zeros(1, dtype=np.int64).tobytes())
        f.flush()
        os.fsync(f.fileno())


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's entry to disk (a rename is durable only after its directory is)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- label encodings
LABEL_ENCODINGS = ("raw", "json", "pickle")


class LabelCodec:
    """Decodes label values of one store: raw float32 bytes, JSON text lists, or pickled arrays when allowed.

    Args:
        encoding: ``"raw"``, ``"json"`` or ``"pickle"`` (checked by :func:`read_layout`).
        n_clusters: the width every label must have.
        db_path: named in errors.
    """

    def __init__(self, encoding: str, n_clusters: int, db_path: Path) -> None:
        self.encoding = encoding
        self.n_clusters = n_clusters
        self.db_path = db_path

    def encode(self, label: np.ndarray) -> bytes | str:
        """One label row as this store writes it (JSON stores: text, as the tool that wrote them reads it)."""
        if self.encoding == "json":
            return json.dumps(label.tolist())
        return pickle.dumps(label) if self.encoding == "pickle" else label.tobytes()

    def _json(self, text: Any, column: str, sample_id: int) -> np.ndarray:
        try:
            arr = np.asarray(json.loads(text), dtype=np.float32).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{self.db_path}: {column} of sample_id {sample_id} is not a JSON list of numbers: {str(text)[:60]!r}"
            ) from exc
        return arr

    def decode(self, blob: Any, column: str, sample_id: int) -> np.ndarray:
        """One label BLOB as float32 ``(n_clusters,)``; errors name the column and the sample."""
        if self.encoding == "pickle":
            arr = np.asarray(pickle.loads(blob), dtype=np.float32).reshape(-1)  # allow_pickle was checked at open
        elif self.encoding == "json":
            arr = self._json(blob, column, sample_id)
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

    def decode_many(self, values: Sequence[Any], column: str, ids: np.ndarray) -> np.ndarray:
        """Many label BLOBs as float32 ``(k, n_clusters)``: raw ones with one ``frombuffer``."""
        if self.encoding == "pickle":
            return np.stack([self.decode(b, column, int(i)) for b, i in zip(values, ids, strict=True)])
        if self.encoding == "json":
            return self._json_many(values, column, ids)
        width = 4 * self.n_clusters
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        bad = np.flatnonzero(lengths != width)
        if bad.size:
            self.decode(values[bad[0]], column, int(ids[bad[0]]))  # raises with the details
        return np.frombuffer(b"".join(values), dtype=np.float32).reshape(len(values), self.n_clusters).copy()

    def _json_many(self, values: Sequence[Any], column: str, ids: np.ndarray) -> np.ndarray:
        """Many JSON text labels with one parse of the joined text; a bad row is found and named on failure."""
        try:
            rows = json.loads("[" + ",".join(values) + "]") if values else []
            out = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError):
            out = None
        if out is None or out.shape != (len(values), self.n_clusters):
            for text, i in zip(values, ids, strict=True):
                self.decode(text, column, int(i))  # raises with the details
        assert out is not None
        return out


def label_rows(
    con: sqlite3.Connection, codec: LabelCodec, columns: Sequence[str] = LABEL_COLUMNS, chunk: int = 65_536
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, labels)`` from SQLite in index (sample_id) order, ``chunk`` rows at a time.

    ``labels`` is float32 ``(k, len(columns), C)`` for rows ``start .. start + k``; no embedding is read.
    """
    cursor = con.execute(f"SELECT sample_id, {', '.join(columns)} FROM samples ORDER BY sample_id")
    start = 0
    while batch := cursor.fetchmany(chunk):
        ids = np.fromiter((r[0] for r in batch), dtype=np.int64, count=len(batch))
        labels = np.stack([codec.decode_many([r[1 + k] for r in batch], c, ids) for k, c in enumerate(columns)], axis=1)
        yield start, labels
        start += ids.size


# --------------------------------------------------------------------------- opening
@dataclass
class StoreLayout:
    """What ``dataset.db`` says about a store, checked against its ``samples`` table.

    Attributes:
        info: the ``dataset_info`` table.
        n_clusters, embedding_dim, size: the store's shape.
        embedding_paths: the ``base`` and ``steering`` embedding files.
        embedding_count: rows of each embedding file (``size``, or more in other tools'
            stores whose ``samples`` lost rows: ``embedding_idx`` says which row is whose).
        first_id: the ``sample_id`` of index 0.
        ids: ``sample_id`` of each index, when ids are not ``first_id + index`` (else None).
        embedding_rows: the embedding row of each index, when it is not the index (else None).
        codec: the label decoder.
    """

    info: dict[str, str]
    n_clusters: int
    embedding_dim: int
    size: int
    first_id: int
    ids: np.ndarray | None
    embedding_rows: np.ndarray | None
    codec: LabelCodec
    embedding_paths: dict[str, Path]
    embedding_count: int

    def positions(self, indices: Any) -> np.ndarray:
        """``indices`` as int64 positions in ``[0, size)`` (negative ones count from the end).

        Raises:
            TypeError: for indices that are not integers.
            IndexError: for an index out of range.
        """
        idx = np.asarray(indices)
        if idx.size == 0:
            return np.empty(0, dtype=np.int64)  # an empty list is float64 to numpy: still a valid, empty batch
        if idx.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        low, high = int(idx.min()), int(idx.max())
        if low < -self.size or high >= self.size:
            bad = low if low < -self.size else high
            raise IndexError(
                f"Index {bad} out of range [0, {self.size}) (negative indices count from the end, down to -{self.size})"
            )
        return np.where(idx < 0, idx + self.size, idx) if low < 0 else idx

    def sample_ids(self, idx: np.ndarray) -> np.ndarray:
        """The ``sample_id`` of each position."""
        return idx + self.first_id if self.ids is None else self.ids[idx]

    def embedding_index(self, idx: Any) -> Any:
        """The embedding row of each position (a position, or an array of them)."""
        return idx if self.embedding_rows is None else self.embedding_rows[idx]

    def index_of(self, sample_id: int) -> int:
        """The position of ``sample_id``."""
        if self.ids is None:
            return sample_id - self.first_id
        return int(np.searchsorted(self.ids, sample_id))


def _need(info: dict[str, str], key: str, path: Path) -> int:
    if key not in info:
        raise ValueError(f"{path}: table dataset_info has no {key!r}; a store records n_clusters and embedding_dim")
    try:
        return int(info[key])
    except ValueError:
        raise ValueError(f"{path}: dataset_info {key!r} must be an integer, got {info[key]!r}") from None


def _detect_encoding(con: sqlite3.Connection) -> str:
    """Other tools do not record the label encoding: JSON is text; pickles start with PROTO and end with STOP."""
    row = con.execute("SELECT source_label FROM samples LIMIT 1").fetchone()
    if row is None:
        return "raw"
    if isinstance(row[0], str):
        return "json"
    blob = bytes(row[0])
    return "pickle" if blob[:1] == b"\x80" and blob[-1:] == b"." else "raw"


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _npy_rows(path: Path) -> int:
    """Rows of a 2-D ``.npy`` file from its header (0 when it is missing, raw or not 2-D: checked when opened)."""
    try:
        with open(path, "rb") as f:
            if f.read(6) != NPY_MAGIC:
                return 0
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError):
        return 0
    return int(shape[0]) if len(shape) == 2 else 0


def embedding_paths(con: sqlite3.Connection, db_path: Path) -> dict[str, Path]:
    """Where the ``base`` and ``steering`` embeddings are: the default names, or the ``embeddings_meta`` rows.

    A ``file_path`` in ``embeddings_meta`` is looked up beside ``dataset.db``
    first (by its file name), then as written (absolute, or relative to the
    working directory), so a store that was moved still opens.

    Raises:
        ValueError: if ``embeddings_meta`` exists but has no row for a type.
    """
    folder = db_path.parent
    if "embeddings_meta" not in _tables(con):
        return {key: folder / name for key, name in EMBEDDING_FILES.items()}
    rows = dict(con.execute("SELECT embedding_type, file_path FROM embeddings_meta").fetchall())
    out = {}
    for key in EMBEDDING_FILES:
        if key not in rows:
            raise ValueError(
                f"No embedding file registered for type {key!r}: {db_path}: table embeddings_meta has no row for "
                f"embedding_type {key!r} (rows: {sorted(rows)}); a store needs 'base' and 'steering' embeddings"
            )
        written = Path(str(rows[key]))
        beside = folder / written.name
        out[key] = beside if beside.is_file() or not written.is_file() else written
    return out


def _index_maps(
    con: sqlite3.Connection, info: dict[str, str], size: int, rows: int, db_path: Path
) -> tuple[int, Any, Any]:
    """``(first_id, ids, embedding_rows)``; the arrays only when ids or embedding rows are not contiguous."""
    if info.get("layout") == "contiguous":  # written by mixweave: ids first_id.., embedding row = index
        return int(info.get("first_sample_id", 0)), None, None
    count, first, last, e_min, e_max, shifted = con.execute(
        "SELECT COUNT(*), MIN(sample_id), MAX(sample_id), MIN(embedding_idx), MAX(embedding_idx), "
        "SUM(embedding_idx != sample_id - (SELECT MIN(sample_id) FROM samples)) FROM samples"
    ).fetchone()
    if count != size:
        raise ValueError(f"{db_path}: dataset_info says dataset_size={size} but samples has {count} rows")
    if count and (e_min < 0 or e_max >= rows):
        raise ValueError(f"{db_path}: embedding_idx ranges over [{e_min}, {e_max}], outside the {rows} embedding rows")
    if not (shifted or (count and int(last) - int(first) + 1 != count)):
        return int(first or 0), None, None
    table = np.array(
        con.execute("SELECT sample_id, embedding_idx FROM samples ORDER BY sample_id").fetchall(), dtype=np.int64
    ).reshape(-1, 2)
    return int(first or 0), table[:, 0].copy(), table[:, 1].copy()


def read_layout(con: sqlite3.Connection, db_path: Path, *, allow_pickle: bool) -> StoreLayout:
    """Read and check ``dataset_info`` and the ``samples`` table; decode the first row's labels as a probe.

    Raises:
        ValueError: for a file that is not a store, missing columns or keys,
            a row count or embedding index that disagrees with ``dataset_info``,
            an unknown label encoding, or pickled labels without ``allow_pickle``.
    """
    try:
        info = dict(con.execute("SELECT key, value FROM dataset_info").fetchall())
        columns = {r[1] for r in con.execute("PRAGMA table_info(samples)")}
    except sqlite3.DatabaseError as exc:
        raise ValueError(f"{db_path}: not a readable cluster store ({exc})") from exc
    missing = [c for c in (*COLUMNS, *LABEL_COLUMNS) if c not in columns]
    if not columns or missing:
        raise ValueError(f"{db_path}: table samples lacks column(s) {missing}")
    n_clusters, dim = (_need(info, k, db_path) for k in ("n_clusters", "embedding_dim"))
    if "dataset_size" in info:
        size = _need(info, "dataset_size", db_path)
    else:  # other tools' layouts: the table's row count
        size = int(con.execute("SELECT COUNT(*) FROM samples").fetchone()[0])
    paths = embedding_paths(con, db_path)
    rows = size if "dataset_size" in info else max(size, _npy_rows(paths["base"]))
    first_id, ids, embedding_rows = _index_maps(con, info, size, rows, db_path)
    encoding = info.get("label_encoding") or _detect_encoding(con)
    if encoding not in LABEL_ENCODINGS:
        raise ValueError(
            f"{db_path}: unknown label_encoding {encoding!r} (known: {', '.join(map(repr, LABEL_ENCODINGS))})"
        )
    if encoding == "pickle" and not allow_pickle:
        raise ValueError(
            f"{db_path} stores labels as pickled numpy arrays; unpickling can run arbitrary code, so it is "
            "off by default. Pass allow_pickle=True only if you trust this file."
        )
    codec = LabelCodec(encoding, n_clusters, db_path)
    row = con.execute(f"SELECT {', '.join(LABEL_COLUMNS)} FROM samples ORDER BY sample_id LIMIT 1").fetchone()
    if row is not None:
        for column, blob in zip(LABEL_COLUMNS, row, strict=True):
            codec.decode(blob, column, first_id if ids is None else int(ids[0]))
    return StoreLayout(info, n_clusters, dim, size, first_id, ids, embedding_rows, codec, paths, rows)


def open_embeddings(path: Path, expected: tuple[int, int], mmap_mode: str, kind: str = "") -> np.ndarray:
    """Map one embedding file (``.npy`` or raw float32) and check its dtype and shape against ``expected``.

    ``kind`` (``"base"``/``"steering"``) names the file in errors.
    """
    if not path.is_file():
        raise FileNotFoundError(f"Embedding file not found: {path} (it is missing from the store)")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == NPY_MAGIC:
        try:
            arr = np.load(path, mmap_mode=mmap_mode, allow_pickle=False)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ValueError(f"{path}: cannot map the array ({exc}); is the file truncated?") from exc
        if arr.dtype != np.float32:
            raise ValueError(f"{path}: embeddings must be float32, got {arr.dtype}")
        if arr.ndim == 2 and arr.shape[1] != expected[1]:
            raise ValueError(
                f"{kind + ' ' if kind else ''}embeddings dimension mismatch: expected {expected[1]}, got "
                f"{arr.shape[1]}: {path}: shape {arr.shape} does not match dataset_info (embedding_dim={expected[1]})"
            )
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
    return np.memmap(path, dtype=np.float32, mode=mmap_mode, shape=expected)  # type: ignore[call-overload]


def read_sample(con: sqlite3.Connection, codec: LabelCodec, sample_id: int) -> dict[str, Any] | None:
    """Every column of one sample (labels decoded, as tensors), or None when no row has ``sample_id``."""
    query = f"SELECT {', '.join((*COLUMNS, *LABEL_COLUMNS))} FROM samples WHERE sample_id = ?"
    row = con.execute(query, (sample_id,)).fetchone()
    if row is None:
        return None
    out: dict[str, Any] = dict(zip(COLUMNS, row[:7], strict=True))
    for k, column in enumerate(LABEL_COLUMNS):
        out[column] = torch.from_numpy(codec.decode(row[7 + k], column, sample_id))
    return out


def select_rows(con: sqlite3.Connection, columns: Sequence[str], ids: np.ndarray, db_path: Path) -> list[Any]:
    """``(sample_id, *columns)`` of every id in ``ids``, in the order of ``ids`` (one query).

    Raises:
        ValueError: if an id is missing (the table changed while a dataset had it open).
    """
    names = ", ".join(columns)
    if ids.size == 1:
        fetched = con.execute(f"SELECT sample_id, {names} FROM samples WHERE sample_id = ?", (int(ids[0]),)).fetchall()
    else:
        fetched = con.execute(
            f"SELECT s.sample_id, {names} FROM samples AS s JOIN json_each(?) AS j ON s.sample_id = j.value",
            (json.dumps(ids.tolist()),),
        ).fetchall()
    got = np.fromiter((r[0] for r in fetched), dtype=np.int64, count=len(fetched))
    if got.size != ids.size or not np.array_equal(np.sort(got), np.sort(ids)):
        raise ValueError(f"{db_path}: table samples changed its sample ids while this dataset was open")
    if not np.array_equal(got, ids):  # put the database's order into the order of `ids`
        where = np.empty(ids.size, dtype=np.int64)
        where[np.argsort(ids, kind="stable")] = np.argsort(got, kind="stable")
        fetched = [fetched[j] for j in where.tolist()]
    return fetched


# --------------------------------------------------------------------------- connecting
_SQLITE_MMAP_BYTES = 1 << 30


def connect(db_path: Path, *, read_only: bool) -> sqlite3.Connection:
    """A connection to a store's database: read-write, or read-only for stores on read-only media.

    A read-only store (a read-only mount, or files and folder of another user
    without write permission) is opened with SQLite's ``immutable`` flag: SQLite
    can then read it without creating the ``-wal``/``-shm`` files it cannot write.
    """
    query = "mode=ro&immutable=1" if read_only else "mode=rw"
    wal = db_path.with_name(db_path.name + "-wal")
    if read_only and wal.is_file() and wal.stat().st_size > 0:
        warnings.warn(
            f"{wal} holds changes not yet folded into {db_path.name} (a writer was stopped before it closed); a "
            "read-only open cannot apply them, so the labels read from SQLite may be older than labels.npy. Open "
            "the store once with write access to fold them in.",
            UserWarning,
            stacklevel=3,
        )
    con = sqlite3.connect(
        f"{db_path.resolve().as_uri()}?{query}", uri=True, timeout=30.0, isolation_level=None, check_same_thread=True
    )
    con.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES}")  # random row lookups read mapped pages, not pread()
    return con


def is_read_only(db_path: Path) -> bool:
    """Whether this process cannot write the store: its database, its folder (SQLite writes beside it) or the mount."""
    folder = db_path.parent
    if not (os.access(db_path, os.W_OK) and os.access(folder, os.W_OK)):
        return True
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)


def identity(db_path: Path) -> tuple[int, int]:
    """Device and inode of the database file: a store rebuilt in place (``overwrite=True``) has another."""
    st = os.stat(db_path)
    return st.st_dev, st.st_ino


def missing_store_message(dataset_dir: Path) -> str:
    """Why there is no store at ``dataset_dir``, pointing at a version an interrupted overwrite left aside."""
    survivors = sorted(dataset_dir.parent.glob(f".{dataset_dir.name}.replaced-*"), key=lambda p: p.stat().st_mtime)
    survivors = [p for p in survivors if (p / DB_FILE).is_file()]
    if survivors:
        return (
            f"no {DB_FILE} in {dataset_dir}, but the previous version of this store survives in {survivors[-1]}: "
            f"a rebuild with overwrite=True was interrupted between its two renames. Move it back "
            f"(os.rename({str(survivors[-1])!r}, {str(dataset_dir)!r})) or build the store again"
        )
    return f"no {DB_FILE} in {dataset_dir}: not a cluster store (or a wrong path)"
