"""Lightning adapters: the curriculum, adaptive mixing, sampler checkpoints (need the ``lightning`` extra).

Importing this module imports Lightning; the rest of mixweave never does.

Example (not run here)::

    from mixweave.integrations.lightning import CurriculumCallback
    trainer = Trainer(callbacks=[CurriculumCallback(state, monitor="val_loss")])

Under DDP every rank runs the callback and :meth:`CurriculumState.update`
broadcasts rank 0's decision to all ranks (NOTE [ Curriculum under
torch.distributed ] in :mod:`mixweave.core.curriculum`), so the ranks' shards stay
parts of one plan. Log the monitored metric with ``sync_dist=True`` so that
rank 0 decides on the mean over all ranks rather than on its own shard.
"""

from __future__ import annotations

import logging
from typing import Any

import lightning.pytorch as pl

from .._validation import warn
from ..config import CurriculumConfig
from ..core.curriculum import CurriculumState
from ..sampling.adaptive import AdaptiveMixture
from ..sampling.distributed import gather_state
from ..sampling.hooks import share_metrics_hook

__all__ = ["AdaptiveMixingCallback", "CurriculumCallback", "PipelineDataModule", "SamplerCheckpoint"]

logger = logging.getLogger("mixweave.curriculum")


class CurriculumCallback(pl.Callback):
    """Feed the monitored validation metric to a :class:`CurriculumState` after each validation epoch.

    The samplers read the state when they plan the next epoch, and Lightning
    calls their ``set_epoch`` itself, so nothing else is needed. The current
    phase index is logged as ``curriculum_phase``.

    Args:
        curriculum_state: the state shared with the sampler.
        monitor: the logged metric to watch (lower is better), default ``"val_loss"``.
        reset_early_stopping_on_phase_change: when a new phase starts, restart
            the patience of the trainer's ``EarlyStopping`` callbacks (the data
            just changed, so the old plateau says nothing about the new one).
        state_key: the key of this callback's state in a checkpoint (default:
            the class and ``monitor``); two curricula in one run need two keys.
    """

    def __init__(
        self,
        curriculum_state: CurriculumState,
        monitor: str = "val_loss",
        *,
        reset_early_stopping_on_phase_change: bool = False,
        state_key: str | None = None,
    ) -> None:
        if not isinstance(curriculum_state, CurriculumState):
            raise TypeError(f"`curriculum_state` must be a CurriculumState, got {type(curriculum_state).__name__}")
        self.curriculum_state = curriculum_state
        self.monitor = monitor
        self.reset_early_stopping_on_phase_change = bool(reset_early_stopping_on_phase_change)
        self.history: list[tuple[int, str]] = []
        self._state_key = self._generate_state_key(monitor=monitor) if state_key is None else str(state_key)

    @property
    def state_key(self) -> str:
        """This callback's key in a checkpoint: by default it includes ``monitor``; give each curriculum its own."""
        return self._state_key

    @classmethod
    def from_config(
        cls, config: CurriculumConfig, curriculum_state: CurriculumState, monitor: str = "val_loss"
    ) -> CurriculumCallback:
        """A callback for ``curriculum_state`` with the settings of a ``sampling.curriculum`` config.

        (Replaces ``CurriculumConfig.make_callback``: configs no longer import Lightning.)
        """
        return cls(
            curriculum_state,
            monitor,
            reset_early_stopping_on_phase_change=config.reset_early_stopping_on_phase_change,
        )

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            warn(f"CurriculumCallback: metric {self.monitor!r} was not logged; the curriculum does not advance")
            return
        if self.curriculum_state.update(float(value)):
            logger.info("epoch %d: curriculum phase -> %s", trainer.current_epoch, self.curriculum_state.phase)
            if self.reset_early_stopping_on_phase_change:
                for callback in trainer.callbacks:
                    if isinstance(callback, pl.callbacks.EarlyStopping):
                        callback.wait_count = 0
                        callback.best_score = callback.best_score.new_tensor(
                            float("inf") if callback.mode == "min" else float("-inf")
                        )
        self.history.append((trainer.current_epoch, self.curriculum_state.phase))
        # the phase is equal on all ranks (rank 0 decides); syncing only silences the DDP advice
        pl_module.log("curriculum_phase", float(self.curriculum_state.phase_index), sync_dist=True)

    def state_dict(self) -> dict[str, Any]:
        return {"curriculum": self.curriculum_state.state_dict(), "history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.curriculum_state.load_state_dict(state_dict["curriculum"])
        self.history = [(int(e), str(p)) for e, p in state_dict.get("history", [])]


class _KeyedCallback(pl.Callback):
    """A callback whose state sits in a checkpoint under a key the user may choose (two of a kind in one run)."""

    def __init__(self, state_key: str) -> None:
        self._state_key = str(state_key)

    @property
    def state_key(self) -> str:
        return self._state_key


class SamplerCheckpoint(_KeyedCallback):
    """Keep a mixweave sampler's position in Lightning's checkpoints, for any number of ranks.

    ``state_dict`` (which Lightning calls when it writes a checkpoint) is
    :func:`~mixweave.sampling.gather_state` of the sampler: under DDP a
    collective, which every rank reaches because Lightning saves on every
    rank. ``load_state_dict`` restores it into the sampler, so a run resumed
    with ``trainer.fit(..., ckpt_path=...)`` -- on the same or another number
    of devices -- trains on exactly the rest of the interrupted epoch, then
    on the following epochs as if never interrupted (NOTE [ Elastic resume ]
    in :mod:`mixweave.sampling.base`). Give the trainer
    ``use_distributed_sampler=False``: the sampler shards itself.

    Args:
        sampler: the sampler of the training DataLoader (any mixweave sampler).
        state_key: the key of this callback in the checkpoint; set it when a
            run has several samplers.

    Example (not run here)::

        sampler = WeightedSampler(weights, seed=0)
        trainer = Trainer(callbacks=[SamplerCheckpoint(sampler)], use_distributed_sampler=False)
        trainer.fit(model, DataLoader(dataset, sampler=sampler, batch_size=64), ckpt_path="last.ckpt")
    """

    def __init__(self, sampler: Any, *, state_key: str = "mixweave_sampler") -> None:
        super().__init__(state_key)
        self.position = _TrainedPosition(sampler)
        self.sampler = sampler

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        self.position.trained(batch)

    def state_dict(self) -> dict[str, Any]:
        return self.position.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state_dict)


