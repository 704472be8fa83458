"""Declarative pipelines: every source type, mixture and sampler from a config, checked against direct builds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import mixweave
from mixweave.config import ConfigError, load_dataset_configs
from mixweave.core import weights as wm
from mixweave.core.curriculum import CurriculumState
from mixweave.core.draw import largest_remainder
from mixweave.pipeline import from_config
from mixweave.sampling.tasks import DynamicCurriculumSampler, JointSampler, TaskAwareSampler
from tests.checks import check_resume, check_shards, console_script

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
DATA = EXAMPLES / "data"
SHIPPED = [
    EXAMPLES / "mixed_data_example.yaml",
    EXAMPLES / "configs" / "pipeline.yaml",
    EXAMPLES / "configs" / "sessions_parent.yaml",
]


def arrays() -> dict[str, np.ndarray]:
    return {f"{s}_{k}": np.load(DATA / f"{s}_{k}.npy") for s in ("synthetic", "real") for k in ("image", "label")}


def npy_source(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "npy",
        "labels": "label",
        "fields": {"image": str(DATA / f"{name}_image.npy"), "label": str(DATA / f"{name}_label.npy")},
        **extra,
    }


def flat_items(plan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the flat index space holds at ``plan``: images and labels, read straight from the .npy files."""
    a = arrays()
    images = np.concatenate([a["synthetic_image"], a["real_image"]])
    labels = np.concatenate([a["synthetic_label"], a["real_label"]])
    return images[plan], labels[plan]


# -- the document-000 shape -------------------------------------------------------


def test_mixed_data_example_builds_the_documented_mixture_and_loader() -> None:
    p = from_config(EXAMPLES / "mixed_data_example.yaml")
    assert isinstance(p.dataset, mixweave.WeightedConcatDataset)
    assert p.dataset.mode == "exact" and len(p.dataset) == 1000 and p.dataset.seed == 0
    assert list(p.sources) == ["synthetic", "real"]
    plan = p.global_plan(0)
    # exact mode: every prefix is within one item of 80/20
    real = np.cumsum(plan >= 400)
    assert np.abs(real - 0.2 * np.arange(1, 1001)).max() <= 1
    loader = p.train_loader()
    assert loader.batch_size == 4 and loader.num_workers == 2  # from the data: section
    images, labels = zip(*loader, strict=True)
    expect_images, expect_labels = flat_items(plan)
    assert torch.equal(torch.cat(images), torch.from_numpy(expect_images))
    assert torch.equal(torch.cat(labels), torch.from_numpy(expect_labels))


def test_mixed_data_shape_strategies_and_flag(tmp_path: Path) -> None:
    base = yaml.safe_load((EXAMPLES / "mixed_data_example.yaml").read_text())
    base["data"]["datasets"] = [
        {"type": t, "image": str(DATA / f"{t}_image.npy"), "label": str(DATA / f"{t}_label.npy")}
        for t in ("synthetic", "real")
    ]
    for strategy, cls in (("stratified", mixweave.StratifiedConcatDataset), ("uniform", mixweave.UniformConcatDataset)):
        cfg = {"data": {**base["data"], "mixing_strategy": strategy}}
        del cfg["data"]["dataset_weights"]
        assert isinstance(from_config(cfg).dataset, cls)
    off = {"data": {**base["data"], "use_mixed_datasets": False, "samples_per_epoch": None}}
    p = from_config(off)  # plain concatenation, shuffled: every row once
    assert np.array_equal(np.sort(p.global_plan(0)), np.arange(460))
    bad = {"data": {**base["data"], "dataset_weights": [0.8, 0.3]}}
    with pytest.raises(ConfigError, match=r"`data\.dataset_weights`: .*sum to 1"):  # the key as the user wrote it
        from_config(bad)
    typo = {"data": {**base["data"], "batchsize": 3}}
    with pytest.raises(ConfigError, match=r"`data\.batchsize`: unknown key\(s\) \['batchsize'\]"):
        from_config(typo)


