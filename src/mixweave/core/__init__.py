"""Layer 1, the core: weight math, the drawing engine, the curriculum state machine and the share report.

Pure numpy: nothing here imports torch or holds random state (an import-linter
contract in ``make lint`` keeps it so). Every layer above builds on these.
"""

from __future__ import annotations

from .curriculum import DEFAULT_PHASES, DEFAULT_QUALITIES, CurriculumState
from .draw import MODES, CategoricalTable, DrawEngine, interleave, largest_remainder, weighted_permutation
from .report import REPORT_KEYS, membership, report_rows, share_report
from .rng import derive_key, per_pass, permute, uniform
from .weights import (
    WeightStats,
    as_multihot,
    compose_hierarchical,
    compose_product,
    get_sample_weights,
    group_shares,
    inverse_frequency,
    normalize,
    primary_tasks,
    task_probabilities,
    task_weights,
    weight_stats,
)

__all__ = [
    "DEFAULT_PHASES",
    "DEFAULT_QUALITIES",
    "MODES",
    "REPORT_KEYS",
    "CategoricalTable",
    "CurriculumState",
    "DrawEngine",
    "WeightStats",
    "as_multihot",
    "compose_hierarchical",
    "compose_product",
    "derive_key",
    "get_sample_weights",
    "group_shares",
    "interleave",
    "inverse_frequency",
    "largest_remainder",
    "membership",
    "normalize",
    "per_pass",
    "permute",
    "primary_tasks",
    "report_rows",
    "share_report",
    "task_probabilities",
    "task_weights",
    "uniform",
    "weight_stats",
    "weighted_permutation",
]
