"""MLflow: a sampler's weight statistics logged to the active run (needs the ``mlflow`` extra).

MLflow is imported when :func:`mlflow_hook` is called, not before.
"""

from __future__ import annotations

from ..sampling.hooks import EpochHook, metrics_hook

__all__ = ["mlflow_hook"]


def mlflow_hook(prefix: str = "sampling/") -> EpochHook:
    """An epoch hook that logs a sampler's weight statistics to the active MLflow run.

    Append it to ``sampler.epoch_hooks``; :func:`~mixweave.build_sampler` does so
    when ``log_to_mlflow`` is true. Metrics: ``{prefix}min``, ``max``,
    ``entropy``, ``effective_samples`` (and ``curriculum_phase`` when the
    sampler has a curriculum), at step = epoch.
    """
    import mlflow

    return metrics_hook(mlflow.log_metrics, prefix)
