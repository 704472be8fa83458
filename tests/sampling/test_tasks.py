import warnings

import numpy as np
import pytest

from mixweave import CurriculumState, DynamicCurriculumSampler, JointSampler, TaskAwareSampler
from mixweave.core.draw import largest_remainder
from mixweave.core.weights import primary_tasks, task_probabilities
from tests.checks import check_frequencies, check_resume, check_shards

RNG = np.random.default_rng(0)
N, T = 3000, 4
SIZES = np.array([2000, 600, 300, 100])  # single-label rows: task t has SIZES[t] rows
SINGLE = np.full((N, T), np.nan)
SINGLE[np.arange(N), np.repeat(np.arange(T), SIZES)] = 1.0
QUALITY = RNG.choice(["high", "medium", "low"], N, p=[0.2, 0.3, 0.5])


def task_of(rows):
    return np.repeat(np.arange(T), SIZES)[rows]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_task_aware_task_shares_follow_power_law(alpha):
    s = TaskAwareSampler(SINGLE, alpha, num_samples=100_000, seed=1)
    expected = SIZES**-alpha / (SIZES**-alpha).sum()
    check_frequencies(task_of(s.plan()), expected, sigmas=5.0)


def test_task_aware_rows_uniform_within_task_and_unlabelled_never_drawn():
    y = SINGLE.copy()
    y[:500, :] = np.nan  # 500 rows of task 0 lose their label
    s = TaskAwareSampler(y, 0.0, num_samples=200_000, seed=2)
    drawn = s.plan()
    assert (drawn >= 500).all()
    # inside task 0 (rows 500..1999), each row ~ uniform: 200k * 0.25 / 1500 = 33.3 per row
    expected = np.zeros(N)
    for lo, hi in ((500, 2000), (2000, 2600), (2600, 2900), (2900, 3000)):
        expected[lo:hi] = 0.25 / (hi - lo)
    check_frequencies(drawn, expected, sigmas=5.5)


def test_task_aware_multi_label_rows_slow_reference():
    # two-step law: draw task by p, then a labelled row of it; compare per-row probabilities with a slow loop
    y = np.where(RNG.random((200, 3)) < [0.6, 0.2, 0.05], 1.0, np.nan)
    y[0, 2] = 1.0
    p, counts = task_probabilities(y, 0.7)
    slow = np.zeros(200)
    for t in range(3):
        for i in range(200):
            if not np.isnan(y[i, t]):
                slow[i] += p[t] / counts[t]
    s = TaskAwareSampler(y, 0.7)
    assert np.allclose(s.weights, slow)


def test_alpha_outside_range_warns_and_works():
    with pytest.warns(UserWarning, match=r"`alpha` = 1.5 is outside \[0, 1\]"):
        s = TaskAwareSampler(SINGLE, 1.5, num_samples=10)
    assert len(list(s)) == 10


def test_curriculum_group_shares_follow_the_phase_and_change_without_rebuild():
    state = CurriculumState(patience=1)
    s = DynamicCurriculumSampler(QUALITY, state, num_samples=60_000, seed=0)
    names = ["high", "low", "medium"]

    def shares(plan):
        return {q: float(np.mean(QUALITY[plan] == q)) for q in names}

    got = shares(s.plan())
    assert got["high"] == pytest.approx(0.9, abs=0.01) and got["low"] == 0.0  # binomial sd ~0.0012
    state.update(1.0)
    assert state.update(1.0)  # -> expand
    list(s)  # finish epoch 0: the next epoch's plan reads the new phase
    got = shares(s.plan())
    assert got == pytest.approx({"high": 0.6, "medium": 0.35, "low": 0.05}, abs=0.01)


def test_curriculum_renormalises_over_groups_present():
    labels = np.array(["high"] * 50 + ["medium"] * 50)  # no "low" rows
    state = CurriculumState()
    state.set_phase("expand")  # 0.6 / 0.35 / 0.05 -> 0.6 / 0.95, 0.35 / 0.95 over the groups present
    s = DynamicCurriculumSampler(labels, state, num_samples=30_000, mode="exact")
    assert np.mean(s.plan() < 50) == pytest.approx(0.6 / 0.95, abs=1 / 30_000)


def test_joint_factors_alone_reproduce_standalone_samplers():
    state = CurriculumState()
    alone = JointSampler(SINGLE, None, None, task_alpha=0.4)
    assert np.allclose(alone.weights / alone.weights.sum(), TaskAwareSampler(SINGLE, 0.4).weights / 1.0)
    curriculum = JointSampler(SINGLE, QUALITY, state, task_alpha=None)
    standalone = DynamicCurriculumSampler(QUALITY, state)
    assert np.allclose(curriculum.weights, standalone.weights)


