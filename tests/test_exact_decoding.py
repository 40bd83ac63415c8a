"""Files of the exact path decode bit for bit on any machine: proved here under every setting this CPU can vary,
and by golden files written once on another machine.

- In subprocesses: decoding (and encoding) under ATEN_CPU_CAPABILITY = default, avx2 and avx512 (those this CPU has),
  with 1 and 2 threads, with mkldnn off, and with float32 and float64 as torch's default dtype: the same images from
  the same file, and the same bytes from the same images, every time.
- Golden files (tests/golden/, made by tests/golden/make_golden.py): tiny compressed files of the shipped models and
  their images. Every run, on whatever CPU the tests get, decodes them, compares, and encodes the images back to the
  very same bytes.
- On a GPU (a CUDA-marked test): files made on the CPU (tiny ones, and the golden files) decode there, and the GPU
  encodes the same bytes.
"""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pixelrnn
from pixelrnn import codec, exact, pretrained
from pixelrnn.checkpoint import save_checkpoint
from pixelrnn.exact import tables
from pixelrnn.exact.recurrent import T_IN, T_OUT
from helpers import tiny_model

GOLDEN = Path(__file__).resolve().parent / "golden"
GOLDEN_MODELS = sorted(p.stem for p in GOLDEN.glob("*.prnn"))


def cpu_capabilities() -> list[str]:
    """The ATEN_CPU_CAPABILITY values this CPU can run: default always, avx2 and avx512 where its flags say so."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    found = ["default"]
    if "avx2" in flags:
        found.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= set(flags):
        found.append("avx512")
    return found


# The child: decode each FILE with its checkpoint CKPT (the integer model computed again each time), and encode the
# decoded images again, under the settings a process can switch (1 and 2 threads, mkldnn off, float64 as the default
# dtype); print, per file and setting, a digest of the images, the labels and a digest of the bytes.
CHILD = """
import hashlib, json, sys
import torch
from pixelrnn import codec
from pixelrnn.checkpoint import load_checkpoint
out = {}
for ckpt, file in zip(sys.argv[1::2], sys.argv[2::2]):
    model = load_checkpoint(ckpt)
    data = open(file, "rb").read()
    for threads, mkldnn, dtype in [(1, True, torch.float32), (2, True, torch.float32), (2, False, torch.float32),
                                   (1, True, torch.float64)]:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn
        torch.set_default_dtype(dtype)
        decoded = codec.decode_file(model, data)
        labels = decoded.labels.tolist() if decoded.labels is not None else None
        again = codec.encode(model, decoded.images, names=decoded.names, labels=decoded.labels)
        out[f"{file} threads={threads} mkldnn={mkldnn} dtype={dtype}"] = [
            hashlib.sha256(decoded.images.numpy().tobytes()).hexdigest(), labels, hashlib.sha256(again).hexdigest()]
