"""Code blocks in README.md and docs/*.md run, so the documentation cannot rot."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_python_blocks_run(path, monkeypatch):
    blocks = BLOCK.findall(path.read_text())
    monkeypatch.chdir(ROOT)
    namespace: dict = {"__name__": f"docs_{path.stem}"}
    for number, block in enumerate(blocks):
        try:
            exec(compile(block, f"{path.name}[block {number}]", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"{path.name} block {number} failed: {exc!r}\n{block}") from exc


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_every_guide_has_executed_code(path):
    assert BLOCK.search(path.read_text()), f"{path.name} has no python block for this test to run"
