"""AdaptiveMixture and AdaptiveSampler: the rules against a slow reference, the draws, replay, resume, gloo."""

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from scipy import stats

from mixweave import AdaptiveMixture, AdaptiveSampler

# ---------------------------------------------------------------- the rules against a slow reference


def _reference_run(algorithm, steps, k, *, lr, floor, decay=0.9, reference=None, update_every=1):
    """The papers' updates written out with Python floats, one group at a time."""
    scores = [0.0] * k if algorithm == "exp3" else [math.log(1.0 / k)] * k
    history = []

    def shares():
        scale = lr if algorithm == "exp3" else 1.0
        top = max(scale * s for s in scores)
        z = [math.exp(scale * s - top) for s in scores]
        return [(1 - k * floor) * v / sum(z) + floor for v in z]

    current = shares()
    sums, counts = [0.0] * k, [0.0] * k
    for t, (ids, losses) in enumerate(steps, start=1):
        for g, loss in zip(ids, losses, strict=True):
            sums[g] += loss
            counts[g] += 1
        if t % update_every:
            continue
        n = sum(counts)
        for g in range(k):
            if algorithm == "exp3":
                reward = sums[g] / (n * current[g])
                scores[g] = decay * scores[g] + (1 - decay) * reward
            elif counts[g] > 0:
                scores[g] += lr * max(sums[g] / counts[g] - reference[g], 0.0)
        current = shares()
        history.append(current)
        sums, counts = [0.0] * k, [0.0] * k
    return history


def _steps(seed, k, n_steps, high=2):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_steps):
        ids = rng.integers(0, k, 12)
        losses = np.where(ids == high, 2.0, 0.4) + rng.normal(scale=0.05, size=12)
        out.append((ids, losses))
    return out


@pytest.mark.parametrize("algorithm", ["exp3", "doremi"])
@pytest.mark.parametrize("update_every", [1, 3])
def test_updates_match_the_formulas_written_out(algorithm, update_every):
    k = 4
    steps = _steps(0, k, 30)
    kwargs = {"reference_losses": [0.3, 0.3, 0.5, 0.3]} if algorithm == "doremi" else {}
    floor = 0.01
    mixture = AdaptiveMixture(
        k, algorithm=algorithm, learning_rate=0.7, floor=floor, update_every=update_every, **kwargs
    )
    got = []
    for ids, losses in steps:
        if mixture.observe(ids, losses):
            got.append(mixture.probabilities())
    expected = _reference_run(
        algorithm, steps, k, lr=0.7, floor=floor, reference=kwargs.get("reference_losses"), update_every=update_every
    )
    assert len(got) == len(expected) == 30 // update_every
    assert np.allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert [e["shares"] for e in mixture.history[1:]] == [g.tolist() for g in got]
    assert [e["update"] for e in mixture.history] == list(range(len(got) + 1))