def test_original_minimal_calls_and_defaults(caplog):
    # the original OpenADMET calls: TaskAwareSampler(targets) (alpha 0.5), JointSampler(targets=..., task_alpha=...)
    default = TaskAwareSampler(SINGLE, seed=42)
    assert default.alpha == 0.5
    np.testing.assert_array_equal(default.plan(), TaskAwareSampler(SINGLE, 0.5, seed=42).plan())
    joint = JointSampler(targets=SINGLE, task_alpha=0.5, seed=42)
    assert joint.curriculum_state is None and joint.quality_ids is None
    # with no curriculum the joint sampler draws tasks as the task-aware sampler does
    np.testing.assert_allclose(joint.weights / joint.weights.sum(), default.weights / default.weights.sum())
    uniform_tasks = JointSampler(targets=SINGLE, num_samples=100_000, seed=42)  # task_alpha defaults to 0
    assert uniform_tasks.task_alpha == 0.0 and len(uniform_tasks) == 100_000
    check_frequencies(task_of(uniform_tasks.plan()), np.full(T, 1 / T), sigmas=5.0)
    # positional order as the original: (targets, quality_labels, curriculum_state, task_alpha, num_samples, seed)
    state = CurriculumState()
    positional = JointSampler(SINGLE, QUALITY, state, 0.5, 500, 7)
    assert len(positional) == 500 and positional.seed == 7
    # ... increment_seed_per_epoch, log_weight_stats); composition_mode is keyword only
    repeat = JointSampler(SINGLE, QUALITY, state, 0.5, 500, 7, False, False)
    assert np.array_equal(repeat.plan(0), repeat.plan(3))
    with pytest.raises(TypeError):
        JointSampler(SINGLE, QUALITY, state, 0.5, 500, 7, True, False, "hierarchical")
    curriculum = DynamicCurriculumSampler(QUALITY, state, 500, 7, False)  # the original's fifth argument
    assert np.array_equal(curriculum.plan(0), curriculum.plan(2))
    state.phase = "expand"  # the original sets the attribute; here it is set_phase
    assert state.weights == state.sampling_probs() == {"high": 0.6, "medium": 0.35, "low": 0.05}
    state.phase = "warmup"
    # log_weight_stats: one INFO line per epoch on the mixweave.sampling logger
    logged = JointSampler(targets=SINGLE, task_alpha=0.5, num_samples=10, log_weight_stats=True)
    with caplog.at_level("INFO", logger="mixweave.sampling"):
        list(logged)
        logged.set_epoch(1)
        list(logged)
    lines = [r.getMessage() for r in caplog.records if r.name == "mixweave.sampling"]
    stats = logged.weight_stats()
    assert [line.split(" sampling")[0] for line in lines] == ["epoch 0", "epoch 1"]
    assert f"effective_samples={stats['effective_samples']:.1f}" in lines[0]
    with pytest.raises(TypeError, match=r"`log_weight_stats` must be"):
        JointSampler(targets=SINGLE, log_weight_stats="yes")


def test_joint_multi_task_rows_use_rarest_task_and_task_shares_match_task_aware():
    y = np.where(RNG.random((4000, 3)) < [0.7, 0.3, 0.05], 1.0, np.nan)
    primary = primary_tasks(y)
    counts = (~np.isnan(y)).sum(axis=0)
    for i in np.flatnonzero(primary >= 0)[:200]:
        labelled = np.flatnonzero(~np.isnan(y[i]))
        assert primary[i] == labelled[np.argmin(counts[labelled])]
    s = JointSampler(y, None, None, task_alpha=0.6, num_samples=100_000, seed=3)
    p, _ = task_probabilities(y, 0.6)
    check_frequencies(primary[s.plan()], p, sigmas=5.0)


def test_joint_multiplicative_is_the_normalised_product_and_hierarchical_keeps_group_shares():
    state = CurriculumState()
    state.set_phase("robust")
    mult = JointSampler(SINGLE, QUALITY, state, task_alpha=1.0)
    task = JointSampler(SINGLE, None, None, task_alpha=1.0).weights
    qual = DynamicCurriculumSampler(QUALITY, state).weights
    assert np.allclose(mult.weights, task * qual / (task * qual).sum())
    hier = JointSampler(SINGLE, QUALITY, state, task_alpha=1.0, composition_mode="hierarchical")
    shares = {q: hier.weights[q == QUALITY].sum() for q in ("high", "medium", "low")}
    assert shares == pytest.approx({"high": 0.4, "medium": 0.4, "low": 0.2})
    stats = mult.weight_stats()
    assert 1 <= stats["effective_samples"] <= N


def test_joint_sharding_and_resume_follow_the_common_contract():
    state = CurriculumState()

    def make(world=1, rank=0):
        return JointSampler(SINGLE, QUALITY, state, 0.5, num_samples=301, seed=4, num_replicas=world, rank=rank)

    check_shards(make, 3)
    check_resume(make, 150)


