"""Hugging Face ``datasets.Dataset`` as a source: in Python mixtures and as ``type: huggingface`` in pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mixweave import WeightedConcatDataset
from mixweave.config import ConfigError
from mixweave.pipeline import from_config

datasets = pytest.importorskip("datasets", reason="the `huggingface` extra (installed by `make test`)")

N, C = 120, 3


def _table(seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(C), [80, 30, 10])  # imbalanced 8:3:1
    return {
        "x": rng.random((N, 4)).astype(np.float32).tolist(),
        "label": labels.tolist(),
        "quality": rng.integers(0, 2, N).tolist(),
        "uid": [f"row{i}" for i in range(N)],
    }


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    datasets.Dataset.from_dict(_table()).save_to_disk(str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_a_dataset_is_a_source_of_a_python_mixture_read_in_batches(saved: Path, monkeypatch: Any) -> None:
    hf = datasets.load_from_disk(str(saved)).select_columns(["x", "label"]).with_format("torch")
    other = TensorDataset(torch.zeros(40, 4), torch.full((40,), 9))
    mixed = WeightedConcatDataset([hf, other], [0.5, 0.5], length=60, seed=0, mode="exact")
    calls: list[int] = []
    original = type(hf).__getitems__

    def counting(self: Any, keys: list[int]) -> Any:
        calls.append(len(keys))
        return original(self, keys)

    monkeypatch.setattr(type(hf), "__getitems__", counting)
    plan = mixed.plan(0)
    items = mixed.__getitems__(list(range(20)))
    assert calls == [int((plan.sources[:20] == 0).sum())]  # one batched read for all of the batch's HF rows
    for k, item in enumerate(items):  # what each position holds, read one at a time
        source, index = int(plan.sources[k]), int(plan.indices[k])
        if source == 0:
            assert torch.equal(item["x"], hf[index]["x"]) and int(item["label"]) == int(hf[index]["label"])
        else:
            assert int(item[1]) == 9
    monkeypatch.undo()
    only_hf = WeightedConcatDataset([hf], [1.0], length=32, seed=0)
    batch = next(iter(DataLoader(only_hf, batch_size=8, sampler=only_hf.sampler(), num_workers=2)))
    assert batch["x"].shape == (8, 4) and batch["label"].dtype == torch.int64


def test_a_saved_dataset_in_a_pipeline_is_class_balanced_by_its_label_column(saved: Path, tmp_path: Path) -> None:
    p = from_config(
        {
            "root": str(tmp_path),
            "sources": [
                {
                    "name": "hf",
                    "type": "huggingface",
                    "path": "hf",
                    "columns": ["x", "label", "quality"],
                    "format": "torch",
                }
                | {"labels": "label", "quality": "quality"}
            ],
            "sampler": {"type": "class_balanced"},
            "loader": {"batch_size": 16, "num_workers": 2},
        }
    )
    labels = np.asarray(_table()["label"])
    assert np.bincount(labels, weights=p.probabilities(0)) == pytest.approx(np.full(C, 1 / C))
    got = torch.cat([batch["label"] for batch in p.train_loader()])
    plan = p.global_plan(0)
    assert torch.equal(got, torch.from_numpy(labels[plan[: got.numel()]]))  # the loader serves the plan's rows
    # 120 draws at 1/3 each: binomial sd ~0.043; tolerance 0.15 (3.5 sd) against the 2/3 of plain sampling
    assert abs(float((got == 0).float().mean()) - 1 / 3) < 0.15


def test_a_packaged_builder_on_local_parquet_files(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_dict(_table(seed=1))
    ds.select(range(60)).to_parquet(str(tmp_path / "a.parquet"))
    ds.select(range(60, N)).to_parquet(str(tmp_path / "b.parquet"))
    p = from_config(
        {
            "root": str(tmp_path),
            "sources": [
                {
                    "name": "pq",
                    "type": "huggingface",
                    "builder": "parquet",
                    "data_files": ["a.parquet", "b.parquet"],
                    "labels": "label",
                    "format": "numpy",
                }
            ],
            "loader": {"batch_size": 10},
        }
    )
    assert len(p.dataset) == N
    first = next(iter(p.train_loader()))
    plan = p.global_plan(0)[:10]
    assert first["uid"] == [f"row{i}" for i in plan]


def test_a_dataset_dict_needs_its_split_named(tmp_path: Path) -> None:
    whole = datasets.Dataset.from_dict(_table())
    datasets.DatasetDict({"train": whole.select(range(100)), "test": whole.select(range(100, N))}).save_to_disk(
        str(tmp_path / "dd")
    )
    base = {"root": str(tmp_path), "loader": {"batch_size": 4}}
    with pytest.raises(ConfigError, match=r"sources\[0\].*holds splits \['train', 'test'\]: name one with `split`"):
        from_config({**base, "sources": [{"type": "huggingface", "path": "dd"}]})
    with pytest.raises(ConfigError, match=r"sources\[0\]\.split.*no split 'val'"):
        from_config({**base, "sources": [{"type": "huggingface", "path": "dd", "split": "val"}]})
    p = from_config({**base, "sources": [{"type": "huggingface", "path": "dd", "split": "test"}]})
    assert len(p.dataset) == N - 100


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ({"path": "hf", "builder": "parquet", "data_files": "a.parquet"}, "exactly one of `path`"),
        ({}, "exactly one of `path`"),
        ({"builder": "parquet"}, "`builder: parquet` needs `data_files`"),
        ({"path": "hf", "columns": ["x"], "labels": "label"}, r"`labels` must name one of `columns` \['x'\]"),
        ({"path": "hf", "columns": ["x", "nope"]}, r"no column\(s\) \['nope'\]"),
        ({"path": "hf", "labels": "nope"}, r"sources\[0\]\.labels.*no column 'nope'"),
        ({"path": "hf", "format": "pandas"}, "format"),
    ],
    ids=["both", "neither", "no-files", "role-not-kept", "missing-column", "missing-role", "format"],
)
def test_bad_huggingface_sources_are_config_errors(saved: Path, tmp_path: Path, source: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_config({"root": str(tmp_path), "sources": [{"type": "huggingface", **source}]})


def test_a_missing_folder_is_a_file_not_found_error_that_says_hub_names_are_not_fetched(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^`sources\[0\]\.path`: no dataset saved at .*imdb \(a folder"):
        from_config({"root": str(tmp_path), "sources": [{"type": "huggingface", "path": "imdb"}]})