@pytest.mark.parametrize("algorithm", ["exp3", "doremi"])
def test_shares_move_toward_the_group_whose_loss_stays_high_and_keep_the_floor(algorithm):
    k = 4
    kwargs = {"reference_losses": [0.4] * k} if algorithm == "doremi" else {}
    mixture = AdaptiveMixture(k, algorithm=algorithm, learning_rate=3.0, **kwargs)
    rng = np.random.default_rng(1)
    for _ in range(200):  # each batch drawn with the shares in force, as the sampler would
        ids = rng.choice(k, size=12, p=mixture.probabilities())
        mixture.observe(ids, np.where(ids == 2, 2.0, 0.4) + rng.normal(scale=0.05, size=12))
    shares = mixture.probabilities()
    assert shares[2] > 0.8  # from 0.25: the high-loss group took most of the draws
    assert shares.min() >= mixture.floor > 0  # nobody starves
    assert shares.sum() == pytest.approx(1.0, abs=1e-12)
    trajectory = np.array([e["shares"][2] for e in mixture.history])
    assert trajectory[-1] >= trajectory[len(trajectory) // 10] > trajectory[0]  # it moved up and stayed


def test_per_group_means_with_counts_equal_per_sample_losses():
    ids = np.array([0, 0, 1, 2, 2, 2])
    losses = np.array([1.0, 3.0, 0.5, 2.0, 2.0, 5.0])
    a = AdaptiveMixture(3)
    b = AdaptiveMixture(3)
    a.observe(ids, losses)
    b.observe(np.array([0, 1, 2]), np.array([2.0, 0.5, 3.0]), counts=np.array([2, 1, 3]))
    assert np.allclose(a.probabilities(), b.probabilities(), rtol=1e-12)


def test_tensors_are_accepted_and_initial_shares_hold_until_the_first_update():
    m = AdaptiveMixture(2, update_every=2, initial=[0.8, 0.2], floor=0.05)
    assert np.allclose(m.probabilities(), [0.9 * 0.8 + 0.05, 0.9 * 0.2 + 0.05])
    assert m.observe(torch.tensor([0, 1]), torch.tensor([1.0, 1.0], requires_grad=True).detach()) is False
    assert np.allclose(m.probabilities(), [0.77, 0.23]) and m.updates == 0
    assert m.observe(torch.tensor([1]), torch.tensor([4.0])) is True and m.updates == 1


def test_state_dict_round_trip_continues_identically():
    steps = _steps(2, 3, 20)
    a = AdaptiveMixture(3, update_every=3)
    for ids, losses in steps[:10]:  # 10 steps: an open window of one step
        a.observe(ids, losses)
    state = json.loads(json.dumps(a.state_dict()))  # plain JSON
    b = AdaptiveMixture(3, update_every=3)
    b.load_state_dict(state)
    for ids, losses in steps[10:]:
        a.observe(ids, losses)
        b.observe(ids, losses)
    assert np.array_equal(a.probabilities(), b.probabilities())
    assert a.history == b.history and (a.steps, a.updates) == (b.steps, b.updates) == (20, 6)
    with pytest.raises(ValueError, match=r"saved with update_every=3 but this AdaptiveMixture has update_every=1"):
        AdaptiveMixture(3).load_state_dict(state)
    with pytest.raises(ValueError, match=r"missing key\(s\) \['scores'"):
        AdaptiveMixture(3, update_every=3).load_state_dict({k: v for k, v in state.items() if k != "scores"})


def test_write_history_is_json_lines_with_names(tmp_path):
    m = AdaptiveMixture(2, names=["web", "code"])
    m.observe([0, 1], [1.0, 2.0])
    m.write_history(tmp_path / "h.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert [e["update"] for e in lines] == [0, 1] and lines[1]["names"] == ["web", "code"]
    assert lines[1]["shares"] == m.probabilities().tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.jsonl"]  # no temporary file left


def test_update_hooks_run_after_each_update():
    m = AdaptiveMixture(2, update_every=2)
    seen = []
    m.update_hooks.append(lambda mix: seen.append(mix.updates))
    for _ in range(5):
        m.observe([0], [1.0])
    assert seen == [1, 2]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"num_groups": 1}, ValueError, r"`num_groups` must be an int >= 2, got 1"),
        ({"algorithm": "ucb"}, ValueError, r"`algorithm` must be one of .*'exp3'.*'doremi'.*got 'ucb'"),
        ({"floor": 0.6}, ValueError, r"`floor` must be a finite number in \(0, 0.5\], got 0.6"),
        ({"floor": 0.0}, ValueError, r"`floor` must be a finite number in \(0, 0.5\], got 0.0"),
        ({"learning_rate": -1}, ValueError, r"`learning_rate` must be a finite number > 0, got -1.0"),
        ({"decay": 1.0}, ValueError, r"`decay` must be a finite number in \[0, 1\), got 1.0"),
        ({"update_every": 0}, ValueError, r"`update_every` must be an int >= 1, got 0"),
        ({"algorithm": "doremi"}, ValueError, r"algorithm='doremi' needs `reference_losses`"),
        ({"reference_losses": [0, 0]}, ValueError, r"`reference_losses` applies to algorithm='doremi' only"),
        (
            {"algorithm": "doremi", "reference_losses": [0.1]},
            ValueError,
            r"`reference_losses` must be 2 finite numbers \(one per group\), got \[0.1\]",
        ),
        ({"initial": [0.5, 0.6]}, ValueError, r"`initial` must be positive shares summing to 1, got \[0.5, 0.6\]"),
        ({"initial": [1.0, 0.0]}, ValueError, r"`initial` must be positive shares summing to 1"),
        ({"names": ["a", "a"]}, ValueError, r"`names` must be 2 distinct names, got \['a', 'a'\]"),
    ],
)
def test_bad_construction_is_named(kwargs, error, match):
    args = {"num_groups": 2, **kwargs}
    with pytest.raises(error, match=match):
        AdaptiveMixture(args.pop("num_groups"), **args)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda m: m.observe([0, 2], [1.0, 1.0]),
            r"`group_ids` must be a 1-D array of integers in \[0, 2\), got \[0, 2\]",
        ),
        (lambda m: m.observe([0.5], [1.0]), r"`group_ids` must be a 1-D array of integers in \[0, 2\)"),
        (lambda m: m.observe([[0, 1]], [1.0, 1.0]), r"`group_ids` must be a 1-D array of integers"),
        (lambda m: m.observe([0], ["high"]), r"`losses` must be numbers, one per entry of `group_ids`, got \['high'\]"),
        (lambda m: m.observe([0, 1], [1e308, 1e308]) or m.observe([0, 1], [1e308, 1e308]), "too large to sum"),
        (lambda m: m.observe([0, 1], [1.0]), r"same length, got shapes \(2,\) and \(1,\)"),
        (lambda m: m.observe([0], [float("nan")]), r"`losses` must be finite, got \[nan\]"),
        (lambda m: m.observe([0], [1.0], counts=[-1]), r"`counts` must be non-negative numbers"),
    ],
)
def test_bad_observations_are_named(call, match):
    m = AdaptiveMixture(2)
    with pytest.raises(ValueError, match=match):
        call(m)
    assert m.steps == 0  # nothing was recorded


