"""The exact path from the command line: `compress` codes with format 4 (and makes the integer model beside the
checkpoint when it is missing), `decompress` gives back the images and their classes, `quantize` makes the integer
model on its own; `--device` chooses where the integer network runs."""

import csv

import torch

from pixelrnn import codec, exact
from pixelrnn.checkpoint import RunFolder, load_checkpoint
from pixelrnn.cli import main
from pixelrnn.data import load_dataset
from pixelrnn.images import read_images


def test_a_class_conditional_run_compresses_with_its_classes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--class-conditional", "--steps", "2", "--out", str(run),
                 "--quiet"]) == 0
    assert main(["quantize", str(run)]) == 0
    stored = RunFolder(run).latest() / exact.FILE
    assert stored.is_file() and "16-bit weights, 16-bit activations" in capsys.readouterr().out
    # A split brings its labels; the file holds them, and decompress writes them beside the images.
    assert main(["compress", str(run), "--limit", "5", "-o", str(tmp_path / "d.prnn"), "--device", "cpu",
                 "--quiet"]) == 0
    assert "given the classes" in capsys.readouterr().out
    header = codec.read_header((tmp_path / "d.prnn").read_bytes())
    assert header.version == codec.EXACT_VERSION and header.classes == 10
    assert main(["decompress", str(run), str(tmp_path / "d.prnn"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    with open(tmp_path / "out" / "classes.csv") as f:
        rows = list(csv.DictReader(f))
    digits = load_dataset("digits", "test")
    assert [int(r["class"]) for r in rows] == digits.labels[:5].tolist()
    decoded = read_images([tmp_path / "out" / f"{r['name']}.png" for r in rows], (1, 8, 8), 17)
    assert torch.equal(decoded, digits.images[:5].long())
    # Image files get their class from --class; decompress gives it back.
    files = [str(tmp_path / "out" / f"{r['name']}.png") for r in rows[:2]]
    assert main(["compress", str(run), *files, "--class", "3", "-o", str(tmp_path / "f.prnn"), "--quiet"]) == 0
    model = load_checkpoint(run)
    assert codec.decode_file(model, (tmp_path / "f.prnn").read_bytes()).labels.tolist() == [3, 3]
    # Without a class, images of a class-conditional model are refused in one line, and nothing is written.
    assert main(["compress", str(run), *files, "-o", str(tmp_path / "g.prnn")]) == 2
    err = capsys.readouterr().err
    assert "--class N" in err and err.count("\n") == 1 and not (tmp_path / "g.prnn").exists()
    # A second decompress into the same folder needs --force (the classes file too would be replaced).
    assert main(["decompress", str(run), str(tmp_path / "d.prnn"), "-o", str(tmp_path / "out"), "--quiet"]) == 2


def test_compress_makes_the_integer_model_it_needs_and_decodes_with_it(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--steps", "2", "--out", str(run), "--quiet"]) == 0
    folder = RunFolder(run).latest()
    assert not (folder / exact.FILE).exists()
    assert main(["compress", str(run), "--limit", "3", "-o", str(tmp_path / "d.prnn"), "--quiet"]) == 0
    assert (folder / exact.FILE).is_file()  # made, and stored for the next time
    model = load_checkpoint(run)
    integer = exact.load_integer(folder / exact.FILE, exact.FAMILIES)
    header = codec.read_header((tmp_path / "d.prnn").read_bytes())
    assert header.integer == bytes.fromhex(exact.fingerprint(integer))[:8]
    assert exact.fingerprint(exact.quantize(model)) == exact.fingerprint(integer)  # the weights alone decide it
    (folder / exact.FILE).unlink()  # decoding elsewhere, without the stored model: the same integers again
    assert main(["decompress", str(run), str(tmp_path / "d.prnn"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert not (folder / exact.FILE).exists()  # decompress never writes into the run
    assert len(list((tmp_path / "out").glob("*.png"))) == 3
