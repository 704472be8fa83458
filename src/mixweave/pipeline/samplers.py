"""Sampler factors: one builder per sampler ``type``, in one registry shared by pipelines and ``build_sampler``.

A factor is what acts *inside* each source (NOTE [ Two ways to draw ] in
:mod:`mixweave.pipeline.build`): class rarity, task ``n^-alpha``, curriculum
phase, or task × curriculum. Each builder returns a
:class:`~mixweave.WeightedSampler` whose ``weights_at(epoch)`` is the factor;
:func:`build_sampler` hands that sampler to the user as it is, a pipeline
composes its weights with the source shares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from .._validation import dispatch
from ..config import ConfigError, JointSamplingConfig, SamplerSpec
from ..core import weights as wm
from ..core.curriculum import CurriculumState
from ..core.names import SAMPLER_TYPES
from ..sampling import DynamicCurriculumSampler, JointSampler, TaskAwareSampler, WeightedSampler
from ..sampling.hooks import log_weight_stats, metrics_hook
from .translate import translate_sampling

__all__ = ["SAMPLER_FACTORS", "Rows", "build_sampler", "make_sampler"]


@dataclass
class Rows:
    """What the factors read about the rows, without loading any: ``None`` where unknown.

    Attributes:
        size: the number of rows.
        labels: class labels (ids or multi-hot), for ``class_balanced``.
        tasks: task targets ``(N, T)`` with NaN, or task ids, for ``task_aware``/``joint``.
        quality: quality labels, for ``curriculum``/``joint``.
        groups: source id per row: class rarity is then counted inside each source.
        missing: the error to raise when a factor needs a role that is ``None``.
    """

    size: int
    labels: Any = None
    tasks: Any = None
    quality: Any = None
    groups: np.ndarray | None = None
    missing: Callable[[str, str], Exception] | None = None

    def need(self, role: str, sampler_type: str) -> Any:
        value = getattr(self, role)
        if value is None:
            if self.missing is not None:
                raise self.missing(role, sampler_type)
            raise ValueError(f"sampler type {sampler_type!r} needs `{role}`")
        return value


def _class_weights(labels: Any, spec: SamplerSpec, groups: np.ndarray | None) -> np.ndarray:
    """Rarity weights of the class labels; counted inside each group when ``groups`` is given."""

    def weigh(part: Any) -> np.ndarray:
        return wm.get_sample_weights(part, reduce=spec.reduce, no_finding_share=spec.no_finding_share)

    if groups is None:
        return weigh(labels)
    bounds = np.flatnonzero(np.diff(groups)) + 1  # groups are contiguous: the sources end to end
    return np.concatenate([weigh(part) for part in np.split(np.asarray(labels), bounds)])


def _none(spec: SamplerSpec, rows: Rows, state: Any, common: dict[str, Any]) -> WeightedSampler:
    return WeightedSampler(np.ones(rows.size), replacement=False, **common)


def _class_balanced(spec: SamplerSpec, rows: Rows, state: Any, common: dict[str, Any]) -> WeightedSampler:
    return WeightedSampler(_class_weights(rows.need("labels", spec.type), spec, rows.groups), **common)


def _task_aware(spec: SamplerSpec, rows: Rows, state: Any, common: dict[str, Any]) -> WeightedSampler:
    assert spec.alpha is not None  # the schema requires it for this type
    return TaskAwareSampler(rows.need("tasks", spec.type), spec.alpha, **common)


def _curriculum(spec: SamplerSpec, rows: Rows, state: Any, common: dict[str, Any]) -> WeightedSampler:
    return DynamicCurriculumSampler(rows.need("quality", spec.type), state, **common)


def _joint(spec: SamplerSpec, rows: Rows, state: Any, common: dict[str, Any]) -> WeightedSampler:
    tasks, quality = rows.need("tasks", spec.type), rows.need("quality", spec.type)
    return JointSampler(tasks, quality, state, spec.alpha, composition_mode=spec.composition_mode, **common)


#: Sampler builders by ``sampler.type`` (:data:`~mixweave.config.SAMPLER_TYPES`).
SAMPLER_FACTORS: Final[dict[str, Callable[[SamplerSpec, Rows, Any, dict[str, Any]], WeightedSampler]]] = dict(
    zip(SAMPLER_TYPES, (_none, _class_balanced, _task_aware, _curriculum, _joint), strict=True)
)


def make_sampler(
    spec: SamplerSpec, rows: Rows, *, curriculum_state: CurriculumState | None = None, **common: Any
) -> WeightedSampler:
    """The sampler ``spec.type`` asks for over ``rows``; ``common`` goes to its constructor (seed, ranks, ...).

    A curriculum state is created from ``spec.curriculum`` unless one is passed;
    it is the sampler's ``curriculum_state`` attribute.
    """
    state = None
    if spec.curriculum is not None and spec.type in ("curriculum", "joint"):
        state = curriculum_state or spec.curriculum.make_state()
    return dispatch(SAMPLER_FACTORS, spec.type, "sampler.type")(spec, rows, state, common)


def _missing_input(role: str, sampler_type: str) -> Exception:
    if role == "quality":
        return ValueError("`quality_labels` is required when `sampling.curriculum.enabled` is true")
    return ValueError(f"`targets` is required for sampler type {sampler_type!r}")


def build_sampler(
    config: JointSamplingConfig | Mapping[str, Any],
    targets: Any,
    quality_labels: Any = None,
    *,
    data: Mapping[str, Any] | Any = None,
    curriculum_state: CurriculumState | None = None,
    num_samples: int | None = None,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> WeightedSampler:
    """Build the sampler a ``sampling:`` config asks for.

    Task oversampling alone gives a :class:`~mixweave.TaskAwareSampler`, the
    curriculum alone a :class:`~mixweave.DynamicCurriculumSampler`, both a
    :class:`~mixweave.JointSampler`; neither (or ``enabled: false``) a seeded
    shuffle of the rows. The curriculum state is created from the config
    unless one is passed; it is the sampler's ``curriculum_state`` attribute.

    Args:
        config: a ``sampling:`` section (or a document holding one), or a :class:`~mixweave.JointSamplingConfig`.
        targets: task targets ``(N, T)`` with NaN for missing labels, or task ids.
        quality_labels: quality label per row, for the curriculum.
        data: a table (a pandas ``DataFrame`` or a mapping of columns) from which
            ``data[curriculum.quality_col]`` is read when ``quality_labels`` is not given.
        curriculum_state, num_samples, num_replicas, rank: passed to the sampler.

    Raises:
        ConfigError: for a config problem, naming the dotted key.
        ValueError: when the curriculum is enabled and no quality labels are given.
    """
    cfg = config if isinstance(config, JointSamplingConfig) else JointSamplingConfig.from_mapping(config)
    spec = SamplerSpec.model_validate(translate_sampling(cfg))
    if quality_labels is None and data is not None and spec.type in ("curriculum", "joint"):
        column = cfg.curriculum.quality_col
        try:
            quality_labels = np.asarray(data[column])
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"`data` has no column {column!r}", key="sampling.curriculum.quality_col") from exc
    rows = Rows(len(np.asarray(targets)), tasks=targets, quality=quality_labels, missing=_missing_input)
    sampler = make_sampler(
        spec,
        rows,
        curriculum_state=curriculum_state,
        num_samples=num_samples,
        seed=cfg.seed,
        num_replicas=num_replicas,
        rank=rank,
        increment_seed_per_epoch=cfg.increment_seed_per_epoch,
    )
    if cfg.log_weight_statistics:
        sampler.epoch_hooks.append(log_weight_stats)
    if cfg.log_to_mlflow:
        import mlflow  # the mlflow extra; only when the config asks for it

        sampler.epoch_hooks.append(metrics_hook(mlflow.log_metrics))
    return sampler