def test_nothing_is_recorded_by_a_failed_call_and_shares_never_become_nan():
    m = AdaptiveMixture(2, update_every=2)
    m.observe([0, 1], [1e307, 1.0])
    before = m.state_dict()
    with pytest.raises(ValueError, match="too large to sum in float64"):
        m.observe([0], [1e308])
    assert m.state_dict() == before
    hot = AdaptiveMixture(2, learning_rate=1e308)
    with pytest.raises(ValueError, match=r"`learning_rate` \(1e\+308\) and the losses take the scores out of"):
        hot.observe([0, 1], [1e10, 1e10])
    assert np.isfinite(hot.probabilities()).all() and hot.updates == 0
    with pytest.raises(ValueError, match="`learning_rate`"):
        AdaptiveMixture(2, learning_rate=1e-310)  # log(1/2) / 1e-310 is -inf


def test_an_empty_window_leaves_the_shares_alone():
    for algorithm, kwargs in (("exp3", {}), ("doremi", {"reference_losses": [0.0, 0.0]})):
        m = AdaptiveMixture(2, algorithm=algorithm, learning_rate=3.0, **kwargs)
        m.observe([0, 1, 1], [0.1, 2.0, 2.0])
        moved = m.probabilities()
        m.observe([], [])  # a step with no sample: an update of nothing
        m.update()
        assert np.array_equal(m.probabilities(), moved) and m.updates == 3


def test_exp3_weighs_each_sample_by_the_share_it_was_drawn_with():
    # A sampler records its segment's shares; samples observed later count as drawn with those,
    # even after updates moved the shares in force (the segment is longer than an update).
    drawn = AdaptiveMixture(2, learning_rate=2.0, initial=[0.8, 0.2], floor=0.01)
    drawn.record_segment(0, 0)  # what AdaptiveSampler does when it reaches a segment
    latest = AdaptiveMixture(2, learning_rate=2.0, initial=[0.8, 0.2], floor=0.01)
    rng = np.random.default_rng(0)
    for _ in range(30):
        ids = rng.choice(2, size=20, p=drawn.segment_log[0][0])
        losses = np.where(ids == 1, 1.0, 1.0)  # equal losses: an unbiased rule keeps the groups equal
        drawn.observe(ids, losses)
        latest.observe(ids, losses)
    # equal losses: with the draw shares the rewards are equal (shares near 1/2); dividing by the
    # latest shares instead (which moved) is biased
    assert drawn.probabilities() == pytest.approx([0.5, 0.5], abs=0.12)
    assert abs(latest.probabilities()[0] - 0.5) > abs(drawn.probabilities()[0] - 0.5)


