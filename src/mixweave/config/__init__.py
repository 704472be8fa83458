"""Layer 4, configs: safe YAML, deep merge, ``extends``, parent/session inheritance and the schemas.

Nothing here builds a torch object (an import-linter contract keeps torch out);
:mod:`mixweave.pipeline` turns validated configs into datasets and samplers.
"""

from __future__ import annotations

from .errors import ConfigError, dotted, from_validation_error
from .files import deep_merge, load_yaml, load_yaml_with_extends
from .sampling import CurriculumConfig, JointSamplingConfig, TaskOversamplingConfig
from .schema import (
    SAMPLER_TYPES,
    SOURCE_TYPES,
    ArraySourceSpec,
    ClusterStoreSourceSpec,
    CsvSourceSpec,
    HuggingFaceSourceSpec,
    LoaderSpec,
    MixtureSpec,
    PipelineConfig,
    PythonSourceSpec,
    SamplerSpec,
    ShardsSourceSpec,
    validate_pipeline,
)
from .sessions import PARENT_ONLY_KEYS, describe, load_dataset_configs, session_entries

__all__ = [
    "PARENT_ONLY_KEYS",
    "SAMPLER_TYPES",
    "SOURCE_TYPES",
    "ArraySourceSpec",
    "ClusterStoreSourceSpec",
    "ConfigError",
    "CsvSourceSpec",
    "CurriculumConfig",
    "HuggingFaceSourceSpec",
    "JointSamplingConfig",
    "LoaderSpec",
    "MixtureSpec",
    "PipelineConfig",
    "PythonSourceSpec",
    "SamplerSpec",
    "ShardsSourceSpec",
    "TaskOversamplingConfig",
    "deep_merge",
    "describe",
    "dotted",
    "from_validation_error",
    "load_dataset_configs",
    "load_yaml",
    "load_yaml_with_extends",
    "session_entries",
    "validate_pipeline",
]