class AdaptiveMixingCallback(_KeyedCallback):
    """Feed each training step's per-sample losses to an :class:`~mixweave.sampling.adaptive.AdaptiveMixture`.

    ``training_step`` returns a dict with the loss to optimise and two more
    entries: the per-sample losses (detached) and each sample's group id::

        def training_step(self, batch, i):
            x, y, group = batch
            losses = F.cross_entropy(self(x), y, reduction="none")
            return {"loss": losses.mean(), "sample_losses": losses.detach(), "groups": group}

    After every update the shares are logged as ``{log_prefix}{group name}``
    (to the trainer's logger), and the mixture's state is part of every
    checkpoint, so ``trainer.fit(..., ckpt_path=...)`` resumes it exactly
    (add :class:`SamplerCheckpoint` for the sampler's position and share log).
    Under DDP the mixture all-reduces the statistics before each update
    (NOTE [ Adaptive mixing under torch.distributed ] in :mod:`mixweave.sampling.adaptive`).

    Args:
        mixture: the mixture the :class:`~mixweave.sampling.adaptive_sampler.AdaptiveSampler` reads.
        losses_key, groups_key: the keys of the per-sample losses and group ids in the step's output.
        log_prefix: prefix of the logged shares; ``None`` logs nothing.
        state_key: the key of this callback's state in a checkpoint.

    Raises:
        TypeError: if ``mixture`` is not an AdaptiveMixture.
        KeyError: at the first step whose output lacks ``losses_key`` or ``groups_key`` (names both).
    """

    def __init__(
        self,
        mixture: AdaptiveMixture,
        *,
        losses_key: str = "sample_losses",
        groups_key: str = "groups",
        log_prefix: str | None = "shares/",
        state_key: str = "mixweave_mixture",
    ) -> None:
        if not isinstance(mixture, AdaptiveMixture):
            raise TypeError(f"`mixture` must be an AdaptiveMixture, got {type(mixture).__name__}")
        super().__init__(state_key)
        self.mixture = mixture
        self.losses_key, self.groups_key = str(losses_key), str(groups_key)
        self.log_prefix = log_prefix

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, i: int
    ) -> None:
        if not isinstance(outputs, dict) or self.losses_key not in outputs or self.groups_key not in outputs:
            got = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise KeyError(
                f"AdaptiveMixingCallback needs training_step to return a dict with {self.losses_key!r} (per-sample "
                f"losses) and {self.groups_key!r} (group ids); got {got}"
            )
        updated = self.mixture.observe(outputs[self.groups_key], outputs[self.losses_key])
        if updated and self.log_prefix is not None:  # the shares are equal on every rank: no sync needed

            def log(metrics: dict[str, float], step: int) -> None:
                pl_module.log_dict(metrics, on_step=True, on_epoch=False)

            share_metrics_hook(log, self.log_prefix)(self.mixture)

    def state_dict(self) -> dict[str, Any]:
        return self.mixture.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.mixture.load_state_dict(state_dict)