def test_failed_loads_leave_everything_as_it_was():
    m = AdaptiveMixture(2)
    m.observe([0, 1], [1.0, 2.0])
    state = m.state_dict()
    fresh = AdaptiveMixture(2)
    before = fresh.state_dict()
    for key, bad in (("window_counts", [1.0, float("nan")]), ("history", 5), ("updates", 7), ("scores", "x")):
        with pytest.raises(ValueError, match=f"state_dict\\['{key}'\\]|`state_dict\\['{key}'\\]`"):
            fresh.load_state_dict({**state, key: bad})
        assert fresh.state_dict() == before
    doremi = AdaptiveMixture(2, algorithm="doremi", reference_losses=[0.1, 0.2])
    with pytest.raises(ValueError, match="saved with reference_losses="):
        AdaptiveMixture(2, algorithm="doremi", reference_losses=[0.1, 0.3]).load_state_dict(doremi.state_dict())
    sampler = AdaptiveSampler(AdaptiveMixture(3), GROUPS)
    sampler.set_epoch(3)
    good = sampler.state_dict()
    with pytest.raises(ValueError, match="recorded shares must be 3 non-negative numbers"):
        sampler.load_state_dict({**good, "epoch": 1, "share_log": {"0": [1.0, float("nan"), 0.0]}})
    assert sampler.epoch == 3
    with pytest.raises(ValueError, match="a share log entry needs 'epoch' and 'segment' \\(ints >= 0\\)"):
        sampler.load_share_log([{"epoch": 0, "segment": 0, "shares": [1, 1, 1]}, {"epoch": -1, "segment": 0}])
    assert sampler.share_log(0) == {}  # the good entry before the bad one was not applied either


def test_reference_losses_by_name_and_other_argument_checks():
    m = AdaptiveMixture(2, algorithm="doremi", reference_losses={"code": 0.5, "web": 0.1}, names=["web", "code"])
    assert m.reference_losses.tolist() == [0.1, 0.5]
    with pytest.raises(ValueError, match=r"`reference_losses` given by name must name every one of \['web', 'code'\]"):
        AdaptiveMixture(2, algorithm="doremi", reference_losses={"web": 0.1}, names=["web", "code"])
    with pytest.raises(TypeError, match="`names` must be a list of 2 names, got str"):
        AdaptiveMixture(2, names="ab")
    with pytest.raises(TypeError, match="`distributed` must be True or False"):
        AdaptiveMixture(2, distributed="no")
    with pytest.warns(UserWarning, match="every share is fixed at 1/2"):
        AdaptiveMixture(2, floor=0.5)


def test_distributed_true_without_a_process_group_raises():
    m = AdaptiveMixture(2, distributed=True)
    with pytest.raises(RuntimeError, match=r"needs an initialised torch\.distributed process group"):
        m.observe([0], [1.0])


# ---------------------------------------------------------------- the sampler

GROUPS = np.repeat([0, 1, 2], [600, 300, 100])


def _train(sampler, mixture, steps, batch=20, high=2, seed=0):
    """Iterate like a loader with 0 workers: a batch, then the step's observe."""
    rng = np.random.default_rng(seed)
    it = iter(sampler)
    seen = []
    for _ in range(steps):
        rows = np.array([next(it) for _ in range(batch)])
        ids = GROUPS[rows]
        mixture.observe(ids, np.where(ids == high, 2.0, 0.3) + rng.normal(scale=0.01, size=batch))
        seen.append(rows)
    return np.concatenate(seen)


def test_each_segment_is_drawn_with_the_shares_in_force_when_it_starts():
    mixture = AdaptiveMixture(3, learning_rate=3.0)
    sampler = AdaptiveSampler(mixture, GROUPS, num_samples=1000, segment_size=100, seed=0)
    recorded = []
    sampler.segment_hooks.append(lambda s, e, seg, p: recorded.append((seg, mixture.updates, p.tolist())))
    seen = _train(sampler, mixture, 50)
    # segment s starts at position 100 s: after the 5 s steps of 20 samples before it
    assert [(seg, updates) for seg, updates, _ in recorded] == [(s, 5 * s) for s in range(10)]
    for _seg, updates, shares in recorded:
        assert shares == mixture.history[updates]["shares"]
    log = sampler.share_log(0)
    assert log[9][2] > log[1][2] > log[0][2] == pytest.approx(1 / 3)  # the hard group's share rose
    assert seen.size == 1000


