"""Source weights that change with the epoch: ``{epoch: weights}`` points and an interpolation.

Example:
    >>> s = WeightSchedule({0: [0.9, 0.1], 10: [0.7, 0.3]}, interpolation="linear")
    >>> s(5).round(2).tolist()
    [0.8, 0.2]
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping, Sequence
from typing import Final

import numpy as np

from .._validation import check_choice, check_int, check_probabilities, dispatch
from ..core.names import INTERPOLATIONS

__all__ = ["INTERPOLATIONS", "WeightSchedule"]


def _step(t: float, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return before


def _linear(t: float, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return (1 - t) * before + t * after


#: Interpolations between two points, by name: ``f(t, weights before, weights after)`` with ``t`` in [0, 1).
_INTERPOLATIONS: Final[dict[str, Callable[[float, np.ndarray, np.ndarray], np.ndarray]]] = dict(
    zip(INTERPOLATIONS, (_step, _linear), strict=True)
)


class WeightSchedule:
    """Source weights that change with the epoch, declared as points ``{epoch: weights}``.

    Before the first point the first weights hold, after the last point the
    last ones. In between, ``"step"`` keeps the weights of the latest point
    and ``"linear"`` interpolates between the two surrounding points.

    Args:
        points: mapping from epoch (int >= 0) to weights summing to 1.
        interpolation: ``"step"`` (default) or ``"linear"``.

    Example:
        >>> s = WeightSchedule({0: [0.9, 0.1], 10: [0.7, 0.3]}, interpolation="linear")
        >>> s(5).round(2).tolist()
        [0.8, 0.2]
    """

    def __init__(self, points: Mapping[int, Sequence[float]], interpolation: str = "step") -> None:
        if not isinstance(points, Mapping) or not points:
            raise ValueError(f"`points` must be a non-empty mapping {{epoch: weights}}, got {points!r}")
        self.interpolation = check_choice(interpolation, "interpolation", INTERPOLATIONS)
        epochs = sorted(check_int(e, "points key (epoch)", minimum=0) for e in points)
        self.epochs = epochs
        self.values = [check_probabilities(points[e], f"points[{e}]") for e in epochs]
        sizes = {v.shape[0] for v in self.values}
        if len(sizes) != 1:
            raise ValueError(f"every entry of `points` must have the same length, got lengths {sorted(sizes)}")

    def __call__(self, epoch: int) -> np.ndarray:
        pos = bisect.bisect_right(self.epochs, epoch) - 1
        if pos < 0:
            return self.values[0]
        if pos == len(self.epochs) - 1:
            return self.values[pos]
        e0, e1 = self.epochs[pos], self.epochs[pos + 1]
        interpolate = dispatch(_INTERPOLATIONS, self.interpolation, "interpolation")
        return interpolate((epoch - e0) / (e1 - e0), self.values[pos], self.values[pos + 1])

    def __repr__(self) -> str:
        points = {e: v.tolist() for e, v in zip(self.epochs, self.values, strict=True)}
        return f"WeightSchedule({points}, interpolation={self.interpolation!r})"
