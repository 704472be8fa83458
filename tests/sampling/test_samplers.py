import json
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mixweave import WeightedSampler
from mixweave.core.draw import largest_remainder
from tests.checks import (
    check_frequencies,
    check_new_plan_per_epoch,
    check_resume,
    check_same_plan_same_key,
    check_shards,
)

W = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 0.5, 0.5, 9.0])
GROUPS = np.array([0, 0, 0, 1, 1, 1, 2, 2])

CONFIGS = {
    "random-with": dict(replacement=True),
    "random-without": dict(replacement=False, num_samples=6),
    "exact-with": dict(mode="exact", groups=GROUPS),
    "exact-without": dict(mode="exact", groups=GROUPS, replacement=False, num_samples=37),
}


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def config(request):
    return CONFIGS[request.param]


def make(config, **extra):
    return lambda *a: WeightedSampler(W, **{**dict(num_samples=37, seed=7), **config, **extra})


def test_same_seed_same_plan(config):
    check_same_plan_same_key(make(config))


def test_new_plan_each_epoch(config):
    check_new_plan_per_epoch(make(config)())


@pytest.mark.parametrize("world", [2, 3, 5])
@pytest.mark.parametrize("drop_last", [False, True], ids=["pad", "drop"])
def test_shards_disjoint_and_union_is_single_plan(config, world, drop_last):
    check_shards(
        lambda w, r: WeightedSampler(
            W, **{**dict(num_samples=37, seed=7), **config, "num_replicas": w, "rank": r, "drop_last": drop_last}
        ),
        world,
    )


@pytest.mark.parametrize("stop_after", [0, 1, 13, 36])
def test_resume_mid_epoch(config, stop_after):
    check_resume(make(config), stop_after)


def test_resume_across_chunks(monkeypatch):
    monkeypatch.setattr(WeightedSampler, "chunk_size", 8)
    check_resume(lambda: WeightedSampler(np.arange(1.0, 101.0), num_samples=100, seed=1), 21)


def test_plan_equals_iteration_and_auto_advances_epoch():
    s = WeightedSampler(W, num_samples=50, seed=3)
    p0, p1 = s.plan(0), s.plan(1)
    assert np.array_equal(np.array(list(s)), p0)
    assert s.epoch == 1
    assert np.array_equal(np.array(list(s)), p1)
    s.set_epoch(0)
    assert np.array_equal(np.array(list(s)), p0)


def test_frequencies_with_replacement():
    s = WeightedSampler(W, num_samples=200_000, seed=0)
    check_frequencies(s.plan(), W / W.sum(), sigmas=5.0)


def test_without_replacement_no_repeats_and_never_zero_weight():
    s = WeightedSampler(W, num_samples=7, replacement=False, seed=0)
    for epoch in range(5):
        plan = s.plan(epoch)
        assert len(set(plan.tolist())) == 7 and 0 not in plan


def test_exact_mode_group_shares_exact_in_every_prefix():
    s = WeightedSampler(W, num_samples=1000, mode="exact", groups=GROUPS, seed=0)
    plan = s.global_plan()
    shares = np.bincount(GROUPS, weights=W) / W.sum()
    counts = np.bincount(GROUPS[plan], minlength=3)
    assert np.array_equal(counts, largest_remainder(shares, 1000))
    prefix = np.cumsum(np.eye(3)[GROUPS[plan]], axis=0)
    assert np.abs(prefix - np.arange(1, 1001)[:, None] * shares).max() <= 1.0 + 1e-9
    report = s.report()
    assert np.allclose(report["requested"], shares)
    assert np.allclose(report["realised"], counts / 1000)


def test_weight_schedule_reevaluated_per_epoch():
    calls = []

    def schedule(epoch):
        calls.append(epoch)
        return [1.0, 0.0] if epoch < 2 else [0.0, 1.0]

    s = WeightedSampler(schedule, num_samples=20, seed=0)
    assert set(s.plan(0)) == {0}
    s.set_epoch(3)
    assert set(list(s)) == {1}
    assert s.weights.tolist() == [0.0, 1.0]
    assert 3 in calls


def test_weight_schedule_wrong_length():
    s = WeightedSampler(lambda e: [1.0, 1.0] if e == 0 else [1.0, 1.0, 1.0], seed=0)
    with pytest.raises(ValueError, match=r"the weight schedule returned 3 weights for epoch 1, expected 2"):
        s.plan(1)


def test_weight_stats():
    s = WeightedSampler([1.0, 1.0, 2.0])
    stats = s.weight_stats()
    assert stats["max"] == pytest.approx(0.5)
    assert stats["effective_samples"] == pytest.approx(1 / (0.25**2 * 2 + 0.5**2))


