"""Optional dependencies: imported where a feature needs them, with an error that names the extra to install.

The core install is torch, numpy, PyYAML and pydantic. The rest is grouped in
extras (``pyproject.toml``): ``metrics`` (scikit-learn), ``plot`` (matplotlib),
``images`` (Pillow), ``cli`` (rich, plus what ``mixweave demo`` uses) and ``all``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]

#: Which distribution provides a top-level module, for the message.
_DISTRIBUTIONS = {"sklearn": "scikit-learn", "PIL": "Pillow", "matplotlib": "matplotlib", "rich": "rich"}


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise ``ImportError`` saying that ``feature`` needs it and which extra installs it.

    >>> require("json", extra="none", feature="a doctest").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        if getattr(exc, "name", None) not in (None, top) and not str(getattr(exc, "name", "")).startswith(top + "."):
            raise  # the module is there but something it imports is broken: show that, not a wrong hint
        dist = _DISTRIBUTIONS.get(top, top)
        raise ImportError(
            f"{feature} needs {dist}, which is not installed: pip install 'mixweave[{extra}]' (or pip install {dist})"
        ) from exc
