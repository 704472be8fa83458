"""ClusterLabeledDataset and ClusterStoreWriter on real SQLite files and real memmaps."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mixweave import ClusterLabeledDataset, ClusterStoreWriter, SampleBatch, collate_with_metadata, store_summary
from mixweave.cli import main
from mixweave.data.store import dataset as store_dataset
from tests.checks import console_script

N, D, C = 40, 6, 5


def _data(n=N, d=D, c=C, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "base_embeddings": rng.normal(size=(n, d)).astype(np.float32),
        "steering_embeddings": rng.normal(size=(n, d)).astype(np.float32),
        "source_labels": np.eye(c, dtype=np.float32)[rng.integers(0, c, n)],
        "steering_labels": rng.dirichlet(np.ones(c), size=n).astype(np.float32),
    }


def _meta(n=N):
    return {
        "texts": [f"question {i}" for i in range(n)],
        "sample_types": ["question" if i % 2 else "source" for i in range(n)],
        "chroma_ids": [f"c{i}" for i in range(n)],
        "suggestions": [json.dumps([f"domain{i % 3}"]) for i in range(n)],
        "steering_modes": ["zero" if i % 3 else "mean" for i in range(n)],
    }


@pytest.fixture
def built(tmp_path):
    data = _data()
    ds = ClusterLabeledDataset.build(tmp_path / "store", **data, alpha=0.3, **_meta())
    return tmp_path / "store", data, ds


# -- round trip -------------------------------------------------------------------------------------------------
def test_round_trip_every_label_type(built):
    path, data, ds = built
    assert len(ds) == N and ds.embedding_dim == D and ds.n_clusters == C
    combined = 0.3 * data["source_labels"] + 0.7 * data["steering_labels"]
    expected = {"source": data["source_labels"], "steering": data["steering_labels"], "combined": combined}
    for label_type, labels in expected.items():
        reader = ClusterLabeledDataset(path, label_type=label_type)
        for i in (0, 7, N - 1, -1):
            base, steering, label = reader[i]
            assert base.dtype == torch.float32 and base.shape == (D,)
            np.testing.assert_array_equal(base.numpy(), data["base_embeddings"][i])
            np.testing.assert_array_equal(steering.numpy(), data["steering_embeddings"][i])
            np.testing.assert_allclose(label.numpy(), labels[i], rtol=1e-6)


def test_label_matrix_reads_every_label_in_index_order_without_embeddings(built, monkeypatch):
    _path, data, ds = built
    combined = 0.3 * data["source_labels"] + 0.7 * data["steering_labels"]
    monkeypatch.setattr(ClusterLabeledDataset, "_embeddings", lambda *a: pytest.fail("embeddings were read"))
    np.testing.assert_array_equal(ds.label_matrix("source"), data["source_labels"])
    np.testing.assert_allclose(ds.label_matrix(), combined, rtol=1e-6)  # this dataset's label_type
    with pytest.raises(ValueError, match="`label_type` must be one of"):
        ds.label_matrix("soft")


def test_getitems_matches_item_reads_with_duplicates_and_negatives(built):
    path, _, _ = built
    for cache_size in (0, 3, 1000):
        ds = ClusterLabeledDataset(path, cache_size=cache_size)
        idx = [5, -1, 5, 0, 39, 12, 12, 3]
        batch = ds.__getitems__(idx)
        assert isinstance(batch, SampleBatch) and len(batch) == len(idx)
        for j, i in enumerate(idx):
            for got, want in zip(batch[j], ClusterLabeledDataset(path, cache_size=0)[i], strict=True):
                torch.testing.assert_close(got, want)
        # twice: the second call is served (partly) from the cache and must not differ
        again = ds.__getitems__(idx)
        for a, b in zip(again, batch, strict=True):
            for x, y in zip(a, b, strict=True):
                torch.testing.assert_close(x, y)


def test_returned_tensors_are_independent_of_the_cache(built):
    path, data, _ = built
    ds = ClusterLabeledDataset(path, cache_size=10)
    ds[3][0].fill_(99.0)
    ds.__getitems__([3, 4])[0][0].fill_(99.0)
    np.testing.assert_array_equal(ds[3][0].numpy(), data["base_embeddings"][3])
    assert ds.get_cache_stats()["hits"] >= 2


def test_metadata_output_and_collate(built):
    path, data, _ = built
    ds = ClusterLabeledDataset(path, label_type="source", return_metadata=True)
    _base, _steering, label, meta = ds[4]
    assert set(meta) == {
        "sample_id",
        "sample_type",
        "text",
        "chroma_id",
        "suggestions",
        "steering_mode",
        "source_label",
        "steering_label",
        "combined_label",
    }
    assert meta["text"] == "question 4" and meta["sample_type"] == "source" and meta["chroma_id"] == "c4"
    assert json.loads(meta["suggestions"]) == ["domain1"] and meta["steering_mode"] == "zero"
    torch.testing.assert_close(label, meta["source_label"])
    np.testing.assert_allclose(meta["steering_label"].numpy(), data["steering_labels"][4])

    loader = DataLoader(ds, batch_size=8, shuffle=False, collate_fn=collate_with_metadata)
    b, s, y, metas = next(iter(loader))
    assert b.shape == (8, D) and y.shape == (8, C) and [m["text"] for m in metas] == [f"question {i}" for i in range(8)]
    np.testing.assert_array_equal(s.numpy(), data["steering_embeddings"][:8])
    # torch's own collate works on the same batches (a SampleBatch is a sequence of samples)
    plain = DataLoader(ClusterLabeledDataset(path), batch_size=8)
    b2, _s2, _y2 = next(iter(plain))
    np.testing.assert_array_equal(b2.numpy(), data["base_embeddings"][:8])


def test_get_sample_by_id(built):
    _path, data, ds = built
    sample = ds.get_sample_by_id(11)
    assert sample["text"] == "question 11" and sample["index"] == 11 and sample["steering_mode"] == "zero"
    np.testing.assert_array_equal(sample["base_embedding"].numpy(), data["base_embeddings"][11])
    np.testing.assert_array_equal(sample["source_label"].numpy(), data["source_labels"][11])
    assert ds.get_sample_by_id(10_000) is None


def test_streaming_writer_equals_one_shot_build(tmp_path):
    data = _data(n=25)
    one = ClusterLabeledDataset.build(tmp_path / "one", **data)
    with ClusterStoreWriter(tmp_path / "chunks", embedding_dim=D, n_clusters=C) as writer:
        for lo in range(0, 25, 7):
            writer.append(*(data[k][lo : lo + 7] for k in data))
    chunks = ClusterLabeledDataset(tmp_path / "chunks")
    for i in range(25):
        for a, b in zip(one[i], chunks[i], strict=True):
            torch.testing.assert_close(a, b)
    # the .npy files are ordinary arrays with a valid header
    assert np.load(tmp_path / "chunks" / "base_embeddings.npy").shape == (25, D)
    con = sqlite3.connect(tmp_path / "chunks" / "dataset.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    info = dict(con.execute("SELECT key, value FROM dataset_info"))
    assert info["label_encoding"] == "raw" and info["label_dtype"] == "float32"
    assert json.loads(info["label_shape"]) == [C]


# -- labels, cache -----------------------------------------------------------------------------------------------
def test_update_labels_is_visible_at_once_and_persists(built):
    path, _, _ = built
    ds = ClusterLabeledDataset(path, label_type="source", cache_size=100)
    before = ds[6][2]
    new = np.array([0, 0, 1, 0, 0], dtype=np.float32)
    old_combined = ClusterLabeledDataset(path, cache_size=0)[6][2]
    ds.update_labels(6, source_label=new)
    np.testing.assert_array_equal(ds[6][2].numpy(), new)
    assert not torch.equal(before, ds[6][2]) or np.array_equal(before.numpy(), new)
    # the combined label is kept, not recomputed; another reader and a reopened store agree
    torch.testing.assert_close(ClusterLabeledDataset(path, cache_size=0)[6][2], old_combined)
    np.testing.assert_array_equal(ClusterLabeledDataset(path, label_type="source")[6][2].numpy(), new)
    ds.update_labels(6, steering_label=torch.tensor([0.2, 0.2, 0.2, 0.2, 0.2]), combined_label=[1, 0, 0, 0, 0])
    np.testing.assert_allclose(ClusterLabeledDataset(path)[6][2].numpy(), [1, 0, 0, 0, 0])


def test_update_labels_errors(built):
    _, _, ds = built
    with pytest.raises(ValueError, match="at least one of source_label"):
        ds.update_labels(1)
    with pytest.raises(ValueError, match="must have 5 columns"):
        ds.update_labels(1, source_label=[1, 0, 0])
    with pytest.raises(ValueError, match="must be non-negative"):
        ds.update_labels(1, source_label=[1, 0, 0, 0, -1])
    with pytest.raises(ValueError, match="must be finite"):
        ds.update_labels(1, source_label=[1, 0, 0, 0, np.nan])
    with pytest.raises(KeyError, match="no sample with sample_id 999"):
        ds.update_labels(999, source_label=[1, 0, 0, 0, 0])


def _reference_lru(accesses, capacity):
    cache: OrderedDict[int, None] = OrderedDict()
    hits = 0
    for key in accesses:
        if key in cache:
            hits += 1
            cache.move_to_end(key)
        else:
            cache[key] = None
            if len(cache) > capacity:
                cache.popitem(last=False)
    return hits, len(accesses) - hits


def test_cache_counts_match_a_reference_lru(built):
    path, _, _ = built
    rng = np.random.default_rng(3)
    accesses = rng.zipf(1.5, size=600) % N  # skewed, so there are hits and evictions
    ds = ClusterLabeledDataset(path, cache_size=7)
    for i in accesses.tolist():
        ds[i]
    hits, misses = _reference_lru(accesses.tolist(), 7)
    stats = ds.get_cache_stats()
    assert (stats["hits"], stats["misses"]) == (hits, misses) and 0 < hits < 600
    assert stats["hit_rate"] == pytest.approx(hits / 600) and stats["size"] == 7 and stats["capacity"] == 7


def test_prefill_and_clear_cache(built):
    path, _, _ = built
    ds = ClusterLabeledDataset(path, cache_size=10)
    assert ds.get_cache_stats()["hit_rate"] == 0.0
    ds.prefill_cache(range(30))  # only the last 10 stay
    assert ds.get_cache_stats() == {
        "hits": 0,
        "misses": 0,
        "hit_rate": 0.0,
        "size": 10,
        "capacity": 10,
        "bypassed": False,
    }
    ds.__getitems__(list(range(20, 30)))
    assert ds.get_cache_stats()["hits"] == 10
    ds[0]
    assert ds.get_cache_stats()["misses"] == 1
    ds.clear_cache()
    ds[25]
    assert ds.get_cache_stats()["misses"] == 2 and ds.get_cache_stats()["size"] == 1


def test_the_cache_steps_aside_when_reads_rarely_hit_and_comes_back_when_they_do(built, monkeypatch):
    from mixweave.data.store.cache import SlotCache

    monkeypatch.setattr(SlotCache, "PROBE", 8)  # probe more often than the default 64: a shorter test
    path, data, _ = built
    base = data["base_embeddings"]
    ds = ClusterLabeledDataset(path, cache_size=1)
    rng = np.random.default_rng(0)
    window = ds._cache.WINDOW
    for _ in range(2 * window // 20):  # random batches over N = 40 rows (about 20 distinct each), room for 1
        batch = rng.integers(0, N, 32)
        got = ds.__getitems__(batch.tolist())
        assert np.array_equal(torch.stack([s[0] for s in got]).numpy(), base[batch])
    assert ds.get_cache_stats()["bypassed"]
    counted = ds.get_cache_stats()["hits"] + ds.get_cache_stats()["misses"]
    for i in rng.integers(0, N, 64).tolist():  # per item, while bypassed: still right, and not counted
        assert np.array_equal(ds[i][0].numpy(), base[i])
    assert ds.get_cache_stats()["hits"] + ds.get_cache_stats()["misses"] == counted
    for _ in range(ds._cache.PROBE * (window // 2 + 1)):  # now the same two rows again and again
        ds.__getitems__([3, 5])
    assert not ds.get_cache_stats()["bypassed"]  # the probes saw the hits: the cache is back


def test_cache_disabled(built):
    path, _, _ = built
    ds = ClusterLabeledDataset(path, cache_size=0)
    ds[1], ds[1]
    ds.prefill_cache([1, 2])
    assert ds.get_cache_stats() == {
        "hits": 0,
        "misses": 0,
        "hit_rate": 0.0,
        "size": 0,
        "capacity": 0,
        "bypassed": False,
    }


# -- stores written by other tools -----------------------------------------------------------------------------
def _foreign(path, data, *, npy_header, pickled, ids=None, emb_order=None):
    """A store in the documented layout written without mixweave: pickled labels, raw or .npy memmaps."""
    path.mkdir()
    n, d = data["base_embeddings"].shape
    for key, name in (("base_embeddings", "base_embeddings.npy"), ("steering_embeddings", "steering_embeddings.npy")):
        if npy_header:
            np.save(path / name, data[key])
        else:
            m = np.memmap(path / name, dtype=np.float32, mode="w+", shape=(n, d))
            m[:] = data[key]
            m.flush()
            del m
    con = sqlite3.connect(path / "dataset.db")
    con.executescript(
        """CREATE TABLE samples (sample_id INTEGER PRIMARY KEY, embedding_idx INTEGER NOT NULL,
        sample_type TEXT NOT NULL, text TEXT NOT NULL, chroma_id TEXT NOT NULL, suggestions TEXT,
        steering_mode TEXT NOT NULL, source_label BLOB NOT NULL, steering_label BLOB NOT NULL,
        combined_label BLOB NOT NULL);
        CREATE TABLE dataset_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);"""
    )
    ids = list(range(n)) if ids is None else ids
    emb_order = list(range(n)) if emb_order is None else emb_order
    enc = pickle.dumps if pickled else (lambda a: np.asarray(a, dtype=np.float32).tobytes())
    for k in range(n):
        e = emb_order[k]
        src, steer = data["source_labels"][e], data["steering_labels"][e]
        con.execute(
            "INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?)",
            (ids[k], e, "question", f"t{e}", f"c{e}", None, "mean", enc(src), enc(steer), enc((src + steer) / 2)),
        )
    con.executemany(
        "INSERT INTO dataset_info VALUES (?, ?)",
        [("n_clusters", str(data["source_labels"].shape[1])), ("embedding_dim", str(d)), ("dataset_size", str(n))],
    )
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("npy_header", [True, False], ids=["npy", "raw-memmap"])
def test_foreign_store_pickled_labels_need_allow_pickle(tmp_path, npy_header):
    data = _data(n=12)
    path = _foreign(tmp_path / "foreign", data, npy_header=npy_header, pickled=True)
    with pytest.raises(ValueError, match="allow_pickle=True"):
        ClusterLabeledDataset(path)
    ds = ClusterLabeledDataset(path, label_type="source", allow_pickle=True)
    for i in range(12):
        base, _steering, label = ds[i]
        np.testing.assert_array_equal(base.numpy(), data["base_embeddings"][i])
        np.testing.assert_array_equal(label.numpy(), data["source_labels"][i])
    ds.update_labels(3, source_label=[0, 1, 0, 0, 0])  # written back in the store's own encoding
    raw = sqlite3.connect(path / "dataset.db").execute("SELECT source_label FROM samples WHERE sample_id=3").fetchone()
    np.testing.assert_array_equal(pickle.loads(raw[0]), [0, 1, 0, 0, 0])
    assert store_summary(path, allow_pickle=True)["label_encoding"] == "pickle"


def test_foreign_store_raw_labels_sparse_ids_and_shuffled_embedding_rows(tmp_path):
    data = _data(n=10)
    ids = [3, 8, 9, 20, 21, 40, 41, 42, 100, 7]
    order = [4, 0, 9, 1, 8, 2, 7, 3, 6, 5]
    path = _foreign(tmp_path / "foreign", data, npy_header=False, pickled=False, ids=ids, emb_order=order)
    ds = ClusterLabeledDataset(path, label_type="steering")
    # index i is the i-th sample in sample_id order; its embedding row is its embedding_idx
    by_id = sorted(zip(ids, order, strict=True))
    for i, (sample_id, e) in enumerate(by_id):
        base, _, label = ds[i]
        np.testing.assert_array_equal(base.numpy(), data["base_embeddings"][e])
        np.testing.assert_array_equal(label.numpy(), data["steering_labels"][e])
        assert ds.get_sample_by_id(sample_id)["index"] == i
    batch = ds.__getitems__([9, 0, 5])
    np.testing.assert_array_equal(batch[0][0].numpy(), data["base_embeddings"][by_id[9][1]])


# -- bad input -----------------------------------------------------------------------------------------------------
def test_constructor_errors(built, tmp_path):
    path, _, _ = built
    with pytest.raises(FileNotFoundError, match=r"^Dataset database not found: .*nowhere.dataset\.db: no dataset\.db"):
        ClusterLabeledDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"^label_type must be 'source', 'steering', or 'combined', got 'both'"):
        ClusterLabeledDataset(path, label_type="both")
    with pytest.raises(ValueError, match="'w\\+' would truncate"):
        ClusterLabeledDataset(path, mmap_mode="w+")
    with pytest.raises(ValueError, match="`mmap_mode` must be one of"):
        ClusterLabeledDataset(path, mmap_mode="x")
    with pytest.raises(ValueError, match="`cache_size` must be an int >= 0, got -1"):
        ClusterLabeledDataset(path, cache_size=-1)
    ds = ClusterLabeledDataset(path)
    with pytest.raises(IndexError, match=r"^Index 40 out of range \[0, 40\) \(negative indices count from the end"):
        ds[40]
    with pytest.raises(IndexError, match="Index -41 out of range"):
        ds.__getitems__([0, -41])


def test_truncated_and_mismatched_files(tmp_path):
    data = _data(n=12)
    raw = _foreign(tmp_path / "raw", data, npy_header=False, pickled=False)
    with open(raw / "steering_embeddings.npy", "r+b") as fh:
        fh.truncate(12 * D * 4 - 8)
    with pytest.raises(ValueError, match=r"steering_embeddings.npy: raw float32 memmap of 280 bytes.*needs 288"):
        ClusterLabeledDataset(raw)

    npy = _foreign(tmp_path / "npy", data, npy_header=True, pickled=False)
    np.save(npy / "base_embeddings.npy", data["base_embeddings"][:, :4])
    with pytest.raises(ValueError, match=r"base_embeddings.npy: shape \(12, 4\) does not match dataset_info"):
        ClusterLabeledDataset(npy)
    np.save(npy / "base_embeddings.npy", data["base_embeddings"])
    with open(npy / "base_embeddings.npy", "r+b") as fh:
        fh.truncate(200)
    with pytest.raises(ValueError, match=r"base_embeddings\.npy: cannot map the array"):
        ClusterLabeledDataset(npy)

    wide = _foreign(tmp_path / "wide", data, npy_header=True, pickled=False)
    con = sqlite3.connect(wide / "dataset.db")
    con.execute("UPDATE dataset_info SET value='7' WHERE key='n_clusters'")
    con.commit()
    with pytest.raises(ValueError, match="source_label of sample_id 0 has 5 values but n_clusters=7"):
        ClusterLabeledDataset(wide)
    con.execute("UPDATE dataset_info SET value='5' WHERE key='n_clusters'")
    con.execute("UPDATE samples SET combined_label=? WHERE sample_id=4", (np.ones(3, np.float32).tobytes(),))
    con.commit()
    ds = ClusterLabeledDataset(wide, cache_size=0)
    with pytest.raises(ValueError, match="combined_label of sample_id 4 has 3 values but n_clusters=5"):
        ds.__getitems__([1, 4])
    with pytest.raises(ValueError, match="combined_label of sample_id 4"):
        ds[4]
    os.remove(wide / "steering_embeddings.npy")
    with pytest.raises(FileNotFoundError, match=r"^Embedding file not found: .*steering_embeddings\.npy"):
        ClusterLabeledDataset(wide)


def test_build_errors(tmp_path):
    data = _data(n=8)
    with pytest.raises(ValueError, match="`steering_embeddings` has 7 rows but `base_embeddings` has 8"):
        ClusterLabeledDataset.build(tmp_path / "a", **{**data, "steering_embeddings": data["steering_embeddings"][:7]})
    with pytest.raises(ValueError, match=r"`steering_labels` must have 5 columns, got shape \(8, 4\)"):
        ClusterLabeledDataset.build(tmp_path / "a", **{**data, "steering_labels": data["steering_labels"][:, :4]})
    with pytest.raises(ValueError, match=r"`alpha` must be a finite number in \[0, 1\], got 1\.5"):
        ClusterLabeledDataset.build(tmp_path / "a", **data, alpha=1.5)
    with pytest.raises(TypeError, match=r"`alpha` must be a real number, got str '0\.5'"):
        ClusterLabeledDataset.build(tmp_path / "a", **data, alpha="0.5")
    with pytest.raises(ValueError, match="`texts` has 2 entries but there are 8 rows"):
        ClusterLabeledDataset.build(tmp_path / "a", **data, texts=["a", "b"])
    bad = data["base_embeddings"].copy()
    bad[2, 3] = np.inf
    with pytest.raises(ValueError, match="`base_embeddings` must be finite, got inf at row 2, column 3"):
        ClusterLabeledDataset.build(tmp_path / "a", **{**data, "base_embeddings": bad})
    assert not (tmp_path / "a").exists() and not [p for p in tmp_path.iterdir() if "building" in p.name]
    with pytest.warns(UserWarning, match="8 of 8 rows of `source_labels` do not sum to 1"):
        ClusterLabeledDataset.build(tmp_path / "a", **{**data, "source_labels": data["source_labels"] * 2})
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        ClusterLabeledDataset.build(tmp_path / "a", **data)
    (tmp_path / "notastore").mkdir()
    (tmp_path / "notastore" / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"not a store \(no dataset\.db\); refusing to replace it"):
        ClusterLabeledDataset.build(tmp_path / "notastore", **data, overwrite=True)
    assert (tmp_path / "notastore" / "precious.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="no rows were appended"):
        ClusterStoreWriter(tmp_path / "empty", embedding_dim=2, n_clusters=2).close()


def test_overwrite_replaces_the_store(tmp_path):
    first = ClusterLabeledDataset.build(tmp_path / "s", **_data(n=8, seed=1))
    assert len(first) == 8
    second = ClusterLabeledDataset.build(tmp_path / "s", **_data(n=5, seed=2), overwrite=True)
    assert len(second) == 5 and len(ClusterLabeledDataset(tmp_path / "s")) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


# -- processes and threads ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers(built, context):
    path, data, _ = built
    ds = ClusterLabeledDataset(path, label_type="source")
    ds[0]  # the parent has an open connection before the workers start
    loader = DataLoader(ds, batch_size=6, num_workers=2, multiprocessing_context=context, shuffle=False)
    got = [b for batch in loader for b in zip(*batch, strict=True)]
    assert len(got) == N
    for i, (base, _steering, label) in enumerate(got):
        np.testing.assert_array_equal(base.numpy(), data["base_embeddings"][i])
        np.testing.assert_array_equal(label.numpy(), data["source_labels"][i])


def test_thread_readers_racing_update_labels(built):
    """Readers never see a half-updated row, and every read after the last update sees it."""
    path, _, _ = built
    ds = ClusterLabeledDataset(path, label_type="source", cache_size=16)
    rows = list(range(8))
    for r in rows:  # every version of a row is one constant vector, so a mix of two versions shows
        ds.update_labels(r, source_label=np.zeros(C))
    stop = threading.Event()
    errors: list[str] = []

    def reader():
        while not stop.is_set():
            batch = ds.__getitems__(rows)
            for _, _, label in batch:
                values = label.numpy()
                if not np.all(values == values[0]):
                    errors.append(f"torn row {values}")
            ds[int(np.random.default_rng().integers(8))]

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for version in range(1, 40):
        for r in rows:
            ds.update_labels(r, source_label=np.full(C, float(version)))
    final = [b[2][0].item() for b in ds.__getitems__(rows)]
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert final == [39.0] * 8
    assert [ds[r][2][0].item() for r in rows] == [39.0] * 8


def _child_reader(path, ready, go, out):
    ds = ClusterLabeledDataset(path, label_type="source", cache_size=10)
    out.put(ds[2][2].tolist())  # now cached in the child
    ready.set()
    go.wait(30)
    out.put(ds[2][2].tolist())
    out.put(ds.get_cache_stats()["hits"])


@pytest.mark.slow
def test_other_process_sees_the_update_on_its_next_read(built):
    path, _, _ = built
    ctx = mp.get_context("spawn")
    ready, go, out = ctx.Event(), ctx.Event(), ctx.Queue()
    child = ctx.Process(target=_child_reader, args=(str(path), ready, go, out))
    child.start()
    try:
        before = out.get(timeout=60)
        assert ready.wait(60)
        ClusterLabeledDataset(path).update_labels(2, source_label=[0.5, 0, 0, 0, 0.5])
        go.set()
        after = out.get(timeout=60)
        out.get(timeout=60)
    finally:
        child.join(60)
    assert before != [0.5, 0, 0, 0, 0.5] and after == [0.5, 0, 0, 0, 0.5]


CRASHING_BUILD = textwrap.dedent(
    """
    import sys, numpy as np
    from mixweave import ClusterStoreWriter
    rng = np.random.default_rng(0)
    w = ClusterStoreWriter(sys.argv[1], embedding_dim=64, n_clusters=8, overwrite=True)
    eye = np.eye(8, dtype=np.float32)
    for k in range(10**6):
        labels = eye[rng.integers(0, 8, 500)]
        w.append(rng.random((500, 64)), rng.random((500, 64)), labels, labels)
        if k == 3:
            print("writing", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("previous", [False, True], ids=["no-store", "existing-store"])
def test_build_killed_midway_leaves_no_store_or_the_previous_one(tmp_path, previous):
    path = tmp_path / "store"
    if previous:
        old = _data(n=9, seed=5)
        ClusterLabeledDataset.build(path, **old)
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_BUILD, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    if previous:
        ds = ClusterLabeledDataset(path)
        assert len(ds) == 9
        np.testing.assert_array_equal(ds[8][0].numpy(), old["base_embeddings"][8])
    else:
        assert not path.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "store"]
    assert all(name.startswith(".store.building-") for name in leftovers)  # the killed build's scratch only


