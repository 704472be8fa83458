"""What ``mixweave store info`` prints: sizes, shapes and a summary of each label type, read in chunks."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ..._progress import progress_bar
from .dataset import ClusterLabeledDataset
from .format import LABEL_COLUMNS

__all__ = ["store_summary"]


def store_summary(
    dataset_dir: str | os.PathLike[str],
    *,
    allow_pickle: bool = False,
    chunk: int = 65_536,
    progress: bool | None = None,
) -> dict[str, Any]:
    """What ``mixweave store info`` prints: sizes, shapes and a summary of each label type.

    Labels are read in chunks of ``chunk`` rows, so a store larger than
    memory can be summarised. For each label type: the share of one-hot
    rows, the mean entropy (nats) and how many rows have each cluster as
    their largest label value. ``progress``: a bar on stderr (``None``: for
    large stores when stderr is a terminal; see :mod:`mixweave._progress`).
    """
    ds = ClusterLabeledDataset(dataset_dir, cache_size=0, allow_pickle=allow_pickle)
    files = {p.name: p.stat().st_size for p in sorted(ds.dataset_dir.iterdir()) if p.is_file()}
    per_row = 2 * ds.embedding_dim * 4 + ds.n_clusters * 4
    summary: dict[str, Any] = {
        "path": str(ds.dataset_dir),
        "samples": len(ds),
        "embedding_dim": ds.embedding_dim,
        "n_clusters": ds.n_clusters,
        "label_encoding": ds.label_encoding,
        "label_array": ds.has_label_array,
        "files": files,
        "bytes": sum(files.values()),
        "labels": {},
        "cache_advice": {
            "cache_size": min(len(ds), max(100, len(ds) // 10)),
            "bytes_per_cached_sample": per_row,
            "note": (
                "10% of the samples (at least 100, at most all) per process when the same samples come back "
                "soon; for random batches over the whole store cache_size=0 reads faster (every DataLoader "
                "worker keeps its own cache)"
            ),
        },
    }
    with progress_bar(f"summarising {ds.dataset_dir.name}", len(ds) * len(LABEL_COLUMNS), progress) as advance:
        for column in LABEL_COLUMNS:
            summary["labels"][column.removesuffix("_label")] = _label_summary(ds, column, chunk, advance)
    return summary


def _label_summary(
    ds: ClusterLabeledDataset, column: str, chunk: int, advance: Callable[[int], None]
) -> dict[str, Any]:
    """One label type's one-hot share, mean entropy and argmax counts, read ``chunk`` rows at a time."""
    one_hot = 0
    entropy = 0.0
    argmax = np.zeros(ds.n_clusters, dtype=np.int64)
    for _, chunk_labels in ds.iter_labels((column,), chunk=chunk):
        labels = chunk_labels[:, 0].astype(np.float64)
        one_hot += int((((labels == 1).sum(axis=1) == 1) & ((labels == 0).sum(axis=1) == ds.n_clusters - 1)).sum())
        p = labels / np.maximum(labels.sum(axis=1, keepdims=True), 1e-300)
        entropy += float(-(p * np.log(np.where(p > 0, p, 1.0))).sum())
        argmax += np.bincount(labels.argmax(axis=1), minlength=ds.n_clusters)
        advance(labels.shape[0])
    n = max(len(ds), 1)
    return {"one_hot_share": one_hot / n, "mean_entropy": entropy / n, "argmax_counts": argmax.tolist()}
