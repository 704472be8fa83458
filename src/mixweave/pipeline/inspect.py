"""What ``mixweave inspect`` reports: requested vs realised shares of a pipeline's plans, and a plot of them.

Everything here reads plans (flat indices) and per-index probabilities; no
sample is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._optional import require
from .._validation import check_int
from ..core import weights as wm
from ..core.report import membership, report_rows, share_report

__all__ = ["Inspectable", "plot_shares", "report"]


class Inspectable(Protocol):
    """The public API of :class:`~mixweave.Pipeline` that :func:`report` reads (nothing private)."""

    config: Any
    offsets: np.ndarray
    built: list[Any]
    path: Path | None

    def probabilities(self, epoch: int) -> np.ndarray: ...

    def global_plan(self, epoch: int) -> np.ndarray: ...

    def group_labels(self, role: str) -> np.ndarray | None: ...


def report(pipeline: Inspectable, epochs: int = 1) -> dict[str, Any]:
    """The inspection report of ``epochs`` epochs (see :meth:`mixweave.pipeline.Pipeline.inspect`)."""
    epochs = check_int(epochs, "epochs", minimum=1)
    if getattr(pipeline, "stream", False):
        return stream_report(pipeline, epochs)
    offsets = pipeline.offsets
    n = int(offsets[-1])
    source_ids = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    names = [b.name for b in pipeline.built]
    probs = [pipeline.probabilities(e) for e in range(epochs)]
    plans = [pipeline.global_plan(e) for e in range(epochs)]
    stats = [dict(wm.weight_stats(p)) for p in probs]
    per_epoch = [share_report(source_ids, probs[e], [plans[e]], num_groups=len(names)) for e in range(epochs)]
    out: dict[str, Any] = {
        "config": None if pipeline.path is None else str(pipeline.path),
        "strategy": pipeline.config.mixture.strategy,
        "sampler": pipeline.config.sampler.type,
        "epochs": epochs,
        "num_samples": int(plans[0].size),
        "total_size": n,
        "sources": report_rows(names, share_report(source_ids, probs, plans, num_groups=len(names))),
        "weight_stats": stats[0],
        "per_epoch": [
            {"epoch": e, "requested": r["requested"], "realised": r["realised"], "weight_stats": stats[e]}
            for e, r in enumerate(per_epoch)
        ],
    }
    class_names = pipeline.built[0].class_names if all(b.class_names for b in pipeline.built) else None
    for role, key in (("labels", "classes"), ("tasks", "tasks"), ("quality", "qualities")):
        values = pipeline.group_labels(role)
        if values is None:
            continue
        if role == "tasks":
            values = wm.primary_tasks(values)  # each row counts for its rarest labelled task
        group_names, member = membership(values, class_names if role == "labels" else None)
        out[key] = report_rows(group_names, share_report(member, probs, plans))
    return out


#: Positions of the single-process interleave a stream report follows.
STREAM_POSITIONS = 10_000


def stream_report(pipeline: Any, epochs: int = 1, positions: int = STREAM_POSITIONS) -> dict[str, Any]:
    """What a pipeline of stream sources will read: requested shares, and the sources its first positions pick.

    Nothing is read: the choices come from ``(seed, epoch)`` alone, as if no
    source ran out. ``largest_prefix_deviation`` is the largest gap, over
    every prefix, between a source's count and its share of the prefix
    (exact mode: under one sample).
    """
    dataset = pipeline.dataset
    names = list(dataset.names)
    per_epoch = []
    for epoch in range(epochs):
        requested = dataset.weights_at(epoch)
        picks = dataset.choices(epoch, positions)
        counts = np.cumsum(np.eye(len(names), dtype=np.int64)[picks], axis=0)
        deviation = float(np.abs(counts - np.outer(np.arange(1, positions + 1), requested)).max())
        realised = counts[-1] / positions
        per_epoch.append(
            {"epoch": epoch, "requested": requested.tolist(), "realised": realised.tolist(), "deviation": deviation}
        )
    sources = []
    for j, (name, source) in enumerate(zip(names, dataset.sources, strict=True)):
        files = getattr(source, "files", None)
        kind = f"{len(files)} shard file(s)" if files is not None else type(getattr(source, "source", source)).__name__
        sources.append(
            {
                "name": name,
                "kind": kind,
                "splittable": bool(getattr(source, "splittable", False)),
                "requested": float(np.mean([e["requested"][j] for e in per_epoch])),
                "realised": float(np.mean([e["realised"][j] for e in per_epoch])),
            }
        )
    return {
        "config": None if pipeline.path is None else str(pipeline.path),
        "stream": True,
        "strategy": pipeline.config.mixture.strategy,
        "sampler": "none",
        "mode": dataset.mode,
        "stopping": dataset.stopping,
        "epochs": epochs,
        "positions": positions,
        "sources": sources,
        "largest_prefix_deviation": max(e["deviation"] for e in per_epoch),
        "per_epoch": per_epoch,
    }


def plot_shares(result: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Any:
    """A figure of requested (dashed) and realised (solid) share of each source per epoch.

    Uses matplotlib's object API only: the global backend and pyplot's figure
    list are left alone (safe in notebooks). Saved as PNG when ``path`` is given.

    Returns:
        the ``matplotlib.figure.Figure``.
    """
    Figure = require("matplotlib.figure", extra="plot", feature="plot_shares").Figure

    epochs = [e["epoch"] for e in result["per_epoch"]]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for j, source in enumerate(result["sources"]):
        color = f"C{j % 10}"
        ax.plot(epochs, [e["requested"][j] for e in result["per_epoch"]], "--", color=color, alpha=0.7)
        ax.plot(epochs, [e["realised"][j] for e in result["per_epoch"]], "o-", color=color, label=source["name"])
    ax.set_xlabel("epoch")
    ax.set_ylabel("share of the epoch's samples")
    if result.get("stream"):
        ax.set_title(f"realised (solid) vs requested (dashed) shares of the first {result['positions']} positions")
    else:
        ax.set_title(f"realised (solid) vs requested (dashed) shares, {result['num_samples']} samples/epoch")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig


def plot_share_history(entries: list[dict[str, Any]], path: str | os.PathLike[str] | None = None) -> Any:
    """A figure of each group's share over the updates of an adaptive mixture (its ``history`` entries).

    Saved as PNG when ``path`` is given; returns the ``matplotlib.figure.Figure``.
    """
    Figure = require("matplotlib.figure", extra="plot", feature="plot_share_history").Figure

    steps = [e["step"] for e in entries]
    shares = np.asarray([e["shares"] for e in entries], dtype=np.float64)
    names = entries[-1].get("names") or [str(g) for g in range(shares.shape[1])]
    fig = Figure(figsize=(7, 4))
    ax = fig.add_subplot()
    for g, name in enumerate(names):
        ax.plot(steps, shares[:, g], color=f"C{g % 10}", label=str(name))
    ax.set_xlabel("training step")
    ax.set_ylabel("share of the draws")
    ax.set_title(f"adaptive shares over {len(entries) - 1} updates")
    ax.set_ylim(0, 1)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
