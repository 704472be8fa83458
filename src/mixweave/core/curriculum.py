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
    >>> state.phase, state.sampling_probs()
    ('expand', {'high': 0.6, 'medium': 0.35, 'low': 0.05})
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .._validation import check_choice, check_int, check_probabilities, check_real, warn

__all__ = ["DEFAULT_PHASES", "DEFAULT_QUALITIES", "PLATEAU_MODES", "CurriculumState", "default_phases"]

DEFAULT_QUALITIES: tuple[str, ...] = ("high", "medium", "low")
PLATEAU_MODES: tuple[str, ...] = ("restart", "continue")

#: The original (OpenADMET) built-in schedules by number of qualities, best quality first:
#: start on clean data, widen to all qualities, weight the noisy tail most, then polish on
#: the best quality alone. More than three qualities have no built-in schedule: equal weights.
_BUILT_IN: dict[int, dict[str, tuple[float, ...]]] = {
    1: {"warmup": (1.0,), "polish": (1.0,)},
    2: {"warmup": (0.9, 0.1), "expand": (0.6, 0.4), "polish": (1.0, 0.0)},
    3: {
        "warmup": (0.9, 0.1, 0.0),
        "expand": (0.6, 0.35, 0.05),
        "robust": (0.4, 0.4, 0.2),
        "polish": (1.0, 0.0, 0.0),
    },
}
_PHASE_NAMES = ("warmup", "expand", "robust", "polish")


def default_phases(qualities: Sequence[str]) -> dict[str, dict[str, float]]:
    """The built-in phases for ``qualities`` (ordered best first), as the original's schedules.

    One quality: warmup and polish, both on it. Two: warmup 0.9/0.1, expand
    0.6/0.4, polish 1/0. Three: warmup 0.9/0.1/0, expand 0.6/0.35/0.05, robust
    0.4/0.4/0.2, polish 1/0/0. More: the four phases with equal weights (the
    phases then differ in name only; pass ``phases=`` for a real schedule).

    Example:
        >>> default_phases(["clean", "noisy"])["expand"]
        {'clean': 0.6, 'noisy': 0.4}
    """
    names = [str(q) for q in qualities]
    table = _BUILT_IN.get(len(names))
    if table is None:
        equal = tuple([1.0 / len(names)] * len(names))
        table = dict.fromkeys(_PHASE_NAMES, equal)
    return {phase: dict(zip(names, probs, strict=True)) for phase, probs in table.items()}


#: The built-in phases of the default qualities ("high", "medium", "low").
DEFAULT_PHASES: dict[str, dict[str, float]] = default_phases(DEFAULT_QUALITIES)


#: ``sync(state, sync) -> state``: adopts rank 0's ``(phase_index, best, bad_epochs)`` under a process group.
#: ``sync`` is the caller's wish (None: when a group with several ranks exists; True: required).
Synchronizer = Callable[[tuple[int, float, int], "bool | None"], tuple[int, float, int]]


