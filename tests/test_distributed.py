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
