"""WeightedConcatDataset against ConcatDataset + RandomSampler (issue: dataset mixing)."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, RandomSampler, TensorDataset

from mixweave import WeightedConcatDataset

from .harness import Row, best_of


def _sources() -> list[TensorDataset]:
    gen = torch.Generator().manual_seed(0)
    return [
        TensorDataset(torch.randn(80_000, 32, generator=gen), torch.randint(0, 10, (80_000,), generator=gen)),
        TensorDataset(torch.randn(20_000, 32, generator=gen), torch.randint(0, 10, (20_000,), generator=gen)),
    ]


def _drain(loader: DataLoader) -> int:
    return sum(batch[0].shape[0] for batch in loader)


def batch_deviation(sources: np.ndarray, shares: np.ndarray, batch: int) -> float:
    """Largest |count in a batch - batch * share| over all aligned batches and sources."""
    usable = sources[: sources.size // batch * batch].reshape(-1, batch)
    counts = np.stack([(usable == s).sum(axis=1) for s in range(shares.size)], axis=1)
    return float(np.abs(counts - batch * shares).max())


def run() -> list[Row]:
    rows: list[Row] = []
    sources = _sources()
    n = sum(len(s) for s in sources)
    batched = WeightedConcatDataset(sources, [0.8, 0.2], length=n, seed=0)
    per_item = WeightedConcatDataset(sources, [0.8, 0.2], length=n, seed=0)
    per_item.__getitems__ = None  # type: ignore[assignment,method-assign]  # DataLoader then fetches item by item
    concat = ConcatDataset(sources)
    gen = torch.Generator().manual_seed(0)

    peer_loader = lambda: DataLoader(concat, batch_size=256, sampler=RandomSampler(concat, generator=gen))  # noqa: E731
    t_peer = best_of(lambda: _drain(peer_loader()), 3)
    t_batched = best_of(lambda: _drain(DataLoader(batched, batch_size=256)), 3)
    t_item = best_of(lambda: _drain(DataLoader(per_item, batch_size=256)), 3)
    rate = lambda t: f"{n / t / 1e3:.0f} k samples/s"  # noqa: E731
    rows.append(
        Row(
            "DataLoader(batch 256, workers 0) over WeightedConcatDataset vs ConcatDataset+RandomSampler",
            rate(t_batched),
            f"{rate(t_peer)} (ConcatDataset + RandomSampler)",
            f"{t_peer / t_batched:.2f}x",
            ">= 0.8x",
            t_peer / t_batched >= 0.8,
        )
    )
    rows.append(
        Row(
            "batched __getitems__ vs per-item __getitem__ (same dataset)",
            rate(t_batched),
            f"{rate(t_item)} (per item)",
            f"{t_item / t_batched:.2f}x",
            ">= 2x",
            t_item / t_batched >= 2,
        )
    )

    shares = np.array([0.8, 0.2])
    for shares_list in ([0.8, 0.2], [0.5, 0.3, 0.2], [0.45, 0.25, 0.15, 0.1, 0.05]):
        shares = np.array(shares_list)
        datasets = [TensorDataset(torch.zeros(1000)) for _ in shares_list]
        exact = WeightedConcatDataset(datasets, shares_list, length=64_000, mode="exact").plan().sources
        rand = WeightedConcatDataset(datasets, shares_list, length=64_000, mode="random").plan().sources
        dev_exact, dev_rand = batch_deviation(exact, shares, 64), batch_deviation(rand, shares, 64)
        rows.append(
            Row(
                f"max deviation of a batch of 64 from target, shares {shares_list}",
                f"exact: {dev_exact:.2f} samples",
                f"random mode: {dev_rand:.2f} samples",
                "-",
                "exact <= 1",
                dev_exact <= 1.0,
            )
        )
    return rows
