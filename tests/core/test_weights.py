import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from mixweave.core.weights import (
    compose_hierarchical,
    compose_product,
    group_shares,
    inverse_frequency,
    normalize,
    weight_stats,
)

positive_vectors = hnp.arrays(np.float64, st.integers(1, 50), elements=st.floats(0.0, 1e6, allow_nan=False)).filter(
    lambda a: a.sum() > 0
)


@given(positive_vectors)
def test_normalize_sums_to_one_and_keeps_ratios(w):
    p = normalize(w)
    assert p.sum() == pytest.approx(1.0)
    assert np.allclose(p * w.sum(), w)
    assert (p[w == 0] == 0).all()


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ([1.0, -0.5], ValueError, r"`weights` must be non-negative, got -0.5 at position 1"),
        ([1.0, float("nan")], ValueError, r"`weights` must be finite, got nan at position 1"),
        ([float("inf")], ValueError, r"`weights` must be finite, got inf at position 0"),
        ([0.0, 0.0], ValueError, r"at least one positive value, got all 2 zero"),
        ([], ValueError, r"`weights` must not be empty"),
        ([[1.0, 2.0]], ValueError, r"`weights` must be 1-D, got shape \(1, 2\)"),
        (["a", "b"], TypeError, r"`weights` must be a 1-D array of real numbers, got dtype <U1"),
    ],
    ids=["negative", "nan", "inf", "all-zero", "empty", "2d", "strings"],
)
def test_bad_weights(bad, error, match):
    with pytest.raises(error, match=match):
        normalize(bad)


@given(positive_vectors, st.integers(1, 5), st.data())
@settings(max_examples=60)
def test_hierarchical_group_shares_exact_and_within_ratios_kept(within, num_groups, data):
    n = within.shape[0]
    groups = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, num_groups - 1)))
    mass = np.bincount(groups, weights=within, minlength=num_groups)
    shares = data.draw(hnp.arrays(np.float64, num_groups, elements=st.floats(0.01, 10)))
    shares[mass == 0] = 0.0
    if shares.sum() == 0:
        return
    w = compose_hierarchical(groups, shares, within=within)
    assert np.allclose(group_shares(w, groups, num_groups=num_groups), shares / shares.sum())
    for g in range(num_groups):
        members = groups == g
        if mass[g] > 0 and shares[g] > 0:
            assert np.allclose(w[members] / w[members].sum(), within[members] / mass[g])


