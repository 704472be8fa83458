"""Layer 2, sampling: torch ``Sampler`` classes and mixed datasets on top of the core.

Samplers add ranks, epochs and resume to a weight vector and the core's
drawing engine; they compute no weights inline (the core's weight functions
do) and never touch global random state.
"""

from __future__ import annotations

from .base import PlanSampler
from .distributed import gather_state, resolve_distributed
from .fetch import FlatConcatDataset, fetch_located, rows
from .hooks import log_weight_stats, metrics_hook
from .mixing import (
    STRATEGIES,
    MixedDataset,
    MixedDatasetSampler,
    MixPlan,
    StratifiedConcatDataset,
    UniformConcatDataset,
    WeightedConcatDataset,
)
from .schedule import INTERPOLATIONS, WeightSchedule
from .tasks import COMPOSITION_MODES, DynamicCurriculumSampler, JointSampler, TaskAwareSampler
from .weighted import WeightedSampler

__all__ = [
    "COMPOSITION_MODES",
    "INTERPOLATIONS",
    "STRATEGIES",
    "DynamicCurriculumSampler",
    "FlatConcatDataset",
    "JointSampler",
    "MixPlan",
    "MixedDataset",
    "MixedDatasetSampler",
    "PlanSampler",
    "StratifiedConcatDataset",
    "TaskAwareSampler",
    "UniformConcatDataset",
    "WeightSchedule",
    "WeightedConcatDataset",
    "WeightedSampler",
    "fetch_located",
    "gather_state",
    "log_weight_stats",
    "metrics_hook",
    "resolve_distributed",
    "rows",
]
