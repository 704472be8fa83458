"""Which source each position of an endless stream reads: i.i.d. by weight, or exact in every prefix.

Pure numpy, no hidden state: a choice depends only on the weights, the key
and the position (random mode), or on the counts so far (exact mode, whose
state is the counts themselves and travels in a saved state).

Exact mode is earliest-deadline-first with release times: the ``k``-th item of
source ``i`` has deadline ``k / w_i``; at position ``t`` (1-based) the source
with the earliest deadline among those not yet ahead of their share
(``c_i < w_i * t``) is chosen. After every position ``t`` each count ``c_i``
is within one sample of ``w_i * t`` (Tijdeman's chairman assignment bound;
``tests/core/test_stream.py`` checks it over hundreds of weight vectors).

Example:
    >>> import numpy as np
    >>> scheduler = ExactStream(np.array([0.5, 0.25, 0.25]))
    >>> scheduler.take(8).tolist()
    [0, 1, 0, 2, 0, 1, 0, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validation import check_int
from .rng import uniform

__all__ = ["ExactStream", "random_choices"]


def random_choices(cumulative: np.ndarray, key: int, start: int, count: int) -> np.ndarray:
    """Sources of positions ``start .. start + count - 1``, i.i.d. with ``P(i) = w_i``.

    ``cumulative`` is ``cumsum(w)`` with its last entry exactly 1. Position ``p``
    reads uniform ``p`` of ``key``, so any range can be computed on its own.
    """
    u = uniform(key, np.arange(start, start + count, dtype=np.int64))
    return np.searchsorted(cumulative, u, side="right")  # u < 1 = cumulative[-1]: always a source


class ExactStream:
    """Earliest-deadline-first choice of sources: every prefix within one sample of its share (module docstring).

    Args:
        weights: source shares, positive where a source may be chosen, summing to 1.
        counts: how often each source was chosen so far (to continue a saved stream).
    """

    def __init__(self, weights: np.ndarray, counts: Any = None) -> None:
        self.weights = [float(w) for w in weights]
        self.counts = [0] * len(self.weights) if counts is None else [check_int(c, "counts", minimum=0) for c in counts]
        if len(self.counts) != len(self.weights):
            raise ValueError(f"`counts` must have one entry per source ({len(self.weights)}), got {len(self.counts)}")

    def take(self, n: int) -> np.ndarray:
        """The next ``n`` choices (advances the counts)."""
        w, c = self.weights, self.counts
        sources = range(len(w))
        t = sum(c)
        out = np.empty(n, dtype=np.int64)
        for j in range(n):  # one step per position: the choice depends on every choice before it
            t += 1
            best, deadline = -1, float("inf")
            for i in sources:  # (a share 0 is never behind: c[i] < 0 is false, and w[i] is never divided by)
                if c[i] < w[i] * t and (c[i] + 1) / w[i] < deadline:
                    best, deadline = i, (c[i] + 1) / w[i]
            if best < 0:  # rounding left no source behind its share: the one furthest behind
                best = max(sources, key=lambda i: w[i] * t - c[i])
            c[best] += 1
            out[j] = best
        return out