def test_original_tutorial_numbered_shape_equals_the_list_shape() -> None:
    # the original tutorial writes `dataset1:`/`dataset2:` mappings with `train_image`/`train_label`
    numbered = {
        "data": {
            "use_mixed_datasets": True,
            "mixing_strategy": "weighted",
            "dataset2": {"train_image": str(DATA / "real_image.npy"), "train_label": str(DATA / "real_label.npy")},
            "dataset1": {
                "train_image": str(DATA / "synthetic_image.npy"),
                "train_label": str(DATA / "synthetic_label.npy"),
            },
            "dataset_weights": [0.8, 0.2],
            "samples_per_epoch": 1000,
        }
    }
    listed = {
        "data": {
            **{k: v for k, v in numbered["data"].items() if not k.startswith("dataset") or k == "dataset_weights"},
            "datasets": [
                {"image": str(DATA / f"{t}_image.npy"), "label": str(DATA / f"{t}_label.npy")}
                for t in ("synthetic", "real")
            ],
        }
    }
    got, want = from_config(numbered), from_config(listed)
    assert list(got.sources) == ["dataset1", "dataset2"]  # by number, not by the order in the file
    assert np.array_equal(got.global_plan(0), want.global_plan(0))
    ds = mixweave.mixture_from_config(numbered)
    assert isinstance(ds, mixweave.WeightedConcatDataset) and len(ds) == 1000
    # errors name the key as written
    bad = {"data": {**numbered["data"], "dataset2": {"train_image": "x.png"}}}
    with pytest.raises(ConfigError, match=r"`data\.dataset2`: `image` must end in one of"):
        from_config(bad)
    both = {"data": {**numbered["data"], "dataset1": {"image": "a.npy", "train_image": "a.npy"}}}
    with pytest.raises(ConfigError, match=r"`data\.dataset1`: give `image` or `train_image`, not both"):
        from_config(both)
    mixed = {"data": {**listed["data"], "dataset3": {"image": "a.npy"}}}
    with pytest.raises(ConfigError, match=r"`data\.dataset3`: give `datasets:` or \['dataset3'\], not both"):
        from_config(mixed)
    missing = {"data": {**numbered["data"], "dataset2": {"train_image": str(DATA / "nope_image.npy")}}}
    with pytest.raises(FileNotFoundError, match=r"^`data\.dataset2\.train_image`: array file not found"):
        from_config(missing)


# -- the pipeline schema ------------------------------------------------------------


def test_shipped_pipeline_schedule_and_class_balance_match_a_hand_computation() -> None:
    p = from_config(EXAMPLES / "configs" / "pipeline.yaml")
    labels = np.concatenate([arrays()["synthetic_label"], arrays()["real_label"]])
    source = np.repeat([0, 1], [400, 60])
    for epoch in (0, 5, 10, 20):
        real_share = 0.1 + 0.4 * min(epoch, 10) / 10  # linear from 0.9/0.1 at 0 to 0.5/0.5 at 10
        probs = p.probabilities(epoch)
        assert probs[source == 1].sum() == pytest.approx(real_share)
        for s, share in ((0, 1 - real_share), (1, real_share)):
            for c in range(10):  # class balancing inside each source: every class present gets share/10
                rows = (source == s) & (labels == c)
                assert probs[rows].sum() == pytest.approx(share / 10)
                assert np.allclose(probs[rows], probs[rows][0])  # uniform within (source, class)
        plan = p.global_plan(epoch)
        counts = np.bincount(source[plan], minlength=2)
        target = largest_remainder(np.array([1 - real_share, real_share]), 1000)
        assert np.abs(counts - target).max() <= 1  # exact mode
    batch = next(iter(p.train_loader(num_workers=0)))
    assert batch[0].shape == (32, 8, 8)


def test_class_balanced_sampler_realised_class_shares_within_tolerance() -> None:
    p = from_config(
        {
            "sources": [npy_source("synthetic"), npy_source("real")],
            "mixture": {"weights": [0.5, 0.5], "samples_per_epoch": 20_000},
            "sampler": {"type": "class_balanced"},
            "seed": 3,
        }
    )
    labels = np.concatenate([arrays()["synthetic_label"], arrays()["real_label"]])
    plan = p.global_plan(0)
    shares = np.bincount(labels[plan], minlength=10) / plan.size
    # each class has probability 0.1; 20k draws: sd = sqrt(.1*.9/20000) = 0.0021, tolerance 5 sd
    assert np.abs(shares - 0.1).max() < 0.0106


