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

NOTE [ Elastic resume ]
    A state records where its rank was in its world: the epoch, the global
    position ``offset`` that epoch's iteration started from (0 unless it was
    itself resumed), the ``position`` (indices this rank yielded since) and
    ``num_replicas``/``rank``. Restored on the same rank of the same world it
    continues exactly there. Restored anywhere else -- another rank, another
    number of ranks -- it continues from one global position,
    ``offset + position * num_replicas``: every global position before it is
    taken as consumed, and the current world shares out the rest of the
    epoch's plan round-robin (rank ``r`` of ``W`` takes ``g + r, g + r + W,
    ...``). That is exact when the ranks were in step -- each had yielded the
    same number of indices, which a DataLoader with the same batch size on
    every rank gives -- so one rank's state serves every rank of any world. If
    they were not, use :func:`~mixweave.sampling.distributed.gather_state`,
    which resumes from the first position some rank had not yet yielded:
    nothing is skipped, and what faster ranks had already yielded is drawn
    again. A rank whose state says it had yielded its whole share marks the
    epoch finished in any world. Padding differs between worlds (each pads
    the plan to a multiple of its own rank count), so after an elastic resume
    the ranks' counts for the rest of that epoch may differ by one.

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
from torch.utils.data import Sampler

from .._validation import check_int, check_saved_settings
from ..core.rng import derive_key
from .distributed import resolve_distributed

__all__ = ["PlanSampler"]


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
        self._offset = 0  # global position the next iteration of this epoch starts from (NOTE [ Elastic resume ])
        self._resume_position = 0
        self._running = (0, 0)  # (epoch, offset) of the iteration in progress or just finished
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
        if epoch != self._epoch or self._finished is not None:  # a new epoch (the one just finished is done)
            self._resume_position, self._offset, self._finished = 0, 0, None
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

    def _count(self, offset: int) -> int:
        """This rank's share of the epoch's positions from global position ``offset`` on.

        The rest of the plan, ``num_samples - offset`` positions, is padded by
        wrapping around (or, with ``drop_last``, cut) to a multiple of the
        number of ranks, so every rank gets the same count: ``len(self)`` from
        offset 0, as ``DistributedSampler`` does, and equal counts after an
        elastic resume too (DDP needs every rank to take the same number of steps).
        """
        rest = max(0, self.num_samples - offset)
        return rest // self.num_replicas if self.drop_last else -(-rest // self.num_replicas)

    def _global_positions(self, start: int, stop: int, offset: int = 0) -> np.ndarray:
        local = np.arange(start, stop, dtype=np.int64)
        if self.num_replicas == 1 and offset == 0:  # local positions are global ones, and all below num_samples
            return local
        local *= self.num_replicas
        local += offset + self.rank
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
        epoch, offset, start = self._epoch, self._offset, self._resume_position
        stop = self._count(offset)
        # until the first chunk is drawn, the position is where this iteration starts
        self._running, self._resume_position, self._offset = (epoch, offset), 0, 0
        self._finished, self._live = None, (start, iter(()))
        for hook in self.epoch_hooks:
            hook(self, epoch)
        if start >= stop:  # a resumed epoch with nothing left: move on now
            self._live = None
            self._advance(epoch)
            return iter(())
        # chain hands out the ints of each chunk's list at C speed; Python code runs once per chunk
        return itertools.chain.from_iterable(self._chunks(epoch, offset, start, stop))

    def _chunks(self, epoch: int, offset: int, start: int, stop: int) -> Iterator[Iterator[int]]:
        for lo in range(start, stop, self.chunk_size):
            hi = min(lo + self.chunk_size, stop)
            chunk = iter(self._plan_indices(epoch, self._global_positions(lo, hi, offset)).tolist())
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
    def next_global_position(self, state: Mapping[str, Any] | None = None) -> int:
        """The global position of this rank's next index in ``state``'s epoch (``num_samples`` when done).

        ``state`` defaults to :meth:`state_dict`. Every position before the
        smallest of these over all ranks has been yielded by some rank (what
        :func:`~mixweave.sampling.gather_state` resumes from).
        """
        state = self.state_dict() if state is None else state
        offset, position = state["offset"], state["position"]
        if position >= self._count(offset):
            return self.num_samples
        return min(offset + self.rank + position * self.num_replicas, self.num_samples)

    def _fingerprint(self, epoch: int) -> dict[str, Any]:
        """The settings that decide ``epoch``'s plan: a saved state must match them (subclasses add theirs)."""
        return {
            "seed": self.seed,
            "num_samples": self.num_samples,
            "drop_last": self.drop_last,
            "increment_seed_per_epoch": self.increment_seed_per_epoch,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state: where this rank is in which epoch, and the settings that decide the plan.

        Keys: ``epoch``, ``offset`` (the global position this epoch's iteration
        started from: 0 unless it was resumed), ``position`` (indices this rank
        has yielded since), ``num_replicas`` and ``rank`` (where it was saved),
        and the plan's settings (``seed``, ``num_samples``, ... and subclasses'
        ``weights_crc32`` etc.). Right after an iteration ran to its end the
        state is that epoch with every index yielded (not the next epoch at 0;
        see NOTE [ Resume ]).
        """
        epoch, offset, position = self._epoch, self._offset, self._position()
        if self._live is not None or self._finished is not None:
            epoch, offset = self._running
        if self._finished is not None and self._live is None:
            position = self._count(offset)
        where = {"epoch": epoch, "offset": offset, "position": position}
        return {
            **where,
            "num_replicas": self.num_replicas,
            "rank": self.rank,
            **self._fingerprint(epoch),
            **self.extra_state(epoch),
        }

    def extra_state(self, epoch: int) -> dict[str, Any]:
        """What else a state of ``epoch`` must carry to reproduce its plan (JSON-able; none here).

        :class:`~mixweave.sampling.adaptive_sampler.AdaptiveSampler` adds the
        shares recorded for the epoch's segments. Code that assembles a state
        from an earlier one (a position counted by trained batches, say) adds
        these to it.
        """
        return {}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` saved on any rank of any number of ranks (NOTE [ Elastic resume ]).

        The next iteration yields exactly the rest of that epoch's global plan
        that this rank owns in the current world.

        Raises:
            ValueError: if a key is missing, or the state came from a sampler
                with different plan settings (the message names the key and both values).
        """
        if isinstance(state_dict, Mapping) and "epoch" in state_dict:
            epoch = check_int(state_dict["epoch"], "state_dict['epoch']", minimum=0)
        else:
            epoch = 0  # check_saved_settings reports the missing keys
        check_saved_settings(state_dict, self._fingerprint(epoch), "sampler", extra=self._STATE_KEYS, hints=_HINTS)
        saved = _SavedWorld.read(state_dict, self.num_samples, self.drop_last)
        self._epoch, self._live, self._finished = epoch, None, None
        if (saved.num_replicas, saved.rank) == (self.num_replicas, self.rank):  # the same place: exactly as saved
            self._offset, self._resume_position = saved.offset, saved.position
        else:  # another rank or world: everyone continues from one global position
            self._offset = self.num_samples if saved.complete else min(saved.resume_offset(), self.num_samples)
            self._resume_position = 0


