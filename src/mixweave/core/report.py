"""The one requested-vs-realised share report: what each group was asked to get and what the plans gave it.

Every report in mixweave -- ``WeightedSampler.report``, a mixed dataset's
``report``, ``Pipeline.inspect`` and ``mixweave inspect`` -- is this function
over different groups (sources, classes, tasks, qualities). It reads
per-index probabilities and plans (flat indices) only; no sample is loaded.

Example:
    >>> import numpy as np
    >>> groups = np.array([0, 0, 1, 1])
    >>> r = share_report(groups, np.full(4, 0.25), [np.array([0, 1, 2, 0])])
    >>> r["requested"], r["realised"], r["unique"], r["repeats"]
    ([0.5, 0.5], [0.75, 0.25], [2, 1], [1, 0])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .weights import as_multihot

__all__ = ["REPORT_KEYS", "membership", "report_rows", "share_report"]

#: The columns of :func:`share_report`, in order.
REPORT_KEYS: tuple[str, ...] = ("size", "requested", "realised", "unique", "coverage", "repeats")


def membership(values: Any, names: Sequence[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Group names and a boolean ``(N, G)`` membership matrix.

    ``values`` is one integer id per row (``-1``: in no group), one string
    label per row, or a multi-hot ``(N, C)`` matrix (a row may be in several
    groups). ``names`` names integer groups (default ``"0"``, ``"1"``, ...).

    Example:
        >>> names, member = membership(np.array(["b", "a", "b"]))
        >>> names, member.astype(int).tolist()
        (['a', 'b'], [[0, 1], [1, 0], [0, 1]])
    """
    values = np.asarray(values)
    if values.ndim == 2:
        hot = as_multihot(values)
        return (list(names) if names else [str(c) for c in range(hot.shape[1])]), hot
    if values.dtype.kind in "iu":
        ids = values.astype(np.int64)
        known = ids >= 0
        width = int(ids.max()) + 1 if known.any() else 0
        hot = np.zeros((ids.size, width), dtype=bool)
        hot[np.flatnonzero(known), ids[known]] = True
        return (list(names) if names else [str(c) for c in range(width)]), hot
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    return uniq.tolist(), np.eye(uniq.size, dtype=bool)[inverse]


def _counts(groups: np.ndarray, rows: np.ndarray, num_groups: int) -> np.ndarray:
    """How many of ``rows`` fall in each group (ids: a bincount; membership: a column sum)."""
    if groups.ndim == 1:
        return np.bincount(groups[rows], minlength=num_groups)
    return groups[rows].sum(axis=0)


def _listed(probabilities: Any) -> list[Any]:
    return list(probabilities) if isinstance(probabilities, (list, tuple)) else [probabilities]


def _requested(groups: np.ndarray, p: np.ndarray, width: int) -> np.ndarray:
    return np.bincount(groups, weights=p, minlength=width) if groups.ndim == 1 else p @ groups


def share_report(
    groups: Any,
    probabilities: Any,
    plans: Sequence[np.ndarray],
    *,
    num_groups: int | None = None,
    requested: Any = None,
) -> dict[str, list[Any]]:
    """Per group: size, requested share, realised share, distinct rows drawn, coverage and repeats.

    Args:
        groups: integer group id per row, shape ``(N,)``, or a boolean
            membership matrix ``(N, G)`` (from :func:`membership`).
        probabilities: the probability of every row, shape ``(N,)``, or one
            such array per plan; the requested share is their mean.
        plans: flat row indices drawn (one array per epoch); realised shares
            and counts are over all of them together.
        num_groups: for integer ids, the number of groups (default ``max + 1``).
        requested: the requested share of each group, when known without
            per-row probabilities (``probabilities`` is then ignored and may be None).

    Returns:
        Columns keyed by :data:`REPORT_KEYS`, each a list indexed by group.
        ``coverage`` is ``unique / size`` (0 for an empty group); ``repeats`` is
        draws beyond the first of each row.
    """
    g = np.asarray(groups)
    width = g.shape[1] if g.ndim == 2 else (num_groups if num_groups is not None else int(g.max()) + 1)
    drawn = np.concatenate([np.asarray(p, dtype=np.int64) for p in plans]) if plans else np.empty(0, np.int64)
    size = np.bincount(g, minlength=width) if g.ndim == 1 else g.sum(axis=0)
    if requested is None:
        requested = np.mean([_requested(g, np.asarray(p, np.float64), width) for p in _listed(probabilities)], axis=0)
    requested = np.asarray(requested, dtype=np.float64)
    counts = _counts(g, drawn, width)
    unique = _counts(g, np.unique(drawn), width)
    coverage = np.divide(unique, size, out=np.zeros(width), where=size > 0)
    return {
        "size": size.astype(int).tolist(),
        "requested": requested.astype(float).tolist(),
        "realised": (counts / max(drawn.size, 1)).astype(float).tolist(),
        "unique": unique.astype(int).tolist(),
        "coverage": coverage.tolist(),
        "repeats": (counts - unique).astype(int).tolist(),
    }


def report_rows(names: Sequence[str], report: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """The columns of :func:`share_report` as one ``{"name": ..., key: value}`` row per group."""
    return [{"name": name, **{k: report[k][i] for k in REPORT_KEYS}} for i, name in enumerate(names)]
