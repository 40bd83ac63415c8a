"""Training curves: metrics.csv keeps one row per step and cumulative time across resumes; `pixelrnn plot` draws it,
refuses a file that is not one in one line, and writes its picture atomically."""

import csv
import errno
import importlib.util
import os
import time

import pytest

from pixelrnn import train as train_module
from pixelrnn.checkpoint import RunFolder
from pixelrnn.cli import main
from pixelrnn.plot import moving_average, read_metrics

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TRAIN = ["train", "--preset", "tiny", "--steps", "4", "--checkpoint-every", "2", "--set", "log_every=1", "--quiet"]


def rows(run):
    with open(RunFolder(run).metrics, newline="") as f:
        return [row for row in csv.DictReader(f) if row["split"] == "train"]


@pytest.fixture
def resumed_run(tmp_path, monkeypatch):
    """A run that crashed after logging step 3 (checkpoint at step 2), then resumed to its end; each step is slow."""
    run = tmp_path / "run"
    real = train_module.batch_indices
    calls = []

    def slow(step, *args):
        calls.append(step)
        if len(calls) == 4:
            raise RuntimeError("crash")
        time.sleep(0.2)
        return real(step, *args)

    monkeypatch.setattr(train_module, "batch_indices", slow)
    assert main(TRAIN + ["--out", str(run)]) == 1  # an unexpected error: reported as a bug, status 1
    assert [int(r["step"]) for r in rows(run)] == [1, 2, 3]
    calls.clear()
    assert main(TRAIN + ["--out", str(run), "--resume"]) == 0
    return run


def test_no_step_is_logged_twice_after_a_resume(resumed_run):
    assert [int(r["step"]) for r in rows(resumed_run)] == [1, 2, 3, 4]


def test_training_time_is_cumulative_across_a_resume(resumed_run):
    seconds = [float(r["seconds"]) for r in rows(resumed_run)]
    assert seconds == sorted(seconds)
    assert seconds[2] >= 0.6  # three slow steps, two of them before the resume


def test_read_metrics_gives_each_split(resumed_run):
    curves = read_metrics(RunFolder(resumed_run).metrics)
    assert [step for step, _, _ in curves["train"]] == [1, 2, 3, 4]
    assert [step for step, _, _ in curves["valid"]] == [4]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed (pip install 'pixelrnn[plot]')")
def test_plot_writes_a_png(resumed_run, tmp_path, capsys):
    out = tmp_path / "curves.png"
    assert main(["plot", str(resumed_run), str(RunFolder(resumed_run).metrics), "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot", str(resumed_run), "-o", str(out)]) == 2  # exists, and no --force


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert main(["plot", str(tmp_path), "-o", str(tmp_path / "c.png")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "pip install 'pixelrnn[plot]'" in err


def test_the_train_curve_is_drawn_with_its_moving_average():
    assert moving_average([1.0, 2.0, 3.0, 4.0], 2) == [1.0, 1.5, 2.5, 3.5]
    assert moving_average([5.0, 1.0], 1) == [5.0, 1.0]


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed (pip install 'pixelrnn[plot]')")
def test_a_diverged_run_still_plots(tmp_path):
    from pixelrnn.plot import plot_curves
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("step,split,bits_per_dim,images_per_s,lr,seconds\n"
                       "1,train,nan,1,0.1,1\n2,train,3.0,1,0.1,2\n2,valid,inf,,,2\n")
    assert plot_curves({"run": metrics}, tmp_path / "curves.png").stat().st_size > 0


# ----------------------------------------------------------------------------------------------------------------
# Bad metrics files and failed writes: one line naming the file, and no picture (nor a blank one) written

HEADER = b"step,split,bits_per_dim,images_per_s,lr,seconds,nats_per_image\n"
GOOD = HEADER + b"1,train,3.0,10,0.1,1.5,50\n2,train,2.5,10,0.1,3.0,40\n2,valid,2.6,,,3.0,41\n"


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed (pip install 'pixelrnn[plot]')")
@pytest.mark.parametrize("content,expected", [
    (b"", "(it is empty)"),
    (HEADER, "holds no rows yet: nothing to plot"),
    (b"hello, this is some text\nand more text\n", "(its first line has no step, split, bits_per_dim column)"),
    (HEADER + b"1,train,3.0,10,0.1,1,50\n2,tr\0ain,3.0,10,0.1,2,50\n", "(line 3 holds NUL bytes"),
    (b"\0" * 64, "(line 1 holds NUL bytes"),
    (HEADER + b"1,train," + b"9" * 140_000 + b",10,0.1,1,50\n", "(line 2: field larger than field limit (131072))"),
    (b"\xff\xfe\x00\x01\x89PNG binary", "(it is not UTF-8 text)"),
    (HEADER + b"1,train,abc,10,0.1,1,50\n", "(line 2: could not convert string to float: 'abc')"),
    (HEADER + b"x,train,3.0,10,0.1,1,50\n", "(line 2: invalid literal for int()"),
    (HEADER + b"-5,train,3.0,10,0.1,1,50\n", "(line 2: the step is -5)"),
    (HEADER + b"1,train,3.0\n", "(line 2: the row does not have the 7 fields of the first line)"),
    (HEADER + b"1,train,3.0,10,0.1,1,50,extra\n", "(line 2: the row does not have the 7 fields"),
    (HEADER + b"1,test,3.0,10,0.1,1,50\n", "(line 2: the split is 'test', not train or valid)"),
])
def test_plot_refuses_a_bad_metrics_file_in_one_line(tmp_path, capsys, content, expected):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.csv").write_bytes(content)
    out = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path / "run"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and expected in err and str(tmp_path / "run" / "metrics.csv") in err, err
    assert not out.exists()


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed (pip install 'pixelrnn[plot]')")
def test_plot_on_a_full_disk_keeps_the_old_picture_and_leaves_no_file(tmp_path, monkeypatch, capsys):
    metrics = tmp_path / "metrics.csv"
    metrics.write_bytes(GOOD)
    out = tmp_path / "curves.png"
    out.write_bytes(b"the old plot")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full_disk)  # the write of the picture's bytes fails, as on a full disk
        assert main(["plot", str(metrics), "-o", str(out), "--force"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and f"cannot write {out}: the disk is full" in err
    assert out.read_bytes() == b"the old plot" and sorted(p.name for p in tmp_path.iterdir()) == [
        "curves.png", "metrics.csv"]  # no temporary file, nothing half-written
    assert main(["plot", str(metrics), "-o", str(out), "--force"]) == 0  # with room again, --force replaces it
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
