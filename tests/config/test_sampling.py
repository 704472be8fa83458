import logging

import numpy as np
import pytest
import yaml

from mixweave import (
    ConfigError,
    CurriculumState,
    DynamicCurriculumSampler,
    JointSampler,
    JointSamplingConfig,
    TaskAwareSampler,
    WeightedSampler,
    build_sampler,
)

TARGETS = np.full((300, 2), np.nan)
TARGETS[:250, 0] = 1.0
TARGETS[250:, 1] = 0.0
QUALITY = np.array(["high", "medium", "low"] * 100)

DOC = """
sampling:
  enabled: true
  task_oversampling:
    enabled: true
    alpha: 0.3
  curriculum:
    enabled: true
    quality_col: "Quality"
    qualities: ["high", "medium", "low"]
    patience: 5
    strategy: "sampled"
    reset_early_stopping_on_phase_change: false
  composition_mode: "multiplicative"
  seed: 42
  increment_seed_per_epoch: true
  log_weight_statistics: true
  log_to_mlflow: false
"""


def test_document_shape_builds_a_joint_sampler():
    config = JointSamplingConfig.from_mapping(yaml.safe_load(DOC))
    sampler = build_sampler(config, TARGETS, QUALITY)
    assert isinstance(sampler, JointSampler)
    assert sampler.task_alpha == 0.3 and sampler.seed == 42
    assert sampler.curriculum_state.patience == 5
    assert sampler.curriculum_state.plateau == "restart"
    defaults = yaml.safe_load(DOC)
    del defaults["sampling"]["curriculum"]["patience"]
    defaults["sampling"]["curriculum"].update(plateau="continue", min_epochs_per_phase=4)
    state = build_sampler(JointSamplingConfig.from_mapping(defaults), TARGETS, QUALITY).curriculum_state
    assert (state.patience, state.plateau, state.min_epochs_per_phase) == (3, "continue", 4)


def test_backward_compatible_single_strategies():
    only_task = build_sampler({"task_sampling_alpha": 0.5}, TARGETS)
    assert isinstance(only_task, TaskAwareSampler)
    assert np.allclose(only_task.weights, TaskAwareSampler(TARGETS, 0.5).weights)
    state = CurriculumState()
    only_curriculum = build_sampler({"curriculum": {"enabled": True}}, TARGETS, QUALITY, curriculum_state=state)
    assert isinstance(only_curriculum, DynamicCurriculumSampler) and only_curriculum.curriculum_state is state
    neither = build_sampler({"enabled": False, "task_sampling_alpha": 0.5}, TARGETS)
    assert type(neither) is WeightedSampler
    assert sorted(neither.plan().tolist()) == list(range(300))  # a seeded shuffle


def test_increment_seed_per_epoch():
    fixed = build_sampler({"task_sampling_alpha": 0.5, "increment_seed_per_epoch": False}, TARGETS)
    assert np.array_equal(fixed.plan(0), fixed.plan(5))
    varying = build_sampler({"task_sampling_alpha": 0.5}, TARGETS)
    assert not np.array_equal(varying.plan(0), varying.plan(1))


def test_weight_statistics_logged_at_epoch_start(caplog):
    sampler = build_sampler({"task_sampling_alpha": 0.5}, TARGETS, num_samples=10)
    with caplog.at_level(logging.INFO, logger="mixweave.sampling"):
        list(sampler)
        list(sampler)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[1].startswith("epoch 1 sampling weights: min=")
    stats = sampler.weight_stats()
    assert f"effective_samples={stats['effective_samples']:.1f}" in lines[1]


def test_alpha_outside_range_warns():
    with pytest.warns(UserWarning, match=r"`sampling.task_oversampling.alpha` = 1.5 is outside \[0, 1\]"):
        JointSamplingConfig.from_mapping({"task_oversampling": {"enabled": True, "alpha": 1.5}})


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (
            {"curriculum": {"patience": 0}},
            r"`sampling.curriculum.patience`: Input should be greater than or equal to 1",
        ),
        ({"composition_mode": "additive"}, r"`sampling.composition_mode`: Input should be 'multiplicative'"),
        ({"task_oversampling": {"alpha": "x"}}, r"`sampling.task_oversampling.alpha`: Input should be a valid number"),
        ({"sampling": {"seeds": 1}}, r"`sampling.seeds`: Extra inputs are not permitted"),
    ],
    ids=["patience", "mode", "alpha-type", "unknown-key"],
)
def test_config_errors_name_the_dotted_key(data, match):
    with pytest.raises(ValueError, match=match):
        JointSamplingConfig.from_mapping(data)


def test_build_errors():
    with pytest.raises(ValueError, match=r"`quality_labels` is required when `sampling.curriculum.enabled` is true"):
        build_sampler({"curriculum": {"enabled": True}}, TARGETS)


def test_quality_col_names_the_column_of_a_table():
    table = {"Quality": QUALITY, "other": np.zeros(len(QUALITY))}
    config = {"curriculum": {"enabled": True}, "task_sampling_alpha": 0.5}
    from_table = build_sampler(config, TARGETS, data=table)
    direct = build_sampler(config, TARGETS, QUALITY)
    np.testing.assert_array_equal(from_table.plan(), direct.plan())
    renamed = {"curriculum": {"enabled": True, "quality_col": "q"}}
    np.testing.assert_array_equal(
        build_sampler(renamed, TARGETS, data={"q": QUALITY}).weights, build_sampler(renamed, TARGETS, QUALITY).weights
    )
    with pytest.raises(ConfigError, match=r"`sampling\.curriculum\.quality_col`: `data` has no column 'Quality'"):
        build_sampler({"curriculum": {"enabled": True}}, TARGETS, data={"q": QUALITY})


def test_config_errors_are_config_errors():
    with pytest.raises(ConfigError) as info:
        JointSamplingConfig.from_mapping({"curriculum": {"patience": 0}})
    assert info.value.key == "sampling.curriculum.patience"
