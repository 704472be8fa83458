"""Task-aware, curriculum and joint samplers: weight factors on the shared drawing engine.

Each class only computes a weight vector (see :mod:`mixweave.core.weights`) and
hands it to :class:`~mixweave.sampling.weighted.WeightedSampler`, so all of them are
deterministic per ``(seed, epoch)``, shard across ranks, resume mid-epoch and
work beyond 2**24 rows.

NOTE [ Joint task factor ]
    The specification's per-sample formula ``w_i = n_{t(i)} ** -alpha`` gives
    task ``t`` a share proportional to ``n_t ** (1 - alpha)`` (it has ``n_t``
    rows of that weight), so with ``alpha = 0`` tasks would be drawn in
    proportion to their size, not uniformly, and the joint sampler would not
    reproduce :class:`TaskAwareSampler`. mixweave follows the stated intent
    instead: the task factor of row ``i`` with primary (rarest) task ``t`` is
    ``p_t / m_t``, where ``p_t ∝ n_t ** -alpha`` and ``m_t`` is the number of
    rows whose primary task is ``t``. The primary tasks are then drawn with
    probabilities ``p_t`` exactly, as the task-aware sampler draws its tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import check_bool, check_choice, check_real, warn
from ..core import weights as wm
from ..core.curriculum import CurriculumState
from ..core.names import COMPOSITION_MODES
from . import hooks
from .distributed import sync_curriculum
from .weighted import WeightedSampler

__all__ = ["COMPOSITION_MODES", "DynamicCurriculumSampler", "JointSampler", "TaskAwareSampler"]


def _check_alpha(alpha: Any) -> float:
    alpha = check_real(alpha, "alpha")
    if not 0.0 <= alpha <= 1.0:
        warn(f"`alpha` = {alpha} is outside [0, 1]; sampling still follows p ∝ n ** -alpha", stacklevel=4)
    return float(alpha)


def _quality_ids(quality_labels: Any, state: CurriculumState, size: int | None = None) -> np.ndarray:
    labels = np.asarray(quality_labels).astype(str)
    if labels.size == 0:
        raise ValueError("quality_labels cannot be empty: give one quality label per row")
    if labels.ndim != 1 or (size is not None and labels.shape[0] != size):
        want = f"({size},)" if size is not None else "(N,)"
        raise ValueError(f"`quality_labels` must have shape {want}, got {labels.shape}")
    known = {q: i for i, q in enumerate(state.qualities)}
    unknown = sorted(set(np.unique(labels).tolist()) - set(known))
    if unknown:
        raise ValueError(
            f"Quality labels {unknown} found in dataset but not defined in curriculum qualities {list(known)}: "
            "add them to the CurriculumState's `qualities` (with `phases`) or relabel the rows"
        )
    uniq, inverse = np.unique(labels, return_inverse=True)
    return np.array([known[q] for q in uniq.tolist()], dtype=np.intp)[inverse]


def _curriculum_factor(ids: np.ndarray, state: CurriculumState, within: np.ndarray | None = None) -> np.ndarray:
    """Weights whose quality-group shares are the phase's probabilities, renormalised over groups present."""
    present = np.bincount(ids, minlength=len(state.qualities)) > 0
    shares = np.array([state.sampling_probs()[q] for q in state.qualities]) * present
    if not shares.any():
        raise ValueError(f"curriculum phase {state.phase!r} gives probability 0 to every quality present in the data")
    return wm.compose_hierarchical(ids, shares, within=within)


