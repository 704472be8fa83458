"""The update rules of online adaptive mixing: per-group loss statistics in, new group shares out.

Pure numpy, no state: :class:`~mixweave.sampling.adaptive.AdaptiveMixture`
holds the state (scores or log-weights, the statistics of the current window)
and calls these. Groups are whatever the shares are over: sources, classes
or tasks. With ``K`` groups, a window's statistics are the per-group sum of
the observed losses ``S_i`` and the per-group sample count ``n_i``
(``n = sum(n_i)``); shares ``p`` are what the window was drawn with.

EXP3, as Online Data Mixing (Albalak et al., 2023, "Efficient Online Data
Mixing For Language Model Pre-Training") uses it, groups as arms of a bandit
rewarded by their training loss:

* importance-weighted reward ``R^_i = S_i / (n * p_i)``, an unbiased estimate
  of group ``i``'s mean loss whichever shares drew the window (0 for a group
  drawn by none of its samples, as in EXP3 for an arm not pulled);
* smoothed reward ``R_i <- decay * R_i + (1 - decay) * R^_i``;
* shares ``p = (1 - K * floor) * softmax(learning_rate * R) + floor``.

DoReMi (Xie et al., 2023, "DoReMi: Optimizing Data Mixtures Speeds Up
Language Model Pretraining", Algorithm 1), online: exponentiated gradient on
the excess loss over a reference model,

* excess ``lambda_i = max(S_i / n_i - reference_i, 0)`` (0 for a group with
  no sample in the window);
* ``log a_i <- log a_i + learning_rate * lambda_i``, ``a`` normalised;
* shares ``p = (1 - K * floor) * a + floor`` (the paper's smoothing with the
  uniform distribution, ``c = K * floor``).

Under both rules every group keeps at least ``floor`` of the draws: no group
starves, and the importance weights of EXP3 stay bounded by ``1 / floor``.

Example:
    >>> import numpy as np
    >>> rewards = exp3_rewards(np.array([2.0, 1.0]), np.array([1, 1]), np.array([0.5, 0.5]))
    >>> rewards.tolist()     # each group's mean loss, importance-weighted
    [2.0, 1.0]
    >>> p = mix_floor(softmax(rewards), 0.05)
    >>> bool(p[0] > p[1]), bool(p.min() >= 0.05)
    (True, True)
"""

from __future__ import annotations

import numpy as np

from .names import ADAPTIVE_ALGORITHMS as ALGORITHMS

__all__ = ["ALGORITHMS", "doremi_excess", "exp3_rewards", "mix_floor", "softmax"]


def softmax(scores: np.ndarray) -> np.ndarray:
    """``exp(scores) / sum(exp(scores))``, shifted by the maximum so it cannot overflow."""
    z = np.exp(scores - scores.max())
    return z / z.sum()


def mix_floor(probabilities: np.ndarray, floor: float) -> np.ndarray:
    """``(1 - K * floor) * probabilities + floor``: every one of the ``K`` shares is at least ``floor``."""
    k = probabilities.shape[0]
    return (1.0 - k * floor) * probabilities + floor


def exp3_rewards(loss_sums: np.ndarray, counts: np.ndarray, shares: np.ndarray) -> np.ndarray:
    """EXP3's importance-weighted reward of each group for one window: ``S_i / (n * p_i)``.

    Args:
        loss_sums: per-group sum of the window's losses, shape ``(K,)``.
        counts: per-group number of samples in the window, shape ``(K,)``.
        shares: the shares the window was drawn with, shape ``(K,)``, all positive.

    Returns:
        float64 rewards, 0 for every group when the window is empty.
    """
    total = float(counts.sum())
    if total <= 0:
        return np.zeros(loss_sums.shape[0])
    return loss_sums / (total * shares)


def doremi_excess(loss_sums: np.ndarray, counts: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """DoReMi's clipped excess loss of each group: ``max(mean loss - reference, 0)``, 0 where ``n_i = 0``."""
    seen = counts > 0
    means = np.divide(loss_sums, counts, out=np.zeros(loss_sums.shape[0]), where=seen)
    return np.where(seen, np.maximum(means - reference, 0.0), 0.0)
