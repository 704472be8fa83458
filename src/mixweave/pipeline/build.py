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
3. a parent config with ``sessions:`` (see :mod:`mixweave.config.sessions`) whose
   merged session configs each hold a ``source:``; every session becomes a
   source of one mixture, weighted by its ``weight``.

The translation of each shape lives in :mod:`mixweave.pipeline.translate`, the
source builders in :mod:`mixweave.pipeline.sources`, the sampler factors in
:mod:`mixweave.pipeline.samplers`; this module puts them together.

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

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from .._validation import check_choice, check_int, check_probabilities, dispatch
from ..config import ConfigError, MixtureSpec, PipelineConfig
from ..config.schema import is_stream_source
from ..core import weights as wm
from ..core.names import STRATEGIES
from ..data.store import collate_with_metadata
from ..sampling import (
    AdaptiveMixture,
    AdaptiveSampler,
    FlatConcatDataset,
    MixedDataset,
    StratifiedConcatDataset,
    UniformConcatDataset,
    WeightedConcatDataset,
    WeightedInterleaveDataset,
    WeightedSampler,
    WeightSchedule,
)
from .samplers import Rows, make_sampler
from .sources import ROLES, BuiltSource, build_source
from .translate import LoadedConfig, is_mixed_data, load_pipeline_config

__all__ = ["MIXTURE_BUILDERS", "Pipeline", "build_pipeline", "from_config", "mixture_from_config"]


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
            value = [value[n] for n in names]
        elif len(value) != len(names):
            raise ConfigError(f"must have one weight per source ({len(names)}: {names}), got {len(value)}", key=where)
        try:  # here, so the error names the key the user wrote (not the schedule's internal one)
            return check_probabilities(value, "weights").tolist()
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), key=where) from None

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

    ``inner`` is the sampler whose weights are the factor (:mod:`mixweave.pipeline.samplers`);
    ``curriculum_state`` is its curriculum state, if any.
    """

    def __init__(
        self, weights: Callable[[int], np.ndarray], inner: WeightedSampler, num_samples: int | None, **kw: Any
    ) -> None:
        self.inner = inner
        self.curriculum_state = getattr(inner, "curriculum_state", None)
        super().__init__(weights, num_samples, **kw)

    def weights_version(self) -> Any:
        return self.inner.weights_version()


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
        built: every source with what is known about its rows (labels, tasks, quality), in config order.
        mixture: the :class:`~mixweave.AdaptiveMixture` of ``mixture.strategy: adaptive`` (feed it the
            training losses with ``observe``), else None. Its items are ``(source index, item)``.
    """

    config: PipelineConfig
    dataset: Any
    sampler: Any
    sources: dict[str, Any]
    offsets: np.ndarray
    curriculum_state: Any = None
    session_configs: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    built: list[BuiltSource] = field(default_factory=list, repr=False)
    mixture: Any = None

    @property
    def stream(self) -> bool:
        """The sources are streams: :attr:`dataset` is a :class:`~mixweave.WeightedInterleaveDataset`, no sampler."""
        return isinstance(self.dataset, WeightedInterleaveDataset)

    def _no_plan(self, what: str) -> ValueError:
        return ValueError(
            f"{what} needs an index plan; a pipeline of stream sources has none (its dataset interleaves streams "
            "as it reads them): use inspect() for its shares"
        )

    @property
    def _flat(self) -> bool:
        """The sampler draws flat indices over the concatenated sources (no mixed dataset)."""
        return self.config.sampler.type != "none" or self.mixture is not None

    @property
    def num_samples(self) -> int:
        """Indices drawn per epoch, across all ranks (a stream pipeline has no such number: ValueError)."""
        if self.stream:
            raise self._no_plan("num_samples")
        return int(self.sampler.num_samples) if self._flat else len(self.dataset)

    def train_loader(self, **overrides: Any) -> Any:
        """A ``DataLoader`` over :attr:`dataset` with :attr:`sampler` and the ``loader`` settings; ``overrides`` win."""
        settings = self.config.loader.model_dump()
        if settings.pop("collate") == "metadata":
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
        epoch = check_int(epoch, "epoch", minimum=0)
        if self.stream:
            raise self._no_plan("global_plan")
        if self._flat:
            return np.asarray(self.sampler.global_plan(epoch), dtype=np.int64)
        plan = self.dataset.plan(epoch)
        return self.offsets[np.asarray(plan.sources, dtype=np.int64)] + plan.indices

    def probabilities(self, epoch: int) -> np.ndarray:
        """Requested probability of every flat index at ``epoch`` (what the plan is drawn from)."""
        epoch = check_int(epoch, "epoch", minimum=0)
        if self.stream:
            raise self._no_plan("probabilities")
        if self._flat:
            return wm.normalize(self.sampler.weights_at(epoch))
        return np.asarray(self.dataset.probabilities(epoch))

    def group_labels(self, role: str) -> np.ndarray | None:
        """``labels``, ``tasks`` or ``quality`` of every flat index (None unless every source knows them)."""
        result: np.ndarray | None = _group_labels(self.built, check_choice(role, "role", ROLES))
        return result

    def inspect(self, epochs: int = 1) -> dict[str, Any]:
        """Requested vs realised shares of ``epochs`` epochs, per source / class / task / quality; no sample loaded.

        Returns one JSON-able dict: ``sources`` (``name``, ``size``, ``requested``,
        ``realised``, ``unique``, ``coverage``, ``repeats``), the same for
        ``classes``, ``tasks`` and ``qualities`` where every source knows them,
        ``epochs``, ``num_samples``, ``weight_stats`` (of epoch 0's
        probabilities) and ``per_epoch`` (per-source requested/realised and
        weight stats of each epoch).
        """
        from .inspect import report  # inspect reads the public API of this class

        return report(self, epochs)


