"""Source builders: one function per source ``type`` of the pipeline schema, in one registry.

Each builder turns a validated source spec into a :class:`BuiltSource`: the
dataset plus what is known about every row without loading it (class labels,
task targets, quality labels), which the sampler factors and inspection read.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from .._optional import require
from .._validation import as_numpy, dispatch
from ..config import (
    ArraySourceSpec,
    ClusterStoreSourceSpec,
    ConfigError,
    CsvSourceSpec,
    HuggingFaceSourceSpec,
    PythonSourceSpec,
    ShardsSourceSpec,
)
from ..config.errors import ConfigFileNotFoundError
from ..data.images import MultiLabelImageDataset
from ..data.sources import ArrayDataset, load_array
from ..data.store import ClusterLabeledDataset
from ..sampling.stream_sources import ShardedSource, read_jsonl, read_npy, read_tar

__all__ = ["ROLES", "SOURCE_BUILDERS", "BuiltSource", "build_source", "resolve_path"]

#: What a source may know about its rows without loading them.
ROLES: Final[tuple[str, ...]] = ("labels", "tasks", "quality")


@dataclass
class BuiltSource:
    """One source, built: its dataset and what is known about every row without loading it (``None``: unknown)."""

    name: str
    dataset: Any
    labels: np.ndarray | None = None
    tasks: np.ndarray | None = None
    quality: np.ndarray | None = None
    class_names: list[str] | None = None


def resolve_path(root: Path, value: str) -> Path:
    """``value`` with ``~`` expanded, relative to ``root`` unless absolute."""
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else root / p


def _attribute(dataset: Any, name: str | None, where: str) -> np.ndarray | None:
    if name is None:
        return None
    if not hasattr(dataset, name):
        raise ConfigError(f"the factory's dataset has no attribute {name!r}", key=where)
    return np.asarray(as_numpy(getattr(dataset, name)))


def _load_factory(spec: str, root: Path, where: str) -> Callable[..., Any]:
    module_name, func = spec.rsplit(":", 1)
    if module_name.endswith(".py"):
        file = resolve_path(root, module_name)
        if not file.is_file():
            raise ConfigFileNotFoundError(f"factory file not found: {file}", key=where)
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


def _array_source(spec: ArraySourceSpec, where: str, root: Path) -> BuiltSource:
    """``npy``/``npz``/``hdf5``: one array per field, opened lazily (memmaps for ``.npy``)."""
    arrays: dict[str, Any] = {}
    for fname, value in spec.fields.items():
        try:
            if spec.path is not None:
                arrays[fname] = load_array(resolve_path(root, spec.path), value)
            else:
                arrays[fname] = load_array(resolve_path(root, value))
        except ValueError as exc:
            raise ConfigError(str(exc), key=f"{where}.fields.{fname}") from None
        except FileNotFoundError as exc:
            raise ConfigFileNotFoundError(str(exc), key=f"{where}.fields.{fname}") from None
    try:
        dataset = ArrayDataset(*arrays.values())
    except ValueError as exc:
        raise ConfigError(str(exc), key=f"{where}.fields") from None
    roles = {r: None if getattr(spec, r) is None else np.asarray(arrays[getattr(spec, r)]) for r in ROLES}
    return BuiltSource(str(spec.name), dataset, labels=roles["labels"], tasks=roles["tasks"], quality=roles["quality"])


def _csv_source(spec: CsvSourceSpec, where: str, root: Path) -> BuiltSource:
    """``csv``: a label CSV and its image folder; class labels from the CSV, ``quality`` from a column."""
    ds = MultiLabelImageDataset(
        resolve_path(root, spec.csv),
        resolve_path(root, spec.images),
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
    return BuiltSource(str(spec.name), ds, labels=np.asarray(ds.targets), quality=quality, class_names=list(ds.labels))


def _store_source(spec: ClusterStoreSourceSpec, where: str, root: Path) -> BuiltSource:
    """``cluster_store``: a :class:`~mixweave.ClusterLabeledDataset`; its classes are each row's largest cluster."""
    store = ClusterLabeledDataset(
        resolve_path(root, spec.dir),
        spec.label_type,
        spec.return_metadata,
        cache_size=spec.cache_size,
        allow_pickle=spec.allow_pickle,
    )
    clusters = store.label_matrix().argmax(axis=1)
    names = [f"cluster {c}" for c in range(store.n_clusters)]
    return BuiltSource(str(spec.name), store, labels=clusters, class_names=names)


def _python_source(spec: PythonSourceSpec, where: str, root: Path) -> BuiltSource:
    """``python``: a user factory returning a map-style dataset; roles name attributes of it."""
    factory = _load_factory(spec.factory, root, f"{where}.factory")
    dataset = factory(**spec.kwargs)
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise ConfigError(
            f"the factory returned {type(dataset).__name__}, not a map-style dataset (__len__ and __getitem__)",
            key=f"{where}.factory",
        )
    roles = {r: _attribute(dataset, getattr(spec, r), f"{where}.{r}") for r in ROLES}
    return BuiltSource(str(spec.name), dataset, labels=roles["labels"], tasks=roles["tasks"], quality=roles["quality"])


