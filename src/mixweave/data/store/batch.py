"""What a batched read of a store returns, and the ``collate_fn`` that keeps its metadata."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch.utils.data._utils.collate import default_collate

from ...sampling.fetch import rows

__all__ = ["SampleBatch", "collate_with_metadata"]


class SampleBatch(Sequence[tuple[Any, ...]]):
    """What :meth:`ClusterLabeledDataset.__getitems__` returns: a batch held as stacked tensors.

    It is a sequence of per-sample tuples, so any ``collate_fn`` (torch's
    ``default_collate`` included) works; indexing it creates the views of one
    sample only. :func:`collate_with_metadata` recognises it and returns the
    stacked tensors as they are, without splitting and re-stacking them.
    """

    def __init__(self, columns: tuple[torch.Tensor, ...], meta: list[dict[str, Any]] | None = None) -> None:
        self.columns = columns
        self.meta = meta

    def __len__(self) -> int:
        return int(self.columns[0].shape[0])

    def _sample(self, j: int) -> tuple[Any, ...]:
        item = tuple(c[j] for c in self.columns)
        return item if self.meta is None else (*item, self.meta[j])

    def __getitem__(self, j: Any) -> Any:
        if isinstance(j, slice):
            return [self._sample(k) for k in range(*j.indices(len(self)))]
        n = len(self)
        if not -n <= j < n:
            raise IndexError(f"sample {j} is out of range for a batch of {n}")
        return self._sample(j % n)

    def __iter__(self) -> Any:
        if self.meta is None:
            return iter(rows(list(self.columns)))
        return ((*item, meta) for item, meta in zip(rows(list(self.columns)), self.meta, strict=True))

    def collate(self) -> tuple[Any, ...]:
        """The stacked tensors (and, with metadata, the list of metadata dicts)."""
        return self.columns if self.meta is None else (*self.columns, self.meta)


def collate_with_metadata(batch: Sequence[tuple[Any, ...]]) -> tuple[Any, ...]:
    """``collate_fn`` for a :class:`ClusterLabeledDataset`: stacked tensors, plus a list of metadata dicts.

    A :class:`SampleBatch` (what the dataset's ``__getitems__`` returns) is
    passed through as its stacked tensors, with no copy. Other samples with a
    metadata dict as fourth element are stacked with the dicts kept as a
    list; anything else goes to torch's ``default_collate``.

    Example:
        >>> import numpy as np, tempfile, os
        >>> from torch.utils.data import DataLoader
        >>> from mixweave import ClusterLabeledDataset
        >>> rng = np.random.default_rng(0)
        >>> d = os.path.join(tempfile.mkdtemp(), "store")
        >>> _ = ClusterLabeledDataset.build(d, rng.random((10, 4)), rng.random((10, 4)), np.eye(3)[[0, 1, 2] * 3 + [0]],
        ...                                 np.eye(3)[[1] * 10], texts=[f"q{i}" for i in range(10)])
        >>> dataset = ClusterLabeledDataset(d, return_metadata=True)
        >>> loader = DataLoader(dataset, batch_size=4, collate_fn=collate_with_metadata)
        >>> base, steering, label, metadata = next(iter(loader))
        >>> base.shape, [m["text"] for m in metadata]
        (torch.Size([4, 4]), ['q0', 'q1', 'q2', 'q3'])
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    if isinstance(batch, SampleBatch):
        return batch.collate()
    if len(batch[0]) != 4 or not isinstance(batch[0][3], Mapping):
        return default_collate(list(batch))  # type: ignore[no-any-return,unused-ignore]
    base, steering, label = default_collate([b[:3] for b in batch])
    return base, steering, label, [dict(b[3]) for b in batch]