def test_torch_tensor_weights_and_len():
    s = WeightedSampler(torch.tensor([1.0, 2.0, 3.0]), num_samples=10, num_replicas=3, rank=1)
    assert len(s) == 4 and len(list(s)) == 4
    s = WeightedSampler(torch.tensor([1.0, 2.0, 3.0]), num_samples=10, num_replicas=3, rank=1, drop_last=True)
    assert len(s) == 3 and len(list(s)) == 3


def test_pickle_and_state_are_plain_json():
    s = WeightedSampler(W, num_samples=20, seed=5)
    json.dumps(s.state_dict())
    clone = pickle.loads(pickle.dumps(s))
    assert np.array_equal(clone.plan(), s.plan())


def test_dataloader_workers_do_not_change_the_order():
    data = TensorDataset(torch.arange(8))
    out = {}
    for workers in (0, 2):
        loader = DataLoader(data, batch_size=4, sampler=WeightedSampler(W, num_samples=40, seed=2), num_workers=workers)
        out[workers] = torch.cat([b[0] for b in loader]).tolist()
    assert out[0] == out[2]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(weights=[1.0, -1.0]), ValueError, r"`weights` must be non-negative, got -1.0 at position 1"),
        (dict(weights=[1.0, float("nan")]), ValueError, r"`weights` must be finite, got nan"),
        (dict(weights=[0.0, 0.0]), ValueError, r"`weights` must have at least one positive value"),
        (dict(weights=[]), ValueError, r"`weights` must not be empty"),
        (dict(weights=np.ones((2, 2))), ValueError, r"`weights` must be 1-D, got shape \(2, 2\)"),
        (dict(weights=[1.0], num_samples=0), ValueError, r"`num_samples` must be an int >= 1, got 0"),
        (dict(weights=[1.0], num_samples=2.5), TypeError, r"`num_samples` must be an int, got float 2.5"),
        (dict(weights=[1.0], num_replicas=2, rank=2), ValueError, r"`rank` must be in \[0, 1\] .* got 2"),
        (dict(weights=[1.0], num_replicas=0, rank=0), ValueError, r"`num_replicas` must be an int >= 1, got 0"),
        (dict(weights=[1.0], mode="exactly"), ValueError, r"`mode` must be one of 'random', 'exact', got 'exactly'"),
        (dict(weights=[1.0, 0.0], num_samples=2, replacement=False), ValueError, r"`num_samples` \(2\) exceeds"),
        (dict(weights=[1.0], num_replicas=2, rank=0, drop_last=True), ValueError, r"`num_samples` \(1\) must be >="),
    ],
    ids=[
        "negative",
        "nan",
        "all-zero",
        "empty",
        "2d",
        "num-samples-0",
        "num-samples-float",
        "rank",
        "replicas",
        "mode",
        "too-many-without",
        "drop-last-empty",
    ],
)
def test_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        WeightedSampler(**kwargs)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (dict(num_samples=38), r"saved with num_samples=38 but this sampler has num_samples=37"),
        (dict(replacement=False), r"saved with replacement=False but this sampler has replacement=True"),
        (dict(weights_crc32=1), r"saved with weights_crc32=1"),
        (dict(seed=1), r"saved with seed=1 but this sampler has seed=0"),
        (dict(position=99), r"`state_dict\['position'\]` must be an int <= 37, got 99"),
    ],
    ids=["num-samples", "replacement", "weights", "seed", "position"],
)
def test_state_from_a_different_configuration(change, match):
    s = WeightedSampler(W, num_samples=37)
    state = {**s.state_dict(), **change}
    with pytest.raises(ValueError, match=match):
        s.load_state_dict(state)


def test_state_missing_keys():
    with pytest.raises(ValueError, match=r"`state_dict` is missing key\(s\) \['position', 'num_samples'"):
        WeightedSampler(W).load_state_dict({"seed": 0, "epoch": 0})


def test_no_global_rng_touched():
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 -- the legacy global state must stay untouched
    torch_state = torch.get_rng_state().clone()
    s = WeightedSampler(W, num_samples=100, seed=1)
    list(s)
    s.plan(3)
    assert np.array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_weights_at_gives_each_epochs_scheduled_weights_without_drawing():
    def schedule(epoch):
        return np.array([1.0, 1.0 + epoch, 2.0])

    sampler = WeightedSampler(schedule, num_samples=5, seed=0)
    for epoch in (0, 3, 1):
        np.testing.assert_array_equal(sampler.weights_at(epoch), schedule(epoch))
    assert sampler.epoch == 0  # asking does not move the sampler
    with pytest.raises(ValueError, match="`epoch` must be"):
        sampler.weights_at(-1)


