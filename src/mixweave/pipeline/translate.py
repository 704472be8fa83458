"""One translator per accepted config shape, each to the pipeline schema (:mod:`mixweave.config.schema`).

:func:`load_pipeline_config` accepts three shapes:

1. the pipeline schema itself (``sources``, ``mixture``, ``sampler``, ``loader``, ``seed``, ``root``);
2. the mixed-data shape (a ``data:`` section with ``datasets``, ``dataset_weights``,
   ``mixing_strategy``, ...): :func:`translate_mixed_data`;
3. a parent config with ``sessions:`` (:mod:`mixweave.config.sessions`) whose merged
   session configs each hold a ``source:``: :func:`translate_sessions`.

A ``sampling:`` section (task oversampling + curriculum) in any of them becomes
a ``sampler:`` section through :func:`translate_sampling`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._validation import did_you_mean, show
from ..config import (
    ConfigError,
    JointSamplingConfig,
    LoaderSpec,
    PipelineConfig,
    load_dataset_configs,
    load_yaml_with_extends,
    validate_pipeline,
)
from ..config.errors import KeyAliases, LocatedError

__all__ = [
    "ARRAY_SUFFIXES",
    "LoadedConfig",
    "is_mixed_data",
    "load_pipeline_config",
    "translate_mixed_data",
    "translate_sampling",
    "translate_sessions",
]

#: File suffixes of the mixed-data shape's ``image``/``label`` paths, and the source type each means.
ARRAY_SUFFIXES = {".npy": "npy", ".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5"}

_PIPELINE_KEYS = ("sources", "mixture", "mixing", "sampler", "sampling", "loader", "seed", "root")
_LOADER_KEYS = tuple(LoaderSpec.model_fields)


def translate_sampling(section: JointSamplingConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The ``sampling:`` section (task oversampling + curriculum) as a ``sampler:`` section.

    Both :func:`~mixweave.build_sampler` and pipelines read ``sampling:`` through here.
    """
    cfg = (
        section if isinstance(section, JointSamplingConfig) else JointSamplingConfig.from_mapping({"sampling": section})
    )
    task = cfg.enabled and cfg.task_oversampling.enabled
    curriculum = cfg.enabled and cfg.curriculum.enabled
    kind = "joint" if task and curriculum else "task_aware" if task else "curriculum" if curriculum else "none"
    out: dict[str, Any] = {"type": kind, "increment_seed_per_epoch": cfg.increment_seed_per_epoch}
    if task:
        out["alpha"] = cfg.task_oversampling.alpha
    if curriculum:
        out["curriculum"] = cfg.curriculum.model_dump()
        out["composition_mode"] = cfg.composition_mode
    return out


_NUMBERED = re.compile(r"dataset(\d+)")
#: The original tutorial's ``train_image``/``train_label`` are the same as ``image``/``label``.
_ROLE_KEYS = {"image": ("image", "train_image"), "label": ("label", "train_label")}


def _numbered(section: Mapping[str, Any]) -> list[str]:
    """The ``dataset1:``, ``dataset2:``, ... keys of a section (the original tutorial's shape), by number."""
    keys = [k for k in section if isinstance(k, str) and _NUMBERED.fullmatch(k)]
    return sorted(keys, key=lambda k: int(k[len("dataset") :]))


def is_mixed_data(section: Mapping[str, Any]) -> bool:
    """Whether a mapping is the mixed-data shape: sources under ``datasets`` or as ``dataset1:``, ``dataset2:``..."""
    return "datasets" in section or bool(_numbered(section))


def _role(spec: Mapping[str, Any], role: str, key: str) -> str | None:
    """Which of ``image``/``train_image`` (``label``/``train_label``) an entry uses; both is an error."""
    given = [k for k in _ROLE_KEYS[role] if k in spec]
    if len(given) > 1:
        raise ConfigError(f"give `{given[0]}` or `{given[1]}`, not both (they mean the same)", key=key)
    return given[0] if given else None


