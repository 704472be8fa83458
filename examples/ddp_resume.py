"""Checkpoint and resume under torchrun, on the same or another number of ranks.

Run from the repository root (CPU, gloo)::

    torchrun --standalone --nproc_per_node 2 examples/ddp_resume.py --out runs/ddp-resume
    # kill it mid-epoch: the launcher *and* its workers. torchrun starts every worker in a session
    # of its own, so SIGKILL to the launcher (or to its process group) leaves them running:
    # e.g. `pkill -9 -f examples/ddp_resume.py`
    torchrun --standalone --nproc_per_node 3 examples/ddp_resume.py --out runs/ddp-resume --resume

The recipe: after every step every rank calls ``gather_state(sampler)`` (a collective), and
rank 0 writes one checkpoint with the model, the optimizer and that state, atomically. On
restart every rank loads the same checkpoint and ``sampler.load_state_dict(state)``: the
epoch continues from the first position no rank had yet trained on, shared out over however
many ranks there are now (NOTE [ Elastic resume ] in mixweave.sampling.base).

Every rank appends ``{"epoch", "step", "rank", "world", "rows"}`` per step to
``OUT/seen-{world}-{rank}.jsonl`` before the checkpoint of that step is written.
"""

import argparse
import gc
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from mixweave import ArrayDataset, WeightedSampler, get_sample_weights
from mixweave.sampling import gather_state

parser = argparse.ArgumentParser()
parser.add_argument("--out", type=Path, default=Path("runs/ddp-resume"))
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
parser.add_argument("--step-delay", type=float, default=0.0, help="seconds to sleep per step (to kill it by hand)")
args = parser.parse_args()

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()

rng = np.random.default_rng(0)  # the same data on every rank
x = rng.normal(size=(1200, 8)).astype(np.float32)
y = rng.choice(4, size=1200, p=[0.8, 0.12, 0.06, 0.02])
dataset = ArrayDataset(x, y, np.arange(1200))  # the third field says which row a sample was
sampler = WeightedSampler(get_sample_weights(y), num_samples=1200, seed=0)  # sharded by the process group
loader = DataLoader(dataset, batch_size=20, sampler=sampler)  # the same batch size on every rank: in step

model = DistributedDataParallel(torch.nn.Linear(8, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
checkpoint = args.out / "checkpoint.pt"
start_epoch, step = 0, 0
if args.resume and checkpoint.exists():
    saved = torch.load(checkpoint, weights_only=True)
    model.module.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    sampler.load_state_dict(saved["sampler"])  # saved on another world, maybe: the same global position
    start_epoch, step = saved["epoch"], saved["step"]
    if rank == 0:
        print(f"resumed at epoch {start_epoch}, step {step}, on {world} ranks", flush=True)
args.out.mkdir(parents=True, exist_ok=True)
log = open(args.out / f"seen-{world}-{rank}.jsonl", "a", buffering=1)  # noqa: SIM115 - closed at the end


def save(epoch: int, model: DistributedDataParallel, optimizer: torch.optim.Optimizer) -> None:
    state = gather_state(sampler)  # every rank takes part
    if rank == 0:
        tmp = checkpoint.with_name(f".{checkpoint.name}.tmp")
        payload = {"epoch": epoch, "step": step, "model": model.module.state_dict(), "sampler": state}
        torch.save({**payload, "optimizer": optimizer.state_dict()}, tmp)
        os.replace(tmp, checkpoint)  # a kill never leaves half a checkpoint
    dist.barrier()  # no rank trains on past a step whose checkpoint is not written


for epoch in range(start_epoch, args.epochs):
    sampler.set_epoch(epoch)  # keeps a restored position for the restored epoch
    for features, labels, rows in loader:
        loss = torch.nn.functional.cross_entropy(model(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        log.write(
            json.dumps({"epoch": epoch, "step": step, "rank": rank, "world": world, "rows": rows.tolist()}) + "\n"
        )
        save(epoch, model, optimizer)
        time.sleep(args.step_delay)

log.close()
del model, optimizer  # free DDP's reducer before gloo goes (see examples/torchrun_balanced.py)
gc.collect()
dist.barrier()
dist.destroy_process_group()
