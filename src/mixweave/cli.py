"""The ``mixweave`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ._version import __version__

__all__ = ["build_parser", "main"]


class CLIError(Exception):
    """An error reported to the user as one line, with exit code 2."""


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    from .demo import DemoConfig, run_demo  # after the checks: a typo is reported without loading torch

    run_demo(DemoConfig(out=Path(args.out), epochs=args.epochs, seed=args.seed))
    return 0


def _split_names(names: Sequence[str] | None, k: int) -> list[str]:
    if names:
        if len(names) != k:
            raise CLIError(f"--names must give {k} names, one per fraction, got {len(names)}")
        if len(set(names)) != k:
            raise CLIError(f"--names must be distinct, got {list(names)}")
        return list(names)
    return {2: ["train", "test"], 3: ["train", "val", "test"]}.get(k, [f"split{i + 1}" for i in range(k)])


def _cmd_split(args: argparse.Namespace) -> int:
    if not Path(args.csv).is_file():  # before the imports below, which load torch
        raise FileNotFoundError(f"label CSV not found: {args.csv}")
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from .imagedata import read_label_csv, write_label_csv
    from .splits import multilabel_split, split_prevalence

    names = _split_names(args.names, len(args.fractions))
    table = read_label_csv(args.csv, labels=args.labels, image_column=args.image_column)
    groups = None
    if args.group_column:
        groups = np.asarray(table.column(args.group_column))
    parts = multilabel_split(table.labels, args.fractions, seed=args.seed, groups=groups)
    out = Path(args.out)
    written = [write_label_csv(out / f"{name}.csv", table, idx) for name, idx in zip(names, parts, strict=True)]

    prevalence = split_prevalence(table.labels, parts)
    view = Table(title=f"label prevalence (%) in {args.csv} ({table.format} layout, {len(table.rows)} rows)")
    view.add_column("label")
    view.add_column("all", justify="right")
    for name, idx in zip(names, parts, strict=True):
        view.add_column(f"{name} ({len(idx)})", justify="right")
    positives = table.labels.sum(axis=0).astype(int)
    for j, label in enumerate(table.label_names):
        view.add_row(f"{label} (n={positives[j]})", *(f"{100 * v:.3f}" for v in prevalence[:, j]))
    console = Console()
    console.print(view)
    deviation = float(np.abs(prevalence[1:] - prevalence[0]).max())
    console.print(f"max |prevalence in split - overall| = {100 * deviation:.4f} percentage points")
    if groups is not None:
        console.print(f"{len(set(groups.tolist()))} groups from column {args.group_column!r}, none spans two splits")
    for path in written:
        console.print(f"wrote {path}")
    return 0


_NPZ_ARRAYS = ("base_embeddings", "steering_embeddings", "source_labels", "steering_labels", "combined_labels")
_NPZ_TEXT = ("texts", "sample_types", "chroma_ids", "suggestions", "steering_modes")


def _cmd_store_build(args: argparse.Namespace) -> int:
    import numpy as np
    from rich.console import Console

    from .store import ClusterLabeledDataset

    path = Path(args.npz)
    if not path.is_file():
        raise FileNotFoundError(f"--from-npz: no such file {path}")
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
        **text,
    )
    Console(soft_wrap=True).print(
        f"wrote {ds.dataset_dir}: {len(ds)} samples, embedding_dim={ds.embedding_dim}, n_clusters={ds.n_clusters}"
    )
    return 0


def _cmd_store_info(args: argparse.Namespace) -> int:
    import json

    from rich.console import Console
    from rich.table import Table

    from .store import store_summary

    info = store_summary(args.dir, allow_pickle=args.allow_pickle)
    if args.json:
        print(json.dumps(info))
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

    from .store import ClusterLabeledDataset

    ds = ClusterLabeledDataset(args.dir, allow_pickle=args.allow_pickle)
    created = not ds.has_label_array
    ds.sync_label_array()
    action = "wrote a new" if created else "rewrote the"
    Console(soft_wrap=True).print(f"{action} label array of {ds.dataset_dir} from SQLite ({len(ds):,} samples)")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if not Path(args.config).is_file():  # before the imports below, which load torch
        raise FileNotFoundError(f"config file not found: {args.config}")
    import json

    from .inspection import plot_shares
    from .pipeline import from_config

    result = from_config(args.config).inspect(args.epochs)
    if args.plot:
        plot_shares(result, args.plot)
    if args.json:
        print(json.dumps(result))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    stats = result["weight_stats"]
    console.print(
        f"[bold]{args.config}[/bold]: strategy {result['strategy']}, sampler {result['sampler']}, "
        f"{result['num_samples']:,} samples/epoch over {result['total_size']:,} rows, {result['epochs']} epoch(s); "
        f"effective samples {stats['effective_samples']:,.1f}, entropy {stats['entropy']:.3f} nats"
    )
    for key, title in (("sources", "source"), ("classes", "class"), ("tasks", "task"), ("qualities", "quality")):
        if key not in result:
            continue
        table = Table(title=f"per {title}: requested vs realised share")
        for column in (title, "rows", "requested", "realised", "unique drawn", "coverage", "repeats"):
            table.add_column(column, justify="left" if column == title else "right")
        for row in result[key]:
            table.add_row(
                row["name"],
                f"{row['size']:,}",
                f"{100 * row['requested']:.2f}%",
                f"{100 * row['realised']:.2f}%",
                f"{row['unique']:,}",
                f"{100 * row['coverage']:.1f}%",
                f"{row['repeats']:,}",
            )
        console.print(table)
    if args.plot:
        console.print(f"wrote {args.plot}")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    from .config import describe, load_dataset_configs

    configs = load_dataset_configs(args.parent)
    if args.session:
        chosen = [c for c in configs if c["session"] in args.session]
        unknown = sorted(set(args.session) - {c["session"] for c in chosen})
        if unknown:
            raise CLIError(f"--session {unknown} not in {args.parent}; sessions: {[c['session'] for c in configs]}")
        configs = chosen
    print(describe(configs), end="")
    return 0


def _add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """``DIR`` and ``--allow-pickle``: how every command that opens an existing store finds and reads it."""
    parser.add_argument("dir", help="the store directory")
    parser.add_argument(
        "--allow-pickle", action="store_true", help="read labels pickled by other tools (trusted files only)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``mixweave`` command (subcommands included)."""
    parser = argparse.ArgumentParser(
        prog="mixweave",
        description="Control what a PyTorch model sees: weighted mixing, balancing and curricula.",
    )
    parser.add_argument("--version", action="version", version=f"mixweave {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = sub.add_parser(
        "demo",
        help="show what balancing and mixing do, on scikit-learn's bundled digits (about a minute on a CPU)",
        description=(
            "Train a small network on scikit-learn's handwritten digits: (1) on a 100:1 long-tailed training set with "
            "plain shuffling, the class-balanced sampler, the class-balanced loss and the focal loss; (2) on real and "
            "distorted synthetic images mixed at several ratios. Writes report.json, report.md and PNG plots."
        ),
    )
    demo.add_argument("--out", default="mixweave-demo", help="folder for the report and plots (default: mixweave-demo)")
    demo.add_argument("--epochs", type=int, default=30, help="training epochs per run (default: 30)")
    demo.add_argument("--seed", type=int, default=0, help="seed of every random choice (default: 0)")
    demo.set_defaults(func=_cmd_demo)

    split = sub.add_parser(
        "split",
        help="stratified train/val/test split of a multi-label CSV",
        description=(
            "Split a label CSV (NIH layout with 'Image Index' and '|'-separated 'Finding Labels', or one 0/1 "
            "column per label) so every label's prevalence is kept in each split. Writes one CSV per split "
            "with every original column and prints a per-label prevalence table."
        ),
    )
    split.add_argument("csv", help="the label CSV to split")
    split.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[0.7, 0.15, 0.15],
        metavar="F",
        help="share of rows per split, summing to 1 (default: 0.7 0.15 0.15)",
    )
    split.add_argument("--out", required=True, help="folder for the split CSVs (created if missing)")
    split.add_argument("--names", nargs="+", metavar="NAME", help="file names of the splits (default: train val test)")
    split.add_argument("--group-column", help="column whose groups (e.g. 'Patient ID') must not span two splits")
    split.add_argument("--labels", nargs="+", metavar="LABEL", help="label names/columns (default: detected)")
    split.add_argument("--image-column", help="column of image file names (default: detected)")
    split.add_argument("--seed", type=int, default=0, help="seed of the tie-breaking order (default: 0)")
    split.set_defaults(func=_cmd_split)

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

    inspect = sub.add_parser(
        "inspect",
        help="what a pipeline config will draw: requested vs realised shares, coverage, repeats (nothing loaded)",
        description=(
            "Build the pipeline of CONFIG without loading a sample, draw the plans of N epochs and report, per source, "
            "class, task and quality group, the requested and realised shares, how many distinct rows were drawn and "
            "how often rows repeat, plus the weight statistics."
        ),
    )
    inspect.add_argument("config", help="a pipeline YAML, a mixed-data YAML or a sessions parent")
    inspect.add_argument("--epochs", type=int, default=1, help="epochs of plans to draw (default: 1)")
    inspect.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    inspect.add_argument("--plot", metavar="PATH", help="write a PNG of realised vs requested source shares per epoch")
    inspect.set_defaults(func=_cmd_inspect)

    config = sub.add_parser("config", help="debug config inheritance", description="Debug config inheritance.")
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_sub.add_parser(
        "show",
        help="print the merged session configs of a parent config (YAML)",
        description="Load PARENT and its session files and print each merged session config as one YAML document.",
    )
    show.add_argument("parent", help="the parent config (with session_dir and sessions)")
    show.add_argument("--session", nargs="+", metavar="NAME", help="only these sessions")
    show.set_defaults(func=_cmd_config_show)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mixweave`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except (CLIError, ValueError, TypeError, FileNotFoundError, FileExistsError) as exc:
        print(f"mixweave: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
