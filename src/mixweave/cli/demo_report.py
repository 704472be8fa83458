"""The demo's report: plain-sentence conclusions, the Markdown report and the plots, read off the numbers.

A verdict ("helped", "hurt") is given only where the mean per-seed difference
exceeds the standard deviation of the per-seed differences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path
from .demo_adaptive import ADAPTIVE_RUNS

__all__ = ["conclusions", "markdown", "plots", "write_text"]

NUM_CLASSES = 10


def _difference(run: dict[str, Any], base: dict[str, Any], key: str, words: tuple[str, str, str]) -> str:
    """``words[0]`` / ``words[1]`` when the mean per-seed difference of ``key`` exceeds its sd, else ``words[2]``."""
    delta = 100 * np.array([r[key] - b[key] for r, b in zip(run["per_seed"], base["per_seed"], strict=True)])
    mean = float(delta.mean())
    if delta.size < 2:
        return f"{words[2]} ({mean:+.1f} points from one seed: no spread to judge by; use --seeds 3 or more)"
    sd = float(delta.std(ddof=1))
    verdict = words[0] if mean > sd else words[1] if mean < -sd else words[2]
    return f"{verdict} ({mean:+.1f} ± {sd:.1f} points over {delta.size} seeds)"


def conclusions(report: dict[str, Any]) -> list[str]:
    """Plain sentences read off the numbers, whichever way they point; a verdict only beyond seed-to-seed spread."""
    lines = []
    lt = report["long_tail"]["runs"]
    base = lt["plain shuffling"]
    words = ("helped", "hurt", "made no clear difference")
    for name, run in lt.items():
        if name == "plain shuffling":
            continue
        lines.append(
            f"Long tail: {name} {_difference(run, base, 'balanced_accuracy', words)}: balanced accuracy "
            f"{_pm(run, 'balanced_accuracy')} vs {_pm(base, 'balanced_accuracy')} with plain shuffling."
        )
    mix = report["mixing"]["runs"]
    real, synth = mix["real only"], mix["synthetic only"]
    mixes = {k: v for k, v in mix.items() if k not in ("real only", "synthetic only", *ADAPTIVE_RUNS)}
    best = max(mixes, key=lambda k: mixes[k]["accuracy"])
    compare = ("beat", "fell behind", "did not clearly differ from")
    verdict = _difference(mixes[best], real, "accuracy", compare)
    lines.append(
        f"Mixing: the best real/synthetic mix on average ({best}) {verdict} real only: "
        f"{_pm(mixes[best], 'accuracy')} vs {_pm(real, 'accuracy')} on real test images; synthetic only reached "
        f"{_pm(synth, 'accuracy')}."
    )
    for name in ADAPTIVE_RUNS[:2]:
        run, half = mix[name], mix["50/50"]
        against_best = _difference(run, mixes[best], "accuracy", compare)
        against_half = _difference(run, half, "accuracy", compare)
        lines.append(
            f"Adaptive mixing ({name}, real share {run['requested_real_share']:.2f} on average, "
            f"{run['final_real_share']:.2f} at the end) {against_best} the best fixed mix ({best}, chosen afterwards "
            f"on the test set) and {against_half} 50/50: {_pm(run, 'accuracy')} vs {_pm(mixes[best], 'accuracy')} "
            f"and {_pm(half, 'accuracy')}."
        )
    balanced = lt["class-balanced sampler"]
    adaptive = lt[ADAPTIVE_RUNS[2]]
    lines.append(
        f"Long tail: adaptive class shares ({ADAPTIVE_RUNS[2]}) "
        f"{_difference(adaptive, balanced, 'balanced_accuracy', compare)} the fixed class-balanced sampler: "
        f"{_pm(adaptive, 'balanced_accuracy')} vs {_pm(balanced, 'balanced_accuracy')} balanced accuracy."
    )
    n = report["config"]["seeds"]
    lines.append(
        f"Mean ± sd over {n} seed(s) of a small network on 8x8 digits: a verdict is given only where the mean "
        "difference exceeds the sd of the per-seed differences. More --seeds narrow the spread."
    )
    return lines


def _pm(run: dict[str, Any], key: str) -> str:
    """``mean ± sd`` of a score, in percent."""
    return f"{100 * run[key]:.1f} ± {100 * run[key + '_sd']:.1f}%"


def plots(report: dict[str, Any], out: Path) -> list[Path]:
    from matplotlib.figure import Figure

    paths = []
    lt = report["long_tail"]["runs"]
    classes = np.arange(NUM_CLASSES)
    width = 0.8 / (len(lt) + 1)

    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    counts = np.asarray(report["long_tail"]["train_class_counts"], dtype=float)
    ax.bar(classes - 0.4, counts / counts.sum(), width, label="training set", color="lightgrey", align="edge")
    for k, (name, run) in enumerate(lt.items(), start=1):
        ax.bar(classes - 0.4 + k * width, run["class_shares_seen"], width, label=name, align="edge")
    ax.axhline(1 / NUM_CLASSES, color="black", linestyle="--", linewidth=1, label="balanced (requested by the sampler)")
    ax.set(
        xlabel="digit class", ylabel="share of samples seen in training", title="Realised class shares", xticks=classes
    )
    ax.legend(fontsize="small")
    paths.append(_save(fig, out / "longtail_class_shares.png"))

    fig = Figure(figsize=(9, 4))
    ax = fig.add_subplot()
    width = 0.8 / len(lt)
    for k, (name, run) in enumerate(lt.items()):
        ax.bar(
            classes - 0.4 + k * width,
            run["recall_per_class"],
            width,
            yerr=run["recall_per_class_sd"],
            capsize=2,
            label=name,
            align="edge",
        )
    ax.set(xlabel="digit class (training count falls left to right)", ylabel="test recall", ylim=(0, 1.05))
    seeds = report["config"]["seeds"]
    ax.set(title=f"Per-class recall on the balanced test set (mean ± sd, {seeds} seed(s))", xticks=classes)
    ax.legend(fontsize="small", loc="lower left")
    paths.append(_save(fig, out / "longtail_recall.png"))

    mix = report["mixing"]["runs"]
    fig = Figure(figsize=(9, 4))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    requested = [r["requested_real_share"] for r in mix.values()]
    realised = [r["realised_real_share"] for r in mix.values()]
    left.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    left.scatter(requested, realised, zorder=3)
    left.set(xlabel="requested share of real images", ylabel="realised share (one epoch)", title="Shares")
    right.bar(
        list(mix), [r["accuracy"] for r in mix.values()], yerr=[r["accuracy_sd"] for r in mix.values()], capsize=3
    )
    right.set(ylabel="accuracy on real test images", title=f"Real/synthetic mix (mean ± sd, {seeds} seed(s))")
    right.set_ylim(0, 1)
    right.tick_params(axis="x", labelrotation=30)
    fig.tight_layout()
    paths.append(_save(fig, out / "mixing.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def markdown(report: dict[str, Any]) -> str:
    lt, mix = report["long_tail"], report["mixing"]
    lines = [
        "# mixweave demo report",
        "",
        f"Data: scikit-learn's handwritten digits (8x8). {report['config']['epochs']} epochs per run; every "
        f"number is mean ± sd over {report['config']['seeds']} seed(s) from {report['config']['seed']}.",
        "",
        "## Long tail",
        "",
        f"Training counts per class: {lt['train_class_counts']} (imbalance {lt['imbalance_ratio']:.0f}:1); "
        f"test set balanced, {lt['test_per_class']} per class.",
        "",
        "| strategy | balanced accuracy | macro F1 | rarest-class share seen |",
        "|---|---|---|---|",
    ]
    for name, run in lt["runs"].items():
        lines.append(
            f"| {name} | {_pm(run, 'balanced_accuracy')} | {_pm(run, 'macro_f1')} | "
            f"{100 * run['class_shares_seen'][-1]:.1f}% |"
        )
    lines += [
        "",
        "![class shares](longtail_class_shares.png)",
        "",
        "![recall](longtail_recall.png)",
        "",
        "## Mixing real and synthetic",
        "",
        f"{mix['real_images']} real images, {mix['synthetic_images']} synthetic (distorted) images, "
        f"{mix['samples_per_epoch']} samples per epoch.",
        "",
        "| real/synthetic | requested real share | realised | accuracy on real test |",
        "|---|---|---|---|",
    ]
    for name, run in mix["runs"].items():
        lines.append(
            f"| {name} | {run['requested_real_share']:.2f} | {run['realised_real_share']:.3f} | "
            f"{_pm(run, 'accuracy')} |"
        )
    lines += [
        "",
        "The `sources: exp3` and `sources: doremi` rows learn the real share during training "
        "(AdaptiveMixture, default settings); their requested share is the mean over the run, and "
        "`classes: exp3` in the long-tail table learns the class shares the same way.",
        "",
        "![mixing](mixing.png)",
        "",
        "## What the numbers say",
        "",
    ]
    lines += [f"- {line}" for line in report["conclusions"]]
    return "\n".join(lines) + "\n"
