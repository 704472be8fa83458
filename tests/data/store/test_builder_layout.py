"""Stores in the layout RAG_supporters' DomainAssessmentDatasetBuilder writes, opened by ClusterLabeledDataset.

The builder (RAG_supporters/dataset/domain_assessment_dataset_builder.py with
jasper/sqlite_storage.py) writes: ``samples`` with an AUTOINCREMENT id and labels
as JSON text, ``embeddings_meta`` with the ``.npy`` paths (relative to the
builder's working directory), and ``dataset_info`` with JSON-encoded values and
no ``dataset_size``. ``_write_like_the_builder`` reproduces that layout with
plain sqlite3 and numpy, written from the schema, not from mixweave.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mixweave import ClusterLabeledDataset

N, D, C = 30, 8, 4

SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    sample_id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_type TEXT NOT NULL,
    text TEXT NOT NULL,
    chroma_id TEXT,
    suggestions TEXT,
    source_label TEXT NOT NULL,
    steering_label TEXT NOT NULL,
    combined_label TEXT NOT NULL,
    embedding_idx INTEGER NOT NULL,
    steering_mode TEXT,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX IF NOT EXISTS idx_sample_type ON samples(sample_type);
CREATE TABLE IF NOT EXISTS embeddings_meta (
    embedding_type TEXT PRIMARY KEY,
    file_path TEXT NOT NULL,
    shape TEXT NOT NULL,
    dtype TEXT NOT NULL,
    checksum TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dataset_info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _data(seed=0):
    rng = np.random.default_rng(seed)
    source = rng.dirichlet(np.ones(C), size=N).astype(np.float32)
    steering = np.eye(C, dtype=np.float32)[rng.integers(0, C, N)]
    return {
        "base": rng.normal(size=(N, D)).astype(np.float32),
        "steering": rng.normal(size=(N, D)).astype(np.float32),
        "source": source,
        "steering_label": steering,
        "combined": (0.5 * source + 0.5 * steering).astype(np.float32),
    }


def _write_like_the_builder(workdir: Path, output: str, data: dict) -> Path:
    """Write a store as the builder does, from ``workdir`` into the relative folder ``output``."""
    old = os.getcwd()
    os.chdir(workdir)
    try:
        out = Path(output)
        out.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(str(out / "dataset.db"))
        con.executescript(SCHEMA)
        for kind in ("base", "steering"):
            file_path = out / f"{kind}_embeddings.npy"
            np.save(file_path, data[kind])
            digest = hashlib.sha256(file_path.read_bytes()).hexdigest()
            con.execute(
                "INSERT OR REPLACE INTO embeddings_meta VALUES (?, ?, ?, ?, ?)",
                (kind, str(file_path), json.dumps(list(data[kind].shape)), str(data[kind].dtype), digest),
            )
        for i in range(N):
            con.execute(
                "INSERT INTO samples (sample_type, text, chroma_id, suggestions, source_label, steering_label, "
                "combined_label, embedding_idx, steering_mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    "source" if i % 2 else "question",
                    f"text {i}",
                    None if i % 3 == 0 else f"chroma-{i}",
                    json.dumps(["a", "b"]) if i % 4 == 0 else None,
                    json.dumps(data["source"][i].tolist()),
                    json.dumps(data["steering_label"][i].tolist()),
                    json.dumps(data["combined"][i].tolist()),
                    i,
                    None if i % 5 == 0 else "zero",
                ),
            )
        info = {
            "n_clusters": C,
            "embedding_dim": D,
            "clustering_json_path": "clusters.json",
            "label_normalizer": "SoftmaxNormalizer",
            "combined_label_weight": 0.5,
        }
        con.executemany(
            "INSERT OR REPLACE INTO dataset_info VALUES (?, ?)", [(k, json.dumps(v)) for k, v in info.items()]
        )
        con.commit()
        con.close()
    finally:
        os.chdir(old)
    return workdir / output


@pytest.fixture
def store(tmp_path):
    data = _data()
    return _write_like_the_builder(tmp_path, "out/store", data), data


def test_opens_with_json_labels_meta_paths_and_no_dataset_size(store):
    path, data = store
    assert Path.cwd() != path.parents[1]  # the relative file_path does not resolve from here
    for label_type, key in (("source", "source"), ("steering", "steering_label"), ("combined", "combined")):
        with ClusterLabeledDataset(path, label_type=label_type) as ds:
            assert len(ds) == N and ds.label_encoding == "json" and ds.n_clusters == C
            for i in (0, 7, N - 1):
                base, steering, label = ds[i]
                np.testing.assert_array_equal(base.numpy(), data["base"][i])
                np.testing.assert_array_equal(steering.numpy(), data["steering"][i])
                np.testing.assert_allclose(label.numpy(), data[key][i], rtol=1e-6)
            batch = ds.__getitems__([5, 2, 5])
            np.testing.assert_allclose(batch[2][2].numpy(), data[key][5], rtol=1e-6)
    with ClusterLabeledDataset(path, return_metadata=True) as ds:
        *_, meta = ds[3]
        assert meta["sample_id"] == 4 and meta["chroma_id"] is None and meta["text"] == "text 3"
        assert meta["sample_type"] == "source"


def test_reads_through_dataloader_workers(store):
    path, data = store
    ds = ClusterLabeledDataset(path, label_type="source")
    bases, labels = [], []
    for base, _steering, label in DataLoader(ds, batch_size=7, num_workers=2):
        bases.append(base)
        labels.append(label)
    torch.testing.assert_close(torch.cat(bases), torch.from_numpy(data["base"]))
    torch.testing.assert_close(torch.cat(labels), torch.from_numpy(data["source"]))


def test_label_updates_are_written_as_json_the_builder_can_read(store):
    path, _ = store
    with ClusterLabeledDataset(path, label_type="combined") as ds:
        ds.update_labels(4, combined_label=[0.0, 1.0, 0.0, 0.0])
        np.testing.assert_array_equal(ds[3][2].numpy(), [0.0, 1.0, 0.0, 0.0])
    text = sqlite3.connect(path / "dataset.db").execute("SELECT combined_label FROM samples WHERE sample_id = 4")
    assert json.loads(text.fetchone()[0]) == [0.0, 1.0, 0.0, 0.0]  # the builder's own reader parses it


def test_close_and_context_manager(store):
    path, _ = store
    ds = ClusterLabeledDataset(path)
    ds[0]
    ds.close()
    ds.close()  # idempotent
    assert ds.closed
    with pytest.raises(ValueError, match="I/O on a closed ClusterLabeledDataset"):
        ds[0]
    with ClusterLabeledDataset(path) as inner:
        inner[1]
    assert inner.closed


def _edit(path: Path, sql: str, *args) -> None:
    con = sqlite3.connect(path / "dataset.db")
    con.execute(sql, args)
    con.commit()
    con.close()


def test_layouts_it_cannot_read_name_what_is_missing(tmp_path):
    data = _data()
    no_steering = _write_like_the_builder(tmp_path, "a", data)
    _edit(no_steering, "DELETE FROM embeddings_meta WHERE embedding_type = 'steering'")
    with pytest.raises(
        ValueError, match=r"embeddings_meta has no row for embedding_type 'steering' \(rows: \['base'\]\)"
    ):
        ClusterLabeledDataset(no_steering)
    no_clusters = _write_like_the_builder(tmp_path, "b", data)
    _edit(no_clusters, "DELETE FROM dataset_info WHERE key = 'n_clusters'")
    with pytest.raises(ValueError, match=r"table dataset_info has no 'n_clusters'"):
        ClusterLabeledDataset(no_clusters)
    bad_json = _write_like_the_builder(tmp_path, "c", data)
    _edit(bad_json, "UPDATE samples SET source_label = '[0.1, oops]' WHERE sample_id = 7")
    ds = ClusterLabeledDataset(bad_json, label_type="source")
    with pytest.raises(ValueError, match=r"source_label of sample_id 7 is not a JSON list of numbers: '\[0.1, oops\]'"):
        ds.__getitems__([5, 6, 7])
    short = _write_like_the_builder(tmp_path, "d", data)
    _edit(short, "UPDATE samples SET steering_label = '[1.0, 0.0]' WHERE sample_id = 2")
    ds = ClusterLabeledDataset(short, label_type="steering")
    with pytest.raises(ValueError, match=r"steering_label of sample_id 2 has 2 values but n_clusters=4"):
        ds[1]
    gone = _write_like_the_builder(tmp_path, "e", data)
    (gone / "base_embeddings.npy").unlink()
    with pytest.raises(FileNotFoundError, match=r"^Embedding file not found: .*base_embeddings\.npy"):
        ClusterLabeledDataset(gone)


def test_embedding_files_elsewhere_are_found_by_their_recorded_absolute_path(tmp_path):
    data = _data(seed=1)
    path = _write_like_the_builder(tmp_path, "store", data)
    elsewhere = tmp_path / "vectors"
    elsewhere.mkdir()
    for kind in ("base", "steering"):
        target = elsewhere / f"{kind}_embeddings.npy"
        (path / f"{kind}_embeddings.npy").rename(target)
        _edit(path, "UPDATE embeddings_meta SET file_path = ? WHERE embedding_type = ?", str(target), kind)
    with ClusterLabeledDataset(path) as ds:
        np.testing.assert_array_equal(ds[4][1].numpy(), data["steering"][4])


def test_samples_deleted_after_the_build_still_open_by_embedding_idx(tmp_path):
    data = _data(seed=2)
    path = _write_like_the_builder(tmp_path, "store", data)
    _edit(path, "DELETE FROM samples WHERE sample_id IN (3, 11, 30)")  # rows 2, 10, 29 of the embeddings
    kept = [i for i in range(N) if i not in (2, 10, 29)]
    with ClusterLabeledDataset(path, label_type="source") as ds:
        assert len(ds) == N - 3
        for pos in (0, 2, 9, len(ds) - 1):
            base, _steering, label = ds[pos]
            np.testing.assert_array_equal(base.numpy(), data["base"][kept[pos]])
            np.testing.assert_allclose(label.numpy(), data["source"][kept[pos]], rtol=1e-6)
        batch = ds.__getitems__([len(ds) - 1, 2])
        np.testing.assert_array_equal(batch[0][1].numpy(), data["steering"][kept[-1]])


def test_an_embedding_file_of_another_width_names_the_mismatch(tmp_path):
    data = _data(seed=3)
    path = _write_like_the_builder(tmp_path, "store", data)
    np.save(path / "steering_embeddings.npy", np.zeros((N, D + 1), dtype=np.float32))
    with pytest.raises(ValueError, match=rf"^steering embeddings dimension mismatch: expected {D}, got {D + 1}"):
        ClusterLabeledDataset(path)