def _mixed_data_source(spec: Any, key: str, name: str) -> dict[str, Any]:
    """One ``{type, image, label}`` entry of the mixed-data shape as a pipeline source."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"must be a mapping with an `image` path, got {show(spec)}", key=key)
    extra = sorted(set(spec) - {"type", *_ROLE_KEYS["image"], *_ROLE_KEYS["label"]})
    if extra:
        raise ConfigError(
            f"unknown key(s) {extra}; a dataset has `type`, `image` (or `train_image`) and `label` (or `train_label`)",
            key=key,
        )
    image_key, label_key = _role(spec, "image", key), _role(spec, "label", key)
    if image_key is None or not isinstance(spec[image_key], str):
        raise ConfigError(f"must be a mapping with an `image` path, got {show(spec)}", key=key)
    spec = {"type": spec.get("type"), "image": spec[image_key], "label": spec.get(label_key) if label_key else None}
    suffix = Path(spec["image"]).suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise ConfigError(f"`image` must end in one of {sorted(ARRAY_SUFFIXES)}, got {spec['image']!r}", key=key)
    fields = {"image": spec["image"]}
    if spec.get("label") is not None:
        fields["label"] = spec["label"]
    return {
        "type": ARRAY_SUFFIXES[suffix],
        "name": name,
        "fields": fields,
        "labels": "label" if "label" in fields else None,
    }


def _mixed_data_mixture(section: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The mixture keys of the mixed-data shape; the schema checks their values (errors renamed by the aliases)."""
    strategy = section.get("mixing_strategy", "weighted") if section.get("use_mixed_datasets", True) else "uniform"
    mode = section.get("mixing_mode", "random")
    mixture: dict[str, Any] = {
        "strategy": strategy,
        "mode": mode,
        "samples_per_epoch": section.get("samples_per_epoch"),
    }
    if strategy == "weighted":
        if "dataset_weights" not in section:
            raise ConfigError("is required with mixing_strategy 'weighted'", key=prefix + "dataset_weights")
        mixture["weights"] = section["dataset_weights"]
    return mixture


def translate_mixed_data(section: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], dict[str, Any]]:
    """The mixed-data shape (``data: {datasets, dataset_weights, mixing_strategy, ...}``) in the schema.

    Returns:
        the schema mapping, and the aliases that name each of its keys as the user wrote it
        (``mixture.weights`` is ``data.dataset_weights``, ``sources[1]`` is ``data.datasets[1]``).
    """
    known = {
        "use_mixed_datasets",
        "mixing_strategy",
        "mixing_mode",
        "dataset_weights",
        "datasets",
        "samples_per_epoch",
        "seed",
        *_LOADER_KEYS,
    }
    unknown = sorted(set(section) - known - set(_numbered(section)))
    if unknown:
        hint = did_you_mean(unknown[0], known)
        raise ConfigError(f"unknown key(s) {unknown}{hint}; allowed: {sorted(known)}", key=prefix + unknown[0])
    numbered = _numbered(section)
    if numbered and "datasets" in section:
        raise ConfigError(f"give `datasets:` or {numbered}, not both", key=prefix + numbered[0])
    specs: list[Any]
    if numbered:  # the original tutorial's shape: `dataset1: {train_image, train_label}`, ...
        specs = [section[k] for k in numbered]
        keys = [prefix + k for k in numbered]
    else:
        listed = section.get("datasets")
        if not isinstance(listed, list) or not listed:
            raise ConfigError(f"must be a non-empty list of sources, got {show(listed)}", key=prefix + "datasets")
        specs = listed
        keys = [f"{prefix}datasets[{i}]" for i in range(len(specs))]
    types = Counter(s.get("type") if isinstance(s, Mapping) else None for s in specs)
    sources = []
    for i, spec in enumerate(specs):
        kind = spec.get("type") if isinstance(spec, Mapping) else None
        if numbered and kind is None:
            name = numbered[i]
        else:
            name = f"{kind or 'source'}{i}" if kind is None or types[kind] > 1 else str(kind)
        sources.append(_mixed_data_source(spec, keys[i], name))
    aliases: dict[str, Any] = {
        "mixture.weights": (prefix + "dataset_weights", None),
        "mixture.strategy": (prefix + "mixing_strategy", None),
        "mixture.mode": (prefix + "mixing_mode", None),
        "mixture.samples_per_epoch": (prefix + "samples_per_epoch", None),
        "seed": (prefix + "seed", None),
        **{f"loader.{k}": (prefix + k, None) for k in _LOADER_KEYS},
    }
    for i, spec in enumerate(specs):
        aliases[f"sources[{i}]"] = (keys[i], None)
        for role in ("image", "label"):
            used = next((k for k in _ROLE_KEYS[role] if isinstance(spec, Mapping) and k in spec), role)
            aliases[f"sources[{i}].fields.{role}"] = (f"{keys[i]}.{used}", None)
    raw = {
        "sources": sources,
        "mixture": _mixed_data_mixture(section, prefix),
        "loader": {k: section[k] for k in _LOADER_KEYS if k in section},
        "seed": section.get("seed", 0),
    }
    return raw, aliases


