"""Load times of the paper's downsampled ImageNet: the first load (decode every PNG, write the cache) and later ones.

Builds a synthetic ``valid_32x32.tar`` of N random 32x32 RGB PNGs (100,000 by default) in a temporary directory,
in the layout of the published archives, and hard-links it as ``train_32x32.tar``. Then it times, through
``load_dataset``:

- the first load of each split, which streams the archive, decodes every PNG and writes the memory-mapped cache;
- later loads, which map the cache (the test split is the whole archive and is mapped without a copy; the train
  split copies its rows, since its validation images are carved out);
- reading every byte of a mapped split once (the cost moved from load time to the first pass over the data).

    taskset -c 1 python benchmarks/imagenet_cache.py [--n 100000] [--side 32] [--repeat 3] [--out table.md]
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pixelrnn.data import load_dataset


def build_archive(path: Path, n: int, side: int) -> None:
    """A tar of ``n`` random ``side`` x ``side`` RGB PNGs under the folder the published archives use."""
    stem = path.name.removesuffix(".tar")
    rng = np.random.default_rng(0)
    with tarfile.open(path, "w") as tar:
        folder = tarfile.TarInfo(stem)
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        for i in range(n):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(buffer, format="PNG")
            info = tarfile.TarInfo(f"{stem}/{i:08d}.png")
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="images in the synthetic archive")
    parser.add_argument("--side", type=int, default=32, choices=(32, 64))
    parser.add_argument("--repeat", type=int, default=3, help="later loads to time (the best is reported)")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    name, tag = f"imagenet{args.side}", f"{args.side}x{args.side}"

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        build_s, _ = timed(lambda: build_archive(folder / f"valid_{tag}.tar", args.n, args.side))
        os.link(folder / f"valid_{tag}.tar", folder / f"train_{tag}.tar")
        archive_mb = (folder / f"valid_{tag}.tar").stat().st_size / 2**20

        rows = []
        for split in ("test", "train"):
            first_s, data = timed(lambda: load_dataset(name, split, data_dir=tmp))
            count = len(data)
            del data
            later = []
            for _ in range(args.repeat):
                seconds, data = timed(lambda: load_dataset(name, split, data_dir=tmp))
                later.append(seconds)
            read_s, _ = timed(lambda: int(data.images.sum()))
            rows.append((split, count, first_s, min(later), read_s))
            del data
        cache_mb = (folder / f"valid_{tag}.npy").stat().st_size / 2**20

    lines = [f"{args.n:,} random {tag} RGB PNGs, archive {archive_mb:.0f} MiB, cache {cache_mb:.0f} MiB "
             f"(archive built in {build_s:.1f} s)", "",
             "| split | images | first load (decode + write cache) | later load (best of "
             f"{args.repeat}) | read every byte once |",
             "|---|---:|---:|---:|---:|"]
    for split, count, first_s, later_s, read_s in rows:
        lines.append(f"| {split} | {count:,} | {first_s:.1f} s | {later_s:.3f} s | {read_s:.2f} s |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")


if __name__ == "__main__":
    main()
