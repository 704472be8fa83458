"""Multi-label pipeline: stratified splits against iterstrat and scikit-multilearn, metrics against sklearn.

Needs the ``bench`` extra (``pip install -e .[bench]``) for the peers.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from mixweave import compute_metrics, multilabel_split, split_prevalence

from .harness import Row, best_of, peak_rss_of

# ChestX-ray14 label prevalences (NIH Data_Entry_2017, 112,120 images), in percent
CHESTXRAY14 = np.array([10.3, 2.5, 4.2, 0.2, 11.9, 2.2, 1.5, 5.1, 17.7, 5.2, 4.7, 3.0, 1.3, 2.8]) / 100
FRACTIONS = (0.7, 0.15, 0.15)


def labels(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, CHESTXRAY14.size)) < CHESTXRAY14).astype(np.int64)


def deviation(y: np.ndarray, parts: list[np.ndarray]) -> float:
    table = split_prevalence(y, parts)
    return float(np.abs(table[1:] - table[0]).max())


def iterstrat_split(y: np.ndarray) -> list[np.ndarray]:
    """70/15/15 with iterstrat: 30% held out, then halved (its documented way to get three splits)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    n = y.shape[0]
    first = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=0.3, random_state=0)
    train, rest = next(first.split(np.zeros(n), y))
    second = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=0.5, random_state=0)
    val, test = next(second.split(np.zeros(rest.size), y[rest]))
    return [train, rest[val], rest[test]]


def skmultilearn_split(y: np.ndarray) -> list[np.ndarray]:
    from skmultilearn.model_selection import iterative_train_test_split

    idx = np.arange(y.shape[0])[:, None]
    train, _, rest, y_rest = iterative_train_test_split(idx, y, test_size=0.3)
    val, _, test, _ = iterative_train_test_split(rest, y_rest, test_size=0.5)
    return [train[:, 0], val[:, 0], test[:, 0]]


def split_rows() -> list[Row]:
    rows = []
    for n, target in ((112_120, 10.0), (10**6, 5.0)):
        y = labels(n)
        d_ours = deviation(y, multilabel_split(y, FRACTIONS, seed=0))  # also warms up the allocator
        ours = best_of(lambda y=y: multilabel_split(y, FRACTIONS, seed=0), repeat=3)
        peer_parts = iterstrat_split(y)
        peer = best_of(lambda y=y: iterstrat_split(y))
        d_peer = deviation(y, peer_parts)
        rows.append(
            Row(
                f"multilabel_split 70/15/15, N={n:,} x 14 (ChestX-ray14 prevalences)",
                f"{ours:.3f} s, max dev {100 * d_ours:.4f} pp",
                f"iterstrat {peer:.2f} s, max dev {100 * d_peer:.4f} pp",
                f"{peer / ours:.1f}x faster, dev {d_ours / d_peer:.2f}x",
                f">= {target:g}x faster, dev <= 1.5x",
                peer / ours >= target and d_ours <= 1.5 * d_peer,
            )
        )
        if n == 112_120:
            sk_parts: list[np.ndarray] = []
            sk = best_of(lambda y=y, out=sk_parts: out.extend(skmultilearn_split(y)))  # once: quadratic, minutes
            d_sk = deviation(y, sk_parts)
            rows.append(
                Row(
                    f"multilabel_split 70/15/15, N={n:,} x 14",
                    f"{ours:.3f} s, max dev {100 * d_ours:.4f} pp",
                    f"scikit-multilearn {sk:.1f} s, max dev {100 * d_sk:.4f} pp",
                    f"{sk / ours:.0f}x faster, dev {d_ours / d_sk:.2f}x",
                    "(reference only)",
                    True,
                )
            )
    return rows


