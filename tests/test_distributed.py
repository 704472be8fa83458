"""Sharding under a real torch.distributed process group (gloo, CPU processes)."""

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from mixweave import WeightedConcatDataset, WeightedSampler

WEIGHTS = np.linspace(0.0, 1.0, 101)


def _build(world=None, rank=None):
    sampler = WeightedSampler(WEIGHTS, num_samples=250, seed=3, num_replicas=world, rank=rank)
    mixed = WeightedConcatDataset([list(range(40)), list(range(7))], [0.7, 0.3], length=61, seed=3, mode="exact")
    return sampler, mixed.sampler(num_replicas=world, rank=rank), mixed


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        sampler, mixed_sampler, mixed = _build()  # num_replicas/rank come from the process group
        assert (sampler.num_replicas, sampler.rank) == (world, rank)
        sampler.set_epoch(1)
        mixed_sampler.set_epoch(1)
        positions = list(mixed_sampler)
        items = [mixed[p] for p in positions]
        np.savez(
            f"{out_dir}/rank{rank}.npz",
            weighted=np.array(list(sampler)),
            positions=np.array(positions),
            items=np.array(items),
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ranks_from_process_group_disjoint_union_is_single_plan(tmp_path):
    world = 2
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    results = [np.load(tmp_path / f"rank{r}.npz") for r in range(world)]
    single, _, mixed = _build(1, 0)

    expected = single.global_plan(1)
    got = np.empty(len(results[0]["weighted"]) * world, dtype=np.int64)
    for r, res in enumerate(results):
        got[r::world] = res["weighted"]
    assert np.array_equal(got[: expected.size], expected)  # union (in plan order) = single-process plan
    assert np.array_equal(got[expected.size :], expected[: got.size - expected.size])  # padding wraps

    positions = np.concatenate([res["positions"] for res in results])
    assert sorted(positions.tolist()) == sorted([*range(61), 0])  # disjoint + one wrapped pad
    plan = mixed.plan(1)
    for res in results:
        assert np.array_equal(res["items"], plan.indices[res["positions"]])


def test_torchrun_example_shards_one_global_plan(tmp_path):
    """examples/torchrun_balanced.py under the real launcher: 2 gloo ranks, DDP, the weighted sampler."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import numpy as np

    from mixweave import WeightedSampler, get_sample_weights

    script = Path(__file__).resolve().parents[1] / "examples" / "torchrun_balanced.py"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            "--epochs",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "epoch 1: class shares over 2 ranks" in done.stdout
    rng = np.random.default_rng(0)  # the script's data: features first, then labels
    rng.normal(size=(2000, 16))
    y = rng.choice(4, size=2000, p=[0.85, 0.1, 0.04, 0.01])
    runs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for epoch in range(2):
        reference = WeightedSampler(get_sample_weights(y), num_samples=2000, seed=0, num_replicas=2, rank=0)
        for r, run in enumerate(runs):
            mine = WeightedSampler(get_sample_weights(y), num_samples=2000, seed=0, num_replicas=2, rank=r)
            assert run["seen"][str(epoch)] == mine.plan(epoch).tolist()  # each rank trained on its shard
        both = np.concatenate([runs[0]["seen"][str(epoch)], runs[1]["seen"][str(epoch)]])
        assert np.array_equal(np.sort(both), np.sort(reference.global_plan(epoch)))  # together: the global plan
    assert runs[0]["seen"]["0"] != runs[0]["seen"]["1"]  # a new plan each epoch
