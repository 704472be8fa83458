"""mixweave: control exactly what a PyTorch model sees.

Every strategy is a weight vector over one flat index space; one drawing
engine turns weights into indices, deterministic from ``(seed, epoch)``,
rank-sharded and resumable. See ``docs/design.md``.
"""

from ._version import __version__
from .curriculum import CurriculumState
from .draw import DrawEngine
from .mixing import (
    MixedDatasetSampler,
    MixPlan,
    StratifiedConcatDataset,
    UniformConcatDataset,
    WeightedConcatDataset,
    WeightSchedule,
    mixture_from_config,
)
from .samplers import PlanSampler, WeightedSampler
from .sampling_config import CurriculumConfig, JointSamplingConfig, TaskOversamplingConfig, build_sampler
from .sources import ArrayDataset
from .task_samplers import DynamicCurriculumSampler, JointSampler, TaskAwareSampler
from .weights import compose_hierarchical, compose_product, group_shares, inverse_frequency, normalize, weight_stats

__all__ = [
    "ArrayDataset",
    "CurriculumConfig",
    "CurriculumState",
    "DrawEngine",
    "DynamicCurriculumSampler",
    "JointSampler",
    "JointSamplingConfig",
    "MixPlan",
    "MixedDatasetSampler",
    "PlanSampler",
    "StratifiedConcatDataset",
    "TaskAwareSampler",
    "TaskOversamplingConfig",
    "UniformConcatDataset",
    "WeightSchedule",
    "WeightedConcatDataset",
    "WeightedSampler",
    "__version__",
    "build_sampler",
    "compose_hierarchical",
    "compose_product",
    "group_shares",
    "inverse_frequency",
    "mixture_from_config",
    "normalize",
    "weight_stats",
]
