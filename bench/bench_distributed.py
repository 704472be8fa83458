"""Planning cost per rank for W = 1, 2, 4, 8 simulated ranks (issue: distributed training and resumption).

mixweave: rank 0 of W computes its shard of a with-replacement epoch (``plan()``, N/W
indices) from a sampler whose weights are set. Peer: the wrapper approach
(``DistributedSamplerWrapper`` around ``WeightedRandomSampler``), where every rank draws
the whole epoch with ``torch.multinomial`` and keeps every W-th index. The same for
exact mode (4 groups), whose quota pattern is laid out once like the draw table (#20 item 4).
"""

from __future__ import annotations

import numpy as np
import torch

from mixweave import WeightedSampler

from .harness import Row, best_of


def run(n: int = 10**7, worlds: tuple[int, ...] = (1, 2, 4, 8)) -> list[Row]:
    rng = np.random.default_rng(0)
    w = rng.pareto(1.5, n) + 1e-3
    groups = rng.integers(0, 4, n)
    return _rows(w, worlds, "") + _rows(w, worlds, ", exact mode (4 groups)", mode="exact", groups=groups)


def _rows(w: np.ndarray, worlds: tuple[int, ...], label: str, **kw: object) -> list[Row]:
    rows: list[Row] = []
    n = w.size
    wt = torch.as_tensor(w)
    single = None
    for world in worlds:
        sampler = WeightedSampler(w, seed=0, num_replicas=world, rank=0, **kw)
        sampler.plan(epoch=0)  # weights set: the O(N) draw tables (and quota pattern) exist, as after the first epoch
        epochs = iter(range(1, 4))  # a fresh epoch each time: a plan asked for twice may come from a cache
        ours = best_of(lambda s=sampler, e=epochs: s.plan(epoch=next(e)), repeat=3)
        peer = best_of(lambda world=world: torch.multinomial(wt, n, replacement=True)[0::world].numpy(), repeat=3)
        single = ours if single is None else single
        efficiency = single / (ours * world)  # 1.0 = perfectly O(N/W)
        rows.append(
            Row(
                f"plan one rank's shard, N={n:.0e} with replacement{label}, W={world}",
                f"{ours * 1e3:.0f} ms ({n // world:,} indices; W x time / time(W=1) = {1 / efficiency:.2f})",
                f"{peer * 1e3:.0f} ms (every rank draws all N, keeps 1/W)",
                f"{peer / ours:.1f}x faster",
                "O(N/W): W x time(W) <= 1.5 x time(1)",
                1 / efficiency <= 1.5,
            )
        )
    return rows
