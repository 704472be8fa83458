"""The update rules of adaptive mixing against slow loops and torch's own softmax."""

import numpy as np
import pytest
import torch

from mixweave.core.adaptive import doremi_excess, exp3_rewards, mix_floor, softmax


def test_softmax_matches_torch_and_does_not_overflow():
    rng = np.random.default_rng(0)
    scores = rng.normal(scale=5.0, size=7)
    assert np.allclose(softmax(scores), torch.softmax(torch.from_numpy(scores), dim=0).numpy(), rtol=1e-12)
    big = np.array([1000.0, 999.0, -1000.0])  # exp(1000) overflows float64
    assert np.allclose(softmax(big), torch.softmax(torch.from_numpy(big), dim=0).numpy(), rtol=1e-12)


@pytest.mark.parametrize("floor", [0.0, 0.01, 0.25])
def test_mix_floor_keeps_every_share_above_the_floor(floor):
    p = np.array([0.97, 0.03, 0.0, 0.0])
    out = mix_floor(p, floor)
    assert out.min() >= floor - 1e-15
    assert out.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(out, [(1 - 4 * floor) * v + floor for v in p])  # the formula, element by element


def test_exp3_rewards_match_a_loop_over_samples():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 4, 50)
    losses = rng.random(50)
    shares = np.array([0.1, 0.2, 0.3, 0.4])
    slow = np.zeros(4)
    for g, loss in zip(ids, losses, strict=True):  # each sample's loss, importance-weighted, averaged over the window
        slow[g] += loss / shares[g] / ids.size
    sums = np.bincount(ids, weights=losses, minlength=4)
    counts = np.bincount(ids, minlength=4)
    assert np.allclose(exp3_rewards(sums, counts, shares), slow, rtol=1e-12)
    assert exp3_rewards(np.zeros(4), np.zeros(4), shares).tolist() == [0.0] * 4  # an empty window rewards nothing
    one = exp3_rewards(np.array([0.0, 2.0, 0.0, 0.0]), np.array([0, 1, 0, 0]), shares)
    assert one.tolist() == [0.0, 2.0 / 0.2, 0.0, 0.0]  # a window of one sample: its loss over its share


def test_exp3_reward_is_an_unbiased_estimate_of_each_groups_mean_loss():
    # Windows drawn with skewed shares; the mean reward over many windows estimates each group's mean loss.
    rng = np.random.default_rng(2)
    shares = np.array([0.7, 0.2, 0.1])
    means = np.array([0.5, 1.0, 3.0])
    rewards = []
    for _ in range(4000):
        ids = rng.choice(3, size=16, p=shares)
        losses = means[ids] + rng.normal(scale=0.1, size=16)
        sums, counts = np.bincount(ids, weights=losses, minlength=3), np.bincount(ids, minlength=3)
        rewards.append(exp3_rewards(sums, counts, shares))
    estimate = np.mean(rewards, axis=0)
    # tolerance: 5 standard errors of the mean reward of each group
    se = np.std(rewards, axis=0, ddof=1) / np.sqrt(len(rewards))
    assert np.all(np.abs(estimate - means) < 5 * se), (estimate, means, se)


def test_doremi_excess_matches_a_loop_and_clips_at_zero():
    sums = np.array([3.0, 1.0, 0.0, 5.0])
    counts = np.array([2.0, 4.0, 0.0, 1.0])
    reference = np.array([1.0, 1.0, 1.0, 1.0])
    slow = [max(s / n - r, 0.0) if n > 0 else 0.0 for s, n, r in zip(sums, counts, reference, strict=True)]
    assert doremi_excess(sums, counts, reference).tolist() == slow == [0.5, 0.0, 0.0, 4.0]
    # a negative reference (a better-than-zero loss, say a log-likelihood) and a group with no sample
    negative = doremi_excess(np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([-0.5, -0.5]))
    assert negative.tolist() == [1.5, 0.0]
