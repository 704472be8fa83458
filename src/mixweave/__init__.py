"""mixweave: control exactly what a PyTorch model sees.

Every strategy is a weight vector over one flat index space; one drawing
engine turns weights into indices, deterministic from ``(seed, epoch)``,
rank-sharded and resumable. See ``docs/design.md``.
"""

from ._version import __version__
from .curriculum import CurriculumState
from .draw import DrawEngine
from .imagedata import LabelTable, MultiLabelImageDataset, get_balanced_data_loaders, read_label_csv, write_label_csv
from .losses import (
    CombinedLoss,
    FocalLoss,
    WeightedBCEWithLogitsLoss,
    calculate_effective_num_samples,
    calculate_pos_weights,
    combined_loss,
    focal_loss,
    get_class_balanced_weights,
    weighted_bce_with_logits,
)
from .metrics import (
    MetricsTracker,
    calculate_auc_roc,
    compute_metrics,
    get_roc_curves,
    label_ranking_average_precision,
    plot_roc_curves,
)
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
from .splits import MultilabelStratifiedKFold, multilabel_split, split_prevalence
from .store import ClusterLabeledDataset, ClusterStoreWriter, SampleBatch, collate_with_metadata, store_summary
from .task_samplers import DynamicCurriculumSampler, JointSampler, TaskAwareSampler
from .weights import (
    as_multihot,
    compose_hierarchical,
    compose_product,
    get_sample_weights,
    group_shares,
    inverse_frequency,
    normalize,
    weight_stats,
)

__all__ = [
    "ArrayDataset",
    "ClusterLabeledDataset",
    "ClusterStoreWriter",
    "CombinedLoss",
    "CurriculumConfig",
    "CurriculumState",
    "DrawEngine",
    "DynamicCurriculumSampler",
    "FocalLoss",
    "JointSampler",
    "JointSamplingConfig",
    "LabelTable",
    "MetricsTracker",
    "MixPlan",
    "MixedDatasetSampler",
    "MultiLabelImageDataset",
    "MultilabelStratifiedKFold",
    "PlanSampler",
    "SampleBatch",
    "StratifiedConcatDataset",
    "TaskAwareSampler",
    "TaskOversamplingConfig",
    "UniformConcatDataset",
    "WeightSchedule",
    "WeightedBCEWithLogitsLoss",
    "WeightedConcatDataset",
    "WeightedSampler",
    "__version__",
    "as_multihot",
    "build_sampler",
    "calculate_auc_roc",
    "calculate_effective_num_samples",
    "calculate_pos_weights",
    "collate_with_metadata",
    "combined_loss",
    "compose_hierarchical",
    "compose_product",
    "compute_metrics",
    "focal_loss",
    "get_balanced_data_loaders",
    "get_class_balanced_weights",
    "get_roc_curves",
    "get_sample_weights",
    "group_shares",
    "inverse_frequency",
    "label_ranking_average_precision",
    "mixture_from_config",
    "multilabel_split",
    "normalize",
    "plot_roc_curves",
    "read_label_csv",
    "split_prevalence",
    "store_summary",
    "weight_stats",
    "weighted_bce_with_logits",
    "write_label_csv",
]
