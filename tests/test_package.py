"""The top-level package: its public names, and that importing it stays cheap."""

import subprocess
import sys

import pytest

import mixweave


def test_all_is_sorted_and_every_name_resolves():
    assert mixweave.__all__ == sorted(mixweave.__all__)
    assert set(mixweave.__all__) == {*mixweave._EXPORTS, "__version__"}
    for name in mixweave.__all__:
        value = getattr(mixweave, name)
        if name != "__version__":
            assert value.__name__ == name and value.__module__ == f"mixweave.{mixweave._EXPORTS[name]}"
    assert set(mixweave.__all__) <= set(dir(mixweave))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'mixweave' has no attribute 'WeightedRandomSampler'"):
        mixweave.WeightedRandomSampler  # noqa: B018


def test_importing_the_package_and_the_cli_does_not_import_torch():
    code = "import sys, mixweave, mixweave.cli; print(sorted({'torch', 'numpy', 'sklearn'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
