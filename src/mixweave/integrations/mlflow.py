"""MLflow: a sampler's weight statistics and a mixture's shares, logged to the active run (``mlflow`` extra).

MLflow is imported when :func:`mlflow_hook` is called, not before.
"""

from __future__ import annotations

from ..sampling.hooks import EpochHook, UpdateHook, metrics_hook, share_metrics_hook

__all__ = ["mlflow_hook", "mlflow_share_hook"]


def mlflow_hook(prefix: str = "sampling/") -> EpochHook:
    """An epoch hook that logs a sampler's weight statistics to the active MLflow run.

    Append it to ``sampler.epoch_hooks``; :func:`~mixweave.build_sampler` does so
    when ``log_to_mlflow`` is true. Metrics: ``{prefix}min``, ``max``,
    ``entropy``, ``effective_samples`` (and ``curriculum_phase`` when the
    sampler has a curriculum), at step = epoch.
    """
    import mlflow

    return metrics_hook(mlflow.log_metrics, prefix)


def mlflow_share_hook(prefix: str = "shares/") -> UpdateHook:
    """An update hook that logs an adaptive mixture's shares to the active MLflow run after each update.

    Append it to ``mixture.update_hooks``. Metrics: ``{prefix}{group name}``
    at step = the update count, so MLflow plots the share trajectory.
    """
    import mlflow

    return share_metrics_hook(mlflow.log_metrics, prefix)
