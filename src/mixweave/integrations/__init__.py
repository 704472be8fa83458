"""Side layer: thin adapters to Lightning, Optuna and MLflow, imported only when used.

Import the module you need (``mixweave.integrations.lightning``, ``.optuna``,
``.mlflow``); this package imports none of them, and no other layer imports
this one (an import-linter contract keeps it so).
"""

from __future__ import annotations

__all__: list[str] = []
