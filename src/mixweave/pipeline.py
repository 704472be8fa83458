"""Declarative pipelines: sources, mixture, sampler and loader from one YAML file or mapping.

:func:`from_config` accepts three shapes:

1. the pipeline schema (:class:`PipelineConfig`)::

       sources:
         - {name: synthetic, type: npy, fields: {image: data/synthetic_image.npy, label: data/synthetic_label.npy},
            labels: label}
         - {name: real, type: npy, fields: {image: data/real_image.npy, label: data/real_label.npy}, labels: label}
       mixture: {strategy: weighted, weights: {synthetic: 0.8, real: 0.2}, mode: exact, samples_per_epoch: 1000}
       sampler: {type: class_balanced}
       loader: {batch_size: 32, num_workers: 2}
       seed: 0

2. the mixed-data shape (a ``data:`` section with ``datasets``, ``dataset_weights``,
   ``mixing_strategy``, ...), translated to the schema above;
3. a parent config with ``sessions:`` (see :mod:`mixweave.config`) whose
   merged session configs each hold a ``source:``; every session becomes a
   source of one mixture, weighted by its ``weight``.

NOTE [ Two ways to draw ]
    Without a ``sampler`` (``type: none``) the dataset is the mixture itself
    (:class:`~mixweave.WeightedConcatDataset` and friends) and the sampler
    walks its positions. With a sampler the dataset is the plain
    concatenation of the sources -- one flat index space -- and the sampler's
    weights are ``compose_hierarchical(source, mixture share, within=factor)``:
    every source keeps exactly its mixture share and the factor (class
    rarity, task ``n^-alpha``, curriculum phase) acts only inside each source.
    Both ways expose the same :meth:`Pipeline.global_plan` and
    :meth:`Pipeline.probabilities`, which is what :meth:`Pipeline.inspect` reads.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch.utils.data import Dataset

from . import weights as wm
from .config import ConfigError, dotted, load_dataset_configs, load_yaml_with_extends
from .samplers import WeightedSampler
from .sampling_config import CurriculumConfig

__all__ = [
    "ArraySourceSpec",
    "ClusterStoreSourceSpec",
    "CsvSourceSpec",
    "LoaderSpec",
    "MixtureSpec",
    "Pipeline",
    "PipelineConfig",
    "PythonSourceSpec",
    "SamplerSpec",
    "from_config",
]

SOURCE_TYPES: tuple[str, ...] = ("npy", "npz", "hdf5", "csv", "cluster_store", "python")
SAMPLER_TYPES: tuple[str, ...] = ("none", "class_balanced", "task_aware", "curriculum", "joint")
_ARRAY_SUFFIXES = {".npy": "npy", ".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5"}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SourceBase(_Spec):
    name: str | None = None
    weight: float | None = Field(default=None, gt=0, description="relative share, when `mixture.weights` is absent")


class ArraySourceSpec(_SourceBase):
    """Arrays in ``.npy`` files, or arrays of one ``.npz``/HDF5 file.

    ``fields`` maps each output name to a file (when ``path`` is absent; any of
    ``.npy``, ``.npz``/``.h5`` holding one array) or to a key inside ``path``.
    Items are tuples in ``fields`` order. ``labels``, ``tasks`` and ``quality``
    name the field holding class labels (ids or multi-hot), task targets
    (``(N, T)`` with NaN, or task ids) and quality labels.
    """

    type: Literal["npy", "npz", "hdf5"]
    path: str | None = None
    fields: dict[str, str] = Field(min_length=1)
    labels: str | None = None
    tasks: str | None = None
    quality: str | None = None

    @model_validator(mode="after")
    def _roles_are_fields(self) -> ArraySourceSpec:
        for role in ("labels", "tasks", "quality"):
            value = getattr(self, role)
            if value is not None and value not in self.fields:
                raise ValueError(f"`{role}` must name one of the fields {list(self.fields)}, got {value!r}")
        if self.type == "npy" and self.path is not None:
            raise ValueError("`path` is for npz/hdf5 files; an npy source lists one file per field")
        return self


class CsvSourceSpec(_SourceBase):
    """A label CSV (NIH or multi-hot layout) and its image folder: :class:`~mixweave.MultiLabelImageDataset`.

    Class labels come from the CSV; ``quality`` names a column of quality labels.
    """

    type: Literal["csv"]
    csv: str
    images: str
    label_names: list[str] | None = None
    image_column: str | None = None
    image_mode: str | None = "RGB"
    check_files: bool = True
    quality: str | None = None


class ClusterStoreSourceSpec(_SourceBase):
    """A :class:`~mixweave.ClusterLabeledDataset` store; its classes are each row's largest ``label_type`` cluster."""

    type: Literal["cluster_store"]
    dir: str
    label_type: Literal["source", "steering", "combined"] = "combined"
    return_metadata: bool = False
    cache_size: int = Field(default=1000, ge=0)
    allow_pickle: bool = False


