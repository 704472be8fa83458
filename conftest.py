"""Doctest collection of ``src/mixweave`` (``--doctest-modules``) in any install.

A module whose import or doctests need an optional extra is not collected when
that extra is absent (``_NEEDS`` says which), so a core-only install collects
and runs the other doctests. ``make test`` installs every extra: there all run.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PACKAGE = Path(__file__).parent / "src" / "mixweave"

#: module (relative to src/mixweave) -> the import its doctests or its import need, and the extra giving it
_NEEDS = {
    "integrations/lightning.py": ("lightning", "lightning"),
    "integrations/mlflow.py": ("mlflow", "mlflow"),
    "integrations/optuna.py": ("optuna", "optuna"),
    "train/metrics.py": ("sklearn", "metrics"),
}


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    try:
        relative = collection_path.relative_to(_PACKAGE).as_posix()
    except ValueError:
        return None
    needed = _NEEDS.get(relative)
    if needed is not None and not _available(needed[0]):
        return True  # pip install 'mixweave[<extra>]' to run these doctests
    return None


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a finder that refuses the module
        return False
