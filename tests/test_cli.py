"""The command line: user mistakes end in one clear line. (The README's and docs' examples run in test_docs.py.)"""

import argparse
import json
import subprocess
import sys

import pytest

import pixelrnn
from pixelrnn import train as train_module
from pixelrnn.checkpoint import load_trainer_state
from pixelrnn.cli import build_parser, main
from pixelrnn.presets import PRESETS, preset
from data_files import write_idx_set

TINY_MODEL = ["--layers", "1", "--hidden", "4", "--head", "8"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with small Fashion-MNIST files in the real IDX format, and no downloads."""
    write_idx_set(tmp_path / "data" / "fashion-mnist", n_train=40, n_test=10)
    monkeypatch.setenv("PIXELRNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PIXELRNN_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


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


TINY_TRAIN = ["--preset", "tiny", "--quiet"]


def test_data_without_preset_uses_its_cpu_preset(workdir, capsys):
    assert main(["train", "--data", "fashion-mnist", "--model", "row_lstm", "--out", "r", "--show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    chosen = preset("fashion-row-lstm")["model_options"]
    assert {k: shown["model_options"][k] for k in chosen} == chosen and shown["precision"] == "auto"
    assert shown["model_options"]["learn_initial_state"] is True  # the defaults are shown too
    assert main(["train", "--data", "digits", "--out", "r", "--steps", "1", "--eval-every", "0", "--quiet",
                 *TINY_MODEL]) == 0
    assert "using preset digits" in capsys.readouterr().out


def test_a_long_run_says_how_long_it_will_take(workdir, capsys, monkeypatch):
    monkeypatch.setattr(train_module, "LONG_RUN_SECONDS", 0)  # every run counts as long here
    assert main(["train", *TINY_TRAIN, "--steps", "8", "--out", "r"]) == 0
    (line,) = [l for l in capsys.readouterr().out.splitlines() if "to go" in l]
    assert "2 steps at" in line and "--time-limit" in line


def test_resuming_a_finished_run_trains_nothing_and_says_so(workdir, capsys):
    assert main(["train", *TINY_TRAIN, "--steps", "2", "--out", "r"]) == 0
    out = capsys.readouterr().out
    assert "finished at step 2 of 2; checkpoint written to r/checkpoints/step-000000002" in out
    assert "to train longer: pixelrnn train --resume --out r --steps 4" in out
    metrics = (workdir / "r" / "metrics.csv").read_text()
    assert main(["train", "--resume", "--out", "r", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and "already reached step 2 of 2: nothing to train" in out
    assert (workdir / "r" / "metrics.csv").read_text() == metrics


def test_time_limit_says_where_the_checkpoint_is_and_how_to_go_on(workdir, capsys):
    assert main(["train", *TINY_TRAIN, "--out", "r", "--time-limit", "1e-6"]) == 0
    out = capsys.readouterr().out
    assert "stopped at the time limit (1e-06 min) at step 1 of 30; checkpoint written to r/checkpoints/step-000000001" \
        in out
    assert "to continue: pixelrnn train --resume --out r --time-limit 1e-06" in out


def test_ctrl_c_saves_and_says_how_to_go_on(workdir, capsys, monkeypatch):
    calls = []

    def interrupt_second_step(logits, x):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(logits, x)

    real = train_module.bits_per_dim
    monkeypatch.setattr(train_module, "bits_per_dim", interrupt_second_step)
    assert main(["train", *TINY_TRAIN, "--out", "my run"]) == 130
    out = capsys.readouterr().out
    assert "interrupted at step 1 of 30; checkpoint written to my run/checkpoints/step-000000001" in out
    assert "to continue: pixelrnn train --resume --out 'my run'" in out
    assert load_trainer_state("my run")["step"] == 1


def test_presets_are_listed_and_shown_in_full(workdir, capsys):
    assert main(["presets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in PRESETS)
    assert main(["presets", "binarized-mnist-pixelcnn"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["data"] == "binarized-mnist" and shown["lr"] == 1e-3  # every field, defaults included
    assert main(["train", "--preset", "binarized-mnist-pixelcnn", "--out", "r", "--show", "--lr", "2e-3"]) == 0
    assert json.loads(capsys.readouterr().out) == {**shown, "lr": 2e-3}
    err = one_line_error(capsys, ["train", "--preset", "mnist-pixelcnn", "--out", "r"])
    assert "--preset binarized-mnist-pixelcnn" in err


def _subcommands():
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return parser, sub.choices


def test_every_flag_has_help_and_shows_its_default():
    parser, commands = _subcommands()
    assert all(name in parser.description for name in commands)
    for name, command in commands.items():
        text = command.format_help()
        for action in command._actions:
            assert action.help, f"pixelrnn {name} {action.option_strings or action.dest} has no help"
            if action.default not in (None, False, argparse.SUPPRESS) and action.option_strings:
                assert f"default: {action.default}" in " ".join(text.split()), (name, action.dest)


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"pixelrnn {pixelrnn.__version__}"


def test_outputs_are_never_overwritten_by_surprise(workdir, capsys):
    assert main(["train", *TINY_TRAIN, "--steps", "1", "--out", "run"]) == 0
    for command in (["sample", "run", "-n", "1"], ["complete", "run", "-n", "1", "-k", "1"]):
        assert main([*command, "--quiet"]) == 0
        wrote = capsys.readouterr().out
        assert "wrote" in wrote and ".png" in wrote
        assert "--force" in one_line_error(capsys, [*command, "--quiet"])
        assert main([*command, "--quiet", "--force"]) == 0


def test_rejected_values_name_the_flag_and_a_good_value(workdir, capsys):
    assert "-n: must be a whole number of at least 1, e.g." in one_line_error(capsys, ["sample", "run", "-n", "0"])
    assert "--epochs: must be a finite number above 0, e.g." in one_line_error(capsys, ["train", "--out", "r", "--epochs", "0"])
    err = one_line_error(capsys, ["train", "--out", "r", "--set", "lr=-1", "--show"])
    assert "lr (--lr) must be positive, e.g. 0.001" in err
    assert "e.g. --set residual=false" in one_line_error(capsys, ["train", "--out", "r", "--set", "residual"])
    err = one_line_error(capsys, ["train", "--out", "r", "--set", "warmup_steps=0", "--set", "log_every=0"])
    assert "log_every (--set log_every=...) must be at least 1, e.g. 20" in err


def test_model_defaults_is_public_and_the_old_name_warns():
    assert "model_defaults" in pixelrnn.__all__
    assert pixelrnn.model_defaults("pixelcnn")["layers"] >= 1
    with pytest.warns(DeprecationWarning, match="model_defaults"):
        assert pixelrnn.model_options("pixelcnn") == pixelrnn.model_defaults("pixelcnn")
