"""What ``mixweave inspect`` reports: requested vs realised shares of a pipeline's plans, and a plot of them.

Everything here reads plans (flat indices) and per-index probabilities; no
sample is loaded.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from . import weights as wm
from ._validation import check_int

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = ["plot_shares", "report"]


def _membership(values: np.ndarray, names: list[str] | None) -> tuple[list[str], np.ndarray]:
    """Group names and a boolean ``(N, G)`` membership matrix (multi-hot labels: one row may be in several)."""
    if values.ndim == 2:
        hot = wm.as_multihot(values)
        return (names or [str(c) for c in range(hot.shape[1])]), hot
    if values.dtype.kind in "iu":
        ids = values.astype(np.int64)
        known = ids >= 0  # -1: no group (an unlabelled row)
        width = int(ids.max()) + 1 if known.any() else 0
        hot = np.zeros((ids.size, width), dtype=bool)
        hot[np.flatnonzero(known), ids[known]] = True
        return (names or [str(c) for c in range(width)]), hot
    uniq, inverse = np.unique(values.astype(str), return_inverse=True)
    return uniq.tolist(), np.eye(uniq.size, dtype=bool)[inverse]


def _rows(
    names: list[str], member: np.ndarray, probs: list[np.ndarray], plans: list[np.ndarray]
) -> list[dict[str, Any]]:
    drawn = np.concatenate(plans)
    seen = np.unique(drawn)
    requested = np.mean([p @ member for p in probs], axis=0)
    counts = member[drawn].sum(axis=0)
    unique = member[seen].sum(axis=0)
    size = member.sum(axis=0)
    return [
        {
            "name": name,
            "size": int(size[g]),
            "requested": float(requested[g]),
            "realised": float(counts[g] / max(drawn.size, 1)),
            "unique": int(unique[g]),
            "coverage": float(unique[g] / size[g]) if size[g] else 0.0,
            "repeats": int(counts[g] - unique[g]),
        }
        for g, name in enumerate(names)
    ]


def report(pipeline: Pipeline, epochs: int = 1) -> dict[str, Any]:
    """The inspection report of ``epochs`` epochs (see :meth:`mixweave.pipeline.Pipeline.inspect`)."""
    epochs = check_int(epochs, "epochs", minimum=1)
    offsets = pipeline.offsets
    n = int(offsets[-1])
    source_ids = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    names = [b.name for b in pipeline._built]
    probs = [pipeline.probabilities(e) for e in range(epochs)]
    plans = [pipeline.global_plan(e) for e in range(epochs)]
    source_member = np.eye(len(names), dtype=bool)[source_ids]
    stats = [dict(wm.weight_stats(p)) for p in probs]
    out: dict[str, Any] = {
        "config": None if pipeline.path is None else str(pipeline.path),
        "strategy": pipeline.config.mixture.strategy,
        "sampler": pipeline.config.sampler.type,
        "epochs": epochs,
        "num_samples": int(plans[0].size),
        "total_size": n,
        "sources": _rows(names, source_member, probs, plans),
        "weight_stats": stats[0],
        "per_epoch": [
            {
                "epoch": e,
                "requested": (probs[e] @ source_member).tolist(),
                "realised": (np.bincount(source_ids[plans[e]], minlength=len(names)) / plans[e].size).tolist(),
                "weight_stats": stats[e],
            }
            for e in range(epochs)
        ],
    }
    from .pipeline import _group_labels

    class_names = pipeline._built[0].class_names if all(b.class_names for b in pipeline._built) else None
    for role, key in (("labels", "classes"), ("tasks", "tasks"), ("quality", "qualities")):
        values = _group_labels(pipeline._built, role)
        if values is None:
            continue
        if role == "tasks":
            values = wm.primary_tasks(values)  # each row counts for its rarest labelled task
        group_names, member = _membership(np.asarray(values), class_names if role == "labels" else None)
        out[key] = _rows(group_names, member, probs, plans)
    return out


def plot_shares(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write a PNG of requested (dashed) and realised (solid) share of each source per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in result["per_epoch"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for j, source in enumerate(result["sources"]):
        color = f"C{j % 10}"
        ax.plot(epochs, [e["requested"][j] for e in result["per_epoch"]], "--", color=color, alpha=0.7)
        ax.plot(epochs, [e["realised"][j] for e in result["per_epoch"]], "o-", color=color, label=source["name"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("share of the epoch's samples")
    ax.set_title(f"realised (solid) vs requested (dashed) shares, {result['num_samples']} samples/epoch")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