_HINTS = {
    "weights_crc32": "the weights of the saved epoch differ: other data, alpha, composition mode, schedule or "
    "curriculum phase; restore a curriculum's state before the sampler's",
    "groups_crc32": "the group ids differ, and with them exact mode's quotas and interleave",
}


class _SavedWorld:
    """Where a saved state was in its own world of ranks; the global position everyone resumes from."""

    def __init__(self, num_replicas: int, rank: int, offset: int, position: int, count: int) -> None:
        self.num_replicas, self.rank, self.offset, self.position = num_replicas, rank, offset, position
        self.complete = position == count  # the saved rank had yielded all of its share of the epoch

    @classmethod
    def read(cls, state: Mapping[str, Any], num_samples: int, drop_last: bool) -> _SavedWorld:
        world = check_int(state.get("num_replicas", 1), "state_dict['num_replicas']", minimum=1)
        rank = check_int(state.get("rank", 0), "state_dict['rank']", minimum=0, maximum=world - 1)
        offset = check_int(state.get("offset", 0), "state_dict['offset']", minimum=0, maximum=num_samples)
        rest = num_samples - offset
        count = rest // world if drop_last else -(-rest // world)  # PlanSampler._count in the saved world
        position = check_int(state["position"], "state_dict['position']", minimum=0, maximum=count)
        return cls(world, rank, offset, position, count)

    def resume_offset(self) -> int:
        """Every global position before this one was yielded, if the ranks were in step (NOTE [ Elastic resume ])."""
        return self.offset + self.position * self.num_replicas
