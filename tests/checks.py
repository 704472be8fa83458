"""Reusable sampler invariants (see STYLE.md, Tests).

Each helper asserts one contract from DESIGN.md so every sampler and mixed
dataset in mixweave is held to the same checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np


def check_same_plan_same_key(make: Callable[[], Any], epoch: int = 3) -> None:
    """Two independently built objects give the same plan for the same (seed, epoch)."""
    a, b = make(), make()
    a.set_epoch(epoch)
    b.set_epoch(epoch)
    assert np.array_equal(np.array(list(a)), np.array(list(b)))


def check_new_plan_per_epoch(sampler: Any) -> None:
    """Consecutive epochs differ (for any sampler that draws at random)."""
    assert not np.array_equal(sampler.plan(0), sampler.plan(1))


def check_shards(make: Callable[[int, int], Any], world: int, epoch: int = 0) -> None:
    """Rank shards are disjoint sets of plan positions and their union is the single-process plan.

    ``make(num_replicas, rank)`` builds the object for one rank. Positions are
    recovered from the strided layout: rank r holds positions r, r+W, ...
    """
    single = make(1, 0).global_plan(epoch)
    shards = [make(world, r) for r in range(world)]
    plans = [s.plan(epoch) for s in shards]
    n = single.shape[0]
    lengths = {p.shape[0] for p in plans}
    assert len(lengths) == 1, "every rank must yield the same count"
    per_rank = lengths.pop()
    positions = np.concatenate([np.arange(per_rank) * world + r for r in range(world)])
    values = np.concatenate(plans)
    real = positions < n
    # disjoint: each real position appears once; union: all positions of the single plan
    assert np.array_equal(np.sort(positions[real]), np.arange(n)) or shards[0].drop_last
    assert np.array_equal(values[real], single[positions[real]])
    # padding (no drop_last) wraps around to the start of the plan
    assert np.array_equal(values[~real], single[positions[~real] % n])
    # what each rank iterates is what it plans
    for s, p in zip(shards, plans, strict=True):
        s.set_epoch(epoch)
        assert np.array_equal(np.array(list(s), dtype=np.int64), p)


def check_resume(make: Callable[[], Any], stop_after: int, epoch: int = 2) -> None:
    """Save mid-epoch, restore into a fresh object (through JSON), compare the rest; then the next epoch."""
    reference = make()
    reference.set_epoch(epoch)
    full = list(reference)
    next_epoch = list(reference)

    first = make()
    first.set_epoch(epoch)
    stop_after = min(stop_after, len(first))
    it = iter(first)
    seen = [next(it) for _ in range(stop_after)]
    state = json.loads(json.dumps(first.state_dict()))
    assert state["position"] == stop_after

    resumed = make()
    resumed.load_state_dict(state)
    resumed.set_epoch(epoch)  # a loop calling set_epoch for the same epoch keeps the position
    rest = list(resumed)
    assert seen + rest == full, "resume must yield exactly the remaining indices"
    assert list(resumed) == next_epoch, "the epoch after a resumed one is as if never interrupted"


def check_frequencies(drawn: np.ndarray, probs: np.ndarray, *, sigmas: float = 5.0) -> None:
    """Counts of each index within ``sigmas`` binomial standard deviations of n*p."""
    n = drawn.shape[0]
    counts = np.bincount(drawn, minlength=probs.shape[0])
    expected = n * probs
    sd = np.sqrt(n * probs * (1 - probs)) + 1e-12
    z = np.abs(counts - expected) / sd
    assert (counts[probs == 0] == 0).all(), "zero-weight indices must never be drawn"
    assert z[probs > 0].max() < sigmas, f"max z-score {z.max():.2f} >= {sigmas}"


def console_script() -> list[str]:
    """The installed ``mixweave`` console script (the real entry point), next to this interpreter."""
    import shutil
    import sys
    from pathlib import Path

    import pytest

    script = Path(sys.executable).with_name("mixweave")
    return [str(script)] if script.exists() else [shutil.which("mixweave") or pytest.fail("mixweave not installed")]
