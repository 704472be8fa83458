"""``AdaptiveSampler``: each segment of an epoch drawn with the shares of an :class:`AdaptiveMixture` in force.

NOTE [ Segments ]
    The epoch's global plan is cut into segments of ``segment_size``
    positions. When iteration reaches the first position of segment ``s``
    the sampler reads the mixture's shares and records them as
    ``(epoch, s) -> shares`` (the *share log*). Position ``p`` of segment
    ``s`` is then drawn hierarchically: a group from the recorded shares of
    ``s``, then a sample inside that group in proportion to ``within``, from
    two counter-based uniforms of ``(seed, epoch, p)``. The indices are thus
    a pure function of ``(seed, epoch, position, share log)``: loading a run's
    share log (:meth:`AdaptiveSampler.load_share_log`) replays its indices
    exactly, without the model or the losses.

    Under ``W`` ranks, ``segment_size`` must be a multiple of ``W``: rank
    ``r``'s positions ``r, r + W, ...`` then cross into segment ``s`` at the
    same local position on every rank, so with equal batch sizes every rank
    reads the shares at the same training step and, holding the same shares
    (NOTE [ Adaptive mixing under torch.distributed ]), records the same
    ones. Make it a multiple of ``batch_size * W`` and the shares change
    between batches, never inside one. (After an elastic resume from another
    number of ranks the segments no longer align with batches until the next epoch.)

    :meth:`~mixweave.sampling.base.PlanSampler.plan` and ``global_plan``
    record nothing: segments already drawn come from the log, the others are
    a forecast with the shares in force now.

Example:
    >>> import numpy as np
    >>> from mixweave import AdaptiveMixture
    >>> groups = np.repeat([0, 1], [90, 10])
    >>> mixture = AdaptiveMixture(2)
    >>> sampler = AdaptiveSampler(mixture, groups, num_samples=40, segment_size=20, seed=0)
    >>> first = list(sampler)       # two segments, both drawn with the initial shares (0.5, 0.5)
    >>> sorted(sampler.share_log(0))
    [0, 1]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import numpy as np

from .._validation import as_numpy, check_int, check_weights, show
from ..core.rng import uniform
from ..core.weights import fingerprint
from .adaptive import AdaptiveMixture, _log_entries, _read_log
from .base import PlanSampler

__all__ = ["AdaptiveSampler"]


class AdaptiveSampler(PlanSampler):
    """Draw group shares from an :class:`AdaptiveMixture` segment by segment; samples by ``within`` inside groups.

    Args:
        mixture: the :class:`AdaptiveMixture` whose shares the segments use.
        groups: integer group id per sample, shape ``(N,)``, ids in ``[0, K)``;
            every group needs a sample with positive ``within`` weight.
        num_samples: indices per epoch across all ranks (default ``N``).
        segment_size: global positions per segment (default ``1024 * num_replicas``);
            a multiple of ``num_replicas`` (see NOTE [ Segments ]).
        within: optional non-negative per-sample factor applied inside each
            group (class balance inside sources, say); uniform when omitted.
        seed, num_replicas, rank, drop_last: as for
            :class:`~mixweave.sampling.weighted.WeightedSampler`. Draws are
            with replacement.

    Raises:
        ValueError: for groups outside ``[0, K)``, a group with no drawable
            sample, a ``segment_size`` that is not a positive multiple of
            ``num_replicas``, or ``within`` of another length.
    """

    _STATE_KEYS: ClassVar[tuple[str, ...]] = (*PlanSampler._STATE_KEYS, "share_log")

    def __init__(
        self,
        mixture: AdaptiveMixture,
        groups: Any,
        num_samples: int | None = None,
        *,
        segment_size: int | None = None,
        within: Any = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if not isinstance(mixture, AdaptiveMixture):
            raise TypeError(f"`mixture` must be an AdaptiveMixture, got {type(mixture).__name__}")
        self.mixture = mixture
        ids = np.asarray(as_numpy(groups))
        k = mixture.num_groups
        if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(f"`groups` must be a non-empty 1-D array of integer ids, got {show(groups)}")
        if ids.min() < 0 or ids.max() >= k:
            raise ValueError(f"`groups` must hold ids in [0, {k}) (the mixture's groups), got {show(ids.tolist())}")
        inner = np.ones(ids.shape[0]) if within is None else check_weights(within, "within", allow_all_zero=True)
        if inner.shape != ids.shape:
            raise ValueError(f"`within` must have one weight per sample ({ids.shape[0]}), got shape {inner.shape}")
        # Samples sorted by group; one cumulative sum over them: the draw inside group g inverts
        # its block [start[g], end[g]) of the cumulative weights.
        self._members = np.argsort(ids, kind="stable")
        self._cdf = np.cumsum(inner[self._members])
        ends = np.cumsum(np.bincount(ids, minlength=k))
        starts = ends - np.bincount(ids, minlength=k)
        base = np.concatenate([[0.0], self._cdf])
        self._mass_start = base[starts]
        self._mass = base[ends] - base[starts]
        empty = np.flatnonzero(self._mass <= 0)
        if empty.size:
            raise ValueError(
                f"group {int(empty[0])} has no sample with positive weight in `groups`/`within`; every group of the "
                "mixture keeps at least its floor share, so each needs a drawable sample"
            )
        positive = np.flatnonzero(inner[self._members] > 0)  # the last drawable slot of each block
        self._last = positive[np.searchsorted(positive, ends, side="left") - 1]
        self._first = starts
        self.num_weights = int(ids.shape[0])
        self._crc = fingerprint(np.concatenate([ids.astype(np.float64), inner]))
        super().__init__(
            self.num_weights if num_samples is None else num_samples,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            drop_last=drop_last,
        )
        default = 1024 * self.num_replicas
        self.segment_size = check_int(default if segment_size is None else segment_size, "segment_size", minimum=1)
        if self.segment_size % self.num_replicas:
            raise ValueError(
                f"`segment_size` ({self.segment_size}) must be a multiple of num_replicas ({self.num_replicas}), "
                "so every rank reads new shares at the same step; a multiple of batch_size * num_replicas is best"
            )
        #: Callables ``hook(sampler, epoch, segment, shares)`` run when a segment's shares are recorded.
        self.segment_hooks: list[Callable[[AdaptiveSampler, int, int, np.ndarray], None]] = []

    # ------------------------------------------------------------- share log
    def share_log(self, epoch: int | None = None) -> dict[int, np.ndarray]:
        """The shares recorded for each segment of ``epoch`` (default the current one): ``{segment: shares}``."""
        epoch = self._epoch if epoch is None else check_int(epoch, "epoch", minimum=0)
        return {s: p.copy() for s, p in self.mixture.segment_log.get(epoch, {}).items()}

    def share_log_entries(self) -> list[dict[str, Any]]:
        """Every recorded segment as JSON-able ``{"epoch", "segment", "shares"}`` entries, in order."""
        return _log_entries(self.mixture.segment_log)

    def load_share_log(self, entries: Any) -> None:
        """Record the shares of a run's log (:meth:`share_log_entries`), so its segments are drawn exactly again.

        Every entry is checked before any is recorded.

        Raises:
            ValueError: for an entry without ``epoch``/``segment`` (ints >= 0) or ``shares`` of the right length.
        """
        for epoch, segments in _read_log(entries, self.mixture.num_groups).items():
            self.mixture.segment_log.setdefault(epoch, {}).update(segments)

    def _shares(self, epoch: int, segments: np.ndarray, record: bool) -> np.ndarray:
        """Shares per segment in ``segments``: the log's, else the mixture's now (recorded when ``record``)."""
        log = self.mixture.segment_log.get(epoch, {})
        rows = []
        for s in segments.tolist():
            shares = log.get(s)
            if shares is None:
                if not record:
                    shares = self.mixture.probabilities()
                else:
                    shares = self.mixture.record_segment(epoch, s)
                    for hook in self.segment_hooks:
                        hook(self, epoch, s, shares)
            rows.append(shares)
        return np.stack(rows)

    # ----------------------------------------------------------------- draws
    def _draw(self, epoch: int, positions: np.ndarray, record: bool) -> np.ndarray:
        segment = positions // self.segment_size
        segments, which = np.unique(segment, return_inverse=True)
        shares = self._shares(epoch, segments, record)
        k = shares.shape[1]
        # Group choice by inverse CDF, all segments at once: row j's cumulative shares are offset by j.
        cum = np.cumsum(shares, axis=1)
        cum[:, -1] = 1.0
        cum += np.arange(segments.shape[0])[:, None]
        key = self._key(epoch)
        u_group = uniform(key, 2 * positions)
        u_inner = uniform(key, 2 * positions + 1)
        group = np.searchsorted(cum.ravel(), u_group + which, side="right") - which * k
        np.clip(group, 0, k - 1, out=group)
        # Inside the group: invert its block of the cumulative `within` weights.
        x = self._mass_start[group] + u_inner * self._mass[group]
        slot = np.searchsorted(self._cdf, x, side="right")
        np.clip(slot, self._first[group], self._last[group], out=slot)
        return self._members[slot]

    def weights_at(self, epoch: int) -> np.ndarray:
        """Per-sample probabilities of ``epoch``'s first segment (recorded, else the shares now); nothing drawn.

        Later segments may differ: this is what a report of the epoch can ask for ahead of training.
        """
        epoch = check_int(epoch, "epoch", minimum=0)
        shares = self._shares(epoch, np.zeros(1, dtype=np.int64), record=False)[0]
        slot_group = np.repeat(np.arange(shares.shape[0]), np.diff(np.append(self._first, self.num_weights)))
        inner = np.diff(self._cdf, prepend=0.0)
        out = np.empty(self.num_weights)
        out[self._members] = inner * (shares / self._mass)[slot_group]
        return out

    def _plan_indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        return self._draw(epoch, positions, record=False)

    def _chunks(self, epoch: int, offset: int, start: int, stop: int) -> Iterator[Iterator[int]]:
        # Chunks end at segment boundaries: a segment's shares are read when its first index is asked for.
        lo = start
        while lo < stop:
            first = offset + self.rank + lo * self.num_replicas
            if first < self.num_samples:
                boundary = (first // self.segment_size + 1) * self.segment_size
                hi = min(stop, lo + self.chunk_size, lo - (-(boundary - first) // self.num_replicas))
            else:  # the padding wraps to the plan's start, whose segments are recorded already
                hi = min(stop, lo + self.chunk_size)
            positions = self._global_positions(lo, hi, offset)
            chunk = iter(self._draw(epoch, positions, record=True).tolist())
            self._live = (hi, chunk)
            yield chunk
            lo = hi
        self._live = None
        self._advance(epoch)

    # ---------------------------------------------------------------- resume
    def _fingerprint(self, epoch: int) -> dict[str, Any]:
        return {
            **super()._fingerprint(epoch),
            "segment_size": self.segment_size,
            "num_groups": self.mixture.num_groups,
            "num_weights": self.num_weights,
            "groups_within_crc32": self._crc,
        }

    def extra_state(self, epoch: int) -> dict[str, Any]:
        """``share_log``: the shares recorded for ``epoch``'s segments, ``{"segment": shares}``."""
        log = self.mixture.segment_log.get(epoch, {})
        return {"share_log": {str(s): p.tolist() for s, p in sorted(log.items())}}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`; the saved epoch's recorded segments are drawn with their saved shares.

        The share log is checked before anything changes.
        """
        saved = state_dict.get("share_log") if isinstance(state_dict, Mapping) else None
        if saved is not None and not isinstance(saved, Mapping):
            raise ValueError(f"`state_dict['share_log']` must map segments to shares, got {show(saved)}")
        epoch = state_dict.get("epoch") if isinstance(state_dict, Mapping) else None
        entries = [{"epoch": epoch, "segment": _segment(s), "shares": p} for s, p in (saved or {}).items()]
        log = _read_log(entries, self.mixture.num_groups) if entries else {}
        super().load_state_dict(state_dict)
        for e, segments in log.items():
            self.mixture.segment_log.setdefault(e, {}).update(segments)

    def forget(self, before_epoch: int) -> None:
        """Drop the recorded shares of the epochs before ``before_epoch`` (memory for very long runs)."""
        for epoch in [e for e in self.mixture.segment_log if e < before_epoch]:
            del self.mixture.segment_log[epoch]


def _segment(key: Any) -> Any:
    """A share-log key of a saved state as an int (JSON makes the segment numbers strings)."""
    return int(key) if isinstance(key, str) and key.isdigit() else key
