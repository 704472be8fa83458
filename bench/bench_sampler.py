"""WeightedSampler against torch.utils.data.WeightedRandomSampler (issue: foundation)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from mixweave import WeightedSampler

from .harness import Row, best_of, peak_rss_of


def pareto_weights(n: int) -> np.ndarray:
    return np.random.default_rng(0).pareto(1.5, n) + 1e-3


PLAN_VS_ITERATE = """
import time, collections, numpy as np
from mixweave import WeightedSampler
w = np.random.default_rng(0).pareto(1.5, {n}) + 1e-3
WeightedSampler(w, seed=0).global_plan()  # first touch of the allocator's pages, for neither side
lists, deques = [], []
for _ in range({rounds}):
    t0 = time.perf_counter()
    WeightedSampler(w, seed=0).global_plan()
    plan = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = list(iter(WeightedSampler(w, seed=0)))
    lists.append(plan / (time.perf_counter() - t0))
    del out
    t0 = time.perf_counter()
    collections.deque(iter(WeightedSampler(w, seed=0)), maxlen=0)
    deques.append(plan / (time.perf_counter() - t0))
print(*lists)
print(*deques)
"""


def plan_rows(w: np.ndarray, big: int = 10**8, rounds: int = 3) -> list[Row]:
    """``global_plan()`` against iterating the same epoch, construction included, alternating.

    Iterating is ``list(iter(sampler))``, as the first sampler row measures it; the ratio against
    ``deque(iter(sampler), maxlen=0)`` (the ints handed out and dropped, no list) is shown beside it.
    """
    rows = []
    for n in (w.size, big):
        _, out = peak_rss_of(PLAN_VS_ITERATE.format(n=n, rounds=rounds))
        lines = out.splitlines()
        lists = [float(x) for x in lines[0].split()]
        deques = [float(x) for x in lines[1].split()]
        median, best = float(np.median(lists)), min(lists)
        rows.append(
            Row(
                f"N={n:.0e} global_plan() vs iterating the same epoch (construction included)",
                f"{median:.2f}x its time (median of {rounds}; best {best:.2f}x); "
                f"vs deque(iter()) {float(np.median(deques)):.2f}x",
                "list(iter(sampler))",
                f"{median:.2f}x",
                "<= 1x (no slower)",
                median <= 1.0,
            )
        )
    return rows


def iteration_rows(w: np.ndarray, wt: torch.Tensor, rounds: int = 3) -> list[Row]:
    """``list(iter(sampler))`` (construction included) against ``WeightedRandomSampler`` and against the floor
    of any ``Sampler.__iter__`` (``ndarray.tolist()`` of as many int64), alternating, median of ``rounds`` (#20)."""
    n = w.size
    ints = np.arange(n, dtype=np.int64)
    for fn in (lambda: list(iter(WeightedSampler(w, seed=0))), ints.tolist):  # first touch of fresh pages
        fn()
    vs_peer, vs_floor = [], []
    for _ in range(rounds):
        ours = best_of(lambda: list(iter(WeightedSampler(w, seed=0))))
        peer = best_of(lambda: list(iter(WeightedRandomSampler(wt, n, replacement=True))))
        floor = best_of(ints.tolist)
        vs_peer.append(peer / ours)
        vs_floor.append(ours / floor)
    peer_median, floor_median = float(np.median(vs_peer)), float(np.median(vs_floor))
    return [
        Row(
            f"N={n:.0e} with replacement, list(iter(sampler)), construction included",
            f"{peer_median:.1f}x faster (median of {rounds}, alternating; best {max(vs_peer):.1f}x)",
            "WeightedRandomSampler",
            f"{peer_median:.1f}x faster",
            ">= 8x faster",
            peer_median >= 8,
        ),
        Row(
            f"N={n:.0e} with replacement, list(iter(sampler)) vs handing out the ints alone",
            f"{floor_median:.2f}x its time (median of {rounds}; best {min(vs_floor):.2f}x)",
            f"ndarray.tolist() of {n:.0e} int64",
            f"{floor_median:.2f}x",
            "<= 2x",
            floor_median <= 2,
        ),
    ]


EXACT_PLAN = """
import time, numpy as np
from mixweave import WeightedSampler
from mixweave.core.draw import _interleave_period, _period_ranks
rng = np.random.default_rng(0)
w = rng.pareto(1.5, {n}) + 1e-3
g = rng.integers(0, 4, {n})
def timed(**kw):
    t0 = time.perf_counter()
    WeightedSampler(w, seed=0, **kw).plan()
    return time.perf_counter() - t0
timed(num_replicas=1)  # first touch of fresh pages
rounds = []
for _ in range({rounds}):
    _interleave_period.cache_clear()
    _period_ranks.cache_clear()
    cold = timed(mode="exact", groups=g)
    warm = timed(mode="exact", groups=g)  # the quota pattern is cached: later epochs of the same quotas
    random = timed()
    ranks, random_ranks = [], []
    for world in (1, 2, 4, 8):
        _interleave_period.cache_clear()
        _period_ranks.cache_clear()
        ranks.append(world * timed(mode="exact", groups=g, num_replicas=world, rank=0))
        random_ranks.append(world * timed(num_replicas=world, rank=0))
    rounds.append((
        cold / random,
        warm / random,
        max(r / ranks[0] for r in ranks[1:]),
        max(r / random_ranks[0] for r in random_ranks[1:]),
    ))
for r in rounds:
    print(*r)
"""


def exact_rows(n: int = 10**7, rounds: int = 3) -> list[Row]:
    """Exact mode's plan against random mode's, and its per-rank cost (#20 item 4), in a fresh process."""
    _, out = peak_rss_of(EXACT_PLAN.format(n=n, rounds=rounds))
    table = np.array([[float(x) for x in line.split()] for line in out.splitlines()])  # one row per round
    cold, warm, per_rank, random_per_rank = table.T
    return [
        Row(
            f"N={n:.0e}, 4 groups: exact-mode plan, first epoch of a quota vector",
            f"{np.median(cold):.1f}x its time (median of {rounds}; best {cold.min():.1f}x)",
            "random-mode plan of the same weights",
            f"{np.median(cold):.1f}x",
            "<= 1.5x",
            float(np.median(cold)) <= 1.5,
        ),
        Row(
            f"N={n:.0e}, 4 groups: exact-mode plan, later epochs (the quota pattern is cached)",
            f"{np.median(warm):.1f}x its time (median of {rounds}; best {warm.min():.1f}x)",
            "random-mode plan of the same weights",
            f"{np.median(warm):.1f}x",
            "<= 1.5x",
            float(np.median(warm)) <= 1.5,
        ),
        Row(
            f"N={n:.0e}, 4 groups: exact mode, rank 0 of W = 2, 4, 8, first epoch",
            f"W x t(W) / t(1) up to {np.median(per_rank):.2f} (median of {rounds}); "
            f"random mode by the same measure: {np.median(random_per_rank):.2f}",
            "one rank planning the whole epoch",
            f"{np.median(per_rank):.2f}",
            "<= 1.5",
            float(np.median(per_rank)) <= 1.5,
        ),
    ]


def run_exact() -> list[Row]:
    """Exact mode at scale (#20 item 4)."""
    return exact_rows()


def run(n: int = 10**7, big: int = 10**8) -> list[Row]:
    rows: list[Row] = []
    w = pareto_weights(n)
    wt = torch.as_tensor(w)

    rows += iteration_rows(w, wt)

    ours = best_of(lambda: list(iter(WeightedSampler(w, replacement=False, seed=0))), repeat=3)
    peer = best_of(lambda: list(iter(WeightedRandomSampler(wt, n, replacement=False))), repeat=3)
    rows.append(
        Row(
            f"N={n:.0e} without replacement (full permutation)",
            f"{ours:.2f} s",
            f"{peer:.2f} s (WeightedRandomSampler)",
            f"{peer / ours:.2f}x",
            ">= 1x (no slower)",
            peer / ours >= 1,
        )
    )

    sampler = WeightedSampler(w, num_samples=1000, seed=0)
    list(sampler)  # weights are set: the table is built
    ours = best_of(lambda: list(sampler), repeat=20)
    peer = best_of(lambda: torch.multinomial(wt, 1000, replacement=True).tolist(), repeat=5)
    rows.append(
        Row(
            f"draw 1,000 from N={n:.0e}, weights set",
            f"{ours * 1e3:.2f} ms",
            f"{peer * 1e3:.1f} ms (torch.multinomial)",
            f"{peer / ours:.0f}x faster",
            "<= 5 ms",
            ours <= 5e-3,
        )
    )

    rows += plan_rows(w)

    code = f"""
import time, collections, numpy as np
from mixweave import WeightedSampler
w = np.random.default_rng(0).pareto(1.5, {big}) + 1e-3
t0 = time.perf_counter()
s = WeightedSampler(w, seed=0)
collections.deque(iter(s), maxlen=0)
print(time.perf_counter() - t0)
"""
    peak, out = peak_rss_of(code)
    rate = big / float(out.strip())
    try:
        torch.multinomial(torch.ones(big, dtype=torch.float64), 10, replacement=True)
        peer_note = "ran"
    except RuntimeError as exc:
        peer_note = f"fails: {str(exc).splitlines()[0][:60]}"
    rows.append(
        Row(
            f"N={big:.0e} with replacement, iterate one epoch",
            f"{rate / 1e6:.1f} M indices/s, peak {peak:.2f} GiB",
            f"torch.multinomial {peer_note}",
            "-",
            ">= 5 M/s, <= 3.5 GB",
            rate >= 5e6 and peak * 2**30 <= 3.5e9,
        )
    )
    return rows


def run_plan() -> list[Row]:
    """``global_plan()`` against iterating, at 1e7 and 1e8 (#20)."""
    return plan_rows(pareto_weights(10**7))
