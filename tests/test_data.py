"""Data loading: every file format, on tiny files written here, plus splits, errors, downloads and pickle safety.

The files are small versions of the real formats. Each image carries its own index in its first pixels, so a test
can tell which images ended up in which split. No network: downloads go to file:// URLs.
"""

import dataclasses
import gzip
import hashlib
import json
import os
import pickle
import shlex
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn import data
from pixelrnn.data import DATASETS, SPLITS, ImageData, dataset_info, default_data_dir, load_dataset
from pixelrnn.data.folder import folder_split
from pixelrnn.errors import DataError

from data_files import (add_member, cifar_batch, idx_bytes, png_bytes, tagged_images, tags, write_amat, write_cifar,
                        write_cifar_archive, write_imagenet_archives, write_imagenet_npz, write_images,
                        write_idx_set, write_png_archive)

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def md5(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


def patch_spec(monkeypatch, name, **changes):
    """Change fields of one registered spec for the duration of a test."""
    monkeypatch.setitem(data.SPECS, name, dataclasses.replace(data.SPECS[name], **changes))


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
                             "imagenet64", "imagenet32-resized", "imagenet64-resized"}
    assert dataset_info("binarized-mnist") == {"image_shape": (1, 28, 28), "levels": 2, "num_classes": None}
    assert dataset_info("imagenet64") == {"image_shape": (3, 64, 64), "levels": 256, "num_classes": None}
    assert dataset_info("imagenet64-resized") == {"image_shape": (3, 64, 64), "levels": 256, "num_classes": 1000}
    assert dataset_info("folder:/nowhere")["image_shape"] is None
    d = load_dataset("digits")
    info = dataset_info("digits")
    assert (d.image_shape, d.levels, d.num_classes) == (info["image_shape"], info["levels"], info["num_classes"])
    with pytest.raises(DataError, match="choose one of digits, mnist"):
        dataset_info("svhn")


