"""Built-in sources: in-memory or on-disk arrays as map-style datasets.

``ArrayDataset`` wraps arrays (numpy, ``.npy``/``.npz`` files opened as
memmaps, or HDF5 datasets when ``h5py`` is installed) and reads a batch with
one fancy-indexing call through ``__getitems__``. Nothing is unpickled:
``.npy``/``.npz`` files are opened with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..sampling.fetch import rows

__all__ = ["ArrayDataset", "load_array"]

_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5")


def load_array(path: str | os.PathLike[str], key: str | None = None) -> Any:
    """Open an array file lazily: ``.npy`` as a read-only memmap, ``.npz`` member ``key``, HDF5 dataset ``key``.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an unknown suffix, or a missing ``key`` (the message lists those present).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"array file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise ValueError(
                f"{path}: holds Python objects, which would need unpickling; mixweave reads array files "
                f"with allow_pickle=False ({exc})"
            ) from exc
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            name = key or (names[0] if len(names) == 1 else None)
            if name not in names:
                raise ValueError(f"{path}: `key` must name one of the arrays {names}, got {key!r}")
            return archive[name]
    if suffix in (".h5", ".hdf5"):
        try:
            import h5py
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(f"reading {path} needs h5py: pip install h5py") from exc
        handle = h5py.File(path, "r")
        names = list(handle.keys())
        name = key or (names[0] if len(names) == 1 else None)
        if name not in names:
            raise ValueError(f"{path}: `key` must name one of the datasets {names}, got {key!r}")
        return handle[name][()]
    raise ValueError(f"`path` must end in one of {', '.join(_SUFFIXES)}, got {path.name!r}")


class ArrayDataset(Dataset[tuple[Any, ...]]):
    """Rows of one or more equally long arrays, returned as a tuple of tensors (``str`` for string arrays).

    Args:
        *arrays: array-likes (numpy arrays, memmaps, tensors) or paths to array files.

    Example:
        >>> import numpy as np
        >>> ds = ArrayDataset(np.arange(6).reshape(3, 2), np.array([0, 1, 0]))
        >>> ds[1]
        (tensor([2, 3]), tensor(1))
    """

    def __init__(self, *arrays: Any) -> None:
        if not arrays:
            raise ValueError("`arrays` must hold at least one array or path, got none")
        self.arrays: list[Any] = [load_array(a) if isinstance(a, (str, os.PathLike)) else a for a in arrays]
        lengths = [len(a) for a in self.arrays]
        if len(set(lengths)) != 1:
            raise ValueError(f"`arrays` must all have the same length, got lengths {lengths}")

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> tuple[Any, ...]:
        return tuple(_column(np.array(a[index])) for a in self.arrays)

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, ...]]:
        idx = np.asarray(indices, dtype=np.int64)
        columns = [_column(np.asarray(a[idx])) for a in self.arrays]
        return rows(columns)


def _column(values: np.ndarray) -> Any:
    """Numbers as a tensor; a string array (which torch cannot hold) as ``str`` values (a list for a batch)."""
    if values.dtype.kind in "US":
        return values.tolist()
    return torch.as_tensor(values)
