"""Multi-label image datasets read from split CSVs, and class-balanced DataLoaders over them.

Two CSV layouts are understood:

* **NIH** (ChestX-ray14): an ``Image Index`` column and a ``Finding Labels``
  column of ``|``-separated names, where ``No Finding`` means no label;
* **multi-hot**: an image column and one 0/1 column per label.

Every other column is carried along untouched, so a split written by
``mixweave split`` keeps the original file's columns.

Example:
    >>> import csv, pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "a.csv").write_text("Image Index,Finding Labels\\nx.png,Effusion|Mass\\ny.png,No Finding\\n")
    >>> table = read_label_csv(folder / "a.csv")
    >>> table.format, table.label_names, table.labels.tolist()
    ('nih', ['Effusion', 'Mass'], [[1.0, 1.0], [0.0, 0.0]])
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .._io import atomic_path
from .._optional import require
from .._validation import check_int
from ..core.weights import get_sample_weights
from ..sampling.weighted import WeightedSampler

__all__ = [
    "LabelTable",
    "MultiLabelImageDataset",
    "get_balanced_data_loaders",
    "read_label_csv",
    "write_label_csv",
]

NIH_IMAGE, NIH_FINDINGS, NO_FINDING = "Image Index", "Finding Labels", "No Finding"
_IMAGE_COLUMNS = (NIH_IMAGE, "image_id", "image", "filename", "file", "path")
_BINARY = frozenset({"0", "1", "0.0", "1.0"})


@dataclass
class LabelTable:
    """A label CSV in memory: its raw rows (every column, as text) and the parsed labels.

    Attributes:
        header: column names, in file order.
        rows: raw rows, one list of strings per row.
        image_column: the column holding image file names.
        label_names: class names, in label-vector order.
        labels: ``(N, C)`` float32 multi-hot matrix.
        format: ``"nih"`` or ``"multihot"``.
    """

    header: list[str]
    rows: list[list[str]]
    image_column: str
    label_names: list[str]
    labels: np.ndarray
    format: str

    @property
    def image_ids(self) -> list[str]:
        """The image file name of each row."""
        col = self.header.index(self.image_column)
        return [row[col] for row in self.rows]

    def column(self, name: str) -> list[str]:
        """The raw values of one column."""
        if name not in self.header:
            raise ValueError(f"column {name!r} not found; the CSV has columns {self.header}")
        col = self.header.index(name)
        return [row[col] for row in self.rows]


def read_label_csv(
    path: str | os.PathLike[str],
    *,
    labels: Sequence[str] | None = None,
    image_column: str | None = None,
) -> LabelTable:
    """Read a label CSV in NIH or multi-hot layout (detected from the header).

    Args:
        path: the CSV file.
        labels: class names, fixing their order. NIH layout: a name in the file
            that is not listed is an error. Multi-hot layout: the label columns.
            By default NIH names are the sorted names found (without ``No Finding``)
            and multi-hot columns are every column other than the image column
            whose values are all 0 or 1.
        image_column: the column of image file names; default ``Image Index``,
            ``image_id``, ``image``, ``filename``, ``file`` or ``path``, whichever
            comes first, else the first column.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: for an empty file, a missing column, an unknown label name or
            a non-binary label value, naming the row.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    if image_column is None:
        image_column = next((c for c in _IMAGE_COLUMNS if c in header), header[0])
    elif image_column not in header:
        raise ValueError(f"`image_column` {image_column!r} not found in {path}; columns are {header}")
    if NIH_FINDINGS in header:
        names, matrix = _nih_labels(path, header, rows, labels)
        return LabelTable(header, rows, image_column, names, matrix, "nih")
    names, matrix = _multihot_labels(path, header, rows, labels, image_column)
    return LabelTable(header, rows, image_column, names, matrix, "multihot")


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and non-empty rows of a CSV, each row as wide as the header."""
    if not path.is_file():
        raise FileNotFoundError(f"label CSV not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise ValueError(f"{path} is empty: expected a header row")
            rows = [row for row in reader if row]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not rows:
        raise ValueError(f"{path} has a header but no rows: the split is empty")
    width = len(header)
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"{path}, row {i + 2}: expected {width} fields like the header, got {len(row)}")
    return header, rows


def _nih_labels(
    path: Path, header: list[str], rows: list[list[str]], labels: Sequence[str] | None
) -> tuple[list[str], np.ndarray]:
    """NIH layout: ``|``-separated names in one column (``No Finding`` is no label)."""
    col = header.index(NIH_FINDINGS)
    found = [
        [name.strip() for name in row[col].split("|") if name.strip() and name.strip() != NO_FINDING] for row in rows
    ]
    if labels is None:
        names = sorted({name for row in found for name in row})
    else:
        names = [str(n) for n in labels]
        known = set(names)
        for i, row in enumerate(found):
            unknown = [n for n in row if n not in known]
            if unknown:
                raise ValueError(f"{path}, row {i + 2}: unknown label name(s) {unknown}; known labels are {names}")
    index = {name: j for j, name in enumerate(names)}
    matrix = np.zeros((len(rows), len(names)), dtype=np.float32)
    r = [i for i, row in enumerate(found) for _ in row]
    c = [index[name] for row in found for name in row]
    matrix[r, c] = 1.0
    return names, matrix


def _multihot_labels(
    path: Path, header: list[str], rows: list[list[str]], labels: Sequence[str] | None, image_column: str
) -> tuple[list[str], np.ndarray]:
    """Multi-hot layout: one 0/1 column per label (by default every such column but the image column)."""
    if labels is None:
        names = [
            h for j, h in enumerate(header) if h != image_column and all(row[j].strip() in _BINARY for row in rows)
        ]
        if not names:
            raise ValueError(
                f"{path}: no label columns found (neither a {NIH_FINDINGS!r} column nor 0/1 columns); pass `labels`"
            )
    else:
        names = [str(n) for n in labels]
        missing = [n for n in names if n not in header]
        if missing:
            raise ValueError(f"{path}: label column(s) {missing} not found; columns are {header}")
    cols = [header.index(n) for n in names]
    raw = np.array([[row[j].strip() for j in cols] for row in rows])
    bad = ~np.isin(raw, list(_BINARY))
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise ValueError(f"{path}, row {i + 2}: label column {names[j]!r} must be 0 or 1, got {str(raw[i, j])!r}")
    return names, raw.astype(np.float64).astype(np.float32)


def write_label_csv(path: str | os.PathLike[str], table: LabelTable, indices: Any) -> Path:
    """Write the chosen rows of ``table``, every column as read, atomically (temp file + rename)."""
    out = Path(path)
    with atomic_path(out) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(table.header)
        writer.writerows(table.rows[int(i)] for i in np.asarray(indices, dtype=np.int64))
    return out


def _is_albumentations(transform: Any) -> bool:
    """Albumentations transforms are called as ``t(image=array)`` and return a dict."""
    return type(transform).__module__.split(".")[0] == "albumentations"


def _to_tensor(image: Any) -> Any:
    """HWC/HW numpy or PIL image to a CHW tensor (8- and 16-bit integers scaled to [0, 1]); anything else unchanged."""
    if hasattr(image, "getbands"):  # a PIL image: a writable copy (torch warns on PIL's read-only buffer)
        image = np.array(image)
    if isinstance(image, np.ndarray):
        arr = image[:, :, None] if image.ndim == 2 else image
        arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
        if arr.dtype == np.uint8:
            return torch.from_numpy(arr).float().div_(255.0)
        if arr.dtype in (np.uint16, np.int32):  # 16-bit images (PIL reads them as "I;16" or "I"): [0, 65535]
            return torch.from_numpy(arr.astype(np.float32)).div_(65535.0)
        return torch.from_numpy(arr)
    return image


_GRAYSCALE_MODES = frozenset({"1", "L", "LA"})
_DEEP_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "F"})  # 16-bit, 32-bit and float grayscale: kept as read


def _resolve_mode(mode: str | None, image_dir: Path, image_ids: Sequence[str]) -> str | None:
    """``"auto"``: ``"L"`` for 8-bit grayscale, kept as read for deeper grayscale (16-bit X-rays: converting
    them to ``"L"`` would clip), else ``"RGB"`` -- decided by the first image, one mode for all (batches stack)."""
    if mode != "auto":
        return mode
    first = image_dir / image_ids[0] if image_ids else None
    if first is None or not first.is_file():
        return "RGB"
    Image = _pil_image()

    with Image.open(first) as img:
        if img.mode in _DEEP_MODES:
            return None
        return "L" if img.mode in _GRAYSCALE_MODES else "RGB"


class MultiLabelImageDataset(Dataset[tuple[Any, torch.Tensor, str]]):
    """Images listed in a label CSV, with their multi-hot label vectors.

    Returns ``(image, label_vector, image_id)``. ``transform`` may be an
    Albumentations transform (detected by its package; called as
    ``transform(image=numpy_array)["image"]``) or any callable on a PIL image,
    such as a torchvision transform. Without a transform, or when the transform
    returns a PIL image or an array, the image becomes a float CHW tensor in [0, 1].

    Args:
        csv_file: a split CSV in NIH or multi-hot layout (see :func:`read_label_csv`).
        image_dir: folder the image file names are relative to.
        labels: class names fixing the label-vector order (use the train split's for val/test).
        transform: optional image transform.
        image_column: the image column, if not detected.
        mode: PIL mode images are converted to: ``"RGB"``, ``"L"``, ``None`` to keep each
            image's own, or ``"auto"``: ``"L"`` if the first image is grayscale, else ``"RGB"``.

    Attributes:
        labels: the class names, in label-vector order.
        targets: ``(N, C)`` float32 multi-hot labels of every row, in file order (no image is opened).
        image_ids: the image file names, in file order.
        table: the :class:`LabelTable` read from the CSV (every column, for grouping or writing splits).
        check_files: check at construction that every image file exists.

    Raises:
        FileNotFoundError: for a missing CSV, image folder or image file (naming up to five).
    """

    def __init__(
        self,
        csv_file: str | os.PathLike[str],
        image_dir: str | os.PathLike[str],
        labels: Sequence[str] | None = None,
        transform: Callable[..., Any] | None = None,
        *,
        image_column: str | None = None,
        mode: str | None = "auto",
        check_files: bool = True,
    ) -> None:
        self.image_dir = Path(image_dir)
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"`image_dir` is not a folder: {self.image_dir}")
        if transform is not None and not callable(transform):
            raise TypeError(f"`transform` must be callable, got {type(transform).__name__}")
        self.table = read_label_csv(csv_file, labels=labels, image_column=image_column)
        self.labels: list[str] = self.table.label_names
        self.image_ids = self.table.image_ids
        self.targets = self.table.labels
        self.transform = transform
        self.mode = _resolve_mode(mode, self.image_dir, self.image_ids)
        self._albumentations = _is_albumentations(transform)
        if check_files:
            present = set(os.listdir(self.image_dir))
            missing = [i for i in self.image_ids if i not in present and not (self.image_dir / i).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"{len(missing)} image file(s) listed in {csv_file} are missing from {self.image_dir}: "
                    f"{missing[:5]}"
                )

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, index: int) -> tuple[Any, torch.Tensor, str]:
        Image = _pil_image()

        image_id = self.image_ids[index]
        with Image.open(self.image_dir / image_id) as img:
            image = img.convert(self.mode) if self.mode else img.copy()
        if self.transform is None:
            out = _to_tensor(image)
        elif self._albumentations:
            out = _to_tensor(self.transform(image=np.asarray(image))["image"])
        else:
            out = _to_tensor(self.transform(image))
        return out, torch.from_numpy(self.targets[index].copy()), image_id


def get_balanced_data_loaders(
    data_dir: str | os.PathLike[str],
    train_split_csv: str | os.PathLike[str],
    val_split_csv: str | os.PathLike[str],
    test_split_csv: str | os.PathLike[str],
    train_transform: Callable[..., Any] | None = None,
    val_transform: Callable[..., Any] | None = None,
    batch_size: int = 32,
    num_workers: int | None = None,
    pin_memory: bool | None = None,
    use_weighted_sampler: bool = True,
    *,
    labels: Sequence[str] | None = None,
    reduce: str = "max",
    no_finding_share: float | None = None,
    seed: int = 0,
    image_column: str | None = None,
    mode: str | None = "auto",
) -> dict[str, DataLoader[Any]]:
    """DataLoaders for train/val/test splits, with rarity-weighted sampling on train only.

    The train loader draws ``len(train)`` samples per epoch with replacement,
    weighted by :func:`~mixweave.core.weights.get_sample_weights` (``reduce`` combines
    a row's labels), through :class:`~mixweave.WeightedSampler` (deterministic
    from ``seed`` and the epoch, sharded under ``torch.distributed``), and drops
    the last incomplete batch. Val and test keep file order. Label names come
    from ``labels`` or the train split and are applied to val/test, so vectors
    line up (an unknown name there is an error). The positional order is the
    original X-Lite function's.

    Args:
        data_dir: folder of the images.
        train_split_csv, val_split_csv, test_split_csv: split CSVs (NIH or multi-hot).
        train_transform: transform of training images; ``val_transform`` serves val and test.
        batch_size, num_workers: as for :class:`torch.utils.data.DataLoader`; ``num_workers``
            defaults to one fewer than the CPUs (at most 4; 0 on a single CPU).
        use_weighted_sampler: if false, train is shuffled uniformly instead (seeded).
        no_finding_share: the share of train draws for rows with no positive label
            (see :func:`~mixweave.get_sample_weights`; by default one class among ``C + 1``).
        pin_memory: default: whether CUDA is available.
        mode: PIL mode of the images; ``"auto"`` (default) is ``"L"`` when the first
            image is grayscale (as chest X-rays are), else ``"RGB"``.

    Returns:
        ``{"train": ..., "val": ..., "test": ...}``.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if num_workers is None:
        num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
    num_workers = check_int(num_workers, "num_workers", minimum=0)
    seed = check_int(seed, "seed", minimum=0)
    pin = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)

    def dataset(csv_file: Any, names: Any, transform: Any) -> MultiLabelImageDataset:
        return MultiLabelImageDataset(csv_file, data_dir, names, transform, image_column=image_column, mode=mode)

    train = dataset(train_split_csv, labels, train_transform)
    val = dataset(val_split_csv, train.labels, val_transform)
    test = dataset(test_split_csv, train.labels, val_transform)
    if len(train) < batch_size:
        raise ValueError(
            f"the train split has {len(train)} rows, fewer than batch_size={batch_size}: "
            "with drop_last=True the train loader would be empty"
        )
    loader_args: dict[str, Any] = {"batch_size": batch_size, "num_workers": num_workers, "pin_memory": pin}
    if use_weighted_sampler:
        weights = get_sample_weights(train.targets, reduce=reduce, no_finding_share=no_finding_share)
        sampler = WeightedSampler(weights, num_samples=len(train), seed=seed)
        train_loader = DataLoader(train, sampler=sampler, drop_last=True, **loader_args)
    else:
        generator = torch.Generator().manual_seed(seed)
        train_loader = DataLoader(train, shuffle=True, generator=generator, drop_last=True, **loader_args)
    return {
        "train": train_loader,
        "val": DataLoader(val, shuffle=False, **loader_args),
        "test": DataLoader(test, shuffle=False, **loader_args),
    }


def _pil_image() -> Any:
    """``PIL.Image`` (Pillow is the ``images`` extra)."""
    return require("PIL.Image", extra="images", feature="reading image files")
