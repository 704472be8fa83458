"""mixweave: control exactly what a PyTorch model sees.

Every strategy is a weight vector over one flat index space; one drawing
engine turns weights into indices, deterministic from ``(seed, epoch)``,
rank-sharded and resumable. The layers, each importing only those below it
(``docs/design.md``): ``core`` (weights, drawing, curriculum, reports; numpy
only), ``sampling`` (samplers, mixed datasets), ``data`` and ``train``
(sources, images, splits, the embedding store; losses, metrics), ``config``
(YAML, inheritance, schemas), ``pipeline`` (configs to loaders, inspection),
``integrations`` (Lightning, Optuna, MLflow) and ``cli``.

Every public name is importable from here. Importing ``mixweave`` (and
starting the ``mixweave`` command) imports neither torch nor numpy until a
name that needs them is used (PEP 562).
"""

import ast as _ast
import importlib as _importlib
from pathlib import Path as _Path
from typing import TYPE_CHECKING as _TYPE_CHECKING, Any as _Any

from ._version import __version__ as __version__

# The one list of public names. Type checkers and IDEs read these imports (the `as` form marks each
# name as re-exported); at run time they are not executed: _public_names() reads them from this file
# and each name is imported from its module on first use (PEP 562).
if _TYPE_CHECKING:
    from .config import (
        ConfigError as ConfigError,
        CurriculumConfig as CurriculumConfig,
        JointSamplingConfig as JointSamplingConfig,
        PipelineConfig as PipelineConfig,
        TaskOversamplingConfig as TaskOversamplingConfig,
        deep_merge as deep_merge,
        load_dataset_configs as load_dataset_configs,
    )
    from .core.curriculum import (
        CurriculumState as CurriculumState,
    )
    from .core.draw import (
        DrawEngine as DrawEngine,
    )
    from .core.weights import (
        as_multihot as as_multihot,
        compose_hierarchical as compose_hierarchical,
        compose_product as compose_product,
        get_sample_weights as get_sample_weights,
        group_shares as group_shares,
        inverse_frequency as inverse_frequency,
        normalize as normalize,
        weight_stats as weight_stats,
    )
    from .data.images import (
        LabelTable as LabelTable,
        MultiLabelImageDataset as MultiLabelImageDataset,
        get_balanced_data_loaders as get_balanced_data_loaders,
        read_label_csv as read_label_csv,
        write_label_csv as write_label_csv,
    )
    from .data.sources import (
        ArrayDataset as ArrayDataset,
    )
    from .data.splits import (
        MultilabelStratifiedKFold as MultilabelStratifiedKFold,
        multilabel_split as multilabel_split,
        split_prevalence as split_prevalence,
    )
    from .data.store import (
        ClusterLabeledDataset as ClusterLabeledDataset,
        ClusterStoreWriter as ClusterStoreWriter,
        SampleBatch as SampleBatch,
        collate_with_metadata as collate_with_metadata,
        store_summary as store_summary,
    )
    from .pipeline import (
        Pipeline as Pipeline,
        build_sampler as build_sampler,
        from_config as from_config,
        mixture_from_config as mixture_from_config,
    )
    from .sampling import (
        AdaptiveMixture as AdaptiveMixture,
        AdaptiveSampler as AdaptiveSampler,
        DynamicCurriculumSampler as DynamicCurriculumSampler,
        IterableSource as IterableSource,
        JointSampler as JointSampler,
        MixedDatasetSampler as MixedDatasetSampler,
        MixPlan as MixPlan,
        PlanSampler as PlanSampler,
        ShardedSource as ShardedSource,
        StratifiedConcatDataset as StratifiedConcatDataset,
        TaskAwareSampler as TaskAwareSampler,
        UniformConcatDataset as UniformConcatDataset,
        WeightedConcatDataset as WeightedConcatDataset,
        WeightedInterleaveDataset as WeightedInterleaveDataset,
        WeightedSampler as WeightedSampler,
        WeightSchedule as WeightSchedule,
    )
    from .train.losses import (
        CombinedLoss as CombinedLoss,
        FocalLoss as FocalLoss,
        WeightedBCEWithLogitsLoss as WeightedBCEWithLogitsLoss,
        calculate_effective_num_samples as calculate_effective_num_samples,
        calculate_pos_weights as calculate_pos_weights,
        calculate_sampled_pos_weights as calculate_sampled_pos_weights,
        combined_loss as combined_loss,
        focal_loss as focal_loss,
        get_class_balanced_weights as get_class_balanced_weights,
        weighted_bce_with_logits as weighted_bce_with_logits,
    )
    from .train.metrics import (
        MetricsTracker as MetricsTracker,
        calculate_auc_roc as calculate_auc_roc,
        compute_metrics as compute_metrics,
        get_roc_curves as get_roc_curves,
        label_ranking_average_precision as label_ranking_average_precision,
        plot_roc_curves as plot_roc_curves,
    )


def _public_names() -> dict[str, str]:
    """Public name -> its module (relative to this package), read from the imports of the block above."""
    tree = _ast.parse(_Path(__file__).read_text(encoding="utf-8"))
    block = next(n for n in tree.body if isinstance(n, _ast.If) and _ast.unparse(n.test) == "_TYPE_CHECKING")
    return {a.name: str(imp.module) for imp in block.body if isinstance(imp, _ast.ImportFrom) for a in imp.names}


_EXPORTS = _public_names()
__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mixweave' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return list(__all__)
