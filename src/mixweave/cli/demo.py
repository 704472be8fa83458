"""``mixweave demo``: small experiments on scikit-learn's bundled handwritten digits (no download).

1. **Long tail.** The training set is made long-tailed (an exponential
   100:1 profile over the 10 classes, as in Cui et al. 2019's CIFAR-LT
   protocol; 124:1 as realised: the rarest class rounds down to one image)
   and the test set is balanced. One small network is trained with plain
   shuffling, with mixweave's class-balanced sampler, with the
   class-balanced (effective number) loss and with the focal loss.
2. **Mixing.** A "real" source with few clean images and a "synthetic" source
   with many distorted ones (noise, shifts, lower contrast) are mixed with
   :class:`~mixweave.WeightedConcatDataset` at several ratios; accuracy is
   measured on real test images.
3. **Adaptive mixing** (:mod:`.demo_adaptive`). The same two sources with
   shares learnt during training (EXP3 and DoReMi), and the long-tailed set
   with EXP3 over its classes, against the fixed mixes and samplers above.

Each experiment runs for ``--seeds`` seeds (``--seed``, ``--seed + 1``, ...; each
draws its own split, initialisation and sampling through local generators), and
the report gives mean ± standard deviation. A strategy is said to have helped or
hurt only when its mean difference from the baseline exceeds the standard
deviation of the per-seed differences; the numbers are reported as they come
out, including when a strategy does not help.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, Sampler

from ..core.weights import get_sample_weights
from ..data.sources import ArrayDataset
from ..sampling.mixing import WeightedConcatDataset
from ..sampling.weighted import WeightedSampler
from ..train.losses import FocalLoss, get_class_balanced_weights
from .demo_adaptive import ADAPTIVE_RUNS, adaptive_runs, source_losses
from .demo_report import _pm, conclusions, markdown, plots, write_text

__all__ = ["DemoConfig", "run_demo"]

NUM_CLASSES = 10
IMBALANCE = 100.0
TEST_PER_CLASS = 50
REAL_PER_CLASS = 10
LEARNING_RATE, MOMENTUM = 0.05, 0.9
MIX_RATIOS = (1.0, 0.8, 0.5, 0.2, 0.0)  # share of the real source; 1.0 = real only, 0.0 = synthetic only


@dataclass
class DemoConfig:
    """Settings of :func:`run_demo`."""

    out: Path = Path("mixweave-demo")
    epochs: int = 30
    seed: int = 0
    batch_size: int = 32
    seeds: int = 3  # runs per experiment: seed, seed + 1, ...; the report gives mean and sd
    quiet: bool = False  # no progress bars (they go to stderr, and only to a terminal)


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64)


def _split(y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A balanced test set (``TEST_PER_CLASS`` per class) and the pool of the remaining rows."""
    order = rng.permutation(y.size)
    test = np.concatenate([order[y[order] == c][:TEST_PER_CLASS] for c in range(NUM_CLASSES)])
    pool = np.setdiff1d(order, test)
    return test, rng.permutation(pool)


def _long_tail(y: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Rows of ``pool`` keeping ``n_max * IMBALANCE**(-c / 9)`` images of class ``c``."""
    n_max = min(int((y[pool] == c).sum()) for c in range(NUM_CLASSES))
    keep = [
        pool[y[pool] == c][: max(1, int(n_max * IMBALANCE ** (-c / (NUM_CLASSES - 1))))] for c in range(NUM_CLASSES)
    ]
    return np.concatenate(keep)


def _distort(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The synthetic domain: random shifts of up to one pixel, lower contrast and Gaussian noise."""
    img = x.reshape(-1, 8, 8)
    out = np.empty_like(img)
    shifts = rng.integers(-1, 2, size=(img.shape[0], 2))
    for dy in (-1, 0, 1):  # nine vectorised rolls instead of a loop over images
        for dx in (-1, 0, 1):
            sel = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
            out[sel] = np.roll(img[sel], (dy, dx), axis=(1, 2))
    contrast = rng.uniform(0.4, 0.8, size=(img.shape[0], 1, 1)).astype(np.float32)
    noisy = out * contrast + np.asarray(rng.normal(0.0, 0.25, size=out.shape), dtype=np.float32)
    return np.clip(noisy, 0.0, 1.0).reshape(-1, 64)


def _model(generator: torch.Generator) -> nn.Module:
    """A small MLP, initialised from ``generator`` (never the global RNG)."""
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, NUM_CLASSES))
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / layer.in_features**0.5
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.uniform_(-bound, bound, generator=generator)
    return model


