"""The interleave's EDF schedule (NOTE [ EDF in numpy ] in core/draw.py) against a slow walk in exact fractions.

The reference picks, slot by slot, the released job with the earliest
deadline ``(c+1)/q``, then the earliest release ``c/q``, then the lowest group
id, comparing :class:`fractions.Fraction` values. The cases cover all three
paths: deadline order throughout (balanced quotas), deadline order with
walked stretches (a few late jobs), and the walk over the whole period (late
jobs all over, or more than 64 groups).
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction

import numpy as np
import pytest

from mixweave.core.draw import (
    _LATE_SHARE,
    _WALK_GAP,
    _deadline_order,
    _edf_walk,
    _interleave_period,
    largest_remainder,
)


def slow_edf(counts: tuple[int, ...]) -> list[int]:
    n = sum(counts)
    done = [0] * len(counts)
    out = []
    for slot in range(n):
        best = None
        for g, q in enumerate(counts):
            c = done[g]
            if c < q and -(-c * n // q) - 1 <= slot:
                key = (Fraction(c + 1, q), Fraction(c, q), g)
                best = key if best is None or key < best else best
        assert best is not None  # Tijdeman: some job is always released
        out.append(best[2])
        done[best[2]] += 1
    return out


def path_of(counts: tuple[int, ...]) -> str:
    order, late = _deadline_order(counts)
    if order is None or late.size * _LATE_SHARE > sum(counts):
        return "walk"
    return "mixed" if late.size else "deadline order"


def quota_vectors():
    rng = np.random.default_rng(0)
    cases = [(5, 3), (1, 1), (7,), (0, 4, 0, 2), (3, 3, 3), (1, 2, 4, 8, 16)]
    for t in range(150):
        g = int(rng.integers(2, 9))
        shares = (rng.random(g) + 0.5, 1.0 / np.arange(1, g + 1), rng.dirichlet(np.ones(g)))[t % 3]
        q = largest_remainder(shares, int(rng.integers(20, 4000)))
        cases.append(tuple(int(x) for x in q))
    cases.append(tuple(int(x) for x in largest_remainder(np.ones(70), 700)))  # beyond the counted groups
    return cases


CASES = quota_vectors()


@pytest.mark.parametrize("counts", CASES, ids=[f"{path_of(c)}-{i}" for i, c in enumerate(CASES)])
def test_the_schedule_is_the_exact_edf_walk(counts):
    got = _interleave_period.__wrapped__(counts)
    assert got.tolist() == slow_edf(counts)


def test_every_path_is_exercised():
    paths = [path_of(c) for c in CASES]
    assert min(paths.count(p) for p in ("walk", "mixed", "deadline order")) >= 5, {
        p: paths.count(p) for p in set(paths)
    }


@pytest.mark.parametrize("counts", [(5, 3), (0, 4, 0, 2), (3, 3, 3), (1, 2, 4, 8, 16), (13, 1, 7)])
def test_deadline_order_is_the_sort_by_exact_priority(counts):
    jobs = [(Fraction(c + 1, q), Fraction(c, q), g) for g, q in enumerate(counts) for c in range(q)]
    expected = [g for *_, g in sorted(jobs)]
    order, late = _deadline_order(counts)
    assert order is not None and order.tolist() == expected
    n = sum(counts)
    released = {}  # slot -> whether the job placed there is released there
    seen = [0] * len(counts)
    for slot, g in enumerate(expected):
        released[slot] = -(-seen[g] * n // counts[g]) - 1 <= slot
        seen[g] += 1
    assert late.tolist() == [s for s, ok in released.items() if not ok]


def heap_edf(counts: tuple[int, ...]) -> list[int]:
    """A second, faster reference for long periods: the same rule with float keys, scanning the groups."""
    n = sum(counts)
    done = [0] * len(counts)
    out = []
    for slot in range(n):
        best, pick = None, -1
        for g, q in enumerate(counts):
            c = done[g]
            if c < q and -(-c * n // q) - 1 <= slot and (best is None or ((c + 1) / q, c / q) < best):
                best, pick = ((c + 1) / q, c / q), g
        out.append(pick)
        done[pick] += 1
    return out


def test_a_group_with_more_jobs_than_one_counting_chunk():
    counts = (70_003, 20_001, 9_998)  # group 0's jobs are counted in two chunks of 65,536
    assert _interleave_period.__wrapped__(counts).tolist() == heap_edf(counts)


def test_64_groups_are_counted_and_65_are_walked():
    assert _deadline_order(tuple(range(1, 65)))[0] is not None
    assert _deadline_order(tuple(range(1, 66)))[0] is None


@pytest.mark.parametrize("counts", [c for c in CASES if path_of(c) == "mixed"][:12])
def test_the_walk_stops_where_the_deadline_order_takes_over(counts):
    # From the first late slot the walk must write the EDF schedule and stop at the first later slot where
    # the scheduled jobs are the first ones of the deadline order again and no late slot is near.
    order, late = _deadline_order(counts)
    edf = slow_edf(counts)
    start = int(late[0])
    expected = None
    for r in range(start + 1, len(edf) + 1):
        if sorted(edf[:r]) == sorted(order[:r].tolist()):
            ahead = late[late >= r]
            if not ahead.size or ahead[0] - r >= _WALK_GAP:
                expected = r
                break
    out = order.copy()
    done = np.bincount(order[:start], minlength=len(counts)).tolist()
    stopped = _edf_walk(counts, done, start, out, out, deque(late.tolist()))
    assert stopped == (len(edf) if expected is None else expected)
    assert out[start:stopped].tolist() == edf[start:stopped]
    assert done == np.bincount(edf[:stopped], minlength=len(counts)).tolist()
