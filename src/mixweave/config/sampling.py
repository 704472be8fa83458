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

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._validation import warn
from ..core.curriculum import DEFAULT_QUALITIES, CurriculumState
from .errors import from_validation_error
from .literals import COMPOSITION_MODE

__all__ = ["CurriculumConfig", "JointSamplingConfig", "TaskOversamplingConfig"]


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
    """``sampling.curriculum``: quality phases advanced on a validation plateau.

    Attributes:
        quality_col: the column of quality labels when :func:`~mixweave.build_sampler`
            is given a table (``data=``) instead of ``quality_labels``.
        strategy: how the phase's quality shares are applied. ``"sampled"`` (the
            only one): rows are drawn in those proportions. The specification's
            ``"weighted"`` (loss weights per quality) is not implemented and is
            rejected rather than silently sampled.
        patience, min_delta, phases, plateau, min_epochs_per_phase: as
            :class:`~mixweave.core.curriculum.CurriculumState` (patience 3 by default).
    """

    model_config = ConfigDict(extra="forbid")
    enabled: bool = False
    quality_col: str = "Quality"
    qualities: list[str] = Field(default_factory=lambda: list(DEFAULT_QUALITIES))
    patience: int = Field(default=3, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)
    phases: dict[str, dict[str, float]] | None = None
    plateau: Literal["restart", "continue"] = "restart"
    min_epochs_per_phase: int = Field(default=0, ge=0)
    strategy: Literal["sampled"] = "sampled"
    reset_early_stopping_on_phase_change: bool = False

    def make_state(self) -> CurriculumState:
        """A fresh :class:`~mixweave.core.curriculum.CurriculumState` with these settings."""
        return CurriculumState(
            self.qualities,
            self.patience,
            self.phases,
            self.min_delta,
            plateau=self.plateau,
            min_epochs_per_phase=self.min_epochs_per_phase,
        )


class JointSamplingConfig(BaseModel):
    """The ``sampling:`` section, validated. Unknown keys are errors naming the dotted key."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool = True
    task_oversampling: TaskOversamplingConfig = Field(default_factory=TaskOversamplingConfig)
    curriculum: CurriculumConfig = Field(default_factory=lambda: CurriculumConfig())
    composition_mode: COMPOSITION_MODE = "multiplicative"
    seed: int = 42
    increment_seed_per_epoch: bool = True
    log_weight_statistics: bool = True
    log_to_mlflow: bool = False
    task_sampling_alpha: float | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> JointSamplingConfig:
        """Validate a mapping: the ``sampling`` section itself or a document containing one.

        Raises:
            ConfigError: naming the dotted key of the first problem, e.g. ``sampling.curriculum.patience``.
        """
        section = data.get("sampling", data) if isinstance(data, Mapping) else data
        try:
            config = cls.model_validate(section)
        except ValidationError as exc:
            raise from_validation_error(exc, prefix="sampling", vocabulary=_VOCABULARY) from None
        if config.task_sampling_alpha is not None and not config.task_oversampling.enabled:
            config.task_oversampling = TaskOversamplingConfig(enabled=True, alpha=config.task_sampling_alpha)
        return config


_VOCABULARY = (
    frozenset(JointSamplingConfig.model_fields)
    | set(TaskOversamplingConfig.model_fields)
    | set(CurriculumConfig.model_fields)
)
