"""WeightedInterleaveDataset: shares, stopping, sharding over real workers and gloo ranks, resume after any batch."""

import io
import json
import signal
import subprocess
import sys
import tarfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, IterableDataset

from mixweave import ShardedSource, WeightedInterleaveDataset, WeightSchedule
from mixweave.sampling import IterableSource, read_tar
from mixweave.sampling.stream_sources import Part

StatefulDataLoader = pytest.importorskip("torchdata.stateful_dataloader").StatefulDataLoader


class Numbers(IterableDataset):
    """``lo, lo + 1, ..., lo + n - 1``, with a ``shard`` hook that splits it by stride."""

    def __init__(self, lo, n):
        self.lo, self.n = lo, n

    def __iter__(self):
        return iter(range(self.lo, self.lo + self.n))

    def shard(self, num_shards, index):
        return range(self.lo + index, self.lo + self.n, num_shards)


class Unsplittable(IterableDataset):
    def __init__(self, lo, n):
        self.lo, self.n = lo, n

    def __iter__(self):
        return iter(range(self.lo, self.lo + self.n))


def _jsonl_shards(folder, name, n_files, per_file):
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        rows = [json.dumps({"source": name, "id": f * per_file + i}) for i in range(per_file)]
        (folder / f"{name}-{f:03d}.jsonl").write_text("\n".join(rows) + "\n")
    return str(folder / f"{name}-*.jsonl")


def _flat(loader):
    return [int(x) for batch in loader for x in batch]


def _source_of(x):
    return int(x >= 10_000) + int(x >= 20_000)


# ------------------------------------------------------------------ stopping, against a slow reference


def _reference(choices, lengths, stopping, limit):
    """The interleave written out: follow the choices, restart or stop as `stopping` says."""
    pos = [0] * len(lengths)
    exhausted = [False] * len(lengths)
    out = []
    for c in choices:
        if len(out) == limit:
            break
        if pos[c] == lengths[c]:
            exhausted[c] = True
            if stopping == "first_exhausted" or (stopping == "all_exhausted" and all(exhausted)):
                break
            pos[c] = 0
        out.append((c, pos[c]))
        pos[c] += 1
    return out


@pytest.mark.parametrize("stopping", ["first_exhausted", "all_exhausted", "never"])
@pytest.mark.parametrize("mode", ["random", "exact"])
def test_stopping_strategies_match_the_written_out_interleave(stopping, mode):
    lengths = [50, 20, 7]
    sources = [range(0, 50), range(10_000, 10_020), range(20_000, 20_007)]
    ds = WeightedInterleaveDataset(sources, [0.5, 0.3, 0.2], mode=mode, stopping=stopping, seed=3, with_source=True)
    limit = 400
    got = []
    for item in ds:
        got.append(item)
        if len(got) == limit:
            break
    # the choice sequence itself, from a run that never stops
    endless = WeightedInterleaveDataset(
        [range(10**6)] * 3, [0.5, 0.3, 0.2], mode=mode, stopping="never", seed=3, with_source=True
    )
    choices = [c for c, _ in (next(it) for it in [iter(endless)] for _ in range(limit + 50))]
    expected = _reference(choices, lengths, stopping, limit)
    assert [(c, x - (0, 10_000, 20_000)[c]) for c, x in got] == expected
    if stopping == "first_exhausted":
        assert len(got) < 40  # the 7-sample source runs out early
    if stopping == "all_exhausted":
        assert {c for c, _ in got} == {0, 1, 2} and len(got) < limit


@pytest.mark.parametrize("mode", ["random", "exact"])
def test_a_source_with_share_zero_is_never_read_and_does_not_keep_all_exhausted_going(mode):
    sources = [range(10), range(100, 150), range(1000, 1010)]
    seen = list(WeightedInterleaveDataset(sources, [0.5, 0.0, 0.5], mode=mode, stopping="all_exhausted"))
    assert not any(100 <= x < 150 for x in seen)
    assert set(range(10)) | set(range(1000, 1010)) <= set(seen)


def test_random_mode_shares_and_exact_mode_prefixes():
    ds = WeightedInterleaveDataset([range(0, 10**6), range(10_000_000, 11_000_000)], [0.8, 0.2], stopping="never")
    it = iter(ds)
    first = np.array([next(it) >= 10_000_000 for _ in range(20_000)])
    assert first.mean() == pytest.approx(0.2, abs=0.01)  # sd of the share over 20k draws: 0.003
    ds = WeightedInterleaveDataset([range(10**6), range(10_000_000, 11_000_000)], [0.8, 0.2], mode="exact")
    it = iter(ds)
    picks = np.array([next(it) >= 10_000_000 for _ in range(5000)])
    deviation = np.abs(np.cumsum(picks) - 0.2 * np.arange(1, 5001)).max()
    assert deviation < 1.0


