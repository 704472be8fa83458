"""The allocator, the grouped item counts and the grouped paths of the splitter, against loops and hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from mixweave.data import splits
from mixweave.data.splits import MultilabelStratifiedKFold, multilabel_split, split_prevalence


def test_items_count_each_labels_positives_per_group_like_a_loop():
    rng = np.random.default_rng(0)
    hot = rng.random((40, 3)) < [0.5, 0.2, 0.05]
    groups = rng.integers(0, 9, 40) * 7  # ids need not be 0..G-1
    item_of_row, counts, sizes = splits._items(hot, groups)
    ids = sorted(set(groups.tolist()))
    for k, g in enumerate(ids):
        rows = [i for i in range(40) if groups[i] == g]
        assert sizes[k] == len(rows)
        assert counts[k].tolist() == [sum(int(hot[i, j]) for i in rows) for j in range(3)]
        assert all(item_of_row[i] == k for i in rows)
    plain_items, plain_counts, plain_sizes = splits._items(hot, None)
    assert plain_items.tolist() == list(range(40)) and plain_sizes.tolist() == [1] * 40
    assert plain_counts.tolist() == hot.astype(int).tolist()


@pytest.mark.parametrize(
    ("total", "want", "room", "expected"),
    [
        (6, [1.0, 1.0, 1.0], [10, 10, 10], [2, 2, 2]),  # room does not bind: largest remainder of want
        (5, [1.0, 1.0], [1, 10], [1, 4]),  # the first split fills up; a second round gives the rest
        (7, [3.0, 1.0, 0.0], [2, 2, 9], [2, 2, 3]),  # both wanted splits full: the rest goes by free room
        (3, [0.0, 0.0, 1.0], [2, 2, 0], [2, 1, 0]),  # only a full split wants any: fall back to free room
        (0, [1.0, 2.0], [3, 3], [0, 0]),
    ],
)
def test_allocate_rounds_and_fallback(total, want, room, expected):
    got = splits._allocate(total, np.array(want), np.array(room))
    assert got.tolist() == expected
    assert got.sum() == total and (got <= np.array(room)).all()


def test_cut_gives_unit_items_their_quotas_exactly():
    dest = splits._cut(np.ones(7), np.array([3, 0, 4]))
    assert dest.tolist() == [0, 0, 0, 2, 2, 2, 2]
    # middles 1, 3, 5 against boundaries at 3 and 6: a middle on a boundary goes to the next split
    assert splits._cut(np.array([2.0, 2.0, 2.0]), np.array([3, 3])).tolist() == [0, 1, 1]


def test_grouped_split_quality_is_close_to_the_ungrouped_split():
    rng = np.random.default_rng(3)
    y = rng.random((3000, 6)) < np.linspace(0.03, 0.4, 6)
    groups = rng.integers(0, 1500, 3000)  # two rows per group on average
    fractions = (0.7, 0.15, 0.15)
    whole = y.mean(axis=0)
    plain = split_prevalence(y, multilabel_split(y, fractions, seed=1))
    grouped_parts = multilabel_split(y, fractions, seed=1, groups=groups)
    grouped = split_prevalence(y, grouped_parts)
    for part in grouped_parts:  # groups stay whole
        assert not set(groups[part].tolist()) & set(groups[np.setdiff1d(np.arange(3000), part)].tolist())
    # the grouped split's worst label deviation stays within 3x the ungrouped one and within 0.02
    dev_plain = np.abs(plain - whole).max()
    dev_grouped = np.abs(grouped - whole).max()
    assert dev_grouped <= max(3 * dev_plain, 0.02)


def test_groups_that_overshoot_their_room_still_place_every_row():
    # one labelled group of 6 rows cannot fit the 0.5 split of 10 rows exactly; the unlabelled rest is shared
    y = np.zeros((10, 1), dtype=bool)
    y[:6, 0] = True
    groups = np.array([0] * 6 + [1, 2, 3, 4])
    with pytest.warns(UserWarning, match=r"split sizes \[6, 4\]|split sizes \[4, 6\]"):
        parts = multilabel_split(y, (0.5, 0.5), seed=0, groups=groups)
    rows = np.sort(np.concatenate(parts))
    assert rows.tolist() == list(range(10))
    assert any(set(range(6)) <= set(p.tolist()) for p in parts)


def test_kfold_with_groups_and_unshuffled_determinism():
    rng = np.random.default_rng(5)
    y = rng.random((200, 4)) < 0.3
    groups = rng.integers(0, 60, 200)
    cv = MultilabelStratifiedKFold(n_splits=4)
    folds = [test.tolist() for _, test in cv.split(np.zeros((200, 1)), y, groups)]
    again = [test.tolist() for _, test in cv.split(np.zeros((200, 1)), y, groups)]
    assert folds == again  # shuffle=False: input order breaks ties, no randomness
    assert sorted(i for f in folds for i in f) == list(range(200))
    for f in folds:
        inside = set(groups[f].tolist())
        outside = set(groups[np.setdiff1d(np.arange(200), f)].tolist())
        assert not inside & outside
    shuffled = [t.tolist() for _, t in MultilabelStratifiedKFold(4, shuffle=True, random_state=3).split(y, y, groups)]
    assert shuffled != folds
    with pytest.raises(ValueError, match=r"has no effect since shuffle is False; leave random_state=None$"):
        MultilabelStratifiedKFold(4, random_state=1)
