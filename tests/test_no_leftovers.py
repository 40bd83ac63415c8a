"""A failed command leaves no empty folder behind: not the run folder of `train --out`, nor `decompress -o`'s folder.

What a new run wrote before it failed goes too (it holds no checkpoint, so it cannot be resumed), and so do the
parents made for it; a folder that existed before the command, or a run that reached a checkpoint, is kept.
"""

import pytest

from pixelrnn import train as train_module
from pixelrnn.cli import main
from pixelrnn.errors import ConfigError, no_empty_folders_on_failure

TRAIN = ["train", "--preset", "tiny", "--steps", "4", "--set", "log_every=1", "--quiet", "--device", "cpu"]


def crash_at(monkeypatch, step: int) -> None:
    """Training raises a bug (RuntimeError) when it fetches the batch of ``step``."""
    real = train_module.batch_indices

    def crashing(at, *args):
        if at == step:
            raise RuntimeError("crash")
        return real(at, *args)

    monkeypatch.setattr(train_module, "batch_indices", crashing)


def test_a_train_refused_for_its_data_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELRNN_OFFLINE", "1")
    out = tmp_path / "new" / "sub"
    assert main([*TRAIN, "--data", "cifar10", "--data-dir", str(tmp_path / "nodata"), "--out", str(out)]) == 2
    assert "cifar10: missing" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []  # neither new/sub nor new/, nor the data folder


def test_a_new_run_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path, monkeypatch):
    """It wrote its config and metrics rows, then crashed: the folder and its parent go, with what it wrote."""
    crash_at(monkeypatch, 2)
    assert main([*TRAIN, "--checkpoint-every", "100", "--out", str(tmp_path / "new" / "run")]) == 1  # a bug: 1
    assert sorted(tmp_path.iterdir()) == []


def test_a_run_that_failed_after_a_checkpoint_is_kept(tmp_path, monkeypatch):
    crash_at(monkeypatch, 3)
    run = tmp_path / "new" / "run"
    assert main([*TRAIN, "--checkpoint-every", "2", "--out", str(run)]) == 1
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-000000002"
    assert (run / "metrics.csv").is_file()
    monkeypatch.undo()
    assert main([*TRAIN, "--checkpoint-every", "2", "--out", str(run), "--resume"]) == 0


def test_a_folder_that_was_there_before_is_kept(tmp_path, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    crash_at(monkeypatch, 1)
    assert main([*TRAIN, "--out", str(out)]) == 1
    assert out.is_dir()  # the user's folder, as the failed run left it: it holds no checkpoint, so a new run may start
    monkeypatch.undo()
    assert main([*TRAIN, "--out", str(out)]) == 0


def test_a_failed_decompress_leaves_no_output_folder(tmp_path, capsys):
    bad = tmp_path / "bad.prnn"
    bad.write_bytes(b"garbage, not a compressed file")
    assert main(["decompress", "fashion-pixelcnn", str(bad), "-o", str(tmp_path / "newdir" / "sub")]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.prnn"]


def test_the_helper_removes_only_the_empty_folders_it_made(tmp_path):
    (tmp_path / "a").mkdir()
    with pytest.raises(ConfigError):
        with no_empty_folders_on_failure(tmp_path / "a" / "b" / "c"):
            (tmp_path / "a" / "b" / "c").mkdir(parents=True)
            raise ConfigError("failed")
    assert sorted(tmp_path.iterdir()) == [tmp_path / "a"] and sorted((tmp_path / "a").iterdir()) == []
    with pytest.raises(ConfigError):
        with no_empty_folders_on_failure(tmp_path / "a" / "b" / "c"):
            (tmp_path / "a" / "b" / "c").mkdir(parents=True)
            (tmp_path / "a" / "b" / "kept.txt").write_text("something of value")
            raise ConfigError("failed")
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["kept.txt"]
    with no_empty_folders_on_failure(tmp_path / "x" / "y"):  # no failure: nothing is removed
        (tmp_path / "x" / "y").mkdir(parents=True)
    assert (tmp_path / "x" / "y").is_dir()
