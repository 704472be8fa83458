"""The demo's third experiment: adaptive mixing against fixed mixes, on the same data and seeds.

1. **Sources as groups.** The real and synthetic digits of the mixing
   experiment, with shares learnt during training by
   :class:`~mixweave.sampling.adaptive.AdaptiveMixture`: EXP3 (Online Data
   Mixing) and DoReMi. DoReMi's reference losses are the per-source training
   losses of a reference model trained on the 50/50 mix, as the paper trains
   its reference on the initial mixture. Compared with the fixed mixes of the
   mixing experiment (same seeds, splits and initialisations).
2. **Classes as groups.** The long-tailed training set with EXP3 over the 10
   classes, compared with plain shuffling and the class-balanced sampler.

Every adaptive run uses the library's default settings (learning rate 1,
floor 0.1/K, one update per step, one segment per batch): nothing is tuned on
the test set. The conclusions say plainly when adaptation does not help.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.sources import ArrayDataset
from ..sampling.adaptive import AdaptiveMixture
from ..sampling.adaptive_sampler import AdaptiveSampler

__all__ = ["ADAPTIVE_RUNS", "adaptive_runs", "source_losses"]

#: The runs of this experiment, in report order.
ADAPTIVE_RUNS = ("sources: exp3", "sources: doremi", "classes: exp3")


def source_losses(model: nn.Module, x: np.ndarray, y: np.ndarray, groups: np.ndarray, k: int) -> list[float]:
    """Mean cross-entropy of ``model`` on the rows of each group: a reference model's per-group losses."""
    with torch.no_grad():
        losses = nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y), reduction="none")
    sums = np.bincount(groups, weights=losses.numpy().astype(np.float64), minlength=k)
    return (sums / np.bincount(groups, minlength=k)).tolist()


def _train(
    loader: DataLoader[Any],
    mixture: AdaptiveMixture,
    groups: np.ndarray,
    make_model: Callable[[torch.Generator], nn.Module],
    epochs: int,
    seed: int,
    optimizer_settings: dict[str, float],
    progress: Any,
    task: Any,
) -> tuple[nn.Module, np.ndarray]:
    """Train a fresh model, reporting each step's per-sample losses to ``mixture``; also counts draws per group."""
    model = make_model(torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(
        model.parameters(), lr=optimizer_settings["lr"], momentum=optimizer_settings["momentum"]
    )
    seen = np.zeros(mixture.num_groups, dtype=np.int64)
    for _ in range(epochs):
        for x, y, rows in loader:
            losses = nn.functional.cross_entropy(model(x), y, reduction="none")
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()
            ids = groups[rows.numpy()]
            mixture.observe(ids, losses.detach())
            seen += np.bincount(ids, minlength=mixture.num_groups)
        progress.advance(task)
    return model, seen


def adaptive_runs(
    *,
    x: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    names: list[str],
    samples_per_epoch: int,
    batch_size: int,
    epochs: int,
    seed: int,
    make_model: Callable[[torch.Generator], nn.Module],
    optimizer_settings: dict[str, float],
    algorithm: str,
    reference_losses: list[float] | None,
    progress: Any,
    task: Any,
) -> tuple[nn.Module, AdaptiveMixture, np.ndarray]:
    """One adaptive run over ``groups`` of the training rows ``x, y``: the model, its mixture, draws per group."""
    mixture = AdaptiveMixture(len(names), algorithm=algorithm, reference_losses=reference_losses, names=names)
    sampler = AdaptiveSampler(mixture, groups, samples_per_epoch, segment_size=batch_size, seed=seed)
    data = ArrayDataset(x, y, np.arange(y.shape[0]))
    loader = DataLoader(data, batch_size=batch_size, sampler=sampler)
    model, seen = _train(loader, mixture, groups, make_model, epochs, seed, optimizer_settings, progress, task)
    return model, mixture, seen