def test_array_sources_npz_and_hdf5_with_keys(tmp_path: Path) -> None:
    import h5py

    a = arrays()
    np.savez(tmp_path / "syn.npz", x=a["synthetic_image"], y=a["synthetic_label"])
    with h5py.File(tmp_path / "real.h5", "w") as fh:
        fh["x"] = a["real_image"]
        fh["y"] = a["real_label"]
    cfg = {
        "root": str(tmp_path),
        "sources": [
            {
                "name": "syn",
                "type": "npz",
                "path": "syn.npz",
                "fields": {"image": "x", "label": "y"},
                "labels": "label",
            },
            {
                "name": "real",
                "type": "hdf5",
                "path": "real.h5",
                "fields": {"image": "x", "label": "y"},
                "labels": "label",
            },
        ],
        "mixture": {"weights": {"syn": 0.25, "real": 0.75}, "samples_per_epoch": 64},
    }
    p = from_config(cfg)
    plan = p.global_plan(0)
    images, labels = zip(*p.train_loader(batch_size=16, num_workers=2), strict=True)
    expect_images, expect_labels = flat_items(plan)
    assert torch.equal(torch.cat(images), torch.from_numpy(expect_images))
    assert torch.equal(torch.cat(labels), torch.from_numpy(expect_labels))
    with pytest.raises(ConfigError, match=r"`sources\[0\]\.fields\.label`: .*`key` must name one of the arrays"):
        from_config({**cfg, "sources": [{**cfg["sources"][0], "fields": {"image": "x", "label": "nope"}}]})


