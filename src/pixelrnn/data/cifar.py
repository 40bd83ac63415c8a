"""CIFAR-10: pickled batches in a tar.gz.

Krizhevsky (2009), "Learning Multiple Layers of Features from Tiny Images"; 50,000 train / 10,000 test colour
images of 32x32, 10 classes, from https://www.cs.toronto.edu/~kriz/cifar.html (whose md5 sum is checked, as
torchvision does). The PixelRNN paper reports bits/dim on its test set (table 3).
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import DataError
from .files import MAX_HEADER_BYTES, BoundedReads, missing_error, try_download, unsafe_member
from .spec import DataSpec, Rows, take

_ARCHIVE = "cifar-10-python.tar.gz"
_DIR = "cifar-10-batches-py"
# Bounds on what the published archive holds: 8 members, 186 MB unpacked, of which six batches of 31 MB each.
MAX_MEMBERS = 1000
MAX_BATCH_BYTES = 64 * 2**20
MAX_UNPACKED_BYTES = 512 * 2**20


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


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if (size := path.stat().st_size) > MAX_BATCH_BYTES:  # unpickled whole: a huge file would fill the memory
        raise DataError(f"{path} is {size:,} bytes, more than a CIFAR-10 batch (about 31 MB); it is not one")
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


def extract(spec: DataSpec, archive: Path, folder: Path) -> None:
    """Unpack the batch files from the CIFAR-10 archive into ``folder / cifar-10-batches-py``.

    The archive is read through bounds on what the published one holds, so a crafted one that unpacks to gigabytes
    (a gzip bomb) or declares a batch of gigabytes is refused in one line, before the time or the disk is spent. The
    batches are unpacked under temporary names and put in place only once the whole archive has been read, so an
    archive refused partway leaves nothing behind.
    """
    wanted = {file for files in spec.files.values() for file in files}
    target = folder / _DIR
    made_target = not target.exists()
    staged: dict[Path, Path] = {}  # final name -> the temporary file that holds it
    try:
        with gzip.open(archive, "rb") as unpacked:
            file = BoundedReads(unpacked, str(archive), MAX_HEADER_BYTES, end=MAX_UNPACKED_BYTES)
            with tarfile.open(fileobj=file, mode="r:") as tar:  # "r:": every read of tarfile goes through the bounds
                for count, member in enumerate(iter(tar.next, None), 1):
                    # Refuse the whole archive if any name could escape the target: it is not the published one.
                    if unsafe_member(member.name):
                        raise DataError(f"{archive} holds an unsafe path {member.name!r}; refusing to extract it")
                    if count > MAX_MEMBERS:
                        raise DataError(f"{archive} holds more than {MAX_MEMBERS} members, and the published one 8; "
                                        f"it is not that file (delete it and fetch it again)")
                    # Only regular files with the expected names are copied out, by our own writes: no links,
                    # devices or permissions from the archive reach the disk.
                    if member.name not in wanted or not member.isfile():
                        continue
                    if member.size > MAX_BATCH_BYTES:
                        raise DataError(f"{archive}: {member.name} declares {member.size:,} bytes, more than a "
                                        f"CIFAR-10 batch (about 31 MB); it is not the published archive")
                    target.mkdir(parents=True, exist_ok=True)
                    fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{PurePosixPath(member.name).name}.",
                                               suffix=".part")
                    staged[target / PurePosixPath(member.name).name] = Path(tmp)
                    with os.fdopen(fd, "wb") as out, tar.extractfile(member) as src:
                        shutil.copyfileobj(src, out)
        for dest, tmp in staged.items():
            os.replace(tmp, dest)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{archive} is not a readable tar.gz archive ({e}); delete it and fetch it again") from None
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)  # no-op after the rename
        if made_target and target.is_dir() and not any(target.iterdir()):
            target.rmdir()


def read_cifar10(spec: DataSpec, source: str, folder: Path, download: bool, rows: Rows):
    files = tuple(f.split("/")[-1] for f in spec.files[source])

    def batch_dir() -> Path | None:
        # Accept the archive's layout and the batch files placed directly in the data set folder.
        return next((d for d in (folder / _DIR, folder) if all((d / f).is_file() for f in files)), None)

    directory = batch_dir()
    if directory is None:
        archive = folder / _ARCHIVE
        failure = ""
        if not archive.is_file() and download:
            url, checksum = spec.downloads[_ARCHIVE]
            failure = try_download(spec.name, url, archive, checksum)
        if archive.is_file():
            extract(spec, archive, folder)
            failure = f" ({archive.name} does not hold them)"
        directory = batch_dir()
        if directory is None:
            raise missing_error(spec.name, list(spec.files[source]), folder,
                                f"download and unpack {spec.downloads[_ARCHIVE][0]} there,", failure)
    batches = [read_batch(directory / f) for f in files]
    return take(rows, np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]))


CIFAR10 = DataSpec(
    "cifar10", (3, 32, 32), 256, read_cifar10, num_classes=10, valid_size=5000,
    files={"train": tuple(f"{_DIR}/data_batch_{i}" for i in range(1, 6)), "test": (f"{_DIR}/test_batch",)},
    downloads={_ARCHIVE: ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                          "md5:c58f30108f718f92721af3b95e74349a")},
    source="Krizhevsky (2009), CIFAR-10; 50,000 train / 10,000 test",
)