class TaskAwareSampler(WeightedSampler):
    """Draw a task with probability ``∝ n_t ** -alpha``, then one of its labelled rows uniformly.

    Args:
        targets: ``(N, T)`` array, NaN where a row has no label for a task, or
            1-D integer task ids (one task per row, -1 = no label).
            Rows without any label are never drawn.
        alpha: 0 draws tasks uniformly, 1 in inverse proportion to their label
            counts; values outside [0, 1] warn and still work. Default 0.5, as the original.
        num_samples: indices per epoch (default ``N``).
        seed: base seed (None means 0); plans depend on ``(seed, epoch)`` only.
        **kwargs: ``num_replicas``, ``rank``, ``drop_last``, ``replacement``, ``mode``, ``groups``.

    Example:
        >>> import numpy as np
        >>> y = np.array([[1.0, np.nan], [0.0, np.nan], [1.0, np.nan], [np.nan, 1.0]])
        >>> s = TaskAwareSampler(y, alpha=0.0, num_samples=4000, seed=0)   # tasks drawn uniformly
        >>> round(float(np.mean(s.plan() == 3)), 1)   # the rare task's only row: half the draws
        0.5
    """

    def __init__(
        self,
        targets: Any,
        alpha: float = 0.5,
        num_samples: int | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.alpha = _check_alpha(alpha)
        self.task_probs, self.task_counts = wm.task_probabilities(targets, self.alpha)
        empty = np.flatnonzero(self.task_counts == 0)
        if empty.size:
            warn(f"tasks {empty.tolist()} of `targets` have no label and are never drawn", stacklevel=3)
        super().__init__(wm.task_weights(targets, self.alpha), num_samples, seed=0 if seed is None else seed, **kwargs)


class DynamicCurriculumSampler(WeightedSampler):
    """Draw quality groups in the current curriculum phase's proportions; rows uniformly inside a group.

    The share of each quality group in an epoch equals the phase's probability
    (renormalised over the groups present). The state is read whenever an
    epoch is planned, so a phase change applies from the next plan on.

    Args:
        quality_labels: one quality label per row (each must be a quality of ``curriculum_state``).
        curriculum_state: the shared :class:`~mixweave.core.curriculum.CurriculumState`.
        num_samples: indices per epoch (default ``N``).
        seed: base seed (None means 0).
        increment_seed_per_epoch: a new draw each epoch (default); False repeats epoch 0's draw
            (with the weights of the current phase).
        **kwargs: ``num_replicas``, ``rank``, ``drop_last``, ``replacement``, ``mode``.

    The positional order is the original OpenADMET class's.
    """

    def __init__(
        self,
        quality_labels: Sequence[str],
        curriculum_state: CurriculumState,
        num_samples: int | None = None,
        seed: int | None = None,
        increment_seed_per_epoch: bool = True,
        **kwargs: Any,
    ) -> None:
        if not isinstance(curriculum_state, CurriculumState):
            raise TypeError(f"`curriculum_state` must be a CurriculumState, got {type(curriculum_state).__name__}")
        self.curriculum_state = curriculum_state
        curriculum_state.synchronizer = sync_curriculum  # rank 0 decides under torch.distributed
        self.quality_ids = _quality_ids(quality_labels, curriculum_state)
        kwargs.setdefault("groups", self.quality_ids)
        super().__init__(
            lambda epoch: _curriculum_factor(self.quality_ids, self.curriculum_state),
            num_samples,
            seed=0 if seed is None else seed,
            increment_seed_per_epoch=increment_seed_per_epoch,
            **kwargs,
        )

    def weights_version(self) -> Any:
        return self.curriculum_state.phase_index


class JointSampler(WeightedSampler):
    """Task oversampling and a quality curriculum at once: per-row weight = task factor × quality factor.

    With only ``task_alpha`` set, primary tasks are drawn with
    ``p_t ∝ n_t ** -alpha`` (see NOTE [ Joint task factor ]); with only a
    curriculum, quality-group shares equal :class:`DynamicCurriculumSampler`'s.
    ``composition_mode="multiplicative"`` multiplies the factors;
    ``"hierarchical"`` keeps the quality-group shares exact and lets the task
    factor act only inside each group.

    The positional order ``(targets, quality_labels, curriculum_state,
    task_alpha, num_samples, seed, increment_seed_per_epoch,
    log_weight_stats)`` is the original OpenADMET class's, so
    ``JointSampler(targets=y, task_alpha=0.5)`` is the minimal call there and here.

    Args:
        targets: ``(N, T)`` array, NaN for missing labels, or 1-D integer task ids (-1 = none).
        quality_labels: one quality label per row, or None without a curriculum.
        curriculum_state: the shared curriculum state, or None.
        task_alpha: exponent of the task factor (default 0: tasks drawn
            uniformly, as the original), or None for no task factor (labelled
            rows drawn uniformly).
        num_samples: indices per epoch (default ``N``).
        seed: base seed (None means 0).
        increment_seed_per_epoch: a new draw each epoch (default).
        log_weight_stats: log each epoch's weight statistics (min, max, entropy,
            effective samples) at INFO on the ``mixweave.sampling`` logger
            (:func:`~mixweave.sampling.hooks.log_weight_stats`); default False.
        composition_mode: ``"multiplicative"`` (default) or ``"hierarchical"`` (keyword only).
        **kwargs: ``num_replicas``, ``rank``, ``drop_last``, ``replacement``, ``mode``, ``groups``.
            With ``mode="exact"`` and no ``groups``, the quality groups get exact
            shares (the primary tasks when there is no curriculum).
    """

    def __init__(
        self,
        targets: Any,
        quality_labels: Sequence[str] | None = None,
        curriculum_state: CurriculumState | None = None,
        task_alpha: float | None = 0.0,
        num_samples: int | None = None,
        seed: int | None = None,
        increment_seed_per_epoch: bool = True,
        log_weight_stats: bool = False,
        *,
        composition_mode: str = "multiplicative",
        **kwargs: Any,
    ) -> None:
        self.composition_mode = check_choice(composition_mode, "composition_mode", COMPOSITION_MODES)
        self.primary = wm.primary_tasks(targets)  # validates the shape
        size = self.primary.shape[0]
        self.curriculum_state = curriculum_state
        self.quality_ids: np.ndarray | None = None
        if curriculum_state is not None:
            if quality_labels is None:
                raise ValueError("`quality_labels` is required when `curriculum_state` is given")
            self.quality_ids = _quality_ids(quality_labels, curriculum_state, size)
            curriculum_state.synchronizer = sync_curriculum  # rank 0 decides under torch.distributed
        self.task_alpha = None if task_alpha is None else _check_alpha(task_alpha)
        self.task_factor = self._task_factor(targets)
        if self.task_alpha is None and self.quality_ids is None:
            warn(
                "JointSampler with neither `task_alpha` nor a curriculum samples labelled rows uniformly", stacklevel=3
            )
        if kwargs.get("mode") == "exact" and kwargs.get("groups") is None:
            # exact shares of what the sampler controls: the quality groups, else the primary tasks
            kwargs["groups"] = self.quality_ids if self.quality_ids is not None else np.maximum(self.primary, 0)
        super().__init__(
            self._joint_weights,
            num_samples,
            seed=0 if seed is None else seed,
            increment_seed_per_epoch=increment_seed_per_epoch,
            **kwargs,
        )
        if check_bool(log_weight_stats, "log_weight_stats"):
            self.epoch_hooks.append(hooks.log_weight_stats)

    def _task_factor(self, targets: Any) -> np.ndarray:
        labelled = (self.primary >= 0).astype(np.float64)
        if self.task_alpha is None:
            return labelled
        p, _ = wm.task_probabilities(targets, self.task_alpha)
        tasks = self.primary[self.primary >= 0]
        rows_per_primary = np.bincount(tasks, minlength=p.size)
        p = np.where(rows_per_primary > 0, p, 0.0)
        per_row = np.divide(p, rows_per_primary, out=np.zeros_like(p), where=rows_per_primary > 0)
        factor = np.zeros(self.primary.shape[0])
        factor[self.primary >= 0] = per_row[tasks]
        return factor

    def _joint_weights(self, epoch: int) -> np.ndarray:
        if self.quality_ids is None or self.curriculum_state is None:
            return self.task_factor
        if self.composition_mode == "hierarchical":
            return _curriculum_factor(self.quality_ids, self.curriculum_state, within=self.task_factor)
        return wm.compose_product(self.task_factor, _curriculum_factor(self.quality_ids, self.curriculum_state))

    def weights_version(self) -> Any:
        return None if self.curriculum_state is None else self.curriculum_state.phase_index