print(json.dumps(out))
"""

# Tiny models of every family and its options: colour with classes, learned initial states, a multi-scale model.
TINY_FILES = {
    "pixelcnn": ((3, 4, 4), 16, dict(num_classes=3)),
    "row_lstm": ((1, 4, 4), 8, {}),
    "diagonal_bilstm": ((3, 3, 4), 6, dict(num_classes=2)),
    "multiscale": ((1, 4, 4), 5, dict(base="diagonal_bilstm")),
}


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """Per family: a tiny model saved as a checkpoint, a file of it (with names, and classes where it has them),
    and what the file holds."""
    folder = tmp_path_factory.mktemp("decoding")
    out = {}
    for name, (shape, levels, options) in TINY_FILES.items():
        model = tiny_model(name, shape, levels, dtype=torch.float32, gain=2.0, **options)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Embedding):
                    module.weight.normal_(generator=torch.Generator().manual_seed(1))
        ckpt = save_checkpoint(folder / f"{name}-ckpt", model)
        images = torch.randint(0, levels, (5, *shape), generator=torch.Generator().manual_seed(2))
        labels = torch.tensor([0, 2, 1, 1, 0]) % options["num_classes"] if "num_classes" in options else None
        data = codec.encode(model, images, names=list("abcde"), labels=labels)
        (folder / f"{name}.prnn").write_bytes(data)
        out[name] = (ckpt, folder / f"{name}.prnn", images, labels, data)
    return out


@pytest.mark.parametrize("capability", cpu_capabilities())
def test_files_decode_and_encode_identically_under_every_setting(tiny_files, capability):
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "2"}
    args = [str(p) for ckpt, file, *_ in tiny_files.values() for p in (ckpt, file)]
    result = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, timeout=300,
                            env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(seen) == 4 * len(tiny_files)
    for ckpt, file, images, labels, data in tiny_files.values():
        expected = [hashlib.sha256(images.numpy().tobytes()).hexdigest(),
                    None if labels is None else labels.tolist(), hashlib.sha256(data).hexdigest()]
        mine = {key: value for key, value in seen.items() if key.startswith(f"{file} ")}
        assert len(mine) == 4 and all(value == expected for value in mine.values()), (file, mine)


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_golden_files_decode_to_their_images_and_encode_to_their_bytes(name):
    record = json.loads((GOLDEN / f"{name}.json").read_text())
    data = (GOLDEN / f"{name}.prnn").read_bytes()
    images = torch.from_numpy(np.load(GOLDEN / f"{name}.npy")).long()
    model = pixelrnn.load_pretrained(name)
    integer = exact.for_checkpoint(model, pretrained.resolve(name), write=False)  # the shipped integer model
    assert exact.fingerprint(integer) == record["integer_model"]
    decoded = codec.decode_file(model, data, integer=integer)
    assert torch.equal(decoded.images, images)
    assert (decoded.labels.tolist() if decoded.labels is not None else None) == record["labels"]
    assert (list(decoded.names) if decoded.names else None) == record["names"]
    assert codec.encode(model, images, names=record["names"], labels=decoded.labels, integer=integer) == data


def test_a_shipped_integer_model_is_what_its_weights_give():
    """The stored integer model is a cache: computing it again from the shipped weights gives the same integers."""
    model = pixelrnn.load_pretrained("fashion-pixelcnn")
    stored = exact.load_integer(pretrained.resolve("fashion-pixelcnn") / exact.FILE, exact.FAMILIES)
    assert exact.fingerprint(exact.quantize(model)) == exact.fingerprint(stored)


def test_the_tables_an_lstm_model_stores_are_the_ones_decimal_gives():
    """Table determinism: the sigmoid and tanh tables stored with a shipped integer model equal a fresh computation."""
    stored = exact.load_integer(pretrained.resolve("fashion-row-lstm") / exact.FILE, exact.FAMILIES)
    assert torch.equal(stored.ops["tables.sigmoid"].values, tables.sigmoid_table(T_IN, T_OUT))
    assert torch.equal(stored.ops["tables.tanh"].values, tables.tanh_table(T_IN, T_OUT))


@pytest.mark.cuda
def test_files_made_on_the_cpu_decode_on_the_gpu_and_back(tiny_files):
    for ckpt, file, images, labels, data in tiny_files.values():
        model = pixelrnn.load_checkpoint(ckpt)
        decoded = codec.decode_file(model, data, device="cuda")
        assert torch.equal(decoded.images, images)
        assert labels is None or torch.equal(decoded.labels, labels)
        assert codec.encode(model, images, names=list("abcde"), labels=labels, device="cuda") == data
    for name in GOLDEN_MODELS:
        model = pixelrnn.load_pretrained(name)
        integer = exact.for_checkpoint(model, pretrained.resolve(name), write=False)
        data = (GOLDEN / f"{name}.prnn").read_bytes()
        decoded = codec.decode_file(model, data, integer=integer, device="cuda")
        assert torch.equal(decoded.images, torch.from_numpy(np.load(GOLDEN / f"{name}.npy")).long())
        assert codec.encode(model, decoded.images, names=decoded.names, labels=decoded.labels, integer=integer,
                            device="cuda") == data
