"""The top-level package: its public names, and that importing it stays cheap."""

import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mixweave

ROOT = Path(__file__).resolve().parents[1]

# Every name `from mixweave import ...` gave before the layered layout (0.1.0 at 081303d): it must keep working.
NAMES_BEFORE_LAYERS = [
    "ArrayDataset",
    "ClusterLabeledDataset",
    "ClusterStoreWriter",
    "CombinedLoss",
    "ConfigError",
    "CurriculumConfig",
    "CurriculumState",
    "DrawEngine",
    "DynamicCurriculumSampler",
    "FocalLoss",
    "JointSampler",
    "JointSamplingConfig",
    "LabelTable",
    "MetricsTracker",
    "MixPlan",
    "MixedDatasetSampler",
    "MultiLabelImageDataset",
    "MultilabelStratifiedKFold",
    "Pipeline",
    "PipelineConfig",
    "PlanSampler",
    "SampleBatch",
    "StratifiedConcatDataset",
    "TaskAwareSampler",
    "TaskOversamplingConfig",
    "UniformConcatDataset",
    "WeightSchedule",
    "WeightedBCEWithLogitsLoss",
    "WeightedConcatDataset",
    "WeightedSampler",
    "__version__",
    "as_multihot",
    "build_sampler",
    "calculate_auc_roc",
    "calculate_effective_num_samples",
    "calculate_pos_weights",
    "collate_with_metadata",
    "combined_loss",
    "compose_hierarchical",
    "compose_product",
    "compute_metrics",
    "deep_merge",
    "focal_loss",
    "from_config",
    "get_balanced_data_loaders",
    "get_class_balanced_weights",
    "get_roc_curves",
    "get_sample_weights",
    "group_shares",
    "inverse_frequency",
    "label_ranking_average_precision",
    "load_dataset_configs",
    "mixture_from_config",
    "multilabel_split",
    "normalize",
    "plot_roc_curves",
    "read_label_csv",
    "split_prevalence",
    "store_summary",
    "weight_stats",
    "weighted_bce_with_logits",
    "write_label_csv",
]


def test_every_public_name_of_before_the_layers_is_still_importable():
    assert len(NAMES_BEFORE_LAYERS) == 62
    assert set(NAMES_BEFORE_LAYERS) <= set(mixweave.__all__)
    namespace: dict[str, object] = {}
    exec(f"from mixweave import {', '.join(NAMES_BEFORE_LAYERS)}", namespace)
    assert all(namespace[name] is getattr(mixweave, name) for name in NAMES_BEFORE_LAYERS)


def test_all_is_sorted_and_every_name_resolves_to_its_layer():
    assert mixweave.__all__ == sorted(mixweave.__all__)
    assert set(mixweave.__all__) == {*mixweave._EXPORTS, "__version__"}
    for name in mixweave.__all__:
        value = getattr(mixweave, name)
        if name != "__version__":
            layer = f"mixweave.{mixweave._EXPORTS[name]}"
            assert value.__name__ == name and value.__module__.startswith(layer)
            assert getattr(importlib.import_module(layer), name) is value  # importable from its layer too
    assert dir(mixweave) == mixweave.__all__  # no helper (Any, importlib, annotations) leaks into the namespace


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'mixweave' has no attribute 'WeightedRandomSampler'"):
        mixweave.WeightedRandomSampler  # noqa: B018