class PythonSourceSpec(_SourceBase):
    """``factory`` (``package.module:function`` or ``file.py:function``) called with ``kwargs``.

    It must return a map-style dataset. ``labels``, ``tasks`` and ``quality``
    name attributes of that dataset (e.g. ``targets``).
    """

    type: Literal["python"]
    factory: str = Field(pattern=r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$")
    kwargs: dict[str, Any] = Field(default_factory=dict)
    labels: str | None = None
    tasks: str | None = None
    quality: str | None = None


SourceSpec = Annotated[
    ArraySourceSpec | CsvSourceSpec | ClusterStoreSourceSpec | PythonSourceSpec, Field(discriminator="type")
]


class MixtureSpec(_Spec):
    """How sources are mixed: ``weights`` sum to 1 (a list in source order or ``{name: share}``).

    ``schedule`` (``{epoch: weights}``) replaces ``weights`` with weights that
    change over epochs (``interpolation`` ``step`` or ``linear``).
    """

    strategy: Literal["weighted", "stratified", "uniform"] = "weighted"
    weights: list[float] | dict[str, float] | None = None
    schedule: dict[int, list[float] | dict[str, float]] | None = None
    interpolation: Literal["step", "linear"] = "step"
    mode: Literal["random", "exact"] = "random"
    samples_per_epoch: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_of_weights_or_schedule(self) -> MixtureSpec:
        if self.weights is not None and self.schedule is not None:
            raise ValueError("give `weights` or `schedule`, not both")
        if self.strategy != "weighted" and (self.weights is not None or self.schedule is not None):
            raise ValueError(f"`weights`/`schedule` apply to strategy 'weighted', not {self.strategy!r}")
        return self


class SamplerSpec(_Spec):
    """What acts inside each source (see NOTE [ Two ways to draw ]).

    ``class_balanced``: rarity weights of the class labels (``reduce`` for
    multi-label rows); ``task_aware``: tasks drawn ``∝ n^-alpha``;
    ``curriculum``: quality groups in the phase's proportions; ``joint``: both.
    """

    type: Literal["none", "class_balanced", "task_aware", "curriculum", "joint"] = "none"
    reduce: Literal["max", "mean", "sum"] = "max"
    alpha: float | None = None
    curriculum: CurriculumConfig | None = None
    composition_mode: Literal["multiplicative", "hierarchical"] = "multiplicative"
    replacement: bool = True
    mode: Literal["random", "exact"] = "random"
    increment_seed_per_epoch: bool = True
    drop_last: bool = False

    @model_validator(mode="after")
    def _needs(self) -> SamplerSpec:
        if self.type == "task_aware" and self.alpha is None:
            raise ValueError("type 'task_aware' needs `alpha`")
        if self.type in ("curriculum", "joint") and self.curriculum is None:
            self.curriculum = CurriculumConfig()
        return self


class LoaderSpec(_Spec):
    """``torch.utils.data.DataLoader`` settings; ``collate: metadata`` uses :func:`~mixweave.collate_with_metadata`."""

    batch_size: int = Field(default=32, ge=1)
    num_workers: int = Field(default=0, ge=0)
    pin_memory: bool = False
    drop_last: bool = False
    persistent_workers: bool = False
    prefetch_factor: int | None = Field(default=None, ge=1)
    timeout: float = Field(default=0.0, ge=0)
    collate: Literal["default", "metadata"] = "default"


class PipelineConfig(_Spec):
    """A whole pipeline. Relative paths resolve against ``root`` (default: the config file's folder)."""

    sources: list[SourceSpec] = Field(min_length=1)
    mixture: MixtureSpec = Field(default_factory=MixtureSpec)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    loader: LoaderSpec = Field(default_factory=LoaderSpec)
    seed: int = 0
    root: str | None = None

    @model_validator(mode="after")
    def _names(self) -> PipelineConfig:
        names = [s.name or f"source{i}" for i, s in enumerate(self.sources)]
        for i, s in enumerate(self.sources):
            s.name = names[i]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be distinct, got duplicates {dupes}")
        if self.sampler.type != "none" and self.mixture.strategy == "stratified":
            raise ValueError("`sampler` needs mixture strategy 'weighted' or 'uniform' (round-robin has no weights)")
        return self


# -- reading the three shapes ----------------------------------------------------

_PIPELINE_KEYS = ("sources", "mixture", "sampler", "sampling", "loader", "seed", "root")
_LOADER_KEYS = tuple(LoaderSpec.model_fields)


def _translate_sampling(section: Mapping[str, Any]) -> dict[str, Any]:
    """The ``sampling:`` section (task oversampling + curriculum) as a ``sampler:`` section."""
    from .sampling_config import JointSamplingConfig

    cfg = JointSamplingConfig.from_mapping({"sampling": section})
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


def _from_mixed_data(section: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The mixed-data shape (``data: {datasets, dataset_weights, mixing_strategy, ...}``) in the schema."""
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
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}; allowed: {sorted(known)}", key=prefix + unknown[0])
    specs = section.get("datasets")
    if not isinstance(specs, list) or not specs:
        raise ConfigError(f"must be a non-empty list of sources, got {specs!r}", key=prefix + "datasets")
    sources = []
    types = [s.get("type") if isinstance(s, Mapping) else None for s in specs]
    for i, spec in enumerate(specs):
        key = f"{prefix}datasets[{i}]"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("image"), str):
            raise ConfigError(f"must be a mapping with an `image` path, got {spec!r}", key=key)
        extra = sorted(set(spec) - {"type", "image", "label"})
        if extra:
            raise ConfigError(f"unknown key(s) {extra}; a dataset has `type`, `image` and `label`", key=key)
        suffix = Path(spec["image"]).suffix.lower()
        if suffix not in _ARRAY_SUFFIXES:
            raise ConfigError(f"`image` must end in one of {sorted(_ARRAY_SUFFIXES)}, got {spec['image']!r}", key=key)
        fields = {"image": spec["image"]}
        if spec.get("label") is not None:
            fields["label"] = spec["label"]
        name = spec.get("type") or f"source{i}"
        if types.count(spec.get("type")) > 1:
            name = f"{name}{i}"
        sources.append(
            {
                "type": _ARRAY_SUFFIXES[suffix],
                "name": str(name),
                "fields": fields,
                "labels": "label" if "label" in fields else None,
            }
        )
    strategy = section.get("mixing_strategy", "weighted") if section.get("use_mixed_datasets", True) else "uniform"
    mixture: dict[str, Any] = {
        "strategy": strategy,
        "mode": section.get("mixing_mode", "random"),
        "samples_per_epoch": section.get("samples_per_epoch"),
    }
    if strategy == "weighted":
        if "dataset_weights" not in section:
            raise ConfigError("is required with mixing_strategy 'weighted'", key=prefix + "dataset_weights")
        mixture["weights"] = section["dataset_weights"]
    return {
        "sources": sources,
        "mixture": mixture,
        "loader": {k: section[k] for k in _LOADER_KEYS if k in section},
        "seed": section.get("seed", 0),
    }


def _from_sessions(path: Path, parent: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A sessions parent: each merged session's ``source:`` becomes a named, weighted source."""
    sessions = load_dataset_configs(path)
    raw = {k: v for k, v in parent.items() if k in _PIPELINE_KEYS and k != "sources"}
    sources = []
    for cfg in sessions:
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
    return {**raw, "sources": sources}, sessions


def _plain(config: Any) -> Any:
    """OmegaConf ``DictConfig``/``ListConfig`` to plain containers (interpolations resolved); others unchanged."""
    if type(config).__module__.startswith("omegaconf"):
        from omegaconf import OmegaConf

        return OmegaConf.to_container(config, resolve=True)
    return config


def _validate(raw: Mapping[str, Any], path: Path | None) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        # a discriminated union puts the tag after the list index: sources.0.npy.fields -> sources[0].fields
        parts = [p for i, p in enumerate(loc) if not (i > 0 and isinstance(loc[i - 1], int) and p in SOURCE_TYPES)]
        message = str(err["msg"]).removeprefix("Value error, ")
        got = err.get("input")
        detail = f" (got {got!r})" if err["type"] not in ("missing",) and not isinstance(got, Mapping) else ""
        raise ConfigError(f"{message}{detail}", path=path, key=dotted(*parts) or None) from None


def load_pipeline_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | Any,
) -> tuple[PipelineConfig, Path, Path | None, list[dict[str, Any]]]:
    """Validate any of the three shapes; returns ``(config, root, file or None, session configs)``."""
    config = _plain(config)
    path: Path | None = None
    sessions: list[dict[str, Any]] = []
    if isinstance(config, (str, os.PathLike)):
        path = Path(config)
        data = load_yaml_with_extends(path)
    elif isinstance(config, Mapping):
        data = dict(config)
        if "extends" in data or "sessions" in data:
            raise ConfigError(
                "`extends` and `sessions` need a config file (paths are relative to it); pass the file's path",
                key="extends" if "extends" in data else "sessions",
            )
    else:
        raise TypeError(f"`config` must be a path, a mapping or an OmegaConf DictConfig, got {type(config).__name__}")
    try:
        if "sessions" in data:
            assert path is not None
            raw, sessions = _from_sessions(path, data)
        elif "sources" not in data and isinstance(data.get("data"), Mapping) and "datasets" in data["data"]:
            raw = _from_mixed_data(data["data"], "data.")
        elif "sources" not in data and "datasets" in data:
            raw = _from_mixed_data(data, "")
        else:
            raw = dict(data)
            unknown = sorted(set(raw) - set(_PIPELINE_KEYS))
            if unknown:
                raise ConfigError(
                    f"unknown top-level key(s) {unknown}; allowed: {list(_PIPELINE_KEYS)}", key=unknown[0]
                )
        if "sampling" in raw:
            if "sampler" in raw:
                raise ConfigError("give `sampler` or `sampling`, not both", key="sampling")
            raw["sampler"] = _translate_sampling(raw.pop("sampling"))
    except ConfigError as exc:
        raise exc.in_file(path) from None
    validated = _validate(raw, path)
    base = path.parent if path is not None else Path.cwd()
    root = Path(base, validated.root) if validated.root is not None else base
    return validated, root, path, sessions


# -- building --------------------------------------------------------------------


@dataclass
class _Built:
    """One source, built: its dataset and what is known about every row without loading it."""

    name: str
    dataset: Any
    labels: np.ndarray | None = None
    tasks: np.ndarray | None = None
    quality: np.ndarray | None = None
    class_names: list[str] | None = None


def _resolve(root: Path, value: str) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else root / p


def _attribute(dataset: Any, name: str | None, where: str) -> np.ndarray | None:
    if name is None:
        return None
    if not hasattr(dataset, name):
        raise ConfigError(f"the factory's dataset has no attribute {name!r}", key=where)
    value = getattr(dataset, name)
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _load_factory(spec: str, root: Path, where: str) -> Callable[..., Any]:
    module_name, func = spec.rsplit(":", 1)
    if module_name.endswith(".py"):
        file = _resolve(root, module_name)
        if not file.is_file():
            raise FileNotFoundError(f"`{where}`: factory file not found: {file}")
        unique = f"_mixweave_factory_{abs(hash(str(file.resolve())))}"
        module = sys.modules.get(unique)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(unique, file)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[unique] = module  # so DataLoader workers under spawn can unpickle what it defines
            loader_spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(f"cannot import {module_name!r}: {exc}", key=where) from None
    target = getattr(module, func, None)
    if not callable(target):
        raise ConfigError(f"{module_name!r} has no callable {func!r}", key=where)
    return target


def _build_source(spec: Any, i: int, root: Path) -> _Built:
    where = f"sources[{i}]"
    name = str(spec.name)
    if isinstance(spec, ArraySourceSpec):
        from .sources import ArrayDataset, load_array

        arrays: dict[str, Any] = {}
        for fname, value in spec.fields.items():
            try:
                if spec.path is not None:
                    arrays[fname] = load_array(_resolve(root, spec.path), value)
                else:
                    arrays[fname] = load_array(_resolve(root, value))
            except ValueError as exc:
                raise ConfigError(str(exc), key=f"{where}.fields.{fname}") from None
            except FileNotFoundError as exc:
                raise FileNotFoundError(f"`{where}.fields.{fname}`: {exc}") from None
        try:
            dataset = ArrayDataset(*arrays.values())
        except ValueError as exc:
            raise ConfigError(str(exc), key=f"{where}.fields") from None
        role = {
            r: None if getattr(spec, r) is None else np.asarray(arrays[getattr(spec, r)])
            for r in ("labels", "tasks", "quality")
        }
        return _Built(name, dataset, labels=role["labels"], tasks=role["tasks"], quality=role["quality"])
    if isinstance(spec, CsvSourceSpec):
        from .imagedata import MultiLabelImageDataset

        ds = MultiLabelImageDataset(
            _resolve(root, spec.csv),
            _resolve(root, spec.images),
            spec.label_names,
            image_column=spec.image_column,
            mode=spec.image_mode,
            check_files=spec.check_files,
        )
        quality = None
        if spec.quality is not None:
            try:
                quality = np.asarray(ds.table.column(spec.quality))
            except (KeyError, ValueError) as exc:
                raise ConfigError(str(exc), key=f"{where}.quality") from None
        return _Built(name, ds, labels=np.asarray(ds.targets), quality=quality, class_names=list(ds.labels))
    if isinstance(spec, ClusterStoreSourceSpec):
        from .store import ClusterLabeledDataset

        store = ClusterLabeledDataset(
            _resolve(root, spec.dir),
            spec.label_type,
            spec.return_metadata,
            cache_size=spec.cache_size,
            allow_pickle=spec.allow_pickle,
        )
        clusters = store.label_matrix().argmax(axis=1)
        names = [f"cluster {c}" for c in range(store.n_clusters)]
        return _Built(name, store, labels=clusters, class_names=names)
    assert isinstance(spec, PythonSourceSpec)
    factory = _load_factory(spec.factory, root, f"{where}.factory")
    dataset = factory(**spec.kwargs)
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise ConfigError(
            f"the factory returned {type(dataset).__name__}, not a map-style dataset (__len__ and __getitem__)",
            key=f"{where}.factory",
        )
    roles = {r: _attribute(dataset, getattr(spec, r), f"{where}.{r}") for r in ("labels", "tasks", "quality")}
    return _Built(name, dataset, labels=roles["labels"], tasks=roles["tasks"], quality=roles["quality"])


def _shares(spec: MixtureSpec, names: list[str], weights: list[float | None], key: str) -> Any:
    """Mixture weights in source order: a list, or a mapping by name (checked: every source, no stranger)."""

    def order(value: Any, where: str) -> list[float]:
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - set(names))
            missing = [n for n in names if n not in value]
            if unknown or missing:
                raise ConfigError(
                    f"must give a weight to every source {names}; unknown {unknown}, missing {missing}", key=where
                )
            return [float(value[n]) for n in names]
        if len(value) != len(names):
            raise ConfigError(f"must have one weight per source ({len(names)}: {names}), got {len(value)}", key=where)
        return [float(v) for v in value]

    if spec.schedule is not None:
        return {int(e): order(w, f"{key}.schedule.{e}") for e, w in spec.schedule.items()}
    if spec.weights is not None:
        return order(spec.weights, f"{key}.weights")
    if len(names) == 1:
        return [1.0]
    if all(w is not None for w in weights):
        total = float(sum(w for w in weights if w is not None))
        return [float(w) / total for w in weights if w is not None]
    if any(w is not None for w in weights):
        missing = [n for n, w in zip(names, weights, strict=True) if w is None]
        raise ConfigError(f"sources {missing} have no `weight` while others do", key="sources")
    raise ConfigError(
        "strategy 'weighted' needs `mixture.weights`, a `schedule`, or a `weight` on every source", key=f"{key}.weights"
    )