def test_hierarchical_errors_name_the_group():
    with pytest.raises(ValueError, match=r"group 1 has weight 0.5 in `group_weights` but no sample"):
        compose_hierarchical([0, 0, 1], [0.5, 0.5], within=[1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"`groups` holds id 2 but `group_weights` has only 2 entries"):
        compose_hierarchical([0, 1, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match=r"`groups` must have shape \(2,\)"):
        compose_hierarchical([0, 1, 1], [0.5, 0.5], within=[1.0, 1.0])
    with pytest.raises(TypeError, match=r"`groups` must hold integer group ids, got dtype float64"):
        compose_hierarchical([0.0, 1.0], [0.5, 0.5])


def test_sources_80_20_class_balanced_inside_each_source():
    rng = np.random.default_rng(0)
    source = np.repeat([0, 1], [900, 100])
    label = np.concatenate([rng.choice(3, 900, p=[0.8, 0.15, 0.05]), rng.choice(3, 100, p=[0.5, 0.3, 0.2])])
    w = compose_hierarchical(source, [0.8, 0.2], within=inverse_frequency(label, groups=source))
    assert np.allclose(group_shares(w, source), [0.8, 0.2])
    for s, share in ((0, 0.8), (1, 0.2)):
        per_class = np.bincount(label[source == s], weights=w[source == s], minlength=3)
        assert np.allclose(per_class, share / 3)


@given(hnp.arrays(np.int64, st.integers(1, 200), elements=st.integers(0, 6)))
def test_inverse_frequency_balances_classes(labels):
    w = inverse_frequency(labels)
    totals = np.bincount(labels, weights=w)
    assert np.allclose(totals[totals > 0], 1.0)


def test_compose_product_matches_elementwise_product():
    a, b = np.array([1.0, 2.0, 0.0, 4.0]), np.array([3.0, 1.0, 5.0, 0.5])
    assert np.allclose(compose_product(a, b), a * b / (a * b).sum())
    with pytest.raises(ValueError, match=r"`factors\[1\]` must have length 4 like factors\[0\], got 3"):
        compose_product(a, b[:3])
    with pytest.raises(ValueError, match=r"the product of `factors` is zero for every sample"):
        compose_product([1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"`factors` must hold at least one weight array"):
        compose_product()


@given(positive_vectors)
def test_weight_stats_against_definitions(w):
    stats = weight_stats(w)
    p = w / w.sum()
    nz = p[p > 0]
    assert stats["min"] == pytest.approx(p.min())
    assert stats["max"] == pytest.approx(p.max())
    assert stats["entropy"] == pytest.approx(-(nz * np.log(nz)).sum(), abs=1e-9)
    assert stats["effective_samples"] == pytest.approx(1 / (p**2).sum())
    assert 1.0 - 1e-9 <= stats["effective_samples"] <= np.count_nonzero(w) + 1e-9


def test_weight_stats_uniform():
    stats = weight_stats(np.ones(8))
    assert stats["entropy"] == pytest.approx(np.log(8))
    assert stats["effective_samples"] == pytest.approx(8)


def _sample_weights_loop(hot, reduce, class_weights=None):
    """Slow reference: one sample at a time, straight from the definition."""
    n, c = hot.shape
    counts = hot.sum(axis=0)
    n_empty = sum(1 for row in hot if not row.any())
    cw = [n / counts[j] if counts[j] else 0.0 for j in range(c)] if class_weights is None else list(class_weights[:c])
    empty_w = n / n_empty if n_empty else 0.0
    if class_weights is not None and len(class_weights) == c + 1:
        empty_w = class_weights[c]
    out = []
    for row in hot:
        ws = [cw[j] for j in range(c) if row[j]]
        if not ws:
            out.append(empty_w)
        else:
            out.append({"max": max(ws), "mean": sum(ws) / len(ws), "sum": sum(ws)}[reduce])
    return np.array(out)


@pytest.mark.parametrize("reduce", ["max", "mean", "sum"])
@pytest.mark.parametrize("extra", [None, "per_class", "with_empty"])
def test_get_sample_weights_matches_a_loop(reduce, extra):
    from mixweave.core.weights import get_sample_weights

    rng = np.random.default_rng(3)
    hot = rng.random((300, 6)) < np.array([0.5, 0.2, 0.05, 0.01, 0.3, 0.0])
    cw = {None: None, "per_class": rng.random(6) * 5, "with_empty": rng.random(7) * 5}[extra]
    got = get_sample_weights(hot.astype(np.int64), reduce=reduce, class_weights=cw)
    np.testing.assert_allclose(got, _sample_weights_loop(hot, reduce, cw))
    assert np.isfinite(got).all()


def test_get_sample_weights_balances_class_ids():
    from mixweave.core.weights import get_sample_weights

    ids = np.repeat([0, 1, 2], [700, 200, 100])
    w = get_sample_weights(ids)
    np.testing.assert_allclose(np.bincount(ids, weights=w), [1000.0, 1000.0, 1000.0])


def test_get_sample_weights_rejects_bad_input():
    from mixweave.core.weights import get_sample_weights

    with pytest.raises(ValueError, match="`reduce` must be one of"):
        get_sample_weights([[1, 0]], reduce="min")
    with pytest.raises(ValueError, match=r"must hold only 0 and 1, got 2 at \[1, 0\]"):
        get_sample_weights([[1, 0], [2, 0]])
    with pytest.raises(ValueError, match="must have 2 entries"):
        get_sample_weights([[1, 0]], class_weights=[1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="class ids in `labels` must be >= 0"):
        get_sample_weights(np.array([0, -1]))


def test_no_finding_share_sets_the_share_of_unlabelled_rows_and_keeps_the_rest():
    from mixweave.core.weights import get_sample_weights

    rng = np.random.default_rng(3)
    labels = rng.random((400, 5)) < [0.3, 0.1, 0.05, 0.02, 0.01]
    empty = ~labels.any(axis=1)
    base = get_sample_weights(labels)
    for share in (0.0, 0.1, 0.47, 0.9):
        w = get_sample_weights(labels, no_finding_share=share)
        assert w[empty].sum() / w.sum() == pytest.approx(share, abs=1e-12)
        np.testing.assert_allclose(w[~empty], base[~empty])  # the labelled rows are untouched
        assert np.ptp(w[empty]) == 0  # unlabelled rows stay alike
    with pytest.raises(ValueError, match=r"`no_finding_share` must be a finite number in \[0, 1\), got 1\.0"):
        get_sample_weights(labels, no_finding_share=1.0)
    with pytest.warns(UserWarning, match="`no_finding_share` = 0.2 has no effect: every row has a label"):
        get_sample_weights(labels[~empty], no_finding_share=0.2)


def test_finite_weights_whose_sum_overflows_and_subnormal_weights():
    from mixweave import WeightedSampler, normalize, weight_stats

    huge = [1.7e308, 1.7e308, 1.0]
    np.testing.assert_allclose(normalize(huge)[:2], [0.5, 0.5])  # was [0, 0]: the sum overflowed
    stats = weight_stats(huge)
    assert stats["max"] == pytest.approx(0.5) and stats["effective_samples"] == pytest.approx(2.0)
    drawn = np.bincount(WeightedSampler(huge, num_samples=20_000, seed=0).plan(), minlength=3)
    assert drawn[2] == 0 and abs(drawn[0] - 10_000) < 5 * np.sqrt(5_000)  # 5 binomial sd
    tiny = np.full(10, 5e-324)  # the smallest subnormal: a cumulative sum of them had steps of one ulp
    drawn = np.bincount(WeightedSampler(tiny, num_samples=100_000, seed=0).plan(), minlength=10)
    assert np.abs(drawn - 10_000).max() < 5 * np.sqrt(10_000 * 0.9)  # was 4,977 vs 14,984
