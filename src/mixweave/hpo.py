"""Hyper-parameter search helpers (Optuna), and MLflow logging of sampling statistics.

Neither Optuna nor MLflow is imported until a function here is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .sampling_config import JointSamplingConfig

__all__ = ["DEFAULT_SPACE", "mlflow_hook", "suggest_sampling_config"]

#: Default search space of :func:`suggest_sampling_config`.
DEFAULT_SPACE: dict[str, Any] = {
    "task_alpha": (0.0, 1.0),
    "curriculum": (True, False),
    "patience": (2, 10),
    "composition_mode": ("multiplicative", "hierarchical"),
}


def suggest_sampling_config(trial: Any, space: Mapping[str, Any] | None = None, **fixed: Any) -> JointSamplingConfig:
    """Ask an Optuna ``trial`` for sampling settings and return them as a validated config.

    Args:
        trial: an ``optuna.trial.Trial``.
        space: overrides of :data:`DEFAULT_SPACE`: ``task_alpha`` (low, high),
            ``curriculum`` (choices), ``patience`` (low, high), ``composition_mode`` (choices).
        **fixed: other ``sampling:`` keys to set as given (``seed``, ...).
    """
    unknown = sorted(set(space or {}) - set(DEFAULT_SPACE))
    if unknown:
        raise ValueError(f"`space` has unknown keys {unknown}; allowed: {sorted(DEFAULT_SPACE)}")
    s = {**DEFAULT_SPACE, **(space or {})}
    alpha = trial.suggest_float("sampling.task_alpha", *s["task_alpha"])
    curriculum = trial.suggest_categorical("sampling.curriculum", list(s["curriculum"]))
    data: dict[str, Any] = {"task_oversampling": {"enabled": True, "alpha": alpha}, **fixed}
    if curriculum:
        data["curriculum"] = {"enabled": True, "patience": trial.suggest_int("sampling.patience", *s["patience"])}
        data["composition_mode"] = trial.suggest_categorical("sampling.composition_mode", list(s["composition_mode"]))
    return JointSamplingConfig.from_mapping(data)


def mlflow_hook(prefix: str = "sampling/") -> Callable[[Any, int], None]:
    """An epoch hook that logs a sampler's weight statistics to the active MLflow run.

    Append it to ``sampler.epoch_hooks``; ``build_sampler`` does so when
    ``log_to_mlflow`` is true. Metrics: ``{prefix}min``, ``max``, ``entropy``,
    ``effective_samples`` (and ``curriculum_phase`` when the sampler has a
    curriculum), at step = epoch.
    """
    import mlflow

    def log(sampler: Any, epoch: int) -> None:
        metrics = {f"{prefix}{k}": float(v) for k, v in sampler.weight_stats().items()}
        state = getattr(sampler, "curriculum_state", None)
        if state is not None:
            metrics[f"{prefix}curriculum_phase"] = float(state.phase_index)
        mlflow.log_metrics(metrics, step=epoch)

    return log
