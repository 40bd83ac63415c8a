"""Data loading: every file format, on tiny files written here, plus splits, errors, downloads and pickle safety.

The files are small versions of the real formats. Each image carries its own index in its first pixels, so a test
can tell which images ended up in which split. No network: downloads go to file:// URLs.
"""

import gzip
import hashlib
import io
import os
import pickle
import pickletools
import shlex
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn import data
from pixelrnn.data import DATASETS, SPLITS, ImageData, dataset_info, default_data_dir, load_dataset
from pixelrnn.errors import DataError

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


# ----------------------------------------------------------------------------------------------------------------
# Writers for each format


def tagged_images(n, shape, start=0):
    """``n`` random uint8 images whose first two values encode their index (``start + i``)."""
    images = np.random.RandomState(start).randint(0, 256, (n, *shape)).astype(np.uint8)
    flat = images.reshape(n, -1)
    flat[:, 0] = (np.arange(n) + start) % 256
    flat[:, 1] = (np.arange(n) + start) // 256
    return images


def tags(images: torch.Tensor) -> list[int]:
    flat = images.reshape(len(images), -1).long()
    return (flat[:, 0] + 256 * flat[:, 1]).tolist()


def idx_bytes(array: np.ndarray) -> bytes:
    return bytes((0, 0, 0x08, array.ndim)) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_set(folder: Path, n_train=30, n_test=10) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    train, test = tagged_images(n_train, (28, 28)), tagged_images(n_test, (28, 28), start=1000)
    for name, array in [("train-images-idx3-ubyte.gz", train), ("t10k-images-idx3-ubyte.gz", test),
                        ("train-labels-idx1-ubyte.gz", (np.arange(n_train) % 10).astype(np.uint8)),
                        ("t10k-labels-idx1-ubyte.gz", (np.arange(n_test) % 10).astype(np.uint8))]:
        (folder / name).write_bytes(gzip.compress(idx_bytes(array)))


def write_amat(path: Path, n: int, start=0) -> np.ndarray:
    bits = np.random.RandomState(start).randint(0, 2, (n, 784)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(" ".join(map(str, row)) + "\n" for row in bits))
    return bits


def cifar_batch(n, start) -> dict:
    return {b"batch_label": b"tiny batch", b"labels": [(start + i) % 10 for i in range(n)],
            b"data": tagged_images(n, (3072,), start=start), b"filenames": [b"x.png"] * n}


def python2_style(payload: bytes) -> bytes:
    """Rewrite a protocol-3 pickle the way Python 2 and NumPy 1 wrote the real CIFAR batches.

    Python 2 stored bytes as str (BINSTRING opcodes), and NumPy 1 named ``numpy.core``. Same lengths, so the
    opcodes can be swapped in place.
    """
    out = bytearray(payload)
    for op, _, pos in pickletools.genops(payload):
        if op.name == "BINBYTES":
            out[pos:pos + 1] = b"T"  # BINSTRING
        elif op.name == "SHORT_BINBYTES":
            out[pos:pos + 1] = b"U"  # SHORT_BINSTRING
    return bytes(out).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def write_cifar(folder: Path, per_batch=4, n_test=5, style="python3") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for k, name in enumerate(names):
        batch = cifar_batch(n_test if name == "test_batch" else per_batch, start=100 * k)
        payload = pickle.dumps(batch, protocol=3 if style == "python2" else 4)
        (folder / name).write_bytes(python2_style(payload) if style == "python2" else payload)


def write_cifar_archive(path: Path, extra_member: str | None = None) -> None:
    staging = path.parent / "staging"
    write_cifar(staging)
    with tarfile.open(path, "w:gz") as tar:
        for f in sorted(staging.iterdir()):
            tar.add(f, arcname=f"cifar-10-batches-py/{f.name}")
        if extra_member:
            info = tarfile.TarInfo(extra_member)
            info.size = 5
            tar.addfile(info, io.BytesIO(b"evil\n"))


