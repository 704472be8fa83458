"""YAML files: safe loading, deep merge and ``extends:`` chains.

This module needs only the standard library and PyYAML (no torch). Errors
follow NOTE [ Config errors ] in :mod:`mixweave.config.errors`.

Example:
    >>> deep_merge({"a": {"b": 1, "c": [1]}}, {"a": {"c": [2]}})
    {'a': {'b': 1, 'c': [2]}}
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .._validation import show
from .errors import ConfigError

__all__ = ["deep_merge", "load_yaml", "load_yaml_with_extends", "warn_replaced"]


# -- loading -------------------------------------------------------------------


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # libyaml when built
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
            data = _safe_load(fh, path)
    except yaml.YAMLError as exc:
        detail = str(exc).replace("\n", " ")
        if "maximum nesting depth" in detail:  # libyaml's own limit (the pure-Python reader recurses instead)
            raise ConfigError("is nested too deeply to read (libyaml stops at 1000 levels)", path=path) from None
        if "python/" in detail:
            detail = f"tags that build Python objects are not allowed (safe loading only): {detail}"
        raise ConfigError(detail, path=path) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})", path=path) from None
    except RecursionError:
        raise ConfigError("is nested too deeply to read (Python's recursion limit was reached)", path=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"the top level must be a mapping, got {type(data).__name__}", path=path)
    return data


#: The longest ``extends:`` chain followed (a base of a base ...).
MAX_EXTENDS_DEPTH = 64
#: The most values YAML aliases may add to a config once expanded (a "billion laughs" guard; a large file
#: written out in full is fine).
MAX_EXPANDED_VALUES = 1_000_000
#: The deepest nesting read (newer libyaml stops at 1000 by itself; the pure-Python reader and older libyaml
#: have no limit, and deep_merge recurses once per level).
MAX_NESTING = 500


def _safe_load(stream: Any, path: Path) -> Any:
    """Compose the node graph, refuse one that aliases expand beyond :data:`MAX_EXPANDED_VALUES`, then construct."""
    loader = _UniqueKeyLoader(stream)  # a SafeLoader subclass
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        expanded, written, depth = _expanded_size(node)
        if depth > MAX_NESTING:
            raise ConfigError(f"is nested too deeply to read (more than {MAX_NESTING} levels)", path=path)
        if expanded - written > MAX_EXPANDED_VALUES:  # what aliases add beyond the file itself
            raise ConfigError(
                f"expands to more than {MAX_EXPANDED_VALUES:,} values through YAML aliases "
                f"(at least {expanded:,} from {written:,} written); an alias bomb is refused",
                path=path,
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> tuple[int, int, int]:
    """``(values once every alias is expanded, values written, nesting depth)``, from the node graph in linear time."""
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    todo: list[tuple[yaml.Node, int]] = [(root, 1)]
    depth = 0
    while todo:  # iterative post-order: deep documents do not recurse
        node, level = todo.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = -1
        order.append(node)
        depth = max(depth, level)
        todo += [(child, level + 1) for child in _children(node)]
    for node in reversed(order):  # children are finished before their parents
        total = 1 + sum(max(sizes[id(child)], 1) for child in _children(node))
        sizes[id(node)] = min(total, 2 * MAX_EXPANDED_VALUES + len(order))
    return sizes[id(root)], len(order), depth


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged on top.

    Mappings present in both are merged recursively; anything else in
    ``override`` (lists, scalars, ``None``) replaces the value in ``base``.
    Neither input is modified and the result shares no mutable object with
    them, so it can be edited freely.

    Example:
        >>> deep_merge({"t": {"source": "stim", "ops": [1, 2]}, "seed": 1}, {"t": {"ops": [3]}})
        {'t': {'source': 'stim', 'ops': [3]}, 'seed': 1}

    Raises:
        TypeError: if ``base`` or ``override`` is not a mapping.
    """
    for name, value in (("base", base), ("override", override)):
        if not isinstance(value, Mapping):
            raise TypeError(f"`{name}` must be a mapping, got {type(value).__name__}")
    return _merge(base, override)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}  # the base's key order, then keys new in the override (as a reader of the YAML expects)
    for key, value in base.items():
        new = override.get(key, value)
        both = isinstance(new, Mapping) and isinstance(value, Mapping) and key in override
        out[key] = _merge(value, new) if both else copy.deepcopy(new)
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
        raise ConfigError(f"must be a path or a list of paths, got {show(value)}", path=path, key="extends")
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
    if len(_chain) >= MAX_EXTENDS_DEPTH:
        raise ConfigError(
            f"`extends` chains more than {MAX_EXTENDS_DEPTH} files (from {_chain[0]}); is it generated by mistake?",
            path=path,
            key="extends",
        )
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
    warn_replaced(merged, own, path, "its base")
    return deep_merge(merged, own)


def warn_replaced(base: Mapping[str, Any], own: Mapping[str, Any], path: Path, what: str) -> None:
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
