"""Source choices of a stream: the exact scheduler's prefix bound and the random choices against slow loops."""

import numpy as np
import pytest
from scipy import stats

from mixweave.core.rng import uniform
from mixweave.core.stream import ExactStream, random_choices


def _largest_prefix_deviation(choices, weights):
    counts = np.cumsum(np.eye(weights.shape[0])[choices], axis=0)
    steps = np.arange(1, choices.shape[0] + 1)[:, None]
    return float(np.abs(counts - weights * steps).max())


def test_exact_stream_keeps_every_prefix_within_one_sample_over_many_weight_vectors():
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(200):
        k = int(rng.integers(2, 9))
        w = rng.dirichlet(np.ones(k) * rng.choice([0.2, 1.0, 5.0]))
        worst = max(worst, _largest_prefix_deviation(ExactStream(w).take(2000), w))
    assert worst < 1.0  # the bound itself (a deadline-only order reaches 1.68 on such vectors)


def test_exact_stream_continues_from_saved_counts_exactly():
    w = np.array([0.55, 0.3, 0.15])
    whole = ExactStream(w).take(500)
    first = ExactStream(w)
    head = first.take(173)
    tail = ExactStream(w, counts=list(first.counts)).take(327)
    assert np.array_equal(np.concatenate([head, tail]), whole)


def test_exact_stream_never_picks_a_zero_share():
    choices = ExactStream(np.array([0.5, 0.0, 0.5])).take(100)
    assert not (choices == 1).any() and np.bincount(choices, minlength=3).tolist() == [50, 0, 50]


def test_random_choices_match_a_slow_inverse_cdf_and_any_range_stands_alone():
    w = np.array([0.1, 0.6, 0.3])
    cum = np.cumsum(w)
    cum[-1] = 1.0
    key = 12345
    got = random_choices(cum, key, 0, 2000)
    slow = []
    for p in range(2000):
        u = float(uniform(key, np.array([p]))[0])
        slow.append(next(i for i, c in enumerate(cum) if u < c))
    assert got.tolist() == slow
    assert np.array_equal(random_choices(cum, key, 700, 300), got[700:1000])  # counter-based: a range alone


def test_random_choices_follow_the_weights_chi_square():
    w = np.array([0.05, 0.15, 0.3, 0.5])
    cum = np.cumsum(w)
    cum[-1] = 1.0
    counts = np.bincount(random_choices(cum, 7, 0, 100_000), minlength=4)
    # fixed key; goodness of fit at the 0.1% level
    assert stats.chisquare(counts, w * 100_000).pvalue > 1e-3


def test_exact_stream_counts_must_match_the_sources():
    with pytest.raises(ValueError, match=r"`counts` must have one entry per source \(2\), got 3"):
        ExactStream(np.array([0.5, 0.5]), counts=[0, 0, 0])
    with pytest.raises(ValueError, match=r"`counts` must be an int >= 0, got -1"):
        ExactStream(np.array([0.5, 0.5]), counts=[0, -1])


def _slow_exact(weights, n):
    """The rule written out: the earliest deadline among the sources behind their share, else the furthest behind."""
    counts, out = [0] * len(weights), []
    for t in range(1, n + 1):
        behind = [i for i, w in enumerate(weights) if counts[i] < w * t]
        if behind:
            pick = min(behind, key=lambda i: ((counts[i] + 1) / weights[i], i))
        else:
            pick = max(range(len(weights)), key=lambda i: (weights[i] * t - counts[i], -i))
        counts[pick] += 1
        out.append(pick)
    return out


@pytest.mark.parametrize("weights", [[0.5, 0.25, 0.25], [0.7, 0.0, 0.3], [0.3, 0.3]])
def test_exact_stream_matches_the_rule_written_out(weights):
    # [0.3, 0.3] sums to 0.6: no source is ever behind at some steps, and the furthest-behind fallback decides
    assert ExactStream(np.array(weights)).take(60).tolist() == _slow_exact(weights, 60)
