"""What a sampler's plan depends on, pinned: seed, epoch, weights, schedule, state; golden plans per mode.

These are the behaviours mutation testing found unguarded (docs/testing.md):
each test here fails if the sampler ignores one of its inputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mixweave import WeightedSampler
from mixweave.core.draw import DrawEngine, largest_remainder
from mixweave.core.rng import derive_key

W = [1.0, 0.0, 2.0, 3.0, 1.0, 0.5]
G = [0, 0, 1, 1, 2, 2]
MODES = {
    "random": dict(),
    "no-replacement": dict(replacement=False),
    "exact": dict(mode="exact", groups=G),
    "exact-no-replacement": dict(mode="exact", groups=G, replacement=False),
}

# Golden plans of seed 7, epoch 1 (mixweave 0.9). A change here changes every plan users saved: say so in CHANGELOG.
GOLDEN = {
    "random": [2, 0, 2, 3, 2, 0, 3, 2, 4, 2, 2, 0],
    "no-replacement": [5, 2, 3, 4, 0],
    "exact": [2, 2, 2, 0, 4, 2, 3, 3, 3, 0, 4, 3],
    "exact-no-replacement": [2, 3, 3, 0, 4, 2, 2, 3, 3, 0, 5, 2],
}


def _sampler(name, **extra):
    n = 5 if name == "no-replacement" else 12
    return WeightedSampler(W, n, **MODES[name], **extra)


@pytest.mark.parametrize("name", list(MODES))
def test_golden_plans(name):
    assert _sampler(name, seed=7).global_plan(1).tolist() == GOLDEN[name]


@pytest.mark.parametrize("name", list(MODES))
def test_plan_is_the_engine_plan_of_derive_key_seed_epoch(name):
    s = _sampler(name, seed=11)
    engine = DrawEngine(W, **{k: v for k, v in MODES[name].items()})
    for epoch in (0, 3):
        want = engine.plan(derive_key(11, epoch), s.num_samples)
        assert s.global_plan(epoch).tolist() == want.tolist()
    fixed = _sampler(name, seed=11, increment_seed_per_epoch=False)
    assert fixed.global_plan(5).tolist() == engine.plan(derive_key(11, 0), s.num_samples).tolist()


@pytest.mark.parametrize("name", list(MODES))
def test_seed_and_epoch_each_change_the_plan(name):
    big_w = np.random.default_rng(0).random(400)
    groups = np.arange(400) % 4
    kw = {**MODES[name]}
    if "groups" in kw:
        kw["groups"] = groups
    plans = {
        (seed, epoch): WeightedSampler(big_w, 200, seed=seed, **kw).global_plan(epoch).tolist()
        for seed in (0, 1)
        for epoch in (0, 1)
    }
    assert len({tuple(p) for p in plans.values()}) == 4  # every (seed, epoch) pair: its own plan
    assert WeightedSampler(big_w, 200, seed=1, **kw).global_plan(1).tolist() == plans[(1, 1)]


def test_a_state_from_other_weights_does_not_load():
    s = WeightedSampler(W, 12, seed=3)
    it = iter(s)
    [next(it) for _ in range(5)]
    state = json.loads(json.dumps(s.state_dict()))
    other = WeightedSampler([1.0, 0.0, 2.0, 3.0, 1.0, 0.6], 12, seed=3)  # same length, one weight differs
    with pytest.raises(ValueError, match=r"weights_crc32.*the weights of the saved epoch differ"):
        other.load_state_dict(state)
    same = WeightedSampler(list(W), 12, seed=3)
    same.load_state_dict(state)
    assert list(same) == s.global_plan(0).tolist()[5:]


def test_negative_epochs_are_rejected():
    s = WeightedSampler(W, 4, groups=G)
    for call in (lambda: s.set_epoch(-1), lambda: s.plan(-1), lambda: s.global_plan(-2), lambda: s.report(epoch=-1)):
        with pytest.raises(ValueError, match=r"`epoch` must be an int >= 0, got -"):
            call()


def test_report_columns_equal_a_slow_count():
    w = np.array([1.0, 1.0, 2.0, 0.0, 4.0, 2.0])
    g = np.array([0, 0, 1, 1, 2, 2])
    s = WeightedSampler(w, 50, seed=2, groups=g)
    rep = s.report()
    plan = s.global_plan(0).tolist()
    for k in range(3):
        members = [i for i in range(6) if g[i] == k]
        drawn = [i for i in plan if g[i] == k]
        assert rep["requested"][k] == pytest.approx(sum(w[i] for i in members) / w.sum())
        assert rep["realised"][k] == pytest.approx(len(drawn) / 50)
        assert rep["unique"][k] == len(set(drawn))
        assert rep["size"][k] == len(members)
        assert rep["coverage"][k] == pytest.approx(len(set(drawn)) / len(members))
        assert rep["repeats"][k] == len(drawn) - len(set(drawn))


def _scheduled(epoch):
    # group shares move from (0.6, 0.2, 0.2) at epoch 0 to (0.2, 0.2, 0.6) at epoch 2
    shares = np.array([[0.6, 0.2, 0.2], [0.4, 0.2, 0.4], [0.2, 0.2, 0.6]])[min(epoch, 2)]
    return np.repeat(shares / 4, 4)


@pytest.mark.parametrize("replacement", [True, False])
def test_scheduled_weights_in_exact_mode_follow_each_epochs_shares(replacement):
    groups = np.repeat([0, 1, 2], 4)
    s = WeightedSampler(_scheduled, 30, replacement, mode="exact", groups=groups, seed=4)
    for epoch in range(3):
        counts = np.bincount(groups[s.global_plan(epoch)], minlength=3)
        assert counts.tolist() == largest_remainder(_scheduled(epoch).reshape(3, 4).sum(1), 30).tolist()


def test_scheduled_weights_without_replacement_in_random_mode():
    s = WeightedSampler(lambda e: np.r_[np.ones(5), np.full(5, float(e))], 5, replacement=False, seed=1)
    assert (s.global_plan(0) < 5).all()  # epoch 0: the second half has weight 0
    p1 = s.global_plan(1)
    assert len(set(p1.tolist())) == 5 and (p1 >= 5).any()


def test_without_replacement_m_equal_to_k_boundary():
    w = [1.0, 0.0, 3.0, 2.0]
    full = WeightedSampler(w, 3, replacement=False, seed=0)  # m == k: every positive index once
    assert sorted(full.global_plan(0).tolist()) == [0, 2, 3]
    with pytest.raises(ValueError, match=r"`num_samples` \(4\) exceeds the 3 samples with positive weight"):
        WeightedSampler(w, 4, replacement=False)


@pytest.mark.parametrize(
    ("num_samples", "world", "drop_last", "length"),
    [(10, 3, True, 3), (10, 3, False, 4), (9, 3, True, 3), (3, 3, True, 1)],
)
def test_drop_last_boundaries(num_samples, world, drop_last, length):
    shards = [WeightedSampler(W, num_samples, num_replicas=world, rank=r, drop_last=drop_last) for r in range(world)]
    assert {len(s) for s in shards} == {length}
    got = np.concatenate([s.plan(0) for s in shards])
    assert got.size == length * world
    whole = shards[0].global_plan(0)
    interleaved = np.stack([s.plan(0) for s in shards], axis=1).ravel()
    if drop_last:
        assert interleaved.tolist() == whole[: length * world].tolist()
    else:
        assert interleaved.tolist() == np.r_[whole, whole][: length * world].tolist()
    with pytest.raises(ValueError, match=r"`num_samples` \(2\) must be >= num_replicas \(3\) with drop_last=True"):
        WeightedSampler(W, 2, num_replicas=3, rank=0, drop_last=True)


def test_report_of_another_epoch_uses_that_epochs_weights_and_checks_groups():
    groups = np.repeat([0, 1, 2], 4)
    s = WeightedSampler(_scheduled, 300, mode="exact", groups=groups, seed=4)
    rep = s.report(epoch=2)  # the current epoch is 0
    assert rep["requested"] == pytest.approx([0.2, 0.2, 0.6])
    assert rep["realised"] == pytest.approx((largest_remainder([0.2, 0.2, 0.6], 300) / 300).tolist())
    with pytest.raises(ValueError, match=r"`groups` must be integer ids of shape \(12,\), got int64 of shape \(11,\)$"):
        s.report(groups=np.zeros(11, dtype=np.int64))
    with pytest.raises(ValueError, match=r"got int64 of shape \(12, 1\)$"):
        s.report(groups=np.zeros((12, 1), dtype=np.int64))
    with pytest.raises(ValueError, match=r"got <U1 of shape \(12,\); map labels to ids first"):
        s.report(groups=np.array(list("abcabcabcabc")))


def _saved_state(**changes):
    s = WeightedSampler(W, 12, seed=3, num_replicas=2, rank=1)
    it = iter(s)
    [next(it) for _ in range(2)]
    return {**json.loads(json.dumps(s.state_dict())), **changes}


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(rank=2), r"`state_dict\['rank'\]` must be an int <= 1, got 2"),
        (dict(rank=-1), r"`state_dict\['rank'\]` must be an int >= 0, got -1"),
        (dict(num_replicas=0), r"`state_dict\['num_replicas'\]` must be an int >= 1, got 0"),
        (dict(offset=13), r"`state_dict\['offset'\]` must be an int <= 12, got 13"),
        (dict(offset=-1), r"`state_dict\['offset'\]` must be an int >= 0, got -1"),
        (dict(position=7), r"`state_dict\['position'\]` must be an int <= 6, got 7"),
        (dict(position=-1), r"`state_dict\['position'\]` must be an int >= 0, got -1"),
    ],
)
def test_corrupted_positions_in_a_state_are_named(changes, match):
    with pytest.raises(ValueError, match=match):
        WeightedSampler(W, 12, seed=3, num_replicas=2, rank=1).load_state_dict(_saved_state(**changes))


def test_a_state_of_another_world_resumes_from_the_global_position():
    state = _saved_state()  # rank 1 of 2 yielded 2 indices: global positions 1 and 3
    whole = WeightedSampler(W, 12, seed=3).global_plan(0).tolist()
    one = WeightedSampler(W, 12, seed=3)
    one.load_state_dict(state)  # one rank now: continue at 2 * 2 = position 4 (ranks in step)
    assert list(one) == whole[4:]
    legacy = {k: v for k, v in state.items() if k not in ("num_replicas", "rank", "offset")}
    single = WeightedSampler(W, 12, seed=3)
    single.load_state_dict(legacy)  # a state without world keys: saved by one rank from offset 0
    assert list(single) == whole[2:]