class _ComposedSampler(WeightedSampler):
    """Source shares × a within-source factor (NOTE [ Two ways to draw ]); follows a curriculum's phase.

    ``inner`` is the task/curriculum/joint sampler whose weights are the
    factor (None for class balancing); ``curriculum_state`` is its state.
    """

    def __init__(self, weights: Callable[[int], np.ndarray], inner: Any, num_samples: int | None, **kw: Any) -> None:
        self.inner = inner
        self.curriculum_state = getattr(inner, "curriculum_state", None)
        super().__init__(weights, num_samples, **kw)

    def _weights_version(self) -> Any:
        return None if self.inner is None else self.inner._weights_version()


class _FlatConcat(Dataset[Any]):
    """The sources end to end (one flat index space), with a batched ``__getitems__`` (one read per source)."""

    def __init__(self, datasets: Sequence[Any]) -> None:
        self.datasets = list(datasets)
        self.offsets = np.concatenate(([0], np.cumsum([len(d) for d in self.datasets]))).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> Any:
        s = int(np.searchsorted(self.offsets, index, side="right")) - 1
        return self.datasets[s][int(index - self.offsets[s])]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        from .mixing import _fetch_located

        idx = np.asarray(indices, dtype=np.int64)
        sources = np.searchsorted(self.offsets, idx, side="right") - 1
        return _fetch_located(self.datasets, sources, idx - self.offsets[sources])


