"""The drawing engine: weights and a stream key ``(seed, epoch)`` in, indices out.

Random numbers come from the counter-based generator of :mod:`mixweave.core.rng`
(the number at position ``p`` is a hash of ``(key, p)``), so any position of a
plan can be computed without the ones before it.

Plans are a family chosen by name (:data:`MODES`, one registry, one dispatcher),
crossed with ``replacement``:

* ``random`` with replacement -- i.i.d. draws, ``P(i) = w[i] / sum(w)``,
  computed position by position (O(1) per index after an O(N) table build);
* ``random`` without replacement -- a weighted random permutation
  (Efraimidis--Spirakis keys), truncated to ``num_samples``;
* ``exact`` -- per-group quotas by largest remainder, interleaved so that every
  prefix of the plan is within one sample of each group's target share
  (earliest-deadline-first on the quota schedule), with draws by weight inside
  each group; with replacement also computed position by position, from the
  period of the interleave.

Example:
    >>> import numpy as np
    >>> from mixweave.core.draw import DrawEngine
    >>> from mixweave.core.rng import derive_key
    >>> engine = DrawEngine(np.array([0.0, 1.0, 3.0]))
    >>> plan = engine.plan(derive_key(0, 0), 8)
    >>> bool((plan > 0).all())    # index 0 has weight zero and is never drawn
    True
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

import numpy as np

from .._validation import check_choice, check_int, check_weights, dispatch, outside_stacklevel, warn
from ._groups import grouped
from .names import MODES
from .rng import derive_key, per_pass, uniform
from .weights import scaled

__all__ = [
    "MODES",
    "CategoricalTable",
    "DrawEngine",
    "interleave",
    "largest_remainder",
    "weighted_permutation",
]

_CHUNK: Final = 1 << 16  # elements per vectorised step: temporaries stay small and in cache


class CategoricalTable:
    """A weight vector prepared for O(1) expected-time inverse-CDF draws.

    Holds the cumulative sums and a guide table (Chen & Asau, 1974) of ``N``
    buckets: bucket ``b`` stores the first index whose cumulative weight
    exceeds ``b/N`` of the total, so a draw starts there and walks forward a
    step or two on average. Memory: 12--16 bytes per weight. Unlike
    ``torch.multinomial`` there is no 2**24 limit on the number of categories.

    Args:
        weights: 1-D finite non-negative weights, not all zero.
    """

    def __init__(self, weights: Any) -> None:
        w = scaled(check_weights(weights))  # exact rescaling: no overflowing sum, no subnormal steps
        self.size: int = int(w.shape[0])
        self._cdf = np.cumsum(w)
        self._total = float(self._cdf[-1])
        self._top = np.nextafter(self._total, 0.0)
        self._guide = np.empty(self.size, dtype=np.int32 if self.size < 2**31 else np.int64)
        # Bucket b's entry is the first index i with cdf[i] / total * N >= b: no
        # draw in bucket b can land before it. Index i fills buckets [e(i-1), e(i))
        # with e(i) = floor(cdf[i] / total * N) + 1, so the table fills chunk by
        # chunk without N-sized temporaries (fresh memory is what costs most).
        # The bounds are inflated by 1e-12 (relative) so that rounding can only
        # move an entry earlier, never past the answer: lookups then only walk
        # forward.
        start = 0
        for lo in range(0, self.size, _CHUNK):
            hi = min(lo + _CHUNK, self.size)
            bounds = self._cdf[lo:hi] / self._total  # divide first: subnormal totals overflow size/total
            bounds *= self.size * (1.0 + 1e-12)
            ends = np.minimum(np.floor(bounds).astype(np.int64) + 1, self.size)
            counts = np.diff(ends, prepend=start)
            stop = int(ends[-1])
            self._guide[start:stop] = np.repeat(np.arange(lo, hi), counts)
            start = stop
        # every entry is an index below size: the last bound is size * (1 + 1e-12), so the last chunk fills the table

    def sample(self, u: np.ndarray) -> np.ndarray:
        """Map uniforms ``u`` in ``[0, 1)`` to indices with ``P(i) = w[i] / sum(w)``.

        The result is the first index whose cumulative weight exceeds
        ``u * total``; zero-weight indices are never returned.
        """
        u = np.asarray(u, dtype=np.float64)
        x = np.minimum(u * self._total, self._top)
        bucket = np.minimum((u * self.size).astype(np.intp), self.size - 1)
        idx = self._guide[bucket].astype(np.intp)
        # The guide entry is at or before the answer: walk forward to the first
        # cumulative weight above x (one or two steps on average).
        ahead = np.flatnonzero(self._cdf[idx] <= x)
        while ahead.size:
            idx[ahead] += 1
            ahead = ahead[self._cdf[idx[ahead]] <= x[ahead]]
        return idx


def weighted_permutation(weights: Any, key: int, k: int | None = None) -> np.ndarray:
    """Weighted sampling without replacement: the first ``k`` of a weighted permutation.

    Uses Efraimidis--Spirakis keys ``E_i / w_i`` with ``E_i`` exponential, the
    same law as ``torch.multinomial(..., replacement=False)``: the first index
    is ``i`` with probability ``w[i] / sum(w)``, the next is drawn likewise
    from the rest, and so on. Zero-weight indices never appear.

    Args:
        weights: 1-D finite non-negative weights, not all zero.
        key: stream key.
        k: how many indices; default all indices with positive weight.

    Raises:
        ValueError: if ``k`` exceeds the number of positive weights.
    """
    w = check_weights(weights)
    positive = None if w.all() else np.flatnonzero(w > 0)
    m = w.shape[0] if positive is None else positive.shape[0]
    k = m if k is None else check_int(k, "k", minimum=0)
    if k > m:
        raise ValueError(f"cannot draw {k} indices without replacement: only {m} weights are positive")
    # score = log(E / w) with E ~ exponential(1): ascending order is draw order.
    # Log space cannot overflow for tiny weights; chunks keep temporaries small.
    score = np.empty(m, dtype=np.float64)
    for lo in range(0, m, _CHUNK):
        hi = min(lo + _CHUNK, m)
        ids = np.arange(lo, hi) if positive is None else positive[lo:hi]
        part = -np.log1p(-uniform(key, ids))
        with np.errstate(divide="ignore"):
            np.log(part, out=part)
        part -= np.log(w[ids])
        score[lo:hi] = part
    if 4 * k < m:
        head = np.argpartition(score, k)[:k] if k else np.empty(0, dtype=np.intp)
        order = head[np.argsort(score[head], kind="stable")]
    else:
        order = np.argsort(score)[:k]
    return order if positive is None else positive[order]


def largest_remainder(shares: Any, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``shares`` (Hamilton's method).

    Each count is ``floor`` or ``ceil`` of its exact quota; the leftover units
    go to the largest fractional parts, ties to the lower index.

    Example:
        >>> largest_remainder([0.5, 0.3, 0.2], 7).tolist()
        [4, 2, 1]
    """
    p = check_weights(shares, "shares")
    total = check_int(total, "total", minimum=0)
    exact = p / p.sum() * total
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    if short > 0:
        # Remainders equal in exact arithmetic can differ in the last bits (16*51/42 and 2*51/42 both
        # leave 18/42): compare them on a grid coarser than that error (about total * 2**-51), 2**-32
        # for totals below 2**14, so such ties go to the lower index, as documented.
        bits = max(8, min(32, 46 - total.bit_length()))
        remainders = np.round((exact - counts) * 2.0**bits)
        counts[np.argsort(-remainders, kind="stable")[:short]] += 1
    return counts