def write_imagenet(folder: Path, side=32, per_file=3, n_val=4, flat=False) -> None:
    tag = f"Imagenet{side}"
    train_dir = folder if flat else folder / f"{tag}_train_npz"
    val_dir = folder if flat else folder / f"{tag}_val_npz"
    train_dir.mkdir(parents=True, exist_ok=True)
    val_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, 11):
        start = (i - 1) * per_file
        np.savez(train_dir / f"train_data_batch_{i}.npz", data=tagged_images(per_file, (3 * side * side,), start),
                 labels=(np.arange(start, start + per_file) % 1000) + 1)
    np.savez(val_dir / "val_data.npz", data=tagged_images(n_val, (3 * side * side,), 5000),
             labels=np.arange(n_val) + 1)


def md5(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def all_splits(name, **kwargs):
    return {s: load_dataset(name, s, **kwargs) for s in SPLITS}


def assert_disjoint_cover(splits, expected_tags):
    """The train and valid (and test) tags are disjoint and together are exactly ``expected_tags``."""
    seen = [t for d in splits for t in tags(d.images)]
    assert len(seen) == len(set(seen))
    assert sorted(seen) == sorted(expected_tags)


# ----------------------------------------------------------------------------------------------------------------
# Names, splits, info


def test_dataset_info_matches_loaded_digits_and_rejects_unknown_names():
    assert set(DATASETS) == {"digits", "mnist", "binarized-mnist", "fashion-mnist", "cifar10", "imagenet32",
                             "imagenet64"}
    assert dataset_info("binarized-mnist") == {"image_shape": (1, 28, 28), "levels": 2, "num_classes": None}
    assert dataset_info("imagenet64") == {"image_shape": (3, 64, 64), "levels": 256, "num_classes": 1000}
    assert dataset_info("folder:/nowhere")["image_shape"] is None
    d = load_dataset("digits")
    info = dataset_info("digits")
    assert (d.image_shape, d.levels, d.num_classes) == (info["image_shape"], info["levels"], info["num_classes"])
    with pytest.raises(DataError, match="choose one of digits, mnist"):
        dataset_info("svhn")


@pytest.mark.parametrize("call, message", [
    (lambda: load_dataset("svhn"), "folder:PATH"),
    (lambda: load_dataset("digits", "validation"), "train, valid, test"),
    (lambda: load_dataset("digits", image_size=16), "8x8"),
    (lambda: load_dataset("imagenet64", image_size=32), "imagenet32"),
])
def test_bad_names_splits_and_sizes_list_the_choices(call, message):
    with pytest.raises(DataError, match=message):
        call()


def test_default_data_dir_respects_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELRNN_DATA_DIR", str(tmp_path / "d"))
    assert default_data_dir() == tmp_path / "d"
    monkeypatch.delenv("PIXELRNN_DATA_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "pixelrnn" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "pixelrnn" / "data"


def test_load_dataset_uses_default_data_dir(monkeypatch, tmp_path):
    write_idx_set(tmp_path / "mnist")
    monkeypatch.setenv("PIXELRNN_DATA_DIR", str(tmp_path))
    assert len(load_dataset("mnist", "test", download=False)) == 10


# ----------------------------------------------------------------------------------------------------------------
# digits


def test_digits_shapes_levels_and_split_sizes():
    splits = all_splits("digits")
    assert {s: len(d) for s, d in splits.items()} == {"train": 1297, "valid": 200, "test": 300}
    for split, d in splits.items():
        assert isinstance(d, ImageData) and d.split == split
        assert d.images.dtype == torch.uint8 and d.image_shape == (1, 8, 8)
        assert d.levels == 17 and d.num_classes == 10 and int(d.images.max()) <= 16
        assert d.labels.dtype == torch.int64 and d.labels.shape == (len(d),)
    # Together the splits are exactly scikit-learn's 1797 images, each once (compared as a multiset).
    from sklearn.datasets import load_digits

    bunch = load_digits()
    full = sorted(bytes(img) + bytes([t]) for img, t in zip(bunch.images.astype(np.uint8), bunch.target))
    ours = sorted(bytes(img.numpy()) + bytes([int(t)]) for d in splits.values() for img, t in zip(d.images, d.labels))
    assert ours == full
    again = load_dataset("digits", "valid")
    assert torch.equal(again.images, splits["valid"].images) and torch.equal(again.labels, splits["valid"].labels)


# ----------------------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX)


def test_mnist_idx_splits(tmp_path):
    write_idx_set(tmp_path / "mnist", n_train=30, n_test=10)
    splits = all_splits("mnist", data_dir=tmp_path, download=False)
    # valid is min(5000, N // 10) of the training file: 3 of 30 here.
    assert {s: len(d) for s, d in splits.items()} == {"train": 27, "valid": 3, "test": 10}
    for d in splits.values():
        assert d.images.dtype == torch.uint8 and d.image_shape == (1, 28, 28)
        assert d.levels == 256 and d.num_classes == 10
        assert d.labels.tolist() == [t % 10 for t in tags(d.images)]  # labels travel with their images
    assert_disjoint_cover([splits["train"], splits["valid"]], range(30))
    assert tags(splits["test"].images) == list(range(1000, 1010))
    again = load_dataset("mnist", "train", data_dir=tmp_path, download=False)
    assert torch.equal(again.images, splits["train"].images)


def test_fashion_mnist_is_found_in_the_system_directory(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    write_idx_set(system, n_train=20, n_test=5)
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", (system,))
    d = load_dataset("fashion-mnist", "test", data_dir=tmp_path / "empty", download=False)
    assert d.name == "fashion-mnist" and len(d) == 5 and d.image_shape == (1, 28, 28)
    # A copy in the data directory comes first.
    write_idx_set(tmp_path / "mine" / "fashion-mnist", n_train=20, n_test=7)
    assert len(load_dataset("fashion-mnist", "test", data_dir=tmp_path / "mine", download=False)) == 7


def _truncate_gzip(raw: bytes) -> bytes:
    return gzip.compress(raw)[:-30]


@pytest.mark.parametrize("corrupt", [
    lambda raw: _truncate_gzip(raw),  # the gzip stream stops early
    lambda raw: gzip.compress(raw[:-100]),  # a complete gzip of a cut-off IDX file
    lambda raw: gzip.compress(b"\x00\x00\x0d\x03" + raw[4:]),  # magic says float data
    lambda raw: b"this is not gzip at all",
])
def test_corrupt_idx_file_is_a_data_error_naming_the_file(tmp_path, corrupt):
    write_idx_set(tmp_path / "mnist")
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(corrupt(gzip.decompress(path.read_bytes())))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)


def test_idx_images_and_labels_must_agree(tmp_path):
    write_idx_set(tmp_path / "mnist", n_test=10)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(9, np.uint8))))
    with pytest.raises(DataError, match="labels"):
        load_dataset("mnist", "test", data_dir=tmp_path, download=False)


