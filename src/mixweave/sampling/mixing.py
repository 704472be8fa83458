"""Mixed datasets: weighted, stratified (round-robin) and uniform concatenation.

Each class maps a position ``i`` of an epoch to ``(source, item)`` as a pure
function of ``(seed, epoch, i)`` -- never global random state -- so the
result is the same for any DataLoader worker count, ``shuffle`` setting or
process start method.

NOTE [ Shared epoch ]
    ``set_epoch`` writes the epoch into a one-element shared-memory tensor.
    DataLoader workers receive that tensor's storage, not a copy, so even
    ``persistent_workers=True`` workers see the new epoch. The plan of an
    epoch is computed lazily once per process and cached.

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> real = TensorDataset(torch.zeros(20))
    >>> synthetic = TensorDataset(torch.ones(100))
    >>> mixed = WeightedConcatDataset([synthetic, real], [0.8, 0.2], length=10, mode="exact")
    >>> mixed.plan().sources.tolist()
    [0, 0, 0, 1, 0, 0, 0, 0, 1, 0]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from .._validation import check_bool, check_choice, check_int, check_saved_settings, check_weights, show
from ..core._groups import grouped
from ..core.draw import CategoricalTable, interleave, largest_remainder
from ..core.names import MODES, STRATEGIES
from ..core.report import share_report
from ..core.rng import derive_key, per_pass, permute, uniform
from ..core.weights import fingerprint
from .base import PlanSampler
from .fetch import fetch_located
from .schedule import WeightSchedule

__all__ = [
    "STRATEGIES",
    "MixPlan",
    "MixedDataset",
    "MixedDatasetSampler",
    "StratifiedConcatDataset",
    "UniformConcatDataset",
    "WeightedConcatDataset",
]


class MixPlan(NamedTuple):
    """Where each position of an epoch comes from: ``sources[i]`` and ``indices[i]`` (item within that source)."""

    sources: np.ndarray
    indices: np.ndarray


def _check_datasets(datasets: Any) -> list[Any]:
    if isinstance(datasets, Sequence) and not isinstance(datasets, (Dataset, str)) and not datasets:
        # the original's words first (users' `match=` tests), then mixweave's detail
        raise ValueError("Must provide at least one dataset: `datasets` is an empty list")
    if isinstance(datasets, (Dataset, str, bytes)) or not isinstance(datasets, Sequence):
        raise ValueError(f"`datasets` must be a non-empty list of datasets, got {type(datasets).__name__}")
    for pos, ds in enumerate(datasets):
        if not (hasattr(ds, "__len__") and hasattr(ds, "__getitem__")):
            raise TypeError(f"`datasets[{pos}]` must define __len__ and __getitem__, got {type(ds).__name__}")
        if len(ds) == 0:
            raise ValueError(f"`datasets[{pos}]` is empty; every source must hold at least one item")
    return list(datasets)


class MixedDataset(Dataset[Any]):
    """Base of the mixed datasets: epochs (NOTE [ Shared epoch ]), locating, batched fetch, inspection."""

    _KIND: ClassVar[str] = "mixed"

    def __init__(self, datasets: Any, length: int | None, seed: int) -> None:
        self.datasets = _check_datasets(datasets)
        self.sizes = np.array([len(d) for d in self.datasets], dtype=np.int64)
        self.total_size = int(self.sizes.sum())
        self.length = self.total_size if length is None else check_int(length, "length", minimum=1)
        self.seed = check_int(seed, "seed")
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self._cache: tuple[int, MixPlan] | None = None

    # epochs ------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Use the plan of ``epoch`` (seen by DataLoader workers too, persistent ones included)."""
        self._epoch.fill_(check_int(epoch, "epoch", minimum=0))

    # locating ----------------------------------------------------------------
    def __len__(self) -> int:
        return self.length

    def _locate(self, epoch: int, positions: np.ndarray) -> MixPlan:
        raise NotImplementedError

    def _positions(self, index: Any) -> np.ndarray:
        # NOTE [ Indices past the length ]: position i >= length continues the
        # epoch's stream (as the document's datasets can be indexed without
        # bound); a DataLoader only ever asks for [0, length).
        pos = np.asarray(index, dtype=np.int64)
        pos = np.where(pos < 0, pos + self.length, pos)
        if pos.size and pos.min() < 0:
            raise IndexError(f"index out of range for a mixed dataset of length {self.length}: {index!r}")
        return pos

    def plan(self, epoch: int | None = None) -> MixPlan:
        """Source and item of every position of ``epoch`` (default: current), without loading anything."""
        epoch = self.epoch if epoch is None else check_int(epoch, "epoch", minimum=0)
        return self._locate(epoch, np.arange(self.length, dtype=np.int64))

    def source_of(self, index: int) -> int:
        """Which source position ``index`` of the current epoch comes from."""
        return int(self._locate(self.epoch, self._positions([index])).sources[0])

    def __getitem__(self, index: int) -> Any:
        located = self._locate(self.epoch, self._positions([index]))
        return self.datasets[int(located.sources[0])][int(located.indices[0])]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """Fetch a batch: one lookup for all positions, then one batched read per source.

        A source with ``__getitems__`` is asked once for all of its items; a
        ``TensorDataset`` is read by fancy indexing; others item by item.
        """
        located = self._locate(self.epoch, self._positions(indices))
        return fetch_located(self.datasets, located.sources, located.indices)

    # inspection and state ----------------------------------------------------
    def source_shares(self, epoch: int | None = None) -> np.ndarray:
        """The share of ``epoch``'s positions each source is meant to get (what its plan is drawn from)."""
        raise NotImplementedError

    def probabilities(self, epoch: int | None = None) -> np.ndarray:
        """The requested probability of every item of the concatenated sources at ``epoch``, shape ``(total_size,)``."""
        return np.repeat(self.source_shares(epoch) / self.sizes, self.sizes)

    def report(self, epoch: int | None = None) -> dict[str, list[Any]]:
        """Requested vs realised share of each source in ``epoch`` (:func:`~mixweave.core.report.share_report`)."""
        plan = self.plan(epoch)
        offsets = np.concatenate(([0], np.cumsum(self.sizes)))
        source_of_item = np.repeat(np.arange(self.sizes.size, dtype=np.int32), self.sizes)
        flat = offsets[plan.sources.astype(np.int64)] + plan.indices
        return share_report(source_of_item, None, [flat], requested=self.source_shares(epoch))

    def sampler(
        self, *, num_replicas: int | None = None, rank: int | None = None, drop_last: bool = False
    ) -> MixedDatasetSampler:
        """A sampler over this dataset's positions that advances its epoch (for Lightning/DDP)."""
        return MixedDatasetSampler(self, num_replicas=num_replicas, rank=rank, drop_last=drop_last)

    def plan_settings(self, epoch: int | None = None) -> dict[str, Any]:
        """What decides ``epoch``'s plan: kind, seed, length, source sizes (and subclasses' mode and weights).

        A saved state must match all of them to be restored (the message names the first that differs).
        """
        return {"kind": self._KIND, "seed": self.seed, "length": self.length, "sizes": self.sizes.tolist()}

    def state_dict(self) -> dict[str, Any]:
        """JSON-able ``epoch`` and :meth:`plan_settings` (a restored object must match them)."""
        return {"epoch": self.epoch, **self.plan_settings()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore ``epoch``; raises ``ValueError`` if a setting that decides the plan differs."""
        epoch = (
            check_int(state_dict.get("epoch"), "state_dict['epoch']", minimum=0)
            if isinstance(state_dict, Mapping)
            else 0
        )
        hints = {"weights_crc32": "the source weights of the saved epoch differ"}
        check_saved_settings(state_dict, self.plan_settings(epoch), "dataset", extra=("epoch",), hints=hints)
        self.set_epoch(epoch)
        self._cache = None


def _pass_items(key: int, size: int, draws: np.ndarray) -> np.ndarray:
    """Draw numbers ``draws`` of a source of ``size``: without replacement, a fresh permutation per full pass."""
    return per_pass(key, size, draws, lambda pk, j: permute(pk, size, j))


def _cycled_items(key: int, size: int, draws: int) -> np.ndarray:
    """The first ``draws`` items of :func:`_pass_items`."""
    return _pass_items(key, size, np.arange(draws, dtype=np.int64))


class WeightedConcatDataset(MixedDataset):
    """Draw a source by weight, then an item of that source.

    Items within a source are drawn without replacement while the source
    lasts; then a fresh pass starts, so a small source is cycled, not
    repeated at random.

    Args:
        datasets: the sources, each with ``__len__`` and ``__getitem__``.
        weights: one non-negative weight per source, summing to 1 (within
            1e-6); or a schedule: a mapping ``{epoch: weights}`` (see
            :class:`WeightSchedule`, step interpolation) or a callable
            ``epoch -> weights``, re-evaluated at :meth:`set_epoch`.
        length: positions per epoch (default: the total size of all sources).
        seed: base seed; the plan depends only on ``(seed, epoch)``.
        mode: ``"random"`` (each position draws its source independently) or
            ``"exact"`` (each source gets exactly its share, largest remainder,
            interleaved so every prefix is within one item of its target).

    Raises:
        ValueError: for an empty source (naming its position), weights that
            are negative, NaN, of the wrong count or do not sum to 1 (naming
            the sum), an unknown mode or a non-positive length.
    """

    _KIND = "weighted"

    def __init__(
        self,
        datasets: Sequence[Any],
        weights: Any,
        length: int | None = None,
        *,
        seed: int = 0,
        mode: str = "random",
    ) -> None:
        super().__init__(datasets, length, seed)
        self.mode = check_choice(mode, "mode", MODES)
        if isinstance(weights, Mapping):
            weights = WeightSchedule(weights)
        self._schedule: Callable[[int], Any] | None = weights if callable(weights) else None
        self._static = None if self._schedule is not None else self._check_weights(weights, "weights")
        if self._schedule is not None:
            self._check_weights(self._schedule(0), "weights(0)")

    def _check_weights(self, weights: Any, name: str) -> np.ndarray:
        # the original's words first (users' `match=` tests), then mixweave's detail
        w = check_weights(weights, name)
        if w.shape[0] != len(self.datasets):
            raise ValueError(
                f"Number of datasets ({len(self.datasets)}) must match number of weights ({w.shape[0]}): "
                f"`{name}` needs one weight per dataset"
            )
        total = float(w.sum())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"Weights must sum to 1.0, got {total:.6g}: `{name}` is {show(list(map(float, w)))}; "
                "divide by their sum to keep their ratios"
            )
        return w

    def source_shares(self, epoch: int | None = None) -> np.ndarray:
        return self.weights_at(self.epoch if epoch is None else epoch)

    def weights_at(self, epoch: int) -> np.ndarray:
        """The source weights in force at ``epoch``."""
        if self._static is not None:
            return self._static
        assert self._schedule is not None
        return self._check_weights(self._schedule(epoch), f"weights({epoch})")

    @property
    def weights(self) -> np.ndarray:
        """The source weights of the current epoch."""
        return self.weights_at(self.epoch)

    def _locate(self, epoch: int, positions: np.ndarray) -> MixPlan:
        blocks = 1 + (int(positions.max()) // self.length if positions.size else 0)
        if self._cache is None or self._cache[0] != epoch or self._cache[1].sources.size < blocks * self.length:
            self._cache = (epoch, self._build(epoch, blocks))
        plan = self._cache[1]
        return MixPlan(plan.sources[positions], plan.indices[positions])

    def _build(self, epoch: int, blocks: int) -> MixPlan:
        """The epoch's plan for ``blocks * length`` positions; a longer build extends, never changes, a shorter one."""
        w = self.weights_at(epoch)
        key = derive_key(self.seed, epoch)
        n = blocks * self.length
        if self.mode == "exact":
            sources = np.tile(interleave(largest_remainder(w, self.length)), blocks)
        else:
            sources = CategoricalTable(w).sample(uniform(derive_key(key, 0), np.arange(n)))
        sources = sources.astype(np.int16 if w.size < 2**15 else np.int64)
        indices = np.empty(n, dtype=np.int64)
        for s, slots in enumerate(grouped(sources, w.size)):
            if slots.size:
                indices[slots] = _cycled_items(derive_key(key, 1, s), int(self.sizes[s]), slots.size)
        return MixPlan(sources, indices)

    def plan_settings(self, epoch: int | None = None) -> dict[str, Any]:
        weights = self.weights_at(self.epoch if epoch is None else epoch)
        return {**super().plan_settings(epoch), "mode": self.mode, "weights_crc32": fingerprint(weights)}


class StratifiedConcatDataset(MixedDataset):
    """Round-robin over sources: position ``i`` comes from source ``i % n``; every source contributes equally.

    A source that runs out is cycled: each pass through it is a fresh order
    drawn from ``(seed, epoch, source, pass)``, so a small source repeats its
    items evenly and a large one is visited in a new order each epoch. The
    default length is the total size of all sources (the original's default),
    which is ``length / n`` draws from every source.

    Args:
        datasets: the sources, each with ``__len__`` and ``__getitem__``.
        length: positions per epoch (default: the total size of all sources).
        seed: base seed of the per-pass orders.
        cycle: ``True`` (default): equal contribution, smaller sources cycle.
            ``False``: mixweave 0.x's behaviour -- each item exactly once per
            ``total size`` positions, exhausted sources drop out of the rotation.
        shuffle: with ``cycle=True``, draw a fresh order per pass (default);
            ``False`` reads each source in order, ``item = (i // n) % len(source)``,
            exactly as the original ``connectomics`` class does.

    Raises:
        ValueError: ``Must provide at least one dataset`` for an empty list;
            an empty source; a non-positive ``length``.

    Example:
        >>> ds = StratifiedConcatDataset([list("abc"), list("x"), list("pq")], shuffle=False)
        >>> "".join(ds[i] for i in range(len(ds)))
        'axpbxq'
        >>> old = StratifiedConcatDataset([list("abc"), list("x"), list("pq")], cycle=False)
        >>> "".join(old[i] for i in range(len(old)))
        'axpbqc'
    """

    _KIND = "stratified"

    def __init__(
        self,
        datasets: Sequence[Any],
        length: int | None = None,
        *,
        seed: int = 0,
        cycle: bool = True,
        shuffle: bool = True,
    ) -> None:
        super().__init__(datasets, length, seed)
        self.cycle = check_bool(cycle, "cycle")
        self.shuffle = check_bool(shuffle, "shuffle")
        # cycle=False: between consecutive distinct sizes the set of active sources is
        # fixed; segment t covers rounds [levels[t], levels[t+1]) with active[t] sources.
        levels = np.concatenate(([0], np.unique(self.sizes)))
        self._levels = levels[:-1]
        self._active = [np.flatnonzero(self.sizes > lv) for lv in self._levels]
        counts = np.array([a.size for a in self._active], dtype=np.int64)
        self._counts = counts
        self._starts = np.concatenate(([0], np.cumsum(counts * np.diff(levels))))[:-1]
        width = int(counts.max())
        self._table = np.array([np.pad(a, (0, width - a.size)) for a in self._active], dtype=np.int64)

    def source_shares(self, epoch: int | None = None) -> np.ndarray:
        if self.cycle:
            return np.full(self.sizes.size, 1.0 / self.sizes.size)
        # the drop-out rotation is deterministic: its shares are those of its plan
        return np.bincount(self.plan(epoch).sources, minlength=self.sizes.size) / self.length

    def _locate(self, epoch: int, positions: np.ndarray) -> MixPlan:
        if self.cycle:
            n = self.sizes.size
            sources, draws = positions % n, positions // n
            if not self.shuffle:
                return MixPlan(sources, draws % self.sizes[sources])
            key = derive_key(self.seed, epoch)
            indices = np.empty(positions.size, dtype=np.int64)
            for s, slots in enumerate(grouped(sources, n)):
                if slots.size:
                    indices[slots] = _pass_items(derive_key(key, 2, s), int(self.sizes[s]), draws[slots])
            return MixPlan(sources, indices)
        pos = positions % self.total_size
        seg = np.searchsorted(self._starts, pos, side="right") - 1
        offset = pos - self._starts[seg]
        active = self._counts[seg]
        return MixPlan(self._table[seg, offset % active], self._levels[seg] + offset // active)

    def plan_settings(self, epoch: int | None = None) -> dict[str, Any]:
        return {**super().plan_settings(epoch), "cycle": self.cycle, "shuffle": self.shuffle}


class UniformConcatDataset(MixedDataset):
    """Random sampling in proportion to source sizes: a shuffled concatenation.

    With the default length every item appears exactly once per epoch; a
    longer epoch starts another pass over a fresh permutation.
    """

    _KIND = "uniform"

    def __init__(self, datasets: Sequence[Any], length: int | None = None, *, seed: int = 0) -> None:
        super().__init__(datasets, length, seed)
        self._offsets = np.concatenate(([0], np.cumsum(self.sizes)))

    def source_shares(self, epoch: int | None = None) -> np.ndarray:
        return self.sizes / self.total_size

    def _locate(self, epoch: int, positions: np.ndarray) -> MixPlan:
        n = self.total_size
        flat = per_pass(derive_key(self.seed, epoch), n, positions, lambda pk, j: permute(pk, n, j))
        sources = np.searchsorted(self._offsets, flat, side="right") - 1
        return MixPlan(sources, flat - self._offsets[sources])


class MixedDatasetSampler(PlanSampler):
    """Positions ``0..len-1`` of a mixed dataset, sharded across ranks, keeping the dataset's epoch in step.

    The order is already random inside the dataset, so no shuffling is done
    here. ``set_epoch`` (which Lightning calls automatically) and the
    automatic advance at the end of an epoch are forwarded to the dataset.
    Resumable through ``state_dict`` like every mixweave sampler.
    """

    def __init__(
        self,
        dataset: MixedDataset,
        *,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(dataset, MixedDataset):
            raise TypeError(f"`dataset` must be a mixweave mixed dataset, got {type(dataset).__name__}")
        self.dataset = dataset
        super().__init__(len(dataset), seed=dataset.seed, num_replicas=num_replicas, rank=rank, drop_last=drop_last)
        self._epoch = dataset.epoch

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        self.dataset.set_epoch(epoch)

    def _plan_indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        return positions

    def _fingerprint(self, epoch: int) -> dict[str, Any]:
        dataset = {f"dataset.{k}": v for k, v in self.dataset.plan_settings(epoch).items()}
        return {**super()._fingerprint(epoch), **dataset}

    def __iter__(self) -> Any:
        self.dataset.set_epoch(self._epoch)
        return super().__iter__()
