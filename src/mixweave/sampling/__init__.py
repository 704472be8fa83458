"""Layer 2, sampling: torch ``Sampler`` classes and mixed datasets on top of the core.

Samplers add ranks, epochs and resume to a weight vector and the core's
drawing engine; they compute no weights inline (the core's weight functions
do) and never touch global random state.
"""

from __future__ import annotations

from .adaptive import ALGORITHMS, AdaptiveMixture, read_history
from .adaptive_sampler import AdaptiveSampler
from .base import PlanSampler
from .distributed import all_reduce_sum, gather_state, resolve_distributed
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
from .stream_sources import UNSPLITTABLE, IterableSource, ShardedSource, read_jsonl, read_npy, read_tar
from .streaming import STOPPING, WeightedInterleaveDataset
from .tasks import COMPOSITION_MODES, DynamicCurriculumSampler, JointSampler, TaskAwareSampler
from .weighted import WeightedSampler

__all__ = [
    "ALGORITHMS",
    "COMPOSITION_MODES",
    "INTERPOLATIONS",
    "STOPPING",
    "STRATEGIES",
    "UNSPLITTABLE",
    "AdaptiveMixture",
    "AdaptiveSampler",
    "DynamicCurriculumSampler",
    "FlatConcatDataset",
    "IterableSource",
    "JointSampler",
    "MixPlan",
    "MixedDataset",
    "MixedDatasetSampler",
    "PlanSampler",
    "ShardedSource",
    "StratifiedConcatDataset",
    "TaskAwareSampler",
    "UniformConcatDataset",
    "WeightSchedule",
    "WeightedConcatDataset",
    "WeightedInterleaveDataset",
    "WeightedSampler",
    "all_reduce_sum",
    "fetch_located",
    "gather_state",
    "log_weight_stats",
    "metrics_hook",
    "read_history",
    "read_jsonl",
    "read_npy",
    "read_tar",
    "resolve_distributed",
    "rows",
]
