"""Train a tiny classifier on the 80/20 synthetic/real mixture of mixed_data_example.yaml.

Run from the repository root: ``python examples/train_mixed.py [--epochs 2]``.
"""

import argparse
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader

from mixweave import mixture_from_config

here = Path(__file__).parent
parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()

config = yaml.safe_load((here / "mixed_data_example.yaml").read_text())
mixed = mixture_from_config(config, base_dir=here)
loader = DataLoader(
    mixed, batch_size=config["data"]["batch_size"], sampler=mixed.sampler(), num_workers=config["data"]["num_workers"]
)
model = torch.nn.Linear(64, 10)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
for epoch in range(args.epochs):
    loader.sampler.set_epoch(epoch)  # also sets the dataset's epoch
    total = 0.0
    for images, labels in loader:
        loss = torch.nn.functional.cross_entropy(model(images.flatten(1)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * labels.shape[0]
    shares = mixed.report(epoch)["realised"]
    print(
        f"epoch {epoch}: loss {total / len(mixed):.3f}, realised shares synthetic/real {shares[0]:.3f}/{shares[1]:.3f}"
    )
