"""``WeightedSampler``: per-sample weights, the drawing engine and :class:`~mixweave.sampling.base.PlanSampler`.

Example:
    >>> import numpy as np
    >>> s = WeightedSampler(np.array([0.0, 1.0, 3.0]), num_samples=6, seed=0)
    >>> bool((s.plan() > 0).all())
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .._validation import check_bool, check_choice, check_int
from ..core import weights as weights_mod
from ..core.draw import DrawEngine
from ..core.names import MODES
from ..core.report import share_report
from .base import PlanSampler

__all__ = ["WeightSource", "WeightedSampler"]

WeightSource = Any  # array-like, or Callable[[int], array-like]


class WeightedSampler(PlanSampler):
    """Draw indices in proportion to per-sample weights; distributed, resumable, exact if asked.

    A drop-in for ``torch.utils.data.WeightedRandomSampler`` that is
    deterministic from ``(seed, epoch)``, shards across ranks without a
    wrapper, resumes mid-epoch, has no 2**24 limit on the number of weights,
    and can give groups exact shares.

    Args:
        weights: per-sample non-negative weights, shape ``(N,)``; or a
            callable ``epoch -> weights`` re-evaluated when the epoch changes
            (weights that follow a schedule).
        num_samples: indices per epoch across all ranks (default ``N``).
        replacement: draw with replacement (default). Without replacement an
            index appears at most once per epoch (random mode), or groups are
            cycled through without repeats (exact mode).
        mode: ``"random"`` (i.i.d. or weighted permutation) or ``"exact"``
            (each group gets its share exactly, interleaved evenly; needs ``groups``).
        groups: integer group id per sample (e.g. source id), for
            ``mode="exact"`` and for :meth:`report`.
        seed: base seed; the plan of an epoch depends only on ``(seed, epoch)``.
        num_replicas: number of ranks (default: the process group's size, or 1).
        rank: this rank (default: the process group's rank, or 0).
        drop_last: drop the plan's tail instead of padding it so ranks get equal counts.
        increment_seed_per_epoch: draw a new plan each epoch (default); with
            False every epoch repeats the plan of epoch 0 (weights may still change).

    Raises:
        ValueError: for negative/NaN/inf/all-zero/empty weights, ``num_samples``
            <= 0, ``rank`` outside ``[0, num_replicas)``, an unknown ``mode``,
            or more ``num_samples`` than positive weights without replacement.

    Example:
        >>> import numpy as np
        >>> sampler = WeightedSampler([0.0, 1.0, 1.0, 2.0], num_samples=8, seed=0)
        >>> idx = sampler.plan()
        >>> idx.shape, bool((idx > 0).all())
        ((8,), True)
        >>> np.array_equal(idx, np.array(list(sampler)))
        True
    """

    def __init__(
        self,
        weights: WeightSource,
        num_samples: int | None = None,
        replacement: bool = True,
        *,
        mode: str = "random",
        groups: Any = None,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
        increment_seed_per_epoch: bool = True,
    ) -> None:
        self.mode = check_choice(mode, "mode", MODES)
        self.replacement = bool(replacement)
        self._provider: Callable[[int], Any] | None = weights if callable(weights) else None
        self._engine_key: tuple[Any, ...] = (0, self.weights_version())
        self._groups = groups
        self._groups_crc32: int | None = None
        first = DrawEngine(
            weights(0) if callable(weights) else weights, replacement=self.replacement, mode=mode, groups=groups
        )
        self._engines: dict[int, DrawEngine] = {0: first}
        self.num_weights = int(first.weights.shape[0])
        super().__init__(
            self.num_weights if num_samples is None else num_samples,
            seed=seed,
            num_replicas=num_replicas,
            rank=rank,
            drop_last=drop_last,
        )
        self.increment_seed_per_epoch = check_bool(increment_seed_per_epoch, "increment_seed_per_epoch")
        self._check_capacity(first)

    @classmethod
    def from_sources(
        cls,
        sizes: Any,
        source_weights: Any,
        num_samples: int | None = None,
        *,
        within: Any = None,
        mode: str = "exact",
        **kwargs: Any,
    ) -> WeightedSampler:
        """A sampler over a ``ConcatDataset`` whose per-source shares are fixed.

        Args:
            sizes: the size of each source, or the sources themselves (anything with ``len``),
                or a ``torch.utils.data.ConcatDataset``.
            source_weights: share of each source (normalised).
            num_samples: indices per epoch (default: the total size).
            within: optional per-sample factor (e.g. :func:`~mixweave.core.weights.inverse_frequency`
                of the labels with ``groups`` = source ids) that acts only inside each source.
            mode: ``"exact"`` (default: source shares exact in every prefix) or ``"random"``.
            **kwargs: passed to :class:`WeightedSampler` (``replacement``, ``seed``, ...).

        Example:
            >>> s = WeightedSampler.from_sources([900, 100], [0.5, 0.5], num_samples=10, seed=0)
            >>> int((s.plan() >= 900).sum())
            5
        """
        if hasattr(sizes, "datasets") and hasattr(sizes, "cumulative_sizes"):  # ConcatDataset
            sizes = sizes.datasets
        counts = np.array([s if isinstance(s, (int, np.integer)) else len(s) for s in sizes], dtype=np.int64)
        if counts.ndim != 1 or counts.size == 0 or (counts <= 0).any():
            raise ValueError(f"`sizes` must list at least one source, each with >= 1 sample, got {counts.tolist()}")
        groups = np.repeat(np.arange(counts.size), counts)
        w = weights_mod.compose_hierarchical(groups, source_weights, within=within)
        return cls(w, num_samples, mode=mode, groups=groups, **kwargs)

    def _check_capacity(self, engine: DrawEngine) -> None:
        cap = engine.max_samples()
        if cap is not None and self.num_samples > cap:
            raise ValueError(
                f"`num_samples` ({self.num_samples}) exceeds the {cap} samples with positive weight; "
                "draw without replacement needs num_samples <= that, or use replacement=True"
            )

    def weights_version(self) -> Any:
        """Anything besides the epoch that changes scheduled weights (a curriculum phase, say)."""
        return None

    def _engine(self, epoch: int) -> DrawEngine:
        if self._provider is None:
            return self._engines[0]
        key = (epoch, self.weights_version())
        engine = self._engines.get(epoch) if key == self._engine_key else None
        if engine is None:
            engine = DrawEngine(
                self._provider(epoch), replacement=self.replacement, mode=self.mode, groups=self._groups
            )
            if engine.weights.shape[0] != self.num_weights:
                raise ValueError(
                    f"the weight schedule returned {engine.weights.shape[0]} weights for epoch {epoch}, "
                    f"expected {self.num_weights}"
                )
            self._check_capacity(engine)
            self._engines = {epoch: engine}  # keep one epoch's table: memory stays linear in N
            self._engine_key = key
        return engine

    def _plan_indices(self, epoch: int, positions: np.ndarray) -> np.ndarray:
        return self._engine(epoch).indices(self._key(epoch), positions, self.num_samples)

    def global_plan(self, epoch: int | None = None) -> np.ndarray:
        """The single-process plan of ``epoch``: all ``num_samples`` indices, before sharding."""
        epoch = self._epoch if epoch is None else check_int(epoch, "epoch", minimum=0)
        return self._engine(epoch).plan(self._key(epoch), self.num_samples)

    @property
    def weights(self) -> np.ndarray:
        """The current epoch's weights (float64, as given, not normalised)."""
        return self._engine(self._epoch).weights

    def weights_at(self, epoch: int) -> np.ndarray:
        """The weights ``epoch`` is drawn from (float64, as given, not normalised); nothing is drawn."""
        return self._engine(check_int(epoch, "epoch", minimum=0)).weights

    def weight_stats(self) -> weights_mod.WeightStats:
        """``min``/``max`` probability, ``entropy`` and ``effective_samples`` of the current weights."""
        return weights_mod.weight_stats(self.weights)

    def report(self, groups: Any = None, epoch: int | None = None) -> dict[str, list[Any]]:
        """Requested vs realised share of each group in ``epoch``'s global plan, without loading samples.

        Args:
            groups: integer group id per sample (default: the ``groups`` given at construction).
            epoch: default the current epoch.

        Returns:
            :func:`~mixweave.core.report.share_report` columns indexed by group id:
            ``requested``, ``realised``, ``unique`` (distinct samples drawn), ``size``,
            ``coverage`` and ``repeats``.
        """
        ids = np.asarray(self._groups if groups is None else groups)
        if ids.ndim != 1 or ids.shape[0] != self.num_weights or not np.issubdtype(ids.dtype, np.integer):
            raise ValueError(
                f"`groups` must be integer ids of shape ({self.num_weights},), got {ids.dtype} of shape {ids.shape}"
                + (
                    "; map labels to ids first, e.g. np.unique(labels, return_inverse=True)[1]"
                    if ids.dtype.kind in ("U", "S", "O")
                    else ""
                )
            )
        epoch = self._epoch if epoch is None else check_int(epoch, "epoch", minimum=0)
        probabilities = weights_mod.normalize(self._engine(epoch).weights)
        return share_report(ids, probabilities, [self.global_plan(epoch)])

    def _weights_crc32(self, epoch: int) -> int:
        """The fingerprint of ``epoch``'s weights, computed once per weight vector (checkpoints ask often)."""
        engine = self._engine(epoch)  # a checked epoch: the current one, or a saved state's
        if engine.crc32 is None:
            engine.crc32 = weights_mod.fingerprint(engine.weights)
        return engine.crc32

    def _fingerprint(self, epoch: int) -> dict[str, Any]:
        settings = {
            **super()._fingerprint(epoch),
            "mode": self.mode,
            "replacement": self.replacement,
            "num_weights": self.num_weights,
            "weights_crc32": self._weights_crc32(epoch),
        }
        if self.mode == "exact":  # the groups set the quotas and the interleave
            if self._groups_crc32 is None:
                self._groups_crc32 = weights_mod.fingerprint(np.asarray(self._groups).astype(np.float64))
            settings["groups_crc32"] = self._groups_crc32
        return settings
