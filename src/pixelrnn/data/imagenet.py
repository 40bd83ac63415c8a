"""``imagenet32`` and ``imagenet64``: the downsampled ImageNet that the PixelRNN paper introduced.

van den Oord, Kalchbrenner and Kavukcuoglu (ICML 2016), section 5: ImageNet resized to 32x32 and 64x64,
1,281,149 training and 49,999 validation images, without labels. It was published as tar archives of PNG files
(TensorFlow Datasets calls it ``downsampled_imagenet``): ``train_32x32.tar`` holds a folder ``train_32x32/`` of
32x32 RGB PNGs, and likewise ``valid_32x32.tar``, ``train_64x64.tar`` and ``valid_64x64.tar``. The paper reports
bits/dim on the validation set (3.86 at 32x32 and 3.63 at 64x64 for the Row LSTM), so ``test`` is that set here,
and ``valid`` is carved from the training set as for the other sets. Not to be confused with the npz set of
Chrabaszcz et al. (2017), which is ``imagenet32-resized`` (:mod:`pixelrnn.data.imagenet_resized`).

The archives are read as they are, member by member, without extracting anything to disk (or their unpacked folders
are read, if that is what the data directory holds). They were published as plain, uncompressed tar files, so every
size in them can be checked against the file's own size before anything is read: a compressed archive (gzip, bzip2,
xz, zstd), which could unpack to any size, is refused, and so is one that declares a member or header larger than
the file holds (a truncated download), or a damaged header partway through (which would otherwise end the set there
in silence). A member path that is absolute or climbs out with ``..`` means the archive is not the published one,
and it is refused. Members that are not PNGs of the right size and mode are skipped, and one line says how many and
which: links and other non-files are never followed, a member larger than any such PNG (:data:`MAX_MEMBER_BYTES`) is
not read, and a PNG's size is read from its header before Pillow decodes it. The images are sorted by member name,
so the order (and so the carved validation split) is the same for the archive and its unpacked folder. Decoding
happens once: see :mod:`pixelrnn.data.cache`. The archives need an ImageNet login, so they are never downloaded.
"""

from __future__ import annotations

import io
import os
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import DataError
from .cache import decode_cached
from .files import MAX_HEADER_BYTES, BoundedReads, unsafe_member
from .spec import DataSpec, Rows, report, take

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SHOWN = 5  # bad members named in the one-line report; the rest are counted
# A published PNG is a few kilobytes (a 64x64 one stored without any compression would be 12.5 kB): a member larger
# than this is not one of them, and is skipped without being read.
MAX_MEMBER_BYTES = 1 << 20
# The first bytes of the compressed formats tarfile would otherwise open.
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _refuse_compressed(archive: Path, head: bytes) -> None:
    kind = next((name for magic, name in COMPRESSED.items() if head.startswith(magic)), None)
    if kind is not None:
        raise DataError(f"{archive} is {kind}-compressed, but {archive.name} is published as a plain tar; "
                        f"decompress it to {archive.name}, or put the published file there")


def _archive_members(archive: Path) -> Iterator[tuple[str, bytes | None, str]]:
    """(name, bytes, "") for each file of a tar archive, or (name, None, why) for a member that is not one."""
    size = archive.stat().st_size
    try:
        with open(archive, "rb") as raw:
            _refuse_compressed(archive, raw.read(6))
            raw.seek(0)
            file = BoundedReads(raw, str(archive), MAX_HEADER_BYTES)
            # "r:", a plain tar: every read of tarfile goes through the bound, and every size can be checked
            # against the file's.
            with tarfile.open(fileobj=file, mode="r:") as tar:
                while (member := tar.next()) is not None:
                    # tarfile keeps every member's header in tar.members; 1.28 million of them would hold about
                    # half a gigabyte that nothing here reads again.
                    tar.members = []
                    if unsafe_member(member.name):
                        raise DataError(f"{archive} holds an unsafe member path {member.name!r}; refusing the "
                                        f"archive (the published one has none)")
                    if member.offset_data + member.size > size:
                        raise DataError(f"{archive} is truncated: its member {member.name!r} declares "
                                        f"{member.size:,} bytes, more than the {size:,}-byte file holds; delete "
                                        f"it and fetch it again")
                    if member.isdir():
                        continue
                    if not member.isfile() or member.issparse():  # a sparse member's zeros are not in the file
                        yield member.name, None, "not a regular file"
                    elif member.size > MAX_MEMBER_BYTES:
                        yield member.name, None, f"{member.size:,} bytes, more than a PNG of the set"
                    else:
                        with tar.extractfile(member) as f:  # into memory only: nothing is written to disk
                            yield member.name, f.read(), ""
                _check_end(archive, raw, tar.offset, size)
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DataError(f"{archive} is not a readable tar archive ({e}); delete it and fetch it again") from None


