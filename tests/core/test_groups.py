"""``grouped``: positions of each label, against a scan per label (both sort paths: 16-bit radix and int64)."""

from __future__ import annotations

import numpy as np
import pytest

from mixweave.core._groups import grouped


@pytest.mark.parametrize(
    ("num_groups", "present", "dtype"),
    [
        (1, 1, np.intp),
        (4, 3, np.int32),
        (300, 250, np.uint16),
        (1 << 16, 5000, np.intp),
        ((1 << 16) + 7, 9000, np.intp),
    ],
)
def test_grouped_equals_a_scan_per_label(num_groups, present, dtype):
    rng = np.random.default_rng(num_groups)
    values = rng.choice(num_groups, size=present, replace=False)  # some labels never occur
    labels = values[rng.integers(0, present, 200_000)].astype(dtype)
    out = grouped(labels, num_groups)
    assert len(out) == num_groups
    for g in np.unique(np.concatenate([values[:50], [0, num_groups - 1]])).tolist():
        assert np.array_equal(out[g], np.flatnonzero(labels == g)), g
    assert sum(part.size for part in out) == labels.size


def test_grouped_of_labels_above_the_16_bit_range_with_a_small_num_groups_does_not_wrap():
    # bincount's length (max label + 1), not num_groups, decides the sort: 70000 must not wrap to 4464
    labels = np.array([70_000, 1, 4464, 1])
    out = grouped(labels, 2)
    assert np.array_equal(out[1], [1, 3])
    assert np.array_equal(np.concatenate(out[2:]), [2, 0])
