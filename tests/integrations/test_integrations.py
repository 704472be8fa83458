"""Lightning, MLflow and Optuna integrations, with the real packages (dev extras)."""

import logging
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mixweave import CurriculumState, DynamicCurriculumSampler, JointSamplingConfig, build_sampler

QUALITY = np.array(["high"] * 100 + ["medium"] * 100 + ["low"] * 100)


def _fit(tmp_path, module, *loaders, callbacks=(), max_epochs=3, datamodule=None, ckpt_path=None, **trainer_kwargs):
    """Run a quiet CPU Trainer (one process unless ``devices``/``strategy`` say otherwise); returns it."""
    import lightning.pytorch as pl

    trainer_kwargs.setdefault("devices", 1)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=list(callbacks),
        **trainer_kwargs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about worker counts
        trainer.fit(module, *loaders, datamodule=datamodule, ckpt_path=ckpt_path)
    return trainer


@pytest.mark.slow
def test_curriculum_callback_advances_phases_in_a_real_trainer(tmp_path):
    from mixweave.integrations.lightning import CurriculumCallback

    state = CurriculumState(patience=1)
    sampler = DynamicCurriculumSampler(QUALITY, state, num_samples=600, seed=0)
    data = TensorDataset(torch.arange(300).float()[:, None], torch.arange(300))
    seen: dict[int, list[int]] = {}

    callback = CurriculumCallback(state, monitor="val_loss")
    _fit(
        tmp_path,
        _indices_module(seen, val_loss=1.0, lr=0.0),  # a plateau from the start
        DataLoader(data, batch_size=100, sampler=sampler),
        DataLoader(data, batch_size=100),
        callbacks=[callback],
        num_sanity_val_steps=0,
    )
    # epoch 0 sets the best loss, epoch 1 plateaus -> expand, epoch 2 plateaus -> robust
    assert [phase for _, phase in callback.history] == ["warmup", "expand", "robust"]
    share_high = {e: float(np.mean(QUALITY[np.array(ix)] == "high")) for e, ix in seen.items()}
    assert share_high[0] == pytest.approx(0.9, abs=0.06)  # warmup; binomial sd 0.012 at n=600
    assert share_high[2] == pytest.approx(0.6, abs=0.06)  # the plan of epoch 2 is drawn in phase "expand"
    assert sampler.epoch == 2  # Lightning set the epoch of its last epoch


@pytest.mark.slow
def test_weight_statistics_logged_to_a_local_mlflow_store(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    targets = np.full((300, 2), np.nan)
    targets[:250, 0] = 1.0
    targets[250:, 1] = 1.0
    sampler = build_sampler(
        {"task_sampling_alpha": 0.5, "log_to_mlflow": True, "log_weight_statistics": False}, targets, num_samples=10
    )
    with mlflow.start_run() as run:
        list(sampler)
        list(sampler)
    client = mlflow.tracking.MlflowClient()
    history = client.get_metric_history(run.info.run_id, "sampling/effective_samples")
    assert [m.step for m in history] == [0, 1]
    assert history[0].value == pytest.approx(sampler.weight_stats()["effective_samples"])
    assert client.get_metric_history(run.info.run_id, "sampling/entropy")


def test_optuna_suggests_validated_configs():
    import optuna

    from mixweave.integrations.optuna import suggest_sampling_config

    optuna.logging.set_verbosity(logging.WARNING)
    configs: list[JointSamplingConfig] = []

    def objective(trial):
        config = suggest_sampling_config(trial, space={"patience": (1, 3)}, seed=7)
        configs.append(config)
        return config.task_oversampling.alpha

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=12)
    assert all(0.0 <= c.task_oversampling.alpha <= 1.0 and c.seed == 7 for c in configs)
    assert {c.curriculum.enabled for c in configs} == {True, False}
    assert all(1 <= c.curriculum.patience <= 3 for c in configs if c.curriculum.enabled)
    with pytest.raises(ValueError, match=r"`space` has unknown keys \['gamma'\]"):
        suggest_sampling_config(optuna.trial.FixedTrial({}), space={"gamma": (0, 1)})


