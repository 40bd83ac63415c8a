"""What a data set is: its spec, one loaded split (:class:`ImageData`), and the one rule that carves splits.

A :class:`DataSpec` holds everything the loader needs to know about a named set: shape, levels, labels, files,
where to download them, the parser that reads them and how its splits are formed. Adding a data set is one spec and
its parser; :mod:`pixelrnn.data` registers the specs in one tuple.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "valid", "test")

# The legacy RandomState stream is frozen by NumPy's compatibility policy (NEP 19), unlike Generator's, so a
# split drawn from it is the same under every NumPy version. Changing the seed changes every split.
SPLIT_SEED = 2016

# rows(n) -> the indices, among the n images a parser found, that the requested split keeps (None: all of them).
Rows = Callable[[int], "np.ndarray | None"]


@dataclass(frozen=True)
class DataSpec:
    """One named data set.

    Attributes:
        name: The name given to ``--data`` and :func:`~pixelrnn.data.load_dataset`.
        shape: ``(C, H, W)`` of one image.
        levels: K, the number of discrete values per channel.
        read: The parser: ``read(spec, source, folder, download, rows) -> (images, labels or None)``, where
            ``source`` is the official split to read ("train", "valid", "test", or "all" for a pooled set),
            ``folder`` is ``data_dir / name`` and ``rows(n)`` gives the rows of those ``n`` images to return.
        num_classes: Number of class labels, or None for an unlabelled set.
        labelled_alternative: For an unlabelled set, a labelled set of the same images to name when labels are
            asked for (``--class-conditional``).
        files: Official split -> the files it is read from (for messages and for :func:`locate`).
        downloads: File name -> ``(URL, "algorithm:hexdigest")`` for the files that have a public URL.
        system_dirs: Directories where a system package installs the files; searched after ``folder``.
        valid_size: When the set has no official validation split, at most this many training images become
            ``valid`` (see :func:`carve`); None when it has one.
        pool: For a set published as one pool of images, the size of each split carved from it.
        source: Where the set comes from, for the documentation.
    """

    name: str
    shape: tuple[int, int, int]
    levels: int
    read: Callable = field(repr=False)
    num_classes: int | None = None
    labelled_alternative: str | None = None
    files: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    downloads: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    system_dirs: tuple[Path, ...] = ()
    valid_size: int | None = None
    pool: Mapping[str, int] | None = None
    source: str = ""

    def source_split(self, split: str) -> str:
        """The official split that ``split`` is read from."""
        if self.pool is not None:
            return "all"
        if split == "valid" and self.valid_size is not None:
            return "train"
        return split

    def rows(self, split: str) -> Rows:
        """The rule that selects ``split`` from the images of :meth:`source_split`."""
        if self.pool is not None:
            sizes = [self.pool[s] for s in SPLITS]
            return lambda n: carve(n, sizes)[SPLITS.index(split)]
        if split in ("train", "valid") and self.valid_size is not None:
            def rows(n: int) -> np.ndarray:
                size = min(self.valid_size, n // 10)
                return carve(n, [n - size, size])[0 if split == "train" else 1]
            return rows
        return lambda n: None


def carve(n: int, sizes: list[int]) -> list[np.ndarray]:
    """The split rule, for every set: consecutive runs of one fixed permutation of ``range(n)``, each sorted.

    Training sets without an official validation split give ``[n - v, v]`` (train, valid), with
    ``v = min(valid_size, n // 10)``: on the real files the cap applies; the ``n // 10`` bound only matters for the
    small files of the tests, which then get a proportionate validation split.
    """
    if sum(sizes) > n:
        raise ValueError(f"cannot carve {sizes} from {n} images")
    order = np.random.RandomState(SPLIT_SEED).permutation(n)
    ends = np.cumsum([0, *sizes])
    return [np.sort(order[a:b]) for a, b in zip(ends[:-1], ends[1:])]


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field has no single truth value
class ImageData:
    """One split of a data set, held in memory.

    Attributes:
        name: The data set's name as given to :func:`~pixelrnn.data.load_dataset` (``"folder:PATH"`` for folders).
        split: ``"train"``, ``"valid"`` or ``"test"``.
        images: uint8 tensor ``(N, C, H, W)`` with values in ``[0, levels)``.
        levels: K, the number of discrete values per channel.
        labels: int64 tensor ``(N,)`` of class labels, or None when the set has none.
        num_classes: Number of classes, or None when the set has no labels.
    """

    name: str
    split: str
    images: torch.Tensor
    levels: int
    labels: torch.Tensor | None
    num_classes: int | None

    def __post_init__(self):
        # Loaders produce these invariants; checking them here catches a loader bug before it reaches a model.
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels is not None and (self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]):
            raise ValueError(f"labels must be int64 ({len(self.images)},), got {self.labels.dtype} "
                             f"{tuple(self.labels.shape)}")
        # Every uint8 value is below 256, so only sets with fewer levels need the (full-pass) check.
        if self.levels < 256 and self.images.numel() and int(self.images.max()) >= self.levels:
            raise ValueError(f"{self.name}: image values reach {int(self.images.max())}, above levels - 1")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        c, h, w = self.images.shape[1:]
        return (c, h, w)

    def __len__(self) -> int:
        return self.images.shape[0]


def make(spec: DataSpec, split: str, images: np.ndarray, labels: np.ndarray | None) -> ImageData:
    """Wrap a parser's arrays as an :class:`ImageData` without copying them where possible."""
    # torch.from_numpy shares memory and warns on read-only arrays (np.frombuffer over bytes): copy those only.
    # A copy-on-write memory map (the ImageNet cache) is writeable, so it is shared, not read into memory.
    images = images if images.flags.writeable and images.flags.c_contiguous else np.array(images)
    return ImageData(spec.name, split, torch.from_numpy(images), spec.levels,
                     None if labels is None else torch.from_numpy(labels.astype(np.int64)), spec.num_classes)


def take(rows: Rows, *arrays: np.ndarray | None) -> list[np.ndarray | None]:
    """Apply a split's row selection to a parser's arrays (labels may be None)."""
    index = rows(len(arrays[0]))
    return [a if a is None or index is None else a[index] for a in arrays]


def default_data_dir() -> Path:
    """Where data sets are read from and downloaded to when no directory is given.

    Returns:
        ``$PIXELRNN_DATA_DIR`` if set, else ``$XDG_CACHE_HOME/pixelrnn/data`` (``~/.cache/pixelrnn/data`` when
        ``XDG_CACHE_HOME`` is unset).
    """
    if os.environ.get("PIXELRNN_DATA_DIR"):
        return Path(os.environ["PIXELRNN_DATA_DIR"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "pixelrnn" / "data"


def report(message: str) -> None:
    """Tell the user something that is not an error (skipped files, no cache), as one line on stderr."""
    print(" ".join(message.split()), file=sys.stderr)
