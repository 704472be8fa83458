"""Optuna: sampling settings as a hyper-parameter search space (needs the ``optuna`` extra when used).

Optuna is not imported here: a ``trial`` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import JointSamplingConfig

__all__ = ["DEFAULT_SPACE", "suggest_sampling_config"]

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
