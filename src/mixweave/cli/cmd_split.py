"""``mixweave split``: a stratified, optionally grouped split of a multi-label CSV."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import CLIError

__all__ = ["add_parser"]


def _split_names(names: Sequence[str] | None, k: int) -> list[str]:
    if names:
        if len(names) != k:
            raise CLIError(f"--names must give {k} names, one per fraction, got {len(names)}")
        if len(set(names)) != k:
            raise CLIError(f"--names must be distinct, got {list(names)}")
        for name in names:  # file names inside --out, never a path out of it
            if not name or name in (".", "..") or "/" in name or "\\" in name or Path(name).name != name:
                raise CLIError(f"--names must be plain file names (no folder, no '..'), got {name!r}")
        return list(names)
    return {2: ["train", "test"], 3: ["train", "val", "test"]}.get(k, [f"split{i + 1}" for i in range(k)])


def _cmd_split(args: argparse.Namespace) -> int:
    if not Path(args.csv).is_file():  # before the imports below, which load torch
        raise FileNotFoundError(f"label CSV not found: {args.csv}")
    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from ..data.images import read_label_csv, write_label_csv
    from ..data.splits import multilabel_split, split_prevalence

    names = _split_names(args.names, len(args.fractions))
    table = read_label_csv(args.csv, labels=args.labels, image_column=args.image_column)
    groups = None
    if args.group_column:
        groups = np.asarray(table.column(args.group_column))
    ids = np.asarray([os.path.normpath(i) for i in table.image_ids])  # ./a.png and a.png are one image
    unique_ids, first, counts = np.unique(ids, return_index=True, return_counts=True)
    if (counts > 1).any():
        repeated = unique_ids[counts > 1]
        if not args.group_duplicates:
            raise CLIError(
                f"{args.csv}: {repeated.size} image id(s) appear on more than one row, e.g. {repeated[:3].tolist()}; "
                "split rows of one image apart and they leak between splits. Remove the duplicates, or pass "
                "--group-duplicates to keep each image's rows in one split"
            )
        # one group per image, merged with --group-column: rows of an image share the group of its first row
        key = np.unique(ids, return_inverse=True)[1]
        groups = key if groups is None else np.unique(groups, return_inverse=True)[1][first][key]
    parts = multilabel_split(
        table.labels, args.fractions, seed=args.seed, groups=groups, progress=False if args.quiet else None
    )
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


def add_parser(sub: Any) -> None:
    """Register ``split`` on the sub-command parsers ``sub``."""
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
    split.add_argument(
        "--group-duplicates",
        action="store_true",
        help="keep the rows of an image id listed more than once in one split (default: such rows are an error)",
    )
    split.add_argument("--labels", nargs="+", metavar="LABEL", help="label names/columns (default: detected)")
    split.add_argument("--image-column", help="column of image file names (default: detected)")
    split.add_argument("--seed", type=int, default=0, help="seed of the tie-breaking order (default: 0)")
    split.add_argument("--quiet", "-q", action="store_true", help="no progress bar (none either when not a terminal)")
    split.set_defaults(func=_cmd_split)