def _stack_labels(arrays: list[Any]) -> np.ndarray:
    if all(np.asarray(a).ndim == 1 for a in arrays):
        return np.concatenate([np.asarray(a) for a in arrays])
    width = max(int(np.asarray(a).max()) + 1 if np.asarray(a).ndim == 1 else np.asarray(a).shape[1] for a in arrays)
    return np.concatenate([wm.as_multihot(a, num_classes=width) for a in arrays])


def _weighted(cfg: PipelineConfig, datasets: list[Any], names: list[str]) -> MixedDataset:
    mix = cfg.mixture
    shares = _shares(mix, names, [s.weight for s in cfg.sources], "mixture")
    if isinstance(shares, dict):
        shares = WeightSchedule(shares, mix.interpolation)
    try:
        return WeightedConcatDataset(datasets, shares, mix.samples_per_epoch, seed=cfg.seed, mode=mix.mode)
    except ValueError as exc:
        raise ConfigError(str(exc), key="mixture.weights" if mix.schedule is None else "mixture.schedule") from None


def _stratified(cfg: PipelineConfig, datasets: list[Any], names: list[str]) -> MixedDataset:
    return StratifiedConcatDataset(datasets, cfg.mixture.samples_per_epoch)


def _uniform(cfg: PipelineConfig, datasets: list[Any], names: list[str]) -> MixedDataset:
    return UniformConcatDataset(datasets, cfg.mixture.samples_per_epoch, seed=cfg.seed)


#: Mixed-dataset builders by ``mixture.strategy`` (:data:`~mixweave.core.names.STRATEGIES`), for ``sampler: none``.
MIXTURE_BUILDERS: Final[dict[str, Callable[[PipelineConfig, list[Any], list[str]], MixedDataset]]] = dict(
    zip(STRATEGIES, (_weighted, _stratified, _uniform), strict=True)
)


def _missing_role(built: list[BuiltSource]) -> Callable[[str, str], Exception]:
    def missing(role: str, sampler_type: str) -> Exception:
        where = [f"sources[{i}] ({b.name})" for i, b in enumerate(built) if getattr(b, role) is None]
        return ConfigError(
            f"sampler type {sampler_type!r} needs `{role}` on every source; missing on {where}", key="sampler.type"
        )

    return missing


