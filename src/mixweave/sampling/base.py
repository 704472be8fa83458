"""The base of every mixweave sampler: epoch plans sharded across ranks, iterated in chunks, resumable.

A sampler is three things glued together: a *weight provider* (a static
array, or a callable re-evaluated at :meth:`~PlanSampler.set_epoch`), the
:class:`~mixweave.core.draw.DrawEngine`, and the sharding/resume bookkeeping
that every mixweave sampler shares (:class:`PlanSampler`, here).

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
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from .._validation import check_int, check_rank, check_saved_settings
from ..core.rng import derive_key

__all__ = ["PlanSampler", "resolve_distributed"]


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
