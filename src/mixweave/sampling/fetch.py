"""Batched reads from several map-style sources: one read per source per batch.

Shared by the mixed datasets (:mod:`mixweave.sampling.mixing`), the flat
concatenation a pipeline draws from, and the array and store datasets of the
data layer (:func:`rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..core._groups import grouped

__all__ = ["FlatConcatDataset", "fetch", "fetch_located", "rows"]


def rows(columns: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Split batched columns (tensors of shape ``(B, ...)``, or lists of ``B`` values) into ``B`` per-sample tuples."""
    return list(zip(*(c.unbind(0) if isinstance(c, torch.Tensor) else c for c in columns), strict=True))


def fetch(dataset: Any, items: np.ndarray) -> list[Any]:
    """Items ``items`` of one source, in order, in as few reads as the source allows.

    A source with ``__getitems__`` is asked once for all of them; a
    ``TensorDataset`` is read by fancy indexing; others item by item.
    """
    if hasattr(dataset, "__getitems__"):
        return list(dataset.__getitems__(items.tolist()))
    if isinstance(dataset, TensorDataset):
        idx = torch.from_numpy(np.asarray(items, dtype=np.int64))
        return rows([t[idx] for t in dataset.tensors])
    return [dataset[j] for j in items.tolist()]


def fetch_located(datasets: Sequence[Any], sources: np.ndarray, items: np.ndarray) -> list[Any]:
    """Item ``items[i]`` of ``datasets[sources[i]]`` for every ``i``, in order, with one batched read per source."""
    out: list[Any] = [None] * len(sources)
    for source, slots in enumerate(grouped(np.asarray(sources, dtype=np.intp), len(datasets))):
        if slots.size:
            for slot, item in zip(slots.tolist(), fetch(datasets[source], items[slots]), strict=True):
                out[slot] = item
    return out


class FlatConcatDataset(Dataset[Any]):
    """Sources end to end (one flat index space), with a batched ``__getitems__`` (one read per source).

    Like ``torch.utils.data.ConcatDataset``, but a batch costs one read per
    source instead of one per item.

    With ``with_source=True`` each item is ``(source index, item)``: what a
    training step needs to report its losses per source to an
    :class:`~mixweave.sampling.adaptive.AdaptiveMixture`.

    Example:
        >>> ds = FlatConcatDataset([list("ab"), list("xyz")])
        >>> len(ds), ds[3], ds.__getitems__([4, 0, 2])
        (5, 'y', ['z', 'a', 'x'])
        >>> FlatConcatDataset([list("ab"), list("xyz")], with_source=True).__getitems__([4, 0])
        [(1, 'z'), (0, 'a')]
    """

    def __init__(self, datasets: Sequence[Any], *, with_source: bool = False) -> None:
        self.datasets = list(datasets)
        self.offsets = np.concatenate(([0], np.cumsum([len(d) for d in self.datasets]))).astype(np.int64)
        self.with_source = bool(with_source)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> Any:
        s = int(np.searchsorted(self.offsets, index, side="right")) - 1
        item = self.datasets[s][int(index - self.offsets[s])]
        return (s, item) if self.with_source else item

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        idx = np.asarray(indices, dtype=np.int64)
        sources = np.searchsorted(self.offsets, idx, side="right") - 1
        items = fetch_located(self.datasets, sources, idx - self.offsets[sources])
        return list(zip(sources.tolist(), items, strict=True)) if self.with_source else items
