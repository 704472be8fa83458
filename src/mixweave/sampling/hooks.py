"""Epoch hooks: callables ``hook(sampler, epoch)`` that a sampler runs when an epoch's iteration starts.

Append them to ``sampler.epoch_hooks``. They report a sampler's weight
statistics (and curriculum phase) to a logger or any metrics sink; the MLflow
adapter is :func:`mixweave.integrations.mlflow.mlflow_hook`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["EpochHook", "UpdateHook", "log_weight_stats", "metrics_hook", "share_metrics_hook"]

EpochHook = Callable[[Any, int], None]
#: ``hook(mixture)``, run by an :class:`~mixweave.sampling.adaptive.AdaptiveMixture` after each update.
UpdateHook = Callable[[Any], None]

logger = logging.getLogger("mixweave.sampling")


def _metrics(sampler: Any, prefix: str) -> dict[str, float]:
    metrics = {f"{prefix}{k}": float(v) for k, v in sampler.weight_stats().items()}
    state = getattr(sampler, "curriculum_state", None)
    if state is not None:
        metrics[f"{prefix}curriculum_phase"] = float(state.phase_index)
    return metrics


def log_weight_stats(sampler: Any, epoch: int) -> None:
    """Log the epoch's weight statistics at INFO level on the ``mixweave.sampling`` logger."""
    stats = sampler.weight_stats()
    logger.info(
        "epoch %d sampling weights: min=%.3g max=%.3g entropy=%.4g effective_samples=%.1f",
        epoch,
        stats["min"],
        stats["max"],
        stats["entropy"],
        stats["effective_samples"],
    )


def metrics_hook(log_metrics: Callable[..., Any], prefix: str = "sampling/") -> EpochHook:
    """A hook that passes ``{prefix}min``, ``max``, ``entropy``, ``effective_samples`` (and
    ``curriculum_phase`` when the sampler has a curriculum) to ``log_metrics(metrics, step=epoch)``.

    Example:
        >>> import numpy as np
        >>> from mixweave.sampling import WeightedSampler
        >>> seen = []
        >>> s = WeightedSampler(np.ones(4), seed=0)
        >>> s.epoch_hooks.append(metrics_hook(lambda m, step: seen.append((step, sorted(m)))))
        >>> _ = list(s)
        >>> seen[0][0], seen[0][1][0]
        (0, 'sampling/effective_samples')
    """

    def hook(sampler: Any, epoch: int) -> None:
        log_metrics(_metrics(sampler, prefix), step=epoch)

    return hook


def share_metrics_hook(log_metrics: Callable[..., Any], prefix: str = "shares/") -> UpdateHook:
    """An update hook that passes ``{prefix}{group name}: share`` to ``log_metrics(metrics, step=updates)``.

    Append it to ``mixture.update_hooks``; the MLflow adapter is
    :func:`mixweave.integrations.mlflow.mlflow_share_hook`.

    Example:
        >>> from mixweave.sampling import AdaptiveMixture
        >>> seen = []
        >>> m = AdaptiveMixture(2, names=["web", "code"])
        >>> m.update_hooks.append(share_metrics_hook(lambda metrics, step: seen.append((step, sorted(metrics)))))
        >>> _ = m.observe([0, 1], [1.0, 2.0])
        >>> seen
        [(1, ['shares/code', 'shares/web'])]
    """

    def hook(mixture: Any) -> None:
        shares = mixture.probabilities()
        metrics = {f"{prefix}{n}": float(p) for n, p in zip(mixture.names, shares, strict=True)}
        log_metrics(metrics, step=mixture.updates)

    return hook
