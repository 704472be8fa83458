"""Stream sources for :class:`~mixweave.sampling.streaming.WeightedInterleaveDataset`: opened per part, resumable.

A *part* is one (rank, DataLoader worker) pair: ``index = rank * workers +
worker`` of ``count = world_size * workers``. A source opens the part's share
of its samples as a :class:`Cursor` (an iterator that can say where it is), and
reopens it at a saved position.

* :class:`ShardedSource` -- a list (or glob) of shard files and a reader per
  file: with at least as many files as parts, part ``i`` reads files ``i,
  i + count, ...``; with fewer, every part reads every file and keeps every
  ``count``-th sample. Always split, never duplicated.
* :class:`IterableSource` -- anything else that iterates: a torch
  ``IterableDataset``, a Hugging Face ``IterableDataset``, an object with a
  ``shard(num_shards, index)`` hook, a callable that opens a fresh iterator,
  or a map-style dataset (read in row order; part ``i`` takes rows ``i, i +
  count, ...``).
  Hugging Face datasets are split across ranks with ``split_dataset_by_node``
  and split themselves across DataLoader workers; a ``shard`` hook splits
  across parts; anything else cannot be split and follows ``unsplittable``:
  ``"warn"`` (every part reads all of it: duplicates across parts, with a
  warning), ``"error"``, or ``"stride"`` (every part reads all of it and keeps
  every ``count``-th sample: no duplicates, ``count`` times the reading).

Example:
    >>> import json, os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for k in range(3):
    ...     with open(os.path.join(folder, f"part-{k}.jsonl"), "w") as fh:
    ...         _ = fh.write("".join(json.dumps({"k": k, "i": i}) + "\\n" for i in range(2)))
    >>> source = ShardedSource(os.path.join(folder, "*.jsonl"))
    >>> [s["k"] for s in source.open(Part(0, 1, 1, 2))]      # rank 0, worker 1 of 2: files 1 (and 3, ...)
    [1, 1]
"""

from __future__ import annotations

import glob
import itertools
import json
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from .._validation import check_choice, show, warn

__all__ = ["UNSPLITTABLE", "Cursor", "IterableSource", "Part", "ShardedSource", "read_jsonl", "read_npy", "read_tar"]

#: What an :class:`IterableSource` that cannot be split does when there is more than one part.
UNSPLITTABLE: Final[tuple[str, ...]] = ("warn", "error", "stride")


@dataclass(frozen=True)
class Part:
    """One (rank, DataLoader worker) pair of ``world_size * workers``."""

    rank: int
    world_size: int
    worker: int
    workers: int

    @property
    def index(self) -> int:
        return self.rank * self.workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.workers


class Cursor:
    """An opened part of a source: iterate it; :meth:`state` says where it is (JSON-able)."""

    def __init__(self, iterator: Iterator[Any], state: Callable[[], dict[str, Any]]) -> None:
        self._iterator = iterator
        self._state = state

    def __iter__(self) -> Cursor:
        return self

    def __next__(self) -> Any:
        return next(self._iterator)

    def state(self) -> dict[str, Any]:
        return self._state()


# ----------------------------------------------------------------- file readers


def read_tar(path: str) -> Iterator[dict[str, Any]]:
    """Samples of a tar shard, WebDataset-style: consecutive members sharing a base name form one sample.

    Each sample is ``{"__key__": base name, extension: bytes, ...}`` (``"cls"``, ``"jpg"``, ...).
    """
    with tarfile.open(path, mode="r|*") as tar:  # streaming: members are read in order, once
        sample: dict[str, Any] = {}
        for member in tar:
            if not member.isfile():
                continue
            base, _, ext = os.path.basename(member.name).partition(".")
            key = os.path.join(os.path.dirname(member.name), base)
            if sample and sample["__key__"] != key:
                yield sample
                sample = {}
            fh = tar.extractfile(member)
            sample.setdefault("__key__", key)
            sample[ext] = fh.read() if fh is not None else b""
        if sample:
            yield sample
        end = tar.offset
    _check_tar_end(path, end)


def _check_tar_end(path: str, end: int) -> None:
    """A tar read to its end-of-archive marker has only zero bytes after it; anything else was cut off."""
    with open(path, "rb") as fh:
        fh.seek(end)
        rest = fh.read()
    if rest.strip(b"\0"):
        raise ValueError(f"{path}: a truncated or corrupt tar shard (unreadable after byte {end})")


