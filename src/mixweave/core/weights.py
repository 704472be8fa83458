"""Pure weight math: label arrays in, per-sample weight vectors out.

Every strategy in mixweave is a non-negative weight per sample of one flat
index space (see ``docs/design.md``). The functions here build, compose and
describe such vectors. They hold no state, draw no random numbers and never
import torch.

Example:
    >>> import numpy as np
    >>> from mixweave.core.weights import compose_hierarchical, group_shares, inverse_frequency
    >>> source = np.array([0, 0, 0, 1, 1])           # two sources
    >>> label = np.array([0, 0, 1, 0, 1])            # class labels
    >>> w = compose_hierarchical(source, [0.8, 0.2], within=inverse_frequency(label, groups=source))
    >>> group_shares(w, source).round(3).tolist()    # source shares come out exact
    [0.8, 0.2]
"""

from __future__ import annotations

import zlib
from typing import Any, TypedDict

import numpy as np

from .._validation import as_numpy, check_choice, check_real, check_weights, warn
from .names import LABEL_REDUCTIONS

__all__ = [
    "WeightStats",
    "as_multihot",
    "compose_hierarchical",
    "compose_product",
    "fingerprint",
    "get_sample_weights",
    "group_shares",
    "inverse_frequency",
    "normalize",
    "primary_tasks",
    "scaled",
    "task_probabilities",
    "task_weights",
    "weight_stats",
]


class WeightStats(TypedDict):
    """Summary of a weight vector, computed on its normalised form ``p``."""

    min: float
    """Smallest probability, zeros included."""
    max: float
    """Largest probability."""
    entropy: float
    """Shannon entropy ``-sum(p log p)`` in nats; ``log(N)`` for uniform weights."""
    effective_samples: float
    """Kish effective sample size ``1 / sum(p**2)``; ``N`` for uniform weights."""


def normalize(weights: Any, *, name: str = "weights") -> np.ndarray:
    """Return ``weights`` as float64 probabilities summing to 1.

    Args:
        weights: 1-D array-like of finite, non-negative numbers, not all zero.
        name: argument name used in error messages.

    Returns:
        A new float64 array of shape ``(N,)`` summing to 1.

    Raises:
        TypeError: if ``weights`` is not numeric.
        ValueError: if it is empty, not 1-D, holds NaN/inf/negative values or is all zero.
    """
    arr = scaled(check_weights(weights, name))
    return arr / arr.sum()


def scaled(weights: np.ndarray) -> np.ndarray:
    """``weights`` times the power of two that brings their largest into ``[0.5, 1)``.

    Probabilities do not change, and multiplying by a power of two is exact,
    but the sum can no longer overflow (finite weights near 1.7e308) and
    subnormal weights (5e-324) regain the precision a cumulative sum needs.
    Weights more than ~2**1074 times smaller than the largest become 0: no
    float64 cumulative sum could draw them anyway. When no scaling is needed
    (the largest is already in ``[0.5, 1)``, or every weight is 0) the input
    array itself is returned, not a copy.

    Example:
        >>> bool(scaled(np.array([1.7e308, 1.7e308, 1.0])).sum() < np.inf)
        True
    """
    top = float(weights.max(initial=0.0))  # weights are non-negative: 0 for an empty or all-zero array
    if top == 0.0:
        return weights
    _, exponent = np.frexp(top)
    return weights if exponent == 0 else np.ldexp(weights, -int(exponent))


