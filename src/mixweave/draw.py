"""The drawing engine: weights and a key ``(seed, epoch)`` in, indices out.

Randomness is *counter-based*: the uniform number used at position ``p`` of an
epoch is a hash of ``(key, p)`` (SplitMix64's finaliser), so any position can
be computed without the positions before it. That is what makes rank sharding
(each rank computes only its own positions) and resumption (start at position
``p``) cost nothing extra. No global random state is read or written, ever.

Three kinds of plan, chosen by ``mode`` and ``replacement`` (see
:data:`MODES`):

* ``random`` with replacement -- i.i.d. draws, ``P(i) = w[i] / sum(w)``,
  computed position by position (O(1) per index after an O(N) table build);
* ``random`` without replacement -- a weighted random permutation
  (Efraimidis--Spirakis keys), truncated to ``num_samples``;
* ``exact`` -- per-group quotas by largest remainder, interleaved so that every
  prefix of the plan is within one sample of each group's target share
  (earliest-deadline-first on the quota schedule), with draws by weight inside
  each group.

Example:
    >>> import numpy as np
    >>> from mixweave.draw import DrawEngine, derive_key
    >>> engine = DrawEngine(np.array([0.0, 1.0, 3.0]))
    >>> plan = engine.plan(derive_key(0, 0), 8)
    >>> bool((plan > 0).all())    # index 0 has weight zero and is never drawn
    True
"""

from __future__ import annotations

import heapq
import math
from functools import lru_cache
from typing import Any, Final, Literal

import numpy as np

from ._validation import check_choice, check_int, check_weights

__all__ = [
    "MODES",
    "CategoricalTable",
    "DrawEngine",
    "Mode",
    "derive_key",
    "interleave",
    "largest_remainder",
    "permute",
    "uniform",
    "weighted_permutation",
]

Mode = Literal["random", "exact"]
MODES: Final[tuple[str, ...]] = ("random", "exact")

_MASK: Final = (1 << 64) - 1
_GAMMA: Final = 0x9E3779B97F4A7C15
_M1: Final = 0xBF58476D1CE4E5B9
_M2: Final = 0x94D049BB133111EB
_U_GAMMA, _U_M1, _U_M2 = np.uint64(_GAMMA), np.uint64(_M1), np.uint64(_M2)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_CHUNK: Final = 1 << 16  # elements per vectorised step: temporaries stay small and in cache


def _mix_int(z: int) -> int:
    """SplitMix64 finaliser on one Python int."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def _mix_inplace(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on a uint64 array, in place (wrapping arithmetic)."""
    z ^= z >> _S30
    z *= _U_M1
    z ^= z >> _S27
    z *= _U_M2
    z ^= z >> _S31
    return z


def derive_key(seed: int, *words: int) -> int:
    """Derive a 64-bit stream key from a seed and further words (epoch, rank, group...).

    Distinct word sequences give unrelated streams; the same sequence always
    gives the same key, in any process.

    Example:
        >>> derive_key(0, 1) == derive_key(0, 1) != derive_key(0, 2)
        True
    """
    key = _mix_int(int(seed) + _GAMMA)
    for word in words:
        key = _mix_int(key ^ _mix_int(int(word) + 2 * _GAMMA))
    return key


def _hash(key: int, counters: np.ndarray) -> np.ndarray:
    z = np.asarray(counters).astype(np.uint64)
    z += np.uint64(1)
    z *= _U_GAMMA
    z += np.uint64(key & _MASK)
    return _mix_inplace(z)


def uniform(key: int, positions: Any) -> np.ndarray:
    """Uniform floats in ``[0, 1)`` for the given integer positions of stream ``key``.

    The value at a position depends only on ``(key, position)``: this is the
    counter-based generator behind every draw.

    Args:
        key: stream key, e.g. from :func:`derive_key`.
        positions: non-negative integer array of any shape.

    Returns:
        float64 array of the same shape, 53 random bits each.
    """
    z = _hash(key, positions)
    z >>= _S11
    return z.astype(np.float64) * (1.0 / (1 << 53))


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
        w = check_weights(weights)
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
        np.minimum(self._guide, self.size - 1, out=self._guide)

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


