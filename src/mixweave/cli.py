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
    from .demo import DemoConfig, run_demo

    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
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
    except (CLIError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"mixweave: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
