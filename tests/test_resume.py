"""Kill-and-restart: examples/resume_training.py is SIGKILLed mid-epoch and restarted from its checkpoint.

The loaders: torchdata's StatefulDataLoader with 2 workers (a dev dependency) and torch's DataLoader.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mixweave import WeightedSampler, get_sample_weights

SCRIPT = Path(__file__).resolve().parents[1] / "examples" / "resume_training.py"
EPOCHS, STEPS_PER_EPOCH, BATCH = 3, 21, 48  # the script's settings: 1000 draws per epoch in batches of 48


def _run(out, *extra, **popen):
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--epochs", str(EPOCHS), *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _log(out):
    return [json.loads(line) for line in (out / "seen.jsonl").read_text().splitlines()]


def _expected_batches():
    """The batches of an uninterrupted run, straight from the sampler (independent of the script)."""
    rng = np.random.default_rng(0)  # the script's data: features, then labels
    rng.normal(size=(1200, 8))
    y = rng.choice(4, size=1200, p=[0.8, 0.12, 0.06, 0.02])
    sampler = WeightedSampler(get_sample_weights(y), num_samples=1000, seed=0)
    batches = []
    for epoch in range(EPOCHS):
        plan = sampler.plan(epoch)
        batches += [(epoch, plan[i : i + BATCH].tolist()) for i in range(0, plan.size, BATCH)]
    return batches


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    proc = _run(out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("loader", ["stateful-2-workers", "plain-0-workers"])
def test_killed_mid_epoch_and_restarted_sees_exactly_the_rest(tmp_path, uninterrupted, loader):
    extra = ["--workers", "2"] if loader.startswith("stateful") else ["--plain"]
    log = _log(uninterrupted)
    assert [(e["epoch"], e["rows"]) for e in log] == _expected_batches()  # the script draws the sampler's plan

    # run 1: SIGKILL once it is well into epoch 1 (no chance to clean up or to finish a write)
    proc = _run(tmp_path, "--step-delay", "0.05", *extra)
    deadline = time.monotonic() + 240
    while not (tmp_path / "seen.jsonl").exists() or len(_log(tmp_path)) < STEPS_PER_EPOCH + 8:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 1 and STEPS_PER_EPOCH < saved["step"] < 2 * STEPS_PER_EPOCH  # killed mid-epoch
    before_kill = [e for e in _log(tmp_path) if e["step"] <= saved["step"]]  # later steps were lost with the kill

    # run 2: restart from the checkpoint, to the end
    (tmp_path / "seen.jsonl").rename(tmp_path / "run1.jsonl")
    proc = _run(tmp_path, "--resume", *extra)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert f"resumed at epoch 1, step {saved['step']}" in out
    after = _log(tmp_path)

    # the rest of epoch 1 exactly (no repeat, no gap), then epoch 2 as if never interrupted
    resumed = [(e["epoch"], e["rows"]) for e in before_kill + after]
    assert resumed == [(e["epoch"], e["rows"]) for e in log]
    assert [e["step"] for e in before_kill + after] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    # and the model trained on them is the uninterrupted run's, bit for bit
    final = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    reference = torch.load(uninterrupted / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(final[k], reference[k]) for k in reference)
