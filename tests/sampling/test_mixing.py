import json
import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, TensorDataset

from mixweave import (
    StratifiedConcatDataset,
    UniformConcatDataset,
    WeightedConcatDataset,
    WeightedSampler,
    WeightSchedule,
    inverse_frequency,
)
from mixweave.core.draw import largest_remainder
from tests.checks import check_resume, check_shards


class DummyDataset(Dataset):
    """The document's test dataset: every item is the same value."""

    def __init__(self, value, size):
        self.value, self.size = value, size

    def __len__(self):
        return self.size

    def __getitem__(self, idx):
        if not 0 <= idx < self.size:
            raise IndexError(idx)
        return self.value


class Tagged(Dataset):
    """Items are (source tag, index) so every fetch can be traced back."""

    def __init__(self, tag, size):
        self.tag, self.size = tag, size

    def __len__(self):
        return self.size

    def __getitem__(self, idx):
        if not 0 <= idx < self.size:
            raise IndexError(idx)
        return torch.tensor([self.tag, idx])


def test_document_weighted_distribution():
    # the seed document's test, unchanged but for the import: 80/20 within +-5% over 1,000 draws
    dataset1 = DummyDataset(value=1.0, size=100)
    dataset2 = DummyDataset(value=2.0, size=100)
    mixed = WeightedConcatDataset(datasets=[dataset1, dataset2], weights=[0.8, 0.2])
    samples = [mixed[i] for i in range(1000)]
    count_1 = sum(1 for s in samples if s == 1.0)
    count_2 = sum(1 for s in samples if s == 2.0)
    assert 750 < count_1 < 850
    assert 150 < count_2 < 250


@pytest.mark.parametrize("seed", range(5))
def test_weighted_random_shares_within_binomial_tolerance(seed):
    mixed = WeightedConcatDataset([Tagged(0, 50), Tagged(1, 30), Tagged(2, 7)], [0.5, 0.3, 0.2], 20_000, seed=seed)
    counts = np.bincount(mixed.plan().sources, minlength=3)
    sd = np.sqrt(20_000 * np.array([0.25, 0.21, 0.16]))
    assert (np.abs(counts - 20_000 * np.array([0.5, 0.3, 0.2])) < 5 * sd).all()  # 5 sigma


@pytest.mark.parametrize("mode", ["random", "exact"])
def test_items_cycle_without_replacement_inside_each_source(mode):
    mixed = WeightedConcatDataset([Tagged(0, 10), Tagged(1, 3)], [0.5, 0.5], 60, mode=mode, seed=1)
    plan = mixed.plan()
    for source, size in ((0, 10), (1, 3)):
        items = plan.indices[plan.sources == source]
        for start in range(0, items.size - size + 1, size):
            assert sorted(items[start : start + size].tolist()) == list(range(size))


def test_exact_mode_every_prefix_and_every_batch():
    mixed = WeightedConcatDataset([Tagged(0, 1000), Tagged(1, 100)], [0.8, 0.2], 6400, mode="exact")
    sources = mixed.plan().sources
    assert np.array_equal(np.bincount(sources), largest_remainder([0.8, 0.2], 6400))
    prefix = np.cumsum(sources == 1)
    assert np.abs(prefix - 0.2 * np.arange(1, 6401)).max() <= 1.0
    batches = (sources.reshape(-1, 64) == 1).sum(axis=1)
    assert np.abs(batches - 12.8).max() <= 1.0


def test_items_match_plan_and_getitems_matches_getitem():
    mixed = WeightedConcatDataset([Tagged(0, 40), Tagged(1, 9)], [0.7, 0.3], 100, seed=3)
    plan = mixed.plan()
    singles = [mixed[i] for i in range(100)]
    batch = mixed.__getitems__(list(range(100)))
    for i in range(100):
        assert singles[i].tolist() == [plan.sources[i], plan.indices[i]]
        assert torch.equal(batch[i], singles[i])
        assert mixed.source_of(i) == plan.sources[i]


