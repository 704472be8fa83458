"""Edges of core.draw that mutation testing found unpinned; references are slow loops and numpy.searchsorted."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

from mixweave.core.draw import CategoricalTable, DrawEngine, interleave, largest_remainder, weighted_permutation
from mixweave.core.rng import uniform


def test_guide_table_is_the_chen_asau_table_and_costs_12_bytes_per_weight():
    w = np.random.default_rng(0).pareto(1.5, 5000) + 1e-3
    table = CategoricalTable(w)
    cdf = np.cumsum(w / 2.0 ** np.frexp(w.max())[1])
    # bucket b holds the first index whose cumulative share reaches b / N (Chen & Asau 1974), written as searchsorted
    first = np.searchsorted(cdf / cdf[-1] * w.size, np.arange(w.size), side="left")
    assert np.array_equal(table._guide, first)
    assert table._guide.nbytes + table._cdf.nbytes == 12 * w.size  # the docstring's 12 bytes per weight


def test_sample_takes_float32_uniforms_at_float64_precision():
    w = np.random.default_rng(1).random(100_000)
    table = CategoricalTable(w)
    u = np.random.default_rng(2).random(100_000).astype(np.float32)  # float32 products would cross ~600 bounds
    assert np.array_equal(table.sample(u), table.sample(u.astype(np.float64)))
    ref = np.searchsorted(np.cumsum(w / w.sum()), u.astype(np.float64), side="right")
    assert (table.sample(u) == ref).mean() > 0.999  # the inverse CDF, up to cumsum rounding at boundaries


def test_engine_indices_keep_the_shape_of_positions():
    engine = DrawEngine(np.arange(1.0, 6.0))
    grid = np.arange(12).reshape(3, 4)
    out = engine.indices(7, grid, 12)
    assert out.shape == (3, 4)
    assert out.ravel().tolist() == engine.indices(7, np.arange(12), 12).tolist()


def test_random_plan_across_chunks_equals_position_by_position():
    w = np.random.default_rng(3).random(50) + 0.1
    engine = DrawEngine(w)
    n = 70_000  # more than one 65,536-position chunk
    plan = engine.plan(11, n)
    assert plan.shape == (n,)
    assert np.array_equal(plan, CategoricalTable(w).sample(uniform(11, np.arange(n))))


def test_non_random_access_plans_are_built_once_per_key():
    engine = DrawEngine(np.ones(20), replacement=False)
    first = engine.plan(5, 10)
    assert engine.plan(5, 10) is first  # cached
    assert engine.plan(6, 10) is not first


def test_exact_mode_group_quotas_follow_the_weight_not_the_count():
    groups = np.array([0] * 90 + [1] * 10)
    w = np.where(groups == 0, 1.0, 9.0)  # each group holds half the weight
    plan = DrawEngine(w, mode="exact", groups=groups).plan(3, 100)
    assert np.bincount(groups[plan], minlength=2).tolist() == [50, 50]
    with pytest.raises(
        ValueError, match=r"^`groups` must be non-negative integer ids below 2\*\*62, got -1 at index 1$"
    ):
        DrawEngine([1.0, 1.0], mode="exact", groups=[0, -1])
    exact_needs_groups = r"^`mode='exact'` needs `groups` \(the group id of each sample\) to set quotas for$"
    with pytest.raises(ValueError, match=exact_needs_groups):
        DrawEngine([1.0, 1.0], mode="exact")


def test_interleave_input_checks_and_empty_dtype():
    assert interleave([0, 0]).dtype == interleave([1, 1]).dtype == np.int32
    assert interleave([0, 0]).shape == (0,)
    for bad in ([], [[1, 2]], [1, -1]):
        with pytest.raises(ValueError, match=r"`counts` must be a non-empty 1-D array of non-negative ints"):
            interleave(bad)


def test_largest_remainder_treats_remainders_on_one_2_to_the_32_grid_as_ties():
    # remainders 2**-32 * (n + 0.05) and 2**-32 * (n + 0.45): one grid point, so a tie that goes to the lower index
    n = round(0.35 * 2**32)
    p0, p1 = (n + 0.05) / 2**32, (n + 0.45) / 2**32
    shares = np.array([p0, p1, 1.0 - p0 - p1])
    assert largest_remainder(shares, 1).tolist() == [1, 0, 0]
    # a difference of 1/64 (well above the grid) is not a tie
    assert largest_remainder([0.4995, 0.5005], 1).tolist() == [0, 1]
    assert largest_remainder([0.5005, 0.4995], 1).tolist() == [1, 0]


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`total` must be an int >= 0, got -1"):
        largest_remainder([1.0], -1)
    with pytest.raises(ValueError, match=r"`shares`"):
        largest_remainder([1.0, -1.0], 3)
    with pytest.raises(ValueError, match=r"`k` must be an int >= 0, got -1"):
        weighted_permutation([1.0, 2.0], 0, k=-1)


def test_interleave_reads_whole_float_counts_as_ints():
    assert interleave([2.0, 1.0]).tolist() == interleave([2, 1]).tolist()


def test_a_mode_changed_after_construction_is_refused_by_name():
    engine = DrawEngine([1.0, 2.0], replacement=False)
    engine.mode = "exactly"
    with pytest.raises(ValueError, match=r"^`mode` must be one of"):
        engine.plan(0, 2)


def test_group_ids_that_are_negative_or_huge_are_refused_naming_the_value_and_where():
    with pytest.raises(
        ValueError, match=r"^`groups` must be non-negative integer ids below 2\*\*62, got -1 at index 2$"
    ):
        DrawEngine(np.ones(4), mode="exact", groups=[0, 1, -1, 0])
    with pytest.raises(
        ValueError,
        match=r"^`groups` must be non-negative integer ids below 2\*\*62, got 9223372036854775808 at index 1$",
    ):
        DrawEngine(np.ones(2), mode="exact", groups=np.array([0, 2**63], dtype=np.uint64))


def test_sparse_group_ids_warn_at_the_callers_line_and_still_give_exact_quotas():
    import mixweave
    from mixweave import WeightedSampler

    message = (
        "`groups` ids reach 5000 for 4 samples: memory and time grow with the largest id (an array per possible "
        "group); number the groups 0..G-1, e.g. with np.unique(groups, return_inverse=True)[1]"
    )
    with pytest.warns(UserWarning, match="^" + re.escape(message) + "$") as caught:
        s = WeightedSampler(np.ones(4), 8, mode="exact", groups=[0, 0, 5000, 5000], seed=0)
    # at the caller: this file (under mutmut, its trampoline, which shifts the frames), never inside mixweave
    assert not caught[0].filename.startswith(os.path.dirname(mixweave.__file__))
    assert caught[0].filename == __file__ or "mutmut" in caught[0].filename
    assert np.bincount(np.array([0, 0, 1, 1])[s.global_plan()]).tolist() == [4, 4]


@pytest.mark.parametrize(
    ("shares", "total"),
    [([1.0, 4, 7], 4_205_188), ([1.0, 4, 7], 12 * 10**8 + 4), ([1.0, 4, 7], 12 * 987_654_321 + 8)],
)
def test_largest_remainder_ties_go_to_the_lower_index_for_large_totals(shares, total):
    # every exact remainder is equal (total % sum(shares) units spread evenly): the leftover goes to the lowest indices
    from fractions import Fraction

    s = sum(int(x) for x in shares)
    exact = [Fraction(int(x) * total, s) for x in shares]
    assert len({q - int(q) for q in exact}) == 1
    short = total - sum(int(q) for q in exact)
    expected = [int(q) + (i < short) for i, q in enumerate(exact)]
    assert largest_remainder(shares, total).tolist() == expected


def test_group_id_bounds_and_the_sparse_ids_warning_threshold():
    import warnings as w

    n = 4
    with w.catch_warnings():
        w.simplefilter("error")
        DrawEngine(np.ones(n), groups=[0, 0, 1, 2 * n + 1023])  # just below the warning
    with pytest.warns(UserWarning, match=r"ids reach 1032 for 4 samples"):
        DrawEngine(np.ones(n), groups=[0, 0, 1, 2 * n + 1024])
    with pytest.warns(UserWarning):  # the largest id allowed (a warning, no error: nothing is allocated yet)
        DrawEngine(np.ones(2), groups=np.array([0, 2**62 - 1], dtype=np.int64))
    with pytest.raises(ValueError, match=r"below 2\*\*62, got 4611686018427387904 at index 1$"):
        DrawEngine(np.ones(2), groups=np.array([0, 2**62], dtype=np.int64))


def test_one_exact_engine_asked_for_two_epoch_lengths_and_integer_indices():
    rng = np.random.default_rng(5)
    groups = rng.integers(0, 3, 500)
    w = rng.random(500) + 0.1
    engine = DrawEngine(w, mode="exact", groups=groups)
    for n in (1_000, 777, 1_000):  # the quota layout follows the length asked for
        positions = np.arange(1, n, 3)
        got = engine.indices(9, positions, n)
        assert got.dtype == np.intp
        assert np.array_equal(got, DrawEngine(w, mode="exact", groups=groups).plan(9, n)[positions])