class CurriculumState:
    """Ordered phases of sampling probabilities per quality, advanced on a validation plateau.

    Args:
        qualities: the quality labels, best first (default ``("high", "medium", "low")``).
        patience: epochs without an improvement of more than ``min_delta``
            after which the next phase starts (default 3, as the original).
        phases: mapping ``phase name -> {quality: probability}`` in order;
            probabilities of a phase sum to 1 (a missing quality counts as 0).
            Default: :func:`default_phases` of ``qualities`` (the original's
            built-in schedules for 1, 2 and 3 qualities; equal weights beyond,
            with a warning).
        min_delta: the smallest decrease of the validation loss that counts as improvement.
        plateau: what a phase change does to the plateau count. ``"restart"``
            (default): the count and the best loss restart from the current
            loss, so the next phase gets ``patience`` fresh epochs.
            ``"continue"``: the count and the best loss are kept, so while the
            plateau lasts every further epoch starts another phase (the
            original's early behaviour).
        min_epochs_per_phase: a phase lasts at least this many updates, even on
            a plateau (the original's later keyword; default 0: no minimum).

    Raises:
        ValueError: for empty or repeated ``qualities``, ``patience`` < 1,
            negative ``min_delta``, an unknown quality in a phase,
            probabilities that do not sum to 1, or an unknown ``plateau``.
    """

    def __init__(
        self,
        qualities: Sequence[str] = DEFAULT_QUALITIES,
        patience: int = 3,
        phases: Mapping[str, Mapping[str, float]] | None = None,
        min_delta: float = 0.0,
        *,
        plateau: str = "restart",
        min_epochs_per_phase: int = 0,
    ) -> None:
        if hasattr(qualities, "tolist") and not isinstance(qualities, str):  # a numpy array of labels
            qualities = qualities.tolist()
        if isinstance(qualities, str) or not isinstance(qualities, Sequence):
            raise TypeError(f"`qualities` must be a list of quality labels, got {type(qualities).__name__}")
        bad = [q for q in qualities if not isinstance(q, str) or not q]
        if bad:
            raise TypeError(f"`qualities` must be non-empty strings, got {bad[0]!r} in {list(qualities)}")
        self.qualities = tuple(qualities)
        if not self.qualities or len(set(self.qualities)) != len(self.qualities):
            # the original's words first, then mixweave's detail
            raise ValueError(f"`qualities` must be a non-empty list of names, each once; got {list(qualities)}")
        self.patience = check_int(patience, "patience", minimum=1)
        self.min_delta = check_real(min_delta, "min_delta", low=0.0)
        self.plateau = check_choice(plateau, "plateau", PLATEAU_MODES)
        self.min_epochs_per_phase = check_int(min_epochs_per_phase, "min_epochs_per_phase", minimum=0)
        if phases is None:
            if len(self.qualities) > len(_BUILT_IN):
                warn(
                    f"no built-in curriculum for {len(self.qualities)} qualities: every phase weights them "
                    "equally (pass `phases=` for a schedule)",
                    stacklevel=3,
                )
            phases = default_phases(self.qualities)
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
        self.epochs_in_phase = 0
        #: Set by the curriculum samplers (NOTE [ Curriculum under torch.distributed ]); None: updates stay local.
        self.synchronizer: Synchronizer | None = None

    @property
    def phase(self) -> str:
        """The current phase's name; assigning a name is :meth:`set_phase` (as the original's attribute)."""
        return self.phase_names[self.phase_index]

    @phase.setter
    def phase(self, phase: str) -> None:
        self.set_phase(phase)

    @property
    def weights(self) -> dict[str, float]:
        """The current phase's probability per quality (the original's attribute; same as :meth:`sampling_probs`)."""
        return self.sampling_probs()

    def sampling_probs(self) -> dict[str, float]:
        """The current phase's probability for each quality."""
        return dict(self.phases[self.phase])

    def update(self, val_loss: float, *, sync: bool | None = None) -> bool:
        """Record one epoch's validation loss; return True when this starts the next phase.

        After ``patience`` epochs without improvement the next phase begins;
        with ``plateau="restart"`` the count restarts from the current loss,
        with ``"continue"`` it goes on (see the class). The last phase is kept.

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
        self.epochs_in_phase += 1
        if val_loss < self.best - self.min_delta:
            self.best, self.bad_epochs = float(val_loss), 0
        else:
            self.bad_epochs += 1
            plateau = self.bad_epochs >= self.patience and self.epochs_in_phase >= self.min_epochs_per_phase
            if plateau and self.phase_index < len(self.phase_names) - 1:
                self.phase_index += 1
                if self.plateau == "restart":
                    self.best, self.bad_epochs = float(val_loss), 0
        if self.synchronizer is not None and sync is not False:
            self.phase_index, self.best, self.bad_epochs = self.synchronizer(
                (self.phase_index, self.best, self.bad_epochs), sync
            )
        if self.phase_index != before:
            self.epochs_in_phase = 0
        return self.phase_index != before

    def set_phase(self, phase: str) -> None:
        """Jump to ``phase`` by name (the plateau count restarts)."""
        if phase not in self.phases:
            raise ValueError(f"`phase` must be one of {list(self.phase_names)}, got {phase!r}")
        self.phase_index, self.best, self.bad_epochs = self.phase_names.index(phase), math.inf, 0
        self.epochs_in_phase = 0

    def state_dict(self) -> dict[str, Any]:
        """JSON-able progress: ``phase``, ``best`` (None before any update), ``bad_epochs``, ``epochs_in_phase``."""
        return {
            "phase": self.phase,
            "best": None if math.isinf(self.best) else self.best,
            "bad_epochs": self.bad_epochs,
            "epochs_in_phase": self.epochs_in_phase,
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
        # states saved before mixweave 0.9 lack the key: the count restarts
        self.epochs_in_phase = check_int(
            state_dict.get("epochs_in_phase", 0), "state_dict['epochs_in_phase']", minimum=0
        )

    def __repr__(self) -> str:
        return (
            f"CurriculumState(phase={self.phase!r}, patience={self.patience}, qualities={list(self.qualities)}, "
            f"plateau={self.plateau!r})"
        )