def test_bad_input_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`targets` must be a 2-D \(N, T\) array .* or 1-D integer task ids"):
        TaskAwareSampler(np.ones(5), 0.5)
    with pytest.raises(ValueError, match=r"`targets` task ids must be >= -1 \(-1 = no label\), got -2"):
        TaskAwareSampler(np.array([0, -2]), 0.5)
    with pytest.raises(ValueError, match=r"`targets` has no labelled entry"):
        TaskAwareSampler(np.full((3, 2), np.nan), 0.5)
    with pytest.raises(TypeError, match=r"`alpha` must be a real number, got str 'x'"):
        TaskAwareSampler(SINGLE, "x")
    with pytest.raises(ValueError, match=r"`alpha` must be a finite number, got nan"):
        TaskAwareSampler(SINGLE, float("nan"))
    with pytest.raises(ValueError, match=r"Quality labels \['gold'\] found in dataset but not defined in curriculum"):
        DynamicCurriculumSampler(["high", "gold"], CurriculumState())
    with pytest.raises(ValueError, match=r"^quality_labels cannot be empty"):
        DynamicCurriculumSampler([], CurriculumState())
    with pytest.raises(ValueError, match=r"`quality_labels` must have shape \(3000,\), got \(2,\)"):
        JointSampler(SINGLE, ["high", "low"], CurriculumState(), 0.5)
    with pytest.raises(ValueError, match=r"`quality_labels` is required when `curriculum_state` is given"):
        JointSampler(SINGLE, None, CurriculumState(), 0.5)
    with pytest.raises(ValueError, match=r"`composition_mode` must be one of 'multiplicative', 'hierarchical'"):
        JointSampler(SINGLE, None, None, 0.5, composition_mode="additive")
    with pytest.raises(TypeError, match=r"`curriculum_state` must be a CurriculumState, got dict"):
        DynamicCurriculumSampler(QUALITY, {"high": 1.0})
    with pytest.warns(UserWarning, match=r"tasks \[1\] of `targets` have no label"):
        TaskAwareSampler(np.array([[1.0, np.nan], [0.0, np.nan]]), 0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TaskAwareSampler(SINGLE, 0.5)  # legal input does not warn


def test_phase_with_zero_probability_for_every_present_group():
    state = CurriculumState()  # warmup gives "low" probability 0
    with pytest.raises(ValueError, match=r"curriculum phase 'warmup' gives probability 0 to every quality present"):
        DynamicCurriculumSampler(["low"] * 10, state)
    state.set_phase("expand")
    s = DynamicCurriculumSampler(["low"] * 10, state)
    assert set(s.plan().tolist()) <= set(range(10))


def test_task_ids_form_equals_dense_form():
    ids = np.repeat(np.arange(T), SIZES)
    ids[:7] = -1
    dense = SINGLE.copy()
    dense[:7] = np.nan
    assert np.allclose(TaskAwareSampler(ids, 0.3).weights, TaskAwareSampler(dense, 0.3).weights)
    state = CurriculumState()
    a = JointSampler(ids, QUALITY, state, 0.3)
    b = JointSampler(dense, QUALITY, state, 0.3)
    assert np.allclose(a.weights, b.weights)


@pytest.mark.slow
def test_task_aware_beyond_2_24_rows():
    n = 2**24 + 3
    ids = np.zeros(n, dtype=np.int64)
    ids[-1] = 1  # one row carries task 1; with alpha = 0 it gets half of all draws
    s = TaskAwareSampler(ids, 0.0, num_samples=20_000, seed=0)
    share = float(np.mean(s.plan() == n - 1))
    assert abs(share - 0.5) < 5 * np.sqrt(0.25 / 20_000)


@pytest.mark.parametrize("composition_mode", ["multiplicative", "hierarchical"])
def test_joint_exact_mode_gives_the_quality_groups_exact_shares_in_every_prefix(composition_mode):
    state = CurriculumState()
    state.set_phase("expand")
    sampler = JointSampler(
        SINGLE, QUALITY, state, 0.5, num_samples=997, seed=2, composition_mode=composition_mode, mode="exact"
    )
    plan = sampler.plan()
    ids = np.array([["high", "medium", "low"].index(q) for q in QUALITY])[plan]
    mass = np.array([sampler.weights[q == QUALITY].sum() for q in ("high", "medium", "low")])
    if composition_mode == "hierarchical":  # the phase's shares themselves
        np.testing.assert_allclose(mass / mass.sum(), [state.sampling_probs()[q] for q in ("high", "medium", "low")])
    quotas = largest_remainder(mass, plan.size)  # each group's share of the epoch, to the sample (Hamilton)
    assert np.bincount(ids, minlength=3).tolist() == quotas.tolist()
    counts = np.cumsum(np.eye(3)[ids], axis=0)
    prefix = np.arange(1, plan.size + 1)[:, None] * quotas / plan.size
    assert np.abs(counts - prefix).max() <= 1.0 + 1e-9  # within one sample of the quota in every prefix
