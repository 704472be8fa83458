"""``torch.utils.data.Sampler`` classes on top of the drawing engine.

A sampler here is three things glued together: a *weight provider* (a static
array, or a callable re-evaluated at :meth:`~PlanSampler.set_epoch`), the
:class:`~mixweave.draw.DrawEngine`, and the sharding/resume bookkeeping that
every mixweave sampler shares (:class:`PlanSampler`).

NOTE [ Epochs ]
    The plan of an epoch depends only on ``(seed, epoch)`` and the weights.
    Like ``DistributedSampler``, a sampler honours :meth:`set_epoch`; unlike
    it, a sampler also moves to the next epoch by itself when an iteration
    runs to the end, so code written for ``WeightedRandomSampler`` (which
    never calls ``set_epoch``) still sees a fresh plan every epoch. Calling
    ``set_epoch(e)`` before each epoch, as Lightning and most loops do, gives
    the same result either way.

NOTE [ Sharding ]
    The global plan of an epoch has ``num_samples`` positions. With
    ``num_replicas = W``, rank ``r`` takes positions ``r, r + W, r + 2W, ...``
    exactly as ``DistributedSampler`` slices its index list; without
    ``drop_last`` the plan is padded by wrapping around to its start so every
    rank gets ``ceil(num_samples / W)`` indices, with ``drop_last`` the tail is
    dropped so every rank gets ``num_samples // W``. Shards are disjoint sets
    of positions and their union is the single-process plan.

NOTE [ Resume ]
    :meth:`state_dict` holds plain JSON-able values: the seed, the epoch, the
    number of indices this rank has yielded in that epoch, and the settings
    that shape the plan. :meth:`load_state_dict` checks the settings and makes
    the next iteration start right after the last yielded index: the plan is
    regenerated from ``(seed, epoch)``, nothing is replayed or skipped.

    The end of an epoch is saved as ``(epoch, position=len)``, not as the next
    epoch at 0, even though the sampler itself has moved on: a DataLoader whose
    last batch is partial has drained the sampler before it hands that batch
    out, and a loader restored there must see the (empty) rest of *that*
    epoch. The first ``iter()`` after loading such a state yields nothing and
    moves to the next epoch at once, so a loader that then builds a fresh
    iterator (``StatefulDataLoader`` restoring a finished epoch) starts the
    next epoch. The epoch and position are taken when ``iter()`` is called.
"""

from __future__ import annotations

import itertools
import operator
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from . import weights as weights_mod
from ._validation import check_choice, check_int, check_rank, check_saved_settings
from .draw import MODES, DrawEngine, derive_key

__all__ = ["PlanSampler", "WeightedSampler", "resolve_distributed"]

WeightSource = Any  # array-like, or Callable[[int], array-like]


