"""Config errors: :class:`ConfigError` names the file and the dotted key of every problem.

NOTE [ Config errors ]
    Every problem in a config raises :class:`ConfigError` (a ``ValueError``)
    or ``FileNotFoundError``, and names the file and the dotted key as the
    user wrote them, e.g. ``parent.yaml: `sessions[3]`: ...`` or
    ``sessions/a.yaml: `transforms.stim.ops`: ...``. Schema errors from
    pydantic go through :func:`from_validation_error`, the one place that
    turns pydantic's locations into dotted keys.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import Any

from .._validation import did_you_mean, show

__all__ = ["ConfigError", "ConfigFileNotFoundError", "KeyAliases", "LocatedError", "dotted", "from_validation_error"]


#: Where a key of the translated schema came from: schema key prefix -> (the key the user wrote, its file or None).
KeyAliases = Mapping[str, tuple[str, "str | os.PathLike[str] | None"]]


def _alias(key: str | None, aliases: KeyAliases) -> tuple[str | None, Any]:
    """The user's key (and file) for a schema ``key``: the longest aliased prefix is replaced."""
    if key is None:
        return None, None
    for prefix in sorted(aliases, key=len, reverse=True):
        if key == prefix or key.startswith((prefix + ".", prefix + "[")):
            user_key, path = aliases[prefix]
            return user_key + key[len(prefix) :], path
    return key, None


class LocatedError(Exception):
    """Base of the config errors: message, file and dotted key, formatted ``FILE: `key`: message``."""

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, key: str | None = None) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.key = key
        where = "".join(part for part in (self.path and f"{self.path}: ", key and f"`{key}`: ") if part)
        super().__init__(f"{where}{message}")

    def in_file(self, path: str | os.PathLike[str] | None) -> Any:
        """This error, naming ``path`` as its file if it names none yet (the key is kept)."""
        if self.path is not None or path is None:
            return self
        return type(self)(self.message, path=path, key=self.key)

    def renamed(self, aliases: KeyAliases) -> Any:
        """This error with its key as the user wrote it (a translated shape's key, see ``KeyAliases``)."""
        key, path = _alias(self.key, aliases)
        if key == self.key:
            return self
        return type(self)(self.message, path=self.path if path is None else path, key=key)


class ConfigError(LocatedError, ValueError):
    """A config problem, naming the file and the dotted key (see NOTE [ Config errors ]).

    Attributes:
        message: the problem, without file and key.
        path: the file the problem is in (None for an in-memory mapping).
        key: the dotted key, e.g. ``sessions[3]`` (None for the whole file).
    """


class ConfigFileNotFoundError(LocatedError, FileNotFoundError):
    """A file a config names is missing; like :class:`ConfigError`, it names the config file and key."""


def dotted(*parts: str | int) -> str:
    """Join key parts the way errors print them: ``dotted("sessions", 3, "name") == "sessions[3].name"``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def from_validation_error(
    exc: Any,
    *,
    path: str | os.PathLike[str] | None = None,
    prefix: str = "",
    tags: Collection[str] = (),
    vocabulary: Collection[str] = (),
) -> ConfigError:
    """The first problem of a pydantic ``ValidationError`` as a :class:`ConfigError` with its dotted key.

    Args:
        exc: the ``ValidationError``.
        path: the file the validated mapping came from.
        prefix: the key of the validated section in its file (``"sampling"``).
        tags: discriminator values pydantic puts after a list index
            (``sources.0.npy.fields`` is reported as ``sources[0].fields``).
        vocabulary: the schema's key names: an unknown key gets a "did you mean".
    """
    errors = exc.errors()
    # a mistyped key is reported twice, as unknown and as missing: the unknown one says what to fix
    err = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = list(err["loc"])
    parts = [p for i, p in enumerate(loc) if not (i > 0 and isinstance(loc[i - 1], int) and p in tags)]
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden" and parts:
        message += did_you_mean(parts[-1], vocabulary)
    got = err.get("input")
    detail = f" (got {show(got)})" if err["type"] != "missing" and not isinstance(got, Mapping) else ""
    key = dotted(*([prefix] if prefix else []), *parts) or None
    return ConfigError(f"{message}{detail}", path=path, key=key)
