"""Stratified splits of multi-label data: train/val/test fractions, k folds, and groups kept whole.

The algorithm is iterative stratification (Sechidis et al., 2011) taken one
label at a time instead of one sample at a time: while samples remain that
carry a label, take the label with the fewest unassigned positives, hand its
samples to the splits in proportion to what each split still lacks of that
label (every split that has none yet gets one first), within each split's
remaining room. Samples with no label fill the room that is left. Each step is
a handful of numpy operations, so the cost is ``O(N * C)`` rather than a Python
loop over samples.

Guarantees (rows, no ``groups``): the splits are disjoint and cover every row;
split sizes are the largest-remainder rounding of ``N * fractions`` (within
one row); a label with at least ``k`` positives appears in every one of the
``k`` splits. With ``groups``, every group lands in exactly one split and sizes
are within about one group of the target.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.random((1000, 4)) < [0.3, 0.1, 0.02, 0.005]
    >>> train, val, test = multilabel_split(labels, (0.7, 0.15, 0.15), seed=0)
    >>> len(train), len(val), len(test)
    (700, 150, 150)
    >>> bool(labels[test].any(axis=0).all())   # even the 5-positive label reaches the test split
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .._progress import progress_bar
from .._validation import check_bool, check_int, check_weights, warn
from ..core.draw import largest_remainder
from ..core.weights import as_multihot

__all__ = ["MultilabelStratifiedKFold", "multilabel_split", "split_prevalence"]


def _check_fractions(fractions: Any) -> np.ndarray:
    if isinstance(fractions, (str, bytes)) or not isinstance(fractions, Sequence | np.ndarray):
        raise TypeError(f"`fractions` must be a sequence of numbers, got {type(fractions).__name__}")
    f = check_weights(list(fractions), "fractions")
    if f.size < 2:
        raise ValueError(f"`fractions` must have at least 2 entries, got {f.size}")
    if (f == 0).any():
        raise ValueError(f"`fractions` must all be > 0, got {f.tolist()}")
    if abs(f.sum() - 1.0) > 1e-6:
        raise ValueError(f"`fractions` must sum to 1, got {f.tolist()} summing to {f.sum():.6g}")
    return f / f.sum()


def _allocate(total: int, want: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total``, in proportion to ``want``, never above ``room``."""
    q = np.zeros(room.size, dtype=np.int64)
    left = total
    # A round either places all that is left or fills some split to its room, so room.size + 1 rounds suffice.
    for _ in range(room.size + 1):
        if left <= 0:
            return q
        free = room - q
        shares = np.where(free > 0, want, 0.0)
        if not shares.any():
            shares = free.astype(np.float64)
        add = np.minimum(largest_remainder(shares, left), free)
        q += add
        left -= int(add.sum())
    raise RuntimeError(f"cannot place {total} rows in splits with room {room.tolist()}")  # callers keep total <= room


def _cut(amounts: np.ndarray, quotas: np.ndarray) -> np.ndarray:
    """Split index of each item when items (in order) fill the quotas one after another.

    An item goes where the middle of its span falls, so unit items meet the quotas exactly.
    """
    middle = np.cumsum(amounts) - amounts / 2.0
    return np.minimum(np.searchsorted(np.cumsum(quotas), middle, side="right"), quotas.size - 1)