def test_state_at_the_end_of_an_epoch_is_that_epoch_fully_yielded():
    """NOTE [ Resume ]: an exhausted epoch saves as (epoch, len); restoring it yields nothing, then moves on."""
    s = WeightedSampler(W, num_samples=50, seed=3)
    s.set_epoch(2)
    assert len(list(s)) == 50 and s.epoch == 3  # the sampler itself has moved on ...
    state = json.loads(json.dumps(s.state_dict()))
    assert (state["epoch"], state["position"]) == (2, 50)  # ... its saved state has not
    assert s.state_dict()["epoch"] == 2  # reading the state changes nothing

    restored = WeightedSampler(W, num_samples=50, seed=3)
    restored.load_state_dict(state)
    assert list(restored) == []  # the (empty) rest of epoch 2
    assert np.array_equal(np.array(list(restored)), s.plan(3))  # then epoch 3 as if never interrupted

    # iter() takes the epoch and position when called: an iterator built and dropped unstarted (what
    # StatefulDataLoader does when it restores a finished epoch) still uses up the empty rest
    again = WeightedSampler(W, num_samples=50, seed=3)
    again.load_state_dict(state)
    iter(again)
    assert np.array_equal(np.array(list(again)), s.plan(3))

    # a new iteration or set_epoch replaces the end-of-epoch state
    s.set_epoch(7)
    assert (s.state_dict()["epoch"], s.state_dict()["position"]) == (7, 0)


def test_plain_dataloader_partial_last_batch_state_is_the_finished_epoch():
    """A DataLoader drains the sampler before handing out a partial last batch; the state must stay in that epoch."""
    s = WeightedSampler(W, num_samples=50, seed=3)
    batches = iter(DataLoader(list(range(W.size)), batch_size=16, sampler=s))
    first = [next(batches) for _ in range(4)]  # 16 + 16 + 16 + 2: the last batch drained the sampler
    assert sum(len(b) for b in first) == 50 and s.epoch == 1
    state = s.state_dict()
    assert (state["epoch"], state["position"]) == (0, 50)
    resumed = WeightedSampler(W, num_samples=50, seed=3)
    resumed.load_state_dict(state)
    assert list(DataLoader(list(range(W.size)), batch_size=16, sampler=resumed)) == []  # rest of epoch 0
    rest = [int(i) for b in DataLoader(list(range(W.size)), batch_size=16, sampler=resumed) for i in b]
    assert rest == s.plan(1).tolist()


@pytest.mark.slow
def test_workers_and_start_method_never_change_what_is_drawn():
    """The seed contract: (seed, epoch, rank) decide the indices; worker count, start method,
    persistent workers and the global seeds do not."""
    rows = TensorDataset(torch.arange(W.size))

    def two_epochs(**loader_kwargs):
        s = WeightedSampler(W, num_samples=90, seed=11, num_replicas=2, rank=1)
        loader = DataLoader(rows, batch_size=16, sampler=s, **loader_kwargs)
        return [[int(i) for (b,) in loader for i in b] for _ in range(2)]

    expected = [WeightedSampler(W, num_samples=90, seed=11, num_replicas=2, rank=1).plan(e).tolist() for e in (0, 1)]
    assert two_epochs() == expected
    torch.manual_seed(123)  # global seeds play no part
    np.random.seed(123)  # noqa: NPY002
    assert two_epochs(num_workers=2) == expected
    assert two_epochs(num_workers=2, multiprocessing_context="spawn", persistent_workers=True) == expected


def test_state_between_iter_and_the_first_index_keeps_the_start():
    """A loader may save state after building its iterator and before drawing from it (StatefulDataLoader
    right after a restore): the state must still say where that iteration starts."""
    s = WeightedSampler(W, num_samples=50, seed=3)
    it = iter(s)
    for _ in range(20):
        next(it)
    state = s.state_dict()
    resumed = WeightedSampler(W, num_samples=50, seed=3)
    resumed.load_state_dict(state)
    fresh_iter = iter(resumed)
    assert resumed.state_dict()["position"] == 20  # nothing drawn yet from the new iterator
    assert len(list(fresh_iter)) == 30
    abandoned = iter(s)  # s was left mid-epoch; a new iter() starts its epoch afresh ...
    next(abandoned)
    iter(s)
    assert s.state_dict()["position"] == 0  # ... and the abandoned iterator no longer counts


# -- elastic resume: a state saved on W ranks continues on W' ranks (NOTE [ Elastic resume ]) -----------------