def test_callback_rejects_a_non_state():
    from mixweave.integrations.lightning import CurriculumCallback

    with pytest.raises(TypeError, match=r"`curriculum_state` must be a CurriculumState, got dict"):
        CurriculumCallback({})


@pytest.mark.slow
def test_mixed_dataset_in_a_lightning_datamodule(tmp_path):
    import lightning.pytorch as pl

    from mixweave import WeightedConcatDataset

    synthetic = TensorDataset(torch.zeros(500, 1), torch.zeros(500, dtype=torch.long))
    real = TensorDataset(torch.ones(40, 1), torch.ones(40, dtype=torch.long))
    mixed = WeightedConcatDataset([synthetic, real], [0.8, 0.2], length=100, mode="exact", seed=0)
    batches: dict[int, list[int]] = {}

    class Data(pl.LightningDataModule):
        def train_dataloader(self):
            return DataLoader(mixed, batch_size=20, sampler=mixed.sampler())

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

        def training_step(self, batch, _):
            x, is_real = batch
            batches.setdefault(self.current_epoch, []).append(int(is_real.sum()))
            return self.layer(x).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    _fit(tmp_path, Tiny(), datamodule=Data())
    assert sorted(batches) == [0, 1, 2]
    assert all(counts == [4] * 5 for counts in batches.values())  # every batch of 20: exactly 4 real
    assert mixed.epoch == 2  # Lightning's set_epoch reached the dataset through its sampler