def test_importing_the_package_and_the_cli_does_not_import_torch():
    code = "import sys, mixweave, mixweave.cli; print(sorted({'torch', 'numpy', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("lint-imports")
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run([str(exe)], cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_layer_contracts_hold_and_fail_on_an_upward_or_torch_import(tmp_path):
    """The contracts of `make lint`, run on a copy of the package: clean, then with each kind of violation."""
    repo = Path(__file__).resolve().parents[1]
    shutil.copytree(repo / "src" / "mixweave", tmp_path / "src" / "mixweave")
    shutil.copy(repo / "pyproject.toml", tmp_path / "pyproject.toml")
    clean = _lint_imports(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "5 kept, 0 broken" in clean.stdout
    violations = {
        "core/names.py": ("from ..pipeline import build  # upward", "Layers"),
        "core/rng.py": ("import torch  # the core is numpy only", "The core is numpy only"),
        "config/literals.py": ("import torch.utils.data  # configs build no torch objects", "Configs build no torch"),
        "sampling/fetch.py": ("from . import mixing  # mixing imports fetch: a cycle", "No import cycles"),
    }
    for module, (line, contract) in violations.items():
        path = tmp_path / "src" / "mixweave" / module
        original = path.read_text()
        path.write_text(original + "\n" + line + "\n")
        broken = _lint_imports(tmp_path)
        path.write_text(original)
        assert broken.returncode != 0, module
        assert f"{contract}" in broken.stdout and "BROKEN" in broken.stdout, broken.stdout


# -- #17: the core install is torch, numpy, PyYAML and pydantic; the rest are extras that errors name --------------

_WITHOUT_EXTRAS = """
import importlib.abc, sys
BLOCKED = {"sklearn", "scipy", "matplotlib", "PIL", "rich"}
class Block(importlib.abc.MetaPathFinder):  # as if `pip install mixweave` (no extras) had installed nothing else
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
"""


def test_the_core_install_declares_only_torch_numpy_pyyaml_and_pydantic():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=!~ \[]", dep)[0].lower() for dep in meta["dependencies"]}
    assert core == {"torch", "numpy", "pyyaml", "pydantic"}
    extras = meta["optional-dependencies"]
    for extra, dist in [("metrics", "scikit-learn"), ("plot", "matplotlib"), ("images", "Pillow"), ("cli", "rich")]:
        assert any(dep.startswith(dist) for dep in extras[extra]), (extra, dist)


def test_doctests_are_collected_and_pass_without_any_extra_or_integration():
    blocked = _WITHOUT_EXTRAS.replace(
        '{"sklearn", "scipy", "matplotlib", "PIL", "rich"}',
        '{"sklearn", "scipy", "matplotlib", "PIL", "rich", "lightning", "mlflow", "optuna", "torchdata", "datasets"}',
    )
    assert blocked != _WITHOUT_EXTRAS
    code = blocked + "import pytest\nsys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'src/mixweave']))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert " passed" in done.stdout and "error" not in done.stdout.lower()


def test_samplers_weights_losses_and_stores_work_without_any_extra(tmp_path):
    code = (
        _WITHOUT_EXTRAS
        + f"""
import numpy as np, torch
import mixweave as mw
from mixweave import *  # every public name resolves without an extra
assert not {{"sklearn", "scipy", "matplotlib", "PIL", "rich"}} & set(sys.modules)
a, b = torch.utils.data.TensorDataset(torch.arange(10)), torch.utils.data.TensorDataset(torch.arange(30))
ds = mw.WeightedConcatDataset([a, b], weights=[0.5, 0.5], seed=0)
assert len([ds[i] for i in range(len(ds))]) == len(ds) > 0
y = (np.random.default_rng(0).random((60, 4)) < 0.3).astype(np.int64)
parts = mw.multilabel_split(y, [0.5, 0.5], seed=0)
assert sum(len(p) for p in parts) == 60
folds = list(mw.MultilabelStratifiedKFold(n_splits=3).split(np.zeros((60, 1)), y))
assert len(folds) == 3
loss = mw.FocalLoss()(torch.zeros(4, 4), torch.from_numpy(y[:4]).float())
assert torch.isfinite(loss)
assert 0 <= mw.label_ranking_average_precision(y[:10], np.random.default_rng(1).random((10, 4))) <= 1
assert 0 <= mw.compute_metrics(np.random.default_rng(0).random((60, 4)), y)["auc_macro"] <= 1  # numpy only
store = mw.ClusterLabeledDataset.build(
    {str(tmp_path / "store")!r},
    base_embeddings=np.zeros((5, 3), np.float32),
    steering_embeddings=np.zeros((5, 3), np.float32),
    source_labels=np.eye(2)[[0, 1, 0, 1, 0]], steering_labels=np.eye(2)[[1, 1, 0, 0, 1]], progress=None)
assert len(store) == 5
for call, extra in [
    (lambda: mw.get_roc_curves(np.random.default_rng(0).random((60, 4)), y), "metrics"),
    (lambda: mw.plot_roc_curves({{"a": {{"fpr": np.array([0., 1.]), "tpr": np.array([0., 1.])}}}}), "plot"),
]:
    try:
        call()
    except ImportError as exc:
        assert f"pip install 'mixweave[{{extra}}]'" in str(exc), exc
    else:
        raise AssertionError(f"no ImportError naming the {{extra}} extra")
from mixweave.cli import main
assert main(["store", "info", {str(tmp_path / "store")!r}]) == 2
print("ok")
"""
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
    assert "the mixweave command needs rich, which is not installed: pip install 'mixweave[cli]'" in done.stderr