def test_realised_group_shares_follow_the_recorded_shares_chi_square():
    mixture = AdaptiveMixture(3, initial=[0.2, 0.3, 0.5], floor=0.01)
    sampler = AdaptiveSampler(mixture, GROUPS, num_samples=60_000, segment_size=60_000, seed=4)
    plan = sampler.global_plan(0)
    counts = np.bincount(GROUPS[plan], minlength=3)
    expected = mixture.probabilities() * plan.size
    # fixed seed; the draw's group frequencies pass a chi-square goodness-of-fit test at the 0.1% level
    assert stats.chisquare(counts, expected).pvalue > 1e-3


def test_within_weights_act_only_inside_each_group():
    within = np.ones(1000)
    within[:300] = 3.0  # inside group 0 the first 300 rows are 3x as likely as the other 300
    within[950:] = 0.0  # half of group 2 is never drawn
    mixture = AdaptiveMixture(3, initial=[0.5, 0.25, 0.25], floor=0.01)
    sampler = AdaptiveSampler(mixture, GROUPS, num_samples=200_000, segment_size=200_000, within=within, seed=1)
    plan = sampler.global_plan(0)
    assert not np.isin(plan, np.arange(950, 1000)).any()
    g0 = plan[GROUPS[plan] == 0]
    ratio = (g0 < 300).mean() / (g0 >= 300).mean()
    assert ratio == pytest.approx(3.0, rel=0.05)  # about 76k draws: the ratio's sd is under 1%
    shares = np.bincount(GROUPS[plan], minlength=3) / plan.size
    assert np.allclose(shares, mixture.probabilities(), atol=0.005)  # group shares are not changed by `within`


def test_replay_from_the_share_log_reproduces_the_indices_exactly():
    mixture = AdaptiveMixture(3, learning_rate=3.0)
    sampler = AdaptiveSampler(mixture, GROUPS, num_samples=1000, segment_size=100, seed=7)
    seen = _train(sampler, mixture, 50)
    entries = json.loads(json.dumps(sampler.share_log_entries()))
    replay = AdaptiveSampler(AdaptiveMixture(3, learning_rate=3.0), GROUPS, num_samples=1000, segment_size=100, seed=7)
    replay.load_share_log(entries)
    assert np.array_equal(replay.global_plan(0), seen)
    other_seed = AdaptiveSampler(AdaptiveMixture(3), GROUPS, num_samples=1000, segment_size=100, seed=8)
    other_seed.load_share_log(entries)
    assert not np.array_equal(other_seed.global_plan(0), seen)
    other_log = [dict(e, shares=[1 / 3] * 3) for e in entries]
    replay.load_share_log(other_log)
    assert not np.array_equal(replay.global_plan(0), seen)  # the shares matter, not only the seed


def test_plan_records_nothing_and_forecasts_with_the_shares_now():
    mixture = AdaptiveMixture(3)
    sampler = AdaptiveSampler(mixture, GROUPS, num_samples=400, segment_size=100, seed=0)
    forecast = sampler.global_plan(0)
    assert sampler.share_log(0) == {}
    assert np.array_equal(forecast, np.array(list(sampler)))  # nothing observed: the forecast comes true


def test_ranks_in_lockstep_record_the_same_shares_and_union_to_the_replayed_plan():
    world, batch = 2, 10
    mixtures = [AdaptiveMixture(3, learning_rate=3.0) for _ in range(world)]
    samplers = [
        AdaptiveSampler(m, GROUPS, num_samples=600, segment_size=40, seed=2, num_replicas=world, rank=r)
        for r, m in enumerate(mixtures)
    ]
    iters = [iter(s) for s in samplers]
    shards = [[] for _ in range(world)]
    for _ in range(30):
        rows = [np.array([next(it) for _ in range(batch)]) for it in iters]
        # one all-reduce, done by hand: every rank observes every rank's losses
        ids = np.concatenate([GROUPS[r] for r in rows])
        for m in mixtures:
            m.observe(ids, np.where(ids == 2, 2.0, 0.3))
        for r in range(world):
            shards[r].append(rows[r])
    logs = [s.share_log_entries() for s in samplers]
    assert logs[0] == logs[1] and len(logs[0]) == 15
    union = np.empty(600, dtype=np.int64)
    for r in range(world):
        union[r::world] = np.concatenate(shards[r])
    replay = AdaptiveSampler(AdaptiveMixture(3), GROUPS, num_samples=600, segment_size=40, seed=2)
    replay.load_share_log(logs[0])
    assert np.array_equal(union, replay.global_plan(0))