def test_missing_set_offline_names_files_and_directory(tmp_path, monkeypatch):
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", ())
    with pytest.raises(DataError) as error:
        load_dataset("fashion-mnist", "train", data_dir=tmp_path, download=False)
    message = str(error.value)
    assert "train-images-idx3-ubyte.gz" in message and "train-labels-idx1-ubyte.gz" in message
    assert str(tmp_path / "fashion-mnist") in message and "\n" not in message
    assert "fashion-mnist.s3-website" in message  # where to get them


# ----------------------------------------------------------------------------------------------------------------
# Downloads (file:// URLs)


def serve(monkeypatch, name, server: Path, files, checksums=None):
    """Point the download table for ``name`` at files in ``server``."""
    table = {f: (server.joinpath(f).as_uri(), (checksums or {}).get(f) or md5(server / f)) for f in files}
    monkeypatch.setitem(data.DOWNLOADS, name, table)


def test_download_with_checksum(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "server")
    serve(monkeypatch, "mnist", tmp_path / "server", IDX_FILES)
    d = load_dataset("mnist", "test", data_dir=tmp_path / "data")
    assert len(d) == 10
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(IDX_FILES[2:])
    # sha256 digests work too.
    sha = {f: "sha256:" + hashlib.sha256((tmp_path / "server" / f).read_bytes()).hexdigest() for f in IDX_FILES}
    serve(monkeypatch, "mnist", tmp_path / "server", IDX_FILES, sha)
    assert len(load_dataset("mnist", "train", data_dir=tmp_path / "data2")) == 27