def test_csv_image_folder_source(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    rows = ["image,cat,dog,site"]
    hot = rng.random((30, 2)) < [0.7, 0.2]
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(tmp_path / "img" / f"{i}.png")
        rows.append(f"{i}.png,{int(hot[i, 0])},{int(hot[i, 1])},{'high' if i % 3 else 'low'}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    p = from_config(
        {
            "root": str(tmp_path),
            "sources": [
                {
                    "name": "pets",
                    "type": "csv",
                    "csv": "labels.csv",
                    "images": "img",
                    "label_names": ["cat", "dog"],
                    "quality": "site",
                }
            ],
            "sampler": {"type": "class_balanced", "reduce": "max"},
            "mixture": {"samples_per_epoch": 40},
        }
    )
    assert p.probabilities(0) == pytest.approx(wm.normalize(wm.get_sample_weights(hot, reduce="max")))
    image, label, _image_id = p.dataset[3]
    assert image.shape == (3, 6, 6) and torch.equal(label, torch.from_numpy(hot[3].astype(np.float32)))
    report = p.inspect(2)
    assert [c["name"] for c in report["classes"]] == ["cat", "dog"]
    assert [q["name"] for q in report["qualities"]] == ["high", "low"]
    assert report["classes"][1]["size"] == int(hot[:, 1].sum())


def test_cluster_store_source(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 50
    clusters = rng.integers(0, 4, n)
    mixweave.ClusterLabeledDataset.build(
        tmp_path / "store", rng.random((n, 3)), rng.random((n, 3)), np.eye(4)[clusters], np.eye(4)[clusters]
    )
    p = from_config(
        {
            "root": str(tmp_path),
            "sources": [
                {"name": "emb", "type": "cluster_store", "dir": "store", "label_type": "source", "cache_size": 0}
            ],
            "sampler": {"type": "class_balanced"},
            "loader": {"batch_size": 10},
        }
    )
    probs = p.probabilities(0)
    assert np.bincount(clusters, weights=probs) == pytest.approx(np.full(4, 0.25))  # balanced over clusters
    _base, _steering, label = next(iter(p.train_loader()))
    plan = p.global_plan(0)[:10]
    assert torch.equal(label.argmax(dim=1), torch.from_numpy(clusters[plan]))


FACTORY = """
import numpy as np
import torch
from torch.utils.data import TensorDataset


class Toy(TensorDataset):
    def __init__(self, n, tasks):
        x = torch.arange(n, dtype=torch.float32)
        super().__init__(x)
        self.targets = np.full((n, tasks), np.nan)
        self.targets[np.arange(n), np.arange(n) % tasks] = 1.0
        self.targets[: n // 2, 0] = 0.0
        self.quality = np.array(["high", "medium", "low"])[np.arange(n) % 3]


def build(n=12, tasks=3):
    return Toy(n, tasks)


def not_a_dataset():
    return 42
"""


@pytest.fixture
def factory_file(tmp_path: Path) -> Path:
    path = tmp_path / "toy_factory.py"
    path.write_text(FACTORY)
    return path


def python_source(name: str, n: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "python",
        "factory": "toy_factory.py:build",
        "kwargs": {"n": n},
        "tasks": "targets",
        "quality": "quality",
        **extra,
    }


def test_python_factory_by_file_and_by_module(factory_file: Path, monkeypatch: Any) -> None:
    root = str(factory_file.parent)
    p = from_config({"root": root, "sources": [python_source("a", 12)], "mixture": {"samples_per_epoch": 24}})
    assert len(p.sources["a"]) == 12
    (x,) = next(iter(p.train_loader(batch_size=24, num_workers=2)))
    assert torch.equal(x.long(), torch.from_numpy(p.global_plan(0)))
    monkeypatch.syspath_prepend(root)
    p2 = from_config({"sources": [{**python_source("a", 12), "factory": "toy_factory:build"}]})
    assert len(p2.dataset) == 12
    with pytest.raises(ConfigError, match=r"`sources\[0\]\.factory`: the factory returned int, not a map-style"):
        from_config(
            {
                "root": root,
                "sources": [{**python_source("a", 1), "factory": "toy_factory.py:not_a_dataset", "kwargs": {}}],
            }
        )
    with pytest.raises(ConfigError, match=r"`sources\[0\]\.factory`: 'toy_factory\.py' has no callable 'nope'"):
        from_config({"root": root, "sources": [{**python_source("a", 1), "factory": "toy_factory.py:nope"}]})
    with pytest.raises(ConfigError, match=r"`sources\[0\]\.factory`: cannot import 'no_such_module_xyz'"):
        from_config({"sources": [{**python_source("a", 1), "factory": "no_such_module_xyz:f"}]})
    with pytest.raises(ConfigError, match=r"`sources\[0\]\.labels`: the factory's dataset has no attribute 'labelz'"):
        from_config({"root": root, "sources": [python_source("a", 6, labels="labelz")]})


def test_task_curriculum_and_joint_samplers_equal_direct_builds_on_one_source(factory_file: Path) -> None:
    root = str(factory_file.parent)
    ds = from_config({"root": root, "sources": [python_source("a", 12)]}).sources["a"]
    phases = {"warm": {"high": 1.0}, "all": {"high": 0.5, "medium": 0.3, "low": 0.2}}
    curriculum = {"qualities": ["high", "medium", "low"], "phases": phases, "patience": 2}

    def make_state() -> CurriculumState:
        return CurriculumState(["high", "medium", "low"], 2, phases)

    cases = {
        "task_aware": ({"type": "task_aware", "alpha": 0.5}, lambda: TaskAwareSampler(ds.targets, 0.5)),
        "curriculum": (
            {"type": "curriculum", "curriculum": curriculum},
            lambda: DynamicCurriculumSampler(ds.quality, make_state()),
        ),
        "joint": (
            {"type": "joint", "alpha": 1.0, "curriculum": curriculum, "composition_mode": "hierarchical"},
            lambda: JointSampler(ds.targets, ds.quality, make_state(), 1.0, composition_mode="hierarchical"),
        ),
    }
    for kind, (sampler, direct) in cases.items():
        p = from_config({"root": root, "sources": [python_source("a", 12)], "sampler": sampler})
        reference = direct()
        assert p.probabilities(0) == pytest.approx(wm.normalize(reference.weights_at(0))), kind
        if kind != "task_aware":
            assert p.curriculum_state is not None and p.sampler.curriculum_state is p.curriculum_state
            p.curriculum_state.set_phase("all")  # the sampler follows the shared state
            ref_state = reference.curriculum_state
            ref_state.set_phase("all")
            assert p.probabilities(0) == pytest.approx(wm.normalize(reference.weights_at(0))), kind


def test_task_aware_across_two_sources_keeps_source_shares_and_acts_inside(factory_file: Path) -> None:
    root = str(factory_file.parent)
    p = from_config(
        {
            "root": root,
            "sources": [python_source("a", 12), python_source("b", 30)],
            "mixture": {"weights": [0.7, 0.3]},
            "sampler": {"type": "task_aware", "alpha": 1.0},
        }
    )
    targets = np.concatenate([p.sources["a"].targets, p.sources["b"].targets])
    factor = wm.task_weights(targets, 1.0)  # over both sources together, then each source renormalised
    probs = p.probabilities(0)
    for s, (lo, hi, share) in enumerate(((0, 12, 0.7), (12, 42, 0.3))):
        assert probs[lo:hi].sum() == pytest.approx(share), s
        assert probs[lo:hi] == pytest.approx(share * factor[lo:hi] / factor[lo:hi].sum())


def test_sampling_section_translates_to_the_sampler(factory_file: Path) -> None:
    root = str(factory_file.parent)
    sampling = {"task_oversampling": {"enabled": True, "alpha": 0.3}}
    p = from_config({"root": root, "sources": [python_source("a", 12)], "sampling": sampling})
    assert p.config.sampler.type == "task_aware" and p.config.sampler.alpha == 0.3
    with pytest.raises(ConfigError, match=r"`sampling`: give `sampler` or `sampling`, not both"):
        from_config(
            {"root": root, "sources": [python_source("a", 12)], "sampling": sampling, "sampler": {"type": "none"}}
        )


def test_sharding_and_resume_of_a_configured_sampler() -> None:
    cfg = {
        "sources": [npy_source("synthetic"), npy_source("real")],
        "mixture": {"weights": [0.6, 0.4], "samples_per_epoch": 101},
        "sampler": {"type": "class_balanced"},
    }
    check_shards(lambda w, r: from_config(cfg, num_replicas=w, rank=r).sampler, world=3, epoch=2)
    check_resume(lambda: from_config(cfg).sampler, stop_after=37)
    mixture_only = {"sources": cfg["sources"], "mixture": cfg["mixture"]}
    check_shards(lambda w, r: from_config(mixture_only, num_replicas=w, rank=r).sampler, world=2, epoch=1)


def test_omegaconf_dictconfig_input(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(
        {
            "sources": [npy_source("synthetic"), npy_source("real")],
            "seed": 300,
            "mixture": {"weights": [0.5, 0.5], "samples_per_epoch": "${seed}"},
        }
    )
    assert len(from_config(cfg).dataset) == 300  # interpolations resolved
    resolved = OmegaConf.create(
        {
            "sources": [npy_source("synthetic"), npy_source("real")],
            "mixture": {"weights": [0.5, 0.5], "samples_per_epoch": 300},
        }
    )
    assert len(from_config(resolved).dataset) == 300
    path = tmp_path / "c.yaml"
    OmegaConf.save(resolved, path)
    assert np.array_equal(from_config(OmegaConf.load(path)).global_plan(0), from_config(path).global_plan(0))


# -- the seed-004 use case -----------------------------------------------------------


def test_sessions_parent_becomes_one_weighted_mixture() -> None:
    parent = EXAMPLES / "configs" / "sessions_parent.yaml"
    p = from_config(parent)
    assert list(p.sources) == ["synthetic", "real"]
    assert p.dataset.weights.tolist() == [0.25, 0.75]  # relative session weights 1 : 3
    assert [c["cids"] for c in p.session_configs] == [c["cids"] for c in load_dataset_configs(parent)]
    plan = p.global_plan(0)
    assert (plan >= 400).sum() == 300  # exact mode, 400 per epoch
    batch = next(iter(p.train_loader()))
    assert batch[0].shape == (16, 8, 8)


def test_sessions_parent_errors(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    (tmp_path / "p.yaml").write_text("session_dir: s\nsessions: [a, b]\nrequired_keys: []\nmixture: {mode: exact}\n")
    (tmp_path / "s" / "a.yaml").write_text(f"source: {json.dumps(npy_source('real'))}\n")
    (tmp_path / "s" / "b.yaml").write_text("cids: [1]\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: `source`: every session of a pipeline needs a `source:`"):
        from_config(tmp_path / "p.yaml")
    (tmp_path / "s" / "b.yaml").write_text(f"source: {json.dumps(npy_source('real'))}\nmixture: {{mode: random}}\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: `mixture`: pipeline settings .* belong in the parent"):
        from_config(tmp_path / "p.yaml")
    with pytest.raises(ConfigError, match=r"`sessions`: `extends` and `sessions` need a config file"):
        from_config({"session_dir": "s", "sessions": ["a"]})
    # a problem in a session's source names that session's file and its `source:` key
    (tmp_path / "p.yaml").write_text("session_dir: s\nsessions: [a, b]\nrequired_keys: []\n")
    (tmp_path / "s" / "b.yaml").write_text(f"source: {json.dumps(npy_source('real', labels='lbl'))}\n")
    with pytest.raises(ConfigError, match=r"b\.yaml: `source`: `labels` must name one of the fields") as info:
        from_config(tmp_path / "p.yaml")
    assert info.value.key == "source" and info.value.path.endswith("b.yaml")
    missing = {**npy_source("real"), "fields": {"image": "nope.npy"}, "labels": None}
    (tmp_path / "s" / "b.yaml").write_text(f"source: {json.dumps(missing)}\n")
    with pytest.raises(FileNotFoundError, match=r"b\.yaml: `source\.fields\.image`: array file not found"):
        from_config(tmp_path / "p.yaml")


# -- validation errors name the file and key -----------------------------------------


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"sources": [{"type": "parquet", "path": "x"}]}, r"`sources\[0\]`: .*tag 'parquet'.*"),
        ({"sources": [{"type": "npy"}]}, r"`sources\[0\]\.fields`: Field required"),
        ({"sources": [npy_source("real", labels="lbl")]}, r"`sources\[0\]`: `labels` must name one of the fields"),
        ({"sources": [npy_source("real", colour="red")]}, r"`sources\[0\]\.colour`: Extra inputs are not permitted"),
        ({"sources": [npy_source("real"), npy_source("real")]}, r"source names must be distinct.*\['real'\]"),
        (
            {"sources": [npy_source("real"), npy_source("synthetic")], "mixture": {"weights": {"real": 1.0, "x": 0}}},
            r"`mixture\.weights`: must give a weight to every source \['real', 'synthetic'\]; unknown \['x'\], "
            r"missing \['synthetic'\]",
        ),
        ({"sources": [npy_source("real"), npy_source("synthetic")]}, r"`mixture\.weights`: strategy 'weighted' needs"),
        (
            {"sources": [npy_source("real")], "mixture": {"strategy": "stratified"}, "sampler": {"type": "joint"}},
            r"`sampler` needs mixture strategy 'weighted' or 'uniform'",
        ),
        ({"sources": [npy_source("real")], "sampler": {"type": "task_aware"}}, r"`sampler`: type 'task_aware' needs"),
        (
            {"sources": [npy_source("real")], "sampler": {"type": "curriculum"}},
            r"`sampler\.type`: sampler type 'curriculum' needs `quality` on every source; missing on \['sources\[0\] ",
        ),
        ({"sources": [npy_source("real")], "loader": {"batch_size": 0}}, r"`loader\.batch_size`: .*greater than or"),
        (
            {"sources": [npy_source("real")], "mixture": {"samples_per_epoch": 10}, "epochs": 3},
            r"unknown top-level key\(s\) \['epochs'\]",
        ),
        (
            {"sources": [{**npy_source("real"), "fields": {"image": "missing.npy"}, "labels": None}]},
            r"`sources\[0\]\.fields\.image`: array file not found",
        ),
    ],
)
def test_config_errors_name_the_key(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises((ConfigError, FileNotFoundError), match=match):
        from_config(cfg)


MIXED = {"type": "real", "image": str(DATA / "real_image.npy")}


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (
            {"sources": [npy_source("real")], "mixture": {"weights": [1.0], "schedule": {0: [1.0]}}},
            r"`mixture`: give `weights` or `schedule`, not both",
        ),
        (
            {"sources": [npy_source("real")], "mixture": {"strategy": "uniform", "weights": [1.0]}},
            r"`mixture`: `weights`/`schedule` apply to strategy 'weighted', not 'uniform'",
        ),
        ({"sources": [npy_source("real", path="x.npz")]}, r"`sources\[0\]`: `path` is for npz/hdf5 files"),
        (
            {"sources": [npy_source("real", weight=1.0), npy_source("synthetic")]},
            r"`sources`: sources \['synthetic'\] have no `weight` while others do",
        ),
        (
            {"sources": [npy_source("real"), npy_source("synthetic")], "mixture": {"weights": [1.0]}},
            r"`mixture\.weights`: must have one weight per source \(2: \['real', 'synthetic'\]\), got 1",
        ),
        (
            {"sources": [npy_source("real"), npy_source("synthetic")], "mixture": {"schedule": {3: {"real": 1.0}}}},
            r"`mixture\.schedule\.3`: must give a weight to every source",
        ),
        (
            {"sources": [{"type": "python", "factory": "missing_file.py:build"}]},
            r"`sources\[0\]\.factory`: factory file not found: .*missing_file\.py",
        ),
        (
            {"sources": [{"type": "python", "factory": "not a factory"}]},
            r"`sources\[0\]\.factory`: String should match",
        ),
        ({"data": {"datasets": "x"}}, r"`data\.datasets`: must be a non-empty list of sources"),
        ({"data": {"datasets": ["x.npy"]}}, r"`data\.datasets\[0\]`: must be a mapping with an `image` path"),
        (
            {"data": {"datasets": [{**MIXED, "mask": "m.npy"}]}},
            r"`data\.datasets\[0\]`: unknown key\(s\) \['mask'\]; a dataset has `type`, `image` \(or `train_image`\)",
        ),
        ({"data": {"datasets": [{**MIXED, "image": "a.png"}]}}, r"`data\.datasets\[0\]`: `image` must end in one of"),
        ({"data": {"datasets": [MIXED]}}, r"`data\.dataset_weights`: is required with mixing_strategy 'weighted'"),
        ({"extends": "base.yaml", "sources": []}, r"`extends`: `extends` and `sessions` need a config file"),
    ],
)
def test_more_config_errors_name_the_key(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises((ConfigError, FileNotFoundError), match=match):
        from_config(cfg)


def test_errors_from_a_file_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"sources": [npy_source("real")], "mixture": {"mode": "sometimes"}}))
    with pytest.raises(ConfigError, match=r"bad\.yaml: `mixture\.mode`: Input should be 'random' or 'exact'"):
        from_config(path)
    built = tmp_path / "weights.yaml"  # an error found while building, after validation: file and key both kept
    built.write_text(
        yaml.safe_dump(
            {"sources": [npy_source("real"), npy_source("synthetic")], "mixture": {"weights": {"real": 1.0}}}
        )
    )
    with pytest.raises(
        ConfigError, match=r"weights\.yaml: `mixture\.weights`: must give a weight to every source"
    ) as info:
        from_config(built)
    assert (info.value.path, info.value.key) == (str(built), "mixture.weights")
    with pytest.raises(TypeError, match=r"`config` must be a path, a mapping or an OmegaConf DictConfig, got int"):
        from_config(3)


