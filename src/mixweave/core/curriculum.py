"""Curriculum state: phases of per-quality sampling probabilities, advanced on a validation plateau.

``CurriculumState`` is a plain state machine that imports no framework; the
samplers read :meth:`CurriculumState.sampling_probs` whenever they plan an
epoch, so a phase change takes effect without rebuilding anything.

NOTE [ Curriculum under torch.distributed ]
    Every rank holds its own ``CurriculumState`` and plans its own shard, so
    the ranks must agree on the phase or their shards stop being parts of one
    global plan. mixweave makes rank 0 decide: when a process group with more
    than one rank is initialised, :meth:`CurriculumState.update` applies the
    loss on every rank and then broadcasts rank 0's resulting state (phase,
    best loss, plateau count) to all ranks, which adopt it. The broadcast is
    the ``synchronizer`` the curriculum samplers give the state they use
    (:func:`mixweave.sampling.distributed.sync_curriculum`: torch lives in the
    sampling layer, not in this one); a state no sampler uses stays local. The call is
    therefore a collective: every rank must call ``update`` for the same
    epoch (Lightning's ``on_validation_epoch_end`` does). Logging the loss
    with ``sync_dist=True`` is still wise (rank 0 then decides on the mean over
    ranks), but correctness no longer depends on it. ``update(..., sync=False)``
    keeps the state local.

Example:
    >>> state = CurriculumState(patience=2)
    >>> state.phase, state.sampling_probs()["high"]
    ('warmup', 0.9)
    >>> [state.update(loss) for loss in (1.0, 1.0, 1.0)]
    [False, False, True]
    >>> state.phase
    'expand'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._validation import check_int, check_probabilities, check_real

__all__ = ["DEFAULT_PHASES", "DEFAULT_QUALITIES", "CurriculumState"]

DEFAULT_QUALITIES: tuple[str, ...] = ("high", "medium", "low")

#: Default phases for the qualities ("high", "medium", "low"): start on clean
#: data, widen to all qualities, weight the hard tail most, then settle back.
DEFAULT_PHASES: dict[str, dict[str, float]] = {
    "warmup": {"high": 0.9, "medium": 0.1, "low": 0.0},
    "expand": {"high": 0.6, "medium": 0.3, "low": 0.1},
    "robust": {"high": 0.4, "medium": 0.35, "low": 0.25},
    "polish": {"high": 0.7, "medium": 0.2, "low": 0.1},
}


#: ``sync(state, sync) -> state``: adopts rank 0's ``(phase_index, best, bad_epochs)`` under a process group.
#: ``sync`` is the caller's wish (None: when a group with several ranks exists; True: required).
Synchronizer = Callable[[tuple[int, float, int], "bool | None"], tuple[int, float, int]]


class CurriculumState:
    """Ordered phases of sampling probabilities per quality, advanced on a validation plateau.

    Args:
        qualities: the quality labels, in order (default ``("high", "medium", "low")``).
        patience: epochs without an improvement of more than ``min_delta``
            after which the next phase starts.
        phases: mapping ``phase name -> {quality: probability}`` in order;
            probabilities of a phase sum to 1 (a missing quality counts as 0).
            Defaults to :data:`DEFAULT_PHASES`, which needs the default qualities.
        min_delta: the smallest decrease of the validation loss that counts as improvement.

    Raises:
        ValueError: for ``patience`` < 1, negative ``min_delta``, an unknown
            quality in a phase, probabilities that do not sum to 1, or custom
            qualities without ``phases``.
    """

    def __init__(
        self,
        qualities: Sequence[str] = DEFAULT_QUALITIES,
        patience: int = 5,
        phases: Mapping[str, Mapping[str, float]] | None = None,
        min_delta: float = 0.0,
    ) -> None:
        self.qualities = tuple(str(q) for q in qualities)
        if not self.qualities or len(set(self.qualities)) != len(self.qualities):
            raise ValueError(f"`qualities` must be distinct labels, at least one, got {list(qualities)}")
        self.patience = check_int(patience, "patience", minimum=1)
        self.min_delta = check_real(min_delta, "min_delta", low=0.0)
        if phases is None:
            if set(self.qualities) != set(DEFAULT_QUALITIES):
                raise ValueError(
                    f"`phases` is required for qualities {list(self.qualities)}; the default phases "
                    f"cover {list(DEFAULT_QUALITIES)}"
                )
            phases = DEFAULT_PHASES
        if not isinstance(phases, Mapping) or not phases:
            raise ValueError(f"`phases` must be a non-empty mapping of phase name to probabilities, got {phases!r}")
        self.phases: dict[str, dict[str, float]] = {}
        for name, probs in phases.items():
            unknown = sorted(set(probs) - set(self.qualities))
            if unknown:
                raise ValueError(f"`phases['{name}']` names unknown qualities {unknown}; known: {list(self.qualities)}")
            vector = check_probabilities([probs.get(q, 0.0) for q in self.qualities], f"phases['{name}']")
            self.phases[str(name)] = dict(zip(self.qualities, vector.tolist(), strict=True))
        self.phase_names = tuple(self.phases)
        self.phase_index = 0
        self.best = math.inf
        self.bad_epochs = 0
        #: Set by the curriculum samplers (NOTE [ Curriculum under torch.distributed ]); None: updates stay local.
        self.synchronizer: Synchronizer | None = None

    @property
    def phase(self) -> str:
        """The current phase's name."""
        return self.phase_names[self.phase_index]

    def sampling_probs(self) -> dict[str, float]:
        """The current phase's probability for each quality."""
        return dict(self.phases[self.phase])

    def update(self, val_loss: float, *, sync: bool | None = None) -> bool:
        """Record one epoch's validation loss; return True when this starts the next phase.

        After ``patience`` epochs without improvement the next phase begins and
        the plateau count restarts from the current loss. The last phase is kept.

        Args:
            val_loss: this epoch's validation loss (lower is better).
            sync: adopt rank 0's state afterwards (see NOTE [ Curriculum under
                torch.distributed ]). ``None`` (default) syncs when a process
                group with more than one rank is initialised; then every rank
                must call ``update``.
        """
        val_loss = check_real(val_loss, "val_loss", finite=False)  # inf is a (bad) loss; NaN is not
        if sync and self.synchronizer is None:
            raise RuntimeError(
                "`sync=True` needs an initialised torch.distributed process group and a curriculum sampler "
                "using this state (it gives the state its synchronizer); neither is there"
            )
        before = self.phase_index
        if val_loss < self.best - self.min_delta:
            self.best, self.bad_epochs = float(val_loss), 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience and self.phase_index < len(self.phase_names) - 1:
                self.phase_index += 1
                self.best, self.bad_epochs = float(val_loss), 0
        if self.synchronizer is not None and sync is not False:
            self.phase_index, self.best, self.bad_epochs = self.synchronizer(
                (self.phase_index, self.best, self.bad_epochs), sync
            )
        return self.phase_index != before

    def set_phase(self, phase: str) -> None:
        """Jump to ``phase`` by name (the plateau count restarts)."""
        if phase not in self.phases:
            raise ValueError(f"`phase` must be one of {list(self.phase_names)}, got {phase!r}")
        self.phase_index, self.best, self.bad_epochs = self.phase_names.index(phase), math.inf, 0

    def state_dict(self) -> dict[str, Any]:
        """JSON-able progress: ``phase``, ``best`` (None before the first update) and ``bad_epochs``."""
        return {
            "phase": self.phase,
            "best": None if math.isinf(self.best) else self.best,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output; raises ``ValueError`` for an unknown phase."""
        for key in ("phase", "best", "bad_epochs"):
            if key not in state_dict:
                raise ValueError(f"`state_dict` is missing key {key!r}")
        best = (
            math.inf
            if state_dict["best"] is None
            else check_real(state_dict["best"], "state_dict['best']", finite=False)
        )
        self.set_phase(state_dict["phase"])
        self.best = best
        self.bad_epochs = check_int(state_dict["bad_epochs"], "state_dict['bad_epochs']", minimum=0)

    def __repr__(self) -> str:
        return f"CurriculumState(phase={self.phase!r}, patience={self.patience}, qualities={list(self.qualities)})"