#: Groups up to which the deadline order is counted in closed form (G passes per group); more go to the walk.
_MAX_COUNTED_GROUPS: Final = 64
#: The walk stops where the deadline order takes over only if the next late job is this many slots away or more.
_WALK_GAP: Final = 64
#: With more than one late slot in _LATE_SHARE the walk ends up covering nearly the whole period (measured on
#: skewed quotas), so it walks all of it without comparing against the deadline order, which is faster.
_LATE_SHARE: Final = 16


@lru_cache(maxsize=4)
def _interleave_period(counts: tuple[int, ...]) -> np.ndarray:
    """Earliest-deadline-first schedule of unit jobs; see :func:`interleave`.

    Job ``c`` of group ``g`` is released at slot ``ceil(c*n/q_g) - 1`` and due
    before ``(c+1)*n/q_g``. Tijdeman (1980) shows this schedule exists and
    keeps every prefix within one unit of ``m * q_g / n``.

    NOTE [ EDF in numpy ]: while the job that comes next in deadline order is
    already released at its slot, EDF schedules exactly that job. So the
    schedule is the deadline order (counted in closed form for every job at
    once, :func:`_deadline_order`) except where a job there comes before its
    release. From each such slot the walk (:func:`_edf_walk`) runs one slot
    at a time until the jobs it has scheduled are again the first ones of the
    deadline order; from there the deadline order holds up to the next such
    slot. Balanced quotas have none, so no Python runs per slot; in the worst
    case the walk covers the whole period, as it always did. The result is
    cached per quota vector.
    """
    n = sum(counts)
    out, late = _deadline_order(counts)
    if out is None or late.size * _LATE_SHARE > n:  # too many groups, or late jobs all over: walk it all
        out = np.empty(n, dtype=np.int32)
        _edf_walk(counts, [0] * len(counts), 0, out, None, deque())
        return out
    done = np.zeros(len(counts), dtype=np.int64)
    reached = 0  # out[:reached] is final; done counts its jobs per group
    pending = deque(late.tolist())
    while pending:
        slot = pending[0]
        done += np.bincount(out[reached:slot], minlength=len(counts))
        walked = done.tolist()
        reached = _edf_walk(counts, walked, slot, out, out, pending)
        done[:] = walked
    return out