# -- inspect ----------------------------------------------------------------------


def test_inspect_report_matches_a_direct_count() -> None:
    p = from_config(EXAMPLES / "configs" / "pipeline.yaml")
    report = p.inspect(4)
    plans = [p.global_plan(e) for e in range(4)]
    drawn = np.concatenate(plans)
    source = np.repeat([0, 1], [400, 60])
    labels = np.concatenate([arrays()["synthetic_label"], arrays()["real_label"]])
    for s, row in enumerate(report["sources"]):
        mine = drawn[source[drawn] == s]
        assert row["realised"] == pytest.approx(mine.size / drawn.size)
        assert row["unique"] == np.unique(mine).size and row["repeats"] == mine.size - np.unique(mine).size
        assert row["requested"] == pytest.approx(np.mean([p.probabilities(e)[source == s].sum() for e in range(4)]))
    for c, row in enumerate(report["classes"]):
        assert row["realised"] == pytest.approx(np.mean(labels[drawn] == c))
    assert report["num_samples"] == 1000 and report["epochs"] == 4
    assert report["weight_stats"] == pytest.approx(dict(wm.weight_stats(p.probabilities(0))))
    assert report["per_epoch"][3]["realised"] == pytest.approx(np.bincount(source[plans[3]]) / 1000)


