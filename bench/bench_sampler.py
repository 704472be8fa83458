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


def run(n: int = 10**7, big: int = 10**8) -> list[Row]:
    rows: list[Row] = []
    w = pareto_weights(n)
    wt = torch.as_tensor(w)

    # best of 3 for both: the first call of either pays page faults for its fresh arrays
    ours = best_of(lambda: list(iter(WeightedSampler(w, seed=0))), repeat=3)
    peer = best_of(lambda: list(iter(WeightedRandomSampler(wt, n, replacement=True))), repeat=3)
    rows.append(
        Row(
            f"N={n:.0e} with replacement, list(iter(sampler))",
            f"{ours:.2f} s",
            f"{peer:.2f} s (WeightedRandomSampler)",
            f"{peer / ours:.1f}x faster",
            ">= 5x faster",
            peer / ours >= 5,
        )
    )

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