def read_jsonl(path: str) -> Iterator[Any]:
    """One JSON value per non-empty line."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def read_npy(path: str) -> Iterator[np.ndarray]:
    """The rows of a ``.npy`` array (memory-mapped; never unpickled)."""
    yield from np.load(path, mmap_mode="r", allow_pickle=False)


_READERS: Final[dict[str, Callable[[str], Iterable[Any]]]] = {
    ".tar": read_tar,
    ".jsonl": read_jsonl,
    ".npy": read_npy,
}


# ----------------------------------------------------------------- sources


class ShardedSource:
    """Samples from shard files, split across parts by file (or by sample when files are fewer than parts).

    Args:
        files: a glob pattern (``"data/train-*.tar"``) or a list of paths; read in sorted order.
        read: ``path -> iterable of samples``; default by extension: ``.tar``
            (:func:`read_tar`), ``.jsonl`` (:func:`read_jsonl`), ``.npy`` (:func:`read_npy`).

    Raises:
        ValueError: when the pattern matches no file, or no reader is known for a file's extension.
    """

    splittable = True

    def __init__(self, files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], read: Any = None) -> None:
        if isinstance(files, (str, os.PathLike)):
            pattern = os.fspath(files)
            matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
            self.files = [f for f in matched if os.path.isfile(f)]  # a glob may match folders too
            if not self.files:
                raise ValueError(f"`files` {pattern!r} matches no file")
        elif isinstance(files, Sequence) and all(isinstance(f, (str, os.PathLike)) for f in files):
            self.files = [os.fspath(f) for f in files]
            if not self.files:
                raise ValueError("`files` must list at least one shard file, got an empty list")
            missing = [f for f in self.files if not os.path.isfile(f)]
            if missing:
                raise ValueError(f"`files` lists paths that are not files: {show(missing)}")
            repeated = sorted({f for f in self.files if self.files.count(f) > 1})
            if repeated:
                raise ValueError(f"`files` lists {show(repeated)} more than once (their samples would repeat)")
        else:
            raise TypeError(f"`files` must be a glob pattern or a list of paths, got {type(files).__name__}")
        if read is None:
            unknown = sorted({os.path.splitext(f)[1] for f in self.files} - set(_READERS))
            if unknown:
                raise ValueError(
                    f"no reader for shard files ending in {unknown}; pass `read=path -> samples` "
                    f"(built in: {sorted(_READERS)})"
                )
        elif not callable(read):
            raise TypeError(f"`read` must be a callable path -> samples, got {type(read).__name__}")
        self.read = read

    def _reader(self, path: str) -> Iterable[Any]:
        if self.read is not None:
            return self.read(path)
        return _READERS[os.path.splitext(path)[1]](path)

    def open(self, part: Part, state: dict[str, Any] | None = None) -> Cursor:
        """Part ``part``'s samples, from ``state`` (``{"file", "offset"}``) or the start."""
        by_file = len(self.files) >= part.count
        files = self.files[part.index :: part.count] if by_file else self.files
        stride, phase = (1, 0) if by_file else (part.count, part.index)
        where = {"file": 0, "offset": 0, "seen": 0}
        if state is not None:
            where.update(_cursor(state, where, {"file": len(files)}))

        def samples() -> Iterator[Any]:
            for k in range(where["file"], len(files)):
                skip = where["offset"] if k == where["file"] else 0
                where["file"], where["offset"] = k, skip
                for sample in itertools.islice(_named(files[k], self._reader), skip, None):
                    where["offset"] += 1
                    where["seen"] += 1
                    if (where["seen"] - 1) % stride == phase:
                        yield sample
            where["file"], where["offset"] = len(files), 0

        return Cursor(samples(), lambda: dict(where))

    def __iter__(self) -> Iterator[Any]:
        """Every sample of every file, in order (a single process's part)."""
        return self.open(Part(0, 1, 0, 1))

    def __repr__(self) -> str:
        return f"ShardedSource({len(self.files)} file(s): {show(self.files)})"


def _named(path: str, reader: Callable[[str], Iterable[Any]]) -> Iterator[Any]:
    """The reader's samples of ``path``; an error while reading names the file."""
    try:
        yield from reader(path)
    except (OSError, ValueError, tarfile.TarError, KeyError, TypeError) as exc:
        if str(exc).startswith(path):
            raise
        raise ValueError(f"{path}: {type(exc).__name__}: {exc}") from exc


def _cursor(state: Any, keys: dict[str, int], maxima: dict[str, int]) -> dict[str, int]:
    """A saved cursor's ints, checked: the keys of ``keys``, each >= 0 (and <= ``maxima``)."""
    if not isinstance(state, dict) or set(state) != set(keys):
        raise ValueError(f"a saved source position must hold {sorted(keys)}, got {show(state)}")
    out = {}
    for key in keys:
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > maxima.get(key, value):
            raise ValueError(f"a saved source position has {key}={show(value)}: not a position of this source")
        out[key] = value
    return out