def _feistel(x: np.ndarray, half: int, round_keys: tuple[int, ...]) -> np.ndarray:
    mask = np.uint64((1 << half) - 1)
    shift = np.uint64(half)
    left, right = x >> shift, x & mask
    for rk in round_keys:
        left, right = right, left ^ (_hash(rk, right) & mask)
    return (left << shift) | right


def permute(key: int, n: int, positions: Any) -> np.ndarray:
    """Entries ``positions`` of a pseudo-random permutation of ``range(n)``.

    A keyed Feistel network with cycle walking: a bijection of ``range(n)``
    evaluated at any position in O(1), so drawing ``m`` items without
    replacement from a source of size ``n`` costs O(m), not O(n log n).

    Example:
        >>> sorted(permute(7, 5, np.arange(5)).tolist())
        [0, 1, 2, 3, 4]
    """
    n = check_int(n, "n", minimum=1)
    pos = np.asarray(positions, dtype=np.int64)
    if pos.size and (pos.min() < 0 or pos.max() >= n):
        raise ValueError(f"`positions` must lie in [0, {n}), got values in [{pos.min()}, {pos.max()}]")
    if n == 1:
        return np.zeros(pos.shape, dtype=np.int64)
    bits = max(2, (n - 1).bit_length())
    half = (bits + 1) // 2
    round_keys = tuple(derive_key(key, r) for r in range(6))
    out = _feistel(pos.astype(np.uint64).ravel(), half, round_keys)
    walking = np.flatnonzero(out >= n)
    while walking.size:  # cycle walking: the domain is < 4n, so few rounds
        out[walking] = _feistel(out[walking], half, round_keys)
        walking = walking[out[walking] >= n]
    return out.astype(np.int64).reshape(pos.shape)


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
        counts[np.argsort(-(exact - counts), kind="stable")[:short]] += 1
    return counts


@lru_cache(maxsize=64)
def _interleave_period(counts: tuple[int, ...]) -> np.ndarray:
    """Earliest-deadline-first schedule of unit jobs; see :func:`interleave`.

    Job ``c`` of group ``g`` is released at slot ``ceil(c*n/q_g) - 1`` and due
    before ``(c+1)*n/q_g``. Tijdeman (1980) shows this schedule exists and
    keeps every prefix within one unit of ``m * q_g / n``. The walk is
    sequential by nature, so it runs once per quota vector and is cached.
    """
    n = sum(counts)
    out = np.empty(n, dtype=np.int32)
    done = [0] * len(counts)
    # Priority: earliest deadline, then earliest release (the job that has waited longest), then group id.
    ready: list[tuple[float, float, int]] = [(1.0 / q, 0.0, g) for g, q in enumerate(counts) if q > 0]
    heapq.heapify(ready)
    waiting: list[tuple[int, int]] = []
    for slot in range(n):
        while waiting and waiting[0][0] <= slot:
            _, g = heapq.heappop(waiting)
            heapq.heappush(ready, ((done[g] + 1) / counts[g], done[g] / counts[g], g))
        if not ready:  # cannot happen for a feasible schedule; keep going in order of release
            _, g = heapq.heappop(waiting)
        else:
            _, _, g = heapq.heappop(ready)
        out[slot] = g
        done[g] += 1
        c, q = done[g], counts[g]
        if c < q:
            release = -(-c * n // q) - 1
            if release <= slot + 1:
                heapq.heappush(ready, ((c + 1) / q, c / q, g))
            else:
                heapq.heappush(waiting, (release, g))
    return out


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


def _grouped(labels: np.ndarray, num_groups: int) -> list[np.ndarray]:
    """Positions of each label value, in increasing order (one stable sort, no per-group scan)."""
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels, minlength=num_groups))
    return np.split(order, bounds[:-1])


