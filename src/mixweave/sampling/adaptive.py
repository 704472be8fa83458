"""``AdaptiveMixture``: group shares that learn from the training loss (EXP3 / Online Data Mixing, DoReMi).

The mixture holds the shares; a training step reports its per-sample losses
with :meth:`AdaptiveMixture.observe`; every ``update_every`` steps the
statistics of the window are (all-)reduced and the update rule of
:mod:`mixweave.core.adaptive` turns them into new shares.
:class:`~mixweave.sampling.adaptive_sampler.AdaptiveSampler` draws each
segment of an epoch with the shares in force when the segment starts.

NOTE [ Adaptive mixing under torch.distributed ]
    Every rank observes its own batches. Before each update the per-group loss
    sums and counts are summed over all ranks (one ``all_reduce`` of ``2K``
    float64 numbers), so every rank applies the same update to the same
    statistics and holds the same shares, bit for bit: the all-reduce hands
    every rank the same result. ``observe`` must therefore be called the same
    number of times on every rank (once per training step, as DDP steps are),
    because an update is a collective.

Example:
    >>> import numpy as np
    >>> m = AdaptiveMixture(2, algorithm="exp3", learning_rate=2.0)
    >>> for _ in range(20):   # group 1's loss stays high
    ...     _ = m.observe(np.array([0, 0, 1, 1]), np.array([0.1, 0.1, 2.0, 2.0]))
    >>> shares = m.probabilities()
    >>> bool(shares[1] > 0.8), bool(shares[0] >= m.floor)
    (True, True)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._io import atomic_path
from .._validation import as_numpy, check_choice, check_int, check_real, check_saved_settings, show
from ..core.adaptive import ALGORITHMS, doremi_excess, exp3_rewards, mix_floor, softmax
from .distributed import all_reduce_sum

__all__ = ["ALGORITHMS", "AdaptiveMixture", "read_history"]

#: The default floor of each algorithm, as a fraction of the uniform share ``1/K``.
_FLOOR_FRACTION = {"exp3": 0.1, "doremi": 1e-3}


class AdaptiveMixture:
    """Per-group shares that move toward the groups whose training loss stays high.

    Args:
        num_groups: number of groups ``K`` (sources, classes or tasks), >= 2.
        algorithm: ``"exp3"`` (Online Data Mixing: groups are bandit arms
            rewarded by their importance-weighted loss) or ``"doremi"``
            (exponentiated gradient on the excess loss over ``reference_losses``).
            The formulas are in :mod:`mixweave.core.adaptive`.
        update_every: training steps (``observe`` calls) per update, >= 1.
        learning_rate: step size ``eta`` of the rule (default 1.0). Losses
            enter the exponent directly, so scale it to your loss range.
        floor: the smallest share any group can get, in ``(0, 1/K]``
            (default ``0.1/K`` for exp3, the exploration rate; ``1e-3/K`` for
            doremi, the paper's smoothing). ``1/K`` freezes uniform shares.
        decay: exp3's smoothing of the reward, ``R <- decay * R + (1 - decay) * R^``, in ``[0, 1)``.
        reference_losses: doremi's per-group loss of a reference model, shape
            ``(K,)``; required for doremi (zeros make the raw loss the excess).
        initial: the shares before the first update (default uniform), all
            positive, summing to 1; the floor is mixed in.
        names: optional group names, for logs and plots.
        distributed: sum the window's statistics over all ranks before each
            update (default: when a process group of more than one rank is
            initialised). See NOTE [ Adaptive mixing under torch.distributed ].

    Raises:
        ValueError: for fewer than 2 groups, an unknown algorithm, a floor
            outside ``(0, 1/K]``, doremi without ``reference_losses``, or
            arrays of the wrong shape; each message names the argument.

    Attributes:
        history: one entry per update (and one for the initial shares):
            ``{"update", "step", "shares"}``; :meth:`write_history` saves it.
        update_hooks: callables ``hook(mixture)`` run after every update (loggers).
    """

    def __init__(
        self,
        num_groups: int,
        *,
        algorithm: str = "exp3",
        update_every: int = 1,
        learning_rate: float = 1.0,
        floor: float | None = None,
        decay: float = 0.9,
        reference_losses: Any = None,
        initial: Any = None,
        names: Sequence[str] | None = None,
        distributed: bool | None = None,
    ) -> None:
        self.num_groups = check_int(num_groups, "num_groups", minimum=2)
        k = self.num_groups
        self.algorithm = check_choice(algorithm, "algorithm", ALGORITHMS)
        self.update_every = check_int(update_every, "update_every", minimum=1)
        self.learning_rate = check_real(learning_rate, "learning_rate", low=0, low_open=True)
        default_floor = _FLOOR_FRACTION[self.algorithm] / k
        self.floor = check_real(default_floor if floor is None else floor, "floor", low=0, high=1 / k, low_open=True)
        self.decay = check_real(decay, "decay", low=0, high=1, high_open=True)
        self.names = self._check_names(names)
        self.distributed = distributed
        self.reference_losses: np.ndarray | None = None
        if self.algorithm == "doremi":
            if reference_losses is None:
                raise ValueError(
                    "algorithm='doremi' needs `reference_losses`, one loss per group of a reference model "
                    "(zeros make the raw training loss the excess)"
                )
            self.reference_losses = self._vector(reference_losses, "reference_losses")
        elif reference_losses is not None:
            raise ValueError("`reference_losses` applies to algorithm='doremi' only, not 'exp3'")
        start = np.full(k, 1.0 / k) if initial is None else self._initial(initial)
        # exp3 keeps smoothed rewards R with softmax(learning_rate * R) = start; doremi keeps log a with a = start
        self._scores = np.log(start) / (self.learning_rate if self.algorithm == "exp3" else 1.0)
        self._shares = self._from_scores()
        self._sums = np.zeros(k)
        self._counts = np.zeros(k)
        self.steps = 0  # observe() calls so far
        self.updates = 0
        self.history: list[dict[str, Any]] = [self._entry()]
        self.update_hooks: list[Callable[[AdaptiveMixture], None]] = []

    # ------------------------------------------------------------------ checks
    def _vector(self, values: Any, name: str) -> np.ndarray:
        arr = np.asarray(as_numpy(values), dtype=np.float64)
        if arr.shape != (self.num_groups,) or not np.isfinite(arr).all():
            raise ValueError(f"`{name}` must be {self.num_groups} finite numbers (one per group), got {show(values)}")
        return arr

    def _initial(self, values: Any) -> np.ndarray:
        arr = self._vector(values, "initial")
        if (arr <= 0).any() or abs(arr.sum() - 1.0) > 1e-6:
            raise ValueError(f"`initial` must be positive shares summing to 1, got {show(arr.tolist())}")
        return arr / arr.sum()

    def _check_names(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return [str(g) for g in range(self.num_groups)]
        out = [str(n) for n in names]
        if len(out) != self.num_groups or len(set(out)) != len(out):
            raise ValueError(f"`names` must be {self.num_groups} distinct names, got {show(list(names))}")
        return out

    # ------------------------------------------------------------------ shares
    def _from_scores(self) -> np.ndarray:
        scale = self.learning_rate if self.algorithm == "exp3" else 1.0
        return mix_floor(softmax(scale * self._scores), self.floor)

    def probabilities(self) -> np.ndarray:
        """The shares in force (float64, shape ``(K,)``, summing to 1, each >= ``floor``); a copy."""
        return self._shares.copy()

    def _entry(self) -> dict[str, Any]:
        return {"update": self.updates, "step": self.steps, "shares": self._shares.tolist()}

    # ---------------------------------------------------------------- training
    def observe(self, group_ids: Any, losses: Any, counts: Any = None) -> bool:
        """Record one training step's losses; update the shares every ``update_every`` steps.

        Args:
            group_ids: the group of each entry, integers in ``[0, K)``
                (a numpy array, a list or a tensor; 1-D).
            losses: the loss of each entry, finite, same length (detached
                tensors are fine; they are read, never back-propagated).
            counts: optional number of samples each entry stands for: pass
                per-group mean losses with their sample counts instead of
                per-sample losses. Default 1 per entry.

        Returns:
            True when this call applied an update.

        Raises:
            ValueError: for ids outside ``[0, K)``, non-finite losses,
                negative counts or mismatched lengths.
        """
        ids = np.asarray(as_numpy(group_ids))
        values = np.asarray(as_numpy(losses), dtype=np.float64)
        if ids.ndim != 1 or values.shape != ids.shape:
            raise ValueError(
                f"`group_ids` and `losses` must be 1-D of the same length, got shapes {ids.shape} and {values.shape}"
            )
        if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= self.num_groups):
            raise ValueError(f"`group_ids` must be integers in [0, {self.num_groups}), got {show(ids.tolist())}")
        if not np.isfinite(values).all():
            raise ValueError(f"`losses` must be finite, got {show(values.tolist())}")
        weights = np.ones(ids.shape[0]) if counts is None else np.asarray(as_numpy(counts), dtype=np.float64)
        if weights.shape != ids.shape or not np.isfinite(weights).all() or (weights < 0).any():
            raise ValueError(f"`counts` must be non-negative numbers, one per entry, got {show(counts)}")
        self._sums += np.bincount(ids, weights=values * weights, minlength=self.num_groups)
        self._counts += np.bincount(ids, weights=weights, minlength=self.num_groups)
        self.steps += 1
        if self.steps % self.update_every:
            return False
        self.update()
        return True

    def update(self) -> None:
        """Apply the rule to the current window (summed over ranks) and start a new window.

        :meth:`observe` calls it every ``update_every`` steps; call it directly
        to update at other times (on every rank, when distributed).
        """
        stats = np.concatenate([self._sums, self._counts])
        if self.distributed is not False:
            stats = all_reduce_sum(stats, required=bool(self.distributed))
        sums, counts = stats[: self.num_groups], stats[self.num_groups :]
        if self.algorithm == "exp3":
            rewards = exp3_rewards(sums, counts, self._shares)
            self._scores = self.decay * self._scores + (1.0 - self.decay) * rewards
        else:
            assert self.reference_losses is not None
            self._scores = self._scores + self.learning_rate * doremi_excess(sums, counts, self.reference_losses)
            self._scores -= self._scores.max()  # log a, normalised: stays bounded over long runs
        self._shares = self._from_scores()
        self._sums[:] = 0.0
        self._counts[:] = 0.0
        self.updates += 1
        self.history.append(self._entry())
        for hook in self.update_hooks:
            hook(self)

    # ------------------------------------------------------------------ resume
    def _settings(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "num_groups": self.num_groups,
            "update_every": self.update_every,
            "learning_rate": self.learning_rate,
            "floor": self.floor,
            "decay": self.decay,
        }

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state: the scores, the open window, the step and update counts and the history."""
        return {
            **self._settings(),
            "scores": self._scores.tolist(),
            "window_sums": self._sums.tolist(),
            "window_counts": self._counts.tolist(),
            "steps": self.steps,
            "updates": self.updates,
            "history": [dict(e) for e in self.history],
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`: the next step continues exactly where the saved one left off.

        Raises:
            ValueError: if a key is missing or the state was saved with other settings (named).
        """
        check_saved_settings(
            state_dict,
            self._settings(),
            "AdaptiveMixture",
            extra=("scores", "window_sums", "window_counts", "steps", "updates", "history"),
        )
        self._scores = self._vector(state_dict["scores"], "state_dict['scores']")
        self._sums = self._vector(state_dict["window_sums"], "state_dict['window_sums']")
        self._counts = self._vector(state_dict["window_counts"], "state_dict['window_counts']")
        self.steps = check_int(state_dict["steps"], "state_dict['steps']", minimum=0)
        self.updates = check_int(state_dict["updates"], "state_dict['updates']", minimum=0)
        self.history = [dict(e) for e in state_dict["history"]]
        self._shares = self._from_scores()

    def write_history(self, path: str | os.PathLike[str]) -> None:
        """Write :attr:`history` as JSON lines (one update per line, with the group names), atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for entry in self.history:
                fh.write(json.dumps({**entry, "names": self.names}) + "\n")

    def __repr__(self) -> str:
        shares = ", ".join(f"{n}={p:.3f}" for n, p in zip(self.names, self._shares, strict=True))
        return f"AdaptiveMixture({self.algorithm}, updates={self.updates}, shares: {shares})"


def read_history(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of a share history written by :meth:`AdaptiveMixture.write_history`, in order.

    Raises:
        ValueError: naming the file and line of an entry that is not JSON with ``update``, ``step``, ``shares``.
    """
    entries = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                ok = isinstance(entry, dict) and {"update", "step", "shares"} <= set(entry)
            except json.JSONDecodeError:
                ok = False
            if not ok:
                raise ValueError(
                    f"{path}:{number}: not a share history entry (a JSON object with 'update', 'step' and 'shares'); "
                    "write one with AdaptiveMixture.write_history"
                )
            entries.append(entry)
    if not entries:
        raise ValueError(f"{path}: no share history entries")
    return entries
