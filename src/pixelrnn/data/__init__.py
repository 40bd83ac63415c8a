"""Image data sets as uint8 tensors that know their number of levels.

"Pixel Recurrent Neural Networks" (van den Oord, Kalchbrenner and Kavukcuoglu, ICML 2016) reports
log-likelihoods on three data sets: MNIST with the fixed binarization used throughout the literature
(``binarized-mnist``), CIFAR-10 (``cifar10``) and the 32x32 and 64x64 downsampled ImageNet that the paper
introduced (``imagenet32``, ``imagenet64``: tar archives of PNGs, no labels). Besides those, ``digits``
(scikit-learn's bundled 8x8 digits, offline) is the default for quick runs and tests, ``mnist`` and
``fashion-mnist`` are 256-level 28x28 sets that train on a CPU, ``imagenet32-resized`` and ``imagenet64-resized``
are the later, labelled npz set of Chrabaszcz et al. (2017), and ``folder:PATH`` turns any directory of PNG/JPEG
files into a data set.

Every loader returns an :class:`ImageData`: images ``(N, C, H, W)`` of dtype uint8 with values in
``[0, levels)``. The models predict each colour value with a ``levels``-way softmax (section 2.2 of the paper),
so these integers are their targets as they are; no rescaling happens here.

One module per format, each with the :class:`~pixelrnn.data.spec.DataSpec` of its sets; they are registered in
:data:`SPECS` below. ``test`` is always the official test set (for ImageNet, the official validation set).
Where a set has no official validation split, ``valid`` is carved from the training set by one rule
(:func:`~pixelrnn.data.spec.carve`).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .cifar import CIFAR10
from .digits import DIGITS
from .folder import FOLDER_PREFIX, absolute_name, load_folder
from .imagenet import IMAGENET32, IMAGENET64
from .imagenet_resized import IMAGENET32_RESIZED, IMAGENET64_RESIZED
from .mnist import BINARIZED_MNIST, FASHION_MNIST, MNIST
from .spec import SPLIT_SEED, SPLITS, DataSpec, ImageData, carve, default_data_dir, make

__all__ = ["DATASETS", "SPECS", "SPLITS", "SPLIT_SEED", "DataSpec", "ImageData", "absolute_name", "carve",
           "dataset_info", "default_data_dir", "load_dataset", "require_labels"]

# The registry: adding a data set is one spec (and its parser) and one entry here.
SPECS: dict[str, DataSpec] = {spec.name: spec for spec in (
    DIGITS, MNIST, BINARIZED_MNIST, FASHION_MNIST, CIFAR10, IMAGENET32, IMAGENET64,
    IMAGENET32_RESIZED, IMAGENET64_RESIZED,
)}
DATASETS: tuple[str, ...] = tuple(SPECS)


def _spec(name: str) -> DataSpec:
    try:
        return SPECS[name]
    except KeyError:
        if Path(name).is_dir():  # a folder of images, named without its prefix
            hint = f"for the images in the folder {name}, pass folder:{name}"
        else:
            hint = f"choose one of {', '.join(SPECS)}, or folder:PATH"
        raise DataError(f"unknown data set {name!r}; {hint}") from None


def dataset_info(name: str) -> dict:
    """Shape, levels and classes of a data set, without reading any data.

    Args:
        name: One of :data:`DATASETS`, or ``"folder:PATH"``.

    Returns:
        ``{"image_shape": (C, H, W), "levels": K, "num_classes": N or None}``. For a folder the shape depends on
        its files, so ``image_shape`` is None.

    Raises:
        DataError: If the name is unknown.
    """
    if name.startswith(FOLDER_PREFIX):
        return {"image_shape": None, "levels": 256, "num_classes": None}
    spec = _spec(name)
    return {"image_shape": spec.shape, "levels": spec.levels, "num_classes": spec.num_classes}


def require_labels(name: str) -> int:
    """The number of classes of a labelled data set (for class-conditional models).

    Raises:
        DataError: One line naming a labelled alternative, if the set has no labels.
    """
    classes = dataset_info(name)["num_classes"]
    if not classes:
        alternative = None if name.startswith(FOLDER_PREFIX) else _spec(name).labelled_alternative
        hint = f"; {alternative} holds the same kind of images with labels" if alternative else \
            f"; choose a labelled one: {', '.join(s.name for s in SPECS.values() if s.num_classes)}"
        raise DataError(f"{name} has no class labels to condition on{hint}")
    return classes


def load_dataset(name: str, split: str = "train", data_dir: str | Path | None = None, download: bool | None = None,
                 image_size: int | None = None) -> ImageData:
    """Load one split of a data set into memory.

    Args:
        name: One of :data:`DATASETS`, or ``"folder:PATH"`` for a directory of PNG/JPEG files.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        data_dir: Directory holding one subdirectory per named set; default :func:`default_data_dir`.
        download: Whether to download missing files where a public URL exists; by default yes, unless the
            environment variable PIXELRNN_OFFLINE is set to a non-empty value other than 0.
        image_size: For folders, the side to which every image is resized (centre-cropped to a square first);
            needed when the images differ in size. Named sets only accept their own size (or None).

    Returns:
        The split as an :class:`ImageData`.

    Raises:
        DataError: For an unknown name or split, a wrong image_size, or files that are missing, corrupt or
            unsafe.
    """
    if download is None:
        download = os.environ.get("PIXELRNN_OFFLINE", "0") in ("", "0")
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if name.startswith(FOLDER_PREFIX):
        return load_folder(name, split, image_size)
    spec = _spec(name)
    side = spec.shape[1]
    if image_size is not None and image_size != side:
        hint = " (use imagenet32 or imagenet64)" if name.startswith("imagenet") else ""
        raise DataError(f"{name} images are {side}x{side}; --image-size {image_size} is not available{hint}. "
                        f"Omit --image-size or pass {side}; only folder:PATH data sets are resized")
    folder = Path(data_dir if data_dir is not None else default_data_dir()).expanduser() / name
    images, labels = spec.read(spec, spec.source_split(split), folder, download, spec.rows(split))
    return make(spec, split, images, labels)
