"""Old against new recurrent scans, interleaved in one process: a ratio that holds up on a busy machine.

One Row LSTM or Diagonal BiLSTM layer of the benchmark configuration (h = 64, input 16 x 128 x 28 x 28, bf16 autocast,
forward and backward), from the working tree and from git revision ``--base`` (exported to a temporary folder and
imported as the package ``pixelrnn_base``), both with the same weights. The two run alternately (A, B, B, A, ...) on
one thread and are timed in CPU seconds, so a second process on the machine slows both alike; the script prints the
median old/new ratio and its quartiles. It measures ratios, not absolute speed.

    python benchmarks/compare_scans.py [--base main] [--layers row diagonal] [--pairs 40]
"""

from __future__ import annotations

import argparse
import importlib
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from pixelrnn.masks import ColourGroups

MODULES = {"row": ("row_lstm", "RowLSTMLayer", dict(hidden=64, kernel=3)),
           "diagonal": ("diagonal_bilstm", "DiagonalBiLSTMLayer", dict(hidden=64))}


def import_revision(rev: str, folder: Path):
    """The package ``pixelrnn`` of git revision ``rev``, imported as ``pixelrnn_base`` (its imports are relative)."""
    archive = subprocess.run(["git", "archive", rev, "src/pixelrnn"], capture_output=True, check=True).stdout
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(folder, filter="data")
    (folder / "src" / "pixelrnn").rename(folder / "pixelrnn_base")
    sys.path.insert(0, str(folder))
    return importlib.import_module("pixelrnn_base")


def cpu_seconds(layer, x: torch.Tensor) -> float:
    start = time.process_time()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    out.float().sum().backward()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="main", help="the git revision to compare against")
    parser.add_argument("--layers", nargs="+", default=list(MODULES), choices=list(MODULES))
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        import_revision(args.base, Path(folder))
        for kind in args.layers:
            module, cls, options = MODULES[kind]
            old_cls = getattr(importlib.import_module(f"pixelrnn_base.models.{module}"), cls)
            new_cls = getattr(importlib.import_module(f"pixelrnn.models.{module}"), cls)
            torch.manual_seed(0)
            old = old_cls(colours=ColourGroups(1, "interleaved"), **options)
            new = new_cls(colours=ColourGroups(1, "interleaved"), **options)
            new.load_state_dict(old.state_dict())
            x = torch.randn(16, 128, 28, 28, requires_grad=True)
            times = {old: [], new: []}
            for k in range(args.pairs + 1):
                for layer in ((old, new) if k % 2 == 0 else (new, old)):
                    seconds = cpu_seconds(layer, x)
                    if k:  # the first pair warms up
                        times[layer].append(seconds)
            ratios = [a / b for a, b in zip(times[old], times[new])]
            q1, _, q3 = statistics.quantiles(ratios, n=4)
            print(f"{kind}: old {statistics.median(times[old]):.4f} s, new {statistics.median(times[new]):.4f} s "
                  f"(CPU, median of {args.pairs}); old/new {statistics.median(ratios):.3f}, quartiles "
                  f"{q1:.3f}-{q3:.3f}", flush=True)


if __name__ == "__main__":
    main()