WIDE = np.random.default_rng(7).pareto(1.5, 120) + 0.01  # positive: without replacement draws every row


@pytest.mark.parametrize(("world", "new_world"), [(2, 3), (4, 2), (3, 3), (1, 4), (4, 1), (3, 5)])
@pytest.mark.parametrize("replacement", [True, False])
def test_elastic_resume_continues_the_global_plan_without_repeats_or_gaps(world, new_world, replacement):
    n, taken = 120, 7  # every rank of the old world takes 7 indices: the ranks are in step

    def make(w, r):
        return WeightedSampler(WIDE[:n], replacement=replacement, seed=4, num_replicas=w, rank=r)

    old = [make(world, r) for r in range(world)]
    consumed, states = [], []
    for s in old:
        s.set_epoch(2)
        it = iter(s)
        consumed += [next(it) for _ in range(taken)]
        states.append(json.loads(json.dumps(s.state_dict())))
    plan = WeightedSampler(WIDE[:n], replacement=replacement, seed=4).global_plan(2)
    rest_size = n - world * taken
    per_rank = -(-rest_size // new_world)  # the rest is padded so every new rank takes as many steps
    padding = plan[: per_rank * new_world - rest_size].tolist()  # wrapping around to the start, as at offset 0
    for saved in [*states, gather_state_offline(old)]:  # any one rank's state will do, or the gathered one
        shards = []
        for r in range(new_world):
            s = make(new_world, r)
            s.load_state_dict(saved)
            shards.append(list(s))
        assert {len(shard) for shard in shards} == {per_rank}
        rest = [i for shard in shards for i in shard]
        assert sorted(consumed + rest) == sorted(plan.tolist() + padding)  # no repeat, no gap


def gather_state_offline(samplers):
    """What gather_state computes over a process group, for ranks simulated in one process."""
    state = samplers[0].state_dict()
    offset = min(s.next_global_position() for s in samplers)
    return {**state, "offset": offset, "position": 0, "num_replicas": 1, "rank": 0}


def test_elastic_resume_positions_interleave_like_the_global_plan():
    plan = WeightedSampler(WIDE[:60], seed=1).global_plan(0)
    old = [WeightedSampler(WIDE[:60], seed=1, num_replicas=2, rank=r) for r in range(2)]
    for s in old:
        it = iter(s)
        [next(it) for _ in range(5)]  # global positions 0..9 are done
    state = old[1].state_dict()
    assert (state["offset"], state["position"], state["num_replicas"]) == (0, 5, 2)
    new = [WeightedSampler(WIDE[:60], seed=1, num_replicas=3, rank=r) for r in range(3)]
    for s in new:
        s.load_state_dict(state)
    shards = [np.array(list(s)) for s in new]
    wrapped = np.concatenate([plan, plan])  # the rest, 50 positions, padded to 51 by wrapping around
    for r, shard in enumerate(shards):  # rank r of 3 takes global positions 10 + r, 13 + r, ...
        np.testing.assert_array_equal(shard, wrapped[10 + r : 10 + 51 : 3])
    again = new[0].state_dict()  # saved in the new world: an offset and a position there
    assert (again["offset"], again["position"], again["num_replicas"]) == (10, len(shards[0]), 3)


def test_a_finished_epoch_stays_finished_in_another_world():
    s = WeightedSampler(WIDE[:50], seed=1, num_replicas=4, rank=0)
    list(s)
    state = s.state_dict()
    bigger = WeightedSampler(WIDE[:50], seed=1, num_replicas=3, rank=2)
    bigger.load_state_dict(state)
    assert list(bigger) == []  # the rest of epoch 0 is empty, even though 3 ranks pad differently
    np.testing.assert_array_equal(
        np.array(list(bigger)), WeightedSampler(WIDE[:50], seed=1, num_replicas=3, rank=2).plan(1)
    )


def test_report_with_string_groups_says_what_is_wrong():
    s = WeightedSampler(WIDE[:4], seed=0)
    with pytest.raises(ValueError, match=r"got <U4 of shape \(4,\); map labels to ids first"):
        s.report(np.array(["high", "low", "high", "low"]))


def test_a_state_from_other_weights_says_what_may_differ():
    state = WeightedSampler(WIDE[:20], seed=0).state_dict()
    with pytest.raises(ValueError, match=r"weights_crc32=.*\(the weights of the saved epoch differ: .* restore a curr"):
        WeightedSampler(WIDE[1:21], seed=0).load_state_dict(state)
    with pytest.raises(ValueError, match=r"is missing key\(s\) \['position'.*another kind of sampler"):
        WeightedSampler(WIDE[:20]).load_state_dict({"epoch": 0, "seed": 0})
