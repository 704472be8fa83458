"""``WeightedInterleaveDataset``: weighted mixing of stream sources, sharded over ranks and workers, resumable.

NOTE [ Streams ]
    Every (rank, DataLoader worker) pair -- a *part* -- reads its own share of
    each source (:mod:`mixweave.sampling.stream_sources`) and interleaves the
    sources by itself: position ``t`` of the part reads the source that
    :func:`~mixweave.core.stream.random_choices` (random mode: i.i.d. by
    weight, from ``(seed, epoch, part, t)``) or
    :class:`~mixweave.core.stream.ExactStream` (exact mode: every prefix of the
    part within one sample of the shares) picks. The parts' sources are
    disjoint, so across parts nothing repeats, and each part follows the
    shares, so their union does too (exact mode: within one sample per part).

    ``stopping`` says when an epoch of the stream ends:

    * ``"first_exhausted"`` -- as soon as a source of the part runs out (every
      sample after that would change the shares);
    * ``"all_exhausted"`` -- a source that runs out starts again (its next
      pass); the epoch ends when every source has run out at least once;
    * ``"never"`` -- sources restart forever: an endless stream.

NOTE [ Stream resume ]
    The iterator's :meth:`~_InterleaveIterator.state_dict` is where its part
    is: the epoch, the number of samples yielded, each source's pass and
    position inside its part (file and offset of a :class:`ShardedSource`,
    samples consumed of an :class:`IterableSource`, which skips that many on
    reopening) and, in exact mode, the counts. torchdata's
    ``StatefulDataLoader`` saves it per worker and restores it, so a loader
    restored after any batch yields exactly the batches that followed; with
    a plain loop and no workers, ``dataset.state_dict()`` and
    ``load_state_dict`` do the same.

Example:
    >>> ds = WeightedInterleaveDataset([range(0, 100), range(100, 200)], [0.75, 0.25], mode="exact")
    >>> first = list(ds)[:8]
    >>> [int(x >= 100) for x in first]
    [0, 0, 0, 1, 0, 0, 0, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import numpy as np
from torch.utils.data import IterableDataset, get_worker_info

from .._validation import by_name, check_bool, check_choice, check_int, check_probabilities, check_saved_settings, show
from ..core.names import MODES, STOPPING
from ..core.rng import derive_key
from ..core.stream import ExactStream, random_choices
from ..core.weights import fingerprint
from .distributed import resolve_distributed
from .stream_sources import UNSPLITTABLE, Cursor, IterableSource, Part, ShardedSource

__all__ = ["STOPPING", "WeightedInterleaveDataset"]

_BLOCK: Final = 1024  # source choices computed at a time


class WeightedInterleaveDataset(IterableDataset[Any]):
    """Interleave stream sources with given shares; sharded per (rank, worker), deterministic, resumable.

    Args:
        sources: a list (or ``{name: source}``) of :class:`ShardedSource`,
            torch or Hugging Face ``IterableDataset``, iterables, objects with
            ``shard(num_shards, index)``, or callables opening a fresh iterator.
        weights: the share of each source (summing to 1; default equal), or a
            callable ``epoch -> shares`` (a :class:`WeightSchedule`).
        mode: ``"random"`` (each position picks a source by weight) or
            ``"exact"`` (every prefix of a part within one sample of the shares).
        stopping: ``"first_exhausted"`` (default), ``"all_exhausted"`` or ``"never"`` (NOTE [ Streams ]).
        seed: the choices of an epoch depend only on ``(seed, epoch, part)``.
        unsplittable: for sources that cannot be split across parts:
            ``"warn"`` (default), ``"error"`` or ``"stride"`` (:mod:`.stream_sources`).
        with_source: yield ``(source index, sample)`` instead of the sample.
        num_replicas, rank: the world (default: the process group, or 1 and 0).

    Raises:
        ValueError: for no sources, shares that do not sum to 1 or do not match
            the sources, an unknown ``mode``/``stopping``/``unsplittable``.
    """

    def __init__(
        self,
        sources: Sequence[Any] | Mapping[str, Any],
        weights: Any = None,
        *,
        mode: str = "random",
        stopping: str = "first_exhausted",
        seed: int = 0,
        unsplittable: str = "warn",
        with_source: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        if isinstance(sources, Mapping):
            self.names = [str(n) for n in sources]
            items = list(sources.values())
        else:
            items = list(sources)
            self.names = [f"source{i}" for i in range(len(items))]
        if not items:
            raise ValueError("`sources` must hold at least one source, got none")
        check_choice(unsplittable, "unsplittable", UNSPLITTABLE)
        self.sources = [
            s if isinstance(s, (ShardedSource, IterableSource)) else IterableSource(s, unsplittable=unsplittable)
            for s in items
        ]
        self.mode = check_choice(mode, "mode", MODES)
        self.stopping = check_choice(stopping, "stopping", STOPPING)
        self.seed = check_int(seed, "seed")
        self.with_source = check_bool(with_source, "with_source")
        self.num_replicas, self.rank = resolve_distributed(num_replicas, rank)
        self._schedule: Callable[[int], Any] | None = (
            weights if callable(weights) and not isinstance(weights, Mapping) else None
        )
        k = len(self.sources)
        self._fixed = (
            None
            if self._schedule
            else self._check_weights(np.full(k, 1.0 / k) if weights is None else weights, "weights")
        )
        self.epoch = 0
        self._pending: dict[str, Any] | None = None  # an iterator state to resume from (load_state_dict)
        self._last: _InterleaveIterator | None = None

    def _check_weights(self, values: Any, name: str) -> np.ndarray:
        if isinstance(values, Mapping):  # {name: share}
            values = by_name(values, self.names, name)
        w = check_probabilities(values, name)
        if w.shape != (len(self.sources),):
            raise ValueError(f"`{name}` must have one share per source ({len(self.sources)}), got {w.shape[0]}")
        return w / w.sum()  # exactly 1: the tolerance of the check must not feed a share-0 source

    def weights_at(self, epoch: int) -> np.ndarray:
        """The shares of ``epoch`` (float64, summing to 1)."""
        if self._fixed is not None:
            return self._fixed
        assert self._schedule is not None
        return self._check_weights(self._schedule(check_int(epoch, "epoch", minimum=0)), f"weights({epoch})")

    def choices(self, epoch: int, count: int, part: Part | None = None) -> np.ndarray:
        """The sources the first ``count`` positions of ``part`` (default: a single process) read in ``epoch``.

        Computed without reading any source (as if none ran out): what
        :func:`~mixweave.pipeline.inspect.report` shows before training.
        """
        part = Part(0, 1, 0, 1) if part is None else part
        iterator = _InterleaveIterator(self, part, check_int(epoch, "epoch", minimum=0))
        if iterator._exact is not None:
            return iterator._exact.take(check_int(count, "count", minimum=0))
        return random_choices(iterator._cumulative, iterator._key, 0, check_int(count, "count", minimum=0))

    def set_epoch(self, epoch: int) -> None:
        """Use the choices (and scheduled shares) of ``epoch`` from the next iteration on.

        A loaded state of another epoch is dropped: that epoch is over (or abandoned).
        """
        self.epoch = check_int(epoch, "epoch", minimum=0)
        if self._pending is not None and self._pending.get("epoch") != self.epoch:
            self._pending = None

    def _part(self) -> Part:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return Part(self.rank, self.num_replicas, worker, workers)

    def __iter__(self) -> Iterator[Any]:
        iterator = _InterleaveIterator(self, self._part(), self.epoch)
        if self._pending is not None:
            iterator.load_state_dict(self._pending)
            self._pending = None
        self._last = iterator
        return iterator

    def settings(self) -> dict[str, Any]:
        """The settings a saved state must match (the sources by name and kind among them)."""
        kinds = [f"{n}:{type(getattr(s, 'source', s)).__name__}" for n, s in zip(self.names, self.sources, strict=True)]
        return {"seed": self.seed, "mode": self.mode, "stopping": self.stopping, "sources": kinds}

    def state_dict(self) -> dict[str, Any]:
        """The epoch and the position of the latest iterator in this process (NOTE [ Stream resume ]).

        Right after :meth:`load_state_dict`, before iterating, the loaded position. ``iterator`` is None
        when this process has not iterated (with DataLoader workers, the workers iterate: use
        torchdata's ``StatefulDataLoader``, which asks them).
        """
        if self._pending is not None:
            return {"epoch": self.epoch, "iterator": dict(self._pending)}
        return {"epoch": self.epoch, "iterator": None if self._last is None else self._last.state_dict()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Resume: the next iteration continues where the saved iterator stopped."""
        if not isinstance(state_dict, Mapping) or "epoch" not in state_dict or "iterator" not in state_dict:
            raise ValueError(
                "`state_dict` must hold 'epoch' and 'iterator' (a WeightedInterleaveDataset state), "
                f"got {show(state_dict)}"
            )
        epoch = check_int(state_dict["epoch"], "state_dict['epoch']", minimum=0)
        saved = state_dict["iterator"]
        if saved is not None and not isinstance(saved, Mapping):
            raise ValueError(f"`state_dict['iterator']` must be an iterator state or None, got {show(saved)}")
        self.epoch, self._pending = epoch, None if saved is None else dict(saved)

    def __repr__(self) -> str:
        return f"WeightedInterleaveDataset({self.names}, mode={self.mode!r}, stopping={self.stopping!r})"


class _InterleaveIterator:
    """One part's interleave of one epoch (NOTE [ Streams ]); stateful for torchdata (NOTE [ Stream resume ])."""

    def __init__(self, dataset: WeightedInterleaveDataset, part: Part, epoch: int) -> None:
        self.ds, self.part, self.epoch = dataset, part, epoch
        self.weights = dataset.weights_at(epoch)
        k = self.weights.shape[0]
        self._cumulative = np.cumsum(self.weights)
        self._cumulative[int(np.flatnonzero(self.weights > 0)[-1]) :] = 1.0  # no draw lands on a trailing share 0
        self._key = derive_key(dataset.seed, epoch, part.index, part.count)
        self.step = 0  # samples yielded
        self.passes = [0] * k
        self.exhausted = [False] * k  # ran out at least once this epoch
        self.done = False
        self._cursors: list[Cursor | None] = [None] * k
        self._saved: list[dict[str, Any] | None] = [None] * k  # cursor states to reopen at
        self._exact = ExactStream(self.weights) if dataset.mode == "exact" else None
        self._block: list[int] = []
        self._used = 0  # choices of _block consumed

    def __iter__(self) -> _InterleaveIterator:
        return self

    def _choose(self) -> int:
        if self._used == len(self._block):
            if self._exact is not None:
                self._block = self._exact.take(_BLOCK).tolist()
            else:
                self._block = random_choices(self._cumulative, self._key, self.step, _BLOCK).tolist()
            self._used = 0
        self._used += 1
        return self._block[self._used - 1]

    def _cursor(self, i: int) -> Cursor:
        cursor = self._cursors[i]
        if cursor is None:
            cursor = self.ds.sources[i].open(self.part, self._saved[i])
            self._cursors[i], self._saved[i] = cursor, None
        return cursor

    def __next__(self) -> Any:
        if self.done:
            raise StopIteration
        i = self._choose()
        try:
            sample = next(self._cursor(i))
        except StopIteration:
            self.exhausted[i] = True
            everyone = all(e or w == 0 for e, w in zip(self.exhausted, self.weights, strict=True))  # 0: never read
            if self.ds.stopping == "first_exhausted" or (self.ds.stopping == "all_exhausted" and everyone):
                self.done = True
                self._used -= 1  # the choice was not used: a saved state sees it again (and stops)
                raise StopIteration from None
            self.passes[i] += 1
            self._cursors[i] = None
            try:
                sample = next(self._cursor(i))
            except StopIteration:
                raise ValueError(
                    f"{self.ds.names[i]} has no samples for part {self.part.index} of {self.part.count} "
                    f"(rank {self.part.rank}, DataLoader worker {self.part.worker}): it cannot restart"
                ) from None
        self.step += 1
        return (i, sample) if self.ds.with_source else sample

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Where this part is (NOTE [ Stream resume ]); plain JSON-able values."""
        counts = None
        if self._exact is not None:
            pending = np.bincount(np.asarray(self._block[self._used :], dtype=np.int64), minlength=len(self.passes))
            counts = (np.asarray(self._exact.counts) - pending).tolist()
        cursors = [c.state() if c is not None else s for c, s in zip(self._cursors, self._saved, strict=True)]
        return {
            **self.ds.settings(),
            "weights_crc32": fingerprint(self.weights),
            "epoch": self.epoch,
            "part": self.part.index,
            "parts": self.part.count,
            "step": self.step,
            "passes": list(self.passes),
            "exhausted": list(self.exhausted),
            "done": self.done,
            "counts": counts,
            "cursors": cursors,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from a :meth:`state_dict` of the same part (same sources, settings and world)."""
        expected = {
            **self.ds.settings(),
            "epoch": self.epoch,
            "part": self.part.index,
            "parts": self.part.count,
            "weights_crc32": fingerprint(self.weights),
        }
        keys = ("step", "passes", "exhausted", "done", "counts", "cursors")
        check_saved_settings(state, expected, "WeightedInterleaveDataset iterator", extra=keys)
        k = len(self.passes)
        step = check_int(state["step"], "state_dict['step']", minimum=0)
        lists = {key: state[key] for key in ("passes", "exhausted", "cursors")}
        for key, value in lists.items():
            if not isinstance(value, list) or len(value) != k:
                raise ValueError(f"`state_dict['{key}']` must list one entry per source ({k}), got {show(value)}")
        passes = [check_int(p, "state_dict['passes']", minimum=0) for p in lists["passes"]]
        if not all(isinstance(c, Mapping) or c is None for c in lists["cursors"]):
            raise ValueError(
                f"`state_dict['cursors']` must hold positions (mappings) or None, got {show(lists['cursors'])}"
            )
        exact = None if self._exact is None else ExactStream(self.weights, state["counts"])
        self.step, self.passes, self.done = step, passes, bool(state["done"])
        self.exhausted = [bool(e) for e in lists["exhausted"]]
        self._cursors = [None] * k
        self._saved = [None if c is None else dict(c) for c in lists["cursors"]]
        self._block, self._used = [], 0
        if exact is not None:
            self._exact = exact
