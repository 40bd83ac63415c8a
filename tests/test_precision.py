"""Precision: "auto" is bf16 only where the device runs it natively; an explicit bf16 that is emulated warns once.

Whether this machine has native bf16 is mocked (``bf16_is_native``, the probe's timings), so that both decisions
are tested on any CPU.
"""

import json

import pytest
import torch

from pixelrnn import precision
from pixelrnn.checkpoint import CONFIG, RunFolder
from pixelrnn.cli import main
from pixelrnn.errors import ConfigError
from pixelrnn.precision import autocast, emulation_warning, resolve_precision


@pytest.fixture
def fresh_probe():
    """The probe's caches emptied before the test and after it, so that a mocked result does not outlive it."""
    precision._native.cache_clear()
    precision._slowdown.cache_clear()
    yield
    precision._native.cache_clear()
    precision._slowdown.cache_clear()


def native(monkeypatch, is_native: bool, slowdown: float = 31.0):
    """Pretend the CPU has (or lacks) native bf16, with bf16 products ``slowdown`` times slower than fp32."""
    monkeypatch.setattr(precision, "bf16_is_native", lambda device: is_native)
    monkeypatch.setattr(precision, "bf16_slowdown", lambda device: slowdown)


@pytest.mark.parametrize("is_native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_is_bf16_only_where_it_is_native(monkeypatch, is_native, expected):
    native(monkeypatch, is_native)
    assert resolve_precision("auto", "cpu") == expected
    for name in ("fp32", "bf16"):  # a precision given by name is kept, native or not
        assert resolve_precision(name, "cpu") == name


def test_resolve_refuses_what_the_device_cannot_run():
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ConfigError, match="must be one of"):
        resolve_precision("fp8", "cpu")


def test_autocast_must_be_given_a_resolved_precision():
    with pytest.raises(ValueError, match="resolve"):
        autocast("auto", "cpu")


def test_the_probe_runs_once_per_device(monkeypatch, fresh_probe):
    calls = []

    def seconds(dtype, device):
        calls.append(dtype)
        return 0.031 if dtype == torch.bfloat16 else 0.001

    monkeypatch.setattr(precision, "_matmul_seconds", seconds)
    assert precision.bf16_slowdown("cpu") == pytest.approx(31.0)
    assert precision.bf16_slowdown(torch.device("cpu")) == pytest.approx(31.0)
    assert calls == [torch.bfloat16, torch.float32]  # one timing of each, kept for the process


@pytest.mark.parametrize("reported, slowdown, expected", [
    (True, 0.5, True),  # AMX: bf16 faster than fp32
    (True, 30.0, False),  # reported, but the timing shows emulation
    (None, 1.2, True),  # torch cannot say: the timing decides
    (None, 30.0, False),
])
def test_the_cpu_decision_is_torchs_word_confirmed_by_timing(monkeypatch, fresh_probe, reported, slowdown, expected):
    monkeypatch.setattr(precision, "_cpu_reports_bf16", lambda: reported)
    monkeypatch.setattr(precision, "bf16_slowdown", lambda device: slowdown)
    assert precision.bf16_is_native("cpu") is expected


def test_a_cpu_that_reports_no_bf16_is_not_timed(monkeypatch, fresh_probe):
    monkeypatch.setattr(precision, "_cpu_reports_bf16", lambda: False)
    monkeypatch.setattr(precision, "_matmul_seconds", lambda dtype, device: pytest.fail("timed a CPU without bf16"))
    assert precision.bf16_is_native("cpu") is False
    assert resolve_precision("auto", "cpu") == "fp32"


def test_the_real_decision_is_one_of_the_two(fresh_probe):
    assert resolve_precision("auto", "cpu") in ("bf16", "fp32")
    assert precision.bf16_slowdown("cpu") > 0


def test_only_an_explicit_emulated_bf16_warns(monkeypatch):
    native(monkeypatch, False, slowdown=31.0)
    line = emulation_warning("bf16", "cpu")
    assert line.startswith("warning: ") and "31x slower than fp32" in line and "AMX" in line
    assert "--precision auto or fp32" in line
    assert emulation_warning("auto", "cpu") is None and emulation_warning("fp32", "cpu") is None
    native(monkeypatch, True)
    assert emulation_warning("bf16", "cpu") is None


def test_train_warns_once_on_stderr_for_an_emulated_bf16(tmp_path, monkeypatch, capsys):
    native(monkeypatch, False, slowdown=31.0)
    assert main(["train", "--preset", "tiny", "--steps", "1", "--precision", "bf16", "--out", str(tmp_path / "r"),
                 "--quiet", "--device", "cpu"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "31x slower" in warnings[0]


@pytest.mark.parametrize("is_native, expected", [(True, "bf16"), (False, "fp32")])
def test_train_resolves_auto_and_the_checkpoint_records_it(tmp_path, monkeypatch, capsys, is_native, expected):
    native(monkeypatch, is_native)
    run = tmp_path / "R"
    assert main(["train", "--preset", "tiny", "--steps", "2", "--out", str(run), "--quiet"]) == 0
    # checkpoints/latest names the newest checkpoint folder
    assert json.loads((RunFolder(run).latest() / CONFIG).read_text())["precision"] == expected
    assert json.loads((run / "train_config.json").read_text())["precision"] == "auto"  # decided again on resume
    out, err = capsys.readouterr()
    assert "warning:" not in err
    why = "bf16 is native here" if is_native else "no native bf16 here"
    assert f"precision {expected} (auto: {why})" in out  # the run says what it chose, and why