def test_resume_mid_epoch_continues_with_the_same_indices_and_shares():
    def build():
        mixture = AdaptiveMixture(3, learning_rate=3.0)
        return mixture, AdaptiveSampler(mixture, GROUPS, num_samples=1000, segment_size=100, seed=3)

    mixture, sampler = build()
    full = _train(sampler, mixture, 50)
    mixture, sampler = build()
    first = _train(sampler, mixture, 23)  # mid-segment
    saved = json.loads(json.dumps({"sampler": sampler.state_dict(), "mixture": mixture.state_dict()}))
    mixture, sampler = build()
    mixture.load_state_dict(saved["mixture"])
    sampler.load_state_dict(saved["sampler"])
    rest = _train(sampler, mixture, 27)
    assert np.array_equal(np.concatenate([first, rest]), full)


def test_sampler_bad_input_is_named():
    m = AdaptiveMixture(3)
    with pytest.raises(ValueError, match=r"`groups` must hold ids in \[0, 3\)"):
        AdaptiveSampler(m, np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="`groups` must be a non-empty 1-D array of integer ids"):
        AdaptiveSampler(m, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="group 2 has no sample with positive weight"):
        AdaptiveSampler(m, np.array([0, 1, 2]), within=[1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"`segment_size` \(5\) must be a multiple of num_replicas \(2\)"):
        AdaptiveSampler(m, GROUPS, segment_size=5, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match=r"`within` must have one weight per sample \(3\)"):
        AdaptiveSampler(m, np.array([0, 1, 2]), within=[1.0, 1.0])
    with pytest.raises(TypeError, match="`mixture` must be an AdaptiveMixture, got list"):
        AdaptiveSampler([0.5, 0.5], np.array([0, 1]))
    sampler = AdaptiveSampler(m, GROUPS)
    with pytest.raises(ValueError, match="a share log entry needs 'epoch' and 'segment' \\(ints >= 0\\) and 'shares'"):
        sampler.load_share_log([{"epoch": 0}])
    with pytest.raises(ValueError, match="recorded shares must be 3 non-negative numbers"):
        sampler.load_share_log([{"epoch": 0, "segment": 0, "shares": [1.0, -1.0, 1.0]}])
    other = AdaptiveSampler(AdaptiveMixture(3), GROUPS, segment_size=512)
    with pytest.raises(ValueError, match="saved with segment_size=1024 but this sampler has segment_size=512"):
        other.load_state_dict(sampler.state_dict())


# ---------------------------------------------------------------- two gloo ranks


def _gloo_worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        mixture = AdaptiveMixture(3, learning_rate=3.0)  # distributed: from the process group
        sampler = AdaptiveSampler(mixture, GROUPS, num_samples=800, segment_size=80, seed=5)
        it = iter(sampler)
        rows_seen, shares = [], []
        rng = np.random.default_rng(rank)  # each rank sees different noise: only the all-reduce makes them agree
        for _ in range(20):
            rows = np.array([next(it) for _ in range(20)])
            ids = GROUPS[rows]
            mixture.observe(ids, np.where(ids == 2, 2.0, 0.3) + rng.normal(scale=0.1, size=20))
            rows_seen.append(rows)
            shares.append(mixture.probabilities())
        np.savez(f"{out_dir}/rank{rank}.npz", rows=np.concatenate(rows_seen), shares=np.array(shares))
        with open(f"{out_dir}/log{rank}.json", "w") as fh:
            json.dump(sampler.share_log_entries(), fh)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_hold_identical_shares_and_disjoint_shards_of_one_plan(tmp_path):
    world = 2
    mp.spawn(_gloo_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    results = [np.load(tmp_path / f"rank{r}.npz") for r in range(world)]
    assert np.array_equal(results[0]["shares"], results[1]["shares"])  # bit for bit, after every update
    assert results[0]["shares"][-1][2] > 0.6  # and they moved toward the high-loss group
    logs = [json.loads((tmp_path / f"log{r}.json").read_text()) for r in range(world)]
    assert logs[0] == logs[1]
    replay = AdaptiveSampler(AdaptiveMixture(3), GROUPS, num_samples=800, segment_size=80, seed=5)
    replay.load_share_log(logs[0])
    union = np.empty(800, dtype=np.int64)
    for r in range(world):
        union[r::world] = results[r]["rows"]
    assert np.array_equal(union, replay.global_plan(0))  # disjoint positions of one replayable plan


# ---------------------------------------------------------------- kill and restart

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "adaptive_mixing.py"


def _run(out, *extra):
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _seen(out):
    return [json.loads(line) for line in (out / "seen.jsonl").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["exp3", "doremi"])
def test_killed_with_sigkill_and_restarted_continues_identically(tmp_path, algorithm):
    clean = tmp_path / "clean"
    proc = _run(clean, "--algorithm", algorithm)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]

    killed = tmp_path / "killed"
    proc = _run(killed, "--algorithm", algorithm, "--step-delay", "0.05")
    deadline = time.monotonic() + 240
    while not (killed / "seen.jsonl").exists() or len(_seen(killed)) < 45:  # well into epoch 1 (30 steps/epoch)
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    saved = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 1 and 30 < saved["step"] < 60
    before = [e for e in _seen(killed) if e["step"] <= saved["step"]]
    (killed / "seen.jsonl").rename(killed / "run1.jsonl")

    proc = _run(killed, "--algorithm", algorithm, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert f"resumed at epoch 1, step {saved['step']}" in out
    assert before + _seen(killed) == _seen(clean)  # every batch, in order
    clean_shares = [json.loads(line) for line in (clean / "shares.jsonl").read_text().splitlines()]
    killed_shares = [json.loads(line) for line in (killed / "shares.jsonl").read_text().splitlines()]
    assert killed_shares == clean_shares  # the whole share trajectory, bit for bit
    # the segment log of the clean run replays its indices without the model
    entries = [json.loads(line) for line in (clean / "segments.jsonl").read_text().splitlines()]
    replay = AdaptiveSampler(AdaptiveMixture(3), np.repeat([0, 1, 2], 400), num_samples=960, segment_size=64, seed=0)
    replay.load_share_log(entries)
    rows = [r for e in _seen(clean) for r in e["rows"]]
    assert np.concatenate([replay.global_plan(e) for e in range(3)]).tolist() == rows


@pytest.mark.slow
@pytest.mark.parametrize("algorithm", ["exp3", "doremi"])
def test_stateful_dataloader_with_workers_resumes_exactly_after_any_batch(algorithm):
    """Workers fetch ahead: segments are read before their batches train. The mixture keeps the segment log,
    so a mixture saved at step k holds the shares of every segment the loader had already read."""
    from torch.utils.data import TensorDataset

    from mixweave.sampling import FlatConcatDataset  # noqa: F401  (the pipelines' dataset; any map-style one works)

    StatefulDataLoader = pytest.importorskip("torchdata.stateful_dataloader").StatefulDataLoader
    data = TensorDataset(torch.arange(GROUPS.size))
    kwargs = {"reference_losses": [0.3, 0.3, 0.3]} if algorithm == "doremi" else {}

    def build():
        mixture = AdaptiveMixture(3, algorithm=algorithm, learning_rate=0.5, **kwargs)
        sampler = AdaptiveSampler(mixture, GROUPS, num_samples=400, segment_size=20, seed=1)
        return mixture, StatefulDataLoader(data, batch_size=10, sampler=sampler, num_workers=2)

    def train(mixture, loader, stop=None):
        batches = []
        for k, (rows,) in enumerate(loader):
            ids = GROUPS[rows.numpy()]
            mixture.observe(ids, np.where(ids == 2, 2.0, 0.3))
            batches.append(rows.tolist())
            if k == stop:
                return batches, json.loads(json.dumps({"loader": loader.state_dict(), "mixture": mixture.state_dict()}))
        return batches, None

    full, _ = train(*build())
    for stop in (0, 3, 11, 24, 38):
        head, saved = train(*build(), stop=stop)
        mixture, loader = build()
        mixture.load_state_dict(saved["mixture"])
        loader.load_state_dict(saved["loader"])
        rest, _ = train(mixture, loader)
        assert head + rest == full, f"stopped after batch {stop}"
