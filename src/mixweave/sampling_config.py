"""The ``sampling:`` configuration of task oversampling + curriculum, and ``build_sampler``.

Example YAML::

    sampling:
      enabled: true
      task_oversampling: {enabled: true, alpha: 0.3}
      curriculum: {enabled: true, qualities: [high, medium, low], patience: 5}
      composition_mode: multiplicative
      seed: 42
      increment_seed_per_epoch: true
      log_weight_statistics: true

Backward compatibility: a top-level ``task_sampling_alpha`` alone means task
oversampling only; ``curriculum.enabled`` alone means curriculum only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._validation import warn
from .curriculum import DEFAULT_QUALITIES, CurriculumState
from .samplers import WeightedSampler
from .task_samplers import DynamicCurriculumSampler, JointSampler, TaskAwareSampler

__all__ = ["CurriculumConfig", "JointSamplingConfig", "TaskOversamplingConfig", "build_sampler"]

logger = logging.getLogger("mixweave.sampling")


class TaskOversamplingConfig(BaseModel):
    """``sampling.task_oversampling``: tasks drawn with ``p ∝ n^-alpha``."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    alpha: float = 0.0

    @field_validator("alpha")
    @classmethod
    def _alpha_range(cls, value: float) -> float:
        if not 0.0 <= value <= 1.0:
            warn(f"`sampling.task_oversampling.alpha` = {value} is outside [0, 1]", stacklevel=5)
        return value


class CurriculumConfig(BaseModel):
    """``sampling.curriculum``: quality phases advanced on a validation plateau."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    quality_col: str = "Quality"
    qualities: list[str] = Field(default_factory=lambda: list(DEFAULT_QUALITIES))
    patience: int = Field(default=5, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)
    phases: dict[str, dict[str, float]] | None = None
    strategy: Literal["sampled"] = "sampled"
    reset_early_stopping_on_phase_change: bool = False

    def make_callback(self, state: CurriculumState, monitor: str = "val_loss") -> Any:
        """A Lightning ``CurriculumCallback`` for ``state`` with these settings (needs the lightning extra)."""
        from .callbacks import CurriculumCallback

        return CurriculumCallback(
            state, monitor, reset_early_stopping_on_phase_change=self.reset_early_stopping_on_phase_change
        )

    def make_state(self) -> CurriculumState:
        """A fresh :class:`~mixweave.curriculum.CurriculumState` with these settings."""
        return CurriculumState(self.qualities, self.patience, self.phases, self.min_delta)


class JointSamplingConfig(BaseModel):
    """The ``sampling:`` section, validated. Unknown keys are errors naming the dotted key."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    task_oversampling: TaskOversamplingConfig = Field(default_factory=TaskOversamplingConfig)
    curriculum: CurriculumConfig = Field(default_factory=lambda: CurriculumConfig())
    composition_mode: Literal["multiplicative", "hierarchical"] = "multiplicative"
    seed: int = 42
    increment_seed_per_epoch: bool = True
    log_weight_statistics: bool = True
    log_to_mlflow: bool = False
    task_sampling_alpha: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JointSamplingConfig:
        """Validate a mapping: the ``sampling`` section itself or a document containing one.

        Raises:
            ValueError: naming the dotted key of the first problem, e.g. ``sampling.curriculum.patience``.
        """
        section = data.get("sampling", data) if isinstance(data, Mapping) else data
        try:
            config = cls.model_validate(section)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(["sampling", *(str(p) for p in err["loc"])])
            raise ValueError(f"`{where}`: {err['msg']} (got {err.get('input')!r})") from None
        if config.task_sampling_alpha is not None and not config.task_oversampling.enabled:
            config.task_oversampling = TaskOversamplingConfig(enabled=True, alpha=config.task_sampling_alpha)
        return config


def _log_stats(sampler: WeightedSampler, epoch: int) -> None:
    stats = sampler.weight_stats()
    logger.info(
        "epoch %d sampling weights: min=%.3g max=%.3g entropy=%.4g effective_samples=%.1f",
        epoch,
        stats["min"],
        stats["max"],
        stats["entropy"],
        stats["effective_samples"],
    )


def build_sampler(
    config: JointSamplingConfig | Mapping[str, Any],
    targets: Any,
    quality_labels: Sequence[str] | None = None,
    *,
    curriculum_state: CurriculumState | None = None,
    num_samples: int | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> WeightedSampler:
    """Build the sampler a ``sampling:`` config asks for.

    Task oversampling alone gives a :class:`TaskAwareSampler`, the curriculum
    alone a :class:`DynamicCurriculumSampler`, both a :class:`JointSampler`;
    neither (or ``enabled: false``) a seeded shuffle of the rows. The
    curriculum state is created from the config unless one is passed; it is
    the sampler's ``curriculum_state`` attribute.
    """
    cfg = config if isinstance(config, JointSamplingConfig) else JointSamplingConfig.from_mapping(config)
    common: dict[str, Any] = dict(
        num_samples=num_samples,
        seed=cfg.seed,
        num_replicas=num_replicas,
        rank=rank,
        increment_seed_per_epoch=cfg.increment_seed_per_epoch,
    )
    task = cfg.enabled and cfg.task_oversampling.enabled
    curriculum = cfg.enabled and cfg.curriculum.enabled
    if curriculum:
        if quality_labels is None:
            raise ValueError("`quality_labels` is required when `sampling.curriculum.enabled` is true")
        curriculum_state = curriculum_state or cfg.curriculum.make_state()
    sampler: WeightedSampler
    if task and curriculum:
        sampler = JointSampler(
            targets, quality_labels, curriculum_state, cfg.task_oversampling.alpha, cfg.composition_mode, **common
        )
    elif task:
        sampler = TaskAwareSampler(targets, cfg.task_oversampling.alpha, **common)
    elif curriculum:
        assert quality_labels is not None and curriculum_state is not None
        sampler = DynamicCurriculumSampler(quality_labels, curriculum_state, **common)
    else:
        rows = np.asarray(targets).shape[0]
        sampler = WeightedSampler(np.ones(rows), replacement=False, **common)
    if cfg.log_weight_statistics:
        sampler.epoch_hooks.append(_log_stats)
    if cfg.log_to_mlflow:
        from .hpo import mlflow_hook

        sampler.epoch_hooks.append(mlflow_hook())
    return sampler
