"""Sharding under a real torch.distributed process group (gloo, CPU processes)."""

from pathlib import Path

import numpy as np
import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from mixweave import (
    CurriculumState,
    DynamicCurriculumSampler,
    JointSampler,
    StratifiedConcatDataset,
    TaskAwareSampler,
    UniformConcatDataset,
    WeightedConcatDataset,
    WeightedSampler,
    get_sample_weights,
    inverse_frequency,
)
from mixweave.pipeline import from_config

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


# --- every sampler and mixed dataset, 3 gloo ranks, nothing passed but the process group --------------

WORLD = 3
N_ROWS = 600
PIPELINE = Path(__file__).resolve().parents[1] / "examples" / "configs" / "pipeline.yaml"


def _data():
    rng = np.random.default_rng(7)
    labels = rng.choice(4, size=N_ROWS, p=[0.7, 0.2, 0.07, 0.03])
    tasks = rng.choice(5, size=N_ROWS, p=[0.5, 0.3, 0.1, 0.07, 0.03])
    quality = rng.choice(["high", "medium", "low"], size=N_ROWS, p=[0.5, 0.3, 0.2])
    return labels, tasks, quality


def _objects(world=None, rank=None, phase=None):
    """Every sampler kind, built the same way on each rank; world/rank None = from the process group."""
    labels, tasks, quality = _data()
    kw = {"num_replicas": world, "rank": rank}
    state_c, state_j = CurriculumState(patience=2), CurriculumState(patience=2)
    if phase is not None:
        state_c.set_phase(phase)
        state_j.set_phase(phase)
    samplers = {
        "class_balanced": WeightedSampler(get_sample_weights(labels), num_samples=3001, seed=5, **kw),
        "class_balanced_drop_last": WeightedSampler(
            get_sample_weights(labels), num_samples=3001, seed=5, drop_last=True, **kw
        ),
        "without_replacement": WeightedSampler(
            np.linspace(0.0, 1.0, N_ROWS), num_samples=400, replacement=False, seed=5, **kw
        ),
        "sources_80_20_exact": WeightedSampler.from_sources(
            [400, 200], [0.8, 0.2], num_samples=1000, within=inverse_frequency(labels), seed=5, **kw
        ),
        "task_aware": TaskAwareSampler(tasks, alpha=0.5, num_samples=1001, seed=5, **kw),
        "curriculum": DynamicCurriculumSampler(quality, state_c, num_samples=1001, seed=5, **kw),
        "joint": JointSampler(tasks, quality, state_j, task_alpha=0.5, num_samples=1001, seed=5, **kw),
    }
    sources = [list(range(100)), list(range(1000, 1030)), list(range(2000, 2007))]
    mixed = {
        "weighted_concat": WeightedConcatDataset(sources, [0.5, 0.3, 0.2], length=200, seed=5),
        "weighted_concat_exact": WeightedConcatDataset(sources, [0.5, 0.3, 0.2], length=200, seed=5, mode="exact"),
        "stratified_concat": StratifiedConcatDataset(sources, 200),
        "uniform_concat": UniformConcatDataset(sources, seed=5),
    }
    for name, ds in list(mixed.items()):
        samplers[name] = ds.sampler(**kw)
    # a declarative pipeline: scheduled source shares, class balance inside each source (1000 draws)
    samplers["pipeline_class_balanced"] = from_config(PIPELINE, num_replicas=world, rank=rank).sampler
    return samplers, mixed, (state_c, state_j)


def _every_sampler_worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        samplers, mixed, states = _objects()
        out = {}
        for epoch in (0, 1):
            if epoch == 1:
                # rank 0 sees a plateau (its phase would advance after patience 2), the others keep
                # improving: after the collective update every rank must hold rank 0's decision
                losses = [1.0, 1.0, 1.0] if rank == 0 else [1.0, 0.5, 0.25]
                changed = [[state.update(x) for x in losses] for state in states]
                out["phase_changed"] = np.array(changed)
                out["phase"] = np.array([state.phase_index for state in states])
            for name, sampler in samplers.items():
                assert (sampler.num_replicas, sampler.rank) == (world, rank), name
                sampler.set_epoch(epoch)
                drawn = list(sampler)
                out[f"{name}/{epoch}"] = np.array(drawn)
                if name in mixed:  # what a DataLoader would fetch from the dataset at these positions
                    out[f"{name}/items/{epoch}"] = np.array([mixed[name][p] for p in drawn])
        np.savez(f"{out_dir}/rank{rank}.npz", **out)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _interleave(shards):
    """Positions r, r+W, ... of each rank back into plan order."""
    return np.stack(shards, axis=1).ravel()