class _TrainedPosition:
    """A mixweave sampler's position counted in samples that reached a training step, not samples fetched.

    Lightning (and DataLoader workers) fetch batches ahead of the step, so the
    sampler has yielded more than was trained on; a checkpoint must hold the
    position of what completed steps consumed.
    """

    def __init__(self, sampler: Any) -> None:
        if not (hasattr(sampler, "state_dict") and hasattr(sampler, "epoch_hooks")):
            raise TypeError(f"`sampler` must be a mixweave sampler, got {type(sampler).__name__}")
        self.sampler = sampler
        self._start: dict[str, Any] | None = None  # the sampler's state when its current iteration began
        self._trained = 0  # indices of that iteration that completed training steps (this rank)
        sampler.epoch_hooks.append(self._iteration_started)

    def _iteration_started(self, sampler: Any, epoch: int) -> None:
        # Called by the sampler inside iter(), before it yields anything: its state is where the
        # iteration starts. (Lightning may build the loader's iterator, and workers prefetch from
        # it, before on_train_epoch_start.)
        self._start, self._trained = sampler.state_dict(), 0

    def trained(self, batch: Any) -> None:
        self._trained += _batch_size(batch)

    def state_dict(self) -> dict[str, Any]:
        """:func:`~mixweave.sampling.gather_state` at the trained position (a collective under DDP)."""
        if self._start is None:
            return gather_state(self.sampler)
        epoch = self._start["epoch"]
        position = self._start["position"] + self._trained
        return gather_state(self.sampler, {**self._start, **self.sampler.extra_state(epoch), "position": position})


class PipelineDataModule(pl.LightningDataModule):
    """A ``LightningDataModule`` serving a mixweave :class:`~mixweave.pipeline.Pipeline`, resumable mid-epoch.

    Its ``state_dict`` -- which Lightning writes into every checkpoint and
    restores on ``trainer.fit(..., ckpt_path=...)`` -- holds the sampler's
    position (counted in samples that reached a training step, so batches
    prefetched by workers are not lost), its epoch, and the curriculum state of
    a curriculum or joint sampler, and the :class:`~mixweave.AdaptiveMixture` of
    an adaptive pipeline. A resumed run trains on exactly the rest of
    the interrupted epoch, then on the following epochs as if never
    interrupted, on the same or another number of devices. Give the trainer
    ``use_distributed_sampler=False``: the sampler shards itself.

    Args:
        pipeline: a built pipeline (:func:`~mixweave.pipeline.from_config`).
        val_loader: an optional validation ``DataLoader`` (or a callable returning one).
        **loader_overrides: passed to :meth:`Pipeline.train_loader` (``num_workers=4``, ...).

    Example (not run here)::

        dm = PipelineDataModule(from_config("pipeline.yaml"), val_loader=val)
        trainer = Trainer(callbacks=[CurriculumCallback(dm.pipeline.curriculum_state, monitor="val_loss")],
                          use_distributed_sampler=False)
        trainer.fit(model, datamodule=dm, ckpt_path="last.ckpt")
    """

    def __init__(self, pipeline: Any, *, val_loader: Any = None, **loader_overrides: Any) -> None:
        super().__init__()
        if not hasattr(pipeline, "train_loader") or not hasattr(pipeline, "sampler"):
            raise TypeError(f"`pipeline` must be a mixweave Pipeline, got {type(pipeline).__name__}")
        self.pipeline = pipeline
        self.position = _TrainedPosition(pipeline.sampler)
        self._val_loader = val_loader
        self._overrides = loader_overrides

    def train_dataloader(self) -> Any:
        return self.pipeline.train_loader(**self._overrides)

    def val_dataloader(self) -> Any:
        if self._val_loader is None:
            return []  # Lightning skips validation for an empty list
        return self._val_loader() if callable(self._val_loader) else self._val_loader

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # called for the batch about to enter a step (prefetched batches wait until their turn)
        trainer = self.trainer
        if trainer is not None and trainer.training:
            self.position.trained(batch)
        return batch

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"sampler": self.position.state_dict()}
        if self.pipeline.curriculum_state is not None:
            state["curriculum"] = self.pipeline.curriculum_state.state_dict()
        mixture = getattr(self.pipeline, "mixture", None)
        if mixture is not None:  # strategy adaptive: the shares, their history and the segment log
            state["mixture"] = mixture.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "curriculum" in state_dict and self.pipeline.curriculum_state is not None:  # first: it sets the weights
            self.pipeline.curriculum_state.load_state_dict(state_dict["curriculum"])
        mixture = getattr(self.pipeline, "mixture", None)
        if "mixture" in state_dict and mixture is not None:
            mixture.load_state_dict(state_dict["mixture"])
        self.pipeline.sampler.load_state_dict(state_dict["sampler"])


def _batch_size(batch: Any) -> int:
    """Samples in a collated batch: the length of its first tensor (in a tuple, list or dict)."""
    while isinstance(batch, (list, tuple, dict)):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return int(batch.shape[0]) if hasattr(batch, "shape") else len(batch)