def translate_sessions(
    path: Path, parent: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A sessions parent: each merged session's ``source:`` becomes a named, weighted source.

    Returns:
        the schema mapping, the merged session configs, and the aliases that
        name ``sources[i]`` as ``source`` in session ``i``'s file.
    """
    sessions = load_dataset_configs(path)
    raw = {k: v for k, v in parent.items() if k in _PIPELINE_KEYS and k != "sources"}
    sources = []
    aliases: dict[str, Any] = {}
    for i, cfg in enumerate(sessions):
        file = cfg["_config_path"]
        for key in raw:
            if cfg.get(key) != parent.get(key):
                raise ConfigError(
                    "pipeline settings (mixture, sampler, loader, seed, root) belong in the parent, "
                    "not in a session file",
                    path=file,
                    key=key,
                )
        source = cfg.get("source")
        if not isinstance(source, Mapping):
            raise ConfigError(
                "every session of a pipeline needs a `source:` mapping (set it in the parent, override per session)",
                path=file,
                key="source",
            )
        sources.append({**source, "name": cfg["session"], "weight": cfg["_weight"]})
        aliases[f"sources[{i}]"] = ("source", file)
    return {**raw, "sources": sources}, sessions, aliases


def _plain(config: Any) -> Any:
    """OmegaConf ``DictConfig``/``ListConfig`` to plain containers (interpolations resolved); others unchanged."""
    if type(config).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(config, resolve=True)
    return config


@dataclass
class LoadedConfig:
    """A validated pipeline config and where it came from.

    Attributes:
        config: the validated schema.
        root: the folder relative paths resolve against.
        path: the config file (None for a mapping).
        sessions: the merged session configs of a sessions parent (else empty).
        aliases: schema keys as the user wrote them (translated shapes); see :meth:`located`.
    """

    config: PipelineConfig
    root: Path
    path: Path | None
    sessions: list[dict[str, Any]] = field(default_factory=list)
    aliases: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def located(self) -> Iterator[None]:
        """Re-raise config errors inside with the user's file and key (NOTE [ Config errors ])."""
        try:
            yield
        except LocatedError as exc:
            raise exc.renamed(self.aliases).in_file(self.path) from None


def _read(config: Any) -> tuple[dict[str, Any], Path | None]:
    config = _plain(config)
    if isinstance(config, (str, os.PathLike)):
        return load_yaml_with_extends(Path(config)), Path(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a path, a mapping or an OmegaConf DictConfig, got {type(config).__name__}")
    data = dict(config)
    if "extends" in data or "sessions" in data:
        raise ConfigError(
            "`extends` and `sessions` need a config file (paths are relative to it); pass the file's path",
            key="extends" if "extends" in data else "sessions",
        )
    return data, None


def _translate(data: dict[str, Any], path: Path | None) -> tuple[dict[str, Any], list[dict[str, Any]], KeyAliases]:
    """The one dispatch over the accepted shapes (module docstring)."""
    sessions: list[dict[str, Any]] = []
    aliases: KeyAliases = {}
    if "sessions" in data:
        assert path is not None  # _read refuses sessions in a mapping
        raw, sessions, aliases = translate_sessions(path, data)
    elif "sources" not in data and isinstance(data.get("data"), Mapping) and is_mixed_data(data["data"]):
        beside = sorted(set(data) - {"data", "sampling"})  # the shape is the `data:` section (and `sampling:`)
        if beside:
            hint = did_you_mean(beside[0], ("data", "sampling"))
            raise ConfigError(f"unknown top-level key(s) {beside}{hint} beside `data:`", key=beside[0])
        raw, aliases = translate_mixed_data(data["data"], "data.")
        if "sampling" in data:
            raw["sampling"] = data["sampling"]
    elif "sources" not in data and is_mixed_data(data):
        raw, aliases = translate_mixed_data(data, "")
    else:
        raw = dict(data)
        unknown = sorted(set(raw) - set(_PIPELINE_KEYS))
        if unknown:
            hint = did_you_mean(unknown[0], _PIPELINE_KEYS)
            raise ConfigError(
                f"unknown top-level key(s) {unknown}{hint}; allowed: {list(_PIPELINE_KEYS)}", key=unknown[0]
            )
    if "mixing" in raw:  # the name the adaptive-mixing guide uses for `mixture`
        if "mixture" in raw:
            raise ConfigError("give `mixture` or `mixing`, not both", key="mixing")
        raw["mixture"] = raw.pop("mixing")
        aliases = {**aliases, "mixture": ("mixing", None)}
    if "sampling" in raw:
        if "sampler" in raw:
            raise ConfigError("give `sampler` or `sampling`, not both", key="sampling")
        raw["sampler"] = translate_sampling(raw.pop("sampling"))
        aliases = {**aliases, "sampler": ("sampling", None)}
    return raw, sessions, aliases


def load_pipeline_config(config: str | os.PathLike[str] | Mapping[str, Any] | Any) -> LoadedConfig:
    """Read and validate any of the three shapes (module docstring).

    Raises:
        ConfigError: naming the file and the key as the user wrote it.
        FileNotFoundError: for a missing config or session file.
        TypeError: for a ``config`` that is no path, mapping or OmegaConf config.
    """
    data, path = _read(config)
    loaded = LoadedConfig(PipelineConfig.model_construct(), Path.cwd(), path)
    with loaded.located():
        raw, loaded.sessions, aliases = _translate(data, path)
        loaded.aliases = dict(aliases)
        loaded.config = validate_pipeline(raw)
    base = path.parent if path is not None else Path.cwd()
    loaded.root = Path(base, loaded.config.root) if loaded.config.root is not None else base
    return loaded