def test_weights_follow_a_schedule_and_epochs_draw_new_choices():
    schedule = WeightSchedule({0: [0.9, 0.1], 1: [0.1, 0.9]})
    ds = WeightedInterleaveDataset([range(10**6), range(10_000_000, 11_000_000)], schedule, stopping="never")
    shares = []
    for epoch in (0, 1):
        ds.set_epoch(epoch)
        it = iter(ds)
        shares.append(np.mean([next(it) >= 10_000_000 for _ in range(4000)]))
    assert shares[0] == pytest.approx(0.1, abs=0.02) and shares[1] == pytest.approx(0.9, abs=0.02)
    ds = WeightedInterleaveDataset([range(10**6), range(10_000_000, 11_000_000)], stopping="never", seed=5)
    runs = []
    for epoch in (0, 0, 1):
        ds.set_epoch(epoch)
        it = iter(ds)
        runs.append([next(it) >= 10_000_000 for _ in range(200)])
    assert runs[0] == runs[1] != runs[2]  # a pure function of (seed, epoch)


# ------------------------------------------------------------------ sharding over real DataLoader workers


@pytest.mark.parametrize("kind", ["shard-hook", "files", "few-files", "stride"])
def test_two_workers_read_disjoint_parts_whose_union_is_every_sample(tmp_path, kind):
    if kind == "shard-hook":
        sources = [Numbers(0, 600), Numbers(10_000, 300)]
    elif kind == "stride":
        sources = [IterableSource(Unsplittable(0, 600), unsplittable="stride"), Numbers(10_000, 300)]
    else:
        n_files = 6 if kind == "files" else 1  # 1 file for 2 workers: split by sample instead
        a = ShardedSource(_jsonl_shards(tmp_path / "a", "a", n_files, 600 // n_files))
        b = ShardedSource(_jsonl_shards(tmp_path / "b", "b", n_files, 300 // n_files))
        sources = [a, b]
    ds = WeightedInterleaveDataset(sources, [2 / 3, 1 / 3], stopping="all_exhausted", seed=0)
    if kind in ("files", "few-files"):
        loader = DataLoader(ds, batch_size=10, num_workers=2, collate_fn=lambda batch: batch)
        seen = [(s["source"], s["id"]) for batch in loader for s in batch]
        assert set(seen) == {("a", i) for i in range(600)} | {("b", i) for i in range(300)}
        return
    seen = _flat(DataLoader(ds, batch_size=10, num_workers=2))
    first_pass = set(seen)
    assert first_pass == set(range(600)) | set(range(10_000, 10_300))  # every sample, across the workers
    # all_exhausted: a part's restarted source repeats its own samples, never the other worker's
    assert len(seen) >= 900


def test_an_unsplittable_source_warns_or_raises_as_asked():
    ds = WeightedInterleaveDataset([Unsplittable(0, 100), Numbers(10_000, 100)], num_replicas=2, rank=0)
    with pytest.warns(UserWarning, match="cannot be split: each of the 2 parts .* reads all of it"):
        list(ds)
    ds = WeightedInterleaveDataset([Unsplittable(0, 100)], unsplittable="error", num_replicas=2, rank=1)
    with pytest.raises(ValueError, match="cannot be split across 2 parts"):
        list(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        list(WeightedInterleaveDataset([Unsplittable(0, 100)], unsplittable="error"))  # one part: nothing to split


def test_huggingface_iterable_dataset_splits_over_workers():
    datasets = pytest.importorskip("datasets", reason="the `huggingface` extra (installed by `make test`)")

    def gen(shards):
        for shard in shards:
            for i in range(50):
                yield {"x": shard * 50 + i}

    hf = datasets.IterableDataset.from_generator(gen, gen_kwargs={"shards": [0, 1, 2, 3]})
    ds = WeightedInterleaveDataset({"hf": hf, "numbers": Numbers(10_000, 200)}, [0.5, 0.5], stopping="all_exhausted")
    loader = DataLoader(ds, batch_size=8, num_workers=2, collate_fn=lambda b: b)
    seen = [s["x"] if isinstance(s, dict) else int(s) for batch in loader for s in batch]
    assert set(seen) == set(range(200)) | set(range(10_000, 10_200))


# ------------------------------------------------------------------ resume through StatefulDataLoader


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("mode", ["random", "exact"])
def test_stateful_dataloader_resumes_after_every_batch(tmp_path, workers, mode):
    a = ShardedSource(_jsonl_shards(tmp_path / "a", "a", 4, 40))
    ds = WeightedInterleaveDataset(
        {"a": a, "b": Numbers(10_000, 90)}, [0.6, 0.4], mode=mode, stopping="all_exhausted", seed=2
    )

    def loader():
        return StatefulDataLoader(ds, batch_size=7, num_workers=workers, collate_fn=lambda b: [str(s) for s in b])

    full = list(loader())
    assert len(full) > 20
    for k in range(len(full)):
        first = loader()
        head = []
        for i, batch in enumerate(first):
            head.append(batch)
            if i == k:
                state = first.state_dict()
                break
        second = loader()
        second.load_state_dict(json.loads(json.dumps(state, default=int)))  # what a checkpoint holds
        assert head + list(second) == full, f"resumed after batch {k}"


def test_plain_dataset_state_dict_resumes_without_workers():
    ds = WeightedInterleaveDataset([Numbers(0, 100), Numbers(10_000, 100)], [0.5, 0.5], mode="exact")
    whole = list(ds)
    it = iter(ds)
    head = [next(it) for _ in range(37)]
    state = json.loads(json.dumps(ds.state_dict()))
    again = WeightedInterleaveDataset([Numbers(0, 100), Numbers(10_000, 100)], [0.5, 0.5], mode="exact")
    again.load_state_dict(state)
    assert head + list(again) == whole
    other = WeightedInterleaveDataset([Numbers(0, 100), Numbers(10_000, 100)], [0.4, 0.6], mode="exact")
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="saved with weights_crc32="):
        iter(other)


# ------------------------------------------------------------------ two gloo ranks x two workers


def _gloo_worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        ds = WeightedInterleaveDataset(
            [Numbers(0, 800), Numbers(10_000, 400)], [2 / 3, 1 / 3], stopping="all_exhausted"
        )
        assert (ds.num_replicas, ds.rank) == (world, rank)
        seen = _flat(DataLoader(ds, batch_size=10, num_workers=2))
        np.save(f"{out_dir}/rank{rank}.npy", np.array(seen))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gloo_ranks_and_workers_read_disjoint_parts_with_the_shares(tmp_path):
    mp.spawn(_gloo_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    per_rank = [np.load(tmp_path / f"rank{r}.npy") for r in range(2)]
    assert set(per_rank[0].tolist()) & set(per_rank[1].tolist()) == set()  # ranks share no sample
    union = np.concatenate(per_rank)
    assert set(union.tolist()) == set(range(800)) | set(range(10_000, 10_400))
    # four parts, each drawing 2/3 : 1/3 until both its sources ran out once
    assert (union >= 10_000).mean() == pytest.approx(1 / 3, abs=0.04)


# ------------------------------------------------------------------ tar shards and a killed training run


def _tar_shards(folder, n_shards, per_shard):
    folder.mkdir(parents=True, exist_ok=True)
    for s in range(n_shards):
        with tarfile.open(folder / f"shard-{s:04d}.tar", "w") as tar:
            for i in range(per_shard):
                key = f"{s:04d}_{i:04d}"
                for ext, payload in (("cls", str((s + i) % 2).encode()), ("x", np.float32([s, i]).tobytes())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(payload)
                    tar.addfile(info, io.BytesIO(payload))
    return str(folder / "shard-*.tar")


def test_tar_shards_read_as_samples(tmp_path):
    pattern = _tar_shards(tmp_path, 2, 3)
    samples = list(read_tar(sorted(Path(tmp_path).glob("*.tar"))[1]))
    assert [s["__key__"] for s in samples] == ["0001_0000", "0001_0001", "0001_0002"]
    assert samples[2]["cls"] == b"1" and np.frombuffer(samples[2]["x"], np.float32).tolist() == [1.0, 2.0]
    assert len(list(WeightedInterleaveDataset([ShardedSource(pattern)]))) == 6


SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "stream_training.py"


def _run(*args):
    cmd = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _log(out):
    return [json.loads(line) for line in (out / "seen.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_stream_training_killed_with_sigkill_continues_with_exactly_the_samples_it_would_have_seen(tmp_path):
    data = tmp_path / "shards"
    _tar_shards(data / "real", 4, 30)
    _tar_shards(data / "synthetic", 6, 40)
    clean = tmp_path / "clean"
    proc = _run("--data", data, "--out", clean)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    steps = len(_log(clean))
    assert steps > 20

    killed = tmp_path / "killed"
    proc = _run("--data", data, "--out", killed, "--step-delay", "0.05")
    deadline = time.monotonic() + 240
    while not (killed / "seen.jsonl").exists() or len(_log(killed)) < steps // 2:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    saved = torch.load(killed / "checkpoint.pt", weights_only=False)
    before = [e for e in _log(killed) if e["step"] <= saved["step"]]
    (killed / "seen.jsonl").rename(killed / "run1.jsonl")
    proc = _run("--data", data, "--out", killed, "--resume")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert f"resumed at step {saved['step']}" in out
    assert before + _log(killed) == _log(clean)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`sources` must hold at least one source"):
        WeightedInterleaveDataset([])
    with pytest.raises(ValueError, match=r"`weights` must have one share per source \(2\), got 3"):
        WeightedInterleaveDataset([range(3), range(3)], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="`weights` must sum to 1"):
        WeightedInterleaveDataset([range(3), range(3)], [0.2, 0.3])
    with pytest.raises(ValueError, match=r"`stopping` must be one of .*'first_exhausted'.*got 'forever'"):
        WeightedInterleaveDataset([range(3)], stopping="forever")
    with pytest.raises(ValueError, match="`unsplittable` must be one of"):
        WeightedInterleaveDataset([range(3)], unsplittable="ignore")
    with pytest.raises(TypeError, match="a stream source must be iterable"):
        WeightedInterleaveDataset([42])
    with pytest.raises(ValueError, match="matches no file"):
        ShardedSource("/nonexistent/shard-*.tar")
    with pytest.raises(ValueError, match=r"no reader for shard files ending in \['.py'\]"):
        ShardedSource([__file__])
    with pytest.raises(ValueError, match="`files` lists paths that are not files"):
        ShardedSource([__file__.replace(".py", ".jsonl")])
    with pytest.raises(TypeError, match="`files` must be a glob pattern or a list of paths, got int"):
        ShardedSource(5)
    ds = WeightedInterleaveDataset([lambda: iter(()), range(5)], stopping="all_exhausted")
    with pytest.raises(ValueError, match="source0 has no samples for part 0 of 1"):
        list(ds)
    with pytest.raises(ValueError, match="must hold 'epoch' and 'iterator'"):
        ds.load_state_dict({"position": 3})


def test_resume_at_an_epoch_boundary_and_a_state_taken_before_iterating(tmp_path):
    def build():
        return WeightedInterleaveDataset([Numbers(0, 30), Numbers(10_000, 30)], [0.5, 0.5], stopping="all_exhausted")

    ds = build()
    ds.set_epoch(0)
    epoch0 = list(ds)  # epoch 0 ran to its end; a checkpoint now holds a finished epoch
    saved = json.loads(json.dumps(ds.state_dict()))
    again = build()
    again.load_state_dict(saved)
    assert again.state_dict() == saved  # asked before iterating: the loaded position, not "nothing"
    again.set_epoch(1)  # the next epoch: the finished one's position is dropped
    fresh = build()
    fresh.set_epoch(1)
    assert list(again) == list(fresh) != epoch0


def test_one_shot_iterators_strings_and_mappings_are_refused_as_sources():
    with pytest.raises(TypeError, match="cannot be a one-shot iterator"):
        WeightedInterleaveDataset([iter(range(5))])
    with pytest.raises(TypeError, match="a stream source cannot be a str"):
        WeightedInterleaveDataset(["data/x.jsonl"])
    with pytest.raises(TypeError, match="a stream source cannot be a dict"):
        WeightedInterleaveDataset([{"a": 1}])
    with pytest.raises(ValueError, match="a stream source is empty"):
        WeightedInterleaveDataset([[], range(3)])
    ds = WeightedInterleaveDataset([lambda: None])
    with pytest.raises(TypeError, match="the source's callable returned NoneType"):
        list(ds)
    fresh = WeightedInterleaveDataset([lambda: (i for i in range(3))], stopping="all_exhausted")
    assert list(fresh) == [0, 1, 2] and list(fresh) == [0, 1, 2]  # a callable opens a fresh one each time


def test_weights_by_name_are_normalised_and_a_zero_share_is_never_read():
    sources = {"a": range(10**6), "b": range(10**7, 10**7 + 10**6), "never": range(-100, 0)}
    ds = WeightedInterleaveDataset(sources, {"never": 0.0, "a": 0.4999996, "b": 0.4999996}, stopping="never")
    assert ds.weights_at(0).sum() == 1.0
    it = iter(ds)
    assert min(next(it) for _ in range(200_000)) >= 0
    with pytest.raises(ValueError, match=r"`weights` given by name must name every one of \['a', 'b', 'never'\]"):
        WeightedInterleaveDataset(sources, {"a": 1.0})


def test_corrupt_shards_name_their_file(tmp_path):
    pattern = _tar_shards(tmp_path / "tar", 1, 5)
    path = sorted((tmp_path / "tar").glob("*.tar"))[0]
    raw = path.read_bytes()
    path.write_bytes(raw[:1100])  # cut inside the second member's header
    with pytest.raises(ValueError, match=r"shard-0000.tar: a truncated or corrupt tar shard"):
        list(ShardedSource(pattern))
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl: JSONDecodeError"):
        list(ShardedSource(str(tmp_path / "bad.jsonl")))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"objects\.npy"):
        list(ShardedSource(str(tmp_path / "objects.npy")))  # never unpickled


def test_malformed_saved_states_are_refused_by_name():
    ds = WeightedInterleaveDataset([Numbers(0, 30), Numbers(10_000, 30)])
    it = iter(ds)
    next(it)
    state = ds.state_dict()
    for key, bad in (("passes", [0]), ("cursors", [5, None]), ("step", -1)):
        broken = {**state, "iterator": {**state["iterator"], key: bad}}
        again = WeightedInterleaveDataset([Numbers(0, 30), Numbers(10_000, 30)])
        again.load_state_dict(broken)
        with pytest.raises((ValueError, TypeError), match=f"state_dict\\['{key}'\\]"):
            iter(again)
    cursors = state["iterator"]["cursors"]
    broken = {**state, "iterator": {**state["iterator"], "cursors": [{"file": -1}, cursors[1]]}}
    again = WeightedInterleaveDataset([Numbers(0, 30), Numbers(10_000, 30)])
    again.load_state_dict(broken)
    with pytest.raises(ValueError, match="a saved source position must hold"):
        list(again)
    other = WeightedInterleaveDataset([range(30), Numbers(10_000, 30)])
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="saved with sources="):
        iter(other)
    with pytest.raises(ValueError, match=r"`state_dict\['iterator'\]` must be an iterator state or None"):
        other.load_state_dict({"epoch": 0, "iterator": 5})


@pytest.mark.parametrize("mode", ["random", "exact"])
def test_choices_are_the_sources_the_iterator_reads(mode):
    ds = WeightedInterleaveDataset(
        [range(10**6), range(10**7, 10**7 + 10**6)], [0.3, 0.7], mode=mode, with_source=True, seed=4
    )
    ds.set_epoch(2)
    it = iter(ds)
    read = [next(it)[0] for _ in range(3000)]
    assert ds.choices(2, 3000).tolist() == read
    part = Part(1, 2, 1, 3)  # rank 1 of 2, worker 1 of 3: random mode draws its own stream of choices
    other = ds.choices(2, 500, part).tolist()
    assert (other == read[:500]) == (mode == "exact")  # the exact order is the same in every part


@pytest.mark.parametrize(("n_files", "parts"), [(6, 2), (2, 3)])  # split by file; by sample (fewer files)
def test_a_sharded_source_reopened_at_any_saved_position_continues_exactly(tmp_path, n_files, parts):
    source = ShardedSource(_jsonl_shards(tmp_path, "s", n_files, 7))
    for index in range(parts):
        part = Part(0, 1, index, parts)
        whole = list(source.open(part))
        assert whole  # every part gets samples
        for stop in range(len(whole) + 1):
            cursor = source.open(part)
            head = [next(cursor) for _ in range(stop)]
            state = json.loads(json.dumps(cursor.state()))
            assert head + list(source.open(part, state)) == whole, (index, stop)
    union = [s["id"] for index in range(parts) for s in source.open(Part(0, 1, index, parts))]
    assert sorted(union) == list(range(n_files * 7))  # disjoint parts that cover every sample
