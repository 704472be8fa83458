"""Lightning adapter for the curriculum (needs the ``lightning`` extra).

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

__all__ = ["CurriculumCallback"]

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
    """

    def __init__(
        self,
        curriculum_state: CurriculumState,
        monitor: str = "val_loss",
        *,
        reset_early_stopping_on_phase_change: bool = False,
    ) -> None:
        if not isinstance(curriculum_state, CurriculumState):
            raise TypeError(f"`curriculum_state` must be a CurriculumState, got {type(curriculum_state).__name__}")
        self.curriculum_state = curriculum_state
        self.monitor = monitor
        self.reset_early_stopping_on_phase_change = bool(reset_early_stopping_on_phase_change)
        self.history: list[tuple[int, str]] = []

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