@dataclass
class Pipeline:
    """A built pipeline: ``dataset``, ``sampler`` and :meth:`train_loader`, plus what :meth:`inspect` reports.

    Attributes:
        config: the validated :class:`PipelineConfig`.
        dataset: the mixture (no sampler) or the flat concatenation of the sources (with one).
        sampler: a torch ``Sampler`` with ``set_epoch``, ``state_dict`` and ``global_plan``.
        sources: name -> source dataset, in config order.
        curriculum_state: the shared :class:`~mixweave.CurriculumState` of a curriculum/joint sampler, else None.
        session_configs: the merged session configs of a sessions parent (else empty).
        path: the config file, if the config came from one.
    """

    config: PipelineConfig
    dataset: Any
    sampler: Any
    sources: dict[str, Any]
    offsets: np.ndarray
    curriculum_state: Any = None
    session_configs: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    _built: list[_Built] = field(default_factory=list, repr=False)

    @property
    def num_samples(self) -> int:
        """Indices drawn per epoch, across all ranks."""
        return int(self.sampler.num_samples) if self.config.sampler.type != "none" else len(self.dataset)

    def train_loader(self, **overrides: Any) -> Any:
        """A ``DataLoader`` over :attr:`dataset` with :attr:`sampler` and the ``loader`` settings; ``overrides`` win."""
        from torch.utils.data import DataLoader

        settings = self.config.loader.model_dump()
        collate = settings.pop("collate")
        if collate == "metadata":
            from .store import collate_with_metadata

            settings["collate_fn"] = collate_with_metadata
        settings.update(overrides)
        if not settings.get("num_workers"):
            settings.pop("persistent_workers", None)
            settings.pop("prefetch_factor", None)
        elif settings.get("prefetch_factor") is None:
            settings.pop("prefetch_factor", None)
        return DataLoader(self.dataset, sampler=self.sampler, **settings)

    def global_plan(self, epoch: int) -> np.ndarray:
        """Flat indices (into the concatenated sources) of ``epoch``'s whole plan, all ranks, nothing loaded."""
        if self.config.sampler.type != "none":
            return np.asarray(self.sampler.global_plan(epoch), dtype=np.int64)
        plan = self.dataset.plan(epoch)
        return self.offsets[np.asarray(plan.sources, dtype=np.int64)] + plan.indices

    def probabilities(self, epoch: int) -> np.ndarray:
        """Requested probability of every flat index at ``epoch`` (what the plan is drawn from)."""
        sizes = np.diff(self.offsets)
        if self.config.sampler.type != "none":
            return wm.normalize(self.sampler.weights_at(epoch))
        strategy = self.config.mixture.strategy
        if strategy == "weighted":
            share = self.dataset.weights_at(epoch)
        elif strategy == "uniform":
            share = sizes / sizes.sum()
        else:  # round-robin: deterministic, its shares are the plan's
            share = np.bincount(self.dataset.plan(epoch).sources, minlength=sizes.size) / len(self.dataset)
        return np.repeat(share / sizes, sizes)

    def inspect(self, epochs: int = 1) -> dict[str, Any]:
        """Requested vs realised shares of ``epochs`` epochs, per source / class / task / quality; no sample loaded.

        Returns one JSON-able dict: ``sources`` (``name``, ``size``, ``requested``,
        ``realised``, ``unique``, ``coverage``, ``repeats``), the same for
        ``classes``, ``tasks`` and ``qualities`` where every source knows them,
        ``epochs``, ``num_samples``, ``weight_stats`` (of epoch 0's
        probabilities) and ``per_epoch`` (per-source requested/realised and
        weight stats of each epoch).
        """
        from .inspection import report

        return report(self, epochs)


