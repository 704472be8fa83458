"""``Literal`` types of the config schema, built from the core's name tuples (:mod:`mixweave.core.names`).

A name added to a family in the core is accepted by the schema at once, and
the schema's error lists exactly the names the library dispatches on.
Type checkers see ``str`` (a ``Literal`` built at run time is opaque to them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, TypeAlias

from ..core.names import COMPOSITION_MODES, INTERPOLATIONS, LABEL_REDUCTIONS, LABEL_TYPES, MODES, STRATEGIES

__all__ = ["COMPOSITION_MODE", "INTERPOLATION", "LABEL_REDUCTION", "LABEL_TYPE", "MODE", "STRATEGY"]

if TYPE_CHECKING:
    COMPOSITION_MODE: TypeAlias = str
    INTERPOLATION: TypeAlias = str
    LABEL_REDUCTION: TypeAlias = str
    LABEL_TYPE: TypeAlias = str
    MODE: TypeAlias = str
    STRATEGY: TypeAlias = str
else:
    COMPOSITION_MODE = Literal[COMPOSITION_MODES]
    INTERPOLATION = Literal[INTERPOLATIONS]
    LABEL_REDUCTION = Literal[LABEL_REDUCTIONS]
    LABEL_TYPE = Literal[LABEL_TYPES]
    MODE = Literal[MODES]
    STRATEGY = Literal[STRATEGIES]
