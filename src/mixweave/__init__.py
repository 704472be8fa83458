"""mixweave: control exactly what a PyTorch model sees.

Every strategy is a weight vector over one flat index space; one drawing
engine turns weights into indices, deterministic from ``(seed, epoch)``,
rank-sharded and resumable. See ``docs/design.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time names load on first use (PEP 562)
    from .config import ConfigError, deep_merge, load_dataset_configs
    from .curriculum import CurriculumState
    from .draw import DrawEngine
    from .imagedata import (
        LabelTable,
        MultiLabelImageDataset,
        get_balanced_data_loaders,
        read_label_csv,
        write_label_csv,
    )
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
    from .pipeline import Pipeline, PipelineConfig, from_config
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

# Public name -> submodule. Importing mixweave (and starting the `mixweave` command)
# does not import torch, numpy or scikit-learn until a name that needs them is used.
_EXPORTS = {
    "ArrayDataset": "sources",
    "ClusterLabeledDataset": "store",
    "ClusterStoreWriter": "store",
    "CombinedLoss": "losses",
    "ConfigError": "config",
    "CurriculumConfig": "sampling_config",
    "CurriculumState": "curriculum",
    "DrawEngine": "draw",
    "DynamicCurriculumSampler": "task_samplers",
    "FocalLoss": "losses",
    "JointSampler": "task_samplers",
    "JointSamplingConfig": "sampling_config",
    "LabelTable": "imagedata",
    "MetricsTracker": "metrics",
    "MixPlan": "mixing",
    "MixedDatasetSampler": "mixing",
    "MultiLabelImageDataset": "imagedata",
    "MultilabelStratifiedKFold": "splits",
    "Pipeline": "pipeline",
    "PipelineConfig": "pipeline",
    "PlanSampler": "samplers",
    "SampleBatch": "store",
    "StratifiedConcatDataset": "mixing",
    "TaskAwareSampler": "task_samplers",
    "TaskOversamplingConfig": "sampling_config",
    "UniformConcatDataset": "mixing",
    "WeightSchedule": "mixing",
    "WeightedBCEWithLogitsLoss": "losses",
    "WeightedConcatDataset": "mixing",
    "WeightedSampler": "samplers",
    "as_multihot": "weights",
    "build_sampler": "sampling_config",
    "calculate_auc_roc": "metrics",
    "calculate_effective_num_samples": "losses",
    "calculate_pos_weights": "losses",
    "collate_with_metadata": "store",
    "combined_loss": "losses",
    "compose_hierarchical": "weights",
    "compose_product": "weights",
    "compute_metrics": "metrics",
    "deep_merge": "config",
    "focal_loss": "losses",
    "from_config": "pipeline",
    "get_balanced_data_loaders": "imagedata",
    "get_class_balanced_weights": "losses",
    "get_roc_curves": "metrics",
    "get_sample_weights": "weights",
    "group_shares": "weights",
    "inverse_frequency": "weights",
    "label_ranking_average_precision": "metrics",
    "load_dataset_configs": "config",
    "mixture_from_config": "mixing",
    "multilabel_split": "splits",
    "normalize": "weights",
    "plot_roc_curves": "metrics",
    "read_label_csv": "imagedata",
    "split_prevalence": "splits",
    "store_summary": "store",
    "weight_stats": "weights",
    "weighted_bce_with_logits": "losses",
    "write_label_csv": "imagedata",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mixweave' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


__all__ = [
    "ArrayDataset",
    "ClusterLabeledDataset",
    "ClusterStoreWriter",
    "CombinedLoss",
    "ConfigError",
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
    "Pipeline",
    "PipelineConfig",
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
    "deep_merge",
    "focal_loss",
    "from_config",
    "get_balanced_data_loaders",
    "get_class_balanced_weights",
    "get_roc_curves",
    "get_sample_weights",
    "group_shares",
    "inverse_frequency",
    "label_ranking_average_precision",
    "load_dataset_configs",
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