def _group_ids(groups: Any, size: int | None, name: str = "groups") -> np.ndarray:
    """Check integer group ids (of length ``size`` when given) and return them as ``intp``."""
    ids = np.asarray(groups)
    if ids.ndim != 1 or (size is not None and ids.shape[0] != size):
        raise ValueError(f"`{name}` must have shape ({size},) to match the weights, got {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"`{name}` must hold integer group ids, got dtype {ids.dtype}")
    if ids.size and ids.min() < 0:
        raise ValueError(f"`{name}` must hold non-negative group ids, got {int(ids.min())}")
    return ids.astype(np.intp, copy=False)


def compose_product(*factors: Any) -> np.ndarray:
    """Multiply weight factors elementwise and normalise the result.

    Each factor is a 1-D non-negative array over the same samples. A sample is
    drawn in proportion to the product, so a factor of zero excludes it.

    Raises:
        ValueError: if no factor is given, lengths differ, or the product is all zero.
    """
    if not factors:
        raise ValueError("`factors` must hold at least one weight array, got none")
    arrays = [check_weights(f, f"factors[{i}]", allow_all_zero=True) for i, f in enumerate(factors)]
    size = arrays[0].shape[0]
    for i, arr in enumerate(arrays[1:], start=1):
        if arr.shape[0] != size:
            raise ValueError(f"`factors[{i}]` must have length {size} like factors[0], got {arr.shape[0]}")
    product = arrays[0].copy()
    for arr in arrays[1:]:
        product *= arr
    if not product.any():
        raise ValueError("the product of `factors` is zero for every sample; nothing could be drawn")
    return product / product.sum()


def compose_hierarchical(groups: Any, group_weights: Any, *, within: Any = None) -> np.ndarray:
    """Weights whose group totals equal ``group_weights`` exactly.

    ``within`` (other factors, e.g. class balance) acts only inside each group:
    sample ``i`` of group ``g`` gets ``share[g] * within[i] / sum(within[g])``.
    This is how "sources 80/20, class-balanced inside each source" is expressed.

    Args:
        groups: integer group id per sample, shape ``(N,)``.
        group_weights: non-negative weight per group, shape ``(G,)``; normalised.
        within: optional non-negative weight per sample, shape ``(N,)``; uniform when omitted.

    Returns:
        float64 probabilities of shape ``(N,)``.

    Raises:
        ValueError: if a group with positive weight has no sample or only zero ``within`` weight.
    """
    shares = normalize(group_weights, name="group_weights")
    if within is None:
        ids = _group_ids(groups, None)
        inner = np.ones(ids.shape[0])
    else:
        inner = check_weights(within, "within", allow_all_zero=True)
        ids = _group_ids(groups, inner.shape[0])
    if ids.size and ids.max() >= shares.size:
        raise ValueError(f"`groups` holds id {int(ids.max())} but `group_weights` has only {shares.size} entries")
    mass = np.bincount(ids, weights=inner, minlength=shares.size)
    starved = np.flatnonzero((shares > 0) & (mass <= 0))
    if starved.size:
        g = int(starved[0])
        raise ValueError(
            f"group {g} has weight {shares[g]:.6g} in `group_weights` but no sample with positive weight in it"
        )
    # A group without mass has share 0 (checked above): its scale is 0, not 0/0.
    scale = shares / np.where(mass > 0, mass, 1.0)
    return inner * scale[ids]


def inverse_frequency(labels: Any, *, groups: Any = None) -> np.ndarray:
    """Per-sample weight ``1 / count(label)`` so that every class gets the same total.

    With ``groups``, classes are counted inside each group, so each class is
    balanced within its own group (combine with :func:`compose_hierarchical`).

    Args:
        labels: integer class id per sample, shape ``(N,)``.
        groups: optional integer group id per sample, shape ``(N,)``.

    Returns:
        float64 weights of shape ``(N,)`` (not normalised).
    """
    ids = np.asarray(labels)
    if ids.ndim != 1:
        raise ValueError(f"`labels` must be 1-D class ids, got shape {ids.shape}")
    if ids.size == 0:
        raise ValueError("`labels` must not be empty")
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    if groups is not None:
        gid = _group_ids(groups, ids.size)
        key = gid.astype(np.int64) * counts.size + inverse
        _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse].astype(np.float64)


def as_multihot(labels: Any, *, name: str = "labels", num_classes: int | None = None) -> np.ndarray:
    """Return labels as a boolean ``(N, C)`` multi-hot matrix.

    Accepts a multi-hot matrix (bool, or numbers that are all 0 or 1) or a 1-D
    array of integer class ids, which becomes a one-hot matrix with
    ``num_classes`` columns (default ``max id + 1``). Torch tensors are accepted.

    Example:
        >>> as_multihot([2, 0]).astype(int).tolist()
        [[0, 0, 1], [1, 0, 0]]
    """
    arr = np.asarray(as_numpy(labels))
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"`{name}` must be a numeric array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {arr.shape}")
    if arr.ndim == 1:
        if not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"1-D `{name}` must be integer class ids, got dtype {arr.dtype}")
        if arr.min() < 0:
            raise ValueError(f"class ids in `{name}` must be >= 0, got {int(arr.min())}")
        width = int(arr.max()) + 1 if num_classes is None else num_classes
        if arr.max() >= width:
            raise ValueError(f"class ids in `{name}` must be < num_classes={width}, got {int(arr.max())}")
        out = np.zeros((arr.size, width), dtype=bool)
        out[np.arange(arr.size), arr] = True
        return out
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be 1-D class ids or a 2-D (N, C) multi-hot matrix, got shape {arr.shape}")
    if arr.dtype != bool:
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            row, col = (int(i[0]) for i in np.nonzero(bad))
            raise ValueError(
                f"multi-hot `{name}` must hold only 0 and 1, got {arr[row, col].item()!r} at [{row}, {col}]"
            )
        arr = arr != 0
    return arr


