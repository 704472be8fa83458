"""Lightning objects for the DDP test (module level, so ``ddp_spawn`` can pickle them into its ranks)."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, TensorDataset

from mixweave import CurriculumState, DynamicCurriculumSampler

ROWS = 300
QUALITY = np.array(["high", "medium", "low"])[np.arange(ROWS) % 3]
NUM_SAMPLES = 200
SEED = 4


def make_sampler(state: CurriculumState, **kwargs: int) -> DynamicCurriculumSampler:
    """The training sampler: ranks come from the process group unless given."""
    return DynamicCurriculumSampler(QUALITY, state, num_samples=NUM_SAMPLES, seed=SEED, **kwargs)


class CurriculumData(pl.LightningDataModule):
    def __init__(self, state: CurriculumState) -> None:
        super().__init__()
        self.state = state

    def train_dataloader(self) -> DataLoader:
        rows = torch.arange(ROWS)
        data = TensorDataset(rows.float()[:, None], rows)
        return DataLoader(data, batch_size=25, sampler=make_sampler(self.state))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=4)


class RecordingModule(pl.LightningModule):
    """Records the rows each rank trains on; its validation loss differs by rank on purpose.

    Rank 0 reports a plateau (its curriculum advances after ``patience``), the
    other ranks a steadily falling loss (theirs alone would never advance).
    The metric is *not* synced, so only the curriculum's broadcast keeps the
    ranks' phases, and with them their shards, consistent.
    """

    def __init__(self, out_dir: str, state: CurriculumState) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.out_dir = out_dir
        self.state = state
        self.seen: dict[int, list[int]] = {}
        self.phases: dict[int, str] = {}

    def training_step(self, batch, _):
        x, rows = batch
        self.seen.setdefault(self.current_epoch, []).extend(rows.tolist())
        self.phases[self.current_epoch] = self.state.phase
        return self.layer(x).pow(2).mean()

    def validation_step(self, batch, _):
        plateau = self.global_rank == 0
        loss = 1.0 if plateau else 1.0 / (self.current_epoch + 1)
        self.log("val_loss", torch.tensor(loss), sync_dist=False)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def on_train_end(self) -> None:
        record = {"world": dist.get_world_size(), "seen": self.seen, "phases": self.phases}
        Path(self.out_dir, f"rank{self.global_rank}.json").write_text(json.dumps(record))

    def teardown(self, stage: str) -> None:
        # Lightning has unwrapped DDP by now. Free it (gc breaks the reducer's cycles) and meet
        # before tearing gloo down; otherwise a rank can abort at exit ("terminate called without
        # an active exception") while gloo threads are still running, as in examples/torchrun_balanced.py.
        gc.collect()
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
