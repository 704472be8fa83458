"""Parent/session inheritance: one merged config per session of a parent config.

A *parent* config lists sessions and holds what they share; each session file
``<session_dir>/<name>.yaml`` holds only what is particular to it::

    # parent.yaml
    session_dir: ./sessions
    sessions: [Allen_2022-02-16, {name: Logan_2020-02-29, weight: 2}]
    transforms: {stim: {source: stim, ops: [pixelnorm, unsqueeze]}}
    seed: 1002

    # sessions/Allen_2022-02-16.yaml
    cids: [1, 4, 5]
    transforms: {stim: {ops: [fftwhitening, pixelnorm]}}

:func:`load_dataset_configs` returns one merged dict per session: the parent
(without ``session_dir``, ``sessions``, ``extends`` and ``required_keys``)
with the session merged on top -- mappings recursively, lists and scalars
replaced -- plus ``session``, ``_weight``, ``_config_path`` and
``_parent_config_path``. Errors follow NOTE [ Config errors ]
(:mod:`mixweave.config.errors`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .._validation import check_real, did_you_mean, show
from .errors import ConfigError, dotted
from .files import deep_merge, load_yaml, load_yaml_with_extends, warn_replaced

__all__ = ["PARENT_ONLY_KEYS", "describe", "load_dataset_configs", "session_entries"]

#: Keys of a parent config that describe the inheritance itself and are not passed on to sessions.
PARENT_ONLY_KEYS: tuple[str, ...] = ("session_dir", "sessions", "extends", "required_keys")
_META_KEYS = ("_weight", "_config_path", "_parent_config_path")


def session_entries(parent: Mapping[str, Any], path: str | os.PathLike[str] | None = None) -> list[tuple[str, float]]:
    """``(name, weight)`` of every entry of a parent's ``sessions:`` list, validated.

    An entry is a name, or a mapping ``{name: X, weight: 2}`` (weight
    defaults to 1.0 and must be a positive finite number).

    Raises:
        ConfigError: for a missing or empty list, a malformed entry, a
            duplicate name or a name that would leave ``session_dir``
            (absolute, or with ``..``), naming ``sessions[i]``.
    """
    if "sessions" not in parent:
        raise ConfigError(
            "Parent config must include 'sessions' field: list the session names under `sessions:`",
            path=path,
            key="sessions",
        )
    entries = parent["sessions"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"Parent config 'sessions' must be a non-empty list of session names, got {show(entries)}",
            path=path,
            key="sessions",
        )
    out: list[tuple[str, float]] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        key = dotted("sessions", i)
        weight: Any = 1.0
        if isinstance(entry, Mapping):
            unknown = sorted(map(str, set(entry) - {"name", "weight"}))
            if unknown:
                hint = did_you_mean(unknown[0], ("name", "weight"))
                raise ConfigError(
                    f"unknown key(s) {unknown}{hint}; an entry has `name` and `weight`", path=path, key=key
                )
            name, weight = entry.get("name"), entry.get("weight", 1.0)
        else:
            name = entry
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a session name must be a non-empty string, got {show(name)}", path=path, key=key)
        _check_session_name(name, path, key)
        try:
            weight = check_real(weight, "weight", low=0.0, low_open=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), path=path, key=f"{key}.weight") from None
        if name in seen:
            raise ConfigError(f"duplicate session {name!r} (also sessions[{seen[name]}])", path=path, key=key)
        seen[name] = i
        out.append((name, float(weight)))
    return out


def _check_session_name(name: str, path: Any, key: str) -> None:
    """Reject names that would resolve outside ``session_dir`` (a lexical check: symlinks inside it are fine)."""
    norm = os.path.normpath(name)
    if os.path.isabs(name) or Path(name).drive or norm == ".." or norm.startswith(".." + os.sep) or norm == ".":
        raise ConfigError(
            f"session name {name!r} would resolve outside `session_dir`; names are file stems inside it",
            path=path,
            key=key,
        )


def _required_keys(parent: Mapping[str, Any], path: Path) -> list[str]:
    keys = parent.get("required_keys", ["cids"])
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ConfigError(f"must be a list of (dotted) key names, got {show(keys)}", path=path, key="required_keys")
    return keys


def _has_key(config: Mapping[str, Any], dotted_key: str) -> bool:
    node: Any = config
    for part in dotted_key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def load_dataset_configs(parent_config_path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Load a parent config and return one merged config per session, in the order listed.

    Each result is ``deep_merge(parent, session)`` where ``parent`` lacks
    :data:`PARENT_ONLY_KEYS`, plus:

    - ``session``: from the session file, else its name in ``sessions``;
    - ``_weight``: the entry's ``weight`` (default 1.0);
    - ``_config_path`` / ``_parent_config_path``: the session and parent files (strings).

    ``session_dir`` is relative to the parent file (or to the base that sets
    it, with ``extends:``). ``required_keys`` (default ``[cids]``; dotted
    names allowed, e.g. ``source.path``) must be present in every merged
    config. Every call reads the files again and every returned dict is
    independent: editing one changes no other and no later load.

    Raises:
        FileNotFoundError: for a missing parent, base or session file.
        ConfigError: see NOTE [ Config errors ]: missing ``sessions``/``session_dir``,
            a bad entry, an escaping or duplicate name, a cycle, unsafe YAML,
            a session file that is not a mapping, or a missing required key.

    Example:
        >>> import pathlib, tempfile
        >>> root = pathlib.Path(tempfile.mkdtemp()); (root / "s").mkdir()
        >>> _ = (root / "p.yaml").write_text("session_dir: s\\nsessions: [a]\\nseed: 1\\n")
        >>> _ = (root / "s" / "a.yaml").write_text("cids: [3, 4]\\n")
        >>> [(c["session"], c["cids"], c["seed"], c["_weight"]) for c in load_dataset_configs(root / "p.yaml")]
        [('a', [3, 4], 1, 1.0)]
    """
    path = Path(parent_config_path)
    if not path.is_file():
        raise FileNotFoundError(f"Parent config file not found: {path} (config file not found)")
    parent = load_yaml_with_extends(path)
    if "session_dir" not in parent:
        raise ConfigError(
            "Parent config must include 'session_dir' field: the folder of the session files, relative to the parent",
            path=path,
            key="session_dir",
        )
    entries = session_entries(parent, path)
    session_dir = parent["session_dir"]
    if not isinstance(session_dir, str) or not session_dir:
        raise ConfigError(f"must be a folder path, got {show(session_dir)}", path=path, key="session_dir")
    folder = Path(session_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"Session directory not found: {folder} (`session_dir` of {path})")
    required = _required_keys(parent, path)
    shared = {k: v for k, v in parent.items() if k not in PARENT_ONLY_KEYS}
    configs = []
    for i, (name, weight) in enumerate(entries):
        file = folder / f"{name}.yaml"
        if not file.is_file():
            raise FileNotFoundError(f"Session config not found: {file} (`sessions[{i}]` {name!r} of {path})")
        own = load_yaml(file)
        nested = sorted(set(own) & {"sessions", "session_dir", "extends"})
        if nested:
            raise ConfigError(
                f"a session file cannot set {nested}; only parents list sessions", path=file, key=nested[0]
            )
        reserved = sorted(set(own) & set(_META_KEYS))
        if reserved:
            raise ConfigError(
                f"{reserved} are filled in by the loader; set weights in the parent", path=file, key=reserved[0]
            )
        warn_replaced(shared, own, file, "the parent")
        if "session" in own and own["session"] != name:
            warnings.warn(
                f"{file}: `session` is {own['session']!r} but the parent lists it as {name!r}; "
                f"using {own['session']!r}",
                UserWarning,
                stacklevel=2,
            )
        merged = deep_merge(shared, own)
        merged.setdefault("session", name)
        for key in required:
            if not _has_key(merged, key):
                raise ConfigError(
                    f"Session config {merged['session']!r} must include {key!r} field: required key missing after "
                    f"merging with {path} (required_keys: {required}; `required_keys: []` in the parent turns "
                    "the check off)",
                    path=file,
                    key=key,
                )
        merged["_weight"] = weight
        merged["_config_path"] = str(file)
        merged["_parent_config_path"] = str(path)
        configs.append(merged)
    return configs


def describe(configs: Sequence[Mapping[str, Any]]) -> str:
    """The merged configs as one YAML stream (what ``mixweave config show`` prints)."""
    docs = []
    for cfg in configs:
        docs.append(
            f"# session {cfg.get('session')!s} from {cfg.get('_config_path')}\n"
            + yaml.safe_dump(dict(cfg), sort_keys=False, default_flow_style=None)
        )
    return "---\n".join(docs)
