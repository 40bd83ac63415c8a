"""``imagenet32-resized`` and ``imagenet64-resized``: the npz archives of Chrabaszcz, Loshchilov and Hutter (2017).

"A Downsampled Variant of ImageNet as an Alternative to the CIFAR datasets": 1,281,167 training and 50,000
validation images with their labels (1,000 classes), box-resized; TensorFlow Datasets calls it
``imagenet_resized``. It is *not* the set of the PixelRNN paper (see :mod:`pixelrnn.data.imagenet`), which was
resized differently, so bits/dim measured here are not comparable with the paper's table. Its labels make it the
set for class-conditional ImageNet models. The test split is the official validation set; it needs an ImageNet
login, so it is never downloaded.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataError
from .files import missing_error
from .spec import DataSpec, Rows


def _read_npz(path: Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:  # allow_pickle=False: object arrays could run code
            return [np.asarray(npz[k]) for k in keys]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path} is not a downsampled ImageNet npz file with {', '.join(keys)} ({e})") from None


def read_npz_set(spec: DataSpec, source: str, folder: Path, download: bool, rows: Rows):
    side = spec.shape[1]
    wanted = spec.files[source]
    paths, missing = [], []
    for rel in wanted:
        base = PurePosixPath(rel).name
        # The archives unpack into differently named folders (the 64x64 training set comes in two parts), so
        # look in the set's folder itself and in any folder directly below it.
        candidates = [folder / rel, folder / base, *sorted(folder.glob(f"*/{base}"))]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(rel)
        else:
            paths.append(path)
    if missing:
        if len(missing) == 10:  # the whole training set: name the ten files in one pattern
            missing = [f"Imagenet{side}_train_npz/train_data_batch_{{1..10}}.npz"]
        raise missing_error(spec.name, missing, folder, f"these need an ImageNet login: download the Downsampled "
                            f"ImageNet {side}x{side} npz archives (Chrabaszcz et al. 2017) from "
                            f"https://image-net.org/download-images, unpack them there,")

    # Read the labels first (small) to know the total size, then only the selected rows of each data file, so
    # memory peaks at the split plus one file rather than twice the whole training set.
    labels_per_file = []
    for path in paths:
        (labels,) = _read_npz(path, ("labels",))
        if (labels.ndim != 1 or labels.dtype.kind not in "iu"
                or labels.min(initial=1) < 1 or labels.max(initial=1) > 1000):
            raise DataError(f"{path}: 'labels' must be N integers in 1..1000")
        labels_per_file.append(labels)
    counts = [len(labels) for labels in labels_per_file]
    index = rows(sum(counts))
    index = np.arange(sum(counts)) if index is None else index
    images = np.empty((len(index), 3 * side * side), np.uint8)
    filled, start = 0, 0
    for path, count in zip(paths, counts):
        local = index[(index >= start) & (index < start + count)] - start
        if len(local):
            (data,) = _read_npz(path, ("data",))
            if data.dtype != np.uint8 or data.shape != (count, 3 * side * side):
                raise DataError(f"{path}: 'data' must be uint8 ({count}, {3 * side * side}) for {side}x{side} "
                                f"images, got {data.dtype} {data.shape}")
            images[filled: filled + len(local)] = data[local]
            filled += len(local)
        start += count
    labels = np.concatenate(labels_per_file)[index] - 1  # the files count classes from 1
    return images.reshape(-1, 3, side, side), labels  # rows are channel-major (CHW)


def _spec(side: int) -> DataSpec:
    tag = f"Imagenet{side}"
    return DataSpec(
        f"imagenet{side}-resized", (3, side, side), 256, read_npz_set, num_classes=1000, valid_size=10000,
        files={"train": tuple(f"{tag}_train_npz/train_data_batch_{i}.npz" for i in range(1, 11)),
               "test": (f"{tag}_val_npz/val_data.npz",)},
        source="Chrabaszcz, Loshchilov and Hutter (2017), npz; 1,281,167 train / 50,000 validation, 1,000 classes",
    )


IMAGENET32_RESIZED = _spec(32)
IMAGENET64_RESIZED = _spec(64)