class _NoBars:
    """What the runs call on a progress display, doing nothing (``--quiet``, or stderr not a terminal)."""

    def add_task(self, description: str, total: int) -> None:
        return None

    def advance(self, task: Any, advance: float = 1) -> None:
        return None


def _shuffle(n: int, seed: int) -> RandomSampler:
    """Plain shuffling, reshuffled every epoch, from its own seeded generator."""
    return RandomSampler(range(n), generator=torch.Generator().manual_seed(seed))


def _train(
    loader: DataLoader[Any],
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    epochs: int,
    seed: int,
    progress: Any,
    task: Any,
) -> tuple[nn.Module, np.ndarray]:
    """Train a fresh model; returns it and how often each class was seen."""
    model = _model(torch.Generator().manual_seed(seed))
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    seen = np.zeros(NUM_CLASSES, dtype=np.int64)
    for _ in range(epochs):
        for batch in loader:
            x, y = batch[0], batch[1]
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            seen += np.bincount(y.numpy(), minlength=NUM_CLASSES)
        progress.advance(task)
    return model, seen


def _common(cfg: DemoConfig, seed: int, progress: Any) -> dict[str, Any]:
    """The settings every adaptive run shares with the fixed runs (model, optimiser, epochs, batches)."""
    return {
        "batch_size": cfg.batch_size,
        "epochs": cfg.epochs,
        "seed": seed,
        "make_model": _model,
        "optimizer_settings": {"lr": LEARNING_RATE, "momentum": MOMENTUM},
        "progress": progress,
    }


def _predict(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).argmax(dim=1).numpy()


def _scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "recall_per_class": [float(r) for r in recall_score(y_true, y_pred, average=None, zero_division=0)],
    }


