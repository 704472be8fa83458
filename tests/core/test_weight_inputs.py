"""Inputs of the weight functions: tensors, class ids, empty and single rows, num_classes, zero factors.

Each expectation is computed here by a loop or by hand, not by the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixweave.core.weights import (
    as_multihot,
    compose_hierarchical,
    compose_product,
    get_sample_weights,
    group_shares,
    inverse_frequency,
    primary_tasks,
    task_probabilities,
    task_weights,
)


def test_as_multihot_accepts_tensors_ids_and_num_classes():
    hot = as_multihot(torch.tensor([[1, 0, 1], [0, 0, 0]]))
    assert hot.dtype == bool and hot.tolist() == [[True, False, True], [False, False, False]]
    assert as_multihot(torch.tensor([2, 0])).astype(int).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert as_multihot(np.array([1]), num_classes=4).astype(int).tolist() == [[0, 1, 0, 0]]
    assert as_multihot(np.array([[0.0, 1.0]])).tolist() == [[False, True]]
    with pytest.raises(ValueError, match=r"class ids in `labels` must be < num_classes=2, got 2"):
        as_multihot(np.array([0, 2]), num_classes=2)
    with pytest.raises(ValueError, match=r"class ids in `labels` must be >= 0, got -1"):
        as_multihot(np.array([0, -1]))
    with pytest.raises(TypeError, match=r"`labels` must be a numeric array, got dtype <U1"):
        as_multihot(np.array(["a", "b"]))
    with pytest.raises(TypeError, match=r"1-D `labels` must be integer class ids, got dtype float64"):
        as_multihot(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"`labels` must not be empty, got shape \(0,\)"):
        as_multihot(np.array([], dtype=int))
    with pytest.raises(ValueError, match=r"multi-hot `labels` must hold only 0 and 1, got 2 at \[1, 0\]"):
        as_multihot(np.array([[0, 1], [2, 0]]))
    with pytest.raises(ValueError, match=r"`labels` must be 1-D class ids or a 2-D \(N, C\) multi-hot matrix"):
        as_multihot(np.zeros((2, 2, 2), dtype=int))


def test_get_sample_weights_single_row_and_tensor_input():
    # one row, one label: the only class, weight N / count = 1
    assert get_sample_weights(np.array([[1, 0]])).tolist() == [1.0]
    y = torch.tensor([[1, 0], [1, 1], [0, 0], [0, 1]])
    loop = []
    counts = [2, 2]
    for row in y.tolist():
        labels = [j for j in range(2) if row[j]]
        loop.append(max(4 / counts[j] for j in labels) if labels else 4 / 1)  # "no finding": its own class of 1
    assert get_sample_weights(y).tolist() == loop


def test_inverse_frequency_and_groups_by_hand():
    labels = np.array([0, 0, 1, 2, 2, 2])
    assert inverse_frequency(labels).tolist() == [0.5, 0.5, 1.0, 1 / 3, 1 / 3, 1 / 3]
    groups = np.array([0, 1, 0, 0, 1, 1])
    # counted inside each group: group 0 has classes {0, 1, 2} once each; group 1 has 0 once, 2 twice
    assert inverse_frequency(labels, groups=groups).tolist() == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    assert inverse_frequency(np.array([7])).tolist() == [1.0]
    with pytest.raises(ValueError, match=r"`labels` must not be empty"):
        inverse_frequency(np.array([], dtype=int))
    with pytest.raises(ValueError, match=r"`labels` must be 1-D class ids, got shape \(1, 2\)"):
        inverse_frequency(np.array([[0, 1]]))


def test_compose_product_zero_factors():
    assert compose_product([1, 2, 0], [3, 0, 5]).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match=r"the product of `factors` is zero for every sample"):
        compose_product([1, 0], [0, 1])
    with pytest.raises(ValueError, match=r"`factors` must hold at least one weight array, got none"):
        compose_product()
    with pytest.raises(ValueError, match=r"`factors\[1\]` must have length 2 like factors\[0\], got 3"):
        compose_product([1, 1], [1, 1, 1])
    assert compose_product([0, 2, 2]).tolist() == [0.0, 0.5, 0.5]  # one factor: normalised


def test_compose_hierarchical_by_hand_and_errors():
    groups = np.array([0, 0, 1, 1, 1])
    w = compose_hierarchical(groups, [3, 1], within=[1, 3, 1, 1, 2])
    assert w.tolist() == pytest.approx([0.75 * 0.25, 0.75 * 0.75, 0.25 * 0.25, 0.25 * 0.25, 0.25 * 0.5])
    assert compose_hierarchical(groups, [1, 1]).tolist() == pytest.approx([0.25, 0.25, 1 / 6, 1 / 6, 1 / 6])
    with pytest.raises(ValueError, match=r"group 1 has weight 0\.5 in `group_weights` but no sample with positive"):
        compose_hierarchical(groups, [1, 1], within=[1, 1, 0, 0, 0])
    with pytest.raises(ValueError, match=r"`groups` holds id 1 but `group_weights` has only 1 entries"):
        compose_hierarchical(groups, [1])
    zero_group = compose_hierarchical(groups, [1, 0])  # a group with weight 0 gets nothing
    assert zero_group.tolist() == [0.5, 0.5, 0.0, 0.0, 0.0]


def test_group_shares_by_hand():
    assert group_shares([1, 1, 2], [0, 1, 1]).tolist() == [0.25, 0.75]
    assert group_shares([1, 1], [0, 0], num_groups=3).tolist() == [1.0, 0.0, 0.0]


def test_task_functions_by_hand():
    nan = np.nan
    y = np.array([[1.0, nan], [0.0, 1.0], [nan, nan], [1.0, nan]])  # task 0: 3 labels, task 1: 1
    p, counts = task_probabilities(y, 1.0)
    assert counts.tolist() == [3, 1] and p.tolist() == pytest.approx([0.25, 0.75])
    p0, _ = task_probabilities(y, 0.0)
    assert p0.tolist() == [0.5, 0.5]
    # row weight: sum over its tasks of p_t / n_t
    assert task_weights(y, 1.0).tolist() == pytest.approx([0.25 / 3, 0.25 / 3 + 0.75, 0.0, 0.25 / 3])
    assert primary_tasks(y).tolist() == [0, 1, -1, 0]  # the rarest labelled task; -1 when none
    ids = np.array([1, -1, 0, 1])
    assert primary_tasks(ids).tolist() == [1, -1, 0, 1]
    assert task_weights(ids, 0.0).tolist() == pytest.approx([0.25, 0.0, 0.5, 0.25])
    with pytest.raises(ValueError, match=r"`targets` has no labelled row: every task id is -1"):
        task_probabilities(np.array([-1, -1]), 0.5)
    with pytest.raises(ValueError, match=r"`targets` task ids must be >= -1 \(-1 = no label\), got -2"):
        task_probabilities(np.array([0, -2]), 0.5)
    with pytest.raises(ValueError, match=r"`targets` has no labelled entry: every value is NaN"):
        task_probabilities(np.full((2, 2), nan), 0.5)
    with pytest.raises(ValueError, match=r"`targets` must be a 2-D \(N, T\) array with NaN for missing labels"):
        task_probabilities(np.zeros((0, 2)), 0.5)


def test_no_finding_share_edges():
    y = np.array([[1, 0], [0, 1], [0, 0], [0, 0]])
    w = get_sample_weights(y, no_finding_share=0.5)
    assert w[2:].sum() == pytest.approx(w[:2].sum())  # half of the total on the two rows without a label
    w0 = get_sample_weights(y, no_finding_share=0.0)
    assert w0[2:].tolist() == [0.0, 0.0]
    with pytest.warns(UserWarning, match=r"`no_finding_share` = 0\.3 has no effect: every row has a label"):
        get_sample_weights(np.array([[1, 0], [0, 1]]), no_finding_share=0.3)
    with pytest.warns(UserWarning, match=r"`no_finding_share` = 0\.3 has no effect: every row has no label"):
        get_sample_weights(np.zeros((3, 2), dtype=int), no_finding_share=0.3)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # share 0 where it cannot apply: nothing to say
        get_sample_weights(np.array([[1, 0], [0, 1]]), no_finding_share=0.0)
