"""``mixweave inspect`` and ``mixweave config show``: what a config draws, and what it merges to."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .errors import CLIError
from .output import NAME_COLUMN, to_json

__all__ = ["add_parser"]


def _cmd_inspect(args: argparse.Namespace) -> int:
    if args.epochs < 1:
        raise CLIError(f"--epochs must be >= 1, got {args.epochs}")
    if not Path(args.config).is_file():  # before the imports below, which load torch
        raise FileNotFoundError(f"config file not found: {args.config}")
    if args.plot and Path(args.plot).is_dir():
        raise CLIError(f"--plot must be the path of a PNG file to write, got the folder {args.plot}")
    if args.config.endswith(".jsonl"):
        return _inspect_history(args)
    from ..pipeline import from_config
    from ..pipeline.inspect import plot_shares

    result = from_config(args.config).inspect(args.epochs)
    if args.plot:
        plot_shares(result, args.plot)
    if args.json:
        print(to_json(result))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    if result.get("stream"):
        _print_stream(console, args.config, result)
        if args.plot:
            console.print(f"wrote {args.plot}")
        return 0
    stats = result["weight_stats"]
    console.print(
        f"[bold]{args.config}[/bold]: strategy {result['strategy']}, sampler {result['sampler']}, "
        f"{result['num_samples']:,} samples/epoch over {result['total_size']:,} rows, {result['epochs']} epoch(s); "
        f"effective samples {stats['effective_samples']:,.1f}, entropy {stats['entropy']:.3f} nats"
    )
    if result["strategy"] == "adaptive":
        console.print(
            "adaptive shares: 'requested' is the shares in force now (before training, the initial ones); "
            "training moves them (`mixweave inspect SHARES.jsonl` shows a run's trajectory)"
        )
    for key, title in (("sources", "source"), ("classes", "class"), ("tasks", "task"), ("qualities", "quality")):
        if key not in result:
            continue
        table = Table(title=f"per {title}: requested vs realised share")
        for column in (title, "rows", "requested", "realised", "unique drawn", "coverage", "repeats"):
            table.add_column(column, **(NAME_COLUMN if column == title else {"justify": "right"}))
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


def _print_stream(console: Any, config: str, result: dict[str, Any]) -> None:
    """The tables of a stream pipeline's report (:func:`mixweave.pipeline.inspect.stream_report`)."""
    from rich.table import Table

    console.print(
        f"[bold]{config}[/bold]: streams, strategy {result['strategy']}, mode {result['mode']}, stopping "
        f"{result['stopping']}; the first {result['positions']:,} positions of a single process, {result['epochs']} "
        f"epoch(s); largest prefix deviation {result['largest_prefix_deviation']:.2f} sample(s)"
    )
    table = Table(title="per source: requested vs realised share of the positions (nothing read)")
    for column in ("source", "kind", "split over ranks/workers", "requested", "realised"):
        table.add_column(column, **(NAME_COLUMN if column == "source" else {"justify": "right"}))
    for row in result["sources"]:
        table.add_row(
            row["name"],
            row["kind"],
            "yes" if row["splittable"] else "no",
            f"{100 * row['requested']:.2f}%",
            f"{100 * row['realised']:.2f}%",
        )
    console.print(table)


def _inspect_history(args: argparse.Namespace) -> int:
    """``mixweave inspect shares.jsonl``: an adaptive mixture's share trajectory, from a run's log."""
    from ..pipeline import plot_share_history
    from ..sampling import read_history

    entries = read_history(args.config)
    if args.plot:
        plot_share_history(entries, args.plot)
    names: list[str] = entries[-1].get("names") or [str(g) for g in range(len(entries[-1]["shares"]))]
    if args.json:
        print(to_json({"history": args.config, "updates": len(entries) - 1, "names": names, "entries": entries}))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=True)
    last = entries[-1]
    console.print(f"[bold]{args.config}[/bold]: {len(entries) - 1} update(s) over {last['step']} step(s)")
    shares = [e["shares"] for e in entries]
    table = Table(title="share per group: first, lowest, highest, last")
    for column in ("group", "first", "lowest", "highest", "last"):
        table.add_column(column, **(NAME_COLUMN if column == "group" else {"justify": "right"}))
    for g, name in enumerate(names):
        values = [row[g] for row in shares]
        table.add_row(name, *(f"{100 * v:.2f}%" for v in (values[0], min(values), max(values), values[-1])))
    console.print(table)
    if args.plot:
        console.print(f"wrote {args.plot}")
    return 0


