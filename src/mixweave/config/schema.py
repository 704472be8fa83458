"""The pipeline schema: what a pipeline YAML may say, validated by pydantic (extra keys are errors).

The translators of :mod:`mixweave.pipeline.translate` bring the other accepted
shapes (the mixed-data ``data:`` section, a sessions parent, a ``sampling:``
section) to this schema; :func:`validate_pipeline` turns a mapping into a
:class:`PipelineConfig` or a :class:`~mixweave.config.errors.ConfigError`
naming the file and dotted key.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._validation import show
from ..core.names import SAMPLER_TYPES
from .errors import from_validation_error
from .literals import (
    ADAPTIVE_ALGORITHM,
    COMPOSITION_MODE,
    INTERPOLATION,
    LABEL_REDUCTION,
    LABEL_TYPE,
    MODE,
    PIPELINE_STRATEGY,
    STOPPING_RULE,
)
from .sampling import CurriculumConfig

__all__ = [
    "SAMPLER_TYPES",
    "SOURCE_TYPES",
    "ArraySourceSpec",
    "ClusterStoreSourceSpec",
    "CsvSourceSpec",
    "HuggingFaceSourceSpec",
    "LoaderSpec",
    "MixtureSpec",
    "PipelineConfig",
    "PythonSourceSpec",
    "SamplerSpec",
    "validate_pipeline",
]

if TYPE_CHECKING:
    SAMPLER_TYPE: TypeAlias = str
else:
    SAMPLER_TYPE = Literal[SAMPLER_TYPES]


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
                raise ValueError(f"`{role}` must name one of the fields {list(self.fields)}, got {show(value)}")
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
    image_mode: str | None = "auto"
    check_files: bool = True
    quality: str | None = None


class ClusterStoreSourceSpec(_SourceBase):
    """A :class:`~mixweave.ClusterLabeledDataset` store; its classes are each row's largest ``label_type`` cluster."""

    type: Literal["cluster_store"]
    dir: str
    label_type: LABEL_TYPE = "combined"
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


class ShardsSourceSpec(_SourceBase):
    """A stream of shard files (:class:`~mixweave.ShardedSource`): ``files`` is a glob or a list of paths.

    ``format``: ``auto`` (by extension), ``tar`` (WebDataset-style samples),
    ``jsonl`` or ``npy``; or ``read`` (``package.module:function`` or
    ``file.py:function``), a reader ``path -> samples`` of your own (to decode
    a tar shard's bytes, say). A pipeline with a stream source mixes streams
    (:class:`~mixweave.WeightedInterleaveDataset`).
    """

    type: Literal["shards"]
    files: str | list[str] = Field(min_length=1)
    format: Literal["auto", "tar", "jsonl", "npy"] = "auto"
    read: str | None = Field(default=None, pattern=r"^[^:]+:[A-Za-z_][A-Za-z0-9_]*$")

    @model_validator(mode="after")
    def _one_reader(self) -> ShardsSourceSpec:
        if self.read is not None and self.format != "auto":
            raise ValueError("give `format` or `read`, not both")
        return self


class HuggingFaceSourceSpec(_SourceBase):
    """A Hugging Face ``datasets.Dataset``, read from local files only (never the network).

    Either ``path``: a folder written by ``Dataset.save_to_disk`` (or a
    ``DatasetDict``'s, with ``split``), or ``builder``: a packaged builder
    (``parquet``, ``csv``, ``json``, ``arrow``, ``text``) with local ``data_files``
    and ``split`` (default ``train``). ``columns`` keeps only those columns; items
    are dicts (``format: torch`` or ``numpy`` for tensors or arrays). ``labels``,
    ``tasks`` and ``quality`` name columns. ``streaming: true`` reads it as an
    ``IterableDataset`` (a stream source: ``num_shards`` splits a saved folder
    into that many shards for ranks and workers).
    """

    type: Literal["huggingface"]
    path: str | None = None
    builder: Literal["parquet", "csv", "json", "arrow", "text"] | None = None
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    split: str | None = None
    columns: list[str] | None = Field(default=None, min_length=1)
    format: Literal["torch", "numpy", "python"] = "python"
    labels: str | None = None
    tasks: str | None = None
    quality: str | None = None
    streaming: bool = False
    num_shards: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_origin(self) -> HuggingFaceSourceSpec:
        if (self.path is None) == (self.builder is None):
            raise ValueError("give exactly one of `path` (a save_to_disk folder) and `builder` (with `data_files`)")
        if self.streaming and (self.labels or self.tasks or self.quality):
            raise ValueError("`labels`/`tasks`/`quality` need a map-style dataset; a stream's rows are not known ahead")
        if self.num_shards is not None and not (self.streaming and self.path is not None):
            raise ValueError("`num_shards` applies to `streaming: true` with a saved `path`")
        if self.builder is not None and self.data_files is None:
            raise ValueError(f"`builder: {self.builder}` needs `data_files` (local files; nothing is downloaded)")
        if self.path is not None and self.data_files is not None:
            raise ValueError("`data_files` is for `builder`; a `path` folder holds its own files")
        if self.columns is not None:
            for role in ("labels", "tasks", "quality"):
                value = getattr(self, role)
                if value is not None and value not in self.columns:
                    raise ValueError(f"`{role}` must name one of `columns` {self.columns}, got {show(value)}")
        return self


