"""The store under crashes, full disks, replaced directories, read-only media and damaged files (#19).

Real files, real processes and real kills; the faults come from tests/faults.py.
"""

import errno
import gc
import os
import signal
import sqlite3
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from mixweave import ClusterLabeledDataset
from mixweave.cli import main
from mixweave.data.store import writer as writer_module
from tests.data.store.test_store import C, _data
from tests.faults import KILL_AT_CALL, disk_full


def _sqlite_labels(path: Path, column: str = "source_label") -> np.ndarray:
    con = sqlite3.connect(path / "dataset.db")
    rows = con.execute(f"SELECT {column} FROM samples ORDER BY sample_id").fetchall()
    con.close()
    return np.array([np.frombuffer(r[0], np.float32) for r in rows])


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".building-" in p.name or ".replaced-" in p.name)


# -- 1. a dataset whose store was rebuilt in place writes nothing, half or whole --------------------------------


def test_update_on_a_store_replaced_since_opening_is_refused_and_writes_nothing(tmp_path):
    path = tmp_path / "store"
    old = ClusterLabeledDataset.build(path, **_data(seed=0))
    ClusterLabeledDataset.build(path, **_data(seed=1), overwrite=True)  # the directory is a new one now
    before = _sqlite_labels(path)
    with pytest.raises(RuntimeError, match=r"was replaced \(rebuilt with overwrite=True\?\) .* Open it again"):
        old.update_labels(3, source_label=np.eye(C)[0])
    with pytest.raises(RuntimeError, match="was replaced"):
        old.sync_label_array()
    np.testing.assert_array_equal(_sqlite_labels(path), before)  # the new store's record is untouched
    fresh = ClusterLabeledDataset(path)
    np.testing.assert_array_equal(fresh.label_matrix("source"), before)  # and its label array agrees
    fresh.update_labels(3, source_label=np.eye(C)[0])  # a dataset opened on it writes as usual
    np.testing.assert_array_equal(_sqlite_labels(path)[3], np.eye(C)[0])


# -- 2. read-only stores can be read ------------------------------------------------------------------------------


@contextmanager
def _read_only(folder: Path) -> Iterator[Path]:
    """``folder`` seen through a read-only bind mount (a read-only medium): even root cannot write there."""
    view = folder.with_name(folder.name + "-ro")
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"this machine cannot bind-mount (needs root): {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True, capture_output=True)
        yield view
    finally:
        gc.collect()  # the datasets' memmaps and connections keep the mount busy
        if subprocess.run(["umount", str(view)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(view)], check=True, capture_output=True)  # detach once unused


def test_a_store_on_read_only_media_is_read_and_refuses_writes_clearly(tmp_path):
    data = _data()
    ClusterLabeledDataset.build(tmp_path / "disk" / "store", **data)
    with _read_only(tmp_path / "disk") as view:
        path = view / "store"
        ds = ClusterLabeledDataset(path, label_type="source")  # was: "attempt to write a readonly database"
        assert ds.read_only
        np.testing.assert_array_equal(ds[3][2].numpy(), data["source_labels"][3])
        np.testing.assert_array_equal(ds.__getitems__([0, 5, 9])[1][0].numpy(), data["base_embeddings"][5])
        np.testing.assert_array_equal(ds.label_matrix(), data["source_labels"])
        sqlite_only = ClusterLabeledDataset(path, label_type="source", return_metadata=True)  # labels from SQLite
        assert sqlite_only[4][3]["text"] == "" and float(sqlite_only[4][2].sum()) == 1.0
        with pytest.raises(
            PermissionError, match=r"disk-ro/store is read-only for this process: labels cannot be changed"
        ):
            ds.update_labels(3, source_label=np.eye(C)[0])
        with pytest.raises(PermissionError, match="is read-only"):
            ds.sync_label_array()
        assert sorted(p.name for p in path.iterdir()) == sorted(
            ["dataset.db", "base_embeddings.npy", "steering_embeddings.npy", "labels.npy", "labels.seq"]
        )  # SQLite wrote no -wal or -shm file (it could not have)
        del ds, sqlite_only


def test_a_read_only_open_warns_when_a_writer_left_changes_in_the_wal(tmp_path):
    ClusterLabeledDataset.build(tmp_path / "disk" / "store", **_data())
    db = tmp_path / "disk" / "store" / "dataset.db"
    writer = sqlite3.connect(db)  # a writer killed before it checkpointed: its change lives only in dataset.db-wal
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE samples SET text = 'changed' WHERE sample_id = (SELECT min(sample_id) FROM samples)")
    writer.commit()
    assert (db.parent / "dataset.db-wal").stat().st_size > 0
    try:
        with _read_only(tmp_path / "disk") as view:
            with pytest.warns(UserWarning, match=r"dataset\.db-wal holds changes not yet folded into dataset\.db"):
                ds = ClusterLabeledDataset(view / "store", label_type="source")
            assert ds.read_only and len(ds) == len(_data()["source_labels"])
            del ds
    finally:
        writer.close()