def _composed_sampler(
    cfg: PipelineConfig, built: list[BuiltSource], sizes: np.ndarray, **ranks: Any
) -> _ComposedSampler:
    """The sampler of NOTE [ Two ways to draw ]: exact source shares, the factor inside each source."""
    groups = np.repeat(np.arange(len(built)), sizes)
    mix = cfg.mixture
    if mix.strategy == "uniform":
        source_shares: Callable[[int], Any] = lambda epoch: sizes / sizes.sum()  # noqa: E731
    else:
        shares = _shares(mix, [b.name for b in built], [s.weight for s in cfg.sources], "mixture")
        source_shares = WeightSchedule(shares if isinstance(shares, dict) else {0: shares}, mix.interpolation)
    by_role = {role: _group_labels(built, role) for role in ROLES}
    rows = Rows(int(sizes.sum()), **by_role, groups=groups, missing=_missing_role(built))
    inner = make_sampler(cfg.sampler, rows)

    def weights(epoch: int) -> np.ndarray:
        return wm.compose_hierarchical(groups, source_shares(epoch), within=inner.weights_at(epoch))

    spec = cfg.sampler
    mode = "exact" if "exact" in (spec.mode, mix.mode) else spec.mode  # `mixture.mode: exact` holds here too
    exact_groups = groups
    quality_ids = getattr(inner, "quality_ids", None)
    if mode == "exact" and quality_ids is not None:  # exact quality shares inside exact source shares
        exact_groups = groups * (int(quality_ids.max()) + 1) + quality_ids
    return _ComposedSampler(
        weights,
        inner,
        mix.samples_per_epoch,
        replacement=spec.replacement,
        mode=mode,
        groups=exact_groups,
        seed=cfg.seed,
        drop_last=spec.drop_last,
        increment_seed_per_epoch=spec.increment_seed_per_epoch,
        **ranks,
    )


def _stream_dataset(cfg: PipelineConfig, built: list[BuiltSource], **ranks: Any) -> WeightedInterleaveDataset:
    """Stream sources (and map-style ones, read in row order) interleaved with the mixture's shares."""
    mix = cfg.mixture
    names = [b.name for b in built]
    if mix.strategy == "uniform":
        weights: Any = None  # streams have no length ahead: equal shares
    else:
        shares = _shares(mix, names, [s.weight for s in cfg.sources], "mixture")
        weights = WeightSchedule(shares, mix.interpolation) if isinstance(shares, dict) else shares
    sources = {b.name: b.dataset for b in built}
    try:
        return WeightedInterleaveDataset(sources, weights, mode=mix.mode, stopping=mix.stopping, seed=cfg.seed, **ranks)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), key="sources") from None


def _adaptive_sampler(
    cfg: PipelineConfig, built: list[BuiltSource], sizes: np.ndarray, **ranks: Any
) -> tuple[AdaptiveSampler, AdaptiveMixture]:
    """``mixture.strategy: adaptive``: source shares learnt by an AdaptiveMixture, the sampler's factor inside."""
    mix = cfg.mixture
    names = [b.name for b in built]
    if len(names) < 2:
        raise ConfigError("strategy 'adaptive' mixes at least 2 sources, got 1", key="mixture.strategy")
    groups = np.repeat(np.arange(len(built)), sizes)
    within = None
    if cfg.sampler.type != "none":
        by_role = {role: _group_labels(built, role) for role in ROLES}
        rows = Rows(int(sizes.sum()), **by_role, groups=groups, missing=_missing_role(built))
        within = make_sampler(cfg.sampler, rows).weights_at(0)
    try:
        mixture = AdaptiveMixture(
            len(names),
            algorithm=mix.algorithm,
            update_every=mix.update_every,
            learning_rate=mix.learning_rate,
            floor=mix.floor,
            decay=mix.decay,
            reference_losses=mix.reference_losses,  # a list, or {name: loss} (the mixture maps it by `names`)
            names=names,
        )
        sampler = AdaptiveSampler(
            mixture,
            groups,
            mix.samples_per_epoch,
            segment_size=mix.segment_size,
            within=within,
            seed=cfg.seed,
            drop_last=cfg.sampler.drop_last,
            **ranks,
        )
    except ValueError as exc:  # the message names the argument, which is the config key under `mixture`
        named = re.search(r"`(\w+)`", str(exc))
        key = f"mixture.{named.group(1)}" if named and named.group(1) in MixtureSpec.model_fields else "mixture"
        raise ConfigError(str(exc), key=key) from None
    return sampler, mixture


def _group_labels(built: list[BuiltSource], role: str) -> Any:
    arrays = [getattr(b, role) for b in built]
    if any(a is None for a in arrays):
        return None
    return _stack_labels(arrays) if role == "labels" else np.concatenate([np.asarray(a) for a in arrays])


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
    return build_pipeline(load_pipeline_config(config), num_replicas=num_replicas, rank=rank)