SourceSpec = Annotated[
    ArraySourceSpec
    | CsvSourceSpec
    | ClusterStoreSourceSpec
    | PythonSourceSpec
    | HuggingFaceSourceSpec
    | ShardsSourceSpec,
    Field(discriminator="type"),
]


class MixtureSpec(_Spec):
    """How sources are mixed: ``weights`` sum to 1 (a list in source order or ``{name: share}``).

    ``schedule`` (``{epoch: weights}``) replaces ``weights`` with weights that
    change over epochs (``interpolation`` ``step`` or ``linear``).

    ``strategy: adaptive`` learns the source shares from the training loss
    (:class:`~mixweave.sampling.adaptive.AdaptiveMixture`): ``algorithm``
    (``exp3`` or ``doremi``), ``update_every``, ``learning_rate``, ``floor``,
    ``decay``, ``reference_losses`` (doremi; a list in source order or
    ``{name: loss}``) and ``segment_size`` (samples per segment of the
    :class:`~mixweave.sampling.adaptive_sampler.AdaptiveSampler`).
    """

    strategy: PIPELINE_STRATEGY = "weighted"
    weights: list[float] | dict[str, float] | None = None
    schedule: dict[int, list[float] | dict[str, float]] | None = None
    interpolation: INTERPOLATION = "step"
    mode: MODE = "random"
    samples_per_epoch: int | None = Field(default=None, ge=1)
    algorithm: ADAPTIVE_ALGORITHM = "exp3"
    update_every: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=1.0, gt=0)
    floor: float | None = Field(default=None, gt=0)
    decay: float = Field(default=0.9, ge=0, lt=1)
    reference_losses: list[float] | dict[str, float] | None = None
    segment_size: int | None = Field(default=None, ge=1)
    stopping: STOPPING_RULE = "first_exhausted"

    @model_validator(mode="after")
    def _one_of_weights_or_schedule(self) -> MixtureSpec:
        if self.weights is not None and self.schedule is not None:
            raise ValueError("give `weights` or `schedule`, not both")
        if self.strategy != "weighted" and (self.weights is not None or self.schedule is not None):
            raise ValueError(f"`weights`/`schedule` apply to strategy 'weighted', not {self.strategy!r}")
        adaptive_keys = sorted(self.model_fields_set & _ADAPTIVE_KEYS)
        if self.strategy != "adaptive" and adaptive_keys:
            raise ValueError(f"{adaptive_keys} apply to strategy 'adaptive', not {self.strategy!r}")
        if self.strategy == "adaptive" and self.mode != "random":
            raise ValueError("strategy 'adaptive' draws in mode 'random' only (shares change while it draws)")
        return self


def is_stream_source(spec: Any) -> bool:
    """Whether a validated source spec is a stream (``shards``, or ``huggingface`` with ``streaming: true``)."""
    return spec.type == "shards" or (spec.type == "huggingface" and spec.streaming)


_ADAPTIVE_KEYS: Final = frozenset(
    {"algorithm", "update_every", "learning_rate", "floor", "decay", "reference_losses", "segment_size"}
)


