"""Class-balanced training under torchrun: every rank draws its own shard of one global plan.

Run from the repository root (CPU, gloo)::

    torchrun --standalone --nproc_per_node 2 examples/torchrun_balanced.py --epochs 2 --out runs/ddp

``WeightedSampler`` reads ``num_replicas`` and ``rank`` from the process group, so the same
line works in one process and under torchrun. Each rank writes the dataset indices it
trained on to ``OUT/rank{R}.json``; together the ranks cover the single-process plan.
"""

import argparse
import gc
import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from mixweave import ArrayDataset, WeightedSampler, get_sample_weights

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--out", type=Path, default=Path("runs/ddp"))
args = parser.parse_args()

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()

rng = np.random.default_rng(0)  # the same data on every rank
x = rng.normal(size=(2000, 16)).astype(np.float32)
y = rng.choice(4, size=2000, p=[0.85, 0.1, 0.04, 0.01])  # long-tailed classes
dataset = ArrayDataset(x, y, np.arange(2000))  # the third column tells which row each sample was

sampler = WeightedSampler(get_sample_weights(y), num_samples=2000, seed=0)  # sharded by the process group
loader = DataLoader(dataset, batch_size=50, sampler=sampler)
model = DistributedDataParallel(torch.nn.Linear(16, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

seen: dict[int, list[int]] = {}
for epoch in range(args.epochs):
    sampler.set_epoch(epoch)
    counts = torch.zeros(4)
    seen[epoch] = []
    for features, labels, rows in loader:
        loss = torch.nn.functional.cross_entropy(model(features), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        counts += torch.bincount(labels, minlength=4)
        seen[epoch] += rows.tolist()
    dist.all_reduce(counts)  # class shares over all ranks
    if rank == 0:
        print(f"epoch {epoch}: class shares over {world} ranks {(counts / counts.sum()).numpy().round(3).tolist()}")

args.out.mkdir(parents=True, exist_ok=True)
(args.out / f"rank{rank}.json").write_text(json.dumps({"world": world, "seen": seen}))
# Free DDP now (its reducer keeps the gloo process group and its threads alive; gc breaks the
# cycles) and wait for every rank before tearing gloo down. Otherwise those threads can still be
# running when the interpreter exits, and the rank aborts ("terminate called without an active
# exception", SIGABRT) after its work is done.
del model, optimizer
gc.collect()
dist.barrier()
dist.destroy_process_group()