def get_sample_weights(
    labels: Any, *, reduce: str = "max", class_weights: Any = None, no_finding_share: float | None = None
) -> np.ndarray:
    """Per-sample weights from the rarity of each sample's positive classes.

    A sample's weight combines the weights of its positive classes with
    ``reduce`` (``"max"``, ``"mean"`` or ``"sum"``). Rows with no positive label
    form their own "no finding" class, weighted like any other class. By default
    a class weighs ``N / count`` (inverse frequency, the "no finding" class
    included), so with 1-D class ids every class gets the same total weight.

    Args:
        labels: ``(N, C)`` multi-hot matrix or ``(N,)`` integer class ids.
        reduce: how a multi-label row combines its classes' weights.
        class_weights: optional ``(C,)`` weights to use instead of inverse
            frequency, or ``(C + 1,)`` with the last entry for "no finding" rows.
            With ``(C,)``, "no finding" rows keep their inverse-frequency weight.
        no_finding_share: the share of the total weight (so of the draws) that
            rows with no positive label get together, in ``[0, 1)``; the other
            rows keep their relative weights. By default the "no finding" rows
            are one class among ``C + 1``: in ChestX-ray14 they fall from 47% of
            the rows to about 1/15 of the draws.

    Returns:
        float64 weights of shape ``(N,)``, ready for :class:`~mixweave.WeightedSampler`.

    A class with no positive sample gets weight 0 rather than ``inf``: no row
    carries it, so it changes nothing.

    Example:
        >>> labels = [[1, 0], [0, 0], [0, 0], [1, 1]]
        >>> get_sample_weights(labels).tolist()   # class counts 2, 1; "no finding" 2
        [2.0, 2.0, 2.0, 4.0]
    """
    check_choice(reduce, "reduce", LABEL_REDUCTIONS)
    hot = as_multihot(labels)
    n, c = hot.shape
    positives = hot.sum(axis=1)
    empty = positives == 0
    counts = hot.sum(axis=0).astype(np.float64)
    n_empty = int(empty.sum())
    inverse = n / np.where(counts > 0, counts, np.inf)  # a class no row carries weighs 0
    empty_weight = n / max(n_empty, 1)  # used only when some row has no label
    if class_weights is not None:
        cw = check_weights(class_weights, "class_weights", allow_all_zero=True)
        if cw.size not in (c, c + 1):
            raise ValueError(
                f"`class_weights` must have {c} entries (one per class) or {c + 1} (plus 'no finding'), got {cw.size}"
            )
        inverse = cw[:c]
        if cw.size == c + 1:
            empty_weight = float(cw[c])
    if reduce == "max":
        combined = np.where(hot, inverse, 0.0).max(axis=1)
    else:
        combined = hot.astype(np.float64) @ inverse
        if reduce == "mean":
            combined /= np.maximum(positives, 1)  # rows without a label are set below
    combined[empty] = empty_weight
    if no_finding_share is not None:
        share = check_real(no_finding_share, "no_finding_share", low=0.0, high=1.0, high_open=True)
        _set_empty_share(combined, empty, share)
    return combined


def _set_empty_share(weights: np.ndarray, empty: np.ndarray, share: float) -> None:
    """Scale the weights of the ``empty`` rows (in place) so that they hold ``share`` of the total."""
    rest = float(weights[~empty].sum())
    if not empty.any() or rest == 0:
        if share > 0:
            warn(f"`no_finding_share` = {share} has no effect: every row has {'a' if not empty.any() else 'no'} label")
        return
    weights[empty] = share * rest / (1.0 - share) / int(empty.sum())