class DrawEngine:
    """Turns one weight vector into epoch plans for a stream key.

    Args:
        weights: 1-D finite non-negative weights, not all zero.
        replacement: draw with replacement (default) or without.
        mode: ``"random"`` or ``"exact"`` (see module docs).
        groups: integer group id per sample; required by ``mode="exact"``,
            whose quotas are the groups' shares of the weight.

    The plan for ``(key, num_samples)`` is a virtual array of length
    ``num_samples``; :meth:`indices` returns any positions of it. In random
    mode with replacement each position is computed on its own; otherwise the
    plan is built once per key and cached.
    """

    def __init__(self, weights: Any, *, replacement: bool = True, mode: str = "random", groups: Any = None) -> None:
        self.weights = check_weights(weights)
        self.replacement = bool(replacement)
        self.mode = check_choice(mode, "mode", MODES)
        self.num_positive = int(np.count_nonzero(self.weights))
        self._table: CategoricalTable | None = None
        self._cached: tuple[int, int, np.ndarray] | None = None
        self.groups: np.ndarray | None = None
        if groups is not None:
            ids = np.asarray(groups)
            if ids.shape != self.weights.shape or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0:
                raise ValueError(
                    f"`groups` must be non-negative integer ids of shape {self.weights.shape}, "
                    f"got dtype {ids.dtype} and shape {ids.shape}"
                )
            self.groups = ids.astype(np.intp)
        if self.mode == "exact" and self.groups is None:
            raise ValueError("`mode='exact'` needs `groups` (the group id of each sample) to set quotas for")

    @property
    def random_access(self) -> bool:
        """True when each position is computed independently (random mode, with replacement)."""
        return self.mode == "random" and self.replacement

    def max_samples(self) -> int | None:
        """The largest plan length this engine can produce (None when unbounded)."""
        if self.replacement:
            return None
        if self.mode == "random":
            return self.num_positive
        return None  # exact mode cycles through each group without replacement

    def indices(self, key: int, positions: np.ndarray, num_samples: int) -> np.ndarray:
        """Indices at ``positions`` (each in ``[0, num_samples)``) of the plan for ``key``."""
        if self.random_access:
            if self._table is None:
                self._table = CategoricalTable(self.weights)
            return self._table.sample(uniform(key, positions))
        return self.plan(key, num_samples)[positions]

    def plan(self, key: int, num_samples: int) -> np.ndarray:
        """The whole plan of length ``num_samples`` for ``key`` (int64 indices)."""
        if self.random_access:
            return self.indices(key, np.arange(num_samples, dtype=np.int64), num_samples)
        if self._cached is not None and self._cached[:2] == (key, num_samples):
            return self._cached[2]
        if self.mode == "random":
            plan = weighted_permutation(self.weights, key, num_samples)
        else:
            plan = self._exact_plan(key, num_samples)
        plan = plan.astype(np.int64, copy=False)
        self._cached = (key, num_samples, plan)
        return plan

    def _exact_plan(self, key: int, num_samples: int) -> np.ndarray:
        assert self.groups is not None  # checked in __init__
        num_groups = int(self.groups.max()) + 1
        mass = np.bincount(self.groups, weights=self.weights, minlength=num_groups)
        sequence = interleave(largest_remainder(mass, num_samples))
        members_of = _grouped(self.groups, num_groups)
        out = np.empty(num_samples, dtype=np.int64)
        for g, slots in enumerate(_grouped(sequence, num_groups)):
            if not slots.size:
                continue
            members = members_of[g]
            w = self.weights[members]
            k = np.arange(slots.size, dtype=np.int64)
            if self.replacement:
                picks = CategoricalTable(w).sample(uniform(derive_key(key, g), k))
            else:
                picks = self._cycled_permutations(w, derive_key(key, g), k)
            out[slots] = members[picks]
        return out

    @staticmethod
    def _cycled_permutations(w: np.ndarray, key: int, k: np.ndarray) -> np.ndarray:
        """Draw ``k``-th items from back-to-back weighted permutations (one pass per full cycle)."""
        size = int(np.count_nonzero(w))
        passes = k // size
        picks = np.empty(k.shape[0], dtype=np.int64)
        for p in np.unique(passes):
            sel = passes == p
            picks[sel] = weighted_permutation(w, derive_key(key, int(p)))[k[sel] - p * size]
        return picks
