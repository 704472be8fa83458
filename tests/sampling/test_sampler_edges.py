"""Edges of PlanSampler and WeightedSampler that mutation testing found unpinned.

References are independent of the sampler's own bookkeeping: the global plan
sliced by hand, a schedule that counts its calls, and a saved state written
out key by key (the checkpoint format users hold on disk).
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from mixweave import PlanSampler, WeightedSampler
from mixweave.core.rng import derive_key, uniform
from mixweave.sampling import AdaptiveMixture, AdaptiveSampler

W = np.arange(1.0, 11.0)


class Positions(PlanSampler):
    """A user's subclass: index ``p`` of epoch ``e`` is a hash of ``(seed, e)`` at position ``p``, mod 1000."""

    def _plan_indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        return (uniform(self._key(epoch), positions) * 1000).astype(np.int64)


def test_plan_sampler_defaults_for_subclasses():
    s = Positions(8)
    assert (s.seed, s.drop_last, s.num_replicas, s.rank, s.increment_seed_per_epoch) == (0, False, 1, 0, True)
    expected = [(uniform(derive_key(0, e), np.arange(8)) * 1000).astype(np.int64).tolist() for e in (0, 1)]
    assert s.global_plan().tolist() == expected[0]  # the current epoch by default
    assert s.global_plan(1).tolist() == expected[1]  # epochs differ: a fresh seed per epoch
    s.set_epoch(1)
    assert s.global_plan().tolist() == list(s) == expected[1]
    with pytest.raises(ValueError, match=r"`epoch` must be an int >= 0, got -1"):
        s.global_plan(-1)
    with pytest.raises(ValueError, match=r"`epoch` must be an int >= 0, got -2"):
        s.plan(-2)


def test_the_saved_state_format():
    # written out key by key: a checkpoint on disk holds exactly these, and must keep loading
    crc = zlib.crc32(W.astype(np.float64).tobytes())
    state = {
        "epoch": 1,
        "offset": 0,
        "position": 4,
        "num_replicas": 1,
        "rank": 0,
        "seed": 3,
        "num_samples": 10,
        "drop_last": False,
        "increment_seed_per_epoch": True,
        "mode": "random",
        "replacement": True,
        "num_weights": 10,
        "weights_crc32": crc,
    }
    s = WeightedSampler(W, seed=3)
    s.set_epoch(1)
    it = iter(s)
    for _ in range(4):
        next(it)
    assert s.state_dict() == state
    fresh = WeightedSampler(W, seed=3)
    fresh.load_state_dict(state)
    assert list(fresh) == s.global_plan(1)[4:].tolist()


