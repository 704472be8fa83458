"""Edges of core.weights that mutation testing found unpinned: each test names what it pins."""

import numpy as np
import pytest

from mixweave.core.weights import (
    as_multihot,
    compose_hierarchical,
    compose_product,
    fingerprint,
    get_sample_weights,
    group_shares,
    inverse_frequency,
    normalize,
    primary_tasks,
    scaled,
    task_probabilities,
    task_weights,
)


@pytest.mark.parametrize(
    ("weights", "largest"),
    [([0.1, 0.2], 0.8), ([1.0, 0.5], 0.5), ([1.5, 0.25], 0.75), ([0.75, 0.5], 0.75), ([3.0], 0.75)],
)
def test_scaled_brings_the_largest_into_half_open_unit_interval_by_a_power_of_two(weights, largest):
    w = np.array(weights)
    out = scaled(w)
    assert out.max() == largest
    ratio = out / w
    assert np.all(ratio == ratio[0])  # one power of two for every weight
    assert np.frexp(ratio[0])[0] == 0.5


def test_scaled_leaves_empty_and_all_zero_arrays_alone():
    assert scaled(np.empty(0)).shape == (0,)
    assert scaled(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_fingerprint_depends_on_values_not_dtype():
    assert fingerprint([1, 2, 3]) == fingerprint(np.array([1.0, 2.0, 3.0])) == fingerprint(np.float32([1, 2, 3]))
    assert fingerprint([1, 2, 3]) != fingerprint([1, 2, 4])


def test_as_multihot_of_class_ids_is_boolean():
    out = as_multihot(np.array([2, 0]))
    assert out.dtype == bool
    assert out.tolist() == [[False, False, True], [True, False, False]]


def test_group_id_errors_name_the_argument_and_value():
    with pytest.raises(ValueError, match=r"`groups` must hold non-negative group ids, got -1"):
        group_shares([1.0, 1.0], [0, -1])
    with pytest.raises(ValueError, match=r"`groups` must have shape \(2,\) to match the weights, got \(3,\)"):
        group_shares([1.0, 1.0], [0, 1, 1])
    with pytest.raises(ValueError, match=r"`groups` must have shape \(3,\) to match the weights, got \(2,\)"):
        inverse_frequency([0, 1, 1], groups=[0, 1])
    assert group_shares([1.0, 3.0], [1, 1], num_groups=4).tolist() == [0.0, 1.0, 0.0, 0.0]


def test_inverse_frequency_counts_classes_per_group_with_more_groups_than_classes():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 60)
    groups = rng.integers(0, 5, 60)
    expected = [1.0 / np.sum((labels == labels[i]) & (groups == groups[i])) for i in range(60)]  # a slow loop
    assert np.allclose(inverse_frequency(labels, groups=groups), expected, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"^`labels` must not be empty$"):
        inverse_frequency(np.array([], dtype=int))


def test_compose_hierarchical_groups_without_mass():
    # group 1 has share 0 and only zero `within` weights: its samples get 0, not 0/0
    out = compose_hierarchical([0, 0, 1], [1.0, 0.0], within=[0.5, 1.5, 0.0])
    assert out.tolist() == [0.25, 0.75, 0.0]
    with pytest.raises(ValueError, match=r"group 0 has weight 1 in `group_weights` but no sample with positive weight"):
        compose_hierarchical([0, 1], [1.0, 0.0], within=[0.0, 0.0])  # all-zero `within` is legal input
    with pytest.raises(ValueError, match=r"`within`"):
        compose_hierarchical([0, 1], [1.0, 1.0], within=[-1.0, 1.0])
    with pytest.raises(ValueError, match=r"`group_weights`"):
        compose_hierarchical([0, 1], [-1.0, 1.0])
    with pytest.raises(ValueError, match=r"`groups` holds id 2 but `group_weights` has only 2 entries"):
        compose_hierarchical([0, 2], [1.0, 1.0])


def test_compose_hierarchical_within_larger_than_one():
    out = compose_hierarchical([0, 0, 1], [0.5, 0.5], within=[3.0, 1.0, 7.0])
    assert np.allclose(out, [0.375, 0.125, 0.5], rtol=0, atol=1e-15)


def test_compose_product_errors():
    with pytest.raises(ValueError, match=r"^`factors` must hold at least one weight array, got none$"):
        compose_product()
    zero_product = r"^the product of `factors` is zero for every sample; nothing could be drawn$"
    with pytest.raises(ValueError, match=zero_product):
        compose_product([0.0, 0.0])  # an all-zero factor is legal input; the product is what must not be zero
    with pytest.raises(ValueError, match=r"`factors\[1\]`"):
        compose_product([1.0, 1.0], [1.0, -1.0])
    with pytest.raises(ValueError, match=r"`factors\[1\]` must have length 2 like factors\[0\], got 3"):
        compose_product([1.0, 1.0], [1.0, 1.0, 1.0])