def _huggingface_source(spec: HuggingFaceSourceSpec, where: str, root: Path) -> BuiltSource:
    """``huggingface``: a ``datasets.Dataset`` from a ``save_to_disk`` folder or a packaged builder on local files.

    Batches are read through the dataset's own ``__getitems__`` (one Arrow take per batch).
    """
    hf = require("datasets", extra="huggingface", feature="a `huggingface` source")
    folder = None if spec.path is None else resolve_path(root, spec.path)
    if folder is not None and not folder.exists():
        raise ConfigFileNotFoundError(
            f"no dataset saved at {folder} (a folder written by save_to_disk; "
            "Hub names are never fetched: save the dataset locally first)",
            key=f"{where}.path",
        )
    try:
        if folder is not None:
            loaded = hf.load_from_disk(str(folder))
        elif spec.streaming:
            files = _local_files(spec.data_files, root)
            loaded = hf.load_dataset(spec.builder, data_files=files, split=spec.split or "train", streaming=True)
        else:
            loaded = hf.load_dataset(
                spec.builder, data_files=_local_files(spec.data_files, root), split=spec.split or "train"
            )
    except (FileNotFoundError, ValueError) as exc:
        raise ConfigError(f"cannot load the dataset: {exc}", key=where) from None
    except StopIteration:  # datasets' way of saying that `data_files` matched nothing
        raise ConfigError(f"`data_files` {spec.data_files!r} matches no file", key=f"{where}.data_files") from None
    if spec.streaming:
        return BuiltSource(str(spec.name), _stream_of(loaded, spec, where, hf))
    dataset = _one_split(loaded, spec.split, where, hf)
    if spec.columns is not None:
        missing = [c for c in spec.columns if c not in dataset.column_names]
        if missing:
            raise ConfigError(f"no column(s) {missing}; the dataset has {dataset.column_names}", key=f"{where}.columns")
        dataset = dataset.select_columns(spec.columns)
    roles: dict[str, np.ndarray | None] = {}
    for role in ROLES:
        column = getattr(spec, role)
        if column is not None and column not in dataset.column_names:
            raise ConfigError(f"no column {column!r}; the dataset has {dataset.column_names}", key=f"{where}.{role}")
        roles[role] = None if column is None else np.asarray(dataset.with_format("numpy")[column])
    if spec.format != "python":
        dataset = dataset.with_format(spec.format)
    return BuiltSource(str(spec.name), dataset, labels=roles["labels"], tasks=roles["tasks"], quality=roles["quality"])


def _stream_of(loaded: Any, spec: HuggingFaceSourceSpec, where: str, hf: Any) -> Any:
    """A ``datasets.IterableDataset`` (a stream source) from what ``streaming: true`` loaded."""
    if isinstance(loaded, hf.IterableDataset):
        stream = loaded
    else:  # a saved folder: a Dataset (or DatasetDict) turned into a stream of `num_shards` shards
        dataset = _one_split(loaded, spec.split, where, hf)
        stream = dataset.to_iterable_dataset(num_shards=spec.num_shards or 1)
    if spec.columns is not None:
        stream = stream.select_columns(spec.columns)
    return stream if spec.format == "python" else stream.with_format(spec.format)


def _shards_source(spec: ShardsSourceSpec, where: str, root: Path) -> BuiltSource:
    """``shards``: shard files (a glob or a list, relative to the config) read as a stream."""
    files = spec.files if isinstance(spec.files, list) else [spec.files]
    paths = [str(resolve_path(root, f)) for f in files]
    readers = {"tar": read_tar, "jsonl": read_jsonl, "npy": read_npy}
    read = _load_factory(spec.read, root, f"{where}.read") if spec.read else readers.get(spec.format)
    try:
        if len(paths) == 1:
            source = ShardedSource(paths[0], read=read)
        else:
            missing = [p for p in paths if not Path(p).is_file()]
            if missing:
                raise ConfigFileNotFoundError(f"shard file(s) not found: {missing[:3]}", key=f"{where}.files")
            source = ShardedSource(paths, read=read)
    except ValueError as exc:
        raise ConfigError(str(exc), key=f"{where}.files") from None
    return BuiltSource(str(spec.name), source)


def _local_files(files: Any, root: Path) -> Any:
    """``data_files`` with every path resolved against ``root`` (str, list, or ``{split: str | list}``)."""
    if isinstance(files, dict):
        return {k: _local_files(v, root) for k, v in files.items()}
    if isinstance(files, list):
        return [str(resolve_path(root, f)) for f in files]
    return str(resolve_path(root, files))


def _one_split(loaded: Any, split: str | None, where: str, hf: Any) -> Any:
    """The ``datasets.Dataset`` to use: ``loaded`` itself, or ``split`` of a ``DatasetDict``."""
    if isinstance(loaded, hf.DatasetDict):
        if split is None:
            if len(loaded) != 1:
                raise ConfigError(f"the folder holds splits {list(loaded)}: name one with `split`", key=where)
            return next(iter(loaded.values()))
        if split not in loaded:
            raise ConfigError(f"no split {split!r}; the folder holds {list(loaded)}", key=f"{where}.split")
        return loaded[split]
    if not isinstance(loaded, hf.Dataset):
        raise ConfigError(f"expected a datasets.Dataset, got {type(loaded).__name__}", key=where)
    return loaded


#: Source builders by ``type`` (the schema's :data:`~mixweave.config.SOURCE_TYPES`).
SOURCE_BUILDERS: Final[dict[str, Callable[[Any, str, Path], BuiltSource]]] = {
    "npy": _array_source,
    "npz": _array_source,
    "hdf5": _array_source,
    "csv": _csv_source,
    "cluster_store": _store_source,
    "python": _python_source,
    "huggingface": _huggingface_source,
    "shards": _shards_source,
}


def build_source(spec: Any, i: int, root: Path) -> BuiltSource:
    """Build ``sources[i]`` of a validated config; relative paths resolve against ``root``."""
    return dispatch(SOURCE_BUILDERS, spec.type, f"sources[{i}].type")(spec, f"sources[{i}]", root)
