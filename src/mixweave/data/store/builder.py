"""``ClusterStoreWriter``: the chunked writer of :mod:`.writer` that opens the finished store.

(Kept apart from :mod:`.writer` so that the writer does not import the dataset,
which builds stores through it.)
"""

from __future__ import annotations

from .dataset import ClusterLabeledDataset
from .writer import StoreWriter

__all__ = ["ClusterStoreWriter"]


class ClusterStoreWriter(StoreWriter):
    """Write a store chunk by chunk; it appears at ``dataset_dir`` only when :meth:`close` succeeds.

    Rows go to a temporary directory beside ``dataset_dir``; ``close()``
    finishes the headers, flushes everything to disk, renames the directory
    into place and returns the store opened. Used as a context manager, an
    exception discards the partial store. A store larger than memory is built
    by calling :meth:`append` once per chunk. Arguments, errors and
    ``append`` are those of :class:`~mixweave.data.store.writer.StoreWriter`.

    Example:
        >>> import numpy as np, tempfile, os
        >>> d = os.path.join(tempfile.mkdtemp(), "store")
        >>> with ClusterStoreWriter(d, embedding_dim=4, n_clusters=3) as w:
        ...     for _ in range(2):
        ...         w.append(np.ones((5, 4)), np.zeros((5, 4)), np.eye(3)[[0, 1, 2, 0, 1]], np.eye(3)[[1] * 5])
        >>> len(ClusterLabeledDataset(d))
        10
    """

    def close(self) -> ClusterLabeledDataset:
        """Finish the store, move it into place and return it opened with default settings.

        Raises:
            ValueError: if no rows were appended.
        """
        return ClusterLabeledDataset(self.finish())
