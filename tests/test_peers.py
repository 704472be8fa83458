"""What the README's comparison table says about the peers, checked against the peers themselves.

Marked ``peers``: the default run (``make test``) deselects them, ``make test-peers`` (and CI)
runs them after installing what they need. Hugging Face ``datasets.interleave_datasets``
(the ``peers`` extra) and torchdata's ``torchdata.nodes.MultiNodeWeightedSampler`` run in
the main environment; MosaicML Streaming needs a torch of its own and runs in
``.venv-peers`` (about 6 GB, built by ``make test-peers``) through tests/peers/mosaic_claims.py.
Without those environments the tests are skipped, saying what is missing; mixweave's column
of the table is covered by the rest of the suite.
"""

import inspect
import json
import os
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mixweave import WeightedConcatDataset

pytestmark = [pytest.mark.peers, pytest.mark.filterwarnings("ignore:.set_vital. is deprecated")]

SHARES = [0.8, 0.2]


def _max_prefix_deviation(source_ids: np.ndarray, shares) -> float:
    """Largest |count of a source in a prefix - prefix length x its share| over all prefixes and sources."""
    onehot = np.eye(len(shares))[source_ids]
    target = np.arange(1, source_ids.size + 1)[:, None] * np.asarray(shares)
    return float(np.abs(np.cumsum(onehot, axis=0) - target).max())


# -- Hugging Face datasets ----------------------------------------------------------------------------------------
def _datasets():
    return pytest.importorskip("datasets", reason="Hugging Face datasets is the `peers` extra: make test-peers")


def _hf_sources():
    Dataset = _datasets().Dataset

    return Dataset.from_dict({"x": list(range(400))}), Dataset.from_dict({"x": list(range(1000, 1100))})


def _hf_mix(seed):
    interleave_datasets = _datasets().interleave_datasets

    return list(interleave_datasets(list(_hf_sources()), probabilities=SHARES, seed=seed)["x"])


def test_hf_interleave_same_seed_same_order_and_no_epochs():
    first, again, other = _hf_mix(0), _hf_mix(0), _hf_mix(1)
    assert first == again and first != other
    interleave_datasets = _datasets().interleave_datasets

    mixed = interleave_datasets(list(_hf_sources()), probabilities=SHARES, seed=0)
    assert not hasattr(mixed, "set_epoch")  # a map-style result is one fixed order: a new epoch is a new call
    assert list(mixed["x"]) == list(mixed["x"])


def test_hf_interleave_draws_sources_independently_not_exactly():
    order = np.array(_hf_mix(0))
    sources = (order >= 1000).astype(int)
    assert _max_prefix_deviation(sources, SHARES) > 3  # i.i.d. draws: prefixes drift from 80/20
    ours = WeightedConcatDataset([list(range(400)), list(range(1000, 1100))], SHARES, length=order.size, mode="exact")
    assert _max_prefix_deviation(ours.plan(0).sources, SHARES) <= 1.0  # mixweave's exact mode, same length


def test_hf_split_dataset_by_node_gives_disjoint_contiguous_shards():
    interleave_datasets = _datasets().interleave_datasets
    from datasets.distributed import split_dataset_by_node

    mixed = interleave_datasets(list(_hf_sources()), probabilities=SHARES, seed=0)
    shards = [list(split_dataset_by_node(mixed, rank=r, world_size=3)["x"]) for r in range(3)]
    assert all(shards)  # every rank gets a block
    assert [x for shard in shards for x in shard] == list(mixed["x"])  # contiguous blocks of the one order


def test_hf_resume_only_for_iterable_datasets():
    interleave_datasets = _datasets().interleave_datasets

    a, b = _hf_sources()
    assert not hasattr(interleave_datasets([a, b], probabilities=SHARES, seed=0), "state_dict")

    def stream():
        return interleave_datasets([a.to_iterable_dataset(), b.to_iterable_dataset()], probabilities=SHARES, seed=0)

    streamed = stream()
    it = iter(streamed)
    seen = [next(it)["x"] for _ in range(37)]
    resumed = stream()  # as after a restart
    resumed.load_state_dict(streamed.state_dict())
    rest = [row["x"] for row in resumed]
    assert seen + rest == [row["x"] for row in stream()]


def test_hf_and_torchdata_weight_sources_not_samples():
    interleave_datasets = _datasets().interleave_datasets
    from torchdata.nodes import MultiNodeWeightedSampler

    assert "probabilities" in inspect.signature(interleave_datasets).parameters
    params = inspect.signature(MultiNodeWeightedSampler).parameters
    assert "weights" in params and "source_nodes" in params  # one weight per source node
    for name in ("sample_weights", "class_weights", "within"):
        assert name not in inspect.signature(interleave_datasets).parameters and name not in params


# -- torchdata -------------------------------------------------------------------------------------------------------
def _td_stream(seed, rank=None, world_size=None, n=300):
    from torchdata.nodes import IterableWrapper, MultiNodeWeightedSampler

    sources = {"a": IterableWrapper(range(400)), "b": IterableWrapper(range(1000, 1100))}
    node = MultiNodeWeightedSampler(sources, {"a": 0.8, "b": 0.2}, rank=rank, world_size=world_size, seed=seed)
    it = iter(node)
    return node, [next(it) for _ in range(n)]


def test_torchdata_weighted_sampler_same_seed_same_stream_and_random_shares():
    _, first = _td_stream(0)
    _, again = _td_stream(0)
    _, other = _td_stream(1)
    assert first == again and first != other
    sources = (np.array(first) >= 1000).astype(int)
    assert _max_prefix_deviation(sources, SHARES) > 3  # drawn with torch.multinomial, not in exact quotas


