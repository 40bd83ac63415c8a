"""MNIST, Fashion-MNIST (gzipped IDX files) and binarized MNIST (text .amat files).

- ``mnist``: LeCun, Cortes and Burges, the MNIST database of handwritten digits; 60,000 train / 10,000 test
  images of 28x28, 256 levels, 10 classes.
- ``fashion-mnist``: Xiao, Rasul and Vollgraf (2017), "Fashion-MNIST"; same format and sizes as MNIST.
- ``binarized-mnist``: the fixed binarization of Salakhutdinov and Murray (2008), as distributed by Larochelle;
  50,000 / 10,000 / 10,000 images with an official validation split and no labels. The PixelRNN paper's
  table 2 reports nats/image on its test split.

Checksums: the md5 sums that torchvision lists for the MNIST mirror (the files are the original LeCun ones); the
md5 sums of the upstream Fashion-MNIST README (which Debian ships as /usr/share/doc/dataset-fashion-mnist/
README.md.gz); and for binarized MNIST the sha256 sums (and sizes, 78400000 / 15680000 / 15680000 bytes) that
TensorFlow Datasets records in tensorflow_datasets/url_checksums/binarized_mnist.txt.
"""

from __future__ import annotations

import gzip
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .files import locate
from .spec import DataSpec, Rows, take

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path, ndim: int) -> np.ndarray:
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


def read_idx_set(spec: DataSpec, source: str, folder: Path, download: bool, rows: Rows):
    image_file, label_file = spec.files[source]
    paths = locate(spec, folder, (image_file, label_file), download)
    images = read_idx(paths[image_file], 3)
    labels = read_idx(paths[label_file], 1)
    if images.shape[1:] != (28, 28) or len(labels) != len(images) or labels.max(initial=0) > 9:
        raise DataError(f"{spec.name}: {paths[image_file]} holds images {images.shape} and {paths[label_file]} "
                        f"labels {labels.shape}; expected N 28x28 images and N labels in 0..9")
    return take(rows, images[:, None], labels)


def read_amat(path: Path) -> np.ndarray:
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


def read_binarized(spec: DataSpec, source: str, folder: Path, download: bool, rows: Rows):
    (file,) = spec.files[source]
    return take(rows, read_amat(locate(spec, folder, (file,), download)[file]), None)


def _downloads(base: str, checksums: dict[str, str]) -> dict[str, tuple[str, str]]:
    return {file: (base + file, checksum) for file, checksum in checksums.items()}


MNIST = DataSpec(
    "mnist", (1, 28, 28), 256, read_idx_set, num_classes=10, files=_IDX_FILES, valid_size=5000,
    downloads=_downloads("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    }),
    source="LeCun, Cortes and Burges, the MNIST database; 60,000 train / 10,000 test",
)

FASHION_MNIST = DataSpec(
    "fashion-mnist", (1, 28, 28), 256, read_idx_set, num_classes=10, files=_IDX_FILES, valid_size=5000,
    system_dirs=(Path("/usr/share/datasets/fashion-mnist"),),
    downloads=_downloads("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte.gz": "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "md5:25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "md5:bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "md5:bb300cfdad3c16e7a12a480ee83cd310",
    }),
    source="Xiao, Rasul and Vollgraf (2017), Fashion-MNIST; 60,000 train / 10,000 test",
)

BINARIZED_MNIST = DataSpec(
    "binarized-mnist", (1, 28, 28), 2, read_binarized,
    files={s: (f"binarized_mnist_{s}.amat",) for s in ("train", "valid", "test")},
    downloads=_downloads("http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/", {
        "binarized_mnist_train.amat": "sha256:ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d",
        "binarized_mnist_valid.amat": "sha256:1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2",
        "binarized_mnist_test.amat": "sha256:e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c",
    }),
    source="Salakhutdinov and Murray (2008), fixed binarization; 50,000 / 10,000 / 10,000",
)
