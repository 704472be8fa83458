"""``mixweave store build|info|sync-labels``: the cluster-labelled embedding store."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path
from typing import Any

from .errors import CLIError
from .output import to_json

__all__ = ["add_parser"]

_NPZ_ARRAYS = ("base_embeddings", "steering_embeddings", "source_labels", "steering_labels", "combined_labels")
_NPZ_TEXT = ("texts", "sample_types", "chroma_ids", "suggestions", "steering_modes")


def _cmd_store_build(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from ..data.store import ClusterLabeledDataset

    path = Path(args.npz)
    if not path.is_file():
        raise FileNotFoundError(f"--from-npz: no such file {path}")
    if not zipfile.is_zipfile(path):
        raise CLIError(f"--from-npz: {path} is not an .npz file (numpy.savez writes a zip archive)")
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        unknown = sorted(keys - set(_NPZ_ARRAYS) - set(_NPZ_TEXT))
        if unknown:
            raise CLIError(f"{path}: unknown array(s) {unknown}; expected some of {[*_NPZ_ARRAYS, *_NPZ_TEXT]}")
        missing = [k for k in _NPZ_ARRAYS[:4] if k not in keys]
        if missing:
            raise CLIError(f"{path}: missing array(s) {missing}")
        try:
            arrays = {k: data[k] for k in keys}
        except ValueError as exc:  # object arrays need pickle, which is never used here
            raise CLIError(f"{path}: {exc}; store text as fixed-width unicode arrays (dtype 'U')") from exc
    text = {k: arrays[k].astype(str).tolist() for k in _NPZ_TEXT if k in arrays}
    ds = ClusterLabeledDataset.build(
        args.dir,
        base_embeddings=arrays["base_embeddings"],
        steering_embeddings=arrays["steering_embeddings"],
        source_labels=arrays["source_labels"],
        steering_labels=arrays["steering_labels"],
        combined_labels=arrays.get("combined_labels"),
        alpha=args.alpha,
        overwrite=args.overwrite,
        progress=False if args.quiet else None,  # None: a bar on stderr for large builds, when it is a terminal
        **text,
    )
    Console(soft_wrap=True).print(
        f"wrote {ds.dataset_dir}: {len(ds)} samples, embedding_dim={ds.embedding_dim}, n_clusters={ds.n_clusters}"
    )
    return 0


def _cmd_store_info(args: argparse.Namespace) -> int:

    from rich.console import Console
    from rich.table import Table

    from ..data.store import store_summary

    info = store_summary(args.dir, allow_pickle=args.allow_pickle, progress=False if args.quiet else None)
    if args.json:
        print(to_json(info))
        return 0
    console = Console(soft_wrap=True)
    console.print(
        f"[bold]{info['path']}[/bold]: {info['samples']:,} samples, embedding_dim={info['embedding_dim']}, "
        f"n_clusters={info['n_clusters']}, {info['bytes'] / 2**20:.1f} MiB on disk, labels {info['label_encoding']}"
        + ("" if info["label_array"] else " (no label array: `mixweave store sync-labels DIR` writes one)")
    )
    table = Table(title="labels")
    for column in ("label type", "one-hot rows", "mean entropy (nats)", "largest clusters (by argmax)"):
        table.add_column(column)
    for name, summary in info["labels"].items():
        counts = summary["argmax_counts"]
        top = sorted(range(len(counts)), key=lambda c: -counts[c])[:3]
        table.add_row(
            name,
            f"{100 * summary['one_hot_share']:.1f}%",
            f"{summary['mean_entropy']:.3f}",
            ", ".join(f"{c} ({counts[c]:,})" for c in top),
        )
    console.print(table)
    advice = info["cache_advice"]
    console.print(
        f"cache advice: cache_size={advice['cache_size']:,} ({advice['note']}), about "
        f"{advice['cache_size'] * advice['bytes_per_cached_sample'] / 2**20:.1f} MiB per process"
    )
    return 0


def _cmd_store_sync_labels(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..data.store import ClusterLabeledDataset

    ds = ClusterLabeledDataset(args.dir, allow_pickle=args.allow_pickle)
    created = not ds.has_label_array
    ds.sync_label_array(progress=False if args.quiet else None)
    action = "wrote a new" if created else "rewrote the"
    Console(soft_wrap=True).print(f"{action} label array of {ds.dataset_dir} from SQLite ({len(ds):,} samples)")
    return 0


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``DIR`` and ``--allow-pickle``: how every command that opens an existing store finds and reads it."""
    parser.add_argument("dir", help="the store directory")
    parser.add_argument(
        "--allow-pickle", action="store_true", help="read labels pickled by other tools (trusted files only)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar (none either when not a terminal)")


def add_parser(sub: Any) -> None:
    """Register ``store`` and its actions on the sub-command parsers ``sub``."""
    store = sub.add_parser(
        "store",
        help="build or inspect a ClusterLabeledDataset store (SQLite + memmap embeddings)",
        description="Build a cluster-labelled embedding store from arrays, or summarise one.",
    )
    store_sub = store.add_subparsers(dest="store_command", metavar="ACTION", required=True)
    info = store_sub.add_parser("info", help="size, dimensions, clusters, label summary and cache advice")
    _add_store_arguments(info)
    info.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    info.set_defaults(func=_cmd_store_info)
    build = store_sub.add_parser(
        "build",
        help="write a store from an .npz file",
        description=(
            "Write a store from an .npz with base_embeddings, steering_embeddings (N x D), source_labels, "
            "steering_labels (N x C) and optionally combined_labels, texts, sample_types, chroma_ids, suggestions, "
            "steering_modes (unicode arrays of length N). The .npz is read without pickle."
        ),
    )
    build.add_argument("dir", help="the store directory to create")
    build.add_argument("--from-npz", dest="npz", required=True, metavar="FILE", help="the .npz file to read")
    build.add_argument("--alpha", type=float, default=0.5, help="combined = alpha*source + (1-alpha)*steering (0.5)")
    build.add_argument("--overwrite", action="store_true", help="replace an existing store at DIR")
    build.add_argument("--quiet", "-q", action="store_true", help="no progress bar (none either when not a terminal)")
    build.set_defaults(func=_cmd_store_build)
    sync = store_sub.add_parser(
        "sync-labels",
        help="write the label array (labels.npy) from SQLite",
        description=(
            "Write the store's label array from the labels in SQLite: creates it for stores written by other "
            "tools, and brings it back in step after labels were changed in SQLite without update_labels."
        ),
    )
    _add_store_arguments(sync)
    sync.set_defaults(func=_cmd_store_sync_labels)