def sklearn_metrics(p: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict[str, object]:
    """The same metrics, each by its own sklearn call."""
    yhat = (p >= threshold).astype(np.int8)
    out: dict[str, object] = {
        "auc_per_class": skm.roc_auc_score(y, p, average=None),
        "auc_macro": skm.roc_auc_score(y, p, average="macro"),
        "auc_micro": skm.roc_auc_score(y, p, average="micro"),
        "hamming_loss": skm.hamming_loss(y, yhat),
        "label_ranking_ap": skm.label_ranking_average_precision_score(y, p),
        "coverage_error": skm.coverage_error(y, p),
    }
    for name, fn in (("f1", skm.f1_score), ("precision", skm.precision_score), ("recall", skm.recall_score)):
        for avg in ("macro", "micro"):
            out[f"{name}_{avg}"] = fn(y, yhat, average=avg, zero_division=0)
    return out


METRICS_MEMORY = """
import numpy as np
from mixweave import compute_metrics
rng = np.random.default_rng(0)
y = (rng.random(({n}, 14)) < {prev!r}).astype(np.int8)
p = np.clip(0.3 * y + rng.random(({n}, 14)) * 0.7, 0, 1).astype(np.float32)
compute_metrics(p, y)
"""

TRACKER_MEMORY = """
import numpy as np, torch
from mixweave import MetricsTracker
t = MetricsTracker(14)
rng = np.random.default_rng(0)
for _ in range({batches}):
    y = (rng.random((10_000, 14)) < 0.1).astype(np.int8)
    t.update(torch.from_numpy(rng.random((10_000, 14), dtype=np.float32)), torch.from_numpy(y))
print(sum(a.nbytes for a in t._predictions) + sum(a.nbytes for a in t._targets))
"""


WIDE_MEMORY = """
import numpy as np
from mixweave import compute_metrics
rng = np.random.default_rng(0)
y = (rng.random(({n}, {c})) < 0.05).astype(np.int8)
y[0] = 1
p = rng.random(({n}, {c}), dtype=np.float32)
import tracemalloc
tracemalloc.start()  # numpy reports its buffers to tracemalloc: the peak of what compute_metrics allocates
compute_metrics(p, y)
print('ADDED_BYTES', tracemalloc.get_traced_memory()[1])
"""


def auc_ratio_rows(n: int = 10**6, rounds: int = 3) -> list[Row]:
    """The whole metric set against sklearn's per-class ``roc_auc_score`` alone, alternating, median of rounds."""
    rng = np.random.default_rng(0)
    y = (rng.random((n, 14)) < CHESTXRAY14).astype(np.int8)
    p = np.clip(0.3 * y + rng.random((n, 14)) * 0.7, 0, 1).astype(np.float32)
    ratios = []
    for _ in range(rounds):
        peer = best_of(lambda: [skm.roc_auc_score(y[:, j], p[:, j]) for j in range(14)])
        ours = best_of(lambda: compute_metrics(p, y))
        ratios.append(ours / peer)
    median, best = float(np.median(ratios)), min(ratios)
    return [
        Row(
            f"compute_metrics (every metric), {n:,} x 14, vs sklearn per-class roc_auc_score alone",
            f"{median:.2f}x its time (median of {rounds}; best {best:.2f}x)",
            "sklearn roc_auc_score, one call per class",
            f"{median:.2f}x",
            "<= 1.5x",
            median <= 1.5,
        )
    ]


def wide_memory_rows(n: int = 4000, c: int = 800) -> list[Row]:
    """What compute_metrics adds to peak memory on a wide label set (the data itself excluded)."""
    _, out = peak_rss_of(WIDE_MEMORY.format(n=n, c=c))
    added_mb = int(next(line.split()[1] for line in out.splitlines() if line.startswith("ADDED_BYTES"))) / 2**20
    return [
        Row(
            f"compute_metrics added peak memory, {n:,} x {c} float32",
            f"{added_mb:.0f} MB",
            "",
            "",
            "< 300 MB, O(N*C)",
            added_mb < 300,
        )
    ]


def metrics_rows(n: int = 10**6) -> list[Row]:
    rng = np.random.default_rng(0)
    y = (rng.random((n, 14)) < CHESTXRAY14).astype(np.int8)
    p = np.clip(0.3 * y + rng.random((n, 14)) * 0.7, 0, 1).astype(np.float32)
    got = compute_metrics(p, y)
    ours = best_of(lambda: compute_metrics(p, y))
    reference: list[dict[str, object]] = []
    peer = best_of(lambda: reference.append(sklearn_metrics(p, y)))  # once: sklearn's ranking AP loops over rows
    ref = reference[0]
    for key in ("auc_macro", "auc_micro", "f1_macro", "label_ranking_ap", "coverage_error", "hamming_loss"):
        assert abs(got[key] - float(ref[key])) < 1e-9, key
    speed = Row(
        f"compute_metrics, {n:,} x 14 (12 metrics + per-class)",
        f"{ours:.1f} s",
        f"sklearn, one call per metric: {peer:.1f} s",
        f"{peer / ours:.1f}x faster",
        ">= 1x",
        peer >= ours,
    )
    return [speed, *auc_ratio_rows(n), *metrics_memory_rows(n), *wide_memory_rows()]


def metrics_memory_rows(n: int = 10**6) -> list[Row]:
    """Peak memory of compute_metrics and the growth of MetricsTracker, each in a fresh interpreter."""
    peak, _ = peak_rss_of(METRICS_MEMORY.format(n=n, prev=CHESTXRAY14.tolist()))
    # what the tracker holds after 25 and 100 batches of 10,000 rows; the process's peak RSS cannot show it,
    # because importing torch peaks higher (about 0.35 GiB) than 70 MB of kept scores and labels ever reach
    small = int(peak_rss_of(TRACKER_MEMORY.format(batches=25))[1])
    large = int(peak_rss_of(TRACKER_MEMORY.format(batches=100))[1])
    growth = large / small
    return [
        Row(
            f"compute_metrics peak RSS, {n:,} x 14 float32",
            f"{peak:.2f} GiB",
            "torchmetrics binned AUROC: out of memory at 24 GB (issue #5, not rerun)",
            "",
            "<= 2 GB",
            peak * 2**30 <= 2e9,
        ),
        Row(
            "MetricsTracker memory kept, 1M vs 250k samples (bytes of its stored scores and labels)",
            f"{growth:.2f}x for 4x the samples ({large / 2**20:.0f} MiB at 1M)",
            "",
            "",
            "linear (about 4x)",
            2.5 <= growth <= 5.0,
        ),
    ]


def run_split() -> list[Row]:
    return split_rows()


def run_metrics() -> list[Row]:
    return metrics_rows()


def run_auc() -> list[Row]:
    """The quick metric rows (#20): the whole set against sklearn's per-class AUC, and wide-label memory."""
    return [*auc_ratio_rows(), *wide_memory_rows()]
