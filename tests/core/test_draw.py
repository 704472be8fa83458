import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from mixweave import WeightedSampler
from mixweave.core.draw import CategoricalTable, DrawEngine, interleave, largest_remainder, weighted_permutation
from mixweave.core.rng import derive_key, permute, uniform
from tests.checks import check_frequencies

weight_vectors = hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(0, 1e3)).filter(lambda a: a.sum() > 0)


def test_uniform_is_counter_based_and_uniform():
    key = derive_key(1, 2)
    whole = uniform(key, np.arange(100_000))
    # position p does not depend on the positions before it
    assert np.array_equal(uniform(key, np.arange(50_000, 50_010)), whole[50_000:50_010])
    assert ((whole >= 0) & (whole < 1)).all()
    # 20 equal bins, chi-square with 19 dof: 99.99% quantile is ~49
    counts = np.bincount((whole * 20).astype(int), minlength=20)
    chi2 = ((counts - 5000) ** 2 / 5000).sum()
    assert chi2 < 49
    assert not np.array_equal(uniform(derive_key(1, 3), np.arange(10)), whole[:10])


def test_derive_key_depends_on_every_word():
    keys = {derive_key(s, e) for s in range(20) for e in range(20)}
    assert len(keys) == 400
    assert derive_key(0, 1, 2) != derive_key(0, 2, 1)


@given(weight_vectors, st.integers(0, 2**32))
@settings(max_examples=80)
def test_table_matches_searchsorted_reference(w, key):
    u = uniform(key, np.arange(2000))
    cdf = np.cumsum(w)
    x = np.minimum(u * cdf[-1], np.nextafter(cdf[-1], 0))
    expected = np.searchsorted(cdf, x, side="right")
    got = CategoricalTable(w).sample(u)
    assert np.array_equal(got, expected)
    assert (w[got] > 0).all()


def test_table_frequencies_heavy_tail():
    w = np.random.default_rng(0).pareto(1.2, 500) + 1e-3
    w[::7] = 0.0
    drawn = CategoricalTable(w).sample(uniform(derive_key(3), np.arange(400_000)))
    check_frequencies(drawn, w / w.sum(), sigmas=5.0)


@given(weight_vectors, st.integers(0, 2**32))
@settings(max_examples=50)
def test_weighted_permutation_is_a_permutation_of_positive_indices(w, key):
    perm = weighted_permutation(w, key)
    assert np.array_equal(np.sort(perm), np.flatnonzero(w > 0))
    k = np.count_nonzero(w) // 2
    assert np.array_equal(weighted_permutation(w, key, k), perm[:k])


def test_weighted_permutation_first_draw_law():
    # P(first = i) = w_i / sum(w): the law of torch.multinomial without replacement
    w = np.array([1.0, 2.0, 3.0, 4.0])
    first = np.array([weighted_permutation(w, derive_key(9, t), 1)[0] for t in range(8_000)])
    check_frequencies(first, w / w.sum(), sigmas=5.0)
    # second draw given first = 3: P(i) = w_i / (sum - w_3)
    second = np.array([p[1] for t in range(8_000) if (p := weighted_permutation(w, derive_key(8, t), 2))[0] == 3])
    check_frequencies(second, np.array([1.0, 2.0, 3.0, 0.0]) / 6.0, sigmas=5.0)


def test_weighted_permutation_too_many():
    with pytest.raises(ValueError, match=r"cannot draw 3 indices without replacement: only 2 weights are positive"):
        weighted_permutation([1.0, 0.0, 1.0], 0, 3)


@given(st.integers(1, 5000), st.integers(0, 2**40))
@settings(max_examples=60)
def test_permute_is_a_bijection(n, key):
    out = permute(key, n, np.arange(n))
    assert np.array_equal(np.sort(out), np.arange(n))


def test_permute_position_uniformity():
    # where does item 0 land, over many keys: uniform over 10 slots
    landing = np.array([int(np.flatnonzero(permute(k, 10, np.arange(10)) == 0)[0]) for k in range(3_000)])
    check_frequencies(landing, np.full(10, 0.1), sigmas=5.0)
    with pytest.raises(ValueError, match=r"`positions` must lie in \[0, 10\)"):
        permute(0, 10, [10])


