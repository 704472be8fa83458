"""Layer 5, pipelines: one config (YAML, mapping or OmegaConf) in, sources, mixture, sampler and loader out.

:func:`from_config` reads any accepted shape through one translator per shape
(:mod:`.translate`), builds each source through the source registry
(:mod:`.sources`), the sampler through the sampler-factor registry
(:mod:`.samplers`, shared with :func:`build_sampler`), and returns a
:class:`Pipeline`; :mod:`.inspect` reports on a pipeline through its public API.
"""

from __future__ import annotations

from .build import MIXTURE_BUILDERS, Pipeline, build_pipeline, from_config, mixture_from_config
from .inspect import plot_share_history, plot_shares, report
from .samplers import SAMPLER_FACTORS, Rows, build_sampler, make_sampler
from .sources import ROLES, SOURCE_BUILDERS, BuiltSource, build_source
from .translate import LoadedConfig, load_pipeline_config, translate_mixed_data, translate_sampling, translate_sessions

__all__ = [
    "MIXTURE_BUILDERS",
    "ROLES",
    "SAMPLER_FACTORS",
    "SOURCE_BUILDERS",
    "BuiltSource",
    "LoadedConfig",
    "Pipeline",
    "Rows",
    "build_pipeline",
    "build_sampler",
    "build_source",
    "from_config",
    "load_pipeline_config",
    "make_sampler",
    "mixture_from_config",
    "plot_share_history",
    "plot_shares",
    "report",
    "translate_mixed_data",
    "translate_sampling",
    "translate_sessions",
]