def test_getitems_uses_tensor_fancy_indexing_and_source_getitems():
    class Batched(Tagged):
        calls = 0

        def __getitems__(self, idx):
            Batched.calls += 1
            return [self[i] for i in idx]

    tensors = TensorDataset(torch.arange(10) * 10, torch.arange(10))
    mixed = WeightedConcatDataset([tensors, Batched(1, 5)], [0.5, 0.5], 40, seed=0)
    out = mixed.__getitems__(list(range(40)))
    plan = mixed.plan()
    for i, item in enumerate(out):
        if plan.sources[i] == 0:
            assert item[0].item() == 10 * plan.indices[i] and item[1].item() == plan.indices[i]
        else:
            assert item.tolist() == [1, plan.indices[i]]
    assert Batched.calls == 1


def test_epochs_change_the_plan_and_are_deterministic():
    make = lambda: WeightedConcatDataset([Tagged(0, 30), Tagged(1, 30)], [0.6, 0.4], 50, seed=4)  # noqa: E731
    a, b = make(), make()
    assert np.array_equal(a.plan(0).indices, b.plan(0).indices)
    assert not np.array_equal(a.plan(0).indices, a.plan(1).indices)
    a.set_epoch(1)
    b.set_epoch(1)
    assert all(torch.equal(a[i], b[i]) for i in range(50))


def test_schedule_mapping_and_callable():
    sched = {0: [0.9, 0.1], 10: [0.7, 0.3], 20: [0.5, 0.5]}
    mixed = WeightedConcatDataset([Tagged(0, 100), Tagged(1, 100)], sched, 1000, mode="exact")
    for epoch, expected in ((0, 100), (9, 100), (10, 300), (15, 300), (25, 500)):
        mixed.set_epoch(epoch)
        assert np.bincount(mixed.plan().sources)[1] == expected
        assert mixed.weights[1] == pytest.approx(expected / 1000)
    linear = WeightSchedule(sched, interpolation="linear")
    assert linear(5).tolist() == pytest.approx([0.8, 0.2])
    assert linear(40).tolist() == pytest.approx([0.5, 0.5])
    fn = WeightedConcatDataset([Tagged(0, 10), Tagged(1, 10)], lambda e: [1 - 0.1 * e, 0.1 * e], 100, mode="exact")
    fn.set_epoch(3)
    assert np.bincount(fn.plan().sources)[1] == 30


@pytest.mark.parametrize("workers", [0, 2])
def test_dataloader_worker_count_does_not_change_output(workers):
    def run(num_workers, shuffle):
        mixed = WeightedConcatDataset([Tagged(0, 50), Tagged(1, 13)], [0.8, 0.2], 96, seed=11)
        g = torch.Generator().manual_seed(0)
        loader = DataLoader(mixed, batch_size=8, shuffle=shuffle, num_workers=num_workers, generator=g)
        return torch.cat(list(loader))

    reference = run(0, False)
    assert torch.equal(run(workers, False), reference)
    # shuffle only permutes positions; the multiset of items is the epoch's plan
    shuffled = run(workers, True)
    key = lambda t: sorted(map(tuple, t.tolist()))  # noqa: E731
    assert key(shuffled) == key(reference)


def test_persistent_workers_see_set_epoch():
    mixed = WeightedConcatDataset([Tagged(0, 50), Tagged(1, 13)], [0.8, 0.2], 32, seed=2)
    loader = DataLoader(mixed, batch_size=8, num_workers=2, persistent_workers=True)
    for epoch in range(3):
        mixed.set_epoch(epoch)
        got = torch.cat(list(loader))
        plan = mixed.plan(epoch)
        assert got[:, 0].tolist() == plan.sources.tolist()
        assert got[:, 1].tolist() == plan.indices.tolist()


def test_stratified_drop_out_round_robin_and_exhaustion():
    ds = StratifiedConcatDataset([Tagged(0, 4), Tagged(1, 1), Tagged(2, 2)], cycle=False)
    assert len(ds) == 7
    got = [tuple(ds[i].tolist()) for i in range(7)]
    assert got == [(0, 0), (1, 0), (2, 0), (0, 1), (2, 1), (0, 2), (0, 3)]
    assert sorted(got) == sorted({(s, i) for s, n in ((0, 4), (1, 1), (2, 2)) for i in range(n)})