def multilabel_split(
    labels: Any,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    *,
    seed: int | None = 0,
    groups: Any = None,
    progress: bool | None = None,
) -> list[np.ndarray]:
    """Split rows into disjoint parts that keep every label's prevalence close to the whole's.

    Args:
        labels: ``(N, C)`` multi-hot matrix or ``(N,)`` integer class ids.
        fractions: share of rows per split (at least two, each > 0, summing to 1).
        seed: seed of the tie-breaking order; ``None`` keeps the input order (no randomness).
        groups: optional ``(N,)`` group id per row (e.g. patient id); rows of one group
            never span two splits.
        progress: a bar on stderr while items are assigned (``None``: for at least 1,000,000 rows when
            stderr is a terminal and rich is installed; ``False``: never).

    Returns:
        One sorted ``int64`` array of row indices per split.
    """
    hot = as_multihot(labels)
    f = _check_fractions(fractions)
    item_of_row, counts, sizes = _items(hot, groups)
    k, m = f.size, sizes.size
    if m < k:
        raise ValueError(f"cannot make {k} splits from {m} {'groups' if groups is not None else 'rows'}")
    order = np.arange(m) if seed is None else np.random.default_rng(check_int(seed, "seed", minimum=0)).permutation(m)
    with progress_bar("splitting", m, progress, large=1_000_000) as advance:
        split = _assign(f, counts, sizes, order, hot.shape[0], advance)
    row_split = split[item_of_row]
    sort = np.argsort(row_split, kind="stable")
    bounds = np.searchsorted(row_split[sort], np.arange(k + 1))
    parts = [sort[bounds[s] : bounds[s + 1]].astype(np.int64) for s in range(k)]
    _warn_if_sizes_drift(np.array([p.size for p in parts]), f, groups is not None)
    return parts


#: How far (as a share of all rows) a split's size may drift from its fraction before a warning.
SIZE_TOLERANCE = 0.05


def _warn_if_sizes_drift(sizes: np.ndarray, fractions: np.ndarray, grouped: bool) -> None:
    """Groups are indivisible: one holding most rows makes the requested fractions impossible. Say so."""
    shares = sizes / sizes.sum()
    if np.abs(shares - fractions).max() > SIZE_TOLERANCE:
        cause = " (groups cannot be divided: is one group most of the rows?)" if grouped else ""
        warn(
            f"split sizes {sizes.tolist()} are shares {np.round(shares, 3).tolist()}, not the requested "
            f"{np.round(fractions, 3).tolist()}{cause}",
            stacklevel=4,  # warn, _warn_if_sizes_drift, multilabel_split, the caller
        )


