"""Writing a store: chunk by chunk into a temporary directory, renamed into place when complete.

A crash leaves either no store or the previous one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from ..._progress import progress_bar
from ..._validation import check_int, check_real, warn
from .format import (
    DB_FILE,
    EMBEDDING_FILES,
    FORMAT,
    LABEL_ARRAY_FILE,
    LABEL_SEQ_FILE,
    LABEL_TYPES,
    SCHEMA,
    as_matrix,
    blobs,
    check_labels,
    fsync_path,
    npy_header,
    strings,
    write_seq_file,
)

__all__ = ["BUILD_CHUNK", "StoreWriter", "check_destination", "replace_dir", "write_store"]

BUILD_CHUNK = 65_536  # rows per append when a store is built from arrays in memory


class StoreWriter:
    """Write a store chunk by chunk; it appears at ``dataset_dir`` only when :meth:`finish` succeeds.

    Rows go to a temporary directory beside ``dataset_dir``; :meth:`finish`
    completes the headers, flushes everything to disk and renames the
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
        progress: show a progress bar on stderr (needs rich, the ``cli`` extra). ``None``: when ``total``
            is at least 200,000, stderr is a terminal and rich is installed; ``False``: never.

    Raises:
        FileExistsError: if ``dataset_dir`` exists and ``overwrite`` is false.
        ValueError: for a non-positive ``embedding_dim``/``n_clusters`` or
            ``alpha`` outside [0, 1].
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
        self.alpha = check_real(alpha, "alpha", low=0.0, high=1.0)
        self.overwrite = bool(overwrite)
        check_destination(self.dataset_dir, self.overwrite)
        self.dataset_dir.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.dataset_dir.name}.building-", dir=self.dataset_dir.parent))
        self._files: dict[str, BinaryIO] = {}
        self._closed = False
        self._progress = contextlib.ExitStack()
        try:
            self._con = self._start_files()
        except BaseException:  # a full disk already here: nothing half-built stays behind
            self.abort()
            raise
        self.num_rows = 0
        try:
            self._advance = self._progress.enter_context(
                progress_bar(f"building {self.dataset_dir.name}", total, progress)
            )
        except BaseException:
            self.abort()
            raise

    def _start_files(self) -> sqlite3.Connection:
        for key, name in EMBEDDING_FILES.items():
            self._files[key] = open(self._tmp / name, "wb")  # noqa: SIM115 - closed in finish()/abort()
            self._files[key].write(npy_header(0, self.embedding_dim))
        self._files["labels"] = open(self._tmp / LABEL_ARRAY_FILE, "wb")  # noqa: SIM115 - closed in finish()/abort()
        self._files["labels"].write(npy_header(0, len(LABEL_TYPES), self.n_clusters))
        con = sqlite3.connect(self._tmp / DB_FILE, isolation_level=None)
        con.executescript(SCHEMA)
        con.execute("PRAGMA synchronous=OFF")  # a crash discards the temporary directory anyway
        con.execute("BEGIN")
        return con

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
            raise RuntimeError(f"this {type(self).__name__} is closed")
        base = as_matrix(base_embeddings, "base_embeddings", None, self.embedding_dim)
        k = base.shape[0]
        steering = as_matrix(steering_embeddings, "steering_embeddings", k, self.embedding_dim)
        labels = {
            "source": as_matrix(source_labels, "source_labels", k, self.n_clusters),
            "steering": as_matrix(steering_labels, "steering_labels", k, self.n_clusters),
        }
        if combined_labels is None:
            labels["combined"] = (self.alpha * labels["source"] + (1 - self.alpha) * labels["steering"]).astype(
                np.float32
            )
        else:
            labels["combined"] = as_matrix(combined_labels, "combined_labels", k, self.n_clusters)
        for key, arr in labels.items():
            check_labels(arr, f"{key}_labels")
        columns = (
            range(self.num_rows, self.num_rows + k),
            range(self.num_rows, self.num_rows + k),
            strings(sample_types, "sample_types", k, "unknown"),
            strings(texts, "texts", k, ""),
            strings(chroma_ids, "chroma_ids", k, ""),
            strings(suggestions, "suggestions", k, None),
            strings(steering_modes, "steering_modes", k, "none"),
            *(blobs(labels[t]) for t in LABEL_TYPES),
        )
        self._con.executemany(f"INSERT INTO samples VALUES ({', '.join('?' * 10)})", zip(*columns, strict=True))
        self._files["base"].write(base.tobytes())
        self._files["steering"].write(steering.tobytes())
        self._files["labels"].write(np.stack([labels[t] for t in LABEL_TYPES], axis=1).tobytes())
        self.num_rows += k
        self._advance(k)

    def finish(self) -> Path:
        """Finish the store and move it into place; returns its directory.

        Raises:
            ValueError: if no rows were appended.
        """
        if self._closed:
            raise RuntimeError(f"this {type(self).__name__} is closed")
        if self.num_rows == 0:
            self.abort()
            raise ValueError(f"no rows were appended; nothing was written to {self.dataset_dir}")
        try:
            for key, f in self._files.items():
                f.seek(0)
                dims = (len(LABEL_TYPES), self.n_clusters) if key == "labels" else (self.embedding_dim,)
                f.write(npy_header(self.num_rows, *dims))
                f.flush()
                os.fsync(f.fileno())
                f.close()
            write_seq_file(self._tmp / LABEL_SEQ_FILE)
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
            fsync_path(self._tmp / DB_FILE)
            fsync_path(self._tmp)
            replace_dir(self._tmp, self.dataset_dir, self.overwrite)
        except BaseException:
            self.abort()
            raise
        finally:
            self._stop_progress()
        self._closed = True
        return self.dataset_dir

    def close(self) -> Any:
        """Finish the store (:meth:`finish`); subclasses return what they open."""
        return self.finish()

    def abort(self) -> None:
        """Discard everything written so far; ``dataset_dir`` is left as it was."""
        self._closed = True
        try:
            self._stop_progress()
            for f in self._files.values():
                with contextlib.suppress(OSError):  # a full disk fails again when the buffer is flushed
                    f.close()
            with contextlib.suppress(sqlite3.Error, AttributeError):  # AttributeError: no connection yet
                self._con.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)  # whatever happened, nothing half-built stays behind

    def _stop_progress(self) -> None:
        self._progress.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def check_destination(path: Path, overwrite: bool) -> None:
    """Refuse to replace anything but a store, and a store only with ``overwrite``."""
    if not path.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace the store there")
    if not path.is_dir() or not (path / DB_FILE).is_file():
        raise ValueError(f"{path} exists but is not a store (no {DB_FILE}); refusing to replace it")


