import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mixweave import (
    ArrayDataset,
    ConfigError,
    StratifiedConcatDataset,
    UniformConcatDataset,
    WeightedConcatDataset,
    mixture_from_config,
)
from mixweave.data.sources import load_array

ROOT = Path(__file__).resolve().parents[2]


def test_array_dataset_from_npy_memmap_and_npz(tmp_path):
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "y.npz", labels=y)
    ds = ArrayDataset(tmp_path / "x.npy", np.load(tmp_path / "y.npz")["labels"])
    assert isinstance(load_array(tmp_path / "x.npy"), np.memmap)
    assert len(ds) == 10
    assert ds[3][0].tolist() == [6.0, 7.0] and ds[3][1].item() == 3
    batch = ds.__getitems__([4, 1])
    assert [b[1].item() for b in batch] == [4, 1]
    assert torch.equal(batch[0][0], ds[4][0])


def test_array_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"array file not found: .*missing.npy"):
        load_array(tmp_path / "missing.npy")
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(ValueError, match=r"`path` must end in one of .npy, .npz, .h5, .hdf5, got 'a.txt'"):
        load_array(tmp_path / "a.txt")
    np.savez(tmp_path / "two.npz", a=np.ones(2), b=np.ones(2))
    with pytest.raises(ValueError, match=r"`key` must name one of the arrays \['a', 'b'\], got None"):
        load_array(tmp_path / "two.npz")
    with pytest.raises(ValueError, match=r"`arrays` must all have the same length, got lengths \[2, 3\]"):
        ArrayDataset(np.ones(2), np.ones(3))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"obj.npy: holds Python objects, .* allow_pickle=False"):
        load_array(tmp_path / "obj.npy")


def _example_config():
    return yaml.safe_load((ROOT / "examples" / "mixed_data_example.yaml").read_text())


def test_shipped_example_yaml_builds_an_exact_80_20_mixture():
    mixed = mixture_from_config(_example_config(), base_dir=ROOT / "examples")
    assert isinstance(mixed, WeightedConcatDataset) and len(mixed) == 1000
    assert mixed.report()["realised"] == pytest.approx([0.8, 0.2])
    image, label = mixed[0]
    assert image.shape == (8, 8) and label.dtype == torch.int64


@pytest.mark.parametrize(
    ("strategy", "cls"), [("stratified", StratifiedConcatDataset), ("uniform", UniformConcatDataset)]
)
def test_other_strategies(strategy, cls):
    config = _example_config()
    config["data"]["mixing_strategy"] = strategy
    assert isinstance(mixture_from_config(config, base_dir=ROOT / "examples"), cls)


@pytest.mark.parametrize(
    ("edit", "error", "match"),
    [
        (
            lambda d: d.update(mixing_strategy="greedy"),
            ConfigError,
            r"`data.mixing_strategy`: Input should be 'weighted', 'stratified', 'uniform' or 'adaptive' "
            r"\(got 'greedy'\)",
        ),
        (
            lambda d: d.update(mixing_mode="exactly"),
            ConfigError,
            r"`data.mixing_mode`: Input should be 'random' or 'exact' \(got 'exactly'\)",
        ),
        (
            lambda d: d.pop("dataset_weights"),
            ConfigError,
            r"`data.dataset_weights`: is required with mixing_strategy 'weighted'",
        ),
        (
            lambda d: d.update(dataset_weights=[0.7, 0.2]),
            ConfigError,
            r"`data.dataset_weights`: `weights` must sum to 1 \(within 1e-06\), got \[0.7, 0.2\] summing to 0.9",
        ),
        (
            lambda d: d.update(dataset_weights=[0.5, 0.25, 0.25]),
            ConfigError,
            r"`data.dataset_weights`: must have one weight per source \(2: \['synthetic', 'real'\]\), got 3",
        ),
        (
            lambda d: d["datasets"][1].update(image="nope.npy"),
            FileNotFoundError,
            r"`data.datasets\[1\].image`: array file not found",
        ),
        (
            lambda d: d["datasets"][0].pop("image"),
            ConfigError,
            r"`data.datasets\[0\]`: must be a mapping with an `image` path",
        ),
        (lambda d: d.update(datasets=[]), ConfigError, r"`data.datasets`: must be a non-empty list of sources"),
        (lambda d: d.update(samples_per_epoch=0), ConfigError, r"`data.samples_per_epoch`: Input should be greater"),
    ],
    ids=[
        "strategy",
        "mode",
        "no-weights",
        "weights-sum",
        "weights-count",
        "missing-file",
        "no-image",
        "no-datasets",
        "length",
    ],
)
def test_config_errors_name_the_key_as_written(edit, error, match):
    config = _example_config()
    edit(config["data"])
    with pytest.raises(error, match=match):
        mixture_from_config(config, base_dir=ROOT / "examples")


@pytest.mark.slow
def test_example_training_script_runs():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_mixed.py"), "--epochs", "2"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "0.800/0.200" in lines[0]


def test_string_arrays_come_back_as_str_one_by_one_and_in_batches(tmp_path):
    np.save(tmp_path / "names.npy", np.array(["high", "low", "medium", "low"]))  # a '<U6' array, no pickle
    ds = ArrayDataset(np.arange(4.0), tmp_path / "names.npy")
    assert ds[2] == (torch.tensor(2.0, dtype=torch.float64), "medium")
    batch = ds.__getitems__([3, 0])
    assert [name for _, name in batch] == ["low", "high"] and [float(x) for x, _ in batch] == [3.0, 0.0]
    x, names = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert list(names) == ["high", "low", "medium", "low"] and x.tolist() == [0.0, 1.0, 2.0, 3.0]
