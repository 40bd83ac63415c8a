"""Writers of small data files in each real format, for the tests (a few dozen images each).

Each image carries its own index in its first pixels (:func:`tagged_images`), so a test can tell which images ended
up in which split and in what order.
"""

import gzip
import io
import pickle
import pickletools
import struct
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def tagged_images(n, shape, start=0):
    """``n`` random uint8 images whose first two values encode their index (``start + i``)."""
    images = np.random.RandomState(start).randint(0, 256, (n, *shape)).astype(np.uint8)
    flat = images.reshape(n, int(np.prod(shape)))
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


def write_imagenet_npz(folder: Path, side=32, per_file=3, n_val=4, flat=False) -> None:
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


def write_images(folder: Path, n, size=(6, 6), mode="L", suffix=".png", start=0):
    folder.mkdir(parents=True, exist_ok=True)
    channels = 1 if mode == "L" else 3
    for i in range(n):
        array = tagged_images(1, (size[1], size[0], channels), start + i)[0]
        Image.fromarray(array[..., 0] if mode == "L" else array, mode).save(folder / f"img{start + i:03d}{suffix}")


def png_bytes(image: np.ndarray, mode="RGB") -> bytes:
    """One PNG file of a (3, H, W) image (or an (H, W) one for ``mode="L"``)."""
    out = io.BytesIO()
    Image.fromarray(image.transpose(1, 2, 0) if image.ndim == 3 else image, mode).save(out, format="PNG")
    return out.getvalue()


def add_member(tar: tarfile.TarFile, name: str, payload: bytes = b"", kind=tarfile.REGTYPE, link="") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname = kind, len(payload) if kind == tarfile.REGTYPE else 0, link
    tar.addfile(info, io.BytesIO(payload) if kind == tarfile.REGTYPE else None)


def write_png_archive(path: Path, n: int, side=32, start=0, extra=()) -> np.ndarray:
    """A tar in the layout of the paper's downsampled ImageNet, e.g. ``train_32x32.tar`` holding ``train_32x32/``.

    The ``n`` tagged images are added in a shuffled order under zero-padded names, with the folder member first as
    in the published archives; ``extra`` is a list of ``(name, bytes)`` members added among them.

    Returns:
        The images (N, 3, side, side) in the order of their names.
    """
    images = tagged_images(n, (3, side, side), start)
    stem = path.name.removesuffix(".tar")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        add_member(tar, stem + "/", kind=tarfile.DIRTYPE)
        members = [(f"{stem}/{start + i:07d}.png", png_bytes(images[i])) for i in range(n)] + list(extra)
        for k in np.random.RandomState(n).permutation(len(members)):
            add_member(tar, *members[k])
    return images


def write_imagenet_archives(folder: Path, side=32, n_train=30, n_valid=5) -> tuple[np.ndarray, np.ndarray]:
    """``train_SxS.tar`` and ``valid_SxS.tar`` in ``folder``; returns the train and valid images."""
    return (write_png_archive(folder / f"train_{side}x{side}.tar", n_train, side),
            write_png_archive(folder / f"valid_{side}x{side}.tar", n_valid, side, start=5000))