def test_download_with_wrong_checksum_keeps_nothing(tmp_path, monkeypatch):
    write_idx_set(tmp_path / "server")
    serve(monkeypatch, "mnist", tmp_path / "server", IDX_FILES, {"t10k-images-idx3-ubyte.gz": "md5:" + "0" * 32})
    with pytest.raises(DataError, match="expected 0000"):
        load_dataset("mnist", "test", data_dir=tmp_path / "data")
    assert not list((tmp_path / "data" / "mnist").iterdir())  # no file under the final name, no partial file


def test_failed_download_is_one_line_naming_the_files(tmp_path, monkeypatch):
    (tmp_path / "server").mkdir()
    serve(monkeypatch, "mnist", tmp_path / "server", IDX_FILES, {f: "md5:" + "0" * 32 for f in IDX_FILES})
    with pytest.raises(DataError) as error:
        load_dataset("mnist", "train", data_dir=tmp_path / "data")
    message = str(error.value)
    assert "download failed" in message and "train-images-idx3-ubyte.gz" in message and "\n" not in message
    assert str(tmp_path / "data" / "mnist") in message


# ----------------------------------------------------------------------------------------------------------------
# Binarized MNIST (amat)


def test_binarized_mnist_amat(tmp_path):
    folder = tmp_path / "binarized-mnist"
    bits = {s: write_amat(folder / f"binarized_mnist_{s}.amat", n, start=k)
            for k, (s, n) in enumerate([("train", 7), ("valid", 3), ("test", 4)])}
    for split, expected in bits.items():
        d = load_dataset("binarized-mnist", split, data_dir=tmp_path, download=False)
        assert d.images.dtype == torch.uint8 and d.images.shape == (len(expected), 1, 28, 28)
        assert d.levels == 2 and d.labels is None and d.num_classes is None
        assert np.array_equal(d.images.numpy().reshape(len(expected), 784), expected)


@pytest.mark.parametrize("text", ["0 1 " * 391 + "0\n", " ".join(["2"] * 784) + "\n", "", "0.5 " * 784 + "\n"])
def test_bad_amat_is_a_data_error(tmp_path, text):
    path = tmp_path / "binarized-mnist" / "binarized_mnist_test.amat"
    path.parent.mkdir()
    path.write_text(text)
    with pytest.raises(DataError, match="binarized_mnist_test.amat"):
        load_dataset("binarized-mnist", "test", data_dir=tmp_path, download=False)


def test_binarized_mnist_download(tmp_path, monkeypatch):
    write_amat(tmp_path / "server" / "binarized_mnist_valid.amat", 5)
    serve(monkeypatch, "binarized-mnist", tmp_path / "server", ["binarized_mnist_valid.amat"])
    assert len(load_dataset("binarized-mnist", "valid", data_dir=tmp_path / "data")) == 5


# ----------------------------------------------------------------------------------------------------------------
# CIFAR-10 (pickles in a tar.gz)


@pytest.mark.parametrize("style", ["python3", "python2"])
def test_cifar10_batches(tmp_path, style):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", per_batch=4, n_test=5, style=style)
    splits = all_splits("cifar10", data_dir=tmp_path, download=False)
    assert {s: len(d) for s, d in splits.items()} == {"train": 18, "valid": 2, "test": 5}
    train_tags = [100 * k + i for k in range(5) for i in range(4)]
    assert_disjoint_cover([splits["train"], splits["valid"]], train_tags)
    test = splits["test"]
    assert test.image_shape == (3, 32, 32) and test.levels == 256 and test.num_classes == 10
    assert test.labels.tolist() == [(500 + i) % 10 for i in range(5)]
    # Rows are the red, green and blue planes in turn.
    row = cifar_batch(5, 500)[b"data"][2]
    assert np.array_equal(test.images[2].numpy(), row.reshape(3, 32, 32))
    assert test.images[2, 1, 0, 0] == row[1024]


def test_cifar10_batches_directly_in_the_set_folder(tmp_path):
    write_cifar(tmp_path / "cifar10")
    assert len(load_dataset("cifar10", "test", data_dir=tmp_path, download=False)) == 5


def test_malicious_cifar_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"echo pwned > {shlex.quote(str(marker))}",)

    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    for payload in [pickle.dumps(Exploit(), protocol=2),
                    pickle.dumps({b"data": Exploit(), b"labels": [0]}, protocol=4)]:
        (folder / "test_batch").write_bytes(payload)
        with pytest.raises(DataError, match="refusing to load .*system"):
            load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
        assert not marker.exists()