def _run_with_early_stopping(tmp_path, reset: bool) -> int:
    import lightning.pytorch as pl

    from mixweave import JointSamplingConfig

    config = JointSamplingConfig.from_mapping(
        {"curriculum": {"enabled": True, "patience": 1, "reset_early_stopping_on_phase_change": reset}}
    )
    state = config.curriculum.make_state()
    sampler = DynamicCurriculumSampler(QUALITY, state, num_samples=100, seed=0)
    data = TensorDataset(torch.zeros(300, 1))
    epochs: list[int] = []

    class Flat(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

        def training_step(self, batch, _):
            epochs.append(self.current_epoch)
            return self.layer(batch[0]).pow(2).mean()

        def validation_step(self, batch, _):
            self.log("val_loss", torch.tensor(1.0))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    from mixweave.integrations.lightning import CurriculumCallback

    callback = CurriculumCallback.from_config(config.curriculum, state)
    callbacks = [callback, pl.callbacks.EarlyStopping("val_loss", patience=2)]
    _fit(
        tmp_path,
        Flat(),
        DataLoader(data, batch_size=100, sampler=sampler),
        DataLoader(data, batch_size=100),
        callbacks=callbacks,
        max_epochs=10,
        num_sanity_val_steps=0,
    )
    return max(epochs) + 1


@pytest.mark.slow
def test_reset_early_stopping_on_phase_change(tmp_path):
    # a flat validation loss: EarlyStopping(patience=2) stops after 3 epochs; with the reset, each of the
    # three phase changes (epochs 1-3) restarts its patience, so it stops 3 epochs later
    assert _run_with_early_stopping(tmp_path / "plain", reset=False) == 3
    assert _run_with_early_stopping(tmp_path / "reset", reset=True) == 6


@pytest.mark.slow
def test_lightning_ddp_spawn_two_ranks_shard_one_plan_and_agree_on_the_curriculum(tmp_path):
    """A real 2-process Trainer (ddp_spawn, gloo): each rank trains on its shard of the global plan.

    ``use_distributed_sampler=False`` keeps Lightning from wrapping the sampler (it
    would shard the rank's shard again); the curriculum phase follows rank 0.
    """
    import json

    from mixweave.integrations.lightning import CurriculumCallback
    from tests.lightning_ddp import CurriculumData, RecordingModule, make_sampler

    state = CurriculumState(patience=1)
    _fit(
        tmp_path,
        RecordingModule(str(tmp_path), state),
        datamodule=CurriculumData(state),
        callbacks=[CurriculumCallback(state)],
        max_epochs=4,
        devices=2,
        strategy="ddp_spawn",
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
    )
    runs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [run["world"] for run in runs] == [2, 2]
    # epoch 0 sets the best loss; with patience 1 every later epoch is a plateau on rank 0 (a new phase)
    expected_phases = {"0": "warmup", "1": "warmup", "2": "expand", "3": "robust"}
    assert runs[0]["phases"] == expected_phases
    assert runs[1]["phases"] == expected_phases  # rank 1's own losses kept falling: it follows rank 0
    for epoch in range(4):
        reference = CurriculumState(patience=1)
        reference.set_phase(expected_phases[str(epoch)])
        shards = [make_sampler(reference, num_replicas=2, rank=r).plan(epoch) for r in range(2)]
        for r in range(2):
            assert runs[r]["seen"][str(epoch)] == shards[r].tolist(), f"rank {r} epoch {epoch}"
        single = make_sampler(reference, num_replicas=1, rank=0).global_plan(epoch)
        assert np.array_equal(np.stack(shards, axis=1).ravel(), single)  # disjoint, union = the global plan


def _stateful_cases():
    """A weighted sampler and a mixed dataset's sampler, each over a dataset that returns its row/position."""
    from mixweave import WeightedConcatDataset, WeightedSampler

    rows = TensorDataset(torch.arange(120))

    def weighted():
        return rows, WeightedSampler(np.linspace(0.1, 1.0, 120), num_samples=90, seed=2)

    def mixed():
        data = WeightedConcatDataset([list(range(50)), list(range(100, 130))], [0.6, 0.4], length=90, seed=2)
        return data, data.sampler()

    return {"weighted": weighted, "mixed": mixed}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.set_vital. is deprecated")
@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("case", ["weighted", "mixed"])
def test_stateful_dataloader_resumes_at_every_step(case, num_workers):
    """torchdata's StatefulDataLoader saves the sampler's state with its own; restoring it after any batch
    (the partial last one and the finished epoch included) yields exactly the rest, then the next epoch."""
    from torchdata.stateful_dataloader import StatefulDataLoader

    make = _stateful_cases()[case]

    def loader():
        data, sampler = make()
        return StatefulDataLoader(data, batch_size=16, sampler=sampler, num_workers=num_workers)

    def flat(batches):
        return [int(v) for b in batches for v in (b[0] if isinstance(b, list) else b)]

    reference = loader()
    epochs = [flat(reference), flat(reference)]  # 6 batches per epoch, the last one of 10
    assert epochs[0] != epochs[1] and len(epochs[0]) == 90
    for stop in [1, 2, 3, 4, 5, 6, "finished"]:
        first = loader()
        it = iter(first)
        seen = flat(next(it) for _ in range(6 if stop == "finished" else stop))
        if stop == "finished":
            assert next(it, None) is None  # the loader has raised StopIteration: its state says so
        state = first.state_dict()
        del it, first
        resumed = loader()
        resumed.load_state_dict(state)
        if stop == "finished":  # a finished state starts the next epoch (torchdata's rule)
            assert seen == epochs[0] and flat(resumed) == epochs[1]
            continue
        rest = flat(resumed)  # after the 6th (partial) batch the rest is empty, not the next epoch
        assert seen + rest == epochs[0], f"stop after {stop} batches"
        assert flat(resumed) == epochs[1], f"epoch after the resume (stop {stop})"


def _indices_module(seen, *, val_loss=None, lr=0.01):
    """A one-weight module recording the row indices of every training batch per epoch (``seen``);
    with ``val_loss``, its validation step logs that constant."""
    import lightning.pytorch as pl

    class Recorder(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)

        def training_step(self, batch, _):
            x, idx = batch
            seen.setdefault(self.current_epoch, []).extend(idx.tolist())
            return self.layer(x).pow(2).mean()

        def validation_step(self, batch, _):
            if val_loss is not None:
                self.log("val_loss", torch.tensor(val_loss))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=lr)

    return Recorder()


