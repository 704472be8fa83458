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
from .._validation import (
    as_numpy,
    by_name,
    check_bool,
    check_choice,
    check_int,
    check_real,
    check_saved_settings,
    show,
    warn,
)
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
        if self.floor * k > 1 - 1e-12:
            warn(f"`floor` = 1/{k}: every share is fixed at 1/{k} and the mixture never moves", stacklevel=2)
        self.decay = check_real(decay, "decay", low=0, high=1, high_open=True)
        self.names = self._check_names(names)
        if distributed is not None:
            check_bool(distributed, "distributed")
        self.distributed = distributed
        self.reference_losses: np.ndarray | None = None
        if self.algorithm == "doremi":
            if reference_losses is None:
                raise ValueError(
                    "algorithm='doremi' needs `reference_losses`, one loss per group of a reference model "
                    "(zeros make the raw training loss the excess)"
                )
            if isinstance(reference_losses, Mapping):
                reference_losses = by_name(reference_losses, self.names, "reference_losses")
            self.reference_losses = self._vector(reference_losses, "reference_losses")
        elif reference_losses is not None:
            raise ValueError("`reference_losses` applies to algorithm='doremi' only, not 'exp3'")
        start = np.full(k, 1.0 / k) if initial is None else self._initial(initial)
        # exp3 keeps smoothed rewards R with softmax(learning_rate * R) = start; doremi keeps log a with a = start
        with np.errstate(all="ignore"):  # a learning rate so small that this overflows is refused by _finite
            self._scores = np.log(start) / (self.learning_rate if self.algorithm == "exp3" else 1.0)
        self._shares = self._finite(self._from_scores(self._scores))
        self._draw = self._shares.copy()  # the shares the samples being observed were drawn with
        self._sampled = False  # a sampler records segments: the draw shares are the segment's, not the latest
        self._iw_sums = np.zeros(k)  # exp3: sum of loss / draw share, per group
        self._sums = np.zeros(k)
        self._counts = np.zeros(k)
        self.steps = 0  # observe() calls so far
        self.updates = 0
        self.history: list[dict[str, Any]] = [self._entry()]
        #: Shares recorded for each segment of each epoch by the samplers reading this mixture:
        #: ``{epoch: {segment: shares}}`` (see NOTE [ Segments ] in :mod:`.adaptive_sampler`).
        self.segment_log: dict[int, dict[int, np.ndarray]] = {}
        self.update_hooks: list[Callable[[AdaptiveMixture], None]] = []

    # ------------------------------------------------------------------ checks
    def _vector(self, values: Any, name: str, *, minimum: float | None = None) -> np.ndarray:
        try:
            arr = np.asarray(as_numpy(values), dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.empty(0)
        ok = arr.shape == (self.num_groups,) and bool(np.isfinite(arr).all())
        if not ok or (minimum is not None and (arr < minimum).any()):
            allowed = "finite numbers" if minimum is None else f"finite numbers >= {minimum:g}"
            raise ValueError(f"`{name}` must be {self.num_groups} {allowed} (one per group), got {show(values)}")
        return arr

    def _initial(self, values: Any) -> np.ndarray:
        arr = self._vector(values, "initial")
        if (arr <= 0).any() or abs(arr.sum() - 1.0) > 1e-6:
            raise ValueError(f"`initial` must be positive shares summing to 1, got {show(arr.tolist())}")
        return arr / arr.sum()

    def _check_names(self, names: Sequence[str] | None) -> list[str]:
        if names is None:
            return [str(g) for g in range(self.num_groups)]
        if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
            raise TypeError(f"`names` must be a list of {self.num_groups} names, got {type(names).__name__}")
        out = [str(n) for n in names]
        if len(out) != self.num_groups or len(set(out)) != len(out):
            raise ValueError(f"`names` must be {self.num_groups} distinct names, got {show(list(names))}")
        return out

    def _finite(self, shares: np.ndarray) -> np.ndarray:
        if not np.isfinite(shares).all():
            raise ValueError(
                f"the shares became {show(shares.tolist())}: `learning_rate` ({self.learning_rate!r}) and the losses "
                "take the scores out of the range of float64; for losses of order 1, a learning rate between about "
                "1e-6 and 1e6 is safe"
            )
        return shares

    # ------------------------------------------------------------------ shares
    def _from_scores(self, scores: np.ndarray) -> np.ndarray:
        scale = self.learning_rate if self.algorithm == "exp3" else 1.0
        with np.errstate(all="ignore"):  # checked by _finite
            return mix_floor(softmax(scale * scores), self.floor)

    def probabilities(self) -> np.ndarray:
        """The shares in force (float64, shape ``(K,)``, summing to 1, each >= ``floor``); a copy."""
        return self._shares.copy()

    def record_segment(self, epoch: int, segment: int) -> np.ndarray:
        """The shares of ``(epoch, segment)``: recorded ones, else the shares in force, recorded now.

        Called by :class:`~mixweave.sampling.adaptive_sampler.AdaptiveSampler`
        when it reaches a segment. The samples observed from then on count as
        drawn with these shares (EXP3's importance weights).
        """
        log = self.segment_log.setdefault(epoch, {})
        shares = log.get(segment)
        if shares is None:
            shares = log[segment] = self._shares.copy()
        self._draw, self._sampled = shares, True
        return shares

    def _entry(self) -> dict[str, Any]:
        return {"update": self.updates, "step": self.steps, "shares": self._shares.tolist()}

    # ---------------------------------------------------------------- training
    def observe(self, group_ids: Any, losses: Any, counts: Any = None) -> bool:
        """Record one training step's losses; update the shares every ``update_every`` steps.

        Args:
            group_ids: the group of each entry, integers in ``[0, K)``
                (a numpy array, a list or a tensor; 1-D; may be empty).
            losses: the loss of each entry, finite, same length (detached
                tensors are fine; they are read, never back-propagated).
            counts: optional number of samples each entry stands for: pass
                per-group mean losses with their sample counts instead of
                per-sample losses. Default 1 per entry.

        Returns:
            True when this call applied an update.

        Raises:
            ValueError: for ids outside ``[0, K)``, non-finite losses (or sums
                of them), negative counts or mismatched lengths; nothing is recorded then.
        """
        ids = self._ids(group_ids)
        values = self._entries(losses, "losses", ids.shape[0])
        weights = np.ones(ids.shape[0]) if counts is None else self._entries(counts, "counts", ids.shape[0])
        if (weights < 0).any():
            raise ValueError(f"`counts` must be non-negative numbers, one per entry, got {show(counts)}")
        k = self.num_groups
        with np.errstate(all="ignore"):
            sums = self._sums + np.bincount(ids, weights=values * weights, minlength=k)
            iw_sums = self._iw_sums + np.bincount(ids, weights=values * weights / self._draw[ids], minlength=k)
        if not (np.isfinite(sums).all() and np.isfinite(iw_sums).all()):
            raise ValueError(f"`losses` are too large to sum in float64: {show(values.tolist())}")
        self._sums, self._iw_sums = sums, iw_sums
        self._counts += np.bincount(ids, weights=weights, minlength=k)
        self.steps += 1
        if self.steps % self.update_every:
            return False
        self.update()
        return True

    def _ids(self, group_ids: Any) -> np.ndarray:
        ids = np.asarray(as_numpy(group_ids))
        if ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= self.num_groups:
            raise ValueError(
                f"`group_ids` must be a 1-D array of integers in [0, {self.num_groups}), got {show(group_ids)}"
            )
        return ids.astype(np.int64, copy=False)

    def _entries(self, values: Any, name: str, n: int) -> np.ndarray:
        try:
            arr = np.asarray(as_numpy(values), dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"`{name}` must be numbers, one per entry of `group_ids`, got {show(values)}") from None
        if arr.shape != (n,):
            raise ValueError(
                f"`group_ids` and `{name}` must be 1-D of the same length, got shapes ({n},) and {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"`{name}` must be finite, got {show(arr.tolist())}")
        return arr

    def update(self) -> None:
        """Apply the rule to the current window (summed over ranks) and start a new window.

        :meth:`observe` calls it every ``update_every`` steps; call it directly
        to update at other times (on every rank, when distributed). A window
        with no sample (on any rank) leaves the shares as they are.

        Raises:
            ValueError: if the update would make a share NaN or infinite (the state is left unchanged).
        """
        k = self.num_groups
        stats = np.concatenate([self._sums, self._counts, self._iw_sums])
        if self.distributed is not False:
            stats = all_reduce_sum(stats, required=bool(self.distributed))
        sums, counts, iw_sums = stats[:k], stats[k : 2 * k], stats[2 * k :]
        scores = self._scores
        total = float(counts.sum())
        if total > 0:
            with np.errstate(all="ignore"):
                if self.algorithm == "exp3":
                    # exp3_rewards(S, n, p) with each sample weighted by the share it was drawn with
                    rewards = exp3_rewards(iw_sums, counts, np.ones(k))
                    scores = self.decay * scores + (1.0 - self.decay) * rewards
                else:
                    assert self.reference_losses is not None
                    scores = scores + self.learning_rate * doremi_excess(sums, counts, self.reference_losses)
                    scores = scores - scores.max()  # log a, normalised: stays bounded above over long runs
        shares = self._finite(self._from_scores(scores))
        self._scores, self._shares = scores, shares
        if not self._sampled:  # observations come from draws with the shares in force
            self._draw = shares
        self._sums = np.zeros(k)
        self._counts = np.zeros(k)
        self._iw_sums = np.zeros(k)
        self.updates += 1
        self.history.append(self._entry())
        for hook in self.update_hooks:
            hook(self)

    # ------------------------------------------------------------------ resume
    def _settings(self) -> dict[str, Any]:
        settings = {
            "algorithm": self.algorithm,
            "num_groups": self.num_groups,
            "update_every": self.update_every,
            "learning_rate": self.learning_rate,
            "floor": self.floor,
            "decay": self.decay,
        }
        if self.reference_losses is not None:
            settings["reference_losses"] = self.reference_losses.tolist()
        return settings

    def state_dict(self) -> dict[str, Any]:
        """Plain JSON-able state: the scores, the open window, the counts, the history and the segment log."""
        return {
            **self._settings(),
            "scores": self._scores.tolist(),
            "window_sums": self._sums.tolist(),
            "window_counts": self._counts.tolist(),
            "window_weighted_sums": self._iw_sums.tolist(),
            "draw_shares": self._draw.tolist(),
            "sampled": self._sampled,
            "steps": self.steps,
            "updates": self.updates,
            "history": [dict(e) for e in self.history],
            "segment_log": _log_entries(self.segment_log),
        }

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict`: the next step continues exactly where the saved one left off.

        Everything is checked before anything changes: a state that fails leaves the mixture as it was.

        Raises:
            ValueError: if a key is missing, a value is malformed, or the state
                was saved with other settings (the message names the key).
        """
        keys = ["scores", "window_sums", "window_counts", "window_weighted_sums", "draw_shares", "sampled", "steps"]
        keys += ["updates"]
        check_saved_settings(state_dict, self._settings(), "AdaptiveMixture", extra=(*keys, "history", "segment_log"))
        scores = self._vector(state_dict["scores"], "state_dict['scores']")
        sums = self._vector(state_dict["window_sums"], "state_dict['window_sums']")
        counts = self._vector(state_dict["window_counts"], "state_dict['window_counts']", minimum=0)
        iw_sums = self._vector(state_dict["window_weighted_sums"], "state_dict['window_weighted_sums']")
        draw = self._vector(state_dict["draw_shares"], "state_dict['draw_shares']", minimum=0)
        steps = check_int(state_dict["steps"], "state_dict['steps']", minimum=0)
        updates = check_int(state_dict["updates"], "state_dict['updates']", minimum=0, maximum=steps)
        history = state_dict["history"]
        if not isinstance(history, list) or not all(isinstance(e, Mapping) and "shares" in e for e in history):
            raise ValueError(f"`state_dict['history']` must be a list of share entries, got {show(history)}")
        log = _read_log(state_dict["segment_log"], self.num_groups)
        shares = self._finite(self._from_scores(scores))
        self._scores, self._shares, self._sums, self._counts, self._iw_sums = scores, shares, sums, counts, iw_sums
        self._draw, self._sampled, self.steps, self.updates = draw, bool(state_dict["sampled"]), steps, updates
        self.history = [dict(e) for e in history]
        self.segment_log = log

    def write_history(self, path: str | os.PathLike[str]) -> None:
        """Write :attr:`history` as JSON lines (one update per line, with the group names), atomically."""
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            for entry in self.history:
                fh.write(json.dumps({**entry, "names": self.names}) + "\n")

    def __repr__(self) -> str:
        shares = ", ".join(f"{n}={p:.3g}" for n, p in zip(self.names, self._shares, strict=True))
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


def _log_entries(log: Mapping[int, Mapping[int, np.ndarray]]) -> list[dict[str, Any]]:
    """A segment log as JSON-able ``{"epoch", "segment", "shares"}`` entries, in order."""
    return [{"epoch": e, "segment": g, "shares": p.tolist()} for e in sorted(log) for g, p in sorted(log[e].items())]


def _read_log(entries: Any, num_groups: int) -> dict[int, dict[int, np.ndarray]]:
    """The segment log of ``entries`` (each ``{"epoch", "segment", "shares"}``), all checked before any is used.

    Raises:
        ValueError: naming the first malformed entry.
    """
    if not isinstance(entries, (list, tuple)) and not hasattr(entries, "__iter__"):
        raise ValueError(f"a share log must be a list of entries, got {show(entries)}")
    log: dict[int, dict[int, np.ndarray]] = {}
    for entry in entries:
        try:
            epoch = check_int(entry["epoch"], "epoch", minimum=0)
            segment = check_int(entry["segment"], "segment", minimum=0)
            shares = np.asarray(entry["shares"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"a share log entry needs 'epoch' and 'segment' (ints >= 0) and 'shares', got {show(entry)}"
            ) from exc
        if shares.shape != (num_groups,) or not np.isfinite(shares).all() or (shares < 0).any() or shares.sum() <= 0:
            raise ValueError(f"recorded shares must be {num_groups} non-negative numbers, got {show(entry['shares'])}")
        log.setdefault(epoch, {})[segment] = shares / shares.sum()
    return log
