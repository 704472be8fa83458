"""``mixweave demo``: what balancing and mixing do, on scikit-learn's bundled digits."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .._optional import require
from .errors import CLIError

__all__ = ["add_parser"]


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    if args.seeds < 1:
        raise CLIError(f"--seeds must be >= 1, got {args.seeds}")
    for module in ("sklearn", "matplotlib"):  # the digits, the scores and the plots
        require(module, extra="cli", feature="mixweave demo")
    from .demo import DemoConfig, run_demo  # after the checks: a typo is reported without loading torch

    run_demo(DemoConfig(out=Path(args.out), epochs=args.epochs, seed=args.seed, seeds=args.seeds, quiet=args.quiet))
    return 0


def add_parser(sub: Any) -> None:
    """Register ``demo`` on the sub-command parsers ``sub``."""
    demo = sub.add_parser(
        "demo",
        help="show what balancing and mixing do, on scikit-learn's bundled digits (about a minute on a CPU)",
        description=(
            "Train a small network on scikit-learn's handwritten digits: (1) on a 100:1 long-tailed training set with "
            "plain shuffling, the class-balanced sampler, the class-balanced loss and the focal loss; (2) on real and "
            "distorted synthetic images mixed at several ratios; (3) with adaptive mixing (EXP3, DoReMi) of the "
            "sources and of the long tail's classes, against the fixed runs. Writes report.json, report.md and plots."
        ),
    )
    demo.add_argument("--out", default="mixweave-demo", help="folder for the report and plots (default: mixweave-demo)")
    demo.add_argument("--epochs", type=int, default=30, help="training epochs per run (default: 30)")
    demo.add_argument("--seed", type=int, default=0, help="the first seed; runs use seed, seed+1, ... (default: 0)")
    demo.add_argument(
        "--seeds", type=int, default=3, help="runs per experiment; the report gives mean ± sd (default: 3)"
    )
    demo.add_argument("--quiet", "-q", action="store_true", help="no progress bars (none either when not a terminal)")
    demo.set_defaults(func=_cmd_demo)
