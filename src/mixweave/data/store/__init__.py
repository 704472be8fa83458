"""An embedding store for cluster-labelled samples: SQLite metadata plus numpy memmaps.

One module per concern: the file format (:mod:`.format`), writing
(:mod:`.writer`), the per-process cache (:mod:`.cache`), the label array and
its seqlock (:mod:`.labels`), the dataset (:mod:`.dataset`), batches and
their ``collate_fn`` (:mod:`.batch`) and the summary (:mod:`.summary`).
"""

from __future__ import annotations

from .batch import SampleBatch, collate_with_metadata
from .builder import ClusterStoreWriter
from .dataset import ClusterLabeledDataset
from .summary import store_summary

__all__ = ["ClusterLabeledDataset", "ClusterStoreWriter", "SampleBatch", "collate_with_metadata", "store_summary"]