def _items(hot: np.ndarray, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What is assigned: rows, or groups of rows. ``(item of each row, (M, C) positives per item, rows per item)``."""
    n, c = hot.shape
    if groups is None:
        return np.arange(n), hot.astype(np.int32), np.ones(n, dtype=np.int64)
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ValueError(f"`groups` must have one entry per row, shape ({n},), got {g.shape}")
    _, item_of_row = np.unique(g, return_inverse=True)
    sizes = np.bincount(item_of_row)
    counts = np.stack([np.bincount(item_of_row, weights=hot[:, j], minlength=sizes.size) for j in range(c)], axis=1)
    return item_of_row, counts.astype(np.int32), sizes


def _assign(
    f: np.ndarray,
    counts: np.ndarray,
    sizes: np.ndarray,
    order: np.ndarray,
    n: int,
    advance: Callable[[int], None] = lambda n: None,
) -> np.ndarray:
    """The split of each item (iterative stratification, Sechidis et al. 2011, vectorised per label).

    1. Take the label with the fewest positives left.
    2. Give each split that has none of it yet one item, largest fraction first.
    3. Share the rest of that label's items by each split's shortfall against
       its desired count, within the room (rows) each split has left.
    4. Items with no positive label at all fill the remaining room at the end.
    """
    k, c = f.size, counts.shape[1]
    split = np.full(sizes.size, -1, dtype=np.int64)
    room = largest_remainder(f, n).astype(np.int64)
    desired = f[:, None] * counts.sum(axis=0, dtype=np.float64)[None, :]  # (k, C) positives each split should get
    have = np.zeros((k, c))
    remaining = counts.sum(axis=0, dtype=np.int64)
    unassigned = np.ones(sizes.size, dtype=bool)
    for _ in range(c):  # each round assigns every item holding one label, and that label is done
        if not remaining.any():
            break
        label = int(np.argmin(np.where(remaining > 0, remaining, np.iinfo(np.int64).max)))  # step 1
        items = order[(unassigned & (counts[:, label] > 0))[order]]
        amount = counts[items, label].astype(np.int64)
        total = int(amount.sum())
        free = np.maximum(room, 0)
        quota = np.zeros(k, dtype=np.int64)
        empty = np.flatnonzero((have[:, label] == 0) & (free > 0))  # step 2
        quota[empty[np.argsort(-f[empty], kind="stable")][:total]] = 1
        shortfall = np.maximum(desired[:, label] - have[:, label] - quota, 0)  # step 3
        quota += _allocate(total - int(quota.sum()), shortfall, free - quota)
        dest = _cut(amount, quota)
        split[items] = dest
        unassigned[items] = False
        for s in range(k):
            mine = items[dest == s]
            have[s] += counts[mine].sum(axis=0)
            room[s] -= sizes[mine].sum()
        remaining -= counts[items].sum(axis=0)
        advance(items.size)
    rest = order[unassigned[order]]  # step 4
    if rest.size:
        # room sums to the rows still unassigned, so the room left where no split overshot holds them all
        split[rest] = _cut(sizes[rest].astype(np.float64), np.maximum(room, 0))
        advance(rest.size)
    return split


def split_prevalence(labels: Any, splits: Sequence[Any]) -> np.ndarray:
    """Prevalence of each label overall (row 0) and in each split (rows 1..k), shape ``(k + 1, C)``.

    The split's quality is ``abs(table[1:] - table[0]).max()``.
    """
    hot = as_multihot(labels)
    rows = [hot.mean(axis=0)]
    for idx in splits:
        part = hot[np.asarray(idx, dtype=np.int64)]
        rows.append(part.mean(axis=0) if part.shape[0] else np.full(hot.shape[1], np.nan))
    return np.stack(rows)


try:  # an sklearn cross-validator when scikit-learn (the `metrics` extra) is installed; works alone without it
    from sklearn.model_selection import BaseCrossValidator as _CrossValidatorBase
except ImportError:  # pragma: no cover - exercised by tests/test_package.py in a subprocess without sklearn
    _CrossValidatorBase = object


class MultilabelStratifiedKFold(_CrossValidatorBase):
    """K-fold cross-validation that stratifies every label of a multi-label target (sklearn-compatible).

    Folds come from :func:`multilabel_split` with ``n_splits`` equal fractions, so
    they inherit its guarantees; pass ``groups`` to :meth:`split` to keep groups whole.

    Args:
        n_splits: number of folds, at least 2.
        shuffle: whether ties are broken in a random order (else input order).
        random_state: seed used when ``shuffle`` is true.

    Example:
        >>> import numpy as np
        >>> y = np.random.default_rng(1).random((90, 3)) < 0.3
        >>> cv = MultilabelStratifiedKFold(n_splits=3, shuffle=True, random_state=0)
        >>> [len(test) for _, test in cv.split(np.zeros((90, 1)), y)]
        [30, 30, 30]
    """

    def __init__(self, n_splits: int = 3, *, shuffle: bool = False, random_state: int | None = None) -> None:
        self.n_splits = check_int(n_splits, "n_splits", minimum=2)
        shuffle = check_bool(shuffle, "shuffle")
        if not shuffle and random_state is not None:
            raise ValueError("Setting a random_state has no effect since shuffle is False; leave random_state=None")
        if random_state is not None:
            random_state = check_int(random_state, "random_state", minimum=0)
        self.shuffle = shuffle
        self.random_state = random_state

    def _seed(self) -> int | None:
        if not self.shuffle:
            return None
        if self.random_state is None:
            return int(np.random.SeedSequence().generate_state(1)[0])  # fresh OS entropy, no global RNG
        return int(self.random_state)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        """Number of folds."""
        return self.n_splits

    def _iter_test_indices(self, X: Any = None, y: Any = None, groups: Any = None) -> Iterator[np.ndarray]:
        if y is None:
            raise ValueError("MultilabelStratifiedKFold needs the (N, C) label matrix `y`")
        yield from multilabel_split(y, [1.0 / self.n_splits] * self.n_splits, seed=self._seed(), groups=groups)

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train_index, test_index)`` for each fold."""
        n = len(X)
        if y is not None and len(y) != n:
            raise ValueError(f"`X` and `y` must have the same number of rows, got {n} and {len(y)}")
        for test in self._iter_test_indices(X, y, groups):
            mask = np.ones(n, dtype=bool)
            mask[test] = False
            yield np.flatnonzero(mask), test