def _group_labels(built: list[_Built], role: str) -> np.ndarray | None:
    arrays = [getattr(b, role) for b in built]
    if any(a is None for a in arrays):
        return None
    return np.concatenate([np.asarray(a) for a in arrays]) if role != "labels" else _stack_labels(arrays)


def _stack_labels(arrays: list[Any]) -> np.ndarray:
    if all(np.asarray(a).ndim == 1 for a in arrays):
        return np.concatenate([np.asarray(a) for a in arrays])
    width = max(int(np.asarray(a).max()) + 1 if np.asarray(a).ndim == 1 else np.asarray(a).shape[1] for a in arrays)
    return np.concatenate([wm.as_multihot(a, num_classes=width) for a in arrays])


def _within_factor(built: list[_Built], spec: SamplerSpec) -> tuple[Callable[[int], np.ndarray], Any]:
    """``(epoch -> factor, inner sampler or None)``; the factor acts inside each source.

    For task/curriculum/joint the factor is the weights of the matching
    sampler over all rows (its ``curriculum_state`` is the one to advance).
    """
    from .task_samplers import DynamicCurriculumSampler, JointSampler, TaskAwareSampler

    def need(role: str) -> np.ndarray:
        missing = [f"sources[{i}] ({b.name})" for i, b in enumerate(built) if getattr(b, role) is None]
        if missing:
            raise ConfigError(
                f"sampler type {spec.type!r} needs `{role}` on every source; missing on {missing}", key="sampler.type"
            )
        out = _group_labels(built, role)
        assert out is not None
        return out

    if spec.type == "class_balanced":
        factor = np.concatenate([wm.get_sample_weights(b.labels, reduce=spec.reduce) for b in built])  # own rarity
        return (lambda epoch: factor), None
    inner: Any
    if spec.type == "task_aware":
        assert spec.alpha is not None
        inner = TaskAwareSampler(need("tasks"), spec.alpha)
    else:
        assert spec.curriculum is not None
        state = spec.curriculum.make_state()
        quality: Any = need("quality")
        if spec.type == "curriculum":
            inner = DynamicCurriculumSampler(quality, state)
        else:
            inner = JointSampler(need("tasks"), quality, state, spec.alpha, spec.composition_mode)
    return inner.weights_at, inner


