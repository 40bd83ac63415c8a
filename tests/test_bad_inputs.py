"""Every mistake a user can make gets one line: bad values, damaged files, full and read-only disks.

A table of cases, each a command line that must be refused with exactly one line on stderr, exit status 2, no
traceback, and no file changed (the bytes of the whole work folder are compared before and after). Most cases run
in-process through ``pixelrnn.cli.main``; one tiny trained run is shared by the module. At the end the suite prints
its tally (cases, one-line refusals, tracebacks, silent passes)::

    PYTHONPATH=src python -m pytest -q tests/test_bad_inputs.py
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import json
import lzma
import os
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import time
import zlib
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from pixelrnn import checkpoint
from pixelrnn.checkpoint import RunFolder
from pixelrnn import fitting
from pixelrnn.cli import main
import faults

OUTCOMES: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def tally(request):
    """Print the module's table once its cases have run."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    total = sum(OUTCOMES.values())
    line = (f"bad inputs: {total} cases, {OUTCOMES['one line']} one-line refusals, {OUTCOMES['traceback']} "
            f"tracebacks, {OUTCOMES['status 0']} silent passes, {OUTCOMES['other']} other")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("")
            reporter.write_line(line)


def run_main(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        return e.code


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for a folder, or a FIFO, which reading would block on)."""
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def refused(capsys, argv: list[str], root: Path | None = None) -> str:
    """Run ``argv``; record and check that it is one line, status 2, no traceback, nothing under ``root`` changed."""
    before = snapshot(root) if root else None
    status = run_main(argv)
    err = capsys.readouterr().err.strip()
    one_line = len(err.splitlines()) == 1
    outcome = ("traceback" if "Traceback" in err else "status 0" if status == 0
               else "one line" if status == 2 and one_line else "other")
    OUTCOMES[outcome] += 1
    assert outcome == "one line", f"status {status}: {err}"
    if root:
        assert snapshot(root) == before, "a refused command changed files"
    return err


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds none: a decompression bomb as PIL sees it."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IEND", b""))


def rewrite_weights(run: Path, change) -> None:
    """Replace the latest checkpoint's weights file by ``change(tensors, metadata)``'s result."""
    file = RunFolder(run).latest() / checkpoint.WEIGHTS
    with checkpoint.safe_open(str(file), framework="pt") as f:
        metadata = f.metadata()
    tensors, metadata = change(load_file(str(file)), dict(metadata))
    save_file(tensors, str(file), metadata=metadata)


def with_sha(tensors, metadata):
    return tensors, {**metadata, "sha256": checkpoint.weights_sha256(tensors)}


def flip_last_byte(run: Path) -> None:
    file = RunFolder(run).latest() / checkpoint.WEIGHTS
    data = bytearray(file.read_bytes())
    data[-1] ^= 0x40
    file.write_bytes(bytes(data))


# How to damage a copy of the trained run, by name.
DAMAGE = {
    "config-bad-json": lambda r: rewrite_weights(r, lambda t, m: (t, {**m, "config": "{not json"})),
    "config-a-list": lambda r: rewrite_weights(r, lambda t, m: (t, {**m, "config": "[1, 2]"})),
    "config-a-string": lambda r: rewrite_weights(r, lambda t, m: (t, {**m, "config": '"pixelcnn"'})),
    "config-bad-values": lambda r: rewrite_weights(r, lambda t, m: (t, {**m, "config": json.dumps(
        {**json.loads(m["config"]), "image_shape": "abc"})})),
    "config-json-corrupt": lambda r: (RunFolder(r).latest() / checkpoint.CONFIG).write_text("{corrupt"),
    "weights-int32": lambda r: rewrite_weights(r, lambda t, m: with_sha({k: v.to(torch.int32) for k, v in t.items()},
                                                                         m)),
    "weights-wrong-shape": lambda r: rewrite_weights(r, lambda t, m: with_sha({k: v.reshape(-1)[:1].clone()
                                                                               for k, v in t.items()}, m)),
    "weights-flipped-byte": flip_last_byte,
    "weights-truncated": lambda r: (RunFolder(r).latest() / checkpoint.WEIGHTS).write_bytes(b"\x10\x00"),
    "train-config-corrupt": lambda r: (r / checkpoint.RUN_CONFIG).write_text("[1, "),
    "trainer-missing": lambda r: (RunFolder(r).latest() / checkpoint.TRAINER).unlink(),
}


def edit_config(**changes):
    """A damage that edits the model config stored with the weights (keeping the weights and their sha256)."""
    return lambda r: rewrite_weights(r, lambda t, m: (t, {**m, "config": json.dumps({**json.loads(m["config"]),
                                                                                     **changes})}))


def edit_config_by(change):
    return lambda r: rewrite_weights(r, lambda t, m: (t, {**m, "config": json.dumps(change(json.loads(m["config"])))}))


def edit_training(**changes):
    """A damage that edits the training section of the checkpoint's config.json (what evaluate reads its data from)."""
    def damage(run: Path) -> None:
        file = RunFolder(run).latest() / checkpoint.CONFIG
        values = json.loads(file.read_text())
        values["train"].update(changes)
        file.write_text(json.dumps(values))
    return damage