def _per_sample_sum(loss: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Sum a per-class (sigmoid) loss over classes, then average over the batch.

    The focal loss is ten one-vs-rest terms per image; averaging them as well
    would shrink its gradient tenfold against cross-entropy at the same
    learning rate, and the comparison would measure under-training instead.
    """
    return lambda logits, targets: loss(logits, targets).sum(dim=1).mean()


#: The long-tail strategies, in report order; plain shuffling is the baseline.
LONG_TAIL = ("plain shuffling", "class-balanced sampler", "class-balanced loss (beta=0.999)", "focal loss (gamma=2)")
#: Scores given as mean and standard deviation over seeds.
_SPREAD = ("accuracy", "balanced_accuracy", "macro_f1", "recall_per_class")


def _seeds(cfg: DemoConfig) -> list[int]:
    return [cfg.seed + k for k in range(cfg.seeds)]


def _aggregate(per_seed: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """Mean over seeds of each score (lists element-wise), the sd of the `_SPREAD` ones, and per-seed scores."""
    out: dict[str, Any] = {}
    for key in per_seed[0]:
        values = np.asarray([run[key] for run in per_seed], dtype=np.float64)
        mean = values.mean(axis=0)
        out[key] = mean.tolist() if values.ndim > 1 else float(mean)
        if key in _SPREAD:
            sd = values.std(axis=0, ddof=1) if len(per_seed) > 1 else np.zeros_like(mean)
            out[f"{key}_sd"] = sd.tolist() if values.ndim > 1 else float(sd)
    scalars = [k for k in _SPREAD if k in per_seed[0] and not isinstance(per_seed[0][k], list)]
    out["per_seed"] = [
        {"seed": seed, **{k: run[k] for k in scalars}} for seed, run in zip(seeds, per_seed, strict=True)
    ]
    return out


def _long_tail_runs(cfg: DemoConfig, progress: Any) -> dict[str, Any]:
    x, y = _digits()
    names = (*LONG_TAIL, ADAPTIVE_RUNS[2])
    tasks = {name: progress.add_task(f"long tail: {name}", total=cfg.epochs * cfg.seeds) for name in names}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for seed in _seeds(cfg):
        test, pool = _split(y, np.random.default_rng(seed))
        train = _long_tail(y, pool)
        xt, yt = x[train], y[train]
        counts = np.bincount(yt, minlength=NUM_CLASSES)  # the same for every seed: the cut depends on counts only
        data = ArrayDataset(xt, yt)
        ce = nn.CrossEntropyLoss()
        strategies: dict[str, tuple[Sampler[int], Callable[..., torch.Tensor]]] = {
            LONG_TAIL[0]: (_shuffle(len(yt), seed), ce),
            LONG_TAIL[1]: (WeightedSampler(get_sample_weights(yt), num_samples=len(yt), seed=seed), ce),
            LONG_TAIL[2]: (
                _shuffle(len(yt), seed),
                nn.CrossEntropyLoss(weight=get_class_balanced_weights(counts, beta=0.999)),
            ),
            LONG_TAIL[3]: (
                _shuffle(len(yt), seed),
                _per_sample_sum(FocalLoss(alpha=None, gamma=2.0, reduction="none")),
            ),
        }
        for name, (sampler, loss_fn) in strategies.items():
            loader = DataLoader(data, batch_size=cfg.batch_size, sampler=sampler)
            model, seen = _train(loader, loss_fn, cfg.epochs, seed, progress, tasks[name])
            scores = _scores(y[test], _predict(model, x[test]))
            results[name].append({**scores, "class_shares_seen": (seen / seen.sum()).tolist()})
        model, _, seen = adaptive_runs(  # classes as the groups of an EXP3 mixture
            x=xt,
            y=yt,
            groups=yt,
            names=[str(c) for c in range(NUM_CLASSES)],
            samples_per_epoch=len(yt),
            algorithm="exp3",
            reference_losses=None,
            task=tasks[ADAPTIVE_RUNS[2]],
            **_common(cfg, seed, progress),
        )
        scores = _scores(y[test], _predict(model, x[test]))
        results[ADAPTIVE_RUNS[2]].append({**scores, "class_shares_seen": (seen / seen.sum()).tolist()})
    return {
        "train_class_counts": counts.tolist(),
        "imbalance_ratio": float(counts.max() / counts.min()),
        "test_per_class": TEST_PER_CLASS,
        "runs": {name: _aggregate(runs, _seeds(cfg)) for name, runs in results.items()},
    }


def _mix_name(share: float) -> str:
    return {1.0: "real only", 0.0: "synthetic only"}.get(share, f"{round(100 * share)}/{round(100 - 100 * share)}")


def _mixing_runs(cfg: DemoConfig, progress: Any) -> dict[str, Any]:
    x, y = _digits()
    length = 400
    names = [_mix_name(share) for share in MIX_RATIOS]
    every = [*names, *ADAPTIVE_RUNS[:2]]
    tasks = {name: progress.add_task(f"mixing: {name}", total=cfg.epochs * cfg.seeds) for name in every}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in every}
    n_real = n_synth = 0
    for seed in _seeds(cfg):
        rng = np.random.default_rng([seed, 1])  # a stream of its own, apart from the long-tail split's
        test, pool = _split(y, rng)
        real = np.concatenate([pool[y[pool] == c][:REAL_PER_CLASS] for c in range(NUM_CLASSES)])
        synth = np.setdiff1d(pool, real)
        n_real, n_synth = int(real.size), int(synth.size)
        sources = [ArrayDataset(x[real], y[real]), ArrayDataset(_distort(x[synth], rng), y[synth])]
        models = {}
        for share, name in zip(MIX_RATIOS, names, strict=True):
            picked = [s for s, w in zip(sources, (share, 1 - share), strict=True) if w > 0]
            weights = [w for w in (share, 1 - share) if w > 0]
            mixed = WeightedConcatDataset(picked, weights, length=length, seed=seed, mode="exact")
            loader = DataLoader(mixed, batch_size=cfg.batch_size, sampler=mixed.sampler())
            realised = mixed.report(0)["realised"]
            models[name], _ = _train(loader, nn.CrossEntropyLoss(), cfg.epochs, seed, progress, tasks[name])
            results[name].append(
                {
                    "requested_real_share": share,
                    "realised_real_share": realised[0] if share > 0 else 0.0,
                    **_scores(y[test], _predict(models[name], x[test])),
                }
            )
        # adaptive shares over the two sources; DoReMi's reference: the 50/50 model's loss on each source
        xs, ys = np.concatenate([sources[0].arrays[0], sources[1].arrays[0]]), np.concatenate([y[real], y[synth]])
        groups = np.repeat([0, 1], [n_real, n_synth])
        reference = source_losses(models["50/50"], xs, ys, groups, 2)
        for name, algorithm in zip(ADAPTIVE_RUNS[:2], ("exp3", "doremi"), strict=True):
            model, mixture, seen = adaptive_runs(
                x=xs,
                y=ys,
                groups=groups,
                names=["real", "synthetic"],
                samples_per_epoch=length,
                algorithm=algorithm,
                reference_losses=reference if algorithm == "doremi" else None,
                task=tasks[name],
                **_common(cfg, seed, progress),
            )
            results[name].append(
                {
                    "requested_real_share": float(np.mean([e["shares"][0] for e in mixture.history])),
                    "realised_real_share": float(seen[0] / seen.sum()),
                    "final_real_share": float(mixture.probabilities()[0]),
                    **_scores(y[test], _predict(model, x[test])),
                }
            )
    return {
        "real_images": n_real,
        "synthetic_images": n_synth,
        "samples_per_epoch": length,
        "runs": {name: _aggregate(runs, _seeds(cfg)) for name, runs in results.items()},
    }


def run_demo(cfg: DemoConfig, *, console: Any = None) -> dict[str, Any]:
    """Run both experiments, write ``report.json``, ``report.md`` and PNG plots into ``cfg.out``; return the report."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    console = console or Console()
    cfg.out.mkdir(parents=True, exist_ok=True)
    columns: Iterable[Any] = (
        TextColumn("{task.description:<48}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
    )
    bars = Console(stderr=True)  # progress on stderr, and only to a terminal: stdout keeps the results
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-unit MLP gains nothing from threads; idle-spinning ones cost a lot on 2 cores
    try:
        shown = not cfg.quiet and bars.is_terminal  # older rich writes a newline even when disabled: not built then
        with (
            Progress(*columns, console=bars, transient=True) if shown else contextlib.nullcontext(_NoBars()) as progress
        ):
            long_tail = _long_tail_runs(cfg, progress)
            mixing = _mixing_runs(cfg, progress)
    finally:
        torch.set_num_threads(threads)
    report: dict[str, Any] = {
        "config": {
            "epochs": cfg.epochs,
            "seed": cfg.seed,
            "seeds": cfg.seeds,
            "batch_size": cfg.batch_size,
            "data": "sklearn digits",
        },
        "long_tail": long_tail,
        "mixing": mixing,
    }
    report["conclusions"] = conclusions(report)
    figures = plots(report, cfg.out)
    report["plots"] = [p.name for p in figures]
    write_text(cfg.out / "report.json", json.dumps(report, indent=2))
    write_text(cfg.out / "report.md", markdown(report))

    table = Table(title=f"mixweave demo: summary (mean ± sd over {cfg.seeds} seed(s))")
    for col in ("experiment", "run", "balanced acc.", "macro F1", "accuracy"):
        table.add_column(col, justify="left" if col in ("experiment", "run") else "right")
    for name, run in long_tail["runs"].items():
        table.add_row("long tail", name, _pm(run, "balanced_accuracy"), _pm(run, "macro_f1"), "")
    for name, run in mixing["runs"].items():
        label = name if name in ADAPTIVE_RUNS else f"{name} real/synthetic"
        table.add_row("mixing", label, "", "", _pm(run, "accuracy"))
    console.print(table)
    for line in report["conclusions"]:
        console.print(f"- {line}")
    console.print(f"Report: {cfg.out / 'report.md'} and {cfg.out / 'report.json'}; plots: {', '.join(report['plots'])}")
    return report