class _Crash(Exception):
    pass


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_sampler_checkpoint_resumes_a_lightning_run_mid_epoch_exactly(tmp_path, workers):
    """A checkpoint written after step 4 of 10, then a crash; fit(ckpt_path=...) trains on exactly the rest of
    epoch 0, then epoch 1, although Lightning (and its workers) had fetched batches ahead of step 4."""
    import lightning.pytorch as pl

    from mixweave import WeightedSampler
    from mixweave.integrations.lightning import SamplerCheckpoint

    class CrashAfterStep4(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 4:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                raise _Crash

    data = TensorDataset(torch.arange(100).float()[:, None], torch.arange(100))
    weights = np.linspace(0.1, 1.0, 100)

    def run(seen, callbacks=(), ckpt_path=None):
        sampler = WeightedSampler(weights, seed=0)
        loader = DataLoader(data, batch_size=10, sampler=sampler, num_workers=workers)
        callbacks = [SamplerCheckpoint(sampler), *callbacks]
        _fit(
            tmp_path,
            _indices_module(seen),
            loader,
            callbacks=callbacks,
            max_epochs=2,
            ckpt_path=ckpt_path,
            use_distributed_sampler=False,
        )

    first_seen: dict[int, list[int]] = {}
    with pytest.raises(_Crash):
        run(first_seen, [CrashAfterStep4()])
    assert len(first_seen[0]) == 40
    second_seen: dict[int, list[int]] = {}
    run(second_seen, ckpt_path=str(tmp_path / "mid.ckpt"))
    plan = WeightedSampler(weights, seed=0)
    assert first_seen[0] + second_seen[0] == plan.plan(0).tolist()  # no repeat, no gap
    assert second_seen[1] == plan.plan(1).tolist()  # then the next epoch as if never interrupted


def test_sampler_checkpoint_needs_a_mixweave_sampler_and_has_its_own_state_key():
    from torch.utils.data import RandomSampler

    from mixweave import WeightedSampler
    from mixweave.integrations.lightning import SamplerCheckpoint

    with pytest.raises(TypeError, match="`sampler` must be a mixweave sampler, got RandomSampler"):
        SamplerCheckpoint(RandomSampler(range(3)))
    a, b = SamplerCheckpoint(WeightedSampler([1.0, 2.0]), state_key="train"), SamplerCheckpoint(WeightedSampler([1.0]))
    assert (a.state_key, b.state_key) == ("train", "mixweave_sampler")


@pytest.mark.slow
def test_two_curriculum_callbacks_keep_their_own_state_in_one_checkpoint(tmp_path):
    from mixweave.integrations.lightning import CurriculumCallback

    first, second = CurriculumState(patience=1), CurriculumState(patience=1)
    first.set_phase("robust")
    callbacks = [CurriculumCallback(first, state_key="a"), CurriculumCallback(second, state_key="b")]
    data = TensorDataset(torch.arange(20).float()[:, None], torch.arange(20))
    trainer = _fit(tmp_path, _indices_module({}), DataLoader(data, batch_size=10), callbacks=callbacks, max_epochs=1)
    trainer.save_checkpoint(tmp_path / "two.ckpt")
    saved = torch.load(tmp_path / "two.ckpt", weights_only=False)["callbacks"]
    assert saved["a"]["curriculum"]["phase"] == "robust" and saved["b"]["curriculum"]["phase"] == "warmup"
    assert CurriculumCallback(first).state_key != CurriculumCallback(first, "val_auc").state_key  # by monitor


@pytest.mark.parametrize("stop", [0, 1, 3, 7, 8])
def test_samplers_under_torchdata_nodes_resume_from_the_loaders_state(stop):
    """SamplerWrapper + Batcher + Loader (torchdata.nodes): restored from Loader.state_dict() after `stop`
    batches, the rest of the epoch and the next epoch are the sampler's plans."""
    from torchdata.nodes import Batcher, Loader, SamplerWrapper

    from mixweave import WeightedSampler

    weights = np.linspace(0.1, 1.0, 50)

    def loader():
        sampler = WeightedSampler(weights, num_samples=30, seed=4)
        return Loader(Batcher(SamplerWrapper(sampler), batch_size=4, drop_last=False))

    plans = WeightedSampler(weights, num_samples=30, seed=4)
    first = loader()
    it = iter(first)
    seen = [i for _ in range(stop) for i in next(it)]
    restored = loader()
    restored.load_state_dict(first.state_dict())
    rest = [i for batch in restored for i in batch]
    if stop == 8:  # every batch of the epoch was taken: torchdata's rule is to go on with the next epoch
        assert seen == plans.plan(0).tolist() and rest == plans.plan(1).tolist()
        return
    assert seen + rest == plans.plan(0).tolist()  # 8 batches: 7 of 4 and a last one of 2
    assert [i for batch in restored for i in batch] == plans.plan(1).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_pipeline_datamodule_resumes_position_epoch_and_curriculum_exactly(tmp_path, workers):
    """A curriculum pipeline served by PipelineDataModule: a run checkpointed mid-epoch 2 (after the curriculum
    moved on) and resumed from that checkpoint trains on the same indices, epoch by epoch, as an uninterrupted run."""
    import lightning.pytorch as pl

    from mixweave.integrations.lightning import CurriculumCallback, PipelineDataModule
    from mixweave.pipeline import from_config

    n = 60
    np.save(tmp_path / "x.npy", np.arange(n, dtype=np.float32)[:, None])
    np.save(tmp_path / "idx.npy", np.arange(n))
    np.save(tmp_path / "q.npy", np.array(["high", "medium", "low"])[np.arange(n) % 3])
    config = {
        "root": str(tmp_path),
        "sources": [{"type": "npy", "fields": {"x": "x.npy", "idx": "idx.npy", "q": "q.npy"}, "quality": "q"}],
        "sampler": {
            "type": "curriculum",
            "curriculum": {
                "qualities": ["high", "medium", "low"],
                "phases": {"warm": {"high": 1.0}, "all": {"high": 0.4, "medium": 0.3, "low": 0.3}},
                "patience": 1,
            },
        },
        "loader": {"batch_size": 10},
    }

    class Recorder(pl.LightningModule):
        def __init__(self, seen):
            super().__init__()
            self.layer, self.seen = torch.nn.Linear(1, 1), seen

        def training_step(self, batch, _):
            x, idx, _q = batch
            self.seen.setdefault(self.current_epoch, []).extend(idx.tolist())
            return self.layer(x).pow(2).mean()

        def validation_step(self, batch, _):
            self.log("val_loss", torch.tensor(1.0))  # a plateau: the curriculum moves on after `patience` epochs

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    class CrashMidEpoch2(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 15:  # 6 steps per epoch: after the 3rd step of epoch 2
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                raise _Crash

    val = DataLoader(TensorDataset(torch.zeros(4, 1)), batch_size=4)

    def run(seen, callbacks=(), ckpt_path=None):
        dm = PipelineDataModule(from_config(config), val_loader=val, num_workers=workers)
        curriculum = CurriculumCallback(dm.pipeline.curriculum_state, monitor="val_loss")
        _fit(
            tmp_path,
            Recorder(seen),
            callbacks=[curriculum, *callbacks],
            datamodule=dm,
            max_epochs=4,
            ckpt_path=ckpt_path,
            use_distributed_sampler=False,
            num_sanity_val_steps=0,
        )
        return dm

    reference: dict[int, list[int]] = {}
    dm = run(reference)
    assert dm.pipeline.curriculum_state.phase == "all"  # the curriculum did move during the run
    quality = np.array(["high", "medium", "low"])[np.arange(n) % 3]
    assert set(quality[reference[0]]) == {"high"} and len(set(quality[reference[3]])) == 3
    crashed: dict[int, list[int]] = {}
    with pytest.raises(_Crash):
        run(crashed, [CrashMidEpoch2()])
    assert len(crashed[2]) == 30
    resumed: dict[int, list[int]] = {}
    run(resumed, ckpt_path=str(tmp_path / "mid.ckpt"))
    assert crashed[2] + resumed[2] == reference[2]  # the rest of the interrupted epoch, no repeat, no gap
    assert resumed[3] == reference[3]  # then the next epoch, in the restored curriculum phase


def test_pipeline_datamodule_checks_its_pipeline():
    from mixweave.integrations.lightning import PipelineDataModule

    with pytest.raises(TypeError, match="`pipeline` must be a mixweave Pipeline, got list"):
        PipelineDataModule([])


# --- adaptive mixing in Lightning and MLflow -------------------------------------------------------------

ADAPTIVE_GROUPS = np.repeat([0, 1, 2], [40, 40, 20])


def _adaptive_module(seen, log=None):
    """Group 2's targets are far from what the model predicts: its loss stays high."""
    import lightning.pytorch as pl

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(1, 1)
            torch.nn.init.zeros_(self.layer.weight)
            torch.nn.init.zeros_(self.layer.bias)

        def training_step(self, batch, _):
            x, idx = batch
            group = torch.from_numpy(ADAPTIVE_GROUPS[idx.numpy()])
            target = torch.where(group == 2, 5.0, 0.0)
            losses = (self.layer(x).squeeze(1) - target).pow(2)
            seen.setdefault(self.current_epoch, []).extend(idx.tolist())
            return {"loss": losses.mean(), "sample_losses": losses.detach(), "groups": group}

        def log_dict(self, metrics, **kwargs):
            if log is not None:
                log.append(dict(metrics))
            super().log_dict(metrics, **kwargs)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)  # frozen model: the losses stay as they are

    return Module()


@pytest.mark.slow
def test_adaptive_mixing_callback_moves_logs_and_resumes_a_lightning_run_exactly(tmp_path):
    import lightning.pytorch as pl

    from mixweave import AdaptiveMixture, AdaptiveSampler
    from mixweave.integrations.lightning import AdaptiveMixingCallback, SamplerCheckpoint

    data = TensorDataset(torch.ones(100, 1), torch.arange(100))

    class CrashAfterStep7(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 7:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                raise _Crash

    def run(seen, log=None, callbacks=(), ckpt_path=None):
        mixture = AdaptiveMixture(3, learning_rate=0.1, names=["a", "b", "hard"])
        sampler = AdaptiveSampler(mixture, ADAPTIVE_GROUPS, segment_size=20, seed=0)
        loader = DataLoader(data, batch_size=10, sampler=sampler)
        callbacks = [AdaptiveMixingCallback(mixture), SamplerCheckpoint(sampler), *callbacks]
        _fit(
            tmp_path,
            _adaptive_module(seen, log),
            loader,
            callbacks=callbacks,
            max_epochs=2,
            ckpt_path=ckpt_path,
            use_distributed_sampler=False,
        )
        return mixture, sampler

    clean: dict[int, list[int]] = {}
    log: list[dict[str, float]] = []
    mixture, sampler = run(clean, log)
    assert mixture.updates == 20 and len(log) == 20  # one update and one logged row per step
    assert log[-1]["shares/hard"] == pytest.approx(mixture.probabilities()[2])
    assert log[-1]["shares/hard"] > 0.6 > log[0]["shares/hard"]  # the high-loss group took over
    replay = AdaptiveSampler(AdaptiveMixture(3), ADAPTIVE_GROUPS, segment_size=20, seed=0)
    replay.load_share_log(sampler.share_log_entries())
    assert clean[0] + clean[1] == replay.plan(0).tolist() + replay.plan(1).tolist()

    first: dict[int, list[int]] = {}
    with pytest.raises(_Crash):
        run(first, callbacks=[CrashAfterStep7()])
    second: dict[int, list[int]] = {}
    resumed, _ = run(second, ckpt_path=str(tmp_path / "mid.ckpt"))
    assert first[0] + second[0] == clean[0] and second[1] == clean[1]  # the same batches, in order
    assert resumed.history == mixture.history  # and the same share trajectory, bit for bit


def test_adaptive_mixing_callback_names_what_the_step_must_return():
    from mixweave import AdaptiveMixture
    from mixweave.integrations.lightning import AdaptiveMixingCallback

    with pytest.raises(TypeError, match="`mixture` must be an AdaptiveMixture, got dict"):
        AdaptiveMixingCallback({})
    callback = AdaptiveMixingCallback(AdaptiveMixture(2))
    with pytest.raises(KeyError, match=r"'sample_losses' \(per-sample losses\) and 'groups'.*got \['loss'\]"):
        callback.on_train_batch_end(None, None, {"loss": torch.tensor(1.0)}, None, 0)


@pytest.mark.slow
def test_mixture_shares_logged_to_a_local_mlflow_store(tmp_path):
    import mlflow

    from mixweave import AdaptiveMixture
    from mixweave.integrations.mlflow import mlflow_share_hook

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mixture = AdaptiveMixture(2, names=["web", "code"])
    with mlflow.start_run() as run:
        mixture.update_hooks.append(mlflow_share_hook())
        for _ in range(3):
            mixture.observe([0, 1], [0.1, 2.0])
    history = mlflow.tracking.MlflowClient().get_metric_history(run.info.run_id, "shares/code")
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([e["shares"][1] for e in mixture.history[1:]])


@pytest.mark.slow
def test_pipeline_datamodule_keeps_an_adaptive_mixture_in_the_checkpoint(tmp_path):
    """An adaptive pipeline served by PipelineDataModule: the mixture rides in the checkpoint with the sampler,
    so a run resumed mid-epoch trains on the same batches and reaches the same shares."""
    import lightning.pytorch as pl

    from mixweave.integrations.lightning import PipelineDataModule
    from mixweave.pipeline import from_config

    np.save(tmp_path / "a.npy", np.arange(60))
    np.save(tmp_path / "b.npy", np.arange(1000, 1030))
    config = {
        "root": str(tmp_path),
        "sources": [{"name": n, "type": "npy", "fields": {"i": f"{n}.npy"}} for n in ("a", "b")],
        "mixing": {"strategy": "adaptive", "learning_rate": 0.2, "segment_size": 10},
        "loader": {"batch_size": 10},
    }

    class Module(pl.LightningModule):
        def __init__(self, seen, mixture):
            super().__init__()
            self.layer, self.seen, self.mixture = torch.nn.Linear(1, 1), seen, mixture

        def training_step(self, batch, _):
            source, (i,) = batch
            self.seen.append(i.tolist())
            losses = torch.where(source == 1, 3.0, 0.5)  # source b's loss stays high
            self.mixture.observe(source, losses)
            return self.layer(i.float()[:, None]).mean() * 0

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    class CrashAtStep7(pl.Callback):
        def on_train_batch_end(self, trainer, *args):
            if trainer.global_step == 7:
                trainer.save_checkpoint(tmp_path / "mid.ckpt")
                raise _Crash

    def run(seen, callbacks=(), ckpt_path=None):
        dm = PipelineDataModule(from_config(config))
        module = Module(seen, dm.pipeline.mixture)
        _fit(
            tmp_path,
            module,
            callbacks=list(callbacks),
            datamodule=dm,
            max_epochs=2,
            ckpt_path=ckpt_path,
            use_distributed_sampler=False,
        )
        return dm.pipeline.mixture

    clean: list[list[int]] = []
    mixture = run(clean)
    assert mixture.probabilities()[1] > 0.55  # the shares did move (from 0.5)
    first: list[list[int]] = []
    with pytest.raises(_Crash):
        run(first, [CrashAtStep7()])
    second: list[list[int]] = []
    resumed = run(second, ckpt_path=str(tmp_path / "mid.ckpt"))
    assert first + second == clean
    assert resumed.history == mixture.history
