"""Train on two streams of tar shards mixed 70/30, with DataLoader workers; kill it at any moment and resume.

Run from the repository root (DATA holds ``real/*.tar`` and ``synthetic/*.tar``, WebDataset-style:
``<key>.x`` two float32 features, ``<key>.cls`` the label)::

    python examples/stream_training.py --data DATA --out runs/stream            # kill it (SIGKILL, Ctrl-C)
    python examples/stream_training.py --data DATA --out runs/stream --resume   # goes on exactly

Each DataLoader worker reads its own tar files of each source (ShardedSource
splits by file) and interleaves them 70/30. ``StatefulDataLoader`` saves every
worker's position; the run checkpoints after every step (model, optimizer,
loader), atomically. Restarted, it trains on exactly the samples an
uninterrupted run would have seen. ``OUT/seen.jsonl`` logs each step's sample
keys (before the checkpoint is written).
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from mixweave import ShardedSource, WeightedInterleaveDataset
from mixweave.sampling import read_tar

parser = argparse.ArgumentParser()
parser.add_argument("--data", type=Path, required=True)
parser.add_argument("--out", type=Path, default=Path("runs/stream"))
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--workers", type=int, default=2)
parser.add_argument("--resume", action="store_true")
parser.add_argument("--step-delay", type=float, default=0.0)
args = parser.parse_args()


def decode(path: str):
    """A tar shard's samples as {"key", "x", "y"} (module level: DataLoader workers may need to pickle it)."""
    for sample in read_tar(path):
        yield {"key": sample["__key__"], "x": np.frombuffer(sample["x"], np.float32).copy(), "y": int(sample["cls"])}


real = ShardedSource(str(args.data / "real" / "*.tar"), read=decode)
synthetic = ShardedSource(str(args.data / "synthetic" / "*.tar"), read=decode)
sources = {"real": real, "synthetic": synthetic}
dataset = WeightedInterleaveDataset(sources, [0.7, 0.3], stopping="all_exhausted", seed=0)
loader = StatefulDataLoader(dataset, batch_size=8, num_workers=args.workers)

model = torch.nn.Linear(2, 2)
torch.nn.init.zeros_(model.weight)
torch.nn.init.zeros_(model.bias)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
checkpoint = args.out / "checkpoint.pt"
start_epoch, step = 0, 0
if args.resume and checkpoint.exists():
    saved = torch.load(checkpoint, weights_only=False)  # our own file: it holds the loader's state
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    if saved["loader"] is not None:  # None: saved at the end of an epoch
        loader.load_state_dict(saved["loader"])
    start_epoch, step = saved["epoch"], saved["step"]
    print(f"resumed at step {step}")
args.out.mkdir(parents=True, exist_ok=True)


def save(epoch: int, loader_state) -> None:
    state = {"epoch": epoch, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict()}
    tmp = checkpoint.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        torch.save({**state, "loader": loader_state}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, checkpoint)


with open(args.out / "seen.jsonl", "a") as log:
    for epoch in range(start_epoch, args.epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            loss = torch.nn.functional.cross_entropy(model(batch["x"]), batch["y"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            log.write(json.dumps({"epoch": epoch, "step": step, "keys": list(batch["key"])}) + "\n")
            log.flush()
            save(epoch, loader.state_dict())
            time.sleep(args.step_delay)
        # the epoch is done: a restart begins the next one with a fresh loader state
        save(epoch + 1, None)
        print(f"epoch {epoch} done at step {step}")
