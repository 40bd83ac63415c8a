"""Decode once: a set of many small image files, decoded into one memory-mapped ``.npy`` beside its source.

Decoding the 1.28 million PNGs of downsampled ImageNet takes minutes; mapping the decoded array takes well under a
second. The first load decodes and writes ``NAME.npy`` and a small sidecar ``NAME.npy.json`` that records the
source's size and modification time (for an unpacked folder, the folder's modification time, which changes when
files are added, removed or renamed). A later load maps the array only if the sidecar matches the source as it is
now and the array has the recorded shape; anything else (a changed archive, a truncated or foreign ``.npy``, a
missing or garbled sidecar) is rebuilt, never trusted.

Both files are written to temporary names in the same directory and renamed into place (``os.replace`` is atomic
on POSIX and Windows), array first: a crash at any point leaves either the old pair, or a new array with an old
sidecar that no longer matches, so a half-written cache is never used. Where the directory cannot be written the
images are decoded into memory instead, and one line says so.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .spec import report

FORMAT = 1  # bump when the layout of the array or the sidecar changes: older caches are then rebuilt

# decode(write) feeds each decoded image's bytes to ``write`` and returns (names, notes): one sort key per image
# written, and notes to keep in the sidecar (the skipped files).
Decoder = Callable[[Callable[[bytes], object]], tuple[list[str], dict]]


def fingerprint(source: Path) -> dict:
    """What identifies the version of ``source`` on disk: its size (files only) and modification time."""
    st = source.stat()
    return {"path": source.name, "size": None if source.is_dir() else st.st_size, "mtime_ns": st.st_mtime_ns}


def sidecar(npy: Path) -> Path:
    return npy.with_name(npy.name + ".json")


def load_cached(npy: Path, source: Path, row_shape: tuple[int, ...]) -> tuple[np.ndarray, dict] | None:
    """The cached array of ``source`` (a copy-on-write memory map) and its notes, or None if it cannot be trusted."""
    try:
        meta = json.loads(sidecar(npy).read_text())
        if (not isinstance(meta, dict) or meta.get("format") != FORMAT
                or meta.get("source") != fingerprint(source)):
            return None
        # mode "c" (copy-on-write): writeable to NumPy and torch, so no copy is made, and nothing reaches the file.
        array = np.load(npy, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, EOFError):  # missing, unreadable, truncated or not an .npy at all
        return None
    if array.dtype != np.uint8 or array.shape != (meta.get("images"), *row_shape):
        return None
    return array, meta.get("notes", {})


def decode_cached(npy: Path, source: Path, row_shape: tuple[int, ...], decode: Decoder,
                  what: str) -> tuple[np.ndarray, dict]:
    """Map the cache of ``source``, building it first if it is missing or stale.

    Args:
        npy: Where the cache lives.
        source: The archive or folder it is decoded from.
        row_shape: Shape of one decoded image, e.g. ``(3, 32, 32)``.
        decode: Decodes every image, in the source's order, see :data:`Decoder`.
        what: How to name the source in the line said when the cache cannot be written.

    Returns:
        The images ``(N, *row_shape)`` in sorted order of their names, and the decoder's notes.
    """
    cached = load_cached(npy, source, row_shape)
    if cached is not None:
        return cached
    before = fingerprint(source)
    try:
        fd, raw_name = tempfile.mkstemp(dir=npy.parent, prefix=f".{npy.stem}.", suffix=".raw.part")
    except OSError as e:
        report(f"{what}: cannot write a decoded cache in {npy.parent} ({e.strerror or e}); decoding without one, "
               f"which repeats on every load")
        return _decode_in_memory(decode, row_shape)
    raw_path = Path(raw_name)
    npy_tmp = npy.with_name(f".{npy.name}.{os.getpid()}.part")
    try:
        with os.fdopen(fd, "wb", buffering=1 << 20) as raw:
            names, notes = decode(raw.write)
        rows = np.memmap(raw_path, np.uint8, "r", shape=(len(names), *row_shape)) if names else \
            np.empty((0, *row_shape), np.uint8)
        out = np.lib.format.open_memmap(npy_tmp, mode="w+", dtype=np.uint8, shape=(len(names), *row_shape))
        _sorted_into(out, rows, names)
        out.flush()
        del out, rows  # close the maps before renaming (Windows cannot rename an open file)
        os.replace(npy_tmp, npy)
        meta = {"format": FORMAT, "source": before, "images": len(names), "notes": notes}
        _write_atomic(sidecar(npy), json.dumps(meta, indent=1) + "\n")
    except OSError as e:  # e.g. the disk filled up while writing
        report(f"{what}: could not write the decoded cache {npy} ({e.strerror or e}); decoding without one")
        return _decode_in_memory(decode, row_shape)
    finally:
        raw_path.unlink(missing_ok=True)
        npy_tmp.unlink(missing_ok=True)
    return load_cached(npy, source, row_shape) or _decode_in_memory(decode, row_shape)


def _decode_in_memory(decode: Decoder, row_shape: tuple[int, ...]) -> tuple[np.ndarray, dict]:
    buffer = bytearray()
    names, notes = decode(buffer.extend)
    rows = np.frombuffer(buffer, np.uint8).reshape(len(names), *row_shape)
    out = np.empty_like(rows)
    _sorted_into(out, rows, names)
    return out, notes


def _sorted_into(out: np.ndarray, rows: np.ndarray, names: Iterable[str], chunk: int = 65536) -> None:
    """Write ``rows`` into ``out`` ordered by name, so a set's order does not depend on how its archive was made."""
    order = np.argsort(np.asarray(list(names), dtype=object), kind="stable")
    for start in range(0, len(order), chunk):
        out[start:start + chunk] = rows[order[start:start + chunk]]


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
