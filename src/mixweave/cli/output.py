"""How the command prints: JSON with floats a person can read, tables that never cut a name."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["NAME_COLUMN", "to_json"]

#: Keyword arguments of the first (name) column of every table: long names wrap instead of being cut.
NAME_COLUMN: dict[str, Any] = {"overflow": "fold", "justify": "left"}


def _tidy(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.12g}")  # 0.3999999999999965 -> 0.4: float noise, not information
    if isinstance(value, dict):
        return {k: _tidy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_tidy(v) for v in value]
    return value


def to_json(value: Any) -> str:
    """``value`` as one line of JSON, every float rounded to 12 significant digits.

    Example:
        >>> to_json({"share": 0.3999999999999965, "n": [1, 2.0000000000000004]})
        '{"share": 0.4, "n": [1, 2.0]}'
    """
    return json.dumps(_tidy(value))