# -- 3. a full disk during a build leaves nothing behind ---------------------------------------------------------


@pytest.mark.parametrize("budget", [100, 5_000, 60_000])
def test_a_full_disk_during_a_build_leaves_no_half_store_and_keeps_the_old_one(tmp_path, monkeypatch, budget):
    path = tmp_path / "store"
    ClusterLabeledDataset.build(path, **_data(seed=0))
    expected = _sqlite_labels(path)
    with disk_full(monkeypatch, writer_module, budget), pytest.raises(OSError) as info:
        ClusterLabeledDataset.build(path, **_data(n=4000, seed=1), overwrite=True)
    assert info.value.errno == errno.ENOSPC
    assert _leftovers(tmp_path) == []  # was: the whole .store.building-* directory
    np.testing.assert_array_equal(ClusterLabeledDataset(path).label_matrix("source"), expected)  # the old store


def test_a_full_disk_in_the_cli_is_one_line(tmp_path, monkeypatch, capsys):
    np.savez(tmp_path / "in.npz", **{k.replace("labels", "labels"): v for k, v in _data(n=2000).items()})
    with disk_full(monkeypatch, writer_module, 1000):
        code = main(["store", "build", str(tmp_path / "store"), "--from-npz", str(tmp_path / "in.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mixweave: error: [Errno 28]") and "Traceback" not in err
    assert _leftovers(tmp_path) == [] and not (tmp_path / "store").exists()


# -- 4. a kill between the two renames of an overwrite -----------------------------------------------------------


_KILLED_OVERWRITE = (
    KILL_AT_CALL
    + """
import sys
import numpy as np
from mixweave import ClusterLabeledDataset
from mixweave.data.store import writer
kill_at_call(writer.os, "rename", 1)  # after the old store is moved aside, before the new one moves in
rng = np.random.default_rng(1)
ClusterLabeledDataset.build(sys.argv[1], rng.random((8, 3)), rng.random((8, 3)), np.eye(4)[[0] * 8],
                            np.eye(4)[[1] * 8], overwrite=True)
"""
)


def test_a_kill_between_the_renames_of_an_overwrite_points_to_the_surviving_store(tmp_path):
    path = tmp_path / "store"
    ClusterLabeledDataset.build(path, **_data(seed=0))
    expected = _sqlite_labels(path)
    done = subprocess.run([sys.executable, "-c", _KILLED_OVERWRITE, str(path)], capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL
    assert not path.exists()
    (survivor,) = [p for p in tmp_path.iterdir() if ".replaced-" in p.name]
    with pytest.raises(FileNotFoundError, match=rf"survives in {survivor}: a rebuild with overwrite=True was inte"):
        ClusterLabeledDataset(path)
    os.rename(survivor, path)  # what the message says to do
    np.testing.assert_array_equal(ClusterLabeledDataset(path).label_matrix("source"), expected)


# -- 16. a damaged label array is not served ----------------------------------------------------------------------


def test_nan_written_into_the_label_array_is_not_served(tmp_path):
    path = tmp_path / "store"
    data = _data()
    ClusterLabeledDataset.build(path, **data)
    array = np.load(path / "labels.npy", mmap_mode="r+")
    array[7, 0, :] = np.nan  # damage from outside mixweave
    array.flush()
    del array
    ds = ClusterLabeledDataset(path, label_type="source", cache_size=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        label = ds[7][2].numpy()
        batch = ds.__getitems__([6, 7])
    np.testing.assert_array_equal(label, data["source_labels"][7])  # from SQLite, the record
    np.testing.assert_array_equal(batch[1][2].numpy(), data["source_labels"][7])
    assert any("non-finite values: labels are read from SQLite" in str(w.message) for w in caught)


# -- 14. no raw library error from the API --------------------------------------------------------------------


def test_sample_ids_beyond_sqlite_and_string_labels_are_named_errors(tmp_path):
    ds = ClusterLabeledDataset.build(tmp_path / "store", **_data())
    with pytest.raises(ValueError, match=r"`sample_id` must be an int <= 9223372036854775807, got 1180591620717"):
        ds.update_labels(2**70, source_label=np.eye(C)[0])
    bad = {**_data(), "source_labels": np.array([["a"] * C] * 40)}
    with pytest.raises(TypeError, match=r"`source_labels` must be an array of real numbers, got dtype <U1"):
        ClusterLabeledDataset.build(tmp_path / "other", **bad)