def _rounded(value: Any) -> Any:
    """JSON values with floats to 12 significant digits, written independently of the CLI's helper."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_rounded(v) for v in value]
    return value


@pytest.mark.parametrize("config", SHIPPED, ids=lambda p: p.name)
def test_inspect_cli_on_shipped_configs(config: Path, tmp_path: Path) -> None:
    png = tmp_path / "shares.png"
    out = subprocess.run(
        [*console_script(), "inspect", str(config), "--epochs", "3", "--json", "--plot", str(png)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    result = json.loads(out.stdout)
    assert {"sources", "epochs", "num_samples", "weight_stats"} <= set(result)
    assert set(result["sources"][0]) >= {"name", "requested", "realised", "unique", "size"}
    p = from_config(config)  # the same numbers as the library's own report (the CLI adds no logic)
    assert result == _rounded(p.inspect(3))  # to the 12 significant digits the CLI prints
    assert sum(s["realised"] for s in result["sources"]) == pytest.approx(1.0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    table = subprocess.run([*console_script(), "inspect", str(config)], capture_output=True, text=True, check=True)
    assert "requested vs realised" in table.stdout and result["sources"][0]["name"] in table.stdout


def test_inspect_cli_errors(tmp_path: Path) -> None:
    missing = subprocess.run(
        [*console_script(), "inspect", str(tmp_path / "none.yaml")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "config file not found" in missing.stderr
    (tmp_path / "bad.yaml").write_text("sources: [{type: npy, fields: {}}]\n")
    bad = subprocess.run([*console_script(), "inspect", str(tmp_path / "bad.yaml")], capture_output=True, text=True)
    assert bad.returncode == 2 and "bad.yaml: `sources[0].fields`" in bad.stderr
    epochs = subprocess.run(
        [*console_script(), "inspect", str(SHIPPED[0]), "--epochs", "0"], capture_output=True, text=True
    )
    assert epochs.returncode == 2 and "--epochs must be >= 1" in epochs.stderr


def test_config_show_cli_prints_the_merged_sessions() -> None:
    parent = EXAMPLES / "configs" / "sessions_parent.yaml"
    out = subprocess.run([*console_script(), "config", "show", str(parent)], capture_output=True, text=True, check=True)
    assert list(yaml.safe_load_all(out.stdout)) == load_dataset_configs(parent)
    one = subprocess.run(
        [sys.executable, "-m", "mixweave.cli", "config", "show", str(parent), "--session", "real"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert [c["session"] for c in yaml.safe_load_all(one.stdout)] == ["real"]
    bad = subprocess.run(
        [*console_script(), "config", "show", str(parent), "--session", "nope"], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "--session ['nope'] not in" in bad.stderr


def test_empty_source_is_an_error_naming_it(tmp_path: Path) -> None:
    np.save(tmp_path / "empty.npy", np.zeros((0, 3), dtype=np.float32))
    cfg = {"root": str(tmp_path), "sources": [{"name": "void", "type": "npy", "fields": {"x": "empty.npy"}}]}
    with pytest.raises(ConfigError, match=r"`sources`: \['sources\[0\] \(void\)'\] hold no rows"):
        from_config(cfg)


@pytest.mark.parametrize("sampler", ["none", "class_balanced"])
def test_weights_and_schedules_that_do_not_sum_to_1_name_the_file_and_key(tmp_path: Path, sampler: str) -> None:
    sources = [npy_source("real"), npy_source("synthetic")]
    for mixture, key in (
        ({"weights": {"real": 0.7, "synthetic": 0.4}}, r"mixture\.weights"),
        ({"schedule": {0: [0.5, 0.5], 3: [0.8, 0.3]}}, r"mixture\.schedule\.3"),
        ({"schedule": {0: {"real": 0.6, "synthetic": 0.6}}}, r"mixture\.schedule\.0"),
    ):
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump({"sources": sources, "mixture": mixture, "sampler": {"type": sampler}}))
        with pytest.raises(ConfigError, match=rf"p\.yaml: `{key}`: `weights` must sum to 1 .* summing to 1\.[12]"):
            from_config(path)


def test_exact_mode_with_a_curriculum_gives_exact_quality_shares_inside_exact_source_shares(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name, n in (("a", 300), ("b", 200)):
        np.save(tmp_path / f"{name}_x.npy", rng.random((n, 2)).astype(np.float32))
        np.save(tmp_path / f"{name}_q.npy", rng.choice(["high", "medium", "low"], n))
    sources = [
        {"name": s, "type": "npy", "fields": {"x": f"{s}_x.npy", "q": f"{s}_q.npy"}, "quality": "q"} for s in "ab"
    ]
    config = {
        "sources": sources,
        "mixture": {"weights": [0.6, 0.4], "samples_per_epoch": 1000},
        "sampler": {"type": "curriculum", "mode": "exact"},
        "root": str(tmp_path),
    }
    p = from_config(config)
    plan = p.global_plan(0)
    quality = np.concatenate([np.load(tmp_path / f"{s}_q.npy") for s in "ab"])[plan]
    source = (plan >= 300).astype(int)
    warmup = CurriculumState().sampling_probs()  # phase 0: high .9, medium .1, low 0
    for s, share in ((0, 0.6), (1, 0.4)):
        assert int((source == s).sum()) == round(1000 * share)  # source shares exact
        mine = quality[source == s]
        for q, prob in warmup.items():
            assert abs(int((mine == q).sum()) - prob * share * 1000) <= 1 + 1e-9  # quality shares exact inside


def test_mixture_mode_exact_holds_with_a_sampler_too() -> None:
    sources = [npy_source("real"), npy_source("synthetic")]
    config = {
        "sources": sources,
        "mixture": {"weights": [0.25, 0.75], "mode": "exact", "samples_per_epoch": 400},
        "sampler": {"type": "class_balanced"},
    }
    plan = from_config(config).global_plan(0)
    assert int((plan < 60).sum()) == 100  # exactly 25% from the first source (60 rows), not about 25%


@pytest.mark.timeout(60)  # 1.3 s here; the check was quadratic (40k sources 15 s, 200k over 300 s)
def test_two_hundred_thousand_sources_validate_in_linear_time() -> None:
    from mixweave.pipeline import load_pipeline_config

    source = {"type": "npy", "fields": {"y": "examples/data/real_label.npy"}, "weight": 1.0}
    sources = [{**source, "name": f"s{i}"} for i in range(200_000)]
    assert len(load_pipeline_config({"sources": sources}).config.sources) == 200_000
    sources[123_456]["name"] = "s7"
    with pytest.raises(ConfigError, match=r"source names must be distinct, got duplicates \['s7'\]"):
        load_pipeline_config({"sources": sources})
