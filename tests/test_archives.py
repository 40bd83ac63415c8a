"""Archives that are bombs, truncated or crafted: each is one line (a DataError) before the memory, time or disk goes.

The paper's downsampled ImageNet is read from plain tar files of PNGs (:mod:`pixelrnn.data.imagenet`) and CIFAR-10
from a tar.gz (:mod:`pixelrnn.data.cifar`). The archives here are a few kilobytes each: the huge sizes they declare
are written into their headers, never onto the disk.
"""

import bz2
import gzip
import lzma
import os
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from pixelrnn.data import load_dataset
from pixelrnn.data.imagenet import MAX_MEMBER_BYTES
from pixelrnn.errors import DataError

from data_files import add_member, png_bytes, tagged_images, write_cifar_archive, write_png_archive

GIB3 = 3 * 2**30
END = bytes(2 * tarfile.BLOCKSIZE)  # the end-of-archive marker


def header(name: str, size: int, kind=tarfile.REGTYPE) -> bytes:
    """A tar header block for ``name`` that declares ``size`` bytes, whatever follows it."""
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def padded(payload: bytes) -> bytes:
    return payload + bytes(-len(payload) % tarfile.BLOCKSIZE)


def valid_tar(tmp_path, n=3) -> Path:
    """The set's folder holding a valid_32x32.tar of ``n`` images."""
    write_png_archive(tmp_path / "imagenet32" / "valid_32x32.tar", n)
    return tmp_path / "imagenet32" / "valid_32x32.tar"


def load_test_split(tmp_path):
    return load_dataset("imagenet32", "test", data_dir=tmp_path)


def refused(tmp_path, match: str) -> str:
    """Load the imagenet32 test split, which must fail with one line matching ``match``; return that line."""
    with pytest.raises(DataError, match=match) as error:
        load_test_split(tmp_path)
    assert "\n" not in str(error.value)
    return str(error.value)


