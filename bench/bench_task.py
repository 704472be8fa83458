"""Joint weight computation (task factor x curriculum factor) against a per-row Python loop (issue: task sampling)."""

from __future__ import annotations

import numpy as np

from mixweave import CurriculumState
from mixweave.sampling.tasks import JointSampler

from .harness import Row, best_of

QUALITIES = ("q0", "q1", "q2", "q3", "q4")
PHASES = {"only": {"q0": 0.4, "q1": 0.25, "q2": 0.15, "q3": 0.12, "q4": 0.08}}


def python_loop(task_ids: np.ndarray, quality: np.ndarray, alpha: float, probs: dict[str, float]) -> np.ndarray:
    """The per-row loop of the specification, with the task law that JointSampler implements."""
    counts: dict[int, int] = {}
    for t in task_ids.tolist():
        counts[t] = counts.get(t, 0) + 1
    p = {t: n**-alpha for t, n in counts.items()}
    total_p = sum(p.values())
    per_quality: dict[str, int] = {}
    for q in quality.tolist():
        per_quality[q] = per_quality.get(q, 0) + 1
    weights = np.empty(task_ids.size)
    for i, (t, q) in enumerate(zip(task_ids.tolist(), quality.tolist(), strict=True)):
        weights[i] = (p[t] / total_p / counts[t]) * (probs[q] / per_quality[q])
    return weights / weights.sum()


def run(n: int = 10**6, tasks: int = 1000) -> list[Row]:
    rng = np.random.default_rng(0)
    task_ids = np.minimum(rng.zipf(1.3, n) - 1, tasks - 1)  # long-tailed task sizes
    quality = rng.choice(np.array(QUALITIES), n)
    state = CurriculumState(QUALITIES, phases=PHASES)
    sampler = JointSampler(task_ids, quality, state, 0.5)
    ours = best_of(lambda: sampler._joint_weights(0), repeat=5)
    peer = best_of(lambda: python_loop(task_ids, quality, 0.5, PHASES["only"]))
    assert np.allclose(sampler._joint_weights(0), python_loop(task_ids, quality, 0.5, PHASES["only"]))
    return [
        Row(
            f"joint weights, N={n:.0e} rows, {tasks} tasks, 5 qualities",
            f"{ours * 1e3:.1f} ms",
            f"{peer:.2f} s (per-row Python loop)",
            f"{peer / ours:.0f}x faster",
            "<= 20 ms",
            ours <= 0.020,
        )
    ]