def build_pipeline(loaded: LoadedConfig, *, num_replicas: int | None = None, rank: int | None = None) -> Pipeline:
    """Build the :class:`Pipeline` of a validated config (:func:`~mixweave.pipeline.load_pipeline_config`)."""
    cfg = loaded.config
    with loaded.located():
        built = [build_source(spec, i, loaded.root) for i, spec in enumerate(cfg.sources)]
        names = [b.name for b in built]
        datasets = [b.dataset for b in built]
        if any(is_stream_source(spec) for spec in cfg.sources):
            stream = _stream_dataset(cfg, built, num_replicas=num_replicas, rank=rank)
            sources = dict(zip(names, datasets, strict=True))
            empty_offsets = np.zeros(1, dtype=np.int64)
            return Pipeline(cfg, stream, None, sources, empty_offsets, None, loaded.sessions, loaded.path, built)
        sizes = np.array([len(d) for d in datasets], dtype=np.int64)
        empty = [f"sources[{i}] ({n})" for i, (n, s) in enumerate(zip(names, sizes, strict=True)) if s == 0]
        if empty:
            raise ConfigError(f"{empty} hold no rows", key="sources")
        mixture = None
        dataset: Any
        sampler: Any
        if cfg.mixture.strategy == "adaptive":
            sampler, mixture = _adaptive_sampler(cfg, built, sizes, num_replicas=num_replicas, rank=rank)
            dataset = FlatConcatDataset(datasets, with_source=True)  # the step needs each item's source
        elif cfg.sampler.type == "none":
            dataset = dispatch(MIXTURE_BUILDERS, cfg.mixture.strategy, "mixture.strategy")(cfg, datasets, names)
            sampler = dataset.sampler(num_replicas=num_replicas, rank=rank, drop_last=cfg.sampler.drop_last)
        else:
            sampler = _composed_sampler(cfg, built, sizes, num_replicas=num_replicas, rank=rank)
            dataset = FlatConcatDataset(datasets)
    offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
    state = getattr(sampler, "curriculum_state", None)
    sources = dict(zip(names, datasets, strict=True))
    return Pipeline(
        cfg, dataset, sampler, sources, offsets, state, loaded.sessions, loaded.path, built, mixture=mixture
    )


def mixture_from_config(config: Mapping[str, Any], *, base_dir: str | os.PathLike[str] = ".") -> Dataset[Any]:
    """The mixed dataset of the mixed-data YAML shape (a ``data:`` section or its content).

    A thin call into :func:`from_config` (the one translator of this shape is
    :func:`~mixweave.pipeline.translate.translate_mixed_data`). Keys:
    ``mixing_strategy`` (``weighted``/``stratified``/``uniform``),
    ``dataset_weights`` (for ``weighted``), ``datasets`` (a list of
    ``{type, image, label}`` with array files: ``.npy``, ``.npz``, ``.h5``),
    ``samples_per_epoch`` (epoch length), and optionally ``seed`` and
    ``mixing_mode`` (``random``/``exact``). Loader keys (``batch_size``,
    ``num_workers``, ...) are accepted and left to the caller. With
    ``use_mixed_datasets: false`` the sources are simply concatenated, in
    order. Relative paths are resolved against ``base_dir``.

    Raises:
        ConfigError: naming the dotted key, e.g. ``data.datasets[1]``.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"`config` must be a mapping with the mixed-data keys, got {type(config).__name__}")
    section = config["data"] if isinstance(config.get("data"), Mapping) else config
    if not isinstance(section, Mapping) or not is_mixed_data(section):
        raise ConfigError(
            "the mixed-data shape lists its sources under `datasets` (or as `dataset1:`, `dataset2:`, ...)",
            key="data.datasets",
        )
    loaded = load_pipeline_config(config)
    loaded.root = Path(base_dir)
    if loaded.config.mixture.strategy == "adaptive":
        raise ConfigError(
            "strategy 'adaptive' is a sampler and a mixture to feed, not a dataset: use from_config(), "
            "whose Pipeline holds all three",
            key="data.mixing_strategy",
        )
    pipeline = build_pipeline(loaded)
    if not section.get("use_mixed_datasets", True):
        return ConcatDataset(list(pipeline.sources.values()))
    return pipeline.dataset
