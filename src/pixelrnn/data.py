"""Image data sets as uint8 tensors that know their number of levels.

"Pixel Recurrent Neural Networks" (van den Oord, Kalchbrenner and Kavukcuoglu, ICML 2016) reports
log-likelihoods on three data sets: MNIST with the fixed binarization used throughout the literature
(``binarized-mnist``), CIFAR-10 (``cifar10``) and the 32x32 and 64x64 downsampled ImageNet that the paper
introduced (``imagenet32``, ``imagenet64``). Besides those, ``digits`` (scikit-learn's bundled 8x8 digits,
offline) is the default for quick runs and tests, ``mnist`` and ``fashion-mnist`` are 256-level 28x28 sets
that train on a CPU, and ``folder:PATH`` turns any directory of PNG/JPEG files into a data set.

Every loader returns an :class:`ImageData`: images ``(N, C, H, W)`` of dtype uint8 with values in
``[0, levels)``. The models predict each colour value with a ``levels``-way softmax (section 2.2 of the paper),
so these integers are their targets as they are; no rescaling happens here.

Files. A named set lives in ``data_dir / name`` (``data_dir`` defaults to :func:`default_data_dir`).
Fashion-MNIST is also looked for where Debian's ``dataset-fashion-mnist`` package puts it. Missing files are
downloaded where a public URL exists (:data:`DOWNLOADS`), through a temporary file that is renamed into place
only after its checksum matched, so an interrupted download or two processes downloading at once never leave a
half-written file under the final name. Downsampled ImageNet needs a login, so it is never downloaded. Offline,
a missing set is a :class:`~pixelrnn.errors.DataError` naming the files and the directory to put them in.

Splits. ``test`` is always the official test set (for ImageNet, the official validation set, since its test
labels are not public). Binarized MNIST has an official validation set. For the others ``valid`` is carved out
of the official training set: the last ``min(VALID_SIZES[name], N // 10)`` images of a fixed seeded
permutation. On the real files the cap applies (5000 for MNIST, Fashion-MNIST and CIFAR-10; 10000 for
ImageNet); the ``N // 10`` bound only matters for the small files of the tests, which then get a proportionate
validation split without any monkeypatching.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from tqdm import tqdm

from .errors import DataError

__all__ = ["DATASETS", "SPLITS", "ImageData", "dataset_info", "default_data_dir", "load_dataset"]

DATASETS: tuple[str, ...] = (
    "digits", "mnist", "binarized-mnist", "fashion-mnist", "cifar10", "imagenet32", "imagenet64",
)
SPLITS = ("train", "valid", "test")
FOLDER_PREFIX = "folder:"

# (C, H, W), levels, number of classes. dataset_info answers from this table without touching any file.
_INFO: dict[str, tuple[tuple[int, int, int], int, int | None]] = {
    "digits": ((1, 8, 8), 17, 10),  # values 0..16: scikit-learn's digits count pixels in 4x4 blocks
    "mnist": ((1, 28, 28), 256, 10),
    "binarized-mnist": ((1, 28, 28), 2, None),
    "fashion-mnist": ((1, 28, 28), 256, 10),
    "cifar10": ((3, 32, 32), 256, 10),
    "imagenet32": ((3, 32, 32), 256, 1000),
    "imagenet64": ((3, 64, 64), 256, 1000),
}

# The legacy RandomState stream is frozen by NumPy's compatibility policy (NEP 19), unlike Generator's, so a
# split drawn from it is the same under every NumPy version. Changing the seed changes every split.
SPLIT_SEED = 2016
VALID_SIZES = {"mnist": 5000, "fashion-mnist": 5000, "cifar10": 5000, "imagenet32": 10000, "imagenet64": 10000}
_DIGITS_SPLIT = {"train": 1297, "valid": 200, "test": 300}

# Directories where system packages install a data set; searched after data_dir / name.
SYSTEM_DIRS: dict[str, tuple[Path, ...]] = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),)}

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_BINARIZED_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"

# name -> file name -> (URL, "algorithm:hexdigest"). The checksum is checked on the downloaded bytes only: files
# already on disk are checked by their structure instead, because Debian's Fashion-MNIST package recompressed the
# .gz files (same images, different md5), and a structural check is what catches a truncated file anyway.
# Sources of the digests:
# - MNIST: the md5 sums that torchvision lists for this mirror (the files are the original LeCun ones).
# - Fashion-MNIST: the md5 sums in the upstream README (zalandoresearch/fashion-mnist), which Debian ships as
#   /usr/share/doc/dataset-fashion-mnist/README.md.gz.
# - Binarized MNIST: the sha256 sums (and sizes, 78400000 / 15680000 / 15680000 bytes) that TensorFlow Datasets
#   records in tensorflow_datasets/url_checksums/binarized_mnist.txt.
# - CIFAR-10: the md5 sum published on https://www.cs.toronto.edu/~kriz/cifar.html (also used by torchvision).
DOWNLOADS: dict[str, dict[str, tuple[str, str]]] = {
    "mnist": {f: (_MNIST_URL + f, checksum) for f, checksum in {
        "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    }.items()},
    "fashion-mnist": {f: (_FASHION_URL + f, checksum) for f, checksum in {
        "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
    }.items()},
    "binarized-mnist": {f: (_BINARIZED_URL + f, checksum) for f, checksum in {
        "binarized_mnist_train.amat": "sha256:ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
        "binarized_mnist_valid.amat": "sha256:1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
        "binarized_mnist_test.amat": "sha256:e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
    }.items()},
    "cifar10": {
        "cifar-10-python.tar.gz": ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                                   "md5:c58f30108f718f92721af3b95e74349a"),
    },
}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True, eq=False)  # eq=False: comparing tensors field by field has no single truth value
class ImageData:
    """One split of a data set, held in memory.

    Attributes:
        name: The data set's name as given to :func:`load_dataset` (``"folder:PATH"`` for folders).
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
    _check_name(name)
    shape, levels, num_classes = _INFO[name]
    return {"image_shape": shape, "levels": levels, "num_classes": num_classes}


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
        return _load_folder(name, split, image_size)
    _check_name(name)
    side = _INFO[name][0][1]
    if image_size is not None and image_size != side:
        hint = " (use imagenet32 or imagenet64)" if name.startswith("imagenet") else ""
        raise DataError(f"{name} images are {side}x{side}; image_size={image_size} is not available{hint}. "
                        f"Omit image_size or pass {side}; only folder:PATH data sets are resized")
    if name == "digits":
        return _load_digits(split)
    folder = Path(data_dir if data_dir is not None else default_data_dir()).expanduser() / name
    if name in ("mnist", "fashion-mnist"):
        return _load_idx_set(name, split, folder, download)
    if name == "binarized-mnist":
        return _load_binarized_mnist(split, folder, download)
    if name == "cifar10":
        return _load_cifar10(split, folder, download)
    return _load_imagenet(name, split, folder)


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}, or folder:PATH")


