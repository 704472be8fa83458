"""YAML configs: safe loading, deep merge, ``extends:`` chains and parent/session inheritance.

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
``_parent_config_path``.

This module needs only the standard library and PyYAML (no torch).

NOTE [ Config errors ]
    Every problem raises :class:`ConfigError` (a ``ValueError``) or
    ``FileNotFoundError``, and names the file and the dotted key, e.g.
    ``parent.yaml: `sessions[3]`: ...`` or
    ``sessions/a.yaml: `transforms.stim.ops`: ...``.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "PARENT_ONLY_KEYS",
    "ConfigError",
    "deep_merge",
    "describe",
    "dotted",
    "load_dataset_configs",
    "load_yaml",
    "load_yaml_with_extends",
    "session_entries",
]

#: Keys of a parent config that describe the inheritance itself and are not passed on to sessions.
PARENT_ONLY_KEYS: tuple[str, ...] = ("session_dir", "sessions", "extends", "required_keys")
_META_KEYS = ("_weight", "_config_path", "_parent_config_path")


class ConfigError(ValueError):
    """A config problem, naming the file and the dotted key (see NOTE [ Config errors ]).

    Attributes:
        path: the file the problem is in (None for an in-memory mapping).
        key: the dotted key, e.g. ``sessions[3]`` (None for the whole file).
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None, key: str | None = None) -> None:
        self.message = message
        self.path = None if path is None else str(path)
        self.key = key
        where = "".join(part for part in (self.path and f"{self.path}: ", key and f"`{key}`: ") if part)
        super().__init__(f"{where}{message}")

    def in_file(self, path: str | os.PathLike[str] | None) -> ConfigError:
        """This error, naming ``path`` as its file if it names none yet (the key is kept)."""
        if self.path is not None or path is None:
            return self
        return ConfigError(self.message, path=path, key=self.key)


def dotted(*parts: str | int) -> str:
    """Join key parts the way errors print them: ``dotted("sessions", 3, "name") == "sessions[3].name"``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# -- loading -------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (PyYAML keeps the last silently)."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, (str, int, float, bool)) and key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def load_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping, with safe loading only.

    An empty file gives ``{}``. Tags that would build Python objects
    (``!!python/object``, ...) and keys written twice in one mapping are
    errors.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ConfigError: for invalid YAML, an unsafe tag, a duplicate key or a top level that is not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        with path.open("r", encoding="utf-8") as fh:
            data = yaml.load(fh, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        detail = str(exc).replace("\n", " ")
        if "python/" in detail:
            detail = f"tags that build Python objects are not allowed (safe loading only): {detail}"
        raise ConfigError(detail, path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping, got {type(data).__name__}", path=path)
    return data


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged on top.

    Mappings present in both are merged recursively; anything else in
    ``override`` (lists, scalars, ``None``) replaces the value in ``base``.
    Neither input is modified and the result shares no mutable object with
    them, so it can be edited freely.

    Example:
        >>> deep_merge({"t": {"source": "stim", "ops": [1, 2]}, "seed": 1}, {"t": {"ops": [3]}})
        {'t': {'source': 'stim', 'ops': [3]}, 'seed': 1}
    """
    out: dict[str, Any] = {}  # the base's key order, then keys new in the override (as a reader of the YAML expects)
    for key, value in base.items():
        new = override.get(key, value)
        both = isinstance(new, Mapping) and isinstance(value, Mapping) and key in override
        out[key] = deep_merge(value, new) if both else copy.deepcopy(new)
    for key, value in override.items():
        if key not in base:
            out[key] = copy.deepcopy(value)
    return out


def _replaced_mappings(
    base: Mapping[str, Any], override: Mapping[str, Any], prefix: str = ""
) -> Iterable[tuple[str, Any]]:
    """``(dotted key, new value)`` where ``override`` replaces a mapping by a non-mapping (legal, often a mistake)."""
    for key, value in override.items():
        old = base.get(key)
        where = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(old, Mapping):
            if isinstance(value, Mapping):
                yield from _replaced_mappings(old, value, where)
            elif value is not None:
                yield where, value


def _check_extends(value: Any, path: Path) -> list[Path]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        raise ConfigError(f"must be a path or a list of paths, got {value!r}", path=path, key="extends")
    return [(path.parent / v) for v in items]