def _is_map_style(source: Any) -> bool:
    """A map-style dataset (``__len__`` and ``__getitem__``, no ``__iter__`` of its own), a list, tuple, range or
    array: split by row index."""
    if isinstance(source, (list, tuple, range, np.ndarray)):
        return True
    return hasattr(source, "__len__") and hasattr(source, "__getitem__") and not isinstance(source, Iterable)


def _is_huggingface(source: Any) -> bool:
    return type(source).__module__.startswith("datasets.") and hasattr(source, "n_shards")


class IterableSource:
    """An iterable, a torch/Hugging Face ``IterableDataset``, a ``shard(n, i)`` hook or an iterator factory.

    Args:
        source: what to read (module docstring for how each kind is split).
        unsplittable: ``"warn"`` (default), ``"error"`` or ``"stride"``, for a source that cannot be split.
    """

    def __init__(self, source: Any, *, unsplittable: str = "warn") -> None:
        self.unsplittable = check_choice(unsplittable, "unsplittable", UNSPLITTABLE)
        if isinstance(source, (str, bytes, os.PathLike, Mapping)):
            raise TypeError(
                f"a stream source cannot be a {type(source).__name__} ({show(source)}): give shard files as "
                "ShardedSource(files), and sources by name as {name: source} to WeightedInterleaveDataset"
            )
        if isinstance(source, Iterator):
            raise TypeError(
                f"a stream source cannot be a one-shot iterator ({type(source).__name__}): it can neither restart "
                "nor resume; pass a callable that opens a fresh one (lambda: make_generator()) or an iterable"
            )
        if _is_map_style(source) and len(source) == 0:
            raise ValueError(f"a stream source is empty: {type(source).__name__} of length 0")
        if not (callable(source) or isinstance(source, Iterable) or _is_map_style(source)):
            raise TypeError(
                "a stream source must be iterable (an IterableDataset, a Hugging Face IterableDataset, an object "
                f"with shard(num_shards, index)) or a callable returning an iterator, got {type(source).__name__}"
            )
        self.source = source
        self.splittable = _is_huggingface(source) or _is_map_style(source) or callable(getattr(source, "shard", None))
        self._warned = False

    def _open(self, part: Part) -> Iterator[Any]:
        src = self.source
        if _is_huggingface(src):  # ranks here; the dataset splits itself across DataLoader workers
            from datasets.distributed import split_dataset_by_node

            ranked = split_dataset_by_node(src, rank=part.rank, world_size=part.world_size)
            if ranked.n_shards < part.workers and not self._warned:
                self._warned = True
                warn(
                    f"the Hugging Face dataset has {ranked.n_shards} shard(s) per rank for {part.workers} DataLoader "
                    "workers: the workers beyond them read nothing of it (first_exhausted then ends their epoch at "
                    "once); give it more shards (more data files, or to_iterable_dataset(num_shards=...))",
                    stacklevel=2,
                )
            return iter(ranked)
        if callable(getattr(src, "shard", None)):
            return iter(src.shard(part.count, part.index))
        if _is_map_style(src):  # rows part.index, part.index + count, ... in order
            return (src[i] for i in range(part.index, len(src), part.count))
        opened = src() if callable(src) and not isinstance(src, Iterable) else src
        if not isinstance(opened, Iterable):
            raise TypeError(f"the source's callable returned {type(opened).__name__}, not an iterator or iterable")
        it = iter(opened)
        if part.count == 1:
            return it
        if self.unsplittable == "error":
            raise ValueError(
                f"{type(src).__name__} source cannot be split across {part.count} parts (ranks x DataLoader workers): "
                "give it a shard(num_shards, index) method, use ShardedSource, or pass unsplittable='stride' or 'warn'"
            )
        if self.unsplittable == "stride":
            return itertools.islice(it, part.index, None, part.count)
        if not self._warned:
            self._warned = True
            warn(
                f"{type(src).__name__} source cannot be split: each of the {part.count} parts (ranks x DataLoader "
                "workers) reads all of it, so its samples repeat across parts; give it shard(num_shards, index), use "
                "ShardedSource, or pass unsplittable='stride' (no repeats) or 'error'",
                stacklevel=2,
            )
        return it

    def open(self, part: Part, state: dict[str, Any] | None = None) -> Cursor:
        """Part ``part``'s samples, skipping the ``state["consumed"]`` already read."""
        where = {"consumed": 0}
        if state is not None:
            where.update(_cursor(state, where, {}))
        it = itertools.islice(self._open(part), where["consumed"], None)

        def samples() -> Iterator[Any]:
            for sample in it:
                where["consumed"] += 1
                yield sample

        return Cursor(samples(), lambda: dict(where))

    def __repr__(self) -> str:
        return f"IterableSource({type(self.source).__name__})"