def test_a_folder_named_without_its_prefix_gets_the_prefix_suggested(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos").mkdir()
    with pytest.raises(DataError, match="for the images in the folder photos, pass folder:photos"):
        dataset_info("photos")


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
    patch_spec(monkeypatch, "fashion-mnist", system_dirs=(system,))
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
    patch_spec(monkeypatch, "fashion-mnist", system_dirs=())
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
    patch_spec(monkeypatch, name, downloads=table)


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
# Downsampled ImageNet of Chrabaszcz et al. 2017 (npz): imagenet32-resized, imagenet64-resized


def test_imagenet32_resized_npz_in_subfolders(tmp_path):
    write_imagenet_npz(tmp_path / "imagenet32-resized", side=32, per_file=3, n_val=4)
    splits = all_splits("imagenet32-resized", data_dir=tmp_path)
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


def test_imagenet64_resized_npz_directly_in_the_set_folder(tmp_path):
    write_imagenet_npz(tmp_path / "imagenet64-resized", side=64, per_file=1, n_val=2, flat=True)
    d = load_dataset("imagenet64-resized", "train", data_dir=tmp_path)
    assert len(d) == 9 and d.image_shape == (3, 64, 64)
    assert load_dataset("imagenet64-resized", "test", data_dir=tmp_path).image_shape == (3, 64, 64)


def test_imagenet_resized_missing_names_files_and_directory(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset("imagenet32-resized", "test", data_dir=tmp_path, download=True)  # no public URL: never downloads
    message = str(error.value)
    assert "Imagenet32_val_npz/val_data.npz" in message and str(tmp_path / "imagenet32-resized") in message


def test_imagenet_resized_wrong_size_or_pickled_arrays_are_data_errors(tmp_path):
    write_imagenet_npz(tmp_path / "imagenet32-resized", side=32, per_file=3, n_val=4)
    val = tmp_path / "imagenet32-resized" / "Imagenet32_val_npz" / "val_data.npz"
    np.savez(val, data=np.zeros((2, 3 * 64 * 64), np.uint8), labels=np.array([1, 2]))
    with pytest.raises(DataError, match="val_data.npz"):
        load_dataset("imagenet32-resized", "test", data_dir=tmp_path)
    np.savez(val, data=np.array([object()] * 2, dtype=object), labels=np.array([1, 2]))
    with pytest.raises(DataError, match="val_data.npz"):
        load_dataset("imagenet32-resized", "test", data_dir=tmp_path)
    val.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="val_data.npz"):
        load_dataset("imagenet32-resized", "test", data_dir=tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# folder:PATH


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
    names = [p.name for p in folder_split(sorted((tmp_path / "pics").iterdir()), "train")]
    grey = [n for n in names if n in ("img000.png", "img001.png", "img002.png")]
    assert grey
    for n in grey:
        expected = np.asarray(Image.open(tmp_path / "pics" / n))
        assert all(np.array_equal(c, expected) for c in d.images[names.index(n)].numpy())


def test_folder_sizes_must_agree_unless_resized(tmp_path):
    write_images(tmp_path / "pics", 3, size=(6, 6), mode="RGB")
    write_images(tmp_path / "pics", 1, size=(10, 7), mode="RGB", start=3)
    name = f"folder:{tmp_path / 'pics'}"
    with pytest.raises(DataError, match="pass --image-size N"):
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


# ----------------------------------------------------------------------------------------------------------------
# The paper's downsampled ImageNet (tar archives of PNGs): imagenet32, imagenet64


def test_imagenet32_png_archives_pixel_for_pixel_in_a_stable_order(tmp_path):
    train, valid = write_imagenet_archives(tmp_path / "imagenet32", side=32, n_train=30, n_valid=5)
    splits = all_splits("imagenet32", data_dir=tmp_path)
    assert {s: len(d) for s, d in splits.items()} == {"train": 27, "valid": 3, "test": 5}
    for d in splits.values():
        assert d.image_shape == (3, 32, 32) and d.levels == 256 and d.labels is None and d.num_classes is None
    # The test split is the official validation archive, in the order of the member names (the archive holds
    # them shuffled); train and valid are carved from the training archive.
    assert np.array_equal(splits["test"].images.numpy(), valid)
    assert_disjoint_cover([splits["train"], splits["valid"]], range(30))
    for d in (splits["train"], splits["valid"]):
        assert np.array_equal(d.images.numpy(), train[tags(d.images)])
    again = load_dataset("imagenet32", "valid", data_dir=tmp_path)  # from the cache now
    assert torch.equal(again.images, splits["valid"].images)
    assert sorted(p.name for p in (tmp_path / "imagenet32").iterdir()) == [
        "train_32x32.npy", "train_32x32.npy.json", "train_32x32.tar",
        "valid_32x32.npy", "valid_32x32.npy.json", "valid_32x32.tar"]  # no temporary file left behind


def test_imagenet64_unpacked_folders_give_the_archives_order(tmp_path):
    train, _ = write_imagenet_archives(tmp_path / "tar" / "imagenet64", side=64, n_train=12, n_valid=2)
    for name in ("train_64x64.tar", "valid_64x64.tar"):
        with tarfile.open(tmp_path / "tar" / "imagenet64" / name) as tar:
            tar.extractall(tmp_path / "dir" / "imagenet64", filter="data")
    from_tar = load_dataset("imagenet64", "train", data_dir=tmp_path / "tar")
    from_dir = load_dataset("imagenet64", "train", data_dir=tmp_path / "dir")
    assert len(from_dir) == 11 and torch.equal(from_tar.images, from_dir.images)
    assert np.array_equal(from_dir.images.numpy(), train[tags(from_dir.images)])


def test_imagenet_bad_members_are_skipped_with_one_line_naming_them(tmp_path, capsys):
    grey = tagged_images(1, (32, 32))[0]
    extra = [("train_32x32/readme.txt", b"hello"),
             ("train_32x32/small.png", png_bytes(tagged_images(1, (3, 16, 16))[0])),
             ("train_32x32/grey.png", png_bytes(grey, mode="L")),
             ("train_32x32/broken.png", b"\x89PNG\r\n\x1a\n garbage"),
             ("train_32x32/fake.png", b"GIF89a not a png")]
    train = write_png_archive(tmp_path / "imagenet32" / "train_32x32.tar", 20, extra=extra)
    with tarfile.open(tmp_path / "imagenet32" / "train_32x32.tar", "a") as tar:
        add_member(tar, "train_32x32/link.png", kind=tarfile.SYMTYPE, link="0000001.png")
    d = load_dataset("imagenet32", "train", data_dir=tmp_path)
    assert len(d) == 18 and np.array_equal(d.images.numpy(), train[tags(d.images)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "skipped 6 of 26 members" in lines[0] and "32x32 RGB PNGs" in lines[0] and "and 1 more" in lines[0]
    assert ("train_32x32/broken.png (unreadable" in lines[0] and "train_32x32/fake.png (not a PNG)" in lines[0]
            and "train_32x32/grey.png (mode L)" in lines[0] and "train_32x32/link.png (not a regular file)" in lines[0]
            and "train_32x32/readme.txt (not a .png file)" in lines[0])  # the first five by name; small.png counted
    # Said again on later loads, from the cache's record, so it is not lost in the first run's output.
    load_dataset("imagenet32", "train", data_dir=tmp_path)
    assert "skipped 6 of 26" in capsys.readouterr().err


def test_imagenet_archive_of_nothing_usable_is_an_error(tmp_path):
    write_png_archive(tmp_path / "imagenet32" / "valid_32x32.tar", 0, extra=[("valid_32x32/a.txt", b"x")])
    with pytest.raises(DataError, match="holds no 32x32 RGB PNG images"):
        load_dataset("imagenet32", "test", data_dir=tmp_path)


@pytest.mark.parametrize("member", ["../escaped.png", "valid_32x32/../../escaped.png", "/tmp/escaped.png"])
def test_imagenet_member_paths_outside_the_folder_are_refused(tmp_path, member):
    payload = png_bytes(tagged_images(1, (3, 32, 32))[0])
    write_png_archive(tmp_path / "data" / "imagenet32" / "valid_32x32.tar", 3, extra=[(member, payload)])
    with pytest.raises(DataError, match="unsafe member path") as error:
        load_dataset("imagenet32", "test", data_dir=tmp_path / "data")
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in (tmp_path / "data" / "imagenet32").iterdir()) == ["valid_32x32.tar"]
    assert not list(tmp_path.rglob("escaped.png"))


def test_imagenet_cache_is_used_then_rebuilt_when_the_archive_changes(tmp_path, monkeypatch):
    from pixelrnn.data import imagenet

    folder = tmp_path / "imagenet32"
    first = write_png_archive(folder / "valid_32x32.tar", 6)
    assert np.array_equal(load_dataset("imagenet32", "test", data_dir=tmp_path).images.numpy(), first)
    decoded = []
    real = imagenet.decode_png
    monkeypatch.setattr(imagenet, "decode_png", lambda *a: decoded.append(1) or real(*a))
    again = load_dataset("imagenet32", "test", data_dir=tmp_path)
    assert np.array_equal(again.images.numpy(), first) and not decoded  # mapped from the cache, nothing decoded

    second = write_png_archive(folder / "valid_32x32.tar", 4, start=100)  # a different archive: size and mtime
    assert np.array_equal(load_dataset("imagenet32", "test", data_dir=tmp_path).images.numpy(), second)
    assert len(decoded) == 4
    meta = json.loads((folder / "valid_32x32.npy.json").read_text())
    assert meta["images"] == 4 and meta["source"]["size"] == (folder / "valid_32x32.tar").stat().st_size

    # Same size, new modification time: rebuilt too.
    os.utime(folder / "valid_32x32.tar", ns=(0, meta["source"]["mtime_ns"] + 10**9))
    load_dataset("imagenet32", "test", data_dir=tmp_path)
    assert len(decoded) == 8


@pytest.mark.parametrize("damage", [
    lambda npy: npy.write_bytes(npy.read_bytes()[:-100]),  # truncated
    lambda npy: npy.write_bytes(b"not an npy file"),
    lambda npy: np.save(npy, np.zeros((4, 3, 32, 32), np.uint8)),  # a foreign array of another shape
    lambda npy: npy.unlink(),
    lambda npy: npy.with_name(npy.name + ".json").write_text("{garbled"),
])
def test_imagenet_damaged_cache_is_rebuilt_not_trusted(tmp_path, damage):
    images = write_png_archive(tmp_path / "imagenet32" / "valid_32x32.tar", 6)
    load_dataset("imagenet32", "test", data_dir=tmp_path)
    damage(tmp_path / "imagenet32" / "valid_32x32.npy")
    assert np.array_equal(load_dataset("imagenet32", "test", data_dir=tmp_path).images.numpy(), images)
    assert np.array_equal(np.load(tmp_path / "imagenet32" / "valid_32x32.npy"), images)  # and repaired


def test_imagenet_unwritable_data_directory_decodes_without_a_cache(tmp_path, monkeypatch, capsys):
    from pixelrnn.data import cache

    images = write_png_archive(tmp_path / "imagenet32" / "valid_32x32.tar", 5)

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied")  # chmod does not stop root, so refuse the write here

    monkeypatch.setattr(cache.tempfile, "mkstemp", read_only)
    d = load_dataset("imagenet32", "test", data_dir=tmp_path)
    assert np.array_equal(d.images.numpy(), images)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "decoding without" in err[0] and "Permission denied" in err[0]
    assert sorted(p.name for p in (tmp_path / "imagenet32").iterdir()) == ["valid_32x32.tar"]


def test_imagenet_missing_archives_are_one_line_that_says_where_and_no_download(tmp_path):
    with pytest.raises(DataError) as error:
        load_dataset("imagenet64", "train", data_dir=tmp_path, download=True)
    message = str(error.value)
    assert "train_64x64.tar and valid_64x64.tar" in message and str(tmp_path / "imagenet64") in message
    assert "never downloaded" in message and "\n" not in message
    assert not (tmp_path / "imagenet64").exists()


def test_class_labels_are_refused_for_the_unlabelled_imagenet_naming_the_labelled_one():
    assert data.require_labels("imagenet32-resized") == 1000 and data.require_labels("digits") == 10
    with pytest.raises(DataError, match="imagenet32 has no class labels.*imagenet32-resized"):
        data.require_labels("imagenet32")
    with pytest.raises(DataError, match="binarized-mnist has no class labels.*digits, mnist"):
        data.require_labels("binarized-mnist")


# ----------------------------------------------------------------------------------------------------------------
# Data sets through the command line


def test_folder_run_is_stored_absolute_and_evaluates_from_another_directory(tmp_path, monkeypatch, capsys):
    from pixelrnn.cli import main

    write_images(tmp_path / "work" / "scratch" / "myimgs", 12, size=(4, 4))
    monkeypatch.chdir(tmp_path / "work")
    run = str(tmp_path / "run")
    assert main(["train", "--preset", "tiny", "--data", "folder:scratch/myimgs", "--steps", "2", "--out", run,
                 "--quiet"]) == 0
    assert "on folder:scratch/myimgs:" in capsys.readouterr().out  # shown as the user wrote it
    stored = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert stored["data"] == f"folder:{tmp_path / 'work' / 'scratch' / 'myimgs'}"

    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", run, "--quiet"]) == 0
    # A long name keeps its columns apart.
    monkeypatch.chdir(tmp_path / "work")
    assert main(["evaluate", run, "--data", "folder:scratch/myimgs", "--split", "valid", "--quiet"]) == 0
    header, row = capsys.readouterr().out.splitlines()[-3:-1]
    assert row.startswith("folder:scratch/myimgs  valid") and header.index("split") == row.index("valid")


def test_relative_folder_that_is_not_there_says_to_pass_an_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"is not a directory \(relative to .*\); give its absolute path with --data"):
        load_dataset("folder:scratch/myimgs")
    assert data.absolute_name("folder:scratch/x") == f"folder:{tmp_path / 'scratch' / 'x'}"
    assert data.absolute_name("cifar10") == "cifar10" and data.absolute_name("folder:") == "folder:"


def test_class_conditional_on_imagenet32_is_refused_in_one_line(tmp_path, capsys):
    from pixelrnn.cli import main

    assert main(["train", "--preset", "tiny", "--data", "imagenet32", "--class-conditional",
                 "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "imagenet32 has no class labels" in err and "imagenet32-resized" in err
