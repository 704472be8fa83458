"""Bad input to the arguments added or renamed for the originals' users: a clear error naming the argument.

Found by probing each argument with wrong types, booleans, strings, arrays and conflicts.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixweave import (
    CombinedLoss,
    CurriculumState,
    DynamicCurriculumSampler,
    JointSampler,
    MetricsTracker,
    StratifiedConcatDataset,
    TaskAwareSampler,
    compute_metrics,
)

Y = np.where(np.random.default_rng(0).random((40, 2)) < 0.5, 1.0, np.nan)
Y[0] = 1.0
LABELS = np.array(["high", "low"] * 20)


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: CombinedLoss(None, 0.25, alpha=0.3), TypeError, r"give `focal_alpha` or its deprecated spelling"),
        (lambda: CombinedLoss(focal_gamma=2.0, gamma=3.0), TypeError, r"got focal_gamma=2\.0 and gamma=3\.0"),
        (lambda: CombinedLoss(focal_alpha="0.25"), TypeError, r"`focal_alpha` must be a number .*got str '0\.25'"),
        (lambda: CombinedLoss(focal_alpha=True), TypeError, r"`focal_alpha` must be a number .*got bool True"),
        (lambda: CombinedLoss(focal_alpha=[]), ValueError, r"`focal_alpha` must be a number or a non-empty"),
        (lambda: CombinedLoss(focal_alpha=-0.5), ValueError, r"`focal_alpha` must be in \[0, 1\], got -0\.5"),
        (lambda: CombinedLoss(focal_gamma=-1), ValueError, r"`focal_gamma` must be a finite number >= 0"),
        (lambda: CombinedLoss(pos_weights="abc"), TypeError, r"`pos_weights` must be a number .*got str 'abc'"),
        (lambda: CombinedLoss(pos_weights=["a", "b"]), TypeError, r"`pos_weights` must be a number or a 1-D"),
        (
            lambda: CurriculumState(plateau=np.array(["restart", "continue"])),
            ValueError,
            r"`plateau` must be one of 'restart', 'continue', got",
        ),
        (lambda: CurriculumState(qualities=[1, 2]), TypeError, r"`qualities` must be non-empty strings, got 1"),
        (lambda: CurriculumState(qualities=["a", ""]), TypeError, r"`qualities` must be non-empty strings, got ''"),
        (lambda: DynamicCurriculumSampler(LABELS, CurriculumState(), 10, []), TypeError, r"`seed` must be an int"),
        (lambda: TaskAwareSampler(Y, 0.5, None, 0.0), TypeError, r"`seed` must be an int"),
        (
            lambda: JointSampler(Y, task_alpha=0.5, increment_seed_per_epoch="no"),
            TypeError,
            r"`increment_seed_per_epoch` must be True or False, got str 'no'",
        ),
        (lambda: compute_metrics(np.eye(2), np.eye(2), from_logits="no"), TypeError, r"`from_logits` must be True"),
        (lambda: MetricsTracker(2, from_logits=None), TypeError, r"`from_logits` must be True or False"),
        (lambda: compute_metrics(np.eye(2), np.eye(2), labels=["a", "a"]), ValueError, r"repeated: \['a'\]"),
        (lambda: compute_metrics(np.eye(2), np.eye(2), labels="ab"), TypeError, r"got a single string 'ab'"),
        (lambda: MetricsTracker(2, labels=["a", "a"]), ValueError, r"`labels` must name each class once"),
        (
            lambda: MetricsTracker(2, ["a", "b"], disease_labels=["c", "d"]),
            TypeError,
            r"got labels=\['a', 'b'\] and disease_labels=\['c', 'd'\]",
        ),
        (
            lambda: StratifiedConcatDataset("ab"),
            ValueError,
            r"`datasets` must be a non-empty list of datasets, got str",
        ),
    ],
)
def test_bad_input_names_the_argument(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_numpy_quality_labels_and_explicit_defaults_are_fine():
    state = CurriculumState(qualities=np.array(["gold", "silver", "bronze"]))
    assert state.qualities == ("gold", "silver", "bronze")
    loss = CombinedLoss(None, 0.25, 2.0)  # the defaults written out: no conflict, no warning
    assert float(loss.focal.alpha) == 0.25 and loss.focal.gamma == 2.0
    assert torch.isfinite(loss(torch.zeros(2, 2), torch.ones(2, 2)))
