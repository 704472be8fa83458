import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.multiclass import OneVsRestClassifier

from mixweave.core.draw import largest_remainder
from mixweave.data.splits import MultilabelStratifiedKFold, multilabel_split, split_prevalence

# long tail down to labels with a handful of positives (the ChestX-ray14 shape, smaller)
PREVALENCE = np.array([0.4, 0.2, 0.05, 0.01, 0.002, 0.0008, 0.0006])


def _labels(n, seed):
    return np.random.default_rng(seed).random((n, PREVALENCE.size)) < PREVALENCE


def _check_partition(parts, n):
    joined = np.concatenate(parts)
    assert joined.size == n and np.array_equal(np.sort(joined), np.arange(n))
    for p in parts:
        assert np.all(np.diff(p) > 0)


@pytest.mark.parametrize("seed", range(20))
def test_small_data_every_label_reaches_every_split(seed):
    y = _labels(5000, seed)
    fractions = np.array([0.7, 0.15, 0.15])
    parts = multilabel_split(y, fractions, seed=seed)
    _check_partition(parts, 5000)
    assert [p.size for p in parts] == largest_remainder(fractions, 5000).tolist()
    counts = np.stack([y[p].sum(axis=0) for p in parts])
    total = y.sum(axis=0)
    # a label with >= k positives appears in each of the k splits
    assert (counts[:, total >= 3] > 0).all()
    # each split holds its share of every label's positives to within 2 positives
    assert np.abs(counts - fractions[:, None] * total).max() <= 2.0


def test_quality_beats_a_random_split_by_far():
    y = _labels(20000, 0)
    ours = split_prevalence(y, multilabel_split(y, seed=0))
    perm = np.random.default_rng(0).permutation(20000)
    rand = split_prevalence(y, [perm[:14000], perm[14000:17000], perm[17000:]])
    dev_ours = np.abs(ours[1:] - ours[0]).max()
    dev_rand = np.abs(rand[1:] - rand[0]).max()
    assert dev_ours < dev_rand / 5, (dev_ours, dev_rand)


def test_deterministic_per_seed_and_input_order_without_seed():
    y = _labels(2000, 1)
    a, b, c = (multilabel_split(y, seed=s) for s in (3, 3, 4))
    assert all(np.array_equal(x, z) for x, z in zip(a, b, strict=True))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c, strict=True))
    d, e = multilabel_split(y, seed=None), multilabel_split(y, seed=None)
    assert all(np.array_equal(x, z) for x, z in zip(d, e, strict=True))


def test_class_ids_are_stratified():
    ids = np.repeat(np.arange(5), [500, 250, 125, 60, 5])
    parts = multilabel_split(ids, (0.6, 0.2, 0.2), seed=0)
    for p, f in zip(parts, (0.6, 0.2, 0.2), strict=True):
        np.testing.assert_allclose(np.bincount(ids[p], minlength=5), f * np.bincount(ids), atol=1.0)


def test_groups_never_span_two_splits():
    rng = np.random.default_rng(5)
    n = 6000
    patient = rng.integers(0, 1500, size=n)  # about 4 images per patient
    y = _labels(n, 5)
    parts = multilabel_split(y, (0.7, 0.15, 0.15), seed=0, groups=patient.astype(str))
    _check_partition(parts, n)
    owners = [set(patient[p].tolist()) for p in parts]
    assert not (owners[0] & owners[1]) and not (owners[0] & owners[2]) and not (owners[1] & owners[2])
    biggest = np.bincount(patient).max()
    for p, f in zip(parts, (0.7, 0.15, 0.15), strict=True):
        assert abs(p.size - f * n) <= 2 * biggest
    table = split_prevalence(y, parts)
    assert np.abs(table[1:, :3] - table[0, :3]).max() < 0.02  # common labels still well stratified


def test_bad_arguments():
    y = _labels(100, 0)
    with pytest.raises(ValueError, match="must sum to 1"):
        multilabel_split(y, (0.5, 0.2))
    with pytest.raises(ValueError, match="at least 2 entries"):
        multilabel_split(y, (1.0,))
    with pytest.raises(ValueError, match="must all be > 0"):
        multilabel_split(y, (1.0, 0.0))
    with pytest.raises(ValueError, match=r"`groups` must have one entry per row, shape \(100,\)"):
        multilabel_split(y, groups=np.arange(5))
    with pytest.raises(ValueError, match="cannot make 3 splits from 2 groups"):
        multilabel_split(y, groups=np.arange(100) % 2)


def test_kfold_partitions_and_stratifies():
    y = _labels(3000, 2)
    cv = MultilabelStratifiedKFold(n_splits=5, shuffle=True, random_state=7)
    tests = [test for train, test in cv.split(np.zeros((3000, 2)), y)]
    _check_partition(tests, 3000)
    assert cv.get_n_splits() == 5
    for train, test in cv.split(np.zeros((3000, 2)), y):
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == 3000
    counts = np.stack([y[t].sum(axis=0) for t in tests])
    assert (counts[:, y.sum(axis=0) >= 5] > 0).all()
    assert repr(cv) == "MultilabelStratifiedKFold(n_splits=5, random_state=7, shuffle=True)"


def test_kfold_works_inside_sklearn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    y = np.stack([X[:, 0] > 0, X[:, 1] > 0.5, X[:, 2] > 1.0], axis=1).astype(int)
    scores = cross_val_score(OneVsRestClassifier(LogisticRegression()), X, y, cv=MultilabelStratifiedKFold(4))
    assert scores.shape == (4,)


def test_kfold_arguments_are_checked():
    with pytest.raises(ValueError, match="no effect since shuffle is False"):
        MultilabelStratifiedKFold(3, random_state=0)
    with pytest.raises(ValueError, match="`n_splits` must be an int >= 2"):
        MultilabelStratifiedKFold(1)


def test_indivisible_groups_that_make_the_fractions_impossible_warn():
    rng = np.random.default_rng(0)
    labels = rng.random((1000, 3)) < 0.2
    groups = np.where(np.arange(1000) < 950, 0, np.arange(1000))  # one group holds 95% of the rows
    with pytest.warns(UserWarning, match=r"split sizes \[9\d\d, \d+, \d+\] are shares .* not the requested \[0\.7"):
        parts = multilabel_split(labels, (0.7, 0.15, 0.15), groups=groups)
    assert sum(p.size for p in parts) == 1000
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # ordinary groups: no warning
        multilabel_split(labels, (0.7, 0.15, 0.15), groups=np.arange(1000) // 4)
