"""Counter-based random numbers: per_pass against an explicit loop over passes."""

import numpy as np
import pytest

from mixweave.core.rng import derive_key, per_pass, permute


def _loop(key: int, size: int, draws: np.ndarray) -> np.ndarray:
    """Draw k is item k % size of the permutation of pass k // size: one draw at a time."""
    return np.array([int(permute(derive_key(key, int(k) // size), size, [int(k) % size])[0]) for k in draws])


@pytest.mark.parametrize(("size", "draws"), [(5, 23), (7, 7), (1, 4), (10, 3)])
def test_per_pass_equals_the_loop_and_each_full_pass_is_a_permutation(size, draws):
    k = np.arange(draws)
    out = per_pass(11, size, k, lambda pk, j: permute(pk, size, j))
    np.testing.assert_array_equal(out, _loop(11, size, k))
    for p in range(draws // size):
        assert sorted(out[p * size : (p + 1) * size].tolist()) == list(range(size))


def test_per_pass_any_subset_of_positions_in_any_order():
    k = np.arange(40)
    full = per_pass(3, 6, k, lambda pk, j: permute(pk, 6, j))
    picked = np.array([39, 0, 17, 6, 5, 23])
    np.testing.assert_array_equal(per_pass(3, 6, picked, lambda pk, j: permute(pk, 6, j)), full[picked])


def test_passes_are_independent_streams():
    out = per_pass(0, 50, np.arange(200), lambda pk, j: permute(pk, 50, j))
    passes = out.reshape(4, 50)
    assert len({tuple(p) for p in passes.tolist()}) == 4  # four different orders (equal by chance: 4/50! odds)


def test_per_pass_edges_keep_int64():
    def narrow(key, offsets):  # a permutation that hands back int32
        return permute(key, 4, offsets).astype(np.int32)

    one = per_pass(9, 4, [2], narrow)
    assert one.dtype == np.int64 and one.tolist() == [permute(derive_key(9, 0), 4, [2]).item()]
    two = per_pass(9, 4, [2, 6], narrow)  # two passes
    assert two.dtype == np.int64
    assert two.tolist() == [permute(derive_key(9, 0), 4, [2]).item(), permute(derive_key(9, 1), 4, [2]).item()]
    empty = per_pass(9, 4, np.array([], dtype=np.int64), narrow)
    assert empty.dtype == np.int64 and empty.shape == (0,)


def test_per_pass_and_permute_read_positions_as_integers():
    take = np.arange(3)
    assert per_pass(0, 3, [], lambda k, j: take[j]).dtype == np.int64  # an empty list is no positions, not floats
    assert permute(7, 5, [1.0, 2.0]).tolist() == permute(7, 5, [1, 2]).tolist()
    with pytest.raises(ValueError, match=r"got values in \[5, 5\]$"):
        permute(7, 5, [5.0])
