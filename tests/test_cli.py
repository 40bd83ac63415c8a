"""The command line: every README command runs, and user mistakes end in one clear line."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from pixelrnn.cli import main
from data_files import write_idx_set

README = Path(__file__).resolve().parent.parent / "README.md"
TINY_MODEL = ["--layers", "1", "--hidden", "4", "--head", "8"]


def readme_commands() -> list[list[str]]:
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line.split("#")[0].strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("pixelrnn ")]


def _drop_flag(args: list[str], flag: str) -> list[str]:
    if flag in args:
        i = args.index(flag)
        return args[:i] + args[i + 2:]
    return args


def shrink(args: list[str]) -> list[str]:
    """The same command on a tiny configuration: few steps, a tiny model, few images."""
    command = args[0]
    if command == "train":
        args = _drop_flag(_drop_flag(args, "--steps"), "--epochs")
        if "--resume" in args:
            return args + ["--steps", "4", "--quiet"]
        for flag in ("--layers", "--hidden", "--head"):
            args = _drop_flag(args, flag)
        return args + TINY_MODEL + ["--steps", "2", "--quiet", "--eval-every", "0"]
    if command == "sample":
        return _drop_flag(args, "-n") + ["-n", "2", "--quiet"]
    if command == "complete":
        return _drop_flag(_drop_flag(args, "-n"), "-k") + ["-n", "2", "-k", "2", "--quiet"]
    if command == "compress":
        return _drop_flag(args, "--limit") + ["--limit", "4", "--quiet"]
    if command == "decompress":
        return args + ["--quiet"]
    if command == "evaluate":
        return args + ["--limit", "12", "--quiet"]
    if command == "bench":
        args = _drop_flag(args, "--batch-size")
        for flag in ("--layers", "--hidden", "--head"):
            args = _drop_flag(args, flag)
        return args + TINY_MODEL + ["--steps", "1", "--warmup", "0", "--batch-size", "2", "--precision", "fp32"]
    return args


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with small Fashion-MNIST files in the real IDX format, and no downloads."""
    write_idx_set(tmp_path / "data" / "fashion-mnist", n_train=40, n_test=10)
    monkeypatch.setenv("PIXELRNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PIXELRNN_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_readme_commands_run(workdir, capsys):
    commands = readme_commands()
    assert {c[0] for c in commands} >= {"train", "evaluate", "sample", "complete", "compress", "decompress", "bench"}
    for args in commands:
        assert main(shrink(args)) == 0, f"`pixelrnn {' '.join(args)}` failed: {capsys.readouterr().err}"
    assert (workdir / "samples.png").is_file() and (workdir / "completions.png").is_file()
    assert len(list((workdir / "decoded").glob("*.png"))) == 4
    assert (workdir / "runs" / "digits" / "eval-digits-test.json").is_file()


def one_line_error(capsys, args, code=2) -> str:
    try:
        status = main(args)
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        status = e.code
    err = capsys.readouterr().err.strip()
    assert status == code
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_missing_data_set(workdir, capsys):
    err = one_line_error(capsys, ["train", "--data", "mnist", "--out", "r", "--steps", "1", "--quiet"])
    assert "train-images-idx3-ubyte.gz" in err and "--data-dir" in err


def test_unknown_model_preset_and_flag(workdir, capsys):
    assert "invalid choice" in one_line_error(capsys, ["train", "--model", "pixelgan", "--out", "r"])
    assert "unknown preset" in one_line_error(capsys, ["train", "--preset", "huge", "--out", "r"])
    assert "unrecognized arguments" in one_line_error(capsys, ["sample", "r", "--colour"])
    assert "has no option" in one_line_error(capsys, ["train", "--out", "r", "--set", "depth=3", "--quiet"])


def test_missing_checkpoint(workdir, capsys):
    assert "no checkpoint" in one_line_error(capsys, ["sample", "nowhere", "-n", "1"])
    assert "no checkpoint" in one_line_error(capsys, ["evaluate", "nowhere"])


def test_wrong_image_size(workdir, capsys):
    assert main(["train", "--preset", "tiny", "--steps", "1", "--out", "run", "--quiet"]) == 0
    err = one_line_error(capsys, ["evaluate", "run", "--data", "fashion-mnist", "--quiet"])
    assert "(1, 28, 28)" in err and "(1, 8, 8)" in err


def test_console_script_exits_cleanly(tmp_path):
    """The installed entry point, as a user runs it: one line on stderr, status 2, no traceback."""
    result = subprocess.run([sys.executable, "-m", "pixelrnn.cli", "sample", str(tmp_path / "none")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("pixelrnn sample: error: no checkpoint")
    assert "Traceback" not in result.stderr


def test_bad_occlusion(workdir, capsys):
    assert main(["train", "--preset", "tiny", "--steps", "1", "--out", "run", "--quiet"]) == 0
    assert "inside the 8x8 image" in one_line_error(capsys, ["complete", "run", "--occlude", "box:0,0,9,9"])
    assert "not a readable PNG mask" in one_line_error(capsys, ["complete", "run", "--occlude", "top-third"])


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python example runs as written (it saves a checkpoint in the working directory)."""
    monkeypatch.chdir(tmp_path)
    (example,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    assert namespace["logp"].shape == (4,) and namespace["completions"].shape == (4, 1, 28, 28)
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