def png_declaring(width: int, height: int) -> bytes:
    """An RGB PNG whose header (with a valid CRC) declares ``width`` x ``height``, holding almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


# ----------------------------------------------------------------------------------------------------------------
# ImageNet (plain tar of PNGs)


@pytest.mark.parametrize("compress,kind", [(gzip.compress, "gzip"), (bz2.compress, "bzip2"), (lzma.compress, "xz")])
def test_a_compressed_archive_is_refused_before_it_is_unpacked(tmp_path, compress, kind):
    """A 3 MB gzip can hold a 3 GB member: the set is published as a plain tar, so a compressed one is not read."""
    payload = padded(header("valid_32x32/0000000.png", GIB3) + b"\0" * 1000) + END
    (tmp_path / "imagenet32").mkdir()
    (tmp_path / "imagenet32" / "valid_32x32.tar").write_bytes(compress(payload))
    line = refused(tmp_path, f"is {kind}-compressed")
    assert "published as a plain tar" in line


def test_a_member_declaring_more_than_the_file_holds_is_a_truncated_archive(tmp_path):
    folder = tmp_path / "imagenet32"
    folder.mkdir()
    good = png_bytes(tagged_images(1, (3, 32, 32))[0])
    (folder / "valid_32x32.tar").write_bytes(padded(header("valid_32x32/a.png", len(good)) + good)
                                             + padded(header("valid_32x32/b.png", GIB3) + b"x" * 100) + END)
    line = refused(tmp_path, "is truncated")
    assert "'valid_32x32/b.png' declares 3,221,225,472 bytes" in line and "fetch it again" in line
    assert "no images" not in line


@pytest.mark.parametrize("cut", ["inside a member", "before the end marker"])
def test_a_truncated_archive_says_so(tmp_path, cut):
    archive = valid_tar(tmp_path, 4)
    data = archive.read_bytes()
    with tarfile.open(archive) as tar:
        last = tar.getmembers()[-1]
    end = last.offset_data + (last.size // 2 if cut == "inside a member" else len(padded(bytes(last.size))))
    archive.write_bytes(data[:end])
    refused(tmp_path, "is truncated")


def test_a_damaged_header_partway_is_not_a_quiet_end_of_the_set(tmp_path):
    archive = valid_tar(tmp_path, 4)
    data = bytearray(archive.read_bytes())
    with tarfile.open(archive) as tar:
        third = tar.getmembers()[3]  # the folder, then the images
    data[third.offset:third.offset + 100] = b"\xff" * 100  # its checksum no longer matches
    archive.write_bytes(bytes(data))
    line = refused(tmp_path, "has a damaged header at byte")
    assert f"{third.offset:,}" in line


def test_a_header_declaring_gigabytes_is_not_read_into_memory(tmp_path):
    """A pax header (a long name, say) is read whole by tarfile: one declaring 3 GB is refused before that read."""
    (tmp_path / "imagenet32").mkdir()
    (tmp_path / "imagenet32" / "valid_32x32.tar").write_bytes(
        padded(header("././@PaxHeader", GIB3, tarfile.XHDTYPE) + b"30 path=" + b"a" * 100) + END)
    refused(tmp_path, "declares a block of 3,221,225,472 bytes")


@pytest.mark.parametrize("member", ["../escaped.png", "valid_32x32/../../escaped.png", "/tmp/escaped.png"])
def test_a_member_climbing_out_refuses_the_archive(tmp_path, member):
    payload = png_bytes(tagged_images(1, (3, 32, 32))[0])
    write_png_archive(tmp_path / "imagenet32" / "valid_32x32.tar", 3, extra=[(member, payload)])
    refused(tmp_path, "unsafe member path")
    assert not list(tmp_path.rglob("escaped.png"))


def test_links_big_members_and_huge_pngs_are_skipped_unread_in_one_line(tmp_path, capsys):
    """Links (symbolic or hard, in or out of the folder) are never followed; a member larger than any PNG of the set
    is not read; a PNG declaring 100000 x 100000 pixels is refused from its header, never opened."""
    archive = tmp_path / "imagenet32" / "valid_32x32.tar"
    images = write_png_archive(archive, 3, extra=[("valid_32x32/huge.png", png_declaring(100_000, 100_000)),
                                                  ("valid_32x32/big.png", bytes(MAX_MEMBER_BYTES + 1))])
    with tarfile.open(archive, "a") as tar:
        add_member(tar, "valid_32x32/passwd.png", kind=tarfile.SYMTYPE, link="/etc/passwd")
        add_member(tar, "valid_32x32/up.png", kind=tarfile.SYMTYPE, link="../../../etc/passwd")
        add_member(tar, "valid_32x32/hard.png", kind=tarfile.LNKTYPE, link="/etc/passwd")
    d = load_test_split(tmp_path)
    assert np.array_equal(d.images.numpy(), images)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "skipped 5 of 8 members" in lines[0]
    assert "valid_32x32/huge.png (100000x100000)" in lines[0]
    assert f"valid_32x32/big.png ({MAX_MEMBER_BYTES + 1:,} bytes, more than a PNG of the set)" in lines[0]
    assert "valid_32x32/passwd.png (not a regular file)" in lines[0]


def test_an_unpacked_folder_does_not_read_a_file_larger_than_a_png(tmp_path, capsys):
    folder = tmp_path / "imagenet32" / "valid_32x32"
    folder.mkdir(parents=True)
    (folder / "0.png").write_bytes(png_bytes(tagged_images(1, (3, 32, 32))[0]))
    with open(folder / "1.png", "wb") as f:
        f.truncate(GIB3)  # sparse: no disk is used
    assert len(load_test_split(tmp_path)) == 1
    assert "valid_32x32/1.png (3,221,225,472 bytes, more than a PNG of the set)" in capsys.readouterr().err


def test_a_bomb_through_the_command_line_is_one_line_and_leaves_no_run_folder(tmp_path):
    """`pixelrnn train --data imagenet32` on a gzip bomb: status 2, one line, no traceback, no run folder made."""
    (tmp_path / "data" / "imagenet32").mkdir(parents=True)
    payload = padded(header("train_32x32/0000000.png", GIB3)) + END
    (tmp_path / "data" / "imagenet32" / "train_32x32.tar").write_bytes(gzip.compress(payload))
    run = tmp_path / "runs" / "x"
    result = subprocess.run([sys.executable, "-m", "pixelrnn", "train", "--preset", "tiny", "--data", "imagenet32",
                             "--data-dir", str(tmp_path / "data"), "--out", str(run), "--quiet", "--device", "cpu"],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "PIXELRNN_OFFLINE": "1"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "is gzip-compressed" in result.stderr, result.stderr
    assert not (tmp_path / "runs").exists()


# ----------------------------------------------------------------------------------------------------------------
# CIFAR-10 (tar.gz of pickled batches)


def cifar_archive(tmp_path, members: bytes) -> Path:
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(gzip.compress(members + END))
    return archive


def refused_cifar(tmp_path, match: str) -> None:
    with pytest.raises(DataError, match=match) as error:
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "cifar10" / "cifar-10-batches-py").exists()  # nothing unpacked, not even the folder


def test_a_cifar_batch_declaring_gigabytes_is_refused_unread(tmp_path):
    cifar_archive(tmp_path, padded(header("cifar-10-batches-py/test_batch", GIB3) + b"x" * 100))
    refused_cifar(tmp_path, "declares 3,221,225,472 bytes, more than a CIFAR-10 batch")


def test_a_cifar_archive_that_unpacks_past_the_published_size_is_refused(tmp_path):
    """A member the reader skips still has to be decompressed past: one declaring 3 GB is refused, not skipped."""
    cifar_archive(tmp_path, padded(header("cifar-10-batches-py/readme.html", GIB3) + b"x" * 100))
    refused_cifar(tmp_path, "unpacks to more than")


def test_a_cifar_archive_of_many_members_is_refused(tmp_path):
    cifar_archive(tmp_path, b"".join(header(f"cifar-10-batches-py/x{i}", 0) for i in range(1001)))
    refused_cifar(tmp_path, "more than 1000 members")


def test_a_cifar_archive_with_an_unsafe_path_unpacks_nothing(tmp_path):
    """The unsafe member comes after the batches: they were unpacked under temporary names, and are all removed."""
    write_cifar_archive(tmp_path / "made" / "cifar-10-python.tar.gz", extra_member="../../escaped")
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "made" / "cifar-10-python.tar.gz").rename(tmp_path / "cifar10" / "cifar-10-python.tar.gz")
    refused_cifar(tmp_path, "unsafe path")
    assert sorted(p.name for p in (tmp_path / "cifar10").iterdir()) == ["cifar-10-python.tar.gz"]


def test_a_truncated_cifar_archive_is_one_line(tmp_path):
    archive = tmp_path / "cifar10" / "cifar-10-python.tar.gz"
    write_cifar_archive(archive)
    archive.write_bytes(archive.read_bytes()[:-200])
    refused_cifar(tmp_path, "is not a readable tar.gz archive")


def test_a_cifar_batch_file_larger_than_a_batch_is_not_unpickled(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with open(folder / "test_batch", "wb") as f:
        f.truncate(GIB3)  # sparse
    with pytest.raises(DataError, match="is 3,221,225,472 bytes, more than a CIFAR-10 batch"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
