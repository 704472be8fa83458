"""Edges of the multi-label splitter that mutation testing found unpinned.

Expected values are worked out by hand from the algorithm in ``_assign``'s
docstring (Sechidis et al. 2011), or are invariants: split sizes equal
Hamilton's apportionment of the rows when items are single rows.
"""

from __future__ import annotations

import contextlib
import os
import warnings

import numpy as np
import pytest

from mixweave.core.draw import largest_remainder
from mixweave.data import splits
from mixweave.data.splits import MultilabelStratifiedKFold, multilabel_split, split_prevalence

SPLITS = os.path.join("mixweave", "data", "splits.py")


@pytest.mark.parametrize("seed", range(100))
def test_row_splits_have_exactly_the_apportioned_sizes(seed):
    # small and dense: split rooms run out while labels are still being shared
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 30))
    c = int(rng.integers(1, 5))
    y = rng.random((n, c)) < rng.uniform(0.2, 0.9, c)
    fractions = rng.dirichlet(np.ones(int(rng.integers(2, 4))) * 3)
    fractions = fractions / fractions.sum()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tiny fractions of small n drift from their share; sizes are what is tested
        parts = multilabel_split(y, fractions.tolist(), seed=seed)
    assert [p.size for p in parts] == largest_remainder(fractions, n).tolist()
    assert np.sort(np.concatenate(parts)).tolist() == list(range(n))


def test_one_label_split_by_hand():
    # 50 positives in 100 rows, fractions (0.49, 0.49, 0.02): step 2 gives each split one positive; the other 47
    # follow the shortfalls (23.5, 23.5, 0) by largest remainder: 24, 23, 0 (the tie goes to the first split)
    y = np.zeros((100, 1), dtype=bool)
    y[:50] = True
    parts = multilabel_split(y, (0.49, 0.49, 0.02), seed=None)
    assert [int(y[p].sum()) for p in parts] == [25, 24, 1]
    assert [p.size for p in parts] == [49, 49, 2]


def test_a_label_with_one_positive_goes_to_the_largest_split():
    y = np.zeros((20, 2), dtype=bool)
    y[7, 0] = True  # label 0: one positive
    y[::2, 1] = True
    for fractions, largest in (((0.2, 0.8), 1), ((0.7, 0.1, 0.2), 0), ((0.25, 0.25, 0.5), 2)):
        parts = multilabel_split(y, fractions, seed=None)
        assert 7 in parts[largest].tolist()


def test_cut_puts_an_item_where_the_middle_of_its_span_falls():
    # spans [0, 3) and [3, 4): middles 1.5 and 3.5 against quota bounds 2 and 4
    assert splits._cut(np.array([3.0, 1.0]), np.array([2, 2])).tolist() == [0, 1]
    assert splits._cut(np.array([1.0, 3.0]), np.array([2, 2])).tolist() == [0, 1]
    # middles 0.5, 1.5, 3.0 against bounds 3 and 4: a middle on a bound goes to the next split
    assert splits._cut(np.array([1.0, 1.0, 2.0]), np.array([3, 1])).tolist() == [0, 0, 1]


def test_allocate_places_a_single_unit():
    assert splits._allocate(1, np.array([0.2, 0.8]), np.array([5, 5])).tolist() == [0, 1]
    assert splits._allocate(1, np.array([0.2, 0.8]), np.array([5, 0])).tolist() == [1, 0]


def test_progress_is_advanced_by_every_item(monkeypatch):
    calls = {}

    @contextlib.contextmanager
    def recording(description, total, progress, *, large):
        calls.update(description=description, total=total, progress=progress, large=large, done=[])
        yield calls["done"].append

    monkeypatch.setattr(splits, "progress_bar", recording)
    y = np.random.default_rng(0).random((30, 2)) < 0.3
    y[:3] = False  # some rows without any label: step 4
    multilabel_split(y, (0.5, 0.5), seed=0, progress=False)
    assert (calls["description"], calls["total"], calls["progress"], calls["large"]) == ("splitting", 30, False, 10**6)
    assert sum(calls["done"]) == 30 and all(isinstance(n, int) and n > 0 for n in calls["done"])
    groups = np.arange(30) // 3
    multilabel_split(y, (0.5, 0.5), seed=0, groups=groups)
    assert calls["total"] == 10 and sum(calls["done"]) == 10  # groups are the items