def replace_dir(src: Path, dst: Path, overwrite: bool) -> None:
    """Rename ``src`` to ``dst``; an old store at ``dst`` is moved aside first and deleted last."""
    if not dst.exists():
        os.rename(src, dst)
    else:
        check_destination(dst, overwrite)
        old = dst.parent / f".{dst.name}.replaced-{uuid.uuid4().hex[:8]}"
        os.rename(dst, old)
        os.rename(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    fsync_path(dst.parent)


def _check_build_inputs(base: Any, source_labels: Any, meta: dict[str, Any]) -> tuple[int, int]:
    """``(rows, n_clusters)`` of in-memory inputs, after the checks ``append`` cannot make before writing."""
    n = len(base)
    if n == 0:
        raise ValueError("`base_embeddings` has no rows")
    shape = np.shape(base)
    if len(shape) != 2:
        raise ValueError(f"`base_embeddings` must be 2-D (rows, dim), got shape {shape}")
    n_clusters = np.shape(source_labels)[-1] if np.ndim(source_labels) == 2 else 0
    if n_clusters == 0:
        raise ValueError(f"`source_labels` must be 2-D (rows, n_clusters), got shape {np.shape(source_labels)}")
    for name, value in meta.items():
        if isinstance(value, str):
            raise TypeError(f"`{name}` must be a sequence of strings, one per row, got a single str")
        if value is not None and len(value) != n:
            raise ValueError(f"`{name}` has {len(value)} entries but there are {n} rows")
    return n, int(n_clusters)


def write_store(
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
) -> Path:
    """Write a store from in-memory arrays; returns its directory (``ClusterLabeledDataset.build`` opens it).

    ``combined_labels`` defaults to ``alpha * source + (1 - alpha) * steering``.
    The store is written beside ``dataset_dir`` and renamed into place,
    in chunks of 65,536 rows with a progress bar from 200,000 rows on.
    For data larger than memory use :class:`ClusterStoreWriter`.
    Rows whose labels do not sum to 1 are legal (multi-label or
    unnormalised scores) but draw one warning.
    """
    base = base_embeddings
    meta = {
        "texts": texts,
        "sample_types": sample_types,
        "chroma_ids": chroma_ids,
        "suggestions": suggestions,
        "steering_modes": steering_modes,
    }
    n, n_clusters = _check_build_inputs(base, source_labels, meta)
    off_simplex = 0
    with StoreWriter(
        dataset_dir,
        embedding_dim=np.shape(base)[1],
        n_clusters=n_clusters,
        alpha=alpha,
        overwrite=overwrite,
        total=n,
        progress=progress,
    ) as writer:
        for lo in range(0, n, BUILD_CHUNK):
            hi = min(lo + BUILD_CHUNK, n)
            chunk = {k: (None if v is None else list(v[lo:hi])) for k, v in meta.items()}
            src = np.asarray(source_labels[lo:hi])
            writer.append(  # checks every argument first (names it, e.g. string labels)
                base[lo:hi],
                steering_embeddings[lo:hi],
                src,
                steering_labels[lo:hi],
                None if combined_labels is None else combined_labels[lo:hi],
                **chunk,
            )
            off_simplex += int((np.abs(np.asarray(src, dtype=np.float64).sum(axis=1) - 1) > 1e-3).sum())
        if off_simplex:
            warn(f"{off_simplex} of {n} rows of `source_labels` do not sum to 1; stored as given", stacklevel=4)
    return Path(dataset_dir)
