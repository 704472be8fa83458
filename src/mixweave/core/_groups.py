"""Index helpers shared by the core modules and the layers above (a public name in a private module)."""

from __future__ import annotations

import numpy as np

__all__ = ["grouped"]


def grouped(labels: np.ndarray, num_groups: int) -> list[np.ndarray]:
    """Positions of each label value ``0..num_groups-1``, in increasing order (one stable sort, no per-group scan).

    ``labels`` are non-negative ints; with at most 2**16 distinct values the sort is a radix sort.

    Example:
        >>> [g.tolist() for g in grouped(np.array([1, 0, 1, 2]), 3)]
        [[1], [0, 2], [3]]
    """
    counts = np.bincount(labels, minlength=num_groups)
    # numpy's stable sort is a radix sort for 16-bit keys: several times faster than on int64 ones
    keys = labels.astype(np.uint16) if counts.size <= 1 << 16 else labels
    order = np.argsort(keys, kind="stable")
    return np.split(order, np.cumsum(counts)[:-1])
