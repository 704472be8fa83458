"""``ClusterLabeledDataset``: reading a cluster-labelled embedding store (SQLite metadata + numpy memmaps).

The file format is in :mod:`.format`, writing in :mod:`.writer`, the label
array and its seqlock in :mod:`.labels`, the per-process cache in
:mod:`.cache`, batches in :mod:`.batch`. Connections and memmaps are opened
lazily in each process (DataLoader workers under fork or spawn) and in each
thread, and a bounded, thread-safe LRU cache holds recently read samples.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..._progress import progress_bar
from ..._validation import check_choice, check_int
from .batch import SampleBatch
from .cache import SlotCache
from .format import (
    COLUMNS,
    DB_FILE,
    EMBEDDING_FILES,
    LABEL_ARRAY_FILE,
    LABEL_COLUMNS,
    LABEL_SEQ_FILE,
    LABEL_TYPES,
    MMAP_MODES,
    connect,
    identity,
    is_read_only,
    label_rows,
    missing_store_message,
    open_embeddings,
    read_layout,
    read_sample,
    select_rows,
)
from .handles import ProcessHandles
from .labels import (
    LabelArrayWriter,
    check_label_array,
    create_label_array,
    ordered_cpu,
    read_array_labels,
    replace_labels,
    rewrite_label_array,
)
from .writer import write_store

__all__ = ["ClusterLabeledDataset"]


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
        label_encoding: how SQLite holds the labels, ``"raw"`` or ``"pickle"``.
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
        if label_type not in LABEL_TYPES:  # the original's words (users' `match=` tests), then the usual detail
            raise ValueError(f"label_type must be 'source', 'steering', or 'combined', got {label_type!r}")
        self.label_type = str(label_type)
        if mmap_mode == "w+":
            raise ValueError("`mmap_mode` 'w+' would truncate the embedding files; use 'r', 'c' or 'r+'")
        self.mmap_mode = check_choice(mmap_mode, "mmap_mode", MMAP_MODES)
        self.cache_size = check_int(cache_size, "cache_size", minimum=0)
        self.return_metadata = bool(return_metadata)
        self.allow_pickle = bool(allow_pickle)
        self.dataset_dir = Path(dataset_dir)
        self.db_path = self.dataset_dir / DB_FILE
        if not self.db_path.is_file():
            raise FileNotFoundError(
                f"Dataset database not found: {self.db_path}: {missing_store_message(self.dataset_dir)}"
            )
        self.read_only = is_read_only(self.db_path)
        self._identity = identity(self.db_path)
        con = self._connect()
        try:
            layout = read_layout(con, self.db_path, allow_pickle=self.allow_pickle)
        finally:
            con.close()
        self.info, self.n_clusters, self.embedding_dim = layout.info, layout.n_clusters, layout.embedding_dim
        self._layout, self._size, self._codec = layout, layout.size, layout.codec
        for key in EMBEDDING_FILES:  # validate both files now; reopened lazily per process
            self._open_embeddings(key)
        self._label_pos = LABEL_TYPES.index(self.label_type)
        self._ordered_cpu = ordered_cpu()
        self.has_label_array = check_label_array(self.dataset_dir, self.info, self._size, self.n_clusters)
        self._label_col = f"{self.label_type}_label"
        self._init_process_state()

    # -- opening and closing ----------------------------------------------------
    def close(self) -> None:
        """Close this process's SQLite connections and unmap the embeddings; reads afterwards raise ``ValueError``.

        Idempotent. DataLoader workers hold their own handles and close them when
        they exit. Also called at the end of a ``with`` block.
        """
        self._handles.close()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (in this process)."""
        return self._handles.closed

    def __enter__(self) -> ClusterLabeledDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connect(self) -> sqlite3.Connection:
        return connect(self.db_path, read_only=self.read_only)

    def _check_writable(self) -> None:
        """Refuse a write that would go astray: to a read-only store, or to one rebuilt since it was opened."""
        if self.read_only:
            raise PermissionError(f"{self.dataset_dir} is read-only for this process: labels cannot be changed")
        if not self.db_path.is_file() or identity(self.db_path) != self._identity:
            raise RuntimeError(
                f"the store at {self.dataset_dir} was replaced (rebuilt with overwrite=True?) after this dataset "
                "opened it; a write now would split between the old database and the new files. "
                "Open it again: ClusterLabeledDataset(dataset_dir)"
            )

    def _open_embeddings(self, key: str) -> np.ndarray:
        layout = self._layout
        expected = (layout.embedding_count, self.embedding_dim)
        return open_embeddings(layout.embedding_paths[key], expected, self.mmap_mode, key)

    @property
    def label_encoding(self) -> str:
        """How SQLite holds the labels: ``"raw"`` float32 bytes, ``"json"`` text or ``"pickle"`` (``allow_pickle``)."""
        return self._codec.encoding

    @property
    def reads_label_array(self) -> bool:
        """Labels come from the label array (NOTE [ Label array ]) rather than one SQLite query per read."""
        return self.has_label_array and not self.return_metadata and self._ordered_cpu

    def _init_process_state(self) -> None:
        self._handles = ProcessHandles(self._connect, self._open_maps, self.cache_size, self._size)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_handles", None)  # each process opens its own (see mixweave.data.store.handles)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_process_state()

    @property
    def _cache(self) -> SlotCache:
        return self._handles.cache

    def _con(self) -> sqlite3.Connection:
        return self._handles.connection()

    def _embeddings(self) -> dict[str, np.ndarray]:
        return self._handles.maps()

    def _open_maps(self) -> dict[str, np.ndarray]:
        # plain ndarray views: numpy's memmap subclass adds microseconds to every index
        maps = {k: np.asarray(self._open_embeddings(k)) for k in EMBEDDING_FILES}
        if self.has_label_array:
            labels = np.asarray(np.load(self.dataset_dir / LABEL_ARRAY_FILE, mmap_mode="r"))
            maps["label_view"] = labels[:, self._label_pos]  # (N, C), strided
            seq = np.memmap(self.dataset_dir / LABEL_SEQ_FILE, dtype=np.int64, mode="r", shape=(1,))
            maps["seq"] = np.asarray(seq)
        return maps

    def _array_labels(self, rows: Any) -> np.ndarray | None:
        maps = self._embeddings()
        return read_array_labels(maps["seq"], maps["label_view"], rows)

    # -- indexing ---------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    def _read(
        self, idx: np.ndarray, order: np.ndarray | None = None
    ) -> tuple[list[np.ndarray], list[dict[str, Any]] | None]:
        """Rows at unique positions ``idx``: one SQLite query (or the label array) and one fancy index per memmap.

        Returns the arrays (base, steering, then the label, or all three
        labels with metadata) and, with metadata, one dict per row. With
        ``order`` (positions into ``idx``) every output comes in that order:
        the memmaps are indexed once, straight into it.
        """
        rows = idx if order is None else idx[order]
        maps = self._embeddings()
        emb = self._layout.embedding_index(rows)
        arrays = [maps["base"][emb], maps["steering"][emb]]
        from_array = self._array_labels(rows) if self.reads_label_array else None
        if from_array is not None:
            return [*arrays, from_array], None
        ids = self._layout.sample_ids(idx)
        columns = (*COLUMNS[2:], *LABEL_COLUMNS) if self.return_metadata else (self._label_col,)
        fetched = select_rows(self._con(), columns, ids, self.db_path)
        labels_from = len(columns) - (len(LABEL_COLUMNS) if self.return_metadata else 1)
        decode = self._codec.decode_many
        labels = [
            decode([r[1 + labels_from + k] for r in fetched], c, ids) for k, c in enumerate(columns[labels_from:])
        ]
        meta = None
        if self.return_metadata:
            meta = [dict(zip(COLUMNS[:1] + COLUMNS[2:], r[:6], strict=True)) for r in fetched]
        if order is not None:
            labels = [a[order] for a in labels]
            meta = None if meta is None else [meta[j] for j in order.tolist()]
        return arrays + labels, meta

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        if self.return_metadata or not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            return self.__getitems__([index])[0]
        i = int(index)
        if not -self._size <= i < self._size:
            self._layout.positions([i])  # raises the one message for every read path
        i %= self._size
        con = self._con()
        generation = 0
        cached_path = bool(self.cache_size) and self._cache.use(i)
        if cached_path:  # the one-sample path of __getitems__, without its array bookkeeping
            if i in self._cache:  # about to serve from the cache: first make sure no one committed since
                self._handles.refresh()
            cached, generation = self._cache.get_one(i)
            if cached is not None:
                return tuple(torch.from_numpy(a) for a in cached)
        label = self._array_labels(i) if self.reads_label_array else None
        if label is None:
            sample_id = int(self._layout.sample_ids(np.array([i]))[0])
            row = select_rows(con, (self._label_col,), np.array([sample_id]), self.db_path)[0]
            label = self._codec.decode(row[1], self._label_col, sample_id)
        emb = int(self._layout.embedding_index(i))
        maps = self._embeddings()
        arrays = [maps["base"][emb].copy(), maps["steering"][emb].copy(), label]
        if cached_path:
            self._cache.insert_one(i, arrays, generation)
        return tuple(torch.from_numpy(a) for a in arrays)

    def __getitems__(self, indices: Sequence[int]) -> SampleBatch:
        """A batch of samples: cached rows from the cache, the rest in one vectorised read.

        ``DataLoader`` calls this with automatic batching. The result is a
        :class:`SampleBatch`, a sequence of per-sample tuples in the order of
        ``indices``; its tensors are new, so writing into them never changes
        the store or the cache.
        """
        idx = self._layout.positions(indices)
        if not self.cache_size or not self._cache.use(idx):  # no cache, or one that stepped aside
            unique, order = np.unique(idx, return_inverse=True)
            return self._batch(*self._read(unique, order))  # embeddings read straight into batch order
        # Without repeated indices work in the batch's own order: nothing to reorder at the end.
        ordered = np.sort(idx)
        inverse: np.ndarray | None = None
        keys = idx
        if not (ordered[1:] != ordered[:-1]).all():
            keys, inverse = np.unique(idx, return_inverse=True)
        arrays, meta = self._read_cached(keys)
        if inverse is not None:
            arrays = [a[inverse] for a in arrays]
            meta = None if meta is None else [meta[j] for j in inverse.tolist()]
        return self._batch(arrays, meta)

    def _read_cached(self, keys: np.ndarray) -> tuple[list[np.ndarray], list[dict[str, Any]] | None]:
        """Rows of unique ``keys`` through the cache: the hits from it, the rest from storage, then kept."""
        self._con()  # rows are kept only after this thread's connection has noted the data version
        cached = self._cache.contains(keys)
        if cached.any():
            self._handles.refresh()  # some will be served from the cache: first make sure no one committed since
        generation = self._cache.generation
        if 2 * int(cached.sum()) < max(cached.size, 1):  # mostly misses (an empty batch counts as such)
            # Read every row from storage (one fancy index per array, cheaper than scattering
            # the misses around the few hits, whose cached copies hold the same values: updates
            # drop their rows from the cache), then keep the new rows.
            arrays, meta = self._read(keys)
            self._cache.count_and_insert(keys, arrays, meta, generation)
            return arrays, meta
        return self._read_mostly_cached(keys, generation)

    def _read_mostly_cached(self, keys: np.ndarray, generation: int) -> tuple[list[np.ndarray], list[Any] | None]:
        """Mostly hits: take them from the cache and read only the misses from storage."""
        arrays = [np.empty((keys.size, *shape), dtype=np.float32) for shape in self._cache.row_shapes()]
        meta: list[Any] | None = [{}] * keys.size if self.return_metadata else None
        missing = np.flatnonzero(~self._cache.lookup(keys, arrays, meta))
        if missing.size:
            fresh, fresh_meta = self._read(keys[missing])
            for dst, src in zip(arrays, fresh, strict=True):
                dst[missing] = src
            if meta is not None and fresh_meta is not None:
                for j, m in zip(missing.tolist(), fresh_meta, strict=True):
                    meta[j] = m
            self._cache.insert(keys[missing], fresh, fresh_meta, generation)
        return arrays, meta

    def _batch(self, arrays: list[np.ndarray], meta: list[dict[str, Any]] | None) -> SampleBatch:
        tensors = [torch.from_numpy(a) for a in arrays]
        if meta is None:
            return SampleBatch(tuple(tensors))
        labels = dict(zip(LABEL_COLUMNS, tensors[2:], strict=True))
        full = [{**m, **{c: t[j] for c, t in labels.items()}} for j, m in enumerate(meta)]
        return SampleBatch((tensors[0], tensors[1], labels[self._label_col]), full)

    # -- lookups and updates ---------------------------------------------------------
    def get_sample_by_id(self, sample_id: int) -> dict[str, Any] | None:
        """Everything stored for one ``sample_id`` (metadata, labels, embeddings), or ``None`` if absent.

        The dict has the metadata keys of ``return_metadata``, plus
        ``index`` (its position in this dataset), ``base_embedding`` and
        ``steering_embedding``. The cache is bypassed.
        """
        sample_id = check_int(sample_id, "sample_id", minimum=-(2**63), maximum=2**63 - 1)
        out = read_sample(self._con(), self._codec, sample_id)
        if out is None:
            return None
        emb = int(out.pop("embedding_idx"))
        maps = self._embeddings()
        out["base_embedding"] = torch.from_numpy(np.array(maps["base"][emb]))
        out["steering_embedding"] = torch.from_numpy(np.array(maps["steering"][emb]))
        out["index"] = self._layout.index_of(sample_id)
        return out

    def iter_labels(
        self, columns: Sequence[str] = LABEL_COLUMNS, *, chunk: int = 65_536
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, labels)`` chunks of label columns (``"source_label"``, ...) from SQLite, in index order.

        ``labels`` is float32 ``(k, len(columns), n_clusters)`` for indices ``start .. start + k``;
        no embedding is read, so a store larger than memory can be scanned.
        """
        for column in columns:
            check_choice(column, "columns", LABEL_COLUMNS)
        return label_rows(self._con(), self._codec, tuple(columns), check_int(chunk, "chunk", minimum=1))

    def label_matrix(self, label_type: str | None = None) -> np.ndarray:
        """All labels of ``label_type`` (default: this dataset's), float32 ``(len(self), n_clusters)``, row i = index i.

        Read from SQLite in chunks; no embedding is touched. Used to balance
        or inspect a store without loading its samples.
        """
        column = f"{check_choice(label_type or self.label_type, 'label_type', LABEL_TYPES)}_label"
        out = np.empty((len(self), self.n_clusters), dtype=np.float32)
        for start, labels in self.iter_labels((column,)):
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
        what other readers see; the label array is kept equal to SQLite
        (NOTE [ Label array ] in :mod:`mixweave.data.store.labels`).

        Raises:
            ValueError: if no label is given, or one is not ``n_clusters``
                finite, non-negative numbers.
            KeyError: if no sample has ``sample_id``.
        """
        sample_id = check_int(sample_id, "sample_id", minimum=-(2**63), maximum=2**63 - 1)  # SQLite's INTEGER
        given = zip(LABEL_COLUMNS, (source_label, steering_label, combined_label), strict=True)
        new = {column: value for column, value in given if value is not None}
        self._check_writable()
        writer = LabelArrayWriter(self.dataset_dir, self._codec) if self.has_label_array else None
        replace_labels(self._con(), self._layout, writer, sample_id, new, self._check_writable)
        self._cache.invalidate(self._layout.index_of(sample_id))

    def sync_label_array(self, *, progress: bool | None = None) -> None:
        """Rewrite the label array from SQLite, in place; create it for stores that lack it.

        Needed only after labels were changed in SQLite by something other
        than :meth:`update_labels` (see NOTE [ Label array ] in
        :mod:`mixweave.data.store.labels`). Creating the array adds
        ``labels.npy``, ``labels.seq`` and a ``label_array`` key in
        ``dataset_info``; the files are written beside their final names and
        renamed into place. Readers in other processes that opened the store
        before it had an array keep reading labels from SQLite. ``progress``: a
        bar on stderr (``None``: for large stores when stderr is a terminal).
        """
        self._check_writable()
        con = self._con()
        with progress_bar(f"syncing labels of {self.dataset_dir.name}", self._size, progress) as advance:
            if self.has_label_array:
                rewrite_label_array(con, self.dataset_dir, self._codec, advance)
            else:
                create_label_array(con, self.dataset_dir, self._codec, self._size, advance)
        if not self.has_label_array:
            self.info["label_array"] = LABEL_ARRAY_FILE
            self.has_label_array = check_label_array(self.dataset_dir, self.info, self._size, self.n_clusters)
            self._handles.reopen_maps()  # now with the label array
        self._cache.invalidate()

    # -- cache ------------------------------------------------------------------
    def get_cache_stats(self) -> dict[str, Any]:
        """This process's cache: ``hits``, ``misses``, ``hit_rate`` (0.0 before any read), ``size``, ``capacity``,
        and ``bypassed`` (the cache stepped aside: NOTE [ A cache that steps aside ] in :mod:`.cache`)."""
        return self._cache.stats()

    def prefill_cache(self, indices: Iterable[int]) -> None:
        """Read ``indices`` into the cache (the last ``cache_size`` distinct ones stay); not counted as misses."""
        idx = self._layout.positions(list(indices))
        if not self.cache_size or not idx.size:
            return
        self._con()  # rows are kept only after this thread's connection has noted the data version
        unique = np.unique(idx)[-self.cache_size :]
        unique = unique[~self._cache.contains(unique)]
        generation = self._cache.generation
        arrays, meta = self._read(unique)
        self._cache.insert(unique, arrays, meta, generation)

    def clear_cache(self) -> None:
        """Empty this process's cache and measure its hit rate afresh (the hit/miss counters are kept).

        A cache that had stepped aside (NOTE [ A cache that steps aside ] in :mod:`.cache`) is used again.
        """
        self._cache.invalidate()
        self._cache.reset_measurement()

    @classmethod
    def build(cls, dataset_dir: str | os.PathLike[str], *arrays: Any, **options: Any) -> ClusterLabeledDataset:
        """Write a store from in-memory arrays and open it.

        The arguments are those of :func:`~mixweave.data.store.writer.write_store`
        (embeddings ``(N, D)``, labels ``(N, C)``, metadata, ``alpha``,
        ``overwrite``, ``progress``). For data larger than memory use
        :class:`ClusterStoreWriter`.
        """
        return cls(write_store(dataset_dir, *arrays, **options))