def test_drift_warnings_say_the_sizes_and_the_cause_from_the_callers_line():
    y = np.zeros((10, 1), dtype=bool)
    y[:6, 0] = True
    groups = np.array([0] * 6 + [1, 2, 3, 4])
    with pytest.warns(UserWarning) as record:
        multilabel_split(y, (0.5, 0.5), seed=0, groups=groups)
    message = str(record[0].message)
    assert message.startswith("split sizes [")
    assert "are shares [0.6, 0.4], not the requested [0.5, 0.5] (groups cannot be divided" in message or (
        "are shares [0.4, 0.6], not the requested [0.5, 0.5] (groups cannot be divided" in message
    )
    assert not record[0].filename.endswith(SPLITS)  # it points past mixweave's own frames, at the caller
    with pytest.warns(UserWarning) as record:  # 3 rows cannot be 0.7 / 0.15 / 0.15: Hamilton gives 2, 1, 0
        multilabel_split(np.eye(3, dtype=bool), (0.7, 0.15, 0.15), seed=0)
    assert str(record[0].message) == (
        "split sizes [2, 1, 0] are shares [0.667, 0.333, 0.0], not the requested [0.7, 0.15, 0.15]"
    )
    assert not record[0].filename.endswith(SPLITS)  # it points past mixweave's own frames, at the caller
    with pytest.warns(UserWarning) as record:  # fractions are shown to 3 decimals
        multilabel_split(np.eye(3, dtype=bool), (0.7125, 0.1437, 0.1438), seed=0)
    assert str(record[0].message) == (
        "split sizes [2, 0, 1] are shares [0.667, 0.0, 0.333], not the requested [0.712, 0.144, 0.144]"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sizes [70, 15, 15] of 100 rows: no drift, no warning
        multilabel_split(np.eye(100, 4, dtype=bool), (0.7, 0.15, 0.15), seed=0)


def test_split_arguments():
    y = np.eye(4, dtype=bool)
    dense = np.random.default_rng(0).random((60, 3)) < 0.3
    by_default = [p.tolist() for p in multilabel_split(dense, (0.5, 0.5))]
    assert by_default == [p.tolist() for p in multilabel_split(dense, (0.5, 0.5), seed=0)]  # seed 0 by default
    assert by_default != [p.tolist() for p in multilabel_split(dense, (0.5, 0.5), seed=1)]
    with pytest.warns(UserWarning, match=r"split sizes \[1, 1, 1\]"):  # 3 rows into 3 splits is allowed
        assert sorted(len(p) for p in multilabel_split(np.eye(3, dtype=bool), (0.4, 0.3, 0.3))) == [1, 1, 1]
    with pytest.raises(ValueError, match=r"cannot make 3 splits from 2 rows"):
        multilabel_split(np.eye(2, dtype=bool), (0.4, 0.3, 0.3))
    with pytest.raises(ValueError, match=r"cannot make 3 splits from 2 groups"):
        multilabel_split(np.eye(4, dtype=bool), (0.4, 0.3, 0.3), groups=[0, 0, 1, 1])
    with pytest.raises(ValueError, match=r"`seed` must be an int >= 0, got -1"):
        multilabel_split(y, (0.5, 0.5), seed=-1)
    with pytest.raises(TypeError, match=r"`fractions` must be a sequence of numbers, got set"):
        multilabel_split(y, {0.5})
    with pytest.raises(TypeError, match=r"`fractions` must be a sequence of numbers, got str"):
        multilabel_split(y, "ab")
    with pytest.raises(ValueError, match=r"`fractions` must all be > 0, got \[0.5, 0.5, 0.0\]"):
        multilabel_split(y, (0.5, 0.5, 0.0))
    with pytest.raises(ValueError, match=r"`fractions`"):
        multilabel_split(y, (0.5, -0.5, 1.0))


def test_split_prevalence_of_an_empty_split_is_nan():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=bool)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "mean of empty slice"
        table = split_prevalence(y, [[0, 2], [], np.array([1, 3])])
    assert table.dtype == np.float64 and table.shape == (4, 2)
    assert table[0].tolist() == [0.5, 0.5] and table[1].tolist() == [1.0, 0.5] and table[3].tolist() == [0.0, 0.5]
    assert np.isnan(table[2]).all()


def test_kfold_arguments_and_fresh_entropy():
    assert MultilabelStratifiedKFold().get_n_splits() == 3
    y = np.random.default_rng(0).random((300, 3)) < 0.3
    X = np.zeros((300, 1))
    fixed = [t.tolist() for _, t in MultilabelStratifiedKFold(3, shuffle=True, random_state=0).split(X, y)]
    assert fixed == [t.tolist() for _, t in MultilabelStratifiedKFold(3, shuffle=True, random_state=0).split(X, y)]
    # without random_state every split() draws a fresh seed: two calls giving the same folds of 300 rows would
    # need two equal 64-bit seeds or equal tie orders, far below any chance worth a flaky test
    cv = MultilabelStratifiedKFold(3, shuffle=True)
    first = [t.tolist() for _, t in cv.split(X, y)]
    second = [t.tolist() for _, t in cv.split(X, y)]
    assert first != second
    with pytest.raises(ValueError, match=r"`random_state` must be an int >= 0, got -1"):
        MultilabelStratifiedKFold(3, shuffle=True, random_state=-1)
    with pytest.raises(TypeError, match=r"`shuffle` must be True or False, got str 'yes'"):
        MultilabelStratifiedKFold(3, shuffle="yes")
    with pytest.raises(ValueError, match=r"^MultilabelStratifiedKFold needs the \(N, C\) label matrix `y`$"):
        list(MultilabelStratifiedKFold(3).split(X, None))
    with pytest.raises(ValueError, match=r"`X` and `y` must have the same number of rows, got 300 and 299"):
        list(MultilabelStratifiedKFold(3).split(X, y[:299]))


def test_a_label_whose_first_item_ties_between_splits_goes_to_the_first_of_them():
    # fractions 0.3 and 0.3 tie for the largest: the first of them (stable order), on every machine
    y = np.zeros((20, 1), dtype=bool)
    y[0, 0] = True
    parts = multilabel_split(y, (0.2, 0.2, 0.3, 0.3), seed=None)
    assert 0 in parts[2].tolist()


def test_fraction_edges_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # a drift of exactly the tolerance (0.1 against 0.05) is allowed
        assert [p.size for p in multilabel_split(np.zeros((10, 2), dtype=bool), (0.05, 0.95))] == [1, 9]
        # fractions within 1e-6 of summing to 1 are normalised (0.049999975 of 10 rows rounds to 0), and the
        # drift is measured against the normalised fractions: exactly the tolerance again
        assert [p.size for p in multilabel_split(np.zeros((10, 2), dtype=bool), (0.05, 0.9500005))] == [0, 10]