@pytest.mark.parametrize("payload", [b"", b"garbage", pickle.dumps([1, 2, 3]),
                                     pickle.dumps({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]})])
def test_corrupt_cifar_batch_is_a_data_error(tmp_path, payload):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    write_cifar(folder)
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match="test_batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)


def test_cifar10_download_and_extract(tmp_path, monkeypatch):
    write_cifar_archive(tmp_path / "server" / "cifar-10-python.tar.gz")
    serve(monkeypatch, "cifar10", tmp_path / "server", ["cifar-10-python.tar.gz"])
    d = load_dataset("cifar10", "train", data_dir=tmp_path / "data")
    assert len(d) == 18 and d.image_shape == (3, 32, 32)
    assert (tmp_path / "data" / "cifar10" / "cifar-10-batches-py" / "test_batch").is_file()


def test_cifar10_archive_with_unsafe_path_is_refused(tmp_path):
    write_cifar_archive(tmp_path / "data" / "cifar10" / "cifar-10-python.tar.gz", extra_member="../../escaped")
    with pytest.raises(DataError, match="unsafe"):
        load_dataset("cifar10", "test", data_dir=tmp_path / "data", download=False)
    assert not (tmp_path / "escaped").exists()


def test_cifar10_missing_offline(tmp_path):
    with pytest.raises(DataError, match=r"missing cifar-10-batches-py/test_batch in .*cifar-10-python\.tar\.gz"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)


# ----------------------------------------------------------------------------------------------------------------
# Downsampled ImageNet (npz)


def test_imagenet32_npz_in_subfolders(tmp_path):
    write_imagenet(tmp_path / "imagenet32", side=32, per_file=3, n_val=4)
    splits = all_splits("imagenet32", data_dir=tmp_path)
    assert {s: len(d) for s, d in splits.items()} == {"train": 27, "valid": 3, "test": 4}
    assert_disjoint_cover([splits["train"], splits["valid"]], range(30))
    for d in splits.values():
        assert d.images.dtype == torch.uint8 and d.image_shape == (3, 32, 32)
        assert d.levels == 256 and d.num_classes == 1000
        assert d.labels.tolist() == [t % 1000 for t in tags(d.images)]  # shifted to count from 0
    test = splits["test"]
    assert tags(test.images) == [5000, 5001, 5002, 5003] and test.labels.tolist() == [0, 1, 2, 3]
    row = tagged_images(4, (3 * 32 * 32,), 5000)[1]
    assert np.array_equal(test.images[1].numpy(), row.reshape(3, 32, 32))  # CHW rows


def test_imagenet64_npz_directly_in_the_set_folder(tmp_path):
    write_imagenet(tmp_path / "imagenet64", side=64, per_file=1, n_val=2, flat=True)
    d = load_dataset("imagenet64", "train", data_dir=tmp_path)
    assert len(d) == 9 and d.image_shape == (3, 64, 64)
    assert load_dataset("imagenet64", "test", data_dir=tmp_path).image_shape == (3, 64, 64)


