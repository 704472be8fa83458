"""The one share report, against a slow loop over rows and plans."""

import numpy as np
import pytest

from mixweave.core.report import REPORT_KEYS, membership, report_rows, share_report


def _slow_report(member: np.ndarray, probs: list[np.ndarray], plans: list[np.ndarray]) -> dict[str, list]:
    """Per group, one row and one draw at a time: the definition, written out."""
    n, g = member.shape
    out: dict[str, list] = {k: [] for k in REPORT_KEYS}
    drawn = [int(i) for plan in plans for i in plan]
    for j in range(g):
        rows = [i for i in range(n) if member[i, j]]
        requested = sum(sum(p[i] for i in rows) for p in probs) / len(probs)
        hits = [i for i in drawn if member[i, j]]
        unique = len(set(hits))
        out["size"].append(len(rows))
        out["requested"].append(requested)
        out["realised"].append(len(hits) / len(drawn))
        out["unique"].append(unique)
        out["coverage"].append(unique / len(rows) if rows else 0.0)
        out["repeats"].append(len(hits) - unique)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integer_groups_and_membership_equal_the_slow_loop(seed):
    rng = np.random.default_rng(seed)
    n, g = 60, 4
    ids = rng.integers(0, g, n)
    ids[:g] = np.arange(g)  # every group present
    probs = [rng.random(n) for _ in range(3)]
    probs = [p / p.sum() for p in probs]
    plans = [rng.integers(0, n, 50) for _ in range(3)]
    member = np.eye(g, dtype=bool)[ids]
    expected = _slow_report(member, probs, plans)
    for got in (share_report(ids, probs, plans), share_report(member, probs, plans)):
        assert list(got) == list(REPORT_KEYS)
        for key in REPORT_KEYS:
            np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, err_msg=key)


def test_multi_label_rows_count_in_every_group_they_belong_to():
    hot = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=bool)
    probs = np.array([0.4, 0.3, 0.2, 0.1])
    plan = np.array([0, 0, 1, 2])
    got = share_report(hot, probs, [plan])
    expected = _slow_report(hot, [probs], [plan])
    for key in REPORT_KEYS:
        np.testing.assert_allclose(got[key], expected[key], err_msg=key)
    assert got["size"][2] == 0 and got["coverage"][2] == 0.0  # an empty group: no division by zero


def test_requested_shares_given_directly_and_rows_by_name():
    ids = np.array([0, 0, 1])
    got = share_report(ids, None, [np.array([2, 2, 0])], requested=[0.25, 0.75])
    assert got["requested"] == [0.25, 0.75] and got["realised"] == pytest.approx([1 / 3, 2 / 3])
    rows = report_rows(["a", "b"], got)
    assert rows[1] == {"name": "b", **{k: got[k][1] for k in REPORT_KEYS}}


def test_membership_of_ids_strings_and_multi_hot():
    names, member = membership(np.array([2, -1, 0]))
    assert names == ["0", "1", "2"] and member.astype(int).tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    names, member = membership(np.array(["low", "high", "low"]))
    assert names == ["high", "low"] and member.astype(int).tolist() == [[0, 1], [1, 0], [0, 1]]
    names, member = membership(np.array([[1, 0], [1, 1]]), ["cat", "dog"])
    assert names == ["cat", "dog"] and member.astype(int).tolist() == [[1, 0], [1, 1]]
