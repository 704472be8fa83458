"""Progress bars: on stderr only, only to a terminal unless asked, every long job advanced to its total."""

from __future__ import annotations

import contextlib
import sys

import numpy as np
import pytest

import mixweave.data.splits as splits_module
import mixweave.data.store.dataset as dataset_module
import mixweave.data.store.summary as summary_module
from mixweave import ClusterLabeledDataset, multilabel_split, store_summary
from mixweave._progress import LARGE_JOB_ROWS, progress_bar, wanted


def test_a_bar_is_wanted_only_when_asked_or_large_on_a_terminal(monkeypatch):
    assert wanted(True, 1) and not wanted(False, 10**9)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not wanted(None, 10**9)  # not a terminal: silent
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert wanted(None, LARGE_JOB_ROWS) and not wanted(None, LARGE_JOB_ROWS - 1) and not wanted(None, None)
    assert not wanted(None, 999_999, large=1_000_000)


def test_a_bar_writes_to_stderr_never_stdout(capfd):
    with progress_bar("x", 10, True) as advance:
        advance(10)
    out, err = capfd.readouterr()
    assert out == "" and err != ""
    with progress_bar("x", 10, False) as advance:
        advance(10)
    assert capfd.readouterr() == ("", "")


def test_asking_for_a_bar_without_rich_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "rich.progress", None)  # import of rich.progress now raises ImportError
    needs = r"progress bars needs rich.*pip install 'mixweave\[cli\]'"
    with pytest.raises(ImportError, match=needs), progress_bar("x", 10, True):
        pass


@pytest.fixture
def recorded(monkeypatch):
    """Replace the bar in the store and split modules by one that records (description, total, advanced rows)."""
    calls: list[list] = []

    @contextlib.contextmanager
    def recording(description, total, progress=None, *, large=LARGE_JOB_ROWS):
        call = [description, total, 0]
        calls.append(call)
        yield lambda n: call.__setitem__(2, call[2] + n)

    for module in (dataset_module, summary_module, splits_module):
        monkeypatch.setattr(module, "progress_bar", recording)
    return calls


def test_long_jobs_advance_their_bars_to_the_total(tmp_path, recorded):
    n, c = 300, 4
    rng = np.random.default_rng(0)
    labels = np.eye(c)[rng.integers(0, c, n)]
    ds = ClusterLabeledDataset.build(
        tmp_path / "s",
        base_embeddings=np.zeros((n, 2), np.float32),
        steering_embeddings=np.zeros((n, 2), np.float32),
        source_labels=labels,
        steering_labels=labels,
    )
    ds.sync_label_array()
    summary = store_summary(tmp_path / "s", chunk=64)
    assert summary["cache_advice"]["cache_size"] == 100  # 10% of 300 is 30: at least 100 (and at most all 300)
    multilabel_split(rng.random((n, c)) < 0.3, [0.5, 0.5], seed=0)
    assert [(d.split(" ")[0], t, a) for d, t, a in recorded] == [
        ("syncing", n, n),
        ("summarising", 3 * n, 3 * n),
        ("splitting", n, n),
    ]