def resolve_distributed(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """Fill in ``num_replicas``/``rank`` from ``torch.distributed`` when initialised, else ``(1, 0)``."""
    if num_replicas is None:
        num_replicas = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if rank is None:
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    return check_rank(num_replicas, rank)


class PlanSampler(Sampler[int]):
    """Base class: shards an epoch plan across ranks, iterates it in chunks, resumes.

    Subclasses implement :meth:`_plan_indices` (indices at global plan
    positions for an epoch) and :meth:`_fingerprint` (settings a saved state
    must match). They get ``set_epoch``, ``__len__``, ``__iter__``, ``plan``,
    ``global_plan``, ``state_dict`` and ``load_state_dict``.
    """

    _STATE_KEYS: ClassVar[tuple[str, ...]] = ("seed", "epoch", "position")
    chunk_size: ClassVar[int] = 1 << 15

    def __init__(
        self,
        num_samples: int,
        *,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        self.num_samples = check_int(num_samples, "num_samples", minimum=1)
        self.seed = check_int(seed, "seed")
        self.num_replicas, self.rank = resolve_distributed(num_replicas, rank)
        self.drop_last = bool(drop_last)
        if self.drop_last and self.num_samples < self.num_replicas:
            raise ValueError(
                f"`num_samples` ({self.num_samples}) must be >= num_replicas ({self.num_replicas}) "
                "with drop_last=True, or every rank would get nothing"
            )
        self.increment_seed_per_epoch = True
        #: Callables ``hook(sampler, epoch)`` run when an epoch's iteration starts (logging, metrics).
        self.epoch_hooks: list[Callable[[Any, int], None]] = []
        self._epoch = 0
        self._resume_position = 0
        self._live: tuple[int, Iterator[int]] | None = None
        self._finished: int | None = None  # the epoch an iteration just ran to its end (NOTE [ Resume ])

    # ----------------------------------------------------------------- epochs
    @property
    def epoch(self) -> int:
        """The epoch whose plan the next iteration yields."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Use the plan of ``epoch`` from now on (keeps a loaded resume position for the same epoch)."""
        epoch = check_int(epoch, "epoch", minimum=0)
        if epoch != self._epoch:
            self._resume_position, self._finished = 0, None
        self._epoch = epoch

    def _key(self, epoch: int) -> int:
        # With increment_seed_per_epoch=False every epoch replays the plan of epoch 0.
        return derive_key(self.seed, epoch if self.increment_seed_per_epoch else 0)

    # -------------------------------------------------------------- sharding
    def __len__(self) -> int:
        """Indices per rank per epoch (see NOTE [ Sharding ])."""
        if self.drop_last:
            return self.num_samples // self.num_replicas
        return -(-self.num_samples // self.num_replicas)

    def _global_positions(self, start: int, stop: int) -> np.ndarray:
        local = np.arange(start, stop, dtype=np.int64)
        if self.num_replicas == 1:  # local positions are global ones, and all below num_samples
            return local
        local *= self.num_replicas
        local += self.rank
        return local % self.num_samples

    def _plan_indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def plan(self, epoch: int | None = None) -> np.ndarray:
        """This rank's indices for ``epoch`` (default: the current one), as an int64 array.

        Computed without iterating and without touching any sample.
        """
        epoch = self._epoch if epoch is None else check_int(epoch, "epoch", minimum=0)
        return self._plan_indices(epoch, self._global_positions(0, len(self)))

    def global_plan(self, epoch: int | None = None) -> np.ndarray:
        """The single-process plan of ``epoch``: all ``num_samples`` indices, before sharding."""
        epoch = self._epoch if epoch is None else check_int(epoch, "epoch", minimum=0)
        return self._plan_indices(epoch, np.arange(self.num_samples, dtype=np.int64))

    # ------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[int]:
        # The epoch and start position are taken when iter() is called, not when the
        # first index is drawn (see NOTE [ Resume ]): a loader that builds an iterator
        # and discards it unstarted still consumes an exhausted rest of an epoch.
        epoch, start, stop = self._epoch, self._resume_position, len(self)
        # until the first chunk is drawn, the position is where this iteration starts
        self._resume_position, self._finished, self._live = 0, None, (start, iter(()))
        for hook in self.epoch_hooks:
            hook(self, epoch)
        if start >= stop:  # a resumed epoch with nothing left: move on now
            self._live = None
            self._advance(epoch)
            return iter(())
        # chain hands out the ints of each chunk's list at C speed; Python code runs once per chunk
        return itertools.chain.from_iterable(self._chunks(epoch, start, stop))

    def _chunks(self, epoch: int, start: int, stop: int) -> Iterator[Iterator[int]]:
        for lo in range(start, stop, self.chunk_size):
            hi = min(lo + self.chunk_size, stop)
            chunk = iter(self._plan_indices(epoch, self._global_positions(lo, hi)).tolist())
            self._live = (hi, chunk)  # what is left of `chunk` tells the position (state_dict)
            yield chunk
        self._live = None  # asked for past the last index: the epoch is over
        self._advance(epoch)

    def _advance(self, epoch: int) -> None:
        if self._epoch == epoch:  # see NOTE [ Epochs ]
            self._epoch, self._finished = epoch + 1, epoch

    def _position(self) -> int:
        if self._live is None:
            return self._resume_position
        end, chunk = self._live
        return end - operator.length_hint(chunk)

    # ---------------------------------------------------------------- resume
    def _fingerprint(self) -> dict[str, Any]:
        return {
            "num_samples": self.num_samples,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            "drop_last": self.drop_last,
            "increment_seed_per_epoch": self.increment_seed_per_epoch,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state: ``seed``, ``epoch``, ``position`` (indices yielded this epoch) and settings.

        Right after an iteration ran to its end the state is that epoch with every
        index yielded (not the next epoch at 0; see NOTE [ Resume ]).
        """
        epoch, position = self._epoch, self._position()
        if self._finished is not None and self._live is None:
            epoch, position = self._finished, len(self)
        return {"seed": self.seed, "epoch": epoch, "position": position, **self._fingerprint()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the next iteration yields exactly the rest of that epoch.

        Raises:
            ValueError: if a key is missing, or the state came from a sampler
                with different settings (the message names the key and both values).
        """
        check_saved_settings(state_dict, self._fingerprint(), "sampler", extra=self._STATE_KEYS)
        epoch = check_int(state_dict["epoch"], "state_dict['epoch']", minimum=0)
        position = check_int(state_dict["position"], "state_dict['position']", minimum=0, maximum=len(self))
        self.seed = check_int(state_dict["seed"], "state_dict['seed']")
        # A state saved after the last index of an epoch resumes with an empty
        # rest of that epoch, then moves on (NOTE [ Resume ]).
        self._epoch, self._resume_position, self._live, self._finished = epoch, position, None, None


class WeightedSampler(PlanSampler):
    """Draw indices in proportion to per-sample weights; distributed, resumable, exact if asked.

    A drop-in for ``torch.utils.data.WeightedRandomSampler`` that is
    deterministic from ``(seed, epoch)``, shards across ranks without a
    wrapper, resumes mid-epoch, has no 2**24 limit on the number of weights,
    and can give groups exact shares.

    Args:
        weights: per-sample non-negative weights, shape ``(N,)``; or a
            callable ``epoch -> weights`` re-evaluated when the epoch changes
            (weights that follow a schedule).
        num_samples: indices per epoch across all ranks (default ``N``).
        replacement: draw with replacement (default). Without replacement an
            index appears at most once per epoch (random mode), or groups are
            cycled through without repeats (exact mode).
        mode: ``"random"`` (i.i.d. or weighted permutation) or ``"exact"``
            (each group gets its share exactly, interleaved evenly; needs ``groups``).
        groups: integer group id per sample (e.g. source id), for
            ``mode="exact"`` and for :meth:`report`.
        seed: base seed; the plan of an epoch depends only on ``(seed, epoch)``.
        num_replicas: number of ranks (default: the process group's size, or 1).
        rank: this rank (default: the process group's rank, or 0).
        drop_last: drop the plan's tail instead of padding it so ranks get equal counts.
        increment_seed_per_epoch: draw a new plan each epoch (default); with
            False every epoch repeats the plan of epoch 0 (weights may still change).

    Raises:
        ValueError: for negative/NaN/inf/all-zero/empty weights, ``num_samples``
            <= 0, ``rank`` outside ``[0, num_replicas)``, an unknown ``mode``,
            or more ``num_samples`` than positive weights without replacement.

    Example:
        >>> import numpy as np
        >>> sampler = WeightedSampler([0.0, 1.0, 1.0, 2.0], num_samples=8, seed=0)
        >>> idx = sampler.plan()
        >>> idx.shape, bool((idx > 0).all())
        ((8,), True)
        >>> np.array_equal(idx, np.array(list(sampler)))
        True
    """

    def __init__(
        self,
        weights: WeightSource,
        num_samples: int | None = None,
        replacement: bool = True,
        *,
        mode: str = "random",
        groups: Any = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        increment_seed_per_epoch: bool = True,
    ) -> None:
        self.mode = check_choice(mode, "mode", MODES)
        self.replacement = bool(replacement)
        self._provider: Callable[[int], Any] | None = weights if callable(weights) else None
        self._engine_key: tuple[Any, ...] = (0, self._weights_version())
        self._groups = groups
        first = DrawEngine(
            weights(0) if callable(weights) else weights, replacement=self.replacement, mode=mode, groups=groups
        )
        self._engines: dict[int, DrawEngine] = {0: first}
        self.num_weights = int(first.weights.shape[0])
        super().__init__(
            self.num_weights if num_samples is None else num_samples,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            drop_last=drop_last,
        )
        self.increment_seed_per_epoch = bool(increment_seed_per_epoch)
        self._check_capacity(first)
        self._weights_crc32 = (
            None if self._provider is not None else zlib.crc32(np.ascontiguousarray(first.weights).data)
        )

    @classmethod
    def from_sources(
        cls,
        sizes: Any,
        source_weights: Any,
        num_samples: int | None = None,
        *,
        within: Any = None,
        mode: str = "exact",
        **kwargs: Any,
    ) -> WeightedSampler:
        """A sampler over a ``ConcatDataset`` whose per-source shares are fixed.

        Args:
            sizes: the size of each source, or the sources themselves (anything with ``len``),
                or a ``torch.utils.data.ConcatDataset``.
            source_weights: share of each source (normalised).
            num_samples: indices per epoch (default: the total size).
            within: optional per-sample factor (e.g. :func:`~mixweave.weights.inverse_frequency`
                of the labels with ``groups`` = source ids) that acts only inside each source.
            mode: ``"exact"`` (default: source shares exact in every prefix) or ``"random"``.
            **kwargs: passed to :class:`WeightedSampler` (``replacement``, ``seed``, ...).

        Example:
            >>> s = WeightedSampler.from_sources([900, 100], [0.5, 0.5], num_samples=10, seed=0)
            >>> int((s.plan() >= 900).sum())
            5
        """
        if hasattr(sizes, "datasets") and hasattr(sizes, "cumulative_sizes"):  # ConcatDataset
            sizes = sizes.datasets
        counts = np.array([s if isinstance(s, (int, np.integer)) else len(s) for s in sizes], dtype=np.int64)
        if counts.ndim != 1 or counts.size == 0 or (counts <= 0).any():
            raise ValueError(f"`sizes` must list at least one source, each with >= 1 sample, got {counts.tolist()}")
        groups = np.repeat(np.arange(counts.size), counts)
        w = weights_mod.compose_hierarchical(groups, source_weights, within=within)
        return cls(w, num_samples, mode=mode, groups=groups, **kwargs)

    def _check_capacity(self, engine: DrawEngine) -> None:
        cap = engine.max_samples()
        if cap is not None and self.num_samples > cap:
            raise ValueError(
                f"`num_samples` ({self.num_samples}) exceeds the {cap} samples with positive weight; "
                "draw without replacement needs num_samples <= that, or use replacement=True"
            )

    def _weights_version(self) -> Any:
        """Anything besides the epoch that changes scheduled weights (a curriculum phase, say)."""
        return None

    def _engine(self, epoch: int) -> DrawEngine:
        if self._provider is None:
            return self._engines[0]
        key = (epoch, self._weights_version())
        engine = self._engines.get(epoch) if key == self._engine_key else None
        if engine is None:
            engine = DrawEngine(
                self._provider(epoch), replacement=self.replacement, mode=self.mode, groups=self._groups
            )
            if engine.weights.shape[0] != self.num_weights:
                raise ValueError(
                    f"the weight schedule returned {engine.weights.shape[0]} weights for epoch {epoch}, "
                    f"expected {self.num_weights}"
                )
            self._check_capacity(engine)
            self._engines = {epoch: engine}  # keep one epoch's table: memory stays linear in N
            self._engine_key = key
        return engine

    def _plan_indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        return self._engine(epoch).indices(self._key(epoch), positions, self.num_samples)

    @property
    def weights(self) -> np.ndarray:
        """The current epoch's weights (float64, as given, not normalised)."""
        return self._engine(self._epoch).weights

    def weights_at(self, epoch: int) -> np.ndarray:
        """The weights ``epoch`` is drawn from (float64, as given, not normalised); nothing is drawn."""
        return self._engine(check_int(epoch, "epoch", minimum=0)).weights

    def weight_stats(self) -> weights_mod.WeightStats:
        """``min``/``max`` probability, ``entropy`` and ``effective_samples`` of the current weights."""
        return weights_mod.weight_stats(self.weights)

    def report(self, groups: Any = None, epoch: int | None = None) -> dict[str, list[float]]:
        """Requested vs realised share of each group in ``epoch``'s global plan, without loading samples.

        Args:
            groups: integer group id per sample (default: the ``groups`` given at construction).
            epoch: default the current epoch.

        Returns:
            ``{"requested": [...], "realised": [...], "unique": [...]}`` indexed by group id;
            ``unique`` counts distinct samples drawn from each group.
        """
        ids = np.asarray(self._groups if groups is None else groups)
        if ids.ndim != 1 or ids.shape[0] != self.num_weights or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"`groups` must be integer ids of shape ({self.num_weights},), got {ids.shape}")
        epoch = self._epoch if epoch is None else epoch
        num_groups = int(ids.max()) + 1
        drawn = self.global_plan(epoch)
        requested = weights_mod.group_shares(self._engine(epoch).weights, ids, num_groups=num_groups)
        realised = np.bincount(ids[drawn], minlength=num_groups) / drawn.size
        unique = np.bincount(ids[np.unique(drawn)], minlength=num_groups)
        return {"requested": requested.tolist(), "realised": realised.tolist(), "unique": unique.tolist()}

    def _fingerprint(self) -> dict[str, Any]:
        return {
            **super()._fingerprint(),
            "mode": self.mode,
            "replacement": self.replacement,
            "num_weights": self.num_weights,
            "weights_crc32": self._weights_crc32,
        }