def drop_sha(tensors, metadata):
    return tensors, {k: v for k, v in metadata.items() if k != "sha256"}


# A config is JSON anyone can edit: values that would hang a build, ask for terabytes, or read as another type.
HOSTILE = {
    **{f"config-{key}-{value}": edit_config(**{key: value}) for key, value in [
        ("layers", 10**12), ("hidden", 10**12), ("head", 10**12), ("levels", 10**12), ("num_classes", 10**12),
        ("first_kernel", 10**12), ("kernel", 10**6), ("layers", 1.5), ("layers", 0), ("layers", -3), ("layers", "7"),
        ("hidden", True), ("residual", "maybe"), ("residual", 2), ("skip", 1), ("skip", None), ("grouping", 5),
        ("grouping", "diagonal"), ("model", "nosuch"), ("model", 3), ("image_shape", [1, 10**6, 10**6]),
        ("image_shape", [2, 8, 8]), ("image_shape", [1, 8]), ("context_channels", 10**12), ("levels", 1),
    ]},
    "config-one-more-layer": edit_config_by(lambda c: {**c, "layers": c["layers"] + 1}),
    "config-hidden-plus-one": edit_config_by(lambda c: {**c, "hidden": c["hidden"] + 1}),
    "config-head-halved": edit_config_by(lambda c: {**c, "head": c["head"] // 2}),
    "config-other-family": edit_config_by(lambda c: {**c, "model": "row_lstm"}),
    "config-no-levels": edit_config_by(lambda c: {k: v for k, v in c.items() if k != "levels"}),
    "no-sha256": lambda r: rewrite_weights(r, drop_sha),
}
HOSTILE_TRAINING = {
    f"training-{key}-{value}": edit_training(**{key: value}) for key, value in [
        ("data", 5), ("data", ["digits"]), ("data", "nosuch"), ("data_dir", [1]), ("data_dir", 3), ("image_size", "big"),
        ("image_size", 2.5),
    ]
}
DAMAGE.update(HOSTILE)
DAMAGE.update(HOSTILE_TRAINING)


def tar_header(name: str, size: int) -> bytes:
    """A tar header block for ``name`` declaring ``size`` bytes, whatever follows it."""
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.USTAR_FORMAT)


def block(payload: bytes) -> bytes:
    return payload + bytes(-len(payload) % tarfile.BLOCKSIZE)


END_OF_TAR = bytes(2 * tarfile.BLOCKSIZE)
BOMB = block(tar_header("train_32x32/0000000.png", 3 * 2**30)) + END_OF_TAR  # declares 3 GiB, holds nothing


# Archives that are bombs or lies, as the downsampled ImageNet's train_32x32.tar (the set is published as a plain tar).
ARCHIVES = {
    "gzip-bomb": gzip.compress(BOMB), "bzip2-bomb": bz2.compress(BOMB), "xz-bomb": lzma.compress(BOMB),
    "declares-more-than-it-holds": block(tar_header("train_32x32/0000000.png", 10**6)) + b"x" * 512,
    "declares-3-gib": BOMB,
    "truncated-header": block(tar_header("train_32x32/0000000.png", 0))[:300],
    "climbs-out": block(tar_header("../../etc/x.png", 0)) + END_OF_TAR,
    "absolute-path": block(tar_header("/etc/x.png", 0)) + END_OF_TAR,
    "not-a-tar": b"this is not an archive at all" * 40,
    "empty": b"",
}

# metrics.csv files that `pixelrnn plot` cannot draw.
METRICS = {
    "empty": b"", "header-only": b"step,split,bits_per_dim,seconds\n", "text": b"hello\nworld\n",
    "nul": b"step,split,bits_per_dim\n1,train,\x004.0\n", "long-field": b"step,split,bits_per_dim\n1,train," + b"9" * 200_000 + b"\n",
    "bad-number": b"step,split,bits_per_dim\nten,train,4.0\n", "binary": bytes(range(256)) * 8,
    "not-utf8": b"step,split,bits_per_dim\n1,tr\xffain,4.0\n",
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """One tiny trained run, a compressed file and an image of it, damaged copies, and bad files."""
    root = tmp_path_factory.mktemp("bad-inputs")
    run = root / "run"
    assert main(["train", "--preset", "tiny", "--steps", "2", "--out", str(run), "--quiet"]) == 0
    assert main(["compress", str(run), "--data", "digits", "--limit", "2", "-o", str(root / "two.prnn"),
                 "--quiet"]) == 0
    assert main(["decompress", str(run), str(root / "two.prnn"), "-o", str(root / "images"), "--quiet"]) == 0
    for name, damage in DAMAGE.items():
        shutil.copytree(run, root / name)
        damage(root / name)
    (root / "bomb.png").write_bytes(png_header(100_000, 100_000))
    (root / "text.png").write_text("not an image")
    (root / "garbage.prnn").write_bytes(b"PRNN" + bytes(40))
    (root / "truncated.prnn").write_bytes((root / "two.prnn").read_bytes()[:-3])
    shutil.copy(root / "images" / "image-00000.png", root / "ok.png")
    from PIL import Image
    Image.new("L", (9, 9)).save(root / "big.png")
    (root / "a-dir.png").mkdir()
    (root / "exists.png").write_bytes(b"keep")
    for name, payload in ARCHIVES.items():
        (root / f"archive-{name}" / "imagenet32").mkdir(parents=True)
        (root / f"archive-{name}" / "imagenet32" / "train_32x32.tar").write_bytes(payload)
    os.mkfifo(root / "fifo.csv")  # read, it would block for ever
    for name, payload in METRICS.items():
        (root / f"metrics-{name}").mkdir()
        (root / f"metrics-{name}" / "metrics.csv").write_bytes(payload)
    return root


# The cases: (id, argv); {root} is the work folder, {run} the trained run, {new} a folder that must stay absent.
CASES = [
    # train: numbers
    *[(f"train-{flag}={value}", ["train", "--preset", "tiny", "--out", "{new}", flag, value]) for flag, value in [
        ("--lr", "nan"), ("--lr", "inf"), ("--lr", "-1"), ("--lr", "0"), ("--lr", "x"), ("--epochs", "nan"),
        ("--epochs", "0"), ("--epochs", "-inf"), ("--time-limit", "-1"), ("--time-limit", "nan"),
        ("--time-limit", "0"), ("--eval-every", "-1"), ("--eval-every", "1.5"), ("--batch-size", "0"),
        ("--batch-size", "-3"), ("--steps", "0"), ("--steps", "-5"), ("--steps", "1e3"), ("--seed", "-1"),
        ("--seed", "99999999999999999999999"), ("--checkpoint-every", "0"), ("--image-size", "0"),
        ("--layers", "0"), ("--hidden", "-1"), ("--head", "nan"), ("--precision", "fp8"), ("--model", "nosuch"),
        ("--optimizer", "sgd"), ("--preset", "nosuch"), ("--data", "nosuch"), ("--data", "mnist"),
    ]],
    ("train-out-empty", ["train", "--preset", "tiny", "--out", ""]),
    ("train-out-blank", ["train", "--preset", "tiny", "--out", "  "]),
    ("train-resume-nothing", ["train", "--preset", "tiny", "--out", "{new}", "--resume"]),
    ("train-existing-run", ["train", "--preset", "tiny", "--out", "{run}", "--steps", "4"]),
    ("train-resume-other-model", ["train", "--out", "{run}", "--resume", "--hidden", "9"]),
    # train --set: every value read as its option's type
    *[(f"train-set-{item}", ["train", "--preset", "tiny", "--out", "{new}", *extra, "--set", item]) for item, extra in [
        ("kernel=4", []), ("kernel=0", []), ("kernel=-3", []), ("first_kernel=99", []), ("first_kernel=8", []),
        ("kernel=x", []), ("levels=3", []), ("image_shape=[1,8,8]", []), ("residual=nope", ["--model", "row_lstm"]),
        ("residual=2", ["--model", "row_lstm"]), ("skip=", ["--model", "row_lstm"]), ("learn_initial_state=maybe", ["--model", "row_lstm"]),
        ("lr=nan", []), ("lr=inf", []), ("lr=abc", []), ("steps=abc", []), ("steps=0", []), ("grad_clip=-1", []),
        ("warmup_steps=-1", []), ("eval_limit=0", []), ("seed=-1", []), ("seed=1e3", []), ("nosuch=1", []),
        ("noequals", []), ("=3", []), ("hidden=0", []), ("hidden=2.5", []), ("head=true", []),
        ("num_classes=0", []), ("grouping=diagonal", []), ("model_options=1", []), ("lr_schedule=linear", []),
        ("base=x", ["--model", "multiscale"]), ("small=5", ["--model", "multiscale"]),
    ]],
    # evaluate
    *[(f"evaluate-{'='.join(extra)}", ["evaluate", "{run}", *extra, "--quiet"]) for extra in [
        ["--limit", "0"], ["--limit", "-5"], ["--batch-size", "0"], ["--batch-size", "x"], ["--split", "nosuch"],
        ["--data", "nosuch"], ["--data", "mnist"], ["--json", ""], ["--json", "{root}/a-dir.png"],
        ["--precision", "fp8"],
    ]],
    ("evaluate-missing-run", ["evaluate", "{new}"]),
    ("evaluate-empty-run", ["evaluate", ""]),
    ("evaluate-a-file", ["evaluate", "{root}/ok.png"]),
    # sample
    *[(f"sample-{'='.join(extra)}", ["sample", "{run}", *extra, "--quiet"]) for extra in [
        ["-n", "0"], ["-n", "-5"], ["-n", "x"], ["--temperature", "-1"], ["--temperature", "0"],
        ["--temperature", "nan"], ["--temperature", "inf"], ["--seed", "-1"], ["--seed", str(2**70)],
        ["-o", ""], ["-o", "{root}/a-dir.png"], ["-o", "{root}/out.unknown"], ["-o", "{root}/noextension"],
        ["-o", "{root}/exists.png"], ["--class", "3"], ["--per-class"], ["--method", "slow"],
    ]],
    # complete
    *[(f"complete-{'='.join(extra)}", ["complete", "{run}", *extra, "--quiet"]) for extra in [
        ["-n", "0"], ["-n", "-5"], ["-k", "0"], ["--samples", "-1"], ["--first", "-1"], ["--temperature", "nan"],
        ["--seed", "-2"], ["--occlude", "nosuch"], ["--occlude", "box:1,2"], ["--occlude", "box:5,5,1,1"],
        ["--occlude", "{root}/missing.png"], ["--occlude", "{root}/bomb.png"], ["--occlude", "{root}/text.png"],
        ["--occlude", "{root}/big.png"], ["-o", ""], ["-o", "{root}/a-dir.png"], ["--data", "nosuch"],
        ["--split", "nosuch"],
    ]],
    # compress
    *[(f"compress-{'='.join(extra)}", ["compress", "{run}", *extra, "--quiet"]) for extra in [
        ["{root}/ok.png", "--data", "digits", "-o", "{new}.prnn"], ["{root}/missing.png", "-o", "{new}.prnn"], ["{root}/bomb.png", "-o", "{new}.prnn"],
        ["{root}/text.png", "-o", "{new}.prnn"], ["{root}/big.png", "-o", "{new}.prnn"],
        ["{root}/a-dir.png", "-o", "{new}.prnn"], ["{root}/ok.png", "-o", ""],
        ["{root}/ok.png", "-o", "{root}/images"], ["{root}/ok.png", "-o", "{root}/two.prnn"],
        ["--data", "digits", "--limit", "0", "-o", "{new}.prnn"], ["--data", "digits", "--limit", "-5", "-o", "x"],
        ["--data", "nosuch", "-o", "{new}.prnn"],
    ]],
    # decompress
    *[(f"decompress-{'='.join(extra)}", ["decompress", "{run}", *extra, "--quiet"]) for extra in [
        ["{root}/missing.prnn", "-o", "{new}"], ["{root}/garbage.prnn", "-o", "{new}"],
        ["{root}/truncated.prnn", "-o", "{new}"], ["{root}/ok.png", "-o", "{new}"],
        ["{root}/images", "-o", "{new}"], ["{root}/two.prnn", "-o", ""], ["{root}/two.prnn", "-o", "{root}/images"],
        ["{root}/two.prnn", "-o", "{root}/ok.png"],
    ]],
    ("decompress-other-model", ["decompress", "{root}/config-json-corrupt", "{root}/garbage.prnn", "-o", "{new}"]),
    # bench
    *[(f"bench-{'='.join(extra)}", ["bench", *extra]) for extra in [
        ["--steps", "0"], ["--steps", "-1"], ["--batch-size", "0"], ["--warmup", "-1"], ["--set", "kernel=4"],
        ["--set", "first_kernel=99"], ["--set", "levels=3"], ["--set", "residual=nope", "--model", "row_lstm"],
        ["--set", "lr=0.1"], ["--layers", "0"], ["--model", "nosuch"], ["--data", "nosuch"],
        ["--precision", "fp8"],
    ]],
    # presets, and no command at all
    ("presets-nosuch", ["presets", "nosuch"]),
    ("no-command", []),
    ("unknown-command", ["frobnicate"]),
    ("unknown-flag", ["sample", "{run}", "--frobnicate"]),
]

# Damaged checkpoints, through every command that loads one.
LOADERS = {
    "evaluate": ["evaluate", "{ckpt}", "--quiet", "--json", "{new}.json"],
    "sample": ["sample", "{ckpt}", "-n", "1", "-o", "{new}.png", "--quiet"],
    "complete": ["complete", "{ckpt}", "-n", "1", "-k", "1", "-o", "{new}.png", "--quiet"],
    "compress": ["compress", "{ckpt}", "{root}/ok.png", "-o", "{new}.prnn", "--quiet"],
    "decompress": ["decompress", "{ckpt}", "{root}/two.prnn", "-o", "{new}", "--quiet"],
}
MODEL_DAMAGE = [name for name in DAMAGE if name not in ("train-config-corrupt", "trainer-missing", *HOSTILE_TRAINING)]
CASES += [(f"{command}-{damage}", [a.replace("{ckpt}", "{root}/" + damage) for a in argv])
          for damage in MODEL_DAMAGE for command, argv in LOADERS.items()
          if not (damage == "config-json-corrupt" and command in ("sample", "compress", "decompress"))]
# The training section is read where a command needs the data the model was trained on.
CASES += [(f"{command}-{damage}", [a.replace("{ckpt}", "{root}/" + damage) for a in LOADERS[command]])
          for damage in HOSTILE_TRAINING for command in ("evaluate", "complete")]
# One argument asking for more than memory holds: refused with the estimate before anything is allocated.
CASES += [(f"too-large-{'='.join(argv[:1] + argv[2:4])}", argv) for argv in [
    ["sample", "{run}", "-n", "1000000000000", "-o", "{new}.png", "--quiet"],
    ["sample", "{run}", "-n", "1000000000", "--method", "naive", "-o", "{new}.png", "--quiet"],
    ["sample", "{run}", "-n", str(2**62), "-o", "{new}.png", "--quiet"],
    ["complete", "{run}", "-k", "1000000000", "-o", "{new}.png", "--quiet"],
    ["complete", "{run}", "-n", "4", "-k", "100000000", "-o", "{new}.png", "--quiet"],
    ["complete", "{run}", "--first", "100000", "-o", "{new}.png", "--quiet"],
    ["train", "--preset", "tiny", "--hidden", "1000000000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--hidden", "100000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--head", "1000000000000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--layers", "1000000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--layers", "1000000000000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--batch-size", "1000000000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--model", "row_lstm", "--hidden", "10000000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--model", "diagonal_bilstm", "--layers", "100000000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--model", "multiscale", "--set", "small=4", "--hidden", "1000000", "--out", "{new}"],
    ["train", "--preset", "tiny", "--set", "first_kernel=1000001", "--out", "{new}"],
    ["train", "--preset", "tiny", "--class-conditional", "--hidden", "100000000", "--out", "{new}"],
    ["bench", "--hidden", "100000", "--steps", "1"],
    ["bench", "--layers", "100000000", "--steps", "1"],
    ["bench", "--batch-size", "1000000000", "--steps", "1"],
    ["decompress", "{run}", "/dev/zero", "-o", "{new}", "--quiet"],
    ["compress", "{run}", "/dev/zero", "-o", "{new}.prnn", "--quiet"],
]]
CASES += [(f"archive-{name}", ["train", "--preset", "tiny", "--data", "imagenet32", "--data-dir",
                                "{root}/archive-" + name, "--out", "{new}", "--quiet"]) for name in ARCHIVES]
CASES += [(f"plot-{name}", ["plot", "{root}/metrics-" + name, "-o", "{new}.png"]) for name in METRICS]
CASES += [("plot-fifo", ["plot", "{root}/fifo.csv", "-o", "{new}.png"]),
          ("compress-fifo", ["compress", "{run}", "{root}/fifo.csv", "-o", "{new}.prnn", "--quiet"]),
          ("decompress-fifo", ["decompress", "{run}", "{root}/fifo.csv", "-o", "{new}", "--quiet"])]
CASES += [(f"plot-{name}-force", ["plot", "{root}/metrics-" + name, "-o", "{root}/exists.png", "--force"])
          for name in ("empty", "nul", "long-field")]
CASES += [(f"train-resume-{damage}", ["train", "--out", "{root}/" + damage, "--resume", "--steps", "4", "--quiet"])
          for damage in ("train-config-corrupt", "trainer-missing", "weights-flipped-byte", "config-bad-json",
                         "weights-int32")]


def fill(argv: list[str], root: Path) -> list[str]:
    return [a.replace("{root}", str(root)).replace("{run}", str(root / "run")).replace("{new}", str(root / "new"))
            for a in argv]


@pytest.mark.parametrize("argv", [argv for _, argv in CASES], ids=[name for name, _ in CASES])
def test_refused_in_one_line(work, capsys, argv):
    refused(capsys, fill(argv, work), root=work)


def test_no_verify_loads_a_damaged_checkpoint(work, capsys):
    """--no-verify skips the sha256 check: the damaged weights load, as the user asked."""
    out = work / "no-verify.png"
    assert run_main(["sample", str(work / "weights-flipped-byte"), "-n", "1", "-o", str(out), "--quiet",
                     "--no-verify"]) == 0
    out.unlink()


def test_checkpoints_without_a_sha256_load_only_unverified(tmp_path):
    """Weights that record no sha256 cannot be checked: refused, unless the user says --no-verify, which warns."""
    from helpers import tiny_model
    model = tiny_model("pixelcnn", (1, 4, 4), 4, dtype=torch.float32)
    checkpoint.save_checkpoint(tmp_path / "old", model)
    rewrite = tmp_path / "old" / checkpoint.WEIGHTS
    with checkpoint.safe_open(str(rewrite), framework="pt") as f:
        metadata = {k: v for k, v in f.metadata().items() if k != "sha256"}
    save_file(load_file(str(rewrite)), str(rewrite), metadata=metadata)
    with pytest.raises(checkpoint.CheckpointError, match="records no sha256.*--no-verify"):
        checkpoint.load_checkpoint(tmp_path / "old")
    with pytest.warns(checkpoint.UnverifiedWeights, match="records none"):
        assert checkpoint.load_checkpoint(tmp_path / "old", verify=False).config == model.config


def test_set_reads_values_by_their_declared_type():
    from pixelrnn.config import merge, parse_sets
    for text, value in [("False", False), ("false", False), ("NO", False), ("0", False), ("True", True),
                        ("yes", True), ("1", True)]:
        config = merge({}, {"model": "row_lstm"}, parse_sets([f"residual={text}"]))
        assert config.model_options["residual"] is value
    config = merge({}, {}, parse_sets(["lr=0.5", "steps=7", "eval_limit=none", "hidden=4"]))
    assert (config.lr, config.steps, config.eval_limit, config.model_options["hidden"]) == (0.5, 7, None, 4)


def test_stopped_run_names_the_step_of_its_figure(tmp_path, capsys, monkeypatch):
    """A run stopped before its end prints its last validation with the step it was measured at."""
    from pixelrnn import train as train_module
    clock = iter(range(0, 10_000, 1))
    monkeypatch.setattr(train_module.time, "perf_counter", lambda: float(next(clock)))
    status = main(["train", "--preset", "tiny", "--steps", "50", "--eval-every", "2", "--out", str(tmp_path / "r"),
                   "--time-limit", "0.5", "--quiet"])
    out = capsys.readouterr().out
    assert status == 0 and "stopped at the time limit" in out
    validation = [line for line in out.splitlines() if "validation" in line and "bits/dim" in line]
    assert validation and all("at step" in line for line in validation), out


# Real full and read-only disks: a small tmpfs, where this process may mount one.

def _can_mount() -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0 or not shutil.which("mount"):
        return "mounting a tmpfs needs Linux and root"
    return None


@contextmanager
def tmpfs(where: Path, mode: str):
    """A tmpfs at ``where``: "full" (a filler file takes all its space) or "ro" (remounted read-only)."""
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        if mode == "full":
            try:
                with open(where / "filler", "wb") as f:
                    while True:
                        f.write(bytes(4096))
                        f.flush()
            except OSError:  # full
                pass
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


WRITERS = {
    "train": ["train", "--preset", "tiny", "--steps", "2", "--out", "{disk}/run", "--quiet"],
    "evaluate": ["evaluate", "{run}", "--limit", "5", "--json", "{disk}/e.json", "--quiet"],
    "sample": ["sample", "{run}", "-n", "1", "-o", "{disk}/s.png", "--quiet"],
    "complete": ["complete", "{run}", "-n", "1", "-k", "1", "-o", "{disk}/c.png", "--quiet"],
    "compress": ["compress", "{run}", "{root}/ok.png", "-o", "{disk}/x.prnn", "--quiet"],
    "decompress": ["decompress", "{run}", "{root}/two.prnn", "-o", "{disk}/images", "--quiet"],
}


@pytest.mark.skipif(_can_mount() is not None, reason=str(_can_mount()))
@pytest.mark.parametrize("mode", ["full", "ro"])
@pytest.mark.parametrize("command", list(WRITERS))
def test_full_or_read_only_disk(work, capsys, tmp_path, command, mode):
    with tmpfs(tmp_path / "disk", mode) as disk:
        before = snapshot(disk)
        argv = [a.replace("{disk}", str(disk)) for a in fill(WRITERS[command], work)]
        err = refused(capsys, argv, root=work)
        assert "cannot write" in err and ("full" in err or "read-only" in err), err
        after = snapshot(disk)
        if mode == "ro":
            assert after == before
        else:  # what could be written stays (a run's settings); nothing temporary, nothing half-written
            assert not [p for p in after if Path(p).name.startswith(".")], after
            assert all(p in before or p.startswith("run") or p == "images" for p in after), after


# A kill while a checkpoint is being written, then --resume: no stray files, and the same weights as one go.

def test_kill_during_checkpoint_then_resume(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(checkpoint.__file__).parents[1]), "OMP_NUM_THREADS": "1"}
    marker = tmp_path / "saving"
    run = tmp_path / "run"
    argv = [sys.executable, str(Path(__file__).resolve().parent / "faults.py"), "train",
            "--preset", "tiny", "--steps", "6", "--set",
            "checkpoint_every=2", "--out", str(run), "--quiet"]
    child = subprocess.Popen(argv, env={**env, faults.SAVE_HOOK_ENV: f"step-000000004:{marker}"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the save hook never ran"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    checkpoints = run / "checkpoints"
    assert [p.name for p in checkpoints.glob(".step-000000004.tmp-*")], "the kill left no temporary to clean"
    (checkpoints / ".latest.tmp").write_text("step-000000004\n")  # as a kill while replacing the pointer leaves
    assert main(["train", "--out", str(run), "--resume", "--quiet"]) == 0
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-000000004", "step-000000006"]
    assert main(["train", "--preset", "tiny", "--steps", "6", "--set", "checkpoint_every=2", "--out",
                 str(tmp_path / "straight"), "--quiet"]) == 0
    resumed, straight = checkpoint.load_checkpoint(run), checkpoint.load_checkpoint(tmp_path / "straight")
    for name, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform.startswith("win"), reason="needs SIGTERM")
def test_a_signal_during_the_last_checkpoint_does_not_kill_the_run(tmp_path):
    """SIGTERM while the final checkpoint is being written (a torchrun worker gets its parent-death signal after it
    has seen its launcher gone and stopped) only sets the stop flag: the checkpoint is completed, not cut short."""
    env = {**os.environ, "PYTHONPATH": str(Path(checkpoint.__file__).parents[1]), "OMP_NUM_THREADS": "1",
           faults.SIGNAL_IN_SAVE_ENV: "step-000000004"}
    run = tmp_path / "run"
    argv = [sys.executable, str(Path(__file__).resolve().parent / "faults.py"), "train", "--preset", "tiny",
            "--steps", "4", "--set", "checkpoint_every=100", "--out", str(run), "--quiet"]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    checkpoints = run / "checkpoints"
    assert (checkpoints / "latest").read_text().strip() == "step-000000004"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest", "step-000000004"]  # no temporary left
    assert checkpoint.load_checkpoint(run) is not None


def test_checkpoint_folders_get_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        assert main(["train", "--preset", "tiny", "--steps", "1", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    finally:
        os.umask(old)
    folder = RunFolder(tmp_path / "r").latest()
    assert folder.stat().st_mode & 0o777 == 0o755


def test_a_class_conditional_model_is_not_used_without_classes(tmp_path, capsys, monkeypatch):
    """Without its class a class-conditional model scores and codes far worse than it learned: compress of images
    without --class and evaluate on unlabelled images refuse it in one line, instead of printing a misleading
    figure."""
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--class-conditional", "--steps", "2", "--out", str(run),
                 "--quiet"]) == 0
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(10):
        Image.fromarray(np.full((8, 8), 16 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    err = refused(capsys, ["compress", str(run), str(folder / "0.png"), "-o", str(tmp_path / "x.prnn")], tmp_path)
    assert "class-conditional" in err and "--class N" in err
    real_load = fitting.load_dataset

    def unlabelled(*args, **kwargs):  # digits as an unlabelled set of the model's shape and levels would be
        return dataclasses.replace(real_load(*args, **kwargs), labels=None)

    monkeypatch.setattr(fitting, "load_dataset", unlabelled)
    err = refused(capsys, ["evaluate", str(run), "--quiet"], tmp_path)
    assert "no class labels" in err and "--data digits" in err