def load_yaml_with_extends(path: str | os.PathLike[str], *, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read ``path`` and, if it has ``extends:`` (a path or a list of paths relative to it), merge it onto its bases.

    Bases are merged in the order listed and the file itself last, so it
    wins. A base may extend others in turn. A relative ``session_dir`` is made
    absolute against the folder of the file that sets it, so a base keeps
    pointing at its own sessions.

    Raises:
        FileNotFoundError: for a missing file (the message names the file that extends it).
        ConfigError: for a cycle (naming the whole chain) or a malformed ``extends``.
    """
    path = Path(path)
    resolved = path.resolve()
    if resolved in _chain:
        cycle = " -> ".join(str(p) for p in (*_chain, resolved))
        raise ConfigError(f"`extends` forms a cycle: {cycle}", path=path, key="extends")
    data = load_yaml(path)
    _absolute_session_dir(data, path)
    if "extends" not in data:
        return data
    merged: dict[str, Any] = {}
    for base in _check_extends(data["extends"], path):
        if not base.is_file():
            raise FileNotFoundError(f"{path}: `extends` names a missing file: {base}")
        merged = deep_merge(merged, load_yaml_with_extends(base, _chain=(*_chain, resolved)))
    own = {k: v for k, v in data.items() if k != "extends"}
    _warn_replaced(merged, own, path, "its base")
    return deep_merge(merged, own)


def _warn_replaced(base: Mapping[str, Any], own: Mapping[str, Any], path: Path, what: str) -> None:
    for where, value in _replaced_mappings(base, own):
        warnings.warn(
            f"{path}: `{where}` replaces the mapping of {what} with a {type(value).__name__}; "
            "mappings are merged key by key, other values replace them whole (and merging stops being associative)",
            UserWarning,
            stacklevel=3,
        )


def _absolute_session_dir(data: dict[str, Any], path: Path) -> None:
    value = data.get("session_dir")
    if isinstance(value, str) and value and not os.path.isabs(value):
        data["session_dir"] = os.path.normpath(path.parent.absolute() / value)


# -- sessions ------------------------------------------------------------------


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
        raise ConfigError("a parent config must list its sessions under `sessions:`", path=path, key="sessions")
    entries = parent["sessions"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"must be a non-empty list of session names, got {entries!r}", path=path, key="sessions")
    out: list[tuple[str, float]] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(entries):
        key = dotted("sessions", i)
        weight: Any = 1.0
        if isinstance(entry, Mapping):
            unknown = sorted(set(entry) - {"name", "weight"})
            if unknown:
                raise ConfigError(f"unknown key(s) {unknown}; an entry has `name` and `weight`", path=path, key=key)
            name, weight = entry.get("name"), entry.get("weight", 1.0)
        else:
            name = entry
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"a session name must be a non-empty string, got {name!r}", path=path, key=key)
        _check_session_name(name, path, key)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight <= 0:
            raise ConfigError(
                f"`weight` must be a positive finite number, got {weight!r}", path=path, key=f"{key}.weight"
            )
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
        raise ConfigError(f"must be a list of (dotted) key names, got {keys!r}", path=path, key="required_keys")
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
    parent = load_yaml_with_extends(path)
    entries = session_entries(parent, path)
    if "session_dir" not in parent:
        raise ConfigError(
            "a parent config must say where its session files are with `session_dir:` (relative to it)",
            path=path,
            key="session_dir",
        )
    session_dir = parent["session_dir"]
    if not isinstance(session_dir, str) or not session_dir:
        raise ConfigError(f"must be a folder path, got {session_dir!r}", path=path, key="session_dir")
    folder = Path(session_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"{path}: `session_dir` is not a folder: {folder}")
    required = _required_keys(parent, path)
    shared = {k: v for k, v in parent.items() if k not in PARENT_ONLY_KEYS}
    configs = []
    for i, (name, weight) in enumerate(entries):
        file = folder / f"{name}.yaml"
        if not file.is_file():
            raise FileNotFoundError(f"{path}: `sessions[{i}]` ({name!r}): session file not found: {file}")
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
        _warn_replaced(shared, own, file, "the parent")
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
                    f"required key missing after merging with {path} (required_keys: {required})", path=file, key=key
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