# -- CLI -----------------------------------------------------------------------------------------------------------
def test_cli_store_build_and_info(tmp_path, capsys):
    data = _data(n=30)
    np.savez(tmp_path / "in.npz", **data, texts=np.array([f"t{i}" for i in range(30)]))
    assert main(["store", "build", "--from-npz", str(tmp_path / "in.npz"), str(tmp_path / "s"), "--alpha", "1"]) == 0
    assert "30 samples" in capsys.readouterr().out
    ds = ClusterLabeledDataset(tmp_path / "s", return_metadata=True)
    assert ds[3][3]["text"] == "t3"
    np.testing.assert_array_equal(ds[3][2].numpy(), data["source_labels"][3])  # alpha=1: combined = source

    proc = subprocess.run(
        [*console_script(), "store", "info", str(tmp_path / "s"), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(proc.stdout)
    assert info["samples"] == 30 and info["embedding_dim"] == D and info["n_clusters"] == C
    assert info["labels"]["source"]["one_hot_share"] == 1.0
    assert (
        info["labels"]["source"]["argmax_counts"] == np.bincount(data["source_labels"].argmax(1), minlength=C).tolist()
    )
    p = data["steering_labels"].astype(np.float64)
    p /= p.sum(1, keepdims=True)
    assert info["labels"]["steering"]["mean_entropy"] == pytest.approx(float(-(p * np.log(p)).sum(1).mean()), rel=1e-5)
    assert main(["store", "info", str(tmp_path / "s")]) == 0
    assert "cache advice" in capsys.readouterr().out
    assert info["label_array"] is True


def test_cli_store_sync_labels_on_a_foreign_store(tmp_path, capsys):
    data = _data(n=8)
    path = _foreign(tmp_path / "foreign", data, npy_header=True, pickled=False)
    assert main(["store", "info", str(path)]) == 0
    assert "no label array" in capsys.readouterr().out
    assert main(["store", "sync-labels", str(path)]) == 0
    assert "wrote a new label array" in capsys.readouterr().out
    np.testing.assert_array_equal(_array_on_disk(path), _sqlite_labels(path))
    assert main(["store", "sync-labels", str(path)]) == 0
    assert "rewrote the label array" in capsys.readouterr().out


def test_cli_store_errors(tmp_path, capsys):
    assert main(["store", "info", str(tmp_path / "missing")]) == 2
    assert "no dataset.db" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", base_embeddings=np.zeros((3, 2)))
    assert main(["store", "build", "--from-npz", str(tmp_path / "bad.npz"), str(tmp_path / "s")]) == 2
    assert "missing array(s) ['steering_embeddings'" in capsys.readouterr().err
    np.savez(tmp_path / "obj.npz", **_data(n=3), texts=np.array(["a", None, "c"], dtype=object))
    assert main(["store", "build", "--from-npz", str(tmp_path / "obj.npz"), str(tmp_path / "s")]) == 2
    assert "dtype 'U'" in capsys.readouterr().err


# -- the label array (NOTE [ Label array ]) ----------------------------------------------------------------------------
def _array_on_disk(path):
    return np.load(path / "labels.npy")


def _sqlite_labels(path):
    """All three labels straight from SQLite (the record), in index order: an independent reading."""
    con = sqlite3.connect(path / "dataset.db")
    rows = con.execute("SELECT source_label, steering_label, combined_label FROM samples ORDER BY sample_id").fetchall()
    con.close()
    return np.array([[np.frombuffer(b, np.float32) for b in r] for r in rows])


def _forbid_sql_label_reads(ds, monkeypatch):
    """Every read of sample rows from SQLite goes through `select_rows`: make it fail."""

    def no_select(*args, **kwargs):
        raise AssertionError("labels were read from SQLite")

    monkeypatch.setattr(store_dataset, "select_rows", no_select)


def test_label_array_is_written_with_the_store_and_serves_reads_without_sqlite(built, monkeypatch):
    path, data, _ = built
    array = _array_on_disk(path)
    assert array.shape == (N, 3, C)
    np.testing.assert_array_equal(array, _sqlite_labels(path))
    for label_type, column in (("source", 0), ("steering", 1), ("combined", 2)):
        ds = ClusterLabeledDataset(path, label_type=label_type, cache_size=0)
        assert ds.has_label_array and ds.reads_label_array
        _forbid_sql_label_reads(ds, monkeypatch)
        batch = ds.__getitems__([5, 1, 5, 39])
        np.testing.assert_array_equal(torch.stack([s[2] for s in batch]).numpy(), array[[5, 1, 5, 39], column])
        np.testing.assert_array_equal(ds[7][2].numpy(), array[7, column])
        np.testing.assert_array_equal(ds[7][0].numpy(), data["base_embeddings"][7])
    assert not ClusterLabeledDataset(path, return_metadata=True).reads_label_array  # metadata comes from SQLite


def test_update_labels_keeps_the_array_equal_to_sqlite(built):
    path, _, ds = built
    rng = np.random.default_rng(5)
    for step in range(25):
        sample_id = int(rng.integers(0, N))
        which = ["source_label", "steering_label", "combined_label"][step % 3]
        ds.update_labels(sample_id, **{which: rng.dirichlet(np.ones(C))})
        assert int(np.fromfile(path / "labels.seq", dtype=np.int64)[0]) == 2 * (step + 1)  # even: no writer inside
    np.testing.assert_array_equal(_array_on_disk(path), _sqlite_labels(path))
    np.testing.assert_array_equal(ClusterLabeledDataset(path, cache_size=0).label_matrix(), _sqlite_labels(path)[:, 2])


def test_odd_sequence_number_means_sqlite_and_the_next_update_repairs_the_array(built):
    """A writer that died mid-update leaves labels.seq odd and rows that disagree with SQLite."""
    path, _, _ = built
    truth = _sqlite_labels(path)
    array = np.load(path / "labels.npy", mmap_mode="r+")
    array[:] = 7.0  # garbage where a dead writer stopped
    array.flush()
    del array
    np.array([41], dtype=np.int64).tofile(path / "labels.seq")
    ds = ClusterLabeledDataset(path, label_type="steering", cache_size=0)
    np.testing.assert_array_equal(ds[3][2].numpy(), truth[3, 1])  # read from SQLite, not the array
    batch = ds.__getitems__([0, 9])
    np.testing.assert_array_equal(torch.stack([s[2] for s in batch]).numpy(), truth[[0, 9], 1])
    ds.update_labels(4, source_label=np.eye(C)[2])  # holds the write lock: rewrites the whole array
    truth[4, 0] = np.eye(C)[2]
    np.testing.assert_array_equal(_array_on_disk(path), truth)
    assert int(np.fromfile(path / "labels.seq", dtype=np.int64)[0]) == 42


_KILLED_WRITER = """
import os, signal, sys
import numpy as np
from mixweave.data.store import ClusterLabeledDataset, labels

def die_after_writing(self, index, values):  # the row is in the array, the transaction not committed
    original(self, index, values)
    os.kill(os.getpid(), signal.SIGKILL)

original = labels.LabelArrayWriter.write_row
labels.LabelArrayWriter.write_row = die_after_writing
ClusterLabeledDataset(sys.argv[1]).update_labels(2, source_label=np.eye({c})[4])
"""


@pytest.mark.slow
def test_writer_killed_inside_update_leaves_readers_consistent(built):
    path, _, _ = built
    truth = _sqlite_labels(path)
    done = subprocess.run([sys.executable, "-c", _KILLED_WRITER.format(c=C), str(path)], capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    np.testing.assert_array_equal(_array_on_disk(path)[2, 0], np.eye(C)[4])  # the torn state is really there
    assert int(np.fromfile(path / "labels.seq", dtype=np.int64)[0]) % 2 == 1
    np.testing.assert_array_equal(_sqlite_labels(path), truth)  # SQLite rolled the update back
    ds = ClusterLabeledDataset(path, label_type="source", cache_size=0)
    np.testing.assert_array_equal(ds[2][2].numpy(), truth[2, 0])  # readers see the committed labels
    ds.update_labels(5, source_label=np.eye(C)[0])
    truth[5, 0] = np.eye(C)[0]
    np.testing.assert_array_equal(_array_on_disk(path), truth)  # repaired as a whole


def test_sync_label_array_creates_it_for_a_foreign_store_and_resyncs_after_direct_sqlite_writes(tmp_path, monkeypatch):
    data = _data(n=10)
    ids = [3, 8, 9, 20, 21, 40, 41, 42, 100, 7]
    path = _foreign(tmp_path / "foreign", data, npy_header=True, pickled=False, ids=ids)
    ds = ClusterLabeledDataset(path, label_type="steering", cache_size=0)
    assert not ds.has_label_array and not (path / "labels.npy").exists()
    expected = [ds[i][2].numpy() for i in range(10)]  # through SQLite
    ds.sync_label_array()
    assert ds.reads_label_array and ClusterLabeledDataset(path).has_label_array
    np.testing.assert_array_equal(_array_on_disk(path), _sqlite_labels(path))
    _forbid_sql_label_reads(ds, monkeypatch)
    np.testing.assert_array_equal(np.stack([ds[i][2].numpy() for i in range(10)]), np.stack(expected))
    # another tool writes SQLite directly: the array is stale until synced
    con = sqlite3.connect(path / "dataset.db")
    new_label = np.eye(C, dtype=np.float32)[1].tobytes()
    con.execute("UPDATE samples SET steering_label = ? WHERE sample_id = 9", (new_label,))
    con.commit()
    con.close()
    ds.sync_label_array()
    np.testing.assert_array_equal(ds[3][2].numpy(), np.eye(C)[1])  # sample_id 9 is index 3 (ids 3, 7, 8, 9, ...)
    np.testing.assert_array_equal(_array_on_disk(path), _sqlite_labels(path))


def test_label_array_bad_files_and_other_machines(built, monkeypatch):
    path, _, _ = built
    truth = _sqlite_labels(path)
    monkeypatch.setattr("platform.machine", lambda: "aarch64")  # no x86-64 ordering: SQLite, same answers
    ds = ClusterLabeledDataset(path, label_type="source", cache_size=0)
    assert ds.has_label_array and not ds.reads_label_array
    np.testing.assert_array_equal(ds[11][2].numpy(), truth[11, 0])
    ds.update_labels(11, source_label=np.eye(C)[1])  # writes still keep the array in step
    np.testing.assert_array_equal(_array_on_disk(path)[11, 0], np.eye(C)[1])
    monkeypatch.undo()

    (path / "labels.seq").write_bytes(b"\x00" * 4)
    with pytest.raises(ValueError, match=r"labels\.seq: 4 bytes, expected one int64"):
        ClusterLabeledDataset(path)
    (path / "labels.seq").write_bytes(b"\x00" * 8)
    with open(path / "labels.npy", "r+b") as f:
        f.truncate(os.path.getsize(path / "labels.npy") - 40)
    with pytest.raises(ValueError, match=r"labels\.npy: cannot map the label array"):
        ClusterLabeledDataset(path)
    (path / "labels.npy").unlink()
    with pytest.warns(UserWarning, match="labels are read from SQLite"):
        ds = ClusterLabeledDataset(path, label_type="source")
    assert not ds.reads_label_array
    np.testing.assert_array_equal(ds[11][2].numpy(), np.eye(C)[1])


def _race_writer(path, versions, done):
    ds = ClusterLabeledDataset(path, label_type="source", cache_size=0)
    wide = ds.n_clusters
    for version in range(1, versions + 1):
        ds.update_labels(version % 4, source_label=np.full(wide, float(version)))
    done.set()


def _race_reader(path, done, out):
    ds = ClusterLabeledDataset(path, label_type="source", cache_size=0)
    assert ds.reads_label_array
    torn, seen = 0, set()
    while not done.is_set():
        for label in [ds[3][2], *(s[2] for s in ds.__getitems__([0, 1, 2, 3]))]:
            values = label.numpy()
            torn += int(not np.all(values == values[0]))
            seen.add(float(values[0]))
    out.put((torn, len(seen)))


@pytest.mark.slow
def test_processes_reading_the_label_array_while_another_process_updates(tmp_path):
    """Real processes: one rewrites rows (4 KiB each) again and again, two read them through the label
    array; no read may mix two versions of a row, and the readers must have seen the updates happen."""
    wide = 1024
    data = _data(n=8, c=wide)
    data["source_labels"] = np.full((8, wide), 1.0 / wide, dtype=np.float32)  # constant rows that sum to 1
    path = tmp_path / "store"
    ClusterLabeledDataset.build(path, **data)
    ctx = mp.get_context("spawn")
    done, out = ctx.Event(), ctx.Queue()
    readers = [ctx.Process(target=_race_reader, args=(str(path), done, out)) for _ in range(2)]
    for p in readers:
        p.start()
    time.sleep(1.0)  # the readers are running before the first update
    writer = ctx.Process(target=_race_writer, args=(str(path), 400, done))
    writer.start()
    writer.join(120)
    results = [out.get(timeout=60) for _ in readers]
    for p in readers:
        p.join(30)
    assert writer.exitcode == 0 and all(p.exitcode == 0 for p in readers)
    assert all(torn == 0 for torn, _ in results), results
    assert all(versions > 10 for _, versions in results), results  # they did read while rows changed
    final = ClusterLabeledDataset(path, label_type="source", cache_size=0)
    assert [final[r][2][0].item() for r in range(4)] == [400.0, 397.0, 398.0, 399.0]


@pytest.mark.parametrize("metadata", [False, True], ids=["arrays", "metadata"])
def test_batched_reads_through_both_cache_paths_equal_uncached_reads(built, metadata):
    """Batches that are mostly hits (served from the cache) and mostly misses (read from storage whole),
    with and without repeated indices, give what a cache-free reader gives."""
    path, _, _ = built
    cached = ClusterLabeledDataset(path, label_type="steering", cache_size=20, return_metadata=metadata)
    plain = ClusterLabeledDataset(path, label_type="steering", cache_size=0, return_metadata=metadata)
    rng = np.random.default_rng(8)
    requested = 0
    for step in range(60):
        if step % 3 == 0:
            batch = rng.choice(10, size=8, replace=False)  # a hot set of 10: mostly hits once warm
        elif step % 3 == 1:
            batch = rng.integers(0, N, 16)  # random, often with repeats: mostly misses
        else:
            batch = rng.permutation(N)[:12]  # random, no repeats
        requested += np.unique(batch).size
        got, want = cached.__getitems__(batch), plain.__getitems__(batch)
        for a, b in zip(got.collate()[:3], want.collate()[:3], strict=True):
            assert torch.equal(a, b), f"step {step}"
        if metadata:
            assert [m["sample_id"] for m in got.collate()[3]] == [m["sample_id"] for m in want.collate()[3]]
            assert [m["text"] for m in got.collate()[3]] == [m["text"] for m in want.collate()[3]]
        if step == 30:
            cached.update_labels(3, steering_label=np.eye(C)[0])  # hits must not serve the old row
            plain = ClusterLabeledDataset(path, label_type="steering", cache_size=0, return_metadata=metadata)
    stats = cached.get_cache_stats()
    assert stats["hits"] + stats["misses"] == requested and stats["hits"] > 100


@pytest.mark.parametrize("cache_size", [0, 1000])
@pytest.mark.parametrize("metadata", [False, True])
def test_an_empty_batch_is_an_empty_batch(built, cache_size, metadata):
    path, data, _ = built
    ds = ClusterLabeledDataset(path, return_metadata=metadata, cache_size=cache_size)
    batch = ds.__getitems__([])
    assert isinstance(batch, SampleBatch) and len(batch) == 0 and list(batch) == []
    base, steering, label = batch.columns
    assert base.shape == steering.shape == (0, data["base_embeddings"].shape[1]) and label.shape == (0, C)
    assert ds.__getitems__(np.array([], dtype=np.int64)).columns[0].shape[0] == 0


def test_a_build_progress_bar_never_writes_to_stdout(tmp_path, capfd):
    n = 50
    arrays = dict(
        base_embeddings=np.zeros((n, 3), np.float32),
        steering_embeddings=np.zeros((n, 3), np.float32),
        source_labels=np.eye(2)[np.arange(n) % 2],
        steering_labels=np.eye(2)[np.arange(n) % 2],
    )
    ClusterLabeledDataset.build(tmp_path / "s", **arrays, progress=True)
    out, err = capfd.readouterr()
    assert out == "" and err != ""  # the bar (here: its final newline, stderr not being a terminal) is on stderr
    ClusterLabeledDataset.build(tmp_path / "t", **arrays, progress=False)
    assert capfd.readouterr() == ("", "")


# -- cached rows and another connection's commits ------------------------------------------------------------------
NEW_SOURCE = np.eye(C, dtype=np.float32)[1] * 0.5 + np.eye(C, dtype=np.float32)[2] * 0.5


def _label_of(ds, i, batched):
    return (ds.__getitems__([i]).columns[2][0] if batched else ds[i][2]).numpy()


@pytest.mark.parametrize("batched", [False, True], ids=["ds[i]", "__getitems__"])
def test_rows_prefilled_before_any_read_are_dropped_after_another_connection_commits(built, batched):
    path, _, _ = built
    reader = ClusterLabeledDataset(path, label_type="source")
    reader.prefill_cache(range(10))  # the first thing this reader does: no connection was open yet
    ClusterLabeledDataset(path).update_labels(5, source_label=NEW_SOURCE)
    assert np.array_equal(_label_of(reader, 5, batched), NEW_SOURCE)


def test_a_new_thread_does_not_serve_rows_cached_before_another_connection_committed(built):
    path, _, _ = built
    reader = ClusterLabeledDataset(path, label_type="source")
    reader[7], reader[7]  # cached by the main thread
    ClusterLabeledDataset(path).update_labels(7, source_label=NEW_SOURCE)
    seen = {}
    thread = threading.Thread(target=lambda: seen.update(label=reader[7][2].numpy()))
    thread.start()
    thread.join()
    assert np.array_equal(seen["label"], NEW_SOURCE)
    assert np.array_equal(reader[7][2].numpy(), NEW_SOURCE)  # and the main thread's connection saw it too


def test_forked_workers_do_not_serve_a_parents_prefill_after_another_connection_committed(built):
    path, _, _ = built
    reader = ClusterLabeledDataset(path, label_type="source")
    reader.prefill_cache(range(N))
    ClusterLabeledDataset(path).update_labels(9, source_label=NEW_SOURCE)
    loader = DataLoader(
        reader, batch_size=N, num_workers=2, collate_fn=collate_with_metadata, multiprocessing_context="fork"
    )
    _, _, labels = next(iter(loader))
    assert np.array_equal(labels[9].numpy(), NEW_SOURCE)


def test_a_store_that_fits_in_the_cache_never_steps_aside(built):
    path, _, _ = built
    ds = ClusterLabeledDataset(path, cache_size=N)
    ds._cache.WINDOW = 16  # decide after every 16 reads (instead of 2,048) to keep the test short
    rng = np.random.default_rng(1)
    for _ in range(200):  # random batches: the first pass is all misses, then everything hits
        ds.__getitems__(rng.integers(0, N, 8).tolist())
    stats = ds.get_cache_stats()
    assert not stats["bypassed"] and stats["size"] == N
    assert stats["misses"] == N  # each row missed once, when the cache filled


def test_clear_cache_starts_measuring_afresh(built):
    path, _, _ = built
    ds = ClusterLabeledDataset(path, cache_size=2)
    ds._cache.WINDOW = 8
    for i in range(40):  # a store 20 times the cache, read in order: no hits
        ds[i]
    assert ds.get_cache_stats()["bypassed"]
    ds.clear_cache()
    assert not ds.get_cache_stats()["bypassed"]
    ds[3], ds[3]
    assert ds.get_cache_stats()["hits"] == 1