def test_imagenet_missing_names_files_and_directory(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset("imagenet32", "test", data_dir=tmp_path, download=True)  # no public URL: never downloads
    message = str(error.value)
    assert "Imagenet32_val_npz/val_data.npz" in message and str(tmp_path / "imagenet32") in message


def test_imagenet_wrong_size_or_pickled_arrays_are_data_errors(tmp_path):
    write_imagenet(tmp_path / "imagenet32", side=32, per_file=3, n_val=4)
    val = tmp_path / "imagenet32" / "Imagenet32_val_npz" / "val_data.npz"
    np.savez(val, data=np.zeros((2, 3 * 64 * 64), np.uint8), labels=np.array([1, 2]))
    with pytest.raises(DataError, match="val_data.npz"):
        load_dataset("imagenet32", "test", data_dir=tmp_path)
    np.savez(val, data=np.array([object()] * 2, dtype=object), labels=np.array([1, 2]))
    with pytest.raises(DataError, match="val_data.npz"):
        load_dataset("imagenet32", "test", data_dir=tmp_path)
    val.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="val_data.npz"):
        load_dataset("imagenet32", "test", data_dir=tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# folder:PATH


def write_images(folder: Path, n, size=(6, 6), mode="L", suffix=".png", start=0):
    folder.mkdir(parents=True, exist_ok=True)
    channels = 1 if mode == "L" else 3
    for i in range(n):
        array = tagged_images(1, (size[1], size[0], channels), start + i)[0]
        Image.fromarray(array[..., 0] if mode == "L" else array, mode).save(folder / f"img{start + i:03d}{suffix}")


def test_folder_greyscale_splits(tmp_path):
    write_images(tmp_path / "pics", 12, mode="L")
    (tmp_path / "pics" / "notes.txt").write_text("not an image")
    name = f"folder:{tmp_path / 'pics'}"
    splits = all_splits(name)
    assert {s: len(d) for s, d in splits.items()} == {"train": 10, "valid": 1, "test": 1}
    assert_disjoint_cover(splits.values(), range(12))
    for d in splits.values():
        assert d.name == name and d.image_shape == (1, 6, 6) and d.images.dtype == torch.uint8
        assert d.levels == 256 and d.labels is None and d.num_classes is None
    assert torch.equal(load_dataset(name, "test").images, splits["test"].images)


def test_folder_mixed_modes_become_rgb_and_jpeg_is_read(tmp_path):
    write_images(tmp_path / "pics", 3, mode="L")
    write_images(tmp_path / "pics", 1, mode="RGB", start=3)
    write_images(tmp_path / "pics", 1, mode="RGB", suffix=".JPG", start=4)
    d = load_dataset(f"folder:{tmp_path / 'pics'}", "train")
    assert d.image_shape == (3, 6, 6) and len(d) == 3  # 5 images: 1 test, 1 valid
    # At most two of the three greyscale images are held out; the others appear with the value in all channels.
    names = [p.name for p in data._folder_split(sorted((tmp_path / "pics").iterdir()), "train")]
    grey = [n for n in names if n in ("img000.png", "img001.png", "img002.png")]
    assert grey
    for n in grey:
        expected = np.asarray(Image.open(tmp_path / "pics" / n))
        assert all(np.array_equal(c, expected) for c in d.images[names.index(n)].numpy())


def test_folder_sizes_must_agree_unless_resized(tmp_path):
    write_images(tmp_path / "pics", 3, size=(6, 6), mode="RGB")
    write_images(tmp_path / "pics", 1, size=(10, 7), mode="RGB", start=3)
    name = f"folder:{tmp_path / 'pics'}"
    with pytest.raises(DataError, match="image_size"):
        load_dataset(name)
    d = load_dataset(name, "train", image_size=4)
    assert d.image_shape == (3, 4, 4) and len(d) == 2
    with pytest.raises(DataError, match="positive"):
        load_dataset(name, image_size=0)


def test_folder_problems_are_data_errors(tmp_path):
    with pytest.raises(DataError, match="folder:PATH"):
        load_dataset("folder:")
    with pytest.raises(DataError, match="not a directory"):
        load_dataset(f"folder:{tmp_path / 'nowhere'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no PNG or JPEG"):
        load_dataset(f"folder:{tmp_path / 'empty'}")
    write_images(tmp_path / "one", 1)
    assert len(load_dataset(f"folder:{tmp_path / 'one'}", "train")) == 1  # a tiny folder still trains
    with pytest.raises(DataError, match="too few"):
        load_dataset(f"folder:{tmp_path / 'one'}", "valid")
    write_images(tmp_path / "bad", 3)
    (tmp_path / "bad" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DataError, match="broken.png"):
        load_dataset(f"folder:{tmp_path / 'bad'}")


# ----------------------------------------------------------------------------------------------------------------
# The real Fashion-MNIST, where Debian's package installed it


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file(),
                    reason="dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(tmp_path):
    train = load_dataset("fashion-mnist", "train", data_dir=tmp_path, download=False)
    assert len(train) == 55000 and train.image_shape == (1, 28, 28) and train.labels.bincount().min() > 5000
    assert len(load_dataset("fashion-mnist", "valid", data_dir=tmp_path, download=False)) == 5000
    assert len(load_dataset("fashion-mnist", "test", data_dir=tmp_path, download=False)) == 10000