def _check_end(archive: Path, raw, offset: int, size: int) -> None:
    """tarfile ends quietly where a header is missing or damaged; only an end-of-archive block (zeros) is the end."""
    raw.seek(offset)
    block = raw.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE:
        raise DataError(f"{archive} is truncated: it ends after {size:,} bytes, without the end of the archive; "
                        f"delete it and fetch it again")
    if block.count(0) != tarfile.BLOCKSIZE:
        raise DataError(f"{archive} has a damaged header at byte {offset:,}, where its members stop being "
                        f"readable; delete it and fetch it again")


def _folder_members(folder: Path) -> Iterator[tuple[str, bytes | None, str]]:
    """The files of an unpacked archive, named as in the archive (``train_32x32/name.png``)."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for file in sorted(filenames):
            path = Path(dirpath) / file
            name = path.relative_to(folder.parent).as_posix()
            if not path.is_file():
                yield name, None, "not a regular file"
            elif (size := path.stat().st_size) > MAX_MEMBER_BYTES:
                yield name, None, f"{size:,} bytes, more than a PNG of the set"
            else:
                yield name, path.read_bytes(), ""


def decode_png(payload: bytes, side: int) -> tuple[np.ndarray | None, str]:
    """A ``(3, side, side)`` uint8 image, or None and why the bytes are not a ``side`` x ``side`` RGB PNG."""
    if not payload.startswith(PNG_SIGNATURE):
        return None, "not a PNG"
    # The header (IHDR, the first chunk) says the size and bit depth; read them before Pillow sees the file, so a
    # PNG that declares 100000 x 100000 pixels is never opened, let alone decoded.
    if len(payload) < 26 or payload[12:16] != b"IHDR":
        return None, "unreadable (no PNG header)"
    width, height = int.from_bytes(payload[16:20], "big"), int.from_bytes(payload[20:24], "big")
    if (width, height) != (side, side):
        return None, f"{width}x{height}"
    if payload[24] != 8:
        return None, f"{payload[24]}-bit"  # the published files are 8-bit; Pillow would read 16-bit as 8
    try:
        with Image.open(io.BytesIO(payload), formats=("PNG",)) as im:
            if im.size != (side, side):
                return None, f"{im.width}x{im.height}"
            if im.mode != "RGB":  # the published files are all RGB; anything else is not one of them
                return None, f"mode {im.mode}"
            array = np.asarray(im)  # (H, W, 3); decoding happens here, so a damaged stream fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return None, f"unreadable ({e})"
    return np.ascontiguousarray(array.transpose(2, 0, 1)), ""


def _decoder(members: Callable[[], Iterator[tuple[str, bytes | None, str]]], side: int):
    def decode(write) -> tuple[list[str], dict]:
        names, bad = [], []
        for name, payload, why in members():
            if payload is not None:
                if not name.lower().endswith(".png"):
                    why = "not a .png file"
                else:
                    image, why = decode_png(payload, side)
                    if image is not None:
                        write(image.tobytes())
                        names.append(name)
                        continue
            bad.append(f"{name} ({why})")
        return names, {"skipped": len(bad), "skipped_names": sorted(bad)[:_SHOWN]}
    return decode


def read_png_archive(spec: DataSpec, source: str, folder: Path, download: bool, rows: Rows):
    (archive_name,) = spec.files[source]
    archive = folder / archive_name
    unpacked = folder / archive_name.removesuffix(".tar")
    if archive.is_file():
        src, members = archive, lambda: _archive_members(archive)
    elif unpacked.is_dir():
        src, members = unpacked, lambda: _folder_members(unpacked)
    else:
        names = " and ".join(f for files in spec.files.values() for f in files)
        raise DataError(f"{spec.name}: missing {archive_name} (or its unpacked folder {unpacked.name}/) in {folder}; "
                        f"put {names} there (the paper's downsampled ImageNet, from "
                        f"https://image-net.org/download-images with an ImageNet login; never downloaded "
                        f"automatically), or pass --data-dir (or set PIXELRNN_DATA_DIR)")
    side = spec.shape[1]
    images, notes = decode_cached(folder / f"{unpacked.name}.npy", src, spec.shape, _decoder(members, side),
                                  f"{spec.name}: {src.name}")
    skipped = notes.get("skipped", 0)
    if skipped:
        more = f" and {skipped - _SHOWN} more" if skipped > _SHOWN else ""
        report(f"{spec.name}: skipped {skipped} of {skipped + len(images)} members of {src} that are not "
               f"{side}x{side} RGB PNGs: {', '.join(notes.get('skipped_names', []))}{more}")
    if not len(images):
        raise DataError(f"{spec.name}: {src} holds no {side}x{side} RGB PNG images; is it {archive_name}?")
    return take(rows, images, None)


def _spec(side: int) -> DataSpec:
    return DataSpec(
        f"imagenet{side}", (3, side, side), 256, read_png_archive, valid_size=10000,
        labelled_alternative=f"imagenet{side}-resized",
        files={"train": (f"train_{side}x{side}.tar",), "test": (f"valid_{side}x{side}.tar",)},
        source="van den Oord et al. (2016), tar of PNGs; 1,281,149 train / 49,999 validation, no labels",
    )


IMAGENET32 = _spec(32)
IMAGENET64 = _spec(64)