def test_an_exact_mode_state_carries_the_groups_and_refuses_others():
    groups = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2, 2])
    s = WeightedSampler(W, seed=3, mode="exact", groups=groups)
    it = iter(s)
    for _ in range(4):
        next(it)
    state = s.state_dict()
    assert state["groups_crc32"] == zlib.crc32(groups.astype(np.float64).tobytes())
    fresh = WeightedSampler(W, seed=3, mode="exact", groups=groups)
    fresh.load_state_dict(state)
    assert list(fresh) == s.global_plan(0)[4:].tolist()
    other = WeightedSampler(W, seed=3, mode="exact", groups=np.array([0, 1, 1, 1, 1, 1, 2, 2, 2, 2]))
    theirs = zlib.crc32(np.array([0, 1, 1, 1, 1, 1, 2, 2, 2, 2], dtype=np.float64).tobytes())
    message = (
        f"`state_dict` was saved with groups_crc32={state['groups_crc32']} but this sampler has "
        f"groups_crc32={theirs} (the group ids differ, and with them exact mode's quotas and interleave)"
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        other.load_state_dict(state)
    assert "groups_crc32" not in WeightedSampler(W, seed=3, groups=groups).state_dict()  # random mode ignores them


def test_a_state_from_another_world_resumes_at_an_odd_offset():
    # one process -> two ranks at global position 1 -> back to one process at position 1
    single = WeightedSampler(W, seed=5)
    it = iter(single)
    next(it)
    ranks = []
    for rank in (0, 1):
        r = WeightedSampler(W, seed=5, num_replicas=2, rank=rank)
        r.load_state_dict(single.state_dict())
        ranks.append(r)
    assert ranks[0].state_dict()["offset"] == 1
    back = WeightedSampler(W, seed=5)
    back.load_state_dict(ranks[0].state_dict())
    assert list(back) == single.global_plan()[1:].tolist()


def test_a_complete_drop_last_state_resumes_to_nothing_and_then_the_next_epoch():
    # 5 samples on 2 ranks with drop_last: 2 each; rank 0 yielded both, so its share of the epoch is done
    rank0 = WeightedSampler(W[:5], seed=1, num_replicas=2, rank=0, drop_last=True)
    assert len(list(rank0)) == 2
    state = rank0.state_dict()
    assert rank0.next_global_position(state) == 5
    one = WeightedSampler(W[:5], seed=1, drop_last=True)
    one.load_state_dict(state)
    assert list(one) == []
    after = one.state_dict()
    assert (after["epoch"], after["offset"], after["position"]) == (0, 5, 0)
    assert list(one) == one.global_plan(1).tolist()  # then epoch 1, whole


def test_a_complete_state_after_an_elastic_offset():
    # 10 samples, saved on 2 ranks that had resumed at offset 3 with drop_last: 3 each, rank 0 done
    base = WeightedSampler(W, seed=2, num_replicas=2, rank=0, drop_last=True)
    state = {**base.state_dict(), "offset": 3, "position": 3}
    one = WeightedSampler(W, seed=2, drop_last=True)
    assert base.next_global_position(state) == 10
    one.load_state_dict(state)
    assert list(one) == []


def test_next_global_position_reads_the_state_it_is_given():
    s = WeightedSampler(W, seed=0, num_replicas=2, rank=1)
    other = {**s.state_dict(), "position": 2}
    assert s.next_global_position(other) == 0 + 1 + 2 * 2
    assert s.next_global_position() == 1


def test_set_epoch_to_another_epoch_drops_a_loaded_position():
    s = WeightedSampler(W, seed=4)
    s.set_epoch(2)
    it = iter(s)
    for _ in range(5):
        next(it)
    fresh = WeightedSampler(W, seed=4)
    fresh.load_state_dict(s.state_dict())
    fresh.set_epoch(2)  # the same epoch: keeps the position
    assert list(fresh) == s.global_plan(2)[5:].tolist()
    again = WeightedSampler(W, seed=4)
    again.load_state_dict(s.state_dict())
    again.set_epoch(3)  # another epoch: from its start
    assert list(again) == s.global_plan(3).tolist()


def test_state_epoch_is_checked():
    s = WeightedSampler(W)
    with pytest.raises(ValueError, match=r"`state_dict\['epoch'\]` must be an int >= 0, got -1"):
        s.load_state_dict({**s.state_dict(), "epoch": -1})
    with pytest.raises(TypeError, match=r"`state_dict` must be a mapping, got list"):
        s.load_state_dict(["epoch"])


def test_weight_schedule_is_asked_once_per_epoch_and_checked_on_load():
    calls = []

    def schedule(epoch):
        calls.append(epoch)
        return W * (1.0 + epoch)

    s = WeightedSampler(schedule, seed=0)
    for _ in range(2):
        s.plan()
        s.global_plan()
        s.state_dict()
    assert calls == [0]
    s.set_epoch(1)
    list(s)
    s.plan(1)
    assert calls == [0, 1]
    with pytest.raises(ValueError, match=r"missing key"):
        WeightedSampler(schedule).load_state_dict({})  # a clear error, not a call of the schedule with None
    # the weights of the saved epoch are what a state is checked against
    saved = s.state_dict()
    same_at_1 = WeightedSampler(lambda e: W * 2.0 if e == 1 else W * 7.0, seed=0)
    same_at_1.load_state_dict(saved)
    other_at_1 = WeightedSampler(lambda e: W * 3.0 if e == 1 else W * 1.0, seed=0)
    with pytest.raises(ValueError, match=r"weights_crc32"):
        other_at_1.load_state_dict(saved)


def test_from_sources_sizes_and_arguments():
    s = WeightedSampler.from_sources([900, 100], [0.5, 0.5], num_samples=10, seed=0)
    assert int((s.plan() >= 900).sum()) == 5
    assert WeightedSampler.from_sources([5], [1.0]).num_weights == 5  # one source is fine
    assert WeightedSampler.from_sources([1, 1], [0.5, 0.5]).num_weights == 2  # so are sources of one sample
    a = WeightedSampler.from_sources([30, 20], [0.5, 0.5], seed=1).plan()
    b = WeightedSampler.from_sources([30, 20], [0.5, 0.5], seed=2).plan()
    assert not np.array_equal(a, b)  # keyword arguments reach the sampler
    assert WeightedSampler.from_sources([30, 20], [0.5, 0.5], replacement=False, mode="random").replacement is False
    with pytest.raises(ValueError, match=r"`sizes` must list at least one source, each with >= 1 sample, got \[3, 0\]"):
        WeightedSampler.from_sources([3, 0], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"`sizes` must list at least one source, each with >= 1 sample, got \[\]"):
        WeightedSampler.from_sources([], [])

    class HasDatasets:  # not a ConcatDataset: no cumulative_sizes, so it is taken as a list of sources
        datasets = None

        def __iter__(self):
            return iter([[0] * 4, [0] * 6])

    assert WeightedSampler.from_sources(HasDatasets(), [0.5, 0.5]).num_weights == 10


def test_report_and_capacity_errors():
    s = WeightedSampler(W, replacement=True)
    with pytest.raises(ValueError, match=r"`epoch` must be an int >= 0, got -1"):
        s.report(np.zeros(10, dtype=int), epoch=-1)
    for labels in (np.array(["a"] * 10), np.array([b"a"] * 10), np.array(["a"] * 10, dtype=object)):
        hint = r"; map labels to ids first, e.g. np.unique\(labels, return_inverse=True\)\[1\]$"
        with pytest.raises(ValueError, match=hint):
            s.report(labels)
    with pytest.raises(ValueError, match=r"needs num_samples <= that, or use replacement=True$"):
        WeightedSampler([1.0, 0.0, 1.0], num_samples=3, replacement=False)


def test_adaptive_state_carries_the_epochs_share_log():
    mixture = AdaptiveMixture(2, update_every=4)
    sampler = AdaptiveSampler(mixture, np.repeat([0, 1], 10), segment_size=4, seed=0)
    it = iter(sampler)
    for _ in range(9):
        next(it)
    log = sampler.state_dict()["share_log"]
    assert log and log == {str(s): p.tolist() for s, p in sorted(mixture.segment_log[0].items())}


def test_schedule_is_not_asked_for_epochs_a_refused_call_never_reaches():
    def only_epoch_0(epoch):
        if epoch > 0:
            raise RuntimeError("asked for a later epoch")
        return W

    with pytest.raises(ValueError, match=r"missing key"):
        WeightedSampler(only_epoch_0).load_state_dict({})
    growing = WeightedSampler(lambda e: [1.0] * (e + 3))
    with pytest.raises(ValueError, match=r"`epoch` must be an int >= 0, got -1"):
        growing.report(groups=[0, 1, 1], epoch=-1)


def test_from_sources_takes_unsigned_sizes():
    s = WeightedSampler.from_sources(np.array([3, 2], dtype=np.uint64), [0.5, 0.5])
    assert s.num_weights == 5
