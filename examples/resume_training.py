"""Kill a training run at any moment, restart it, and it goes on as if never interrupted.

Run from the repository root::

    python examples/resume_training.py --out runs/resume              # kill it mid-epoch (Ctrl-C, SIGKILL)
    python examples/resume_training.py --out runs/resume --resume     # continues from runs/resume/checkpoint.pt

The run checkpoints after every step (model, optimizer, loader state, atomically: a
kill never leaves a half-written checkpoint). Restarted, it sees exactly the indices
that epoch had not yet delivered, then the following epochs exactly as an
uninterrupted run would: the class-balanced plan is regenerated from (seed, epoch),
never replayed. With torchdata installed the loader is a ``StatefulDataLoader`` (any
``--workers``), which keeps the sampler's state in its own; without it, a plain
``DataLoader`` with ``--workers 0`` and the sampler's ``state_dict()``.

Every step appends ``{"epoch", "step", "rows"}`` to ``OUT/seen.jsonl`` (before the
checkpoint is written, so a step in the checkpoint is always in the log).
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from mixweave import ArrayDataset, WeightedSampler, get_sample_weights

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, default=Path("runs/resume"))
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--workers", type=int, default=0)
parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
parser.add_argument("--plain", action="store_true", help="use torch's DataLoader even if torchdata is installed")
parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to sleep per step (to kill it by hand)")
args = parser.parse_args()

try:
    from torchdata.stateful_dataloader import StatefulDataLoader
except ImportError:
    StatefulDataLoader = None
stateful = StatefulDataLoader is not None and not args.plain
if not stateful and args.workers:
    parser.error("--workers > 0 needs torchdata's StatefulDataLoader: the plain DataLoader fetches ahead")

rng = np.random.default_rng(0)
x = rng.normal(size=(1200, 8)).astype(np.float32)
y = rng.choice(4, size=1200, p=[0.8, 0.12, 0.06, 0.02])  # long-tailed classes
dataset = ArrayDataset(x, y, np.arange(1200))  # the third field says which row a sample was
sampler = WeightedSampler(get_sample_weights(y), num_samples=1000, seed=0)
loader_cls = StatefulDataLoader if stateful else DataLoader
loader = loader_cls(dataset, batch_size=48, sampler=sampler, num_workers=args.workers)  # 20 full batches + 40

model = torch.nn.Linear(8, 4)
torch.nn.init.zeros_(model.weight)  # no global RNG: every run starts from the same model
torch.nn.init.zeros_(model.bias)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

checkpoint = args.out / "checkpoint.pt"
start_epoch, step = 0, 0
if args.resume and checkpoint.exists():
    saved = torch.load(checkpoint, weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    (loader if stateful else sampler).load_state_dict(saved["data"])
    start_epoch, step = saved["epoch"], saved["step"]
    print(f"resumed at epoch {start_epoch}, step {step}")
args.out.mkdir(parents=True, exist_ok=True)


def save(epoch: int) -> None:
    """Write the checkpoint beside the old one, then rename over it (atomic on POSIX)."""
    data = loader.state_dict() if stateful else sampler.state_dict()
    state = {"epoch": epoch, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    tmp = checkpoint.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        torch.save({**state, "data": data}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, checkpoint)


with open(args.out / "seen.jsonl", "a") as log:
    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)  # keeps a restored position when it is the same epoch
        for features, labels, rows in loader:
            loss = torch.nn.functional.cross_entropy(model(features), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            log.write(json.dumps({"epoch": epoch, "step": step, "rows": rows.tolist()}) + "\n")
            log.flush()
            save(epoch)
            time.sleep(args.step_delay)
        save(epoch + 1)  # the epoch is done: a restart goes on with the next one
        print(f"epoch {epoch} done at step {step}")