def _deadline_order(counts: tuple[int, ...]) -> tuple[np.ndarray | None, np.ndarray]:
    """Every job in order of EDF priority, as a group id per slot, and the slots whose job is not yet released there.

    Priority is the deadline ``(c+1)/q_g``, then the release ``c/q_g``, then
    ``g`` (the walk's order). Job ``c`` of ``g`` lands at slot ``c + sum over
    other groups h of the jobs of h before it``: those due strictly earlier,
    ``floor(((c+1)*q_h - 1) / q_g)``, and the one due at the same time if its
    release is earlier (``q_h < q_g``, or equal quotas and ``h < g``). Exact
    integer arithmetic; returns ``(None, ...)`` when the counts are too many
    or too large for it.
    """
    q = np.asarray(counts, dtype=np.int64)
    n = int(q.sum())
    if q.size > _MAX_COUNTED_GROUPS or n > 3 * 10**9:  # keep (c+1) * q_h and c * n within int64
        return None, np.empty(0, dtype=np.int64)
    out = np.empty(n, dtype=np.int32)
    late = []
    for g in np.flatnonzero(q).tolist():
        qg = int(q[g])
        others = [
            (int(q[h]), int(q[h]) < qg or (int(q[h]) == qg and h < g)) for h in np.flatnonzero(q).tolist() if h != g
        ]
        for lo in range(0, qg, _CHUNK):
            c = np.arange(lo, min(lo + _CHUNK, qg), dtype=np.int64)
            slot = c.copy()
            for qh, first_on_ties in others:
                due = (c + 1) * qh
                slot += (due - 1) // qg
                if first_on_ties:
                    slot += due % qg == 0
            release = -((-c * n) // qg) - 1
            late.append(slot[release > slot])
            out[slot] = g
    return out, np.sort(np.concatenate(late)) if late else np.empty(0, dtype=np.int64)


def _edf_walk(
    counts: tuple[int, ...], done: list[int], slot: int, out: np.ndarray, order: np.ndarray | None, late: deque[int]
) -> int:
    """Walk the EDF schedule slot by slot from ``slot``, with ``done[g]`` jobs of each group already scheduled.

    Writes ``out[slot:]`` and updates ``done``. With ``order`` (the deadline
    order, which may be ``out`` itself: each slot is read before it is
    written) and ``late`` (the ascending slots where it schedules a job
    before its release; consumed as the walk passes them), stops at the first
    slot where the scheduled jobs are again the first ones of ``order`` and
    the next late slot is at least ``_WALK_GAP`` away, and returns it;
    otherwise walks to the end (NOTE [ EDF in numpy ]).
    """
    n = sum(counts)
    # Priority: earliest deadline, then earliest release (the job that has waited longest), then group id.
    ready: list[tuple[float, float, int]] = []
    waiting: list[tuple[int, int]] = []
    for g, q in enumerate(counts):
        c = done[g]
        if c < q:
            release = -(-c * n // q) - 1
            if release <= slot:
                ready.append(((c + 1) / q, c / q, g))
            else:
                waiting.append((release, g))
    heapq.heapify(ready)
    heapq.heapify(waiting)
    ahead = list(done)  # jobs of each group among the first slots of `order`
    differ = 0  # groups whose count in the walk differs from theirs in `order`
    while slot < n:
        while waiting and waiting[0][0] <= slot:
            _, g = heapq.heappop(waiting)
            heapq.heappush(ready, ((done[g] + 1) / counts[g], done[g] / counts[g], g))
        if not ready:  # cannot happen for a feasible schedule; keep going in order of release
            _, g = heapq.heappop(waiting)
        else:
            _, _, g = heapq.heappop(ready)
        if order is not None:
            d = int(order[slot])
            if d != g:
                differ += (done[g] == ahead[g]) - (done[g] + 1 == ahead[g])
                differ += (ahead[d] == done[d]) - (ahead[d] + 1 == done[d])
            ahead[d] += 1
        out[slot] = g
        done[g] += 1
        c, q = done[g], counts[g]
        if c < q:
            release = -(-c * n // q) - 1
            if release <= slot + 1:
                heapq.heappush(ready, ((c + 1) / q, c / q, g))
            else:
                heapq.heappush(waiting, (release, g))
        slot += 1
        if order is not None and differ == 0:
            while late and late[0] < slot:
                late.popleft()
            if not late or late[0] - slot >= _WALK_GAP:
                return slot
    late.clear()
    return slot


def interleave(counts: Any) -> np.ndarray:
    """A group id per position such that group ``g`` appears ``counts[g]`` times, spread evenly.

    Every prefix of length ``m`` holds group ``g`` within one unit of
    ``m * counts[g] / sum(counts)`` (low discrepancy). The pattern of the
    reduced quotas (divided by their gcd) is computed once and tiled.

    Example:
        >>> interleave([2, 1, 1]).tolist()
        [0, 1, 2, 0]
    """
    q = np.asarray(counts, dtype=np.int64)
    if q.ndim != 1 or q.size == 0 or (q < 0).any():
        raise ValueError(f"`counts` must be a non-empty 1-D array of non-negative ints, got {counts!r}")
    if q.sum() == 0:
        return np.empty(0, dtype=np.int32)
    g = math.gcd(*q.tolist())
    period = _interleave_period(tuple(int(x) for x in q // g))
    return np.tile(period, g)


@lru_cache(maxsize=2)
def _period_slots(counts: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """The slots of each group in the interleave period of ``counts``, ascending."""
    return tuple(grouped(_interleave_period(counts), len(counts)))


@lru_cache(maxsize=2)
def _period_ranks(counts: tuple[int, ...]) -> np.ndarray:
    """For each slot of the interleave period of ``counts``, how many slots of its group come before it."""
    slots_of = _period_slots(counts)
    size = sum(counts)
    ranks = np.empty(size, dtype=np.int32 if size < 2**31 else np.int64)
    for slots in slots_of:
        ranks[slots] = np.arange(slots.size)
    return ranks


def _slots_in_plan(counts: np.ndarray) -> list[np.ndarray]:
    """The positions of each group in ``interleave(counts)``, ascending, without building the interleave."""
    tiles = math.gcd(*counts.tolist())
    reduced = tuple(int(x) for x in counts // tiles)
    period = sum(reduced)
    starts = np.arange(tiles, dtype=np.int64)[:, None] * period
    return [(starts + slots).ravel() if tiles > 1 else slots for slots in _period_slots(reduced)]


def _arange(lo: int, hi: int) -> np.ndarray:
    return np.arange(lo, hi, dtype=np.int64)


def _draws(table: CategoricalTable, key: int, size: int, positions_of: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """Draws of ``table`` at ``size`` positions of stream ``key``, ``_CHUNK`` at a time; ``positions_of(lo, hi)``
    gives them.

    In cache-sized chunks the temporaries (hashes, uniforms, walk masks) stay
    small, so a whole plan costs what iterating the same epoch costs, without the ints.
    """
    out = np.empty(size, dtype=np.intp)
    for lo in range(0, size, _CHUNK):
        hi = min(lo + _CHUNK, size)
        out[lo:hi] = table.sample(uniform(key, positions_of(lo, hi)))
    return out


def _random_plan(engine: DrawEngine, key: int, num_samples: int) -> np.ndarray:
    """A weighted permutation truncated to ``num_samples`` (the without-replacement random plan)."""
    return weighted_permutation(engine.weights, key, num_samples)


def _permutation_of(w: np.ndarray) -> Callable[[int, np.ndarray], np.ndarray]:
    """``(key, offsets) -> items`` of a weighted permutation of ``w`` (one pass of :func:`~.rng.per_pass`)."""

    def take(key: int, offsets: np.ndarray) -> np.ndarray:
        return weighted_permutation(w, key)[offsets]

    return take


def _exact_plan(engine: DrawEngine, key: int, num_samples: int) -> np.ndarray:
    """Group quotas by largest remainder, interleaved; draws by weight inside each group.

    The whole plan at once: with replacement it has the values that
    :meth:`DrawEngine._exact_draws` gives position by position, built from one
    grouping of the interleave instead of one per chunk.
    """
    groups = engine.groups
    assert groups is not None  # DrawEngine checks it for mode="exact"
    prepared = engine._groups_prepared()
    out = np.empty(num_samples, dtype=np.int64)
    if not num_samples:
        return out
    for g, slots in enumerate(_slots_in_plan(largest_remainder(engine.group_mass, num_samples))):
        if not slots.size:
            continue
        members, table = prepared[g]
        assert table is not None  # a group with no weight has no slots
        if engine.replacement:
            picks = _draws(table, derive_key(key, g), slots.size, _arange)
        else:  # cycle through the group: a fresh weighted permutation per full pass
            w = engine.weights[members]
            picks = per_pass(derive_key(key, g), int(np.count_nonzero(w)), _arange(0, slots.size), _permutation_of(w))
        out[slots] = members[picks]
    return out


#: Whole-plan builders by mode name (random mode with replacement is only ever computed per position).
_PLANS: Final[dict[str, Callable[[DrawEngine, int, int], np.ndarray]]] = dict(
    zip(MODES, (_random_plan, _exact_plan), strict=True)
)


class DrawEngine:
    """Turns one weight vector into epoch plans for a stream key.

    Args:
        weights: 1-D finite non-negative weights, not all zero.
        replacement: draw with replacement (default) or without.
        mode: ``"random"`` or ``"exact"`` (see module docs).
        groups: integer group id per sample; required by ``mode="exact"``,
            whose quotas are the groups' shares of the weight.

    The plan for ``(key, num_samples)`` is a virtual array of length
    ``num_samples``; :meth:`indices` returns any positions of it. With
    replacement each position is computed on its own (in exact mode after an
    O(N) layout of the quota pattern, kept for later epochs); without
    replacement the plan is built once per key and cached.
    """

    def __init__(self, weights: Any, *, replacement: bool = True, mode: str = "random", groups: Any = None) -> None:
        self.weights = check_weights(weights)
        self.replacement = bool(replacement)
        self.mode = check_choice(mode, "mode", MODES)
        self.num_positive = int(np.count_nonzero(self.weights))
        self._table: CategoricalTable | None = None
        self._cached: tuple[int, int, np.ndarray] | None = None
        self._group_tables: list[tuple[np.ndarray, CategoricalTable | None]] | None = None
        self._layout: tuple[int, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._mass: np.ndarray | None = None
        #: The weights' fingerprint, filled in by the first sampler that needs it (see core.weights.fingerprint).
        self.crc32: int | None = None
        self.groups: np.ndarray | None = None
        if groups is not None:
            ids = np.asarray(groups)
            if ids.shape != self.weights.shape or not np.issubdtype(ids.dtype, np.integer):
                raise ValueError(
                    f"`groups` must be non-negative integer ids of shape {self.weights.shape}, "
                    f"got dtype {ids.dtype} and shape {ids.shape}"
                )
            low, high = int(ids.min()), int(ids.max())  # the weights' shape: never empty
            if low < 0 or high >= 2**62:
                bad = int(np.flatnonzero(ids < 0)[0]) if low < 0 else int(np.argmax(ids))
                raise ValueError(
                    f"`groups` must be non-negative integer ids below 2**62, got {ids[bad]} at index {bad}"
                )
            if high >= 2 * ids.size + 1024:
                warn(
                    f"`groups` ids reach {high} for {ids.size} samples: memory and time grow with the largest id "
                    "(an array per possible group); number the groups 0..G-1, e.g. with "
                    "np.unique(groups, return_inverse=True)[1]",
                    stacklevel=outside_stacklevel() + 1,  # + 1: warn's own frame
                )
            self.groups = ids.astype(np.intp)
        if self.mode == "exact" and self.groups is None:
            raise ValueError("`mode='exact'` needs `groups` (the group id of each sample) to set quotas for")

    @property
    def random_access(self) -> bool:
        """True when each position is computed independently (with replacement, in either mode)."""
        return self.replacement

    def max_samples(self) -> int | None:
        """The largest plan length this engine can produce (None when unbounded)."""
        if self.replacement:
            return None
        if self.mode == "random":
            return self.num_positive
        return None  # exact mode cycles through each group without replacement

    def indices(self, key: int, positions: np.ndarray, num_samples: int) -> np.ndarray:
        """Indices at ``positions`` (each in ``[0, num_samples)``) of the plan for ``key``."""
        pos = np.asarray(positions)
        # Exact mode builds the whole plan in one go (cached per key) when asked for all of it, or when there are
        # so many groups that a Python step per group and chunk would cost more than the whole plan once.
        by_position = self.mode == "random" or (pos.size < num_samples and self.group_mass.size <= _MAX_COUNTED_GROUPS)
        if self.random_access and by_position:
            flat = pos.reshape(-1)
            return self._position_draws(key, flat.size, lambda lo, hi: flat[lo:hi], num_samples).reshape(pos.shape)
        return self.plan(key, num_samples)[pos]

    def _position_draws(
        self, key: int, size: int, positions_of: Callable[[int, int], np.ndarray], num_samples: int
    ) -> np.ndarray:
        """Draws at ``size`` positions, ``_CHUNK`` at a time; ``positions_of(lo, hi)`` gives them."""
        if self.mode == "random":
            if self._table is None:
                self._table = CategoricalTable(self.weights)
            return _draws(self._table, key, size, positions_of)
        return self._exact_draws(key, size, positions_of, num_samples)

    def _exact_draws(
        self, key: int, size: int, positions_of: Callable[[int, int], np.ndarray], num_samples: int
    ) -> np.ndarray:
        """Exact mode with replacement, position by position.

        Position ``p`` belongs to the group at slot ``p`` of the interleave (its
        period, tiled), and takes draw number ``k`` of that group's stream,
        where ``k`` counts the group's slots before ``p``. So a rank computes
        only its own positions, as in random mode, and every position has the
        value it has in the whole plan.
        """
        out = np.empty(size, dtype=np.intp)
        if not size:
            return out
        groups = self._groups_prepared()
        period, ranks, reduced = self._exact_layout(num_samples)
        streams = [derive_key(key, g) for g in range(len(groups))]  # at most 64 groups go by position
        for lo in range(0, size, _CHUNK):
            hi = min(lo + _CHUNK, size)
            if period.size == num_samples:  # one period: positions are its slots
                slots = positions_of(lo, hi)
                at = period[slots]
                k = ranks[slots]
            else:
                tiles, slots = np.divmod(positions_of(lo, hi), period.size)
                at = period[slots]
                k = tiles * reduced[at] + ranks[slots]
            chunk = out[lo:hi]
            for g, where in enumerate(grouped(at, len(groups))):
                if where.size:
                    members, table = groups[g]
                    assert table is not None  # a group with no weight has no slots
                    chunk[where] = members[table.sample(uniform(streams[g], k[where]))]
        return out

    @property
    def group_mass(self) -> np.ndarray:
        """The total weight of each group (exact mode's quotas are its shares)."""
        if self._mass is None:
            assert self.groups is not None  # checked for mode="exact"
            self._mass = np.bincount(self.groups, weights=self.weights)
        return self._mass

    def _groups_prepared(self) -> list[tuple[np.ndarray, CategoricalTable | None]]:
        """Each group's members and their draw table (None for a group with no weight); built once."""
        if self._group_tables is None:
            assert self.groups is not None  # checked for mode="exact"
            self._group_tables = []
            for members in grouped(self.groups, self.group_mass.size):
                w = self.weights[members]
                self._group_tables.append((members, CategoricalTable(w) if members.size and w.any() else None))
        return self._group_tables

    def _exact_layout(self, num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The interleave's period for ``num_samples``, each period slot's rank in its group, the reduced quotas."""
        if self._layout is None or self._layout[0] != num_samples:
            assert self.groups is not None
            quotas = largest_remainder(self.group_mass, num_samples)
            reduced = tuple(int(x) for x in quotas // math.gcd(*quotas.tolist()))
            self._layout = (
                num_samples,
                _interleave_period(reduced),
                _period_ranks(reduced),
                np.array(reduced, dtype=np.int64),
            )
        return self._layout[1:]

    def plan(self, key: int, num_samples: int) -> np.ndarray:
        """The whole plan of length ``num_samples`` for ``key`` (int64 indices).

        Built once per key and cached, except in random mode with replacement,
        which draws it chunk by chunk each time.
        """
        if self.mode == "random" and self.replacement:  # without an N-sized array of positions
            return self._position_draws(key, num_samples, _arange, num_samples).astype(np.int64, copy=False)
        if self._cached is not None and self._cached[:2] == (key, num_samples):
            return self._cached[2]
        plan = dispatch(_PLANS, self.mode, "mode")(self, key, num_samples).astype(np.int64, copy=False)
        self._cached = (key, num_samples, plan)
        return plan
