"""Multi-label evaluation metrics on scikit-learn, with a tracker that accumulates batches.

Predictions are probabilities of shape ``(N, C)`` (pass ``from_logits=True``
for raw scores); targets are the multi-hot ``(N, C)`` matrix. The counting
metrics (F1, precision, recall, Hamming loss) all come from one call to
:func:`sklearn.metrics.multilabel_confusion_matrix`; AUC and coverage error
are sklearn's; label ranking average precision is computed in vectorised
chunks because sklearn's loops over samples in Python (it is tested equal to
sklearn's).

A class that has no positive (or no negative) sample has no defined AUC: it
gets NaN, a warning names it, and macro averages are taken over the other
classes. Macro F1/precision/recall likewise average over classes that have at
least one positive sample, so a label absent from a split does not drag the
average to zero.

Example:
    >>> import numpy as np
    >>> y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    >>> p = np.array([[0.9, 0.2], [0.3, 0.8], [0.6, 0.4], [0.1, 0.3]])
    >>> m = compute_metrics(p, y, labels=["cat", "dog"])
    >>> m["auc_per_class"], m["f1_micro"]
    ({'cat': 1.0, 'dog': 1.0}, 0.8571428571428571)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist

from .._io import atomic_path
from .._optional import require
from .._validation import as_numpy, check_bool, check_int, check_real, show, warn, warn_renamed

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MACRO_AUC",
    "MetricsTracker",
    "calculate_auc_roc",
    "compute_metrics",
    "get_roc_curves",
    "label_ranking_average_precision",
    "plot_roc_curves",
]


#: The key of :func:`calculate_auc_roc`'s mean over classes (the original X-Lite function's key).
MACRO_AUC = "Macro_AUC"


def _to_numpy(x: Any) -> np.ndarray:
    return np.asarray(as_numpy(x))


def _check_pair(predictions: Any, targets: Any, from_logits: bool) -> tuple[np.ndarray, np.ndarray]:
    from_logits = check_bool(from_logits, "from_logits")
    p = _to_numpy(predictions)
    y = _to_numpy(targets)
    if p.ndim == 1:
        p = p[:, None]
    if y.ndim == 1:
        y = y[:, None]
    if p.ndim != 2 or p.shape != y.shape:
        raise ValueError(f"`predictions` and `targets` must both have shape (N, C), got {p.shape} and {y.shape}")
    if p.shape[0] == 0:
        raise ValueError("`predictions` must not be empty")
    if not np.issubdtype(p.dtype, np.floating):
        p = p.astype(np.float64)
    if not np.isfinite(p).all():
        raise ValueError("`predictions` must be finite, got NaN or inf")
    if from_logits:
        p = 1.0 / (1.0 + np.exp(-p.astype(np.float64)))
    elif p.min() < 0 or p.max() > 1:
        raise ValueError(
            f"`predictions` must be probabilities in [0, 1], got values in [{p.min():.4g}, {p.max():.4g}]; "
            "apply a sigmoid first or pass from_logits=True"
        )
    bad = (y != 0) & (y != 1)
    if bad.any():
        raise ValueError(f"`targets` must be multi-hot (0 or 1), got {_to_numpy(y[bad][0]).item()!r}")
    return p, y.astype(np.int8, copy=False)


def _labels_alias(labels: Sequence[str] | None, disease_labels: Sequence[str] | None) -> Sequence[str] | None:
    """``labels``, or the original X-Lite spelling ``disease_labels`` (deprecated); both is an error."""
    if disease_labels is None:
        return labels
    if labels is not None:
        raise TypeError(
            f"give `labels` or its original spelling `disease_labels`, not both; got labels={show(labels)} "
            f"and disease_labels={show(disease_labels)}"
        )
    warn_renamed("disease_labels", "labels", stacklevel=3)
    return disease_labels


def _check_threshold(threshold: Any) -> float:
    if isinstance(threshold, Sequence) and not isinstance(threshold, str):
        raise TypeError(
            "`threshold` (the third positional argument, as in the original) must be a number; pass class names "
            "as `labels=`"
        )
    return check_real(threshold, "threshold", low=0.0, high=1.0, low_open=True, high_open=True)


def _names(labels: Sequence[str] | None, num_classes: int) -> list[str]:
    if labels is None:
        return [str(j) for j in range(num_classes)]
    if isinstance(labels, (str, bytes)):
        raise TypeError(f"`labels` must be a list of class names, got a single string {show(labels)}")
    names = [str(name) for name in labels]
    if len(names) != num_classes:
        raise ValueError(f"`labels` must name {num_classes} classes, got {len(names)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"`labels` must name each class once; repeated: {repeated}")
    return names


def _defined(y: np.ndarray, names: list[str], what: str) -> np.ndarray:
    """Mask of classes with both positives and negatives; warn naming the others."""
    positives = y.sum(axis=0, dtype=np.int64)
    ok = (positives > 0) & (positives < y.shape[0])
    if not ok.all():
        missing = [names[j] for j in np.flatnonzero(~ok)]
        warn(
            f"{what} is undefined for class(es) {missing}: they have no positive (or no negative) sample; NaN",
            stacklevel=4,
        )
    return ok


def calculate_auc_roc(
    predictions: Any,
    targets: Any,
    labels: Sequence[str] | None = None,
    *,
    from_logits: bool = False,
    disease_labels: Sequence[str] | None = None,
) -> dict[str, float]:
    """Per-class ROC AUC (sklearn's ``roc_auc_score``) and their mean under ``"Macro_AUC"``.

    A class with one outcome only gets NaN and a warning, and is left out of
    ``"Macro_AUC"`` (NaN when no class is defined). ``disease_labels`` is the
    original's spelling of ``labels`` (deprecated).

    Raises:
        ValueError: for a class named ``"Macro_AUC"`` (it would be overwritten).
    """
    p, y = _check_pair(predictions, targets, from_logits)
    names = _names(_labels_alias(labels, disease_labels), y.shape[1])
    if MACRO_AUC in names:
        raise ValueError(f"`labels` must not contain {MACRO_AUC!r}: that key holds the mean over classes")
    per_class, _ = _auc_per_class(p, y, names)
    return {**per_class, MACRO_AUC: _mean_defined(per_class)}


def _auc_per_class(p: np.ndarray, y: np.ndarray, names: list[str]) -> tuple[dict[str, float], list[np.ndarray]]:
    """AUC by class name (NaN and a warning where undefined), and each class's sorted negatives (for micro AUC)."""
    aucs, negatives = _column_aucs(p, y, _defined(y, names, "ROC AUC"))
    return dict(zip(names, aucs, strict=True)), negatives


def _mean_defined(auc: dict[str, float]) -> float:
    """The mean of the AUCs that are defined (NaN when none is): the macro AUC."""
    defined = [v for v in auc.values() if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


def _mann_whitney(sorted_negatives: np.ndarray, positives: np.ndarray) -> float:
    """ROC AUC as P(positive > negative) + P(tie) / 2 (equal to the area under the ROC curve, ties included).

    One ``searchsorted`` of the positives into the sorted negatives: O(P log N').
    """
    below = np.searchsorted(sorted_negatives, positives, side="left")
    at_or_below = np.searchsorted(sorted_negatives, positives, side="right")
    wins = below.sum(dtype=np.float64) + 0.5 * (at_or_below - below).sum(dtype=np.float64)
    return float(wins / (positives.size * sorted_negatives.size))


def _column_aucs(p: np.ndarray, y: np.ndarray, ok: np.ndarray) -> tuple[list[float], list[np.ndarray]]:
    """Per-column AUC (NaN where undefined) and each column's sorted negative scores (reused for micro AUC).

    One sort of each column's negatives, no Python loop over samples; equal to
    sklearn's ``roc_auc_score`` per column (tested).
    """
    aucs, negatives = [], []
    for j in range(p.shape[1]):
        column, positive = p[:, j], y[:, j].astype(bool)
        neg = np.sort(column[~positive])
        negatives.append(neg)
        aucs.append(_mann_whitney(neg, column[positive]) if ok[j] else float("nan"))
    return aucs, negatives


def _micro_auc(p: np.ndarray, y: np.ndarray, negatives: list[np.ndarray]) -> float:
    """AUC of all (sample, class) pairs pooled: the sorted columns merge in one stable (run-aware) sort."""
    pooled = np.sort(np.concatenate(negatives), kind="stable")  # timsort merges the C sorted runs
    return _mann_whitney(pooled, p[y.astype(bool)])


def _coverage_error(y: np.ndarray, s: np.ndarray) -> float:
    """sklearn's ``coverage_error``: per row, how many labels score at least as high as its lowest positive."""
    lowest = np.where(y.astype(bool), s, np.inf).min(axis=1)
    covered = (s >= lowest[:, None]).sum(axis=1)
    return float(np.where(np.isinf(lowest), 0, covered).mean())


def get_roc_curves(
    predictions: Any,
    targets: Any,
    labels: Sequence[str] | None = None,
    *,
    from_logits: bool = False,
    disease_labels: Sequence[str] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Per-class ROC curves ``{name: {"fpr", "tpr", "thresholds"}}`` (sklearn's ``roc_curve``).

    Classes with a single outcome have no curve; they are left out with a
    warning. ``disease_labels`` is the original's spelling of ``labels`` (deprecated).
    """
    p, y = _check_pair(predictions, targets, from_logits)
    names = _names(_labels_alias(labels, disease_labels), y.shape[1])
    ok = _defined(y, names, "the ROC curve")
    curves = {}
    for j in np.flatnonzero(ok):
        fpr, tpr, thresholds = _skm().roc_curve(y[:, j], p[:, j])
        curves[names[j]] = {"fpr": fpr, "tpr": tpr, "thresholds": thresholds}
    return curves


def plot_roc_curves(
    curves: dict[str, dict[str, np.ndarray]], path: str | os.PathLike[str] | None = None, *, title: str = "ROC curves"
) -> Figure:
    """A figure of the curves from :func:`get_roc_curves` (with each class's AUC); saved as PNG when ``path`` is given.

    Uses matplotlib's object API only (no pyplot, no backend change: safe in notebooks).

    Returns:
        the ``matplotlib.figure.Figure``.
    """
    Figure = require("matplotlib.figure", extra="plot", feature="plot_roc_curves").Figure

    if not curves:
        raise ValueError("`curves` is empty: no class had both positive and negative samples")
    fig = Figure(figsize=(6, 6))
    ax = fig.add_subplot()
    for name, c in curves.items():
        auc = float(_trapezoid(c["tpr"], c["fpr"]))
        ax.plot(c["fpr"], c["tpr"], label=f"{name} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower right", fontsize="small")
    if path is not None:
        with atomic_path(Path(path)) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    return fig


def _skm() -> ModuleType:
    """``sklearn.metrics``, imported on first use (scikit-learn is the ``metrics`` extra)."""
    return require("sklearn.metrics", extra="metrics", feature="mixweave's ranking and ROC metrics")


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """The trapezoidal rule (``np.trapezoid`` on NumPy 2, ``np.trapz`` on 1.x), written once for both."""
    y, x = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def label_ranking_average_precision(targets: Any, scores: Any, *, chunk_size: int | None = None) -> float:
    """Label ranking average precision, equal to sklearn's ``label_ranking_average_precision_score``.

    For each positive label of a sample: the fraction of labels ranked at or
    above it that are positive; averaged per sample, then over samples. Rows with
    no positive or no negative label score 1, as in sklearn. Computed from
    per-row ranks (one sort per row), ``chunk_size`` rows at a time: time
    O(N C log C), memory O(chunk_size C) (not C squared). The default chunk
    holds about a million scores (``2**20 // C`` rows), so wide label sets
    do not multiply the memory.

    Raises:
        ValueError: for shapes that differ or are not ``(N, C)``, non-finite scores or non-binary targets.
    """
    s = _to_numpy(scores).astype(np.float64, copy=False)
    y = _to_numpy(targets)
    if s.ndim != 2 or s.shape != y.shape or s.shape[0] == 0:
        raise ValueError(f"`targets` and `scores` must both have shape (N, C), N > 0, got {y.shape} and {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError("`scores` must be finite, got NaN or inf")
    if ((y != 0) & (y != 1)).any():
        raise ValueError("`targets` must be multi-hot (0 or 1)")
    chunk_size = max(1, 2**20 // s.shape[1]) if chunk_size is None else check_int(chunk_size, "chunk_size", minimum=1)
    y = y.astype(bool)
    total = sum(_lrap_sum(y[i : i + chunk_size], s[i : i + chunk_size]) for i in range(0, y.shape[0], chunk_size))
    return float(total / y.shape[0])


def _min_rank(a: np.ndarray) -> np.ndarray:
    """Per-row ranks, ties given the lowest rank (``scipy.stats.rankdata(a, method="min", axis=1)``), by one sort."""
    order = np.argsort(a, axis=1, kind="stable")
    srt = np.take_along_axis(a, order, axis=1)
    new_value = np.ones(a.shape, dtype=bool)
    new_value[:, 1:] = srt[:, 1:] != srt[:, :-1]
    first = np.maximum.accumulate(np.where(new_value, np.arange(a.shape[1]), 0), axis=1)  # start of each tie run
    ranks = np.empty(a.shape, dtype=np.int64)
    np.put_along_axis(ranks, order, first + 1, axis=1)
    return ranks


def _lrap_sum(y: np.ndarray, s: np.ndarray) -> float:
    """The sum over rows of label ranking average precision, from per-row ranks."""
    c = y.shape[1]
    npos = y.sum(axis=1)
    # labels scoring at or above label j: c - (labels scoring below it); "min" ranks count those below, plus one
    at_or_above = c + 1 - _min_rank(s)
    # positives at or above a positive j: the same count inside the positives (negatives ranked at -inf)
    positives = np.where(y, s, -np.inf)
    pos_at_or_above = npos[:, None] + (c - npos)[:, None] + 1 - _min_rank(positives)
    precision = np.where(y, pos_at_or_above / at_or_above, 0.0).sum(axis=1)
    trivial = (npos == 0) | (npos == c)
    return float(np.where(trivial, 1.0, precision / np.maximum(npos, 1)).sum())


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(np.shape(num)), where=np.asarray(den) > 0)


def compute_metrics(
    predictions: Any,
    targets: Any,
    threshold: float = 0.5,
    disease_labels: Sequence[str] | None = None,
    *,
    labels: Sequence[str] | None = None,
    from_logits: bool = False,
) -> dict[str, Any]:
    """All the usual multi-label metrics in one pass.

    The positional order ``(predictions, targets, threshold, disease_labels)``
    is the original X-Lite function's; everything after it is keyword only.

    Args:
        predictions: ``(N, C)`` probabilities (or logits with ``from_logits=True``); tensors or arrays.
        targets: ``(N, C)`` multi-hot labels.
        threshold: probability at or above which a label is predicted positive.
        labels: class names for the per-class entries (default ``"0"``, ``"1"``, ...).
        disease_labels: the original's spelling of ``labels`` (deprecated).

    Returns:
        ``auc_macro``, ``auc_micro``, ``auc_per_class`` (dict), ``f1_macro``, ``f1_micro``,
        ``precision_macro``, ``precision_micro``, ``recall_macro``, ``recall_micro``,
        ``hamming_loss``, ``label_ranking_ap``, ``coverage_error``, and per-class
        ``f1_per_class``, ``precision_per_class``, ``recall_per_class``, ``support_per_class``.
        Per-class precision/recall/F1 that divide by zero are 0, as sklearn's ``zero_division=0``.
    """
    threshold = _check_threshold(threshold)
    p, y = _check_pair(predictions, targets, from_logits)
    names = _names(_labels_alias(labels, disease_labels), y.shape[1])
    auc, negatives = _auc_per_class(p, y, names)
    has_pos = y.any(axis=0)

    predicted = p >= threshold
    truth = y.astype(bool)
    tp = (predicted & truth).sum(axis=0, dtype=np.int64)
    fp = predicted.sum(axis=0, dtype=np.int64) - tp
    fn = truth.sum(axis=0, dtype=np.int64) - tp
    precision = _ratio(tp, tp + fp)
    recall = _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    tps, fps, fns = tp.sum(), fp.sum(), fn.sum()

    def macro(values: np.ndarray) -> float:
        return float(values[has_pos].mean()) if has_pos.any() else float("nan")

    both = y.any() and not y.all()
    return {
        "auc_macro": _mean_defined(auc),
        "auc_micro": _micro_auc(p, y, negatives) if both else float("nan"),
        "auc_per_class": auc,
        "f1_macro": macro(f1),
        "f1_micro": float(_ratio(2 * tps, 2 * tps + fps + fns)),
        "precision_macro": macro(precision),
        "precision_micro": float(_ratio(tps, tps + fps)),
        "recall_macro": macro(recall),
        "recall_micro": float(_ratio(tps, tps + fns)),
        "hamming_loss": float((fps + fns) / y.size),
        "label_ranking_ap": label_ranking_average_precision(y, p),
        "coverage_error": _coverage_error(y, p),
        "f1_per_class": dict(zip(names, map(float, f1), strict=True)),
        "precision_per_class": dict(zip(names, map(float, precision), strict=True)),
        "recall_per_class": dict(zip(names, map(float, recall), strict=True)),
        "support_per_class": dict(zip(names, map(int, tp + fn), strict=True)),
    }


class MetricsTracker:
    """Accumulate predictions and targets over batches; :meth:`compute` equals one :func:`compute_metrics` call.

    Memory grows linearly with the number of samples seen (the batches are kept,
    in their own dtype, until :meth:`reset`): AUC needs every score.

    Args:
        num_classes: number of label columns ``C``.
        labels: optional class names (``disease_labels``: the original's spelling, deprecated).
        threshold: decision threshold for the counting metrics (:meth:`compute` can override it).
        from_logits: whether :meth:`update` receives logits rather than probabilities.

    Example:
        >>> import torch
        >>> tracker = MetricsTracker(num_classes=2, from_logits=True)
        >>> tracker.update(torch.tensor([[3.0, -2.0], [-1.0, 2.0]]), torch.tensor([[1, 0], [0, 1]]))
        >>> tracker.update(torch.tensor([[0.5, 0.5]]), torch.tensor([[1, 1]]))
        >>> tracker.num_samples, tracker.compute()["f1_micro"]
        (3, 1.0)
    """

    def __init__(
        self,
        num_classes: int,
        labels: Sequence[str] | None = None,
        threshold: float = 0.5,
        *,
        from_logits: bool = False,
        disease_labels: Sequence[str] | None = None,
    ) -> None:
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        self.labels: list[str] = _names(_labels_alias(labels, disease_labels), self.num_classes)
        self.threshold = _check_threshold(threshold)
        self.from_logits: bool = check_bool(from_logits, "from_logits")
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        self._predictions: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self.num_samples = 0

    def update(self, predictions: Any, targets: Any) -> None:
        """Add one batch of ``(B, C)`` predictions and targets (multi-hot: 0 or 1).

        Raises:
            ValueError: for another shape, or targets that are not 0 or 1 (as :func:`compute_metrics`).
        """
        p, y = _to_numpy(predictions), _to_numpy(targets)
        if p.ndim != 2 or p.shape[1] != self.num_classes or p.shape != y.shape:
            raise ValueError(
                f"`predictions` and `targets` must both have shape (B, {self.num_classes}), got {p.shape} and {y.shape}"
            )
        bad = (y != 0) & (y != 1)
        if bad.any():
            raise ValueError(f"`targets` must be multi-hot (0 or 1), got {y[bad][0].item()!r}")
        self._predictions.append(p.copy())
        self._targets.append(y.astype(np.int8))
        self.num_samples += p.shape[0]

    def compute(self, threshold: float | None = None, *, sync: bool | None = None) -> dict[str, Any]:
        """Metrics over every batch since the last :meth:`reset` -- of every rank under ``torch.distributed``.

        Args:
            threshold: the decision threshold of this call (default: the tracker's).
            sync: gather the batches of every rank first (a collective: every rank
                must call ``compute``), so each rank computes the metrics of the
                whole evaluation set, as one process would. ``None`` (default):
                when a process group with more than one rank is initialised.
                ``False``: this rank's batches only.
        """
        threshold = self.threshold if threshold is None else _check_threshold(threshold)
        predictions, targets = self._gathered(sync)
        return compute_metrics(predictions, targets, threshold, labels=self.labels, from_logits=self.from_logits)

    def get_auc_scores(self, *, sync: bool | None = None) -> dict[str, float]:
        """:func:`calculate_auc_roc` over every batch since the last :meth:`reset` (per class and ``Macro_AUC``)."""
        predictions, targets = self._gathered(sync)
        return calculate_auc_roc(predictions, targets, self.labels, from_logits=self.from_logits)

    def _gathered(self, sync: bool | None) -> tuple[np.ndarray, np.ndarray]:
        predictions = np.concatenate(self._predictions) if self._predictions else np.empty((0, self.num_classes))
        targets = np.concatenate(self._targets) if self._targets else np.empty((0, self.num_classes), np.int8)
        if sync is not False and _world() > 1:
            # one dtype on every rank (a rank without batches has empty float64 rows)
            predictions, targets = _gather_rows(predictions.astype(np.float64)), _gather_rows(targets.astype(np.int8))
        elif sync:
            raise RuntimeError("`sync=True` needs an initialised torch.distributed process group; none is initialised")
        if predictions.shape[0] == 0:
            raise RuntimeError(
                "MetricsTracker has no batches: call update() before compute() or get_auc_scores() "
                "(the original X-Lite tracker returned {} here)"
            )
        return predictions, targets


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _gather_rows(rows: np.ndarray) -> np.ndarray:
    """Every rank's rows, in rank order (an all-gather of tensors padded to the longest rank's count)."""
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    local = torch.from_numpy(np.ascontiguousarray(rows)).to(device)
    count = torch.tensor([local.shape[0]], device=device)
    counts = [torch.zeros_like(count) for _ in range(_world())]
    dist.all_gather(counts, count)
    longest = int(max(int(c) for c in counts))
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: local.shape[0]] = local
    gathered = [torch.zeros_like(padded) for _ in counts]
    dist.all_gather(gathered, padded)
    return np.concatenate([g[: int(c)].cpu().numpy() for g, c in zip(gathered, counts, strict=True)])
