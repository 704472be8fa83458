"""Index helpers shared by the core modules and the layers above (a public name in a private module)."""

from __future__ import annotations

import numpy as np

__all__ = ["grouped"]


def grouped(labels: np.ndarray, num_groups: int) -> list[np.ndarray]:
    """Positions of each label value ``0..num_groups-1``, in increasing order (one stable sort, no per-group scan).

    Example:
        >>> [g.tolist() for g in grouped(np.array([1, 0, 1, 2]), 3)]
        [[1], [0, 2], [3]]
    """
    order = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels, minlength=num_groups))
    return np.split(order, bounds[:-1])
