"""WeightedInterleaveDataset against HF ``interleave_datasets`` and torchdata ``MultiNodeWeightedSampler``.

The same three in-memory sources (Python lists of dicts, 300k/150k/50k items)
are mixed 0.6/0.3/0.1 by each tool, restarting sources that run out, and
300,000 items are taken in one process; runs alternate between the tools,
three rounds, the median and the best are reported. The Hugging Face peer
reads ``IterableDataset.from_generator`` over the lists (its streaming form),
torchdata ``IterableWrapper`` nodes, mixweave the lists themselves (read in
row order). A second table gives the largest deviation of any prefix of the
first 50,000 items from the target shares, in samples.
"""

from __future__ import annotations

import itertools
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from mixweave import WeightedInterleaveDataset

from .harness import Row

SIZES = (300_000, 150_000, 50_000)
SHARES = [0.6, 0.3, 0.1]
TAKE = 300_000


def _lists() -> list[list[dict[str, int]]]:
    return [[{"source": s, "i": i} for i in range(n)] for s, n in enumerate(SIZES)]


def _ours(lists: list[list[dict[str, int]]], mode: str = "random") -> Iterator[Any]:
    return iter(WeightedInterleaveDataset(lists, SHARES, mode=mode, stopping="never", seed=0))


def _hf(lists: list[list[dict[str, int]]]) -> Iterator[Any]:
    import datasets

    def gen(rows: list[dict[str, int]]) -> Iterator[dict[str, int]]:
        yield from rows

    streams = [datasets.IterableDataset.from_generator(gen, gen_kwargs={"rows": rows}) for rows in lists]
    mixed = datasets.interleave_datasets(streams, probabilities=SHARES, seed=0, stopping_strategy="all_exhausted")
    return iter(mixed)


def _torchdata(lists: list[list[dict[str, int]]]) -> Iterator[Any]:
    from torchdata.nodes import IterableWrapper, MultiNodeWeightedSampler, StopCriteria

    nodes = {str(s): IterableWrapper(rows) for s, rows in enumerate(lists)}
    weights = {str(s): w for s, w in enumerate(SHARES)}
    sampler = MultiNodeWeightedSampler(nodes, weights, stop_criteria=StopCriteria.CYCLE_FOREVER, seed=0)
    return iter(sampler)


def _items_per_second(make: Callable[[], Iterator[Any]]) -> float:
    t0 = time.perf_counter()
    taken = sum(1 for _ in itertools.islice(make(), TAKE))
    return taken / (time.perf_counter() - t0)


def _deviation(sources: np.ndarray) -> float:
    counts = np.cumsum(np.eye(len(SHARES))[sources], axis=0)
    steps = np.arange(1, sources.shape[0] + 1)[:, None]
    return float(np.abs(counts - np.asarray(SHARES) * steps).max())


def run() -> list[Row]:
    lists = _lists()
    makers: dict[str, Callable[[], Iterator[Any]]] = {
        "mixweave": lambda: _ours(lists),
        "HF interleave_datasets": lambda: _hf(lists),
        "torchdata MultiNodeWeightedSampler": lambda: _torchdata(lists),
    }
    rates: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(3):  # alternate: each round measures every tool once
        for name, make in makers.items():
            rates[name].append(_items_per_second(make))
    ours = rates["mixweave"]
    rows = []
    for peer in ("HF interleave_datasets", "torchdata MultiNodeWeightedSampler"):
        ratios = [a / b for a, b in zip(ours, rates[peer], strict=True)]
        median, best = statistics.median(ratios), max(ratios)
        rows.append(
            Row(
                f"stream mixing throughput, 3 in-memory sources 0.6/0.3/0.1, {TAKE:,} items, one process",
                f"{statistics.median(ours) / 1e3:.0f} k items/s",
                f"{statistics.median(rates[peer]) / 1e3:.0f} k items/s ({peer})",
                f"{median:.2f}x (best {best:.2f}x)",
                ">= 1x",
                median >= 1.0,
            )
        )

    n = 50_000
    sources = {
        "mixweave exact": [x["source"] for x in itertools.islice(_ours(lists, "exact"), n)],
        "mixweave random": [x["source"] for x in itertools.islice(_ours(lists), n)],
        "HF": [x["source"] for x in itertools.islice(_hf(lists), n)],
        "torchdata": [x["source"] for x in itertools.islice(_torchdata(lists), n)],
    }
    deviations = {name: _deviation(np.asarray(s)) for name, s in sources.items()}
    rows.append(
        Row(
            f"largest deviation of any prefix of the first {n:,} items from the target shares",
            f"exact: {deviations['mixweave exact']:.2f} samples; random: {deviations['mixweave random']:.1f}",
            f"HF: {deviations['HF']:.1f}; torchdata: {deviations['torchdata']:.1f} samples",
            "",
            "exact <= 1 sample",
            deviations["mixweave exact"] <= 1.0,
        )
    )
    return rows