def from_config(
    config: str | os.PathLike[str] | Mapping[str, Any] | Any,
    *,
    num_replicas: int | None = None,
    rank: int | None = None,
) -> Pipeline:
    """Build a :class:`Pipeline` from a YAML file, a mapping or an OmegaConf ``DictConfig``.

    Args:
        config: the pipeline schema, the mixed-data ``data:`` shape, or a
            parent config with ``sessions:`` (module docstring).
        num_replicas, rank: for distributed training (default: the process group, or 1 and 0).

    Raises:
        ConfigError: naming the file and dotted key (``sources[1].fields.label``, ``mixture.weights``).
        FileNotFoundError: for a missing config, session or data file.

    Example:
        >>> import numpy as np
        >>> a = {"name": "a", "type": "npy", "fields": {"y": "examples/data/real_label.npy"}}
        >>> b = {"name": "b", "type": "npy", "fields": {"y": "examples/data/synthetic_label.npy"}}
        >>> mixture = {"weights": {"a": 0.5, "b": 0.5}, "mode": "exact", "samples_per_epoch": 10}
        >>> p = from_config({"sources": [a, b], "mixture": mixture})
        >>> np.bincount(p.global_plan(0) >= 60).tolist()
        [5, 5]
    """
    from .mixing import StratifiedConcatDataset, UniformConcatDataset, WeightedConcatDataset, WeightSchedule

    cfg, root, path, sessions = load_pipeline_config(config)
    try:
        built = [_build_source(spec, i, root) for i, spec in enumerate(cfg.sources)]
        names = [b.name for b in built]
        datasets = [b.dataset for b in built]
        sizes = np.array([len(d) for d in datasets], dtype=np.int64)
        empty = [f"sources[{i}] ({n})" for i, (n, s) in enumerate(zip(names, sizes, strict=True)) if s == 0]
        if empty:
            raise ConfigError(f"{empty} hold no rows", key="sources")
        offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        mix = cfg.mixture
        length = mix.samples_per_epoch
        state = None
        if cfg.sampler.type == "none":
            dataset: Any
            if mix.strategy == "stratified":
                dataset = StratifiedConcatDataset(datasets, length)
            elif mix.strategy == "uniform":
                dataset = UniformConcatDataset(datasets, length, seed=cfg.seed)
            else:
                shares = _shares(mix, names, [s.weight for s in cfg.sources], "mixture")
                if isinstance(shares, dict):
                    shares = WeightSchedule(shares, mix.interpolation)
                try:
                    dataset = WeightedConcatDataset(datasets, shares, length, seed=cfg.seed, mode=mix.mode)
                except ValueError as exc:
                    where = "mixture.weights" if mix.schedule is None else "mixture.schedule"
                    raise ConfigError(str(exc), key=where) from None
            sampler = dataset.sampler(num_replicas=num_replicas, rank=rank, drop_last=cfg.sampler.drop_last)
        else:
            groups = np.repeat(np.arange(len(built)), sizes)
            if mix.strategy == "uniform":
                source_shares: Any = lambda epoch: sizes / sizes.sum()  # noqa: E731
            else:
                shares = _shares(mix, names, [s.weight for s in cfg.sources], "mixture")
                schedule = WeightSchedule(shares if isinstance(shares, dict) else {0: shares}, mix.interpolation)
                source_shares = schedule
            factor, inner = _within_factor(built, cfg.sampler)
            state = getattr(inner, "curriculum_state", None)

            def weights(epoch: int) -> np.ndarray:
                return wm.compose_hierarchical(groups, source_shares(epoch), within=factor(epoch))

            sampler = _ComposedSampler(
                weights,
                inner,
                length,
                replacement=cfg.sampler.replacement,
                mode=cfg.sampler.mode,
                groups=groups,
                seed=cfg.seed,
                num_replicas=num_replicas,
                rank=rank,
                drop_last=cfg.sampler.drop_last,
                increment_seed_per_epoch=cfg.sampler.increment_seed_per_epoch,
            )
            dataset = _FlatConcat(datasets)
    except ConfigError as exc:
        raise exc.in_file(path) from None
    return Pipeline(
        cfg, dataset, sampler, dict(zip(names, datasets, strict=True)), offsets, state, sessions, path, built
    )
