"""A small harness: time ours and the peer in the same run, print ratios against targets."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Row:
    benchmark: str
    ours: str
    peer: str
    ratio: str
    target: str
    met: bool


def best_of(fn: Callable[[], Any], repeat: int = 1) -> float:
    """Shortest wall time of ``repeat`` calls (seconds), after a garbage collection."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def peak_rss_of(code: str) -> tuple[float, str]:
    """Run ``code`` in a fresh interpreter; return its own peak RSS in GiB and its stdout.

    The child reports its ``ru_maxrss`` itself: ``RUSAGE_CHILDREN`` in the parent is
    the maximum over all children so far, which would hide a smaller child.
    """
    probe = "\nimport resource as _r\nprint('PEAK_KIB', _r.getrusage(_r.RUSAGE_SELF).ru_maxrss)\n"
    proc = subprocess.run(
        [sys.executable, "-c", code + probe], capture_output=True, text=True, check=False, env={**os.environ}
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    lines = proc.stdout.splitlines()
    peak_kib = int(lines[-1].split()[1])
    return peak_kib / 2**20, "\n".join(lines[:-1])


def print_table(rows: list[Row]) -> None:
    print("| benchmark | mixweave | peer | ratio | target | met |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.benchmark} | {r.ours} | {r.peer} | {r.ratio} | {r.target} | {'yes' if r.met else 'NO'} |")


def save(rows: list[Row], path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump([asdict(r) for r in rows], fh, indent=2)
