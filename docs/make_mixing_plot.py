"""Draw docs/mixing_shares.png: running share of the small source through one epoch."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from mixweave import UniformConcatDataset, WeightedConcatDataset

synthetic, real = list(range(5000)), list(range(300))
fig, ax = plt.subplots(figsize=(7, 3.5))
for label, ds in (
    ("weighted, exact", WeightedConcatDataset([synthetic, real], [0.8, 0.2], length=2000, mode="exact")),
    ("weighted, random", WeightedConcatDataset([synthetic, real], [0.8, 0.2], length=2000, seed=1)),
    ("uniform", UniformConcatDataset([synthetic, real], length=2000, seed=1)),
):
    src = ds.plan().sources
    ax.plot(np.cumsum(src == 1) / np.arange(1, src.size + 1), label=label)
ax.axhline(0.2, color="k", lw=0.8, ls="--", label="target 0.2")
ax.set_ylim(0, 0.4)
ax.set_xlabel("position in epoch")
ax.set_ylabel("running share of 'real'")
ax.legend()
fig.tight_layout()
fig.savefig(Path(__file__).with_name("mixing_shares.png"), dpi=110)