def _make(name: str, split: str, images: np.ndarray, labels: np.ndarray | None) -> ImageData:
    # torch.from_numpy shares memory and warns on read-only arrays (np.frombuffer over bytes): copy those only.
    images = images if images.flags.writeable and images.flags.c_contiguous else np.array(images)
    _, levels, num_classes = _INFO[name]
    return ImageData(name, split, torch.from_numpy(images), levels,
                     None if labels is None else torch.from_numpy(labels.astype(np.int64)), num_classes)


def _holdout(n: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` of an official training set into sorted (train, valid) indices."""
    size = min(VALID_SIZES[name], n // 10)
    order = np.random.RandomState(SPLIT_SEED).permutation(n)
    return np.sort(order[: n - size]), np.sort(order[n - size:])


# ---------------------------------------------------------------------------------------------------------------
# Finding and downloading files


def _missing_error(name: str, missing: list[str], folder: Path, hint: str, failure: str = "") -> DataError:
    return DataError(f"{name}: missing {', '.join(missing)} in {folder}{failure}; {hint} "
                     f"or pass --data-dir (or set PIXELRNN_DATA_DIR)")


def _download_hint(name: str) -> str:
    urls = sorted({url.rsplit("/", 1)[0] + "/" for url, _ in DOWNLOADS[name].values()})
    return f"download them from {', '.join(urls)}"


def _locate(name: str, folder: Path, files: tuple[str, ...], download: bool) -> dict[str, Path]:
    """Find each file in ``folder`` or a system directory, downloading the missing ones if allowed."""
    found = {}
    for file in files:
        for directory in (folder, *SYSTEM_DIRS.get(name, ())):
            if (directory / file).is_file():
                found[file] = directory / file
                break
    missing = [f for f in files if f not in found]
    failure = ""
    if missing and download:
        for file in missing:
            url, checksum = DOWNLOADS[name][file]
            failure = _try_download(name, url, folder / file, checksum)
            if failure:
                break
            found[file] = folder / file
        missing = [f for f in files if f not in found]
    if missing:
        raise _missing_error(name, missing, folder, _download_hint(name), failure)
    return found


def _try_download(name: str, url: str, dest: Path, checksum: str) -> str:
    """Download, returning "" or a short reason for a network failure (a checksum mismatch raises)."""
    try:
        _download(name, url, dest, checksum)
    except (OSError, http.client.HTTPException, ValueError) as e:  # URLError and timeouts are OSErrors
        return f" (download failed: {' '.join(str(e).split())})"  # one line, whatever the error text holds
    return ""


def _download(name: str, url: str, dest: Path, checksum: str) -> None:
    algorithm, expected = checksum.split(":", 1)
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.new(algorithm, usedforsecurity=False)  # integrity, not security: md5 is what is published
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
            total = response.headers.get("Content-Length")
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=f"{name}: {dest.name}", disable=None) as bar:  # disable=None: silent off a terminal
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        if digest.hexdigest() != expected:
            raise DataError(f"{name}: {url} gave a file with {algorithm} {digest.hexdigest()}, expected {expected}; "
                            f"the download is corrupt or the file changed upstream, so it was not kept")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)  # no-op after the rename


# ---------------------------------------------------------------------------------------------------------------
# digits


def _load_digits(split: str) -> ImageData:
    try:
        from sklearn.datasets import load_digits  # lazy: scikit-learn is only needed for this one set
    except ImportError:
        raise DataError("the digits data set needs scikit-learn: pip install 'pixelrnn[digits]'") from None
    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[:, None]  # (1797, 1, 8, 8), values 0..16
    order = np.random.RandomState(SPLIT_SEED).permutation(len(images))
    start = {"train": 0, "valid": _DIGITS_SPLIT["train"], "test": _DIGITS_SPLIT["train"] + _DIGITS_SPLIT["valid"]}
    index = np.sort(order[start[split]: start[split] + _DIGITS_SPLIT[split]])
    return _make("digits", split, images[index], bunch.target[index])


# ---------------------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST: IDX files


def _read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes with ``ndim`` dimensions."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError; a cut-off stream is an EOFError
        raise DataError(f"{path} is not a readable gzip file ({e}); delete it and fetch it again") from None
    header = 4 + 4 * ndim
    # Magic number: two zero bytes, the element type (0x08: unsigned byte), the number of dimensions.
    if len(raw) < header or raw[:4] != bytes((0, 0, 0x08, ndim)):
        raise DataError(f"{path} is not an IDX file of unsigned bytes with {ndim} dimension(s) "
                        f"(magic {raw[:4].hex() or 'missing'}); delete it and fetch it again")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(dims)):
        raise DataError(f"{path} holds {len(raw) - header} bytes of data where its header {dims} promises "
                        f"{int(np.prod(dims))}; it is truncated or corrupt, delete it and fetch it again")
    return np.frombuffer(raw, np.uint8, offset=header).reshape(dims)


def _load_idx_set(name: str, split: str, folder: Path, download: bool) -> ImageData:
    image_file, label_file = _IDX_FILES["test" if split == "test" else "train"]
    paths = _locate(name, folder, (image_file, label_file), download)
    images = _read_idx(paths[image_file], 3)
    labels = _read_idx(paths[label_file], 1)
    if images.shape[1:] != (28, 28) or len(labels) != len(images) or labels.max(initial=0) > 9:
        raise DataError(f"{name}: {paths[image_file]} holds images {images.shape} and {paths[label_file]} labels "
                        f"{labels.shape}; expected N 28x28 images and N labels in 0..9")
    if split != "test":
        train, valid = _holdout(len(images), name)
        index = train if split == "train" else valid
        images, labels = images[index], labels[index]
    return _make(name, split, images[:, None], labels)


# ---------------------------------------------------------------------------------------------------------------
# Binarized MNIST: text files


def _read_amat(path: Path) -> np.ndarray:
    """Read an .amat file: one image a line, 784 values 0 or 1 separated by spaces."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty file warns; the shape check below reports it
            values = np.loadtxt(path, dtype=np.uint8, ndmin=2)
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a binarized MNIST .amat file ({e})") from None
    if values.shape[0] == 0 or values.shape[1] != 784 or values.max() > 1:
        raise DataError(f"{path} is not a binarized MNIST .amat file: expected lines of 784 values 0 or 1, got "
                        f"shape {values.shape} with maximum {values.max(initial=0)}")
    return values.reshape(-1, 1, 28, 28)


def _load_binarized_mnist(split: str, folder: Path, download: bool) -> ImageData:
    file = f"binarized_mnist_{split}.amat"
    path = _locate("binarized-mnist", folder, (file,), download)[file]
    return _make("binarized-mnist", split, _read_amat(path), None)


# ---------------------------------------------------------------------------------------------------------------
# CIFAR-10: pickled batches in a tar.gz


def _numpy_reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct  # NumPy 2
    except ImportError:  # pragma: no cover - NumPy 1
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays, and refuses every other global.

    A pickle can name any importable callable and have it called (``os.system``, ``eval``): that is how loading an
    untrusted pickle runs code. The CIFAR-10 batches are dicts of lists, bytes and one uint8 array, so an array's
    reconstruction needs only these names (``numpy.core`` in files written by NumPy 1, ``numpy._core`` by NumPy 2).
    The objects are returned from this table, never imported by the name the file gives.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise DataError(f"refusing to load {module}.{name}: a data batch holds only arrays, and this pickle "
                            f"asks for other code") from None


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            # latin1: the batches were pickled by Python 2, whose str held the array's raw bytes.
            batch = _ArrayUnpickler(f, encoding="latin1").load()
    except DataError as e:
        raise DataError(f"{path}: {e}") from None
    except Exception as e:  # a damaged pickle can fail in many ways (EOFError, UnpicklingError, TypeError, ...)
        raise DataError(f"{path} is not a CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if isinstance(batch, dict):
        batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    data = batch.get("data") if isinstance(batch, dict) else None
    labels = np.asarray(batch.get("labels", ()) if isinstance(batch, dict) else ())
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072
            or labels.shape != (len(data),) or labels.dtype.kind not in "iu"
            or labels.min(initial=0) < 0 or labels.max(initial=0) > 9):
        raise DataError(f"{path} is not a CIFAR-10 batch: expected 'data' uint8 (N, 3072) and N 'labels' in 0..9")
    return data.reshape(-1, 3, 32, 32), labels  # rows hold the red, green, then blue 32x32 planes


def _extract_cifar(archive: Path, folder: Path) -> None:
    """Unpack the batch files from the CIFAR-10 archive into ``folder / cifar-10-batches-py``."""
    wanted = {f"{_CIFAR_DIR}/{b}" for batches in _CIFAR_BATCHES.values() for b in batches}
    target = folder / _CIFAR_DIR
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            # Refuse the whole archive if any name could escape the target: it is not the published one.
            for member in members:
                parts = PurePosixPath(member.name).parts
                if member.name.startswith(("/", "\\")) or ".." in parts:
                    raise DataError(f"{archive} holds an unsafe path {member.name!r}; refusing to extract it")
            # Only regular files with the expected names are copied out, by our own writes: no links, devices or
            # permissions from the archive reach the disk.
            for member in members:
                if member.name in wanted and member.isfile():
                    dest = target / PurePosixPath(member.name).name
                    fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{dest.name}.", suffix=".part")
                    try:
                        with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:
                            shutil.copyfileobj(src, out)
                        os.replace(tmp, dest)
                    finally:
                        Path(tmp).unlink(missing_ok=True)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive} is not a readable tar.gz archive ({e}); delete it and fetch it again") from None


def _load_cifar10(split: str, folder: Path, download: bool) -> ImageData:
    files = _CIFAR_BATCHES[split if split == "test" else "train"]

    def batch_dir() -> Path | None:
        # Accept the archive's layout and the batch files placed directly in the data set folder.
        return next((d for d in (folder / _CIFAR_DIR, folder) if all((d / f).is_file() for f in files)), None)

    directory = batch_dir()
    if directory is None:
        archive = folder / _CIFAR_ARCHIVE
        failure = ""
        if not archive.is_file() and download:
            url, checksum = DOWNLOADS["cifar10"][_CIFAR_ARCHIVE]
            failure = _try_download("cifar10", url, archive, checksum)
        if archive.is_file():
            _extract_cifar(archive, folder)
            failure = f" ({archive.name} does not hold them)"
        directory = batch_dir()
        if directory is None:
            url = DOWNLOADS["cifar10"][_CIFAR_ARCHIVE][0]
            raise _missing_error("cifar10", [f"{_CIFAR_DIR}/{f}" for f in files], folder,
                                 f"download and unpack {url} there,", failure)
    batches = [_read_cifar_batch(directory / f) for f in files]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    if split != "test":
        train, valid = _holdout(len(images), "cifar10")
        index = train if split == "train" else valid
        images, labels = images[index], labels[index]
    return _make("cifar10", split, images, labels)


# ---------------------------------------------------------------------------------------------------------------
# Downsampled ImageNet: npz files


def _read_npz(path: Path, keys: tuple[str, ...]) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:  # allow_pickle=False: object arrays could run code
            return [np.asarray(npz[k]) for k in keys]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path} is not a downsampled ImageNet npz file with {', '.join(keys)} ({e})") from None


def _load_imagenet(name: str, split: str, folder: Path) -> ImageData:
    side = _INFO[name][0][1]
    tag = f"Imagenet{side}"
    if split == "test":
        wanted = [f"{tag}_val_npz/val_data.npz"]
    else:
        wanted = [f"{tag}_train_npz/train_data_batch_{i}.npz" for i in range(1, 11)]
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
            missing = [f"{tag}_train_npz/train_data_batch_{{1..10}}.npz"]
        raise _missing_error(name, missing, folder, f"these need an ImageNet login: download the Downsampled "
                             f"ImageNet {side}x{side} npz archives from https://image-net.org/download-images, "
                             f"unpack them there,")

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
    if split == "test":
        index = np.arange(sum(counts))
    else:
        train, valid = _holdout(sum(counts), name)
        index = train if split == "train" else valid
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
    return _make(name, split, images.reshape(-1, 3, side, side), labels)  # rows are channel-major (CHW)


# ---------------------------------------------------------------------------------------------------------------
# folder:PATH


def _folder_split(files: list[Path], split: str) -> list[Path]:
    """Test and valid get 10% each (at least one image once there are 3), train the rest.

    Files are ordered by a hash of their name, so a file keeps its split when the folder is moved and mostly
    keeps it when files are added.
    """
    order = sorted(files, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    k = max(1, len(order) // 10) if len(order) >= 3 else 0
    part = {"test": order[:k], "valid": order[k: 2 * k], "train": order[2 * k:]}[split]
    return sorted(part)


def _load_folder(spec: str, split: str, image_size: int | None) -> ImageData:
    from PIL import Image

    if not spec[len(FOLDER_PREFIX):]:
        raise DataError("folder: needs a directory, as in folder:PATH")
    root = Path(spec[len(FOLDER_PREFIX):]).expanduser()
    if not root.is_dir():
        raise DataError(f"{spec}: {root} is not a directory")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                   or image_size < 1):
        raise DataError(f"{spec}: image_size must be a positive integer, not {image_size!r}")
    files = sorted(p for p in root.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{spec}: no PNG or JPEG files ({', '.join(_IMAGE_SUFFIXES)}) in {root}")

    def read_error(path: Path, e: Exception) -> DataError:
        return DataError(f"{spec}: cannot read {path} as an image ({e})")

    # Opening reads only the header: cheap enough to learn every file's mode and size before decoding any.
    modes, sizes = [], []
    for path in files:
        try:
            with Image.open(path) as im:
                modes.append(im.mode)
                sizes.append(im.size)
        except (OSError, Image.DecompressionBombError) as e:
            raise read_error(path, e) from None
    mode = "L" if all(m == "L" for m in modes) else "RGB"
    if image_size is None:
        if len(set(sizes)) > 1:
            examples = " and ".join(f"{w}x{h}" for w, h in sorted(set(sizes))[:2])
            raise DataError(f"{spec}: images differ in size ({examples}, ...); pass image_size to resize them all")
        width, height = sizes[0]
    else:
        width = height = image_size

    chosen = _folder_split(files, split)
    if not chosen:
        raise DataError(f"{spec}: {len(files)} image(s) are too few for a {split} split; add at least 3 images")
    arrays = []
    for path in chosen:
        try:
            with Image.open(path) as im:
                im = im.convert(mode)
                if im.size != (width, height):
                    if width == height and im.width != im.height:
                        # Centre-crop to a square first: squeezing the whole picture would distort its shapes.
                        s = min(im.size)
                        left, top = (im.width - s) // 2, (im.height - s) // 2
                        im = im.crop((left, top, left + s, top + s))
                    im = im.resize((width, height), Image.Resampling.LANCZOS)
                arrays.append(np.asarray(im, dtype=np.uint8))
        except (OSError, Image.DecompressionBombError) as e:  # a truncated file fails only when decoded
            raise read_error(path, e) from None
    images = np.stack(arrays)  # (N, H, W) or (N, H, W, 3)
    images = images[:, None] if mode == "L" else images.transpose(0, 3, 1, 2)
    return ImageData(spec, split, torch.from_numpy(np.ascontiguousarray(images)), 256, None, None)
