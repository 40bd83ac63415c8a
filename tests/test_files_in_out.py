"""Files in, files out: `complete` and `compress` take image files, `decompress` restores their names, and
`evaluate` names its JSON file after the data set.

Every image here is a real PNG written with PIL, so the tests read what a user's files would give.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from pixelrnn import codec
from pixelrnn.checkpoint import RunFolder, load_checkpoint, save_checkpoint
from pixelrnn.cli import main
from pixelrnn.data import load_dataset
from pixelrnn.generate import complete, complete_each
from helpers import tiny_model

LEVELS = 17  # the tiny preset's digits: 8x8 grey images with 17 levels


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny unconditional run and a tiny class-conditional one, both trained on the built-in digits."""
    root = tmp_path_factory.mktemp("files-in-out")
    assert main(["train", "--preset", "tiny", "--steps", "1", "--out", str(root / "run"), "--quiet"]) == 0
    assert main(["train", "--preset", "tiny", "--class-conditional", "--steps", "1", "--out",
                 str(root / "classes"), "--quiet"]) == 0
    return root


def write_png(path, seed: int) -> np.ndarray:
    """An 8x8 grey PNG whose 8-bit values lie on the 17 levels; returns its pixels as written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.random.default_rng(seed).integers(0, LEVELS, (8, 8))
    pixels = np.round(values * 255 / (LEVELS - 1)).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return pixels


def pixels_of(path) -> np.ndarray:
    with Image.open(path) as picture:
        return np.asarray(picture).copy()


def run_cli(capsys, argv) -> tuple[int, str, str]:
    """The exit status, stdout and stderr of one command."""
    status = main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err.strip()


def one_line(capsys, argv) -> str:
    status, _, err = run_cli(capsys, argv)
    assert status == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# complete_each: the batching of `pixelrnn complete`, as one library call.

def test_complete_each_completes_every_image_k_times_in_one_batch():
    model = tiny_model("pixelcnn", (1, 4, 4), 5, num_classes=3)
    images = torch.randint(0, 5, (2, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    known = torch.ones(1, 4, 4, dtype=torch.bool)
    known[:, 2:] = False  # the bottom half is drawn
    y = torch.tensor([2, 0])
    out = complete_each(model, images, known, 3, generator=torch.Generator().manual_seed(1), y=y)
    assert out.shape == (2, 3, 1, 4, 4) and out.dtype == torch.long
    assert torch.equal(out[:, :, known], images[:, None].expand(-1, 3, -1, -1, -1)[:, :, known])
    # The same draws as complete() on the batch of rows (image 0, draw 0), (image 0, draw 1), ...
    batch = images.repeat_interleave(3, dim=0)
    same = complete(model, batch, known, generator=torch.Generator().manual_seed(1), y=y.repeat_interleave(3))
    assert torch.equal(out.flatten(0, 1), same)
    # One label for every image, and one mask per image.
    masks = known.expand(2, 1, 4, 4).clone()
    masks[1] = True
    one = complete_each(model, images, masks, 2, generator=torch.Generator().manual_seed(1), y=1)
    assert torch.equal(one[1], images[1:].expand(2, -1, -1, -1))
    with pytest.raises(Exception, match="at least 1"):
        complete_each(model, images, known, 0, y=y)


# complete: image files, or a split.

def test_complete_takes_image_files(runs, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    write_png(a, 0), write_png(b, 1)
    out = tmp_path / "c.png"
    assert main(["complete", str(runs / "run"), str(a), str(b), "-k", "2", "-o", str(out), "--quiet"]) == 0
    assert "wrote 2 x 2 completions" in capsys.readouterr().out and out.is_file()
    err = one_line(capsys, ["complete", str(runs / "run"), str(a), "--data", "digits", "-o", str(tmp_path / "d.png")])
    assert "not both" in err


def test_a_class_conditional_model_completes_files_only_with_a_class(runs, tmp_path, capsys):
    a = tmp_path / "a.png"
    write_png(a, 2)
    out = tmp_path / "c.png"
    err = one_line(capsys, ["complete", str(runs / "classes"), str(a), "-o", str(out), "--quiet"])
    assert "class-conditional" in err and "--class N" in err and not out.exists()
    assert main(["complete", str(runs / "classes"), str(a), "--class", "3", "-k", "1", "-o", str(out),
                 "--quiet"]) == 0
    assert out.is_file()
    assert "[0, 10)" in one_line(capsys, ["complete", str(runs / "classes"), str(a), "--class", "10", "-o",
                                          str(tmp_path / "e.png"), "--quiet"])
    # --class applies to a split's images too, in place of their labels.
    assert main(["complete", str(runs / "classes"), "--class", "3", "-n", "2", "-k", "1", "-o",
                 str(tmp_path / "split.png"), "--quiet"]) == 0


def test_n_beyond_the_split_warns_and_uses_what_there_is(runs, tmp_path, capsys):
    held = len(load_dataset("digits", "test").images)
    out = tmp_path / "c.png"
    status, stdout, err = run_cli(capsys, ["complete", str(runs / "run"), "--first", str(held - 2), "-n", "5", "-k",
                                           "1", "-o", str(out), "--quiet"])
    assert status == 0 and len(err.splitlines()) == 1 and err.startswith("warning: ") and "holds 2 images" in err
    assert "wrote 2 x 1 completions" in stdout
    err = one_line(capsys, ["complete", str(runs / "run"), "--first", str(held), "-o", str(tmp_path / "d.png")])
    assert f"--first {held} is past the end" in err and f"{held} images" in err


# compress and decompress: names kept.

def test_compress_and_decompress_restore_the_file_names_and_pixels(runs, tmp_path, capsys):
    written = {"one": write_png(tmp_path / "x" / "one.png", 3),
               "two.scan": write_png(tmp_path / "y" / "two.scan.png", 4)}
    inputs = [str(tmp_path / "x" / "one.png"), str(tmp_path / "y" / "two.scan.png")]
    assert main(["compress", str(runs / "run"), *inputs, "-o", str(tmp_path / "f.prnn"), "--quiet"]) == 0
    assert codec.read_header((tmp_path / "f.prnn").read_bytes()).names == ("one", "two.scan")
    assert main(["decompress", str(runs / "run"), str(tmp_path / "f.prnn"), "-o", str(tmp_path / "out"),
                 "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["one.png", "two.scan.png"]
    for name, pixels in written.items():
        assert np.array_equal(pixels_of(tmp_path / "out" / f"{name}.png"), pixels)
    capsys.readouterr()
    # A named output that exists is not replaced without --force.
    before = (tmp_path / "out" / "one.png").read_bytes()
    (tmp_path / "out" / "two.scan.png").unlink()
    err = one_line(capsys, ["decompress", str(runs / "run"), str(tmp_path / "f.prnn"), "-o", str(tmp_path / "out")])
    assert "--force" in err and not (tmp_path / "out" / "two.scan.png").exists()
    assert main(["decompress", str(runs / "run"), str(tmp_path / "f.prnn"), "-o", str(tmp_path / "out"), "--force",
                 "--quiet"]) == 0
    assert (tmp_path / "out" / "one.png").read_bytes() == before and (tmp_path / "out" / "two.scan.png").is_file()


def test_no_names_decompresses_to_numbered_files(runs, tmp_path):
    inputs = [str(tmp_path / "b.png"), str(tmp_path / "a.png")]
    pixels = [write_png(tmp_path / "b.png", 5), write_png(tmp_path / "a.png", 6)]
    assert main(["compress", str(runs / "run"), *inputs, "--no-names", "-o", str(tmp_path / "f.prnn"),
                 "--quiet"]) == 0
    data = (tmp_path / "f.prnn").read_bytes()
    header = codec.read_header(data)
    assert header.version == codec.EXACT_VERSION and header.names is None and data[len(codec.MAGIC) + 1] == 0  # flags
    assert main(["decompress", str(runs / "run"), str(tmp_path / "f.prnn"), "-o", str(tmp_path / "out"),
                 "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["image-00000.png", "image-00001.png"]
    assert np.array_equal(pixels_of(tmp_path / "out" / "image-00000.png"), pixels[0])


def test_two_inputs_of_one_name_are_refused_at_compress_time(runs, tmp_path, capsys):
    write_png(tmp_path / "x" / "a.png", 7), write_png(tmp_path / "y" / "a.png", 8), write_png(tmp_path / "A.png", 9)
    for second in ("y/a.png", "A.png", "x/a.png"):
        err = one_line(capsys, ["compress", str(runs / "run"), str(tmp_path / "x" / "a.png"), str(tmp_path / second),
                                "-o", str(tmp_path / "f.prnn")])
        assert ("same name 'a'" in err or "only in case ('a', 'A')" in err) and "--no-names" in err
        assert not (tmp_path / "f.prnn").exists()
    assert main(["compress", str(runs / "run"), str(tmp_path / "x" / "a.png"), str(tmp_path / "y" / "a.png"),
                 "--no-names", "-o", str(tmp_path / "f.prnn"), "--quiet"]) == 0
    # A name that could not be restored safely elsewhere (a backslash is a folder separator on Windows).
    write_png(tmp_path / "up\\evil.png", 10)
    err = one_line(capsys, ["compress", str(runs / "run"), str(tmp_path / "up\\evil.png"), "-o",
                            str(tmp_path / "g.prnn")])
    assert "directory part" in err and "--no-names" in err and not (tmp_path / "g.prnn").exists()


@pytest.mark.parametrize("name", ["../evil", "/tmp/evil", "..", "a\0b", ""])
def test_decompress_refuses_unsafe_names_and_writes_nothing(runs, tmp_path, capsys, name):
    model = load_checkpoint(runs / "run")
    images = torch.randint(0, LEVELS, (2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    data = codec.encode(model, images, names=["good", "placeholder"])
    # Put the unsafe name in place of the second one, and seal the file again as anyone can.
    h = codec.read_header(data)
    good = codec._varint(4) + b"good"
    start = data.index(good) + len(good)
    bad = name.encode()
    body = data[:start] + codec._varint(len(bad)) + bad + data[h.payload_offset:-codec.DIGEST]
    (tmp_path / "evil.prnn").write_bytes(body + codec._digest(body))
    out = tmp_path / "out"
    err = one_line(capsys, ["decompress", str(runs / "run"), str(tmp_path / "evil.prnn"), "-o", str(out)])
    assert "name 1" in err and not out.exists() and not (tmp_path / "evil.png").exists()


def test_compress_defaults_to_the_model_s_own_data_set(runs, tmp_path, capsys):
    assert main(["compress", str(runs / "run"), "--split", "test", "--limit", "3", "-o", str(tmp_path / "d.prnn"),
                 "--quiet"]) == 0
    assert codec.read_header((tmp_path / "d.prnn").read_bytes()).names is None
    assert main(["decompress", str(runs / "run"), str(tmp_path / "d.prnn"), "-o", str(tmp_path / "out"),
                 "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"image-0000{k}.png" for k in range(3)]
    digits = load_dataset("digits", "test").images[:3]
    for k in range(3):
        expected = np.round(digits[k, 0].numpy().astype(float) * 255 / (LEVELS - 1)).astype(np.uint8)
        assert np.array_equal(pixels_of(tmp_path / "out" / f"image-0000{k}.png"), expected)


def test_a_model_that_records_no_data_set_asks_for_files_or_data_of_its_size(tmp_path, capsys):
    save_checkpoint(tmp_path / "bare", tiny_model("pixelcnn", (1, 4, 4), 4, dtype=torch.float32))
    err = one_line(capsys, ["compress", str(tmp_path / "bare"), "-o", str(tmp_path / "x.prnn")])
    assert "give image files" in err and "--data NAME" in err and "(1, 4, 4)" in err
    assert "digits" not in err and not (tmp_path / "x.prnn").exists()


# evaluate: the JSON file's name.

def test_the_evaluation_file_is_named_after_the_data_set(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.evaluation("digits", "test").name == "eval-digits-test.json"
    assert folder.evaluation("folder:/home/user/x", "test").name == "eval-folder-x-test.json"
    assert folder.evaluation("folder:/home/user/my pics:v2/", "valid").name == "eval-folder-my_pics_v2-valid.json"
    assert folder.evaluation("folder:~/été", "test").name == "eval-folder-_t_-test.json"
    (tmp_path / "here").mkdir()
    assert folder.evaluation(f"folder:{tmp_path / 'here'}/.", "test").name == "eval-folder-here-test.json"


def test_evaluate_on_a_folder_writes_eval_folder_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    (tmp_path / "pictures").mkdir()
    for k in range(12):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(tmp_path / "pictures" / f"{k}.png")
    data = f"folder:{tmp_path / 'pictures'}"
    assert main(["train", "--preset", "tiny", "--data", data, "--steps", "1", "--out", "r", "--quiet"]) == 0
    assert main(["evaluate", "r", "--quiet"]) == 0
    assert "eval-folder-pictures-test.json" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "r").glob("eval-*.json")] == ["eval-folder-pictures-test.json"]


def test_decompress_refuses_a_device_and_presets_refuses_an_empty_name(tmp_path, capsys):
    from pixelrnn.cli import main

    assert main(["decompress", "fashion-pixelcnn", "/dev/zero", "-o", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "/dev/zero is not a regular file" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    assert main(["presets", ""]) == 2
    assert "unknown preset ''" in capsys.readouterr().err


def test_checkpoint_weights_get_the_umask_like_the_other_files(tmp_path):
    import os

    import pixelrnn

    old = os.umask(0o022)
    try:
        pixelrnn.save_checkpoint(tmp_path / "c", pixelrnn.build_model("pixelcnn", (1, 4, 4), 4, layers=1, hidden=4,
                                                                       head=8))
    finally:
        os.umask(old)
    assert {(f.name, f.stat().st_mode & 0o777) for f in (tmp_path / "c").iterdir()} == \
        {("model.safetensors", 0o644), ("config.json", 0o644)}
