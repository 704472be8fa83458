"""Run the benchmarks: ``python -m bench [sampler|mixing ...]``."""

from __future__ import annotations

import sys

from . import bench_distributed, bench_mixing, bench_multilabel, bench_sampler, bench_store, bench_stream, bench_task
from .harness import print_table, save

SUITES = {
    "sampler": bench_sampler.run,
    "plan": bench_sampler.run_plan,
    "exact": bench_sampler.run_exact,
    "mixing": bench_mixing.run,
    "task": bench_task.run,
    "split": bench_multilabel.run_split,
    "metrics": bench_multilabel.run_metrics,
    "auc": bench_multilabel.run_auc,
    "store": bench_store.run,
    "distributed": bench_distributed.run,
    "stream": bench_stream.run,
}


def main(argv: list[str]) -> int:
    names = argv or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(SUITES)}", file=sys.stderr)
        return 2
    rows = []
    for name in names:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        suite_rows = SUITES[name]()
        save(suite_rows, f"bench/results/{name}.json")
        rows += suite_rows
        print_table(suite_rows)  # as each suite ends, so a long run shows its results early
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