def group_shares(weights: Any, groups: Any, *, num_groups: int | None = None) -> np.ndarray:
    """Share of the total weight held by each group, shape ``(G,)``."""
    p = normalize(weights)
    ids = _group_ids(groups, p.shape[0])
    return np.bincount(ids, weights=p, minlength=num_groups or 0)


def fingerprint(weights: Any) -> int:
    """A CRC-32 of the weights as float64: equal weights give equal numbers, in any process.

    Saved states carry it so that a state is never restored into a sampler
    drawing from other weights (see ``PlanSampler.load_state_dict``).

    Example:
        >>> fingerprint([1, 2, 3]) == fingerprint(np.array([1.0, 2.0, 3.0])) != fingerprint([1, 2, 4])
        True
    """
    return zlib.crc32(np.ascontiguousarray(np.asarray(weights, dtype=np.float64)).data)


def weight_stats(weights: Any) -> WeightStats:
    """Summarise a weight vector: min/max probability, entropy and effective sample size.

    Example:
        >>> weight_stats([1, 1, 1, 1])["effective_samples"]
        4.0
    """
    p = normalize(weights)
    positive = p[p > 0]
    return WeightStats(
        min=float(p.min()),
        max=float(p.max()),
        entropy=float(-(positive * np.log(positive)).sum()),
        effective_samples=float(1.0 / np.square(p).sum()),
    )


def _task_ids(targets: Any) -> np.ndarray | None:
    """The task id per row when ``targets`` is given as a 1-D integer array (-1 = no label), else None."""
    arr = np.asarray(targets)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        return None
    if arr.size == 0 or arr.max() < 0:
        raise ValueError("`targets` has no labelled row: every task id is -1")
    if arr.min() < -1:
        raise ValueError(f"`targets` task ids must be >= -1 (-1 = no label), got {int(arr.min())}")
    return arr.astype(np.intp, copy=False)


def _label_mask(targets: Any) -> np.ndarray:
    """``(N, T)`` boolean mask of labelled entries (non-NaN) of a multi-task target array."""
    arr = np.asarray(targets, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(
            f"`targets` must be a 2-D (N, T) array with NaN for missing labels, or 1-D integer task ids, "
            f"got shape {arr.shape}"
        )
    mask = ~np.isnan(arr)
    if not mask.any():
        raise ValueError("`targets` has no labelled entry: every value is NaN")
    return mask


def _task_counts(targets: Any) -> np.ndarray:
    ids = _task_ids(targets)
    return np.bincount(ids[ids >= 0]) if ids is not None else _label_mask(targets).sum(axis=0)


def task_probabilities(targets: Any, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Task draw probabilities ``p_t ∝ n_t ** -alpha`` over tasks with labels, and the counts ``n_t``.

    ``targets`` is an ``(N, T)`` array with NaN for missing labels, or (for
    one task per row, the compact form for many tasks) a 1-D integer array of
    task ids with -1 for unlabelled rows. ``alpha = 0`` draws tasks uniformly,
    ``alpha = 1`` in inverse proportion to their label counts. Tasks without
    labels get probability 0.
    """
    counts = _task_counts(targets)
    p = np.zeros(counts.shape[0])
    present = counts > 0
    p[present] = counts[present].astype(np.float64) ** -float(alpha)
    return p / p.sum(), counts


def task_weights(targets: Any, alpha: float) -> np.ndarray:
    """Per-row weights of "draw a task with ``p_t ∝ n_t^-alpha``, then a labelled row of it uniformly".

    Row ``i`` gets ``sum over its labelled tasks t of p_t / n_t``; unlabelled
    rows get 0. Drawing rows by these weights is exactly the two-step law.
    """
    p, counts = task_probabilities(targets, alpha)
    per_label = p / np.maximum(counts, 1)  # a task without labels has p = 0
    ids = _task_ids(targets)
    if ids is not None:
        return np.where(ids >= 0, per_label[ids], 0.0)
    return _label_mask(targets) @ per_label


def primary_tasks(targets: Any) -> np.ndarray:
    """For each row, its rarest labelled task (fewest labels overall); -1 for unlabelled rows."""
    ids = _task_ids(targets)
    if ids is not None:
        return ids.copy()  # a new array, never the caller's own
    mask = _label_mask(targets)
    counts = mask.sum(axis=0)
    rarity = np.where(mask, counts[None, :], np.iinfo(np.int64).max)
    primary = np.argmin(rarity, axis=1)
    return np.where(mask.any(axis=1), primary, -1)