@pytest.mark.slow
def test_every_sampler_and_mixed_dataset_under_gloo(tmp_path):
    mp.spawn(_every_sampler_worker, args=(WORLD, str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [dict(np.load(tmp_path / f"rank{r}.npz")) for r in range(WORLD)]

    # the curriculum decision is rank 0's on every rank (rank 0 alone saw the plateau)
    for res in ranks:
        assert res["phase"].tolist() == [1, 1]  # 'expand' for both curriculum states
        assert res["phase_changed"].tolist() == [[False, False, True]] * 2
    single, mixed, _ = _objects(1, 0)
    after_plateau, _, _ = _objects(1, 0, phase="expand")
    explicit = {e: [_objects(WORLD, r, phase="expand" if e else None)[0] for r in range(WORLD)] for e in (0, 1)}
    for name in single:
        for epoch in (0, 1):
            ref = (after_plateau if epoch == 1 else single)[name]
            expected = ref.global_plan(epoch)
            shards = [res[f"{name}/{epoch}"] for res in ranks]
            assert len({s.size for s in shards}) == 1, f"{name}: ranks must yield equal counts"
            got = _interleave(shards)
            if ref.drop_last:  # the tail that does not fill a round is dropped
                assert got.size == expected.size // WORLD * WORLD
                assert np.array_equal(got, expected[: got.size]), name
            else:  # disjoint positions covering the plan, padded by wrapping to its start
                assert np.array_equal(got[: expected.size], expected), f"{name} epoch {epoch}"
                assert np.array_equal(got[expected.size :], expected[: got.size - expected.size]), name
            for r, shard in enumerate(shards):  # each rank's shard is what an explicit (W, r) plans
                assert np.array_equal(shard, explicit[epoch][r][name].plan(epoch)), f"{name} rank {r}"
            if name in mixed:
                items = _interleave([res[f"{name}/items/{epoch}"] for res in ranks])[: expected.size]
                plan = mixed[name].plan(epoch)
                values = np.concatenate([np.asarray(src) for src in mixed[name].datasets])
                offsets = np.concatenate([[0], np.cumsum(mixed[name].sizes)[:-1]])
                assert np.array_equal(items, values[offsets[plan.sources] + plan.indices]), name

    # realised shares over all ranks: classes balanced, sources 80/20 exact
    labels, _, _ = _data()
    union = _interleave([res["class_balanced/0"] for res in ranks])[:3001]  # without the wrapped padding
    shares = np.bincount(labels[union], minlength=4) / union.size
    assert np.abs(shares - 0.25).max() < 0.04  # 5 binomial sd at n = 3001 is 0.039
    union = _interleave([res["sources_80_20_exact/1"] for res in ranks])[:1000]
    assert int((union < 400).sum()) == 800
    # the uniform concatenation covers every item exactly once per epoch across the ranks
    items = _interleave([res["uniform_concat/items/0"] for res in ranks])[:137]
    assert np.sort(items).tolist() == sorted([*range(100), *range(1000, 1030), *range(2000, 2007)])


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


def _torchrun(script, world, out, *extra, **popen):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world)]
    cmd += [str(script), "--out", str(out), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _process_tree(root: int) -> list[int]:
    """``root`` and every process below it, from /proc (torchrun starts each worker in a session of its own)."""
    import os

    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def _seen(out, world):
    import json

    logs = []
    for rank in range(world):
        path = out / f"seen-{world}-{rank}.jsonl"
        logs += [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return logs


@pytest.mark.slow
@pytest.mark.parametrize(("world", "new_world"), [(2, 3), (2, 2), (4, 2)])
def test_ddp_recipe_killed_with_sigkill_resumes_on_any_number_of_ranks(tmp_path, world, new_world):
    """examples/ddp_resume.py under torchrun: the process group is SIGKILLed mid-epoch, restarted on
    `new_world` ranks, and over both runs every row of each epoch's global plan is trained on exactly once."""
    import contextlib
    import os
    import signal
    import time
    from pathlib import Path

    import numpy as np
    import torch

    from mixweave import WeightedSampler, get_sample_weights

    script = Path(__file__).resolve().parents[1] / "examples" / "ddp_resume.py"
    # run 1; SIGKILL to the launcher alone would leave its workers running (each in a session of its own)
    proc = _torchrun(script, world, tmp_path, "--step-delay", "0.05")
    deadline = time.monotonic() + 240
    steps_per_epoch = 1200 // (20 * world)  # 1200 rows, 20 per rank and step
    while len([e for e in _seen(tmp_path, world) if e["rank"] == 0]) < steps_per_epoch * 4 // 3:  # 1/3 into epoch 1
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)
    tree = _process_tree(proc.pid)
    assert len(tree) > world  # the launcher and its ranks
    for pid in tree:  # the launcher and every rank, with no chance to clean up
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=60)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 1 and saved["sampler"]["offset"] < 1200  # killed mid-epoch 1
    before = [e for e in _seen(tmp_path, world) if e["step"] <= saved["step"]]  # later steps were lost
    for log in tmp_path.glob("seen-*.jsonl"):
        log.rename(log.with_name(f"run1-{log.name}"))

    # run 2: the same checkpoint, on new_world ranks, to the end
    proc = _torchrun(script, new_world, tmp_path, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert f"resumed at epoch 1, step {saved['step']}, on {new_world} ranks" in out
    after = _seen(tmp_path, new_world)

    rng = np.random.default_rng(0)  # the script's data: features, then labels
    rng.normal(size=(1200, 8))
    y = rng.choice(4, size=1200, p=[0.8, 0.12, 0.06, 0.02])
    plan = WeightedSampler(get_sample_weights(y), num_samples=1200, seed=0).global_plan(1)
    trained = sorted(row for e in before + after if e["epoch"] == 1 for row in e["rows"])
    rest = 1200 - saved["sampler"]["offset"]
    padding = -(-rest // new_world) * new_world - rest  # the resumed world pads its rest like DistributedSampler
    assert trained == sorted(plan.tolist() + plan[:padding].tolist())  # no row twice, none missing
    steps = {e["step"] for e in after if e["rank"] == 0}
    assert steps == set(range(saved["step"] + 1, max(steps) + 1))  # the steps go on from the checkpoint


def _tracker_worker(rank, world, init_file, out_dir):
    from mixweave import MetricsTracker

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        predictions, targets = _evaluation_set()
        tracker = MetricsTracker(4)
        mine = np.arange(rank, predictions.shape[0], world)  # this rank's share, as a DistributedSampler gives
        for batch in np.array_split(mine, 3 + rank):  # uneven batches, uneven counts
            tracker.update(predictions[batch], targets[batch])
        gathered, local = tracker.compute(), tracker.compute(sync=False)
        np.savez(
            f"{out_dir}/rank{rank}.npz",
            auc=gathered["auc_macro"],
            f1=gathered["f1_micro"],
            lrap=gathered["label_ranking_ap"],
            local_auc=local["auc_macro"],
        )
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _evaluation_set():
    rng = np.random.default_rng(5)
    targets = (rng.random((301, 4)) < [0.4, 0.2, 0.1, 0.05]).astype(np.int8)
    targets[:4] = np.eye(4, dtype=np.int8)
    predictions = np.clip(0.35 * targets + rng.random((301, 4)) * 0.65, 0, 1)
    return predictions, targets


@pytest.mark.slow
def test_metrics_tracker_gathers_every_rank_before_computing(tmp_path):
    from mixweave import compute_metrics

    world = 2
    mp.spawn(_tracker_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(world)]
    whole = compute_metrics(*_evaluation_set())  # one process, every row
    for result in ranks:  # every rank computes the metrics of the whole set, as one process would
        assert float(result["auc"]) == pytest.approx(whole["auc_macro"], rel=1e-12)
        assert float(result["f1"]) == pytest.approx(whole["f1_micro"], rel=1e-12)
        assert float(result["lrap"]) == pytest.approx(whole["label_ranking_ap"], rel=1e-12)
    assert float(ranks[0]["local_auc"]) != pytest.approx(whole["auc_macro"], rel=1e-6)  # one shard alone differs