@given(hnp.arrays(np.float64, st.integers(1, 20), elements=st.floats(0.0, 100.0)), st.integers(0, 10_000))
def test_largest_remainder(shares, total):
    if shares.sum() == 0:
        return
    counts = largest_remainder(shares, total)
    exact = shares / shares.sum() * total
    assert counts.sum() == total
    assert (counts >= np.floor(exact) - 1e-9).all() and (counts <= np.ceil(exact) + 1e-9).all()


@given(hnp.arrays(np.int64, st.integers(1, 8), elements=st.integers(0, 60)))
@settings(max_examples=200)
def test_interleave_every_prefix_within_one(counts):
    seq = interleave(counts)
    n = int(counts.sum())
    assert seq.shape[0] == n
    if n == 0:
        return
    assert np.array_equal(np.bincount(seq, minlength=counts.size), counts)
    prefix = np.cumsum(np.eye(counts.size, dtype=np.int64)[seq], axis=0)
    target = np.arange(1, n + 1)[:, None] * counts[None, :] / n
    assert np.abs(prefix - target).max() <= 1.0 + 1e-9


def test_interleave_tiles_reduced_pattern():
    assert np.array_equal(interleave([8, 2]), np.tile(interleave([4, 1]), 2))
    with pytest.raises(ValueError, match=r"`counts` must be a non-empty 1-D array of non-negative ints"):
        interleave([-1, 2])


@pytest.mark.parametrize("replacement", [True, False], ids=["with", "without"])
def test_exact_mode_group_counts_and_members(replacement):
    groups = np.repeat([0, 1, 2], [50, 30, 5])
    w = np.ones(85)
    w[:10] = 5.0  # within-group weights still matter
    engine = DrawEngine(w, mode="exact", groups=groups, replacement=replacement)
    plan = engine.plan(derive_key(0, 0), 200)
    shares = np.bincount(groups, weights=w) / w.sum()
    counts = np.bincount(groups[plan], minlength=3)
    assert np.array_equal(counts, largest_remainder(shares, 200))
    prefix = np.cumsum(np.eye(3, dtype=np.int64)[groups[plan]], axis=0)
    assert np.abs(prefix - np.arange(1, 201)[:, None] * counts / 200).max() <= 1.0 + 1e-9
    if not replacement:
        # group 2 has 5 members and 200*5/85*... draws: it cycles through all members before repeating
        g2 = plan[groups[plan] == 2]
        for start in range(0, len(g2) - 4, 5):
            assert sorted(g2[start : start + 5]) == list(range(80, 85))


def test_engine_bad_input():
    with pytest.raises(ValueError, match=r"`mode='exact'` needs `groups`"):
        DrawEngine([1.0, 1.0], mode="exact")
    with pytest.raises(ValueError, match=r"`mode` must be one of 'random', 'exact', got 'fair'"):
        DrawEngine([1.0, 1.0], mode="fair")
    with pytest.raises(ValueError, match=r"`groups` must be non-negative integer ids of shape \(2,\)"):
        DrawEngine([1.0, 1.0], groups=[0, 1, 2])


@pytest.mark.slow
def test_beyond_2_24_categories():
    # torch.multinomial refuses more than 2**24 categories; the table does not
    n = 2**24 + 10
    w = np.ones(n)
    w[-1] = 1e6  # the last index carries about 6% of the mass
    drawn = CategoricalTable(w).sample(uniform(derive_key(5), np.arange(100_000)))
    share = np.mean(drawn == n - 1)
    p = 1e6 / (n - 1 + 1e6)
    assert abs(share - p) < 5 * np.sqrt(p * (1 - p) / 100_000)
    assert drawn.max() < n


def test_large_table_matches_searchsorted_reference():
    w = np.random.default_rng(1).pareto(1.1, 2**20 + 7)
    w[::5] = 0.0
    u = uniform(derive_key(2), np.arange(50_000))
    cdf = np.cumsum(w)
    expected = np.searchsorted(cdf, np.minimum(u * cdf[-1], np.nextafter(cdf[-1], 0)), side="right")
    assert np.array_equal(CategoricalTable(w).sample(u), expected)


