"""Adaptive mixing in a plain training loop: source shares that follow the training loss, kill-safe.

Run from the repository root::

    python examples/adaptive_mixing.py --out runs/adaptive                     # EXP3 (Online Data Mixing)
    python examples/adaptive_mixing.py --out runs/adaptive --algorithm doremi
    python examples/adaptive_mixing.py --out runs/adaptive --resume            # after a kill: goes on exactly
    mixweave inspect runs/adaptive/shares.jsonl --plot runs/adaptive/shares.png

Three sources of 2-D points: two are easy, the third ("hard") has labels that
depend on its features in a way a linear model learns slowly, so its loss
stays high and the mixture moves its share up. Each step reports the
per-sample losses to the mixture (``observe``); the sampler draws every
segment of ``--segment`` samples with the shares in force when it starts.

The run checkpoints after every step (model, optimizer, sampler and mixture,
atomically). Killed and restarted with ``--resume`` it sees exactly the
batches, and reaches exactly the shares, of a run never interrupted. Logs in
OUT: ``seen.jsonl`` (every step's rows, written before its checkpoint),
``shares.jsonl`` (the mixture's history, one update per line) and
``segments.jsonl`` (the shares each segment was drawn with: replaying them
with ``AdaptiveSampler.load_share_log`` reproduces the indices without the model).
"""

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from mixweave import AdaptiveMixture, AdaptiveSampler, ArrayDataset

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, default=Path("runs/adaptive"))
parser.add_argument("--algorithm", choices=["exp3", "doremi"], default="exp3")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--segment", type=int, default=64, help="samples per segment (a multiple of --batch)")
parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to sleep per step (to kill it by hand)")
args = parser.parse_args()

# The data: rows 0-399 "easy-a", 400-799 "easy-b", 800-1199 "hard"; no global RNG anywhere.
rng = np.random.default_rng(0)
x = rng.normal(size=(1200, 2)).astype(np.float32)
y = np.concatenate([x[:800, 0] > 0, np.sin(3 * x[800:, 0]) * np.cos(3 * x[800:, 1]) > 0]).astype(np.int64)
groups = np.repeat([0, 1, 2], 400)
names = ["easy-a", "easy-b", "hard"]
dataset = ArrayDataset(x, y, np.arange(1200))  # the third field says which row a sample was

if args.algorithm == "exp3":
    mixture = AdaptiveMixture(3, algorithm="exp3", learning_rate=4.0, names=names)
else:  # the reference model's losses: what a converged model reaches on each source
    mixture = AdaptiveMixture(3, algorithm="doremi", learning_rate=0.05, reference_losses=[0.1, 0.1, 0.3], names=names)
sampler = AdaptiveSampler(mixture, groups, num_samples=960, segment_size=args.segment, seed=0)
loader = DataLoader(dataset, batch_size=args.batch, sampler=sampler)  # 0 workers: the sampler is read per batch

model = torch.nn.Linear(2, 2)
torch.nn.init.zeros_(model.weight)
torch.nn.init.zeros_(model.bias)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

checkpoint = args.out / "checkpoint.pt"
start_epoch, step = 0, 0
if args.resume and checkpoint.exists():
    saved = torch.load(checkpoint, weights_only=True)
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    sampler.load_state_dict(saved["sampler"])
    mixture.load_state_dict(saved["mixture"])
    start_epoch, step = saved["epoch"], saved["step"]
    print(f"resumed at epoch {start_epoch}, step {step}")
args.out.mkdir(parents=True, exist_ok=True)
if not args.resume:  # a fresh run: fresh logs (a resumed one appends to them)
    for name in ("seen.jsonl", "segments.jsonl"):
        (args.out / name).unlink(missing_ok=True)


def save(epoch: int) -> None:
    """Write the checkpoint beside the old one, then rename over it (atomic on POSIX)."""
    state = {
        "epoch": epoch,
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "sampler": sampler.state_dict(),
        "mixture": mixture.state_dict(),
    }
    tmp = checkpoint.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, checkpoint)


with open(args.out / "seen.jsonl", "a") as log, open(args.out / "segments.jsonl", "a") as segments:
    # each segment's shares, appended when it starts (a resumed run may write one again, with the same shares)
    sampler.segment_hooks.append(
        lambda _, epoch, segment, shares: segments.write(
            json.dumps({"epoch": epoch, "segment": segment, "shares": shares.tolist()}) + "\n"
        )
    )
    for epoch in range(start_epoch, args.epochs):
        sampler.set_epoch(epoch)  # keeps a restored position when it is the same epoch
        for features, labels, rows in loader:
            losses = torch.nn.functional.cross_entropy(model(features), labels, reduction="none")
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()
            mixture.observe(groups[rows.numpy()], losses.detach())  # the plain-loop hook: one call per step
            step += 1
            log.write(json.dumps({"epoch": epoch, "step": step, "rows": rows.tolist()}) + "\n")
            log.flush()
            save(epoch)
            time.sleep(args.step_delay)
        save(epoch + 1)  # the epoch is done: a restart goes on with the next one
        print(f"epoch {epoch} done at step {step}: {mixture}")

mixture.write_history(args.out / "shares.jsonl")
