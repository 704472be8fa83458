"""The names of every family that mixweave dispatches on, in one place.

Each tuple is what a check accepts and what its error message lists; each
registry (``{name: function}``) is built from its tuple, so the two cannot
drift apart; and the config schema builds its ``Literal`` types from these
tuples (:mod:`mixweave.config.literals`). Numpy-free, torch-free: any layer
may import it.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ADAPTIVE_ALGORITHMS",
    "COMPOSITION_MODES",
    "INTERPOLATIONS",
    "LABEL_REDUCTIONS",
    "LABEL_TYPES",
    "LOSS_REDUCTIONS",
    "MODES",
    "PIPELINE_STRATEGIES",
    "SAMPLER_TYPES",
    "STOPPING",
    "STRATEGIES",
]

#: Update rules of the adaptive mixtures (:mod:`mixweave.core.adaptive`).
ADAPTIVE_ALGORITHMS: Final[tuple[str, ...]] = ("exp3", "doremi")
#: Drawing modes of the engine (:mod:`mixweave.core.draw`).
MODES: Final[tuple[str, ...]] = ("random", "exact")
#: How the joint sampler combines its task and curriculum factors.
COMPOSITION_MODES: Final[tuple[str, ...]] = ("multiplicative", "hierarchical")
#: How a multi-label row's class weights become one sample weight (:func:`~mixweave.core.weights.get_sample_weights`).
LABEL_REDUCTIONS: Final[tuple[str, ...]] = ("max", "mean", "sum")
#: Mixing strategies of the mixed datasets (:mod:`mixweave.sampling.mixing`).
STRATEGIES: Final[tuple[str, ...]] = ("weighted", "stratified", "uniform")
#: Mixing strategies of a pipeline config (``mixture.strategy``): the mixed datasets' and adaptive shares.
PIPELINE_STRATEGIES: Final[tuple[str, ...]] = (*STRATEGIES, "adaptive")
#: When an epoch of a stream mixture ends (:mod:`mixweave.sampling.streaming`).
STOPPING: Final[tuple[str, ...]] = ("first_exhausted", "all_exhausted", "never")
#: Interpolations of a weight schedule between its points (:mod:`mixweave.sampling.schedule`).
INTERPOLATIONS: Final[tuple[str, ...]] = ("step", "linear")
#: Reductions of the losses (:mod:`mixweave.train.losses`), as in ``torch.nn``.
LOSS_REDUCTIONS: Final[tuple[str, ...]] = ("mean", "sum", "none")
#: Sampler types of a pipeline: what acts inside each source (``sampler.type``).
SAMPLER_TYPES: Final[tuple[str, ...]] = ("none", "class_balanced", "task_aware", "curriculum", "joint")
#: The three label columns of a cluster-labelled store, in the order of its label array.
LABEL_TYPES: Final[tuple[str, ...]] = ("source", "steering", "combined")