@pytest.mark.parametrize(
    "w",
    [
        np.ones(1000),  # every cumulative weight falls exactly on a bucket edge
        np.full(999, 0.1),  # edges that 0.1 cannot hit exactly in binary
        np.tile([1.0, 0.0, 3.0], 333),
        np.random.default_rng(4).pareto(0.8, 1001),
        np.r_[np.full(500, 1e-300), 1.0, np.full(500, 1e-300)],
    ],
    ids=["ones", "tenths", "zeros", "pareto", "tiny"],
)
def test_table_never_starts_past_the_answer_at_bucket_edges(w):
    """The guide entries are only ever at or before the answer (lookups walk forward only):
    checked with uniforms on, just below and just above every bucket edge b / N."""
    n = w.size
    edges = np.arange(n) / n
    u = np.concatenate([edges, np.nextafter(edges, 0.0), np.nextafter(edges, 1.0)])
    u = np.clip(u, 0.0, np.nextafter(1.0, 0.0))
    cdf = np.cumsum(w)
    expected = np.searchsorted(cdf, np.minimum(u * cdf[-1], np.nextafter(cdf[-1], 0)), side="right")
    assert np.array_equal(CategoricalTable(w).sample(u), expected)


def test_exact_plan_draws_each_group_as_written_out_also_beyond_one_chunk():
    # groups larger than the 64k-position chunk: the chunked draws equal one unchunked call per group
    rng = np.random.default_rng(8)
    groups = np.repeat([0, 1, 2], [150_000, 90_000, 10])
    w = rng.pareto(1.5, groups.size) + 1e-3
    key, n = derive_key(3, 1), 200_003
    plan = DrawEngine(w, mode="exact", groups=groups).plan(key, n)
    sequence = interleave(largest_remainder(np.bincount(groups, weights=w), n))
    for g in range(3):
        members = np.flatnonzero(groups == g)
        slots = np.flatnonzero(sequence == g)
        picks = CategoricalTable(w[members]).sample(uniform(derive_key(key, g), np.arange(slots.size)))
        assert np.array_equal(plan[slots], members[picks])
    assert np.flatnonzero(sequence == 0).size > 1 << 16  # the case this test is for


@pytest.mark.parametrize("num_samples", [200_003, 45 * 4_667], ids=["one period", "4,667 tiles of a 45-slot period"])
def test_exact_mode_positions_drawn_on_their_own_equal_the_whole_plan(num_samples):
    # with replacement each position is computed from the period alone (a rank's positions, a chunk, any
    # subset); the whole plan is built another way (one grouping of the interleave): both must agree
    rng = np.random.default_rng(9)
    groups = np.repeat([0, 1, 2], [100_000, 60_000, 40_000])
    w = rng.pareto(1.5, groups.size) + 1e-3
    if num_samples % 45 == 0:
        w = np.repeat([7.0, 3.0, 0.5], [100_000, 60_000, 40_000])  # masses 700k:180k:20k, shares 35:9:1 of 45
    whole = DrawEngine(w, mode="exact", groups=groups).plan(derive_key(1, 2), num_samples)
    engine = DrawEngine(w, mode="exact", groups=groups)
    for positions in (
        np.arange(3, num_samples, 8),  # rank 3 of 8
        rng.integers(0, num_samples, 5_000),
        np.arange(num_samples - 70_000, num_samples),  # more than one chunk, the last tile
    ):
        assert positions.size < num_samples  # the position-by-position path
        assert np.array_equal(engine.indices(derive_key(1, 2), positions, num_samples), whole[positions])
    if num_samples % 45 == 0:
        assert math.gcd(*largest_remainder(engine.group_mass, num_samples).tolist()) > 1  # really tiled


@pytest.mark.parametrize("num_groups", [5, 70], ids=["by position", "more than 64 groups: whole plan"])
def test_exact_mode_sampler_shards_are_slices_of_the_global_plan(num_groups):
    rng = np.random.default_rng(4)
    groups = rng.integers(0, num_groups, 30_001)
    w = rng.random(groups.size) + 0.01
    full = WeightedSampler(w, mode="exact", groups=groups, seed=2).global_plan()
    for rank in range(4):
        shard = WeightedSampler(w, mode="exact", groups=groups, seed=2, num_replicas=4, rank=rank).plan()
        expected = full[np.arange(rank, 4 * shard.size, 4) % full.size]
        assert np.array_equal(shard, expected)