def _cmd_config_show(args: argparse.Namespace) -> int:
    from ..config import describe, load_dataset_configs

    configs = load_dataset_configs(args.parent)
    if args.session:
        chosen = [c for c in configs if c["session"] in args.session]
        unknown = sorted(set(args.session) - {c["session"] for c in chosen})
        if unknown:
            raise CLIError(f"--session {unknown} not in {args.parent}; sessions: {[c['session'] for c in configs]}")
        configs = chosen
    print(describe(configs), end="")
    return 0


_PIPELINE_KEYS = ("sources", "data", "datasets", "mixture", "sampler", "sampling", "loader")


def _cmd_config_validate(args: argparse.Namespace) -> int:
    if not Path(args.config).is_file():  # before the imports below, which load torch
        raise FileNotFoundError(f"config file not found: {args.config}")
    from ..config import load_dataset_configs, load_yaml_with_extends

    data = load_yaml_with_extends(args.config)
    sessions_only = "sessions" in data and not (set(data) & set(_PIPELINE_KEYS)) and "source" not in data
    if sessions_only:
        configs = load_dataset_configs(args.config)
        if not any("source" in c for c in configs):  # session configs, not a pipeline
            print(f"{args.config}: ok: {len(configs)} session(s), every required key present")
            return 0
    from ..pipeline import from_config

    pipeline = from_config(args.config)
    names = ", ".join(pipeline.sources)
    if pipeline.stream:
        mixed = pipeline.dataset
        print(
            f"{args.config}: ok: {len(pipeline.sources)} stream source(s) ({names}), mode {mixed.mode}, "
            f"stopping {mixed.stopping}, strategy {pipeline.config.mixture.strategy}"
        )
        return 0
    print(
        f"{args.config}: ok: {len(pipeline.sources)} source(s) ({names}), {pipeline.num_samples:,} samples per epoch, "
        f"strategy {pipeline.config.mixture.strategy}, sampler {pipeline.config.sampler.type}"
    )
    return 0


def add_parser(sub: Any) -> None:
    """Register ``inspect`` and ``config`` on the sub-command parsers ``sub``."""
    inspect = sub.add_parser(
        "inspect",
        help="what a pipeline config will draw: requested vs realised shares, coverage, repeats (nothing loaded)",
        description=(
            "Build the pipeline of CONFIG without loading a sample, draw the plans of N epochs and report, per source, "
            "class, task and quality group, the requested and realised shares, how many distinct rows were drawn and "
            "how often rows repeat, plus the weight statistics."
        ),
    )
    inspect.add_argument(
        "config",
        help="a pipeline YAML, a mixed-data YAML or a sessions parent; or a run's share history (.jsonl, written by "
        "AdaptiveMixture.write_history) to tabulate and plot its share trajectory",
    )
    inspect.add_argument("--epochs", type=int, default=1, help="epochs of plans to draw (default: 1)")
    inspect.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    inspect.add_argument(
        "--plot",
        metavar="PATH",
        help="write a PNG of realised vs requested source shares per epoch (of a share history: shares per step)",
    )
    inspect.set_defaults(func=_cmd_inspect)

    config = sub.add_parser(
        "config", help="check configs and debug their inheritance", description="Check configs; debug inheritance."
    )
    config_sub = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = config_sub.add_parser(
        "show",
        help="print the merged session configs of a parent config (YAML)",
        description="Load PARENT and its session files and print each merged session config as one YAML document.",
    )
    show.add_argument("parent", help="the parent config (with session_dir and sessions)")
    show.add_argument("--session", nargs="+", metavar="NAME", help="only these sessions")
    show.set_defaults(func=_cmd_config_show)
    validate = config_sub.add_parser(
        "validate",
        help="check a config completely: YAML, inheritance, the pipeline schema, and that its files open",
        description=(
            "Load CONFIG -- a pipeline YAML, a mixed-data YAML or a sessions parent -- through every check the "
            "library makes before training: safe YAML, extends and sessions, the pipeline schema (unknown keys, "
            "types, weights), and the data files each source names. Nothing is drawn. Exit code 0 when it is "
            "valid, 2 with one line naming the file and the key when it is not."
        ),
    )
    validate.add_argument("config", help="a pipeline YAML, a mixed-data YAML or a sessions parent")
    validate.set_defaults(func=_cmd_config_validate)