def test_normalize_names_the_argument():
    with pytest.raises(ValueError, match=r"`shares`"):
        normalize([1.0, -1.0], name="shares")


def test_get_sample_weights_class_weights():
    labels = [[1, 0], [0, 0], [1, 1]]
    # all-zero class weights are legal: only the "no finding" rows can be drawn
    assert get_sample_weights(labels, class_weights=[0.0, 0.0, 2.0]).tolist() == [0.0, 2.0, 0.0]
    assert get_sample_weights(labels, class_weights=[0.0, 0.0]).tolist() == [0.0, 3.0, 0.0]  # "no finding": n / 1
    with pytest.raises(ValueError, match=r"`class_weights` must have 2 entries \(one per class\) or 3 \(plus"):
        get_sample_weights(labels, class_weights=[1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"`class_weights`"):
        get_sample_weights(labels, class_weights=[1.0, -1.0])


@pytest.mark.parametrize("reduce", ["max", "mean", "sum"])
def test_get_sample_weights_with_a_class_no_row_carries(reduce):
    labels = np.array([[1, 0, 1], [1, 0, 0], [0, 0, 0], [1, 0, 1]])
    n = len(labels)
    cw = {0: n / 3, 2: n / 2}  # class 1 has no row: weight 0, never inf or nan
    rows = [[cw[j] for j in np.flatnonzero(r)] for r in labels]
    combine = {"max": max, "sum": sum, "mean": lambda v: sum(v) / len(v)}[reduce]
    expected = [combine(v) if v else n / 1 for v in rows]  # one "no finding" row
    assert np.allclose(get_sample_weights(labels, reduce=reduce), expected, rtol=1e-15, atol=0)


def test_get_sample_weights_without_no_finding_rows():
    labels = np.array([[1, 0], [1, 1], [0, 1]])
    assert np.allclose(get_sample_weights(labels, reduce="mean"), [1.5, 1.5, 1.5], rtol=1e-15, atol=0)


def test_task_inputs_at_their_edges():
    p, counts = task_probabilities(np.array([[1.0], [np.nan], [0.0]]), alpha=1.0)  # one task (T = 1)
    assert p.tolist() == [1.0] and counts.tolist() == [2]
    p, counts = task_probabilities(np.array([3]), alpha=0.5)  # a single row with task 3
    assert p.tolist() == [0.0, 0.0, 0.0, 1.0] and counts.tolist() == [0, 0, 0, 1]
    # None is a missing label, like NaN
    assert task_weights([[1.0, None], [None, 0.0], [1.0, 1.0]], alpha=0.0).tolist() == [0.25, 0.25, 0.5]
    with pytest.raises(ValueError, match=r"^`targets` has no labelled entry: every value is NaN$"):
        task_probabilities(np.full((2, 2), np.nan), alpha=1.0)
    with pytest.raises(ValueError, match=r"^`targets` has no labelled row: every task id is -1$"):
        task_probabilities(np.array([-1, -1]), alpha=1.0)
    with pytest.raises(ValueError, match=r"`targets` has no labelled row"):
        task_probabilities(np.array([], dtype=np.int64), alpha=1.0)
    with pytest.raises(ValueError, match=r"got shape \(2, 0\)"):
        task_probabilities(np.zeros((2, 0)), alpha=1.0)


def test_task_weights_with_an_unlabelled_task():
    targets = np.array([[1.0, np.nan, np.nan], [0.0, np.nan, 1.0], [np.nan, np.nan, 1.0]])
    w = task_weights(targets, alpha=1.0)  # p = (1/2, 0, 1/2) / 1 over tasks with 2 labels each
    assert np.allclose(w, [0.25, 0.5, 0.25], rtol=1e-15, atol=0)
    assert np.isfinite(w).all()


def test_scaled_returns_the_input_itself_when_nothing_needs_scaling():
    w = np.array([0.75, 0.5])
    assert scaled(w) is w
    z = np.zeros(2)
    assert scaled(z) is z


def test_primary_tasks_of_task_ids_is_a_new_array():
    t = np.array([0, -1, 1], dtype=np.intp)
    out = primary_tasks(t)
    assert out is not t and out.tolist() == [0, -1, 1]
    out[0] = 5
    assert t[0] == 0


def test_inverse_frequency_with_group_ids_beyond_float_precision():
    # ids 2**53 and 2**53 + 1 are one float64: the keys must stay integers
    assert inverse_frequency([0, 0], groups=[2**53, 2**53 + 1]).tolist() == [1.0, 1.0]