def test_torchdata_ranks_draw_their_own_streams_not_shards_of_one():
    _, rank0 = _td_stream(0, rank=0, world_size=2)
    _, rank1 = _td_stream(0, rank=1, world_size=2)
    assert rank0 != rank1
    # each rank walks the same sources itself: the ranks overlap, they are not parts of one plan
    assert set(rank0) & set(rank1)


def test_torchdata_weighted_sampler_resumes_from_state_dict():
    from torchdata.nodes import IterableWrapper, MultiNodeWeightedSampler

    def make():
        sources = {"a": IterableWrapper(range(400)), "b": IterableWrapper(range(1000, 1100))}
        return MultiNodeWeightedSampler(sources, {"a": 0.8, "b": 0.2}, seed=0)

    node = make()
    it = iter(node)
    seen = [next(it) for _ in range(41)]
    state = node.state_dict()
    resumed = make()
    resumed.reset(state)
    rest = [next(resumed) for _ in range(50)]
    reference = make()
    ref_it = iter(reference)
    assert seen + rest == [next(ref_it) for _ in range(91)]


# -- MosaicML Streaming (in its own environment, .venv-peers: see the Makefile) --------------------------------------
_DEFAULT_PEERS = Path(__file__).resolve().parents[1] / ".venv-peers" / "bin" / "python"
PEERS_PYTHON = Path(os.environ.get("MIXWEAVE_PEERS_PYTHON", _DEFAULT_PEERS))
MOSAIC_SCRIPT = Path(__file__).resolve().parent / "peers" / "mosaic_claims.py"


def _mosaic(root, *args, env=None, background=False):
    if not PEERS_PYTHON.exists():
        pytest.skip(f"{PEERS_PYTHON} is missing: `make test-peers` builds the MosaicML Streaming environment")
    cmd = [str(PEERS_PYTHON), str(MOSAIC_SCRIPT), str(root), *map(str, args)]
    full_env = {**os.environ, **(env or {})}
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    done = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory):
    root = tmp_path_factory.mktemp("mosaic")
    return root, _mosaic(root)  # writes two MDS sources: 400 rows (0..399) and 100 rows (1000..1099)


@pytest.mark.slow
def test_mosaic_same_seed_same_order_new_shuffle_each_epoch_exact_totals_not_prefixes(mosaic):
    _, facts = mosaic
    first = facts["first"]
    assert len(first) == facts["epoch_size"] == 500
    assert facts["again"] == first and facts["other_seed"] != first  # the order follows shuffle_seed
    assert facts["second"] != first  # the same object reshuffles for its next epoch
    assert facts["b_count"] == 100  # proportions 0.8 / 0.2: exact totals per epoch ...
    assert facts["prefix_deviation"] > 3  # ... but prefixes drift (mixweave's exact mode stays within 1)


@pytest.mark.slow
def test_mosaic_resumes_mid_epoch_from_state_dict(mosaic):
    _, facts = mosaic
    assert facts["resumed"] == facts["first"]  # 123 samples, state_dict, a new dataset, the rest


def test_mosaic_weights_streams_not_samples(mosaic):
    _, facts = mosaic
    assert {"proportion", "repeat", "choose"} <= set(facts["stream_params"])
    assert not {"weights", "sample_weights", "class_weights"} & set(facts["stream_params"])


@pytest.mark.slow
def test_mosaic_ranks_take_turns_through_one_order(mosaic):
    """Two ranks (Streaming reads RANK/WORLD_SIZE and starts gloo itself): disjoint, and interleaved they
    are the single-process epoch."""
    root, facts = mosaic
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2"}
    procs = [_mosaic(root, r, 2, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, background=True) for r in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    shards = [json.loads(out.splitlines()[-1])["samples"] for out, _ in outs]
    assert not set(shards[0]) & set(shards[1])
    assert [x for pair in zip(*shards, strict=True) for x in pair] == facts["first"]


# -- iterstrat (iterative-stratification) --------------------------------------------------------------------------
def test_split_quality_equals_iterstrat_on_the_same_rows_and_groups_cost_little():
    """The splitter is as good as iterstrat's MultilabelStratifiedKFold on the same rows, and keeping
    groups whole (about 3 rows per group here) costs little of that quality. Fixed seeds; the bounds hold
    with room: ungrouped folds matched iterstrat's worst label deviation exactly for these seeds, grouped
    folds were within 1.8x of it."""
    ml = pytest.importorskip("iterstrat.ml_stratifiers", reason="iterative-stratification is the `peers` extra")
    from mixweave.data.splits import MultilabelStratifiedKFold, split_prevalence

    for seed in range(3):
        rng = np.random.default_rng(seed)
        y = (rng.random((3000, 6)) < [0.4, 0.2, 0.1, 0.05, 0.02, 0.01]).astype(int)
        groups = rng.integers(0, 1000, 3000)
        X = np.zeros((3000, 1))

        def worst(folds, y=y):
            table = split_prevalence(y, folds)
            return float(np.abs(table[1:] - table[0]).max())

        theirs = worst([t for _, t in ml.MultilabelStratifiedKFold(5, shuffle=True, random_state=seed).split(X, y)])
        ours = worst([t for _, t in MultilabelStratifiedKFold(5, shuffle=True, random_state=seed).split(X, y)])
        grouped = worst(
            [t for _, t in MultilabelStratifiedKFold(5, shuffle=True, random_state=seed).split(X, y, groups)]
        )
        assert ours <= 1.25 * theirs
        assert grouped <= 2.5 * theirs
