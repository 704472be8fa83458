"""``Literal`` types of the config schema, built from the core's name tuples (:mod:`mixweave.core.names`).

A name added to a family in the core is accepted by the schema at once, and
the schema's error lists exactly the names the library dispatches on.
Type checkers see ``str`` (a ``Literal`` built at run time is opaque to them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias

from ..core.names import (
    ADAPTIVE_ALGORITHMS,
    COMPOSITION_MODES,
    INTERPOLATIONS,
    LABEL_REDUCTIONS,
    LABEL_TYPES,
    MODES,
    PIPELINE_STRATEGIES,
    STOPPING,
)

__all__ = [
    "ADAPTIVE_ALGORITHM",
    "COMPOSITION_MODE",
    "INTERPOLATION",
    "LABEL_REDUCTION",
    "LABEL_TYPE",
    "MODE",
    "PIPELINE_STRATEGY",
    "STOPPING_RULE",
]

if TYPE_CHECKING:
    ADAPTIVE_ALGORITHM: TypeAlias = str
    COMPOSITION_MODE: TypeAlias = str
    INTERPOLATION: TypeAlias = str
    LABEL_REDUCTION: TypeAlias = str
    LABEL_TYPE: TypeAlias = str
    MODE: TypeAlias = str
    PIPELINE_STRATEGY: TypeAlias = str
    STOPPING_RULE: TypeAlias = str
else:
    ADAPTIVE_ALGORITHM = Literal[ADAPTIVE_ALGORITHMS]
    COMPOSITION_MODE = Literal[COMPOSITION_MODES]
    INTERPOLATION = Literal[INTERPOLATIONS]
    LABEL_REDUCTION = Literal[LABEL_REDUCTIONS]
    LABEL_TYPE = Literal[LABEL_TYPES]
    MODE = Literal[MODES]
    PIPELINE_STRATEGY = Literal[PIPELINE_STRATEGIES]
    STOPPING_RULE = Literal[STOPPING]
