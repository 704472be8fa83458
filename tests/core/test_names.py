"""Every family's names live in one tuple: its registry is keyed by it, and checks and errors list all of it."""

import re

import numpy as np
import pytest

from mixweave import ConfigError, DrawEngine, WeightSchedule, from_config
from mixweave.config import SAMPLER_TYPES, SOURCE_TYPES, ArraySourceSpec, SamplerSpec
from mixweave.core import names
from mixweave.pipeline import MIXTURE_BUILDERS, SAMPLER_FACTORS, SOURCE_BUILDERS


def _listed(allowed: tuple[str, ...]) -> str:
    return ".*".join(re.escape(repr(name)) for name in allowed)


def test_registries_are_keyed_by_their_name_tuples():
    assert tuple(MIXTURE_BUILDERS) == names.STRATEGIES
    assert tuple(SAMPLER_FACTORS) == SAMPLER_TYPES == names.SAMPLER_TYPES
    assert tuple(SOURCE_BUILDERS) == SOURCE_TYPES


def test_the_dispatchers_list_every_name_when_the_schema_is_bypassed(tmp_path):
    from mixweave.pipeline import Rows, build_source, make_sampler

    spec = SamplerSpec.model_construct(type="greedy")  # as if validation had been skipped
    with pytest.raises(ValueError, match=f"`sampler.type` must be one of {_listed(SAMPLER_TYPES)}, got 'greedy'"):
        make_sampler(spec, Rows(3))
    source = ArraySourceSpec.model_construct(type="parquet", name="x")
    with pytest.raises(ValueError, match=f"`sources\\[0\\].type` must be one of {_listed(SOURCE_TYPES)}"):
        build_source(source, 0, tmp_path)


def test_engine_and_schedule_errors_list_every_name():
    with pytest.raises(ValueError, match=f"`mode` must be one of {_listed(names.MODES)}, got 'greedy'"):
        DrawEngine(np.ones(3), mode="greedy")
    with pytest.raises(ValueError, match=f"`interpolation` must be one of {_listed(names.INTERPOLATIONS)}"):
        WeightSchedule({0: [1.0]}, interpolation="cubic")


@pytest.mark.parametrize(
    ("section", "value", "allowed"),
    [
        ("mixture", {"strategy": "greedy"}, names.STRATEGIES),
        ("mixture", {"mode": "greedy"}, names.MODES),
        ("mixture", {"interpolation": "greedy"}, names.INTERPOLATIONS),
        ("sampler", {"type": "greedy"}, SAMPLER_TYPES),
        ("sampler", {"reduce": "greedy"}, names.LABEL_REDUCTIONS),
        ("sampler", {"composition_mode": "greedy"}, names.COMPOSITION_MODES),
    ],
)
def test_schema_literals_are_the_core_tuples(section, value, allowed):
    source = {"type": "npy", "fields": {"y": "examples/data/real_label.npy"}}
    with pytest.raises(ConfigError, match=f"`{section}.{next(iter(value))}`: Input should be {_listed(allowed)}"):
        from_config({"sources": [source], section: value})