@pytest.mark.parametrize("sizes", [[5], [3, 3], [1, 7, 2, 7], [10, 1, 1, 4]])
def test_stratified_matches_slow_loop(sizes):
    expected = []
    for r in range(max(sizes)):
        expected += [(s, r) for s, n in enumerate(sizes) if r < n]
    ds = StratifiedConcatDataset([Tagged(s, n) for s, n in enumerate(sizes)], length=2 * sum(sizes) + 3, cycle=False)
    plan = ds.plan()
    got = list(zip(plan.sources.tolist(), plan.indices.tolist(), strict=True))
    assert got == (expected * 3)[: len(ds)]


@pytest.mark.parametrize("sizes", [[5], [3, 3], [1, 7, 2, 7], [500, 200, 100]])
def test_stratified_cycles_in_order_like_the_original_loop(sizes):
    # the original: source i % n, item (i // n) % len(source), for every position
    n = len(sizes)
    length = 2 * sum(sizes) + 3
    ds = StratifiedConcatDataset([Tagged(s, k) for s, k in enumerate(sizes)], length=length, shuffle=False)
    plan = ds.plan()
    expected = [(i % n, (i // n) % sizes[i % n]) for i in range(length)]
    assert list(zip(plan.sources.tolist(), plan.indices.tolist(), strict=True)) == expected


def test_stratified_default_gives_equal_contribution_with_fresh_passes():
    sizes = [500, 200, 100]
    ds = StratifiedConcatDataset([Tagged(s, k) for s, k in enumerate(sizes)], seed=3)
    assert len(ds) == 800
    plan = ds.plan()
    assert np.bincount(plan.sources).tolist() == [267, 267, 266]  # the original's counts
    assert plan.sources.tolist() == [i % 3 for i in range(800)]
    for s, size in enumerate(sizes):
        items = plan.indices[plan.sources == s]
        # each full pass through a source holds every item once; the last pass is partial
        full = items.size // size
        for p in range(full):
            assert sorted(items[p * size : (p + 1) * size].tolist()) == list(range(size))
        assert np.unique(items[full * size :]).size == items.size - full * size
    # the small source repeats in a new order each pass; epochs differ; the seed matters
    small = plan.indices[plan.sources == 2]
    assert small[:100].tolist() != small[100:200].tolist()
    assert ds.plan(1).indices.tolist() != plan.indices.tolist()
    other = StratifiedConcatDataset([Tagged(s, k) for s, k in enumerate(sizes)], seed=4)
    assert other.plan().indices.tolist() != plan.indices.tolist()
    assert ds.source_shares().tolist() == [1 / 3] * 3


def test_stratified_items_equal_getitem_and_dataloader_workers():
    ds = StratifiedConcatDataset([Tagged(0, 7), Tagged(1, 3)], length=40, seed=1)
    ds.set_epoch(2)
    plan = ds.plan()
    got = torch.cat(list(DataLoader(ds, batch_size=6, num_workers=2)))
    assert got[:, 0].tolist() == plan.sources.tolist()
    assert got[:, 1].tolist() == plan.indices.tolist()


def test_uniform_each_item_once_and_size_proportional():
    ds = UniformConcatDataset([Tagged(0, 300), Tagged(1, 100)], seed=5)
    plan = ds.plan()
    assert len(set(zip(plan.sources.tolist(), plan.indices.tolist(), strict=True))) == 400
    # first 100 positions: about 75% from the larger source (hypergeometric sd ~3.8)
    assert abs(int((plan.sources[:100] == 0).sum()) - 75) < 5 * 3.8
    longer = UniformConcatDataset([Tagged(0, 300), Tagged(1, 100)], length=1000, seed=5)
    lp = longer.plan()
    assert np.array_equal(lp.sources[:400], plan.sources)
    counts = np.bincount(lp.sources)
    assert counts[0] == 3 * 200 + int((lp.sources[800:] == 0).sum())


def test_hierarchical_sampler_route_sources_exact_classes_balanced_inside():
    rng = np.random.default_rng(0)
    sizes = [900, 100]
    labels = np.concatenate([rng.choice(3, 900, p=[0.8, 0.15, 0.05]), rng.choice(3, 100, p=[0.5, 0.3, 0.2])])
    source = np.repeat([0, 1], sizes)
    concat = ConcatDataset([Tagged(0, 900), Tagged(1, 100)])
    sampler = WeightedSampler.from_sources(
        concat, [0.8, 0.2], num_samples=50_000, within=inverse_frequency(labels, groups=source), seed=0
    )
    plan = sampler.global_plan()
    assert np.array_equal(np.bincount(source[plan]), [40_000, 10_000])  # exact
    for s in (0, 1):
        per_class = np.bincount(labels[plan[source[plan] == s]], minlength=3) / (source[plan] == s).sum()
        assert np.abs(per_class - 1 / 3).max() < 0.02  # binomial sd <= 0.005 at n=10,000


def test_mixed_dataset_sampler_shards_resumes_and_advances_dataset_epoch():
    mixed = WeightedConcatDataset([Tagged(0, 20), Tagged(1, 20)], [0.5, 0.5], 30, seed=0)
    check_shards(lambda w, r: mixed.sampler(num_replicas=w, rank=r), 4)
    check_resume(lambda: mixed.sampler(), 11)
    mixed = WeightedConcatDataset([Tagged(0, 20), Tagged(1, 20)], [0.5, 0.5], 30, seed=0)
    sampler = mixed.sampler()
    loader = DataLoader(mixed, batch_size=5, sampler=sampler)
    first = torch.cat(list(loader))
    second = torch.cat(list(loader))
    assert mixed.epoch == 1
    assert second[:, 1].tolist() == mixed.plan(1).indices.tolist()
    assert not torch.equal(first, second)


def test_state_dict_roundtrip_and_pickle():
    mixed = WeightedConcatDataset([Tagged(0, 20), Tagged(1, 20)], [0.5, 0.5], 30, seed=3, mode="exact")
    mixed.set_epoch(4)
    state = json.loads(json.dumps(mixed.state_dict()))
    other = WeightedConcatDataset([Tagged(0, 20), Tagged(1, 20)], [0.5, 0.5], 30, seed=3, mode="exact")
    other.load_state_dict(state)
    assert other.epoch == 4 and np.array_equal(other.plan().indices, mixed.plan().indices)
    clone = pickle.loads(pickle.dumps(mixed))
    assert np.array_equal(clone.plan().indices, mixed.plan().indices)


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (
            lambda s: WeightedConcatDataset(s, [0.5, 0.5], 31, seed=3, mode="exact"),
            r"(length|num_samples)=30 but .*=31",
        ),
        (lambda s: WeightedConcatDataset(s, [0.5, 0.5], 30, seed=5, mode="exact"), r"seed=3 but .* seed=5"),
        (lambda s: WeightedConcatDataset(s, [0.5, 0.5], 30, seed=3), r"mode='exact' but .*mode='random'"),
        (
            lambda s: WeightedConcatDataset(s, [0.6, 0.4], 30, seed=3, mode="exact"),
            r"saved with (dataset\.)?weights_crc32=",
        ),
        (lambda s: UniformConcatDataset(s, 30, seed=3), r"kind='weighted' but .*kind='uniform'"),
        (lambda s: WeightedConcatDataset([s[0], Tagged(1, 21)], [0.5, 0.5], 30, seed=3, mode="exact"), r"sizes="),
    ],
    ids=["length", "seed", "mode", "weights", "kind", "sizes"],
)
@pytest.mark.parametrize("through", ["dataset", "sampler"])
def test_a_state_of_another_mixture_is_refused_naming_the_setting(build, match, through):
    """Every setting that decides the plan is checked, by the dataset and by its sampler (issue: no silent restore)."""
    sources = [Tagged(0, 20), Tagged(1, 20)]
    mixed = WeightedConcatDataset(sources, [0.5, 0.5], 30, seed=3, mode="exact")
    other = build([Tagged(0, 20), Tagged(1, 20)])
    if through == "dataset":
        state, target = json.loads(json.dumps(mixed.state_dict())), other
    else:
        sampler = mixed.sampler()
        next(iter(sampler))
        state, target = json.loads(json.dumps(sampler.state_dict())), other.sampler()
    with pytest.raises(ValueError, match=match):
        target.load_state_dict(state)


def test_a_schedule_is_checked_at_the_saved_epoch():
    sources = [Tagged(0, 20), Tagged(1, 20)]
    schedule = {0: [0.5, 0.5], 3: [0.8, 0.2]}
    mixed = WeightedConcatDataset(sources, schedule, 30, seed=1)
    mixed.set_epoch(4)
    state = mixed.sampler().state_dict()
    same_until_3 = WeightedConcatDataset(sources, {0: [0.5, 0.5], 3: [0.7, 0.3]}, 30, seed=1)
    with pytest.raises(ValueError, match="weights_crc32"):
        same_until_3.sampler().load_state_dict(state)
    WeightedConcatDataset(sources, dict(schedule), 30, seed=1).sampler().load_state_dict(state)


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (
            lambda: WeightedConcatDataset([Tagged(0, 3)] * 2, [0.8, 0.3]),
            ValueError,
            r"^Weights must sum to 1.0, got 1.1: `weights` is \[0.8, 0.3\]",
        ),
        (
            lambda: WeightedConcatDataset([Tagged(0, 3)] * 2, [1.0]),
            ValueError,
            r"^Number of datasets \(2\) must match number of weights \(1\): `weights` needs one weight per dataset",
        ),
        (
            lambda: WeightedConcatDataset([Tagged(0, 3)] * 2, [1.5, -0.5]),
            ValueError,
            r"`weights` must be non-negative, got -0.5 at position 1",
        ),
        (
            lambda: WeightedConcatDataset([Tagged(0, 3)] * 2, [float("nan"), 1.0]),
            ValueError,
            r"`weights` must be finite",
        ),
        (
            lambda: WeightedConcatDataset([Tagged(0, 3), Tagged(1, 0)], [0.5, 0.5]),
            ValueError,
            r"`datasets\[1\]` is empty",
        ),
        (
            lambda: WeightedConcatDataset([], []),
            ValueError,
            r"^Must provide at least one dataset: `datasets` is an empty",
        ),
        (
            lambda: WeightedConcatDataset([Tagged(0, 3), 5], [0.5, 0.5]),
            TypeError,
            r"`datasets\[1\]` must define __len__ and __getitem__, got int",
        ),
        (
            lambda: WeightedConcatDataset([Tagged(0, 3)], [1.0], length=0),
            ValueError,
            r"`length` must be an int >= 1, got 0",
        ),
        (
            lambda: WeightedConcatDataset([Tagged(0, 3)], [1.0], mode="fair"),
            ValueError,
            r"`mode` must be one of 'random', 'exact', got 'fair'",
        ),
        (
            lambda: WeightedConcatDataset([Tagged(0, 3)] * 2, {0: [0.5, 0.5], 5: [0.9, 0.2]}),
            ValueError,
            r"`points\[5\]` must sum to 1",
        ),
        (
            lambda: WeightSchedule({0: [1.0]}, interpolation="cubic"),
            ValueError,
            r"`interpolation` must be one of 'step', 'linear', got 'cubic'",
        ),
        (
            lambda: WeightSchedule({0: [1.0], 3: [0.5, 0.5]}),
            ValueError,
            r"every entry of `points` must have the same length, got lengths \[1, 2\]",
        ),
        (lambda: StratifiedConcatDataset([Tagged(0, 0)]), ValueError, r"`datasets\[0\]` is empty"),
        (lambda: UniformConcatDataset([Tagged(0, 2)], length=-1), ValueError, r"`length` must be an int >= 1"),
    ],
    ids=[
        "sum",
        "count",
        "negative",
        "nan",
        "empty-source",
        "no-sources",
        "not-a-dataset",
        "length",
        "mode",
        "schedule-sum",
        "interpolation",
        "schedule-lengths",
        "stratified-empty",
        "uniform-length",
    ],
)
def test_bad_input(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_schedule_callable_bad_weights_named_with_epoch():
    mixed = WeightedConcatDataset([Tagged(0, 3)] * 2, lambda e: [0.5, 0.5] if e == 0 else [0.9, 0.9])
    mixed.set_epoch(2)
    with pytest.raises(ValueError, match=r"^Weights must sum to 1.0, got 1.8: `weights\(2\)` is"):
        mixed[0]