class SamplerSpec(_Spec):
    """What acts inside each source (see NOTE [ Two ways to draw ]).

    ``class_balanced``: rarity weights of the class labels (``reduce`` for
    multi-label rows; ``no_finding_share``: the share of draws for rows with no
    positive label, inside each source); ``task_aware``: tasks drawn ``∝ n^-alpha``;
    ``curriculum``: quality groups in the phase's proportions; ``joint``: both.
    """

    type: SAMPLER_TYPE = "none"
    reduce: LABEL_REDUCTION = "max"
    no_finding_share: float | None = Field(default=None, ge=0.0, lt=1.0)
    alpha: float | None = None
    curriculum: CurriculumConfig | None = None
    composition_mode: COMPOSITION_MODE = "multiplicative"
    replacement: bool = True
    mode: MODE = "random"
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
        dupes = sorted(n for n, count in Counter(names).items() if count > 1)  # linear: configs may list 100k sources
        if dupes:
            raise ValueError(f"source names must be distinct, got duplicates {dupes}")
        if self.sampler.type != "none" and self.mixture.strategy == "stratified":
            raise ValueError("`sampler` needs mixture strategy 'weighted' or 'uniform' (round-robin has no weights)")
        if self.mixture.strategy == "adaptive":
            self._adaptive_fits()
        if any(is_stream_source(s) for s in self.sources):
            self._stream_fits()
        elif "stopping" in self.mixture.model_fields_set:
            raise ValueError(
                "`stopping` applies to stream sources (`type: shards`, `streaming: true`), not map-style ones"
            )
        return self

    def _stream_fits(self) -> None:
        """A pipeline of streams interleaves them with shares: refuse what needs random access to every row."""
        if self.mixture.strategy not in ("weighted", "uniform"):
            raise ValueError(
                f"stream sources are mixed with strategy 'weighted' or 'uniform', not {self.mixture.strategy!r}"
            )
        if self.sampler.type != "none":
            raise ValueError(
                f"sampler type {self.sampler.type!r} weighs every row ahead of drawing; stream sources have no rows "
                "known ahead: use sampler type 'none'"
            )
        if self.mixture.samples_per_epoch is not None:
            raise ValueError("`samples_per_epoch` does not apply to streams: `stopping` ends their epochs")

    def _adaptive_fits(self) -> None:
        """Strategy ``adaptive`` learns the shares, draws with replacement, in random mode: refuse what it ignores."""
        weighted = [s.name for s in self.sources if s.weight is not None]
        if weighted:
            raise ValueError(f"sources {weighted} have a `weight`; strategy 'adaptive' learns the shares")
        if "interpolation" in self.mixture.model_fields_set:
            raise ValueError("`interpolation` applies to a weight schedule, not to strategy 'adaptive'")
        spec = self.sampler
        ignored = {
            "replacement: false": not spec.replacement,
            "mode: exact": spec.mode == "exact",
            "increment_seed_per_epoch: false": not spec.increment_seed_per_epoch,
        }
        refused = [k for k, v in ignored.items() if v]
        if refused:
            raise ValueError(
                f"sampler {refused} with mixture strategy 'adaptive', which draws with replacement in random mode "
                "and a new plan each epoch"
            )
        if self.sampler.type in ("curriculum", "joint"):
            raise ValueError(
                f"mixture strategy 'adaptive' takes sampler type 'none', 'class_balanced' or 'task_aware' inside "
                f"its sources, not {self.sampler.type!r} (a curriculum changes the factor between phases)"
            )


_SPECS: Final = (
    ArraySourceSpec,
    CsvSourceSpec,
    ClusterStoreSourceSpec,
    PythonSourceSpec,
    HuggingFaceSourceSpec,
    ShardsSourceSpec,
)
#: Source types by name, read from the spec classes' ``type`` literals.
SOURCE_TYPES: Final[tuple[str, ...]] = tuple(
    t for spec in _SPECS for t in get_args(spec.model_fields["type"].annotation)
)


def _field_names(model: Any) -> set[str]:
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in (field.annotation, *get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                names |= _field_names(arg)
    return names


_VOCABULARY: Final = frozenset().union(*(_field_names(m) for m in (PipelineConfig, *_SPECS)))


def validate_pipeline(raw: Any, path: Path | None = None) -> PipelineConfig:
    """Validate a mapping in the pipeline schema.

    Raises:
        ConfigError: naming ``path`` and the dotted key of the first problem (``sources[1].fields``).
    """
    try:
        return PipelineConfig.model_validate(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, path=path, tags=SOURCE_TYPES, vocabulary=_VOCABULARY) from None
