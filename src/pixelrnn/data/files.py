"""Finding a data set's files, and downloading the missing ones through a checksum.

A named set lives in ``data_dir / name``; a spec may name system directories to search as well (Debian's
``dataset-fashion-mnist`` installs Fashion-MNIST under /usr/share/datasets/fashion-mnist). Missing files are
downloaded where the spec gives a public URL, through a temporary file that is renamed into place only after its
checksum matched, so an interrupted download or two processes downloading at once never leave a half-written file
under the final name. Offline, a missing set is a :class:`~pixelrnn.errors.DataError` naming the files and the
directory to put them in.

The checksum is checked on the downloaded bytes only: files already on disk are checked by their structure
instead, because Debian's Fashion-MNIST package recompressed the .gz files (same images, different md5), and a
structural check is what catches a truncated file anyway.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from ..errors import DataError
from .spec import DataSpec


def missing_error(name: str, missing: list[str], folder: Path, hint: str, failure: str = "") -> DataError:
    return DataError(f"{name}: missing {', '.join(missing)} in {folder}{failure}; {hint} "
                     f"or pass --data-dir (or set PIXELRNN_DATA_DIR)")


def download_hint(spec: DataSpec) -> str:
    urls = sorted({url.rsplit("/", 1)[0] + "/" for url, _ in spec.downloads.values()})
    return f"download them from {', '.join(urls)}"


def locate(spec: DataSpec, folder: Path, files: tuple[str, ...], download: bool) -> dict[str, Path]:
    """Find each file in ``folder`` or a system directory, downloading the missing ones if allowed."""
    found = {}
    for file in files:
        for directory in (folder, *spec.system_dirs):
            if (directory / file).is_file():
                found[file] = directory / file
                break
    missing = [f for f in files if f not in found]
    failure = ""
    if missing and download:
        for file in missing:
            url, checksum = spec.downloads[file]
            failure = try_download(spec.name, url, folder / file, checksum)
            if failure:
                break
            found[file] = folder / file
        missing = [f for f in files if f not in found]
    if missing:
        raise missing_error(spec.name, missing, folder, download_hint(spec), failure)
    return found


def try_download(name: str, url: str, dest: Path, checksum: str) -> str:
    """Download, returning "" or a short reason for a network failure (a checksum mismatch raises)."""
    try:
        download_file(name, url, dest, checksum)
    except (OSError, http.client.HTTPException, ValueError) as e:  # URLError and timeouts are OSErrors
        return f" (download failed: {' '.join(str(e).split())})"  # one line, whatever the error text holds
    return ""


def download_file(name: str, url: str, dest: Path, checksum: str) -> None:
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


def unsafe_member(name: str) -> bool:
    """Whether an archive member's path could point outside the folder it belongs in (absolute, or with ``..``)."""
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":") or ".." in parts


# No header of a published archive (a long name, a pax record) comes near this; tarfile reads such headers whole.
MAX_HEADER_BYTES = 1 << 24


class BoundedReads:
    """A binary file, as tarfile reads it, with a bound on each read and on how far it may go.

    tarfile reads a member's extended header (a long name, a pax record) whole, at the size the archive declares,
    and through a compressed stream it decompresses whatever it is asked to skip. Read through this, a header that
    declares gigabytes, or a small compressed archive that unpacks to gigabytes, is refused in one line before the
    memory or the time is spent.

    Args:
        file: the open file (plain, or a decompressing one such as :class:`gzip.GzipFile`).
        what: the archive's name, for the messages.
        most: the largest single read, in bytes.
        end: the furthest position that may be read or sought to (the unpacked size of the published archive), or
            None for no bound (a plain file ends where it ends).
    """

    def __init__(self, file, what: str, most: int, end: int | None = None):
        self.file, self.what, self.most, self.end = file, what, most, end

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > self.most:
            amount = "an unbounded block" if size is None or size < 0 else f"a block of {size:,} bytes"
            raise DataError(f"{self.what} declares {amount} at byte {self.file.tell():,}, more than any header or "
                            f"member of the published archive; it is not that file (delete it and fetch it again)")
        self._check(self.file.tell() + size)
        return self.file.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0:
            self._check(offset)
        return self.file.seek(offset, whence)

    def tell(self) -> int:
        return self.file.tell()

    def _check(self, position: int) -> None:
        if self.end is not None and position > self.end:
            raise DataError(f"{self.what} unpacks to more than {self.end:,} bytes, more than the published archive; "
                            f"it is not that file (delete it and fetch it again)")
