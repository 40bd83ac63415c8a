"""Devices on a CPU-only machine: choosing one, refusing what cannot work with one clear line, device-free
checkpoints, and torch.compile giving the eager outputs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pixelrnn import devices
from pixelrnn.checkpoint import load_checkpoint, save_checkpoint
from pixelrnn.cli import main as cli_main
from pixelrnn.config import TrainConfig
from pixelrnn.presets import preset
from pixelrnn.errors import ConfigError
from pixelrnn.evaluate import evaluate
from pixelrnn.train import train
from helpers import tiny_model

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusals of a machine without CUDA")


def test_auto_and_cpu_resolve():
    assert devices.resolve_device("cpu") == torch.device("cpu")
    assert devices.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="expected auto, cpu"):
        devices.resolve_device("tpu")


@no_cuda
def test_cuda_without_a_gpu_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        devices.resolve_device("cuda:0")
    assert cli_main(["train", "--preset", "tiny", "--steps", "1", "--out", str(tmp_path / "r"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU" in err[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine without a GPU")
def test_the_codec_refuses_cuda_where_there_is_none(tmp_path, capsys):
    """The exact path runs anywhere, a GPU included (test_exact_decoding.py); without one, --device cuda is refused
    before anything is read."""
    assert cli_main(["compress", str(tmp_path), "x.png", "-o", str(tmp_path / "x.prnn"), "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no CUDA GPU" in err[0]
    assert cli_main(["decompress", str(tmp_path), "x.prnn", "-o", str(tmp_path), "--device", "cuda:1"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_the_float_path_refuses_cuda_with_the_reason():
    """Files of the float path (format versions 2 and 3) are bit-identical only on the CPU: they decode there."""
    with pytest.raises(ConfigError, match="CPU only.*bit-identical"):
        devices.cpu_only("cuda", "compress")


def test_fp16_is_refused_on_the_cpu(tmp_path):
    config = TrainConfig.from_dict({**preset("tiny"), "steps": 1, "precision": "fp16"})
    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU"):
        train(config, tmp_path, progress=False, device="cpu")


def test_checkpoints_are_device_free(tmp_path):
    model = tiny_model("pixelcnn", (1, 4, 4), 3)
    save_checkpoint(tmp_path / "c", model)
    loaded = load_checkpoint(tmp_path / "c")
    assert loaded.device == torch.device("cpu")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


def test_batches_and_generators_follow_the_device():
    cpu = torch.device("cpu")
    assert devices.to_device(torch.zeros(2, dtype=torch.uint8), cpu).device == cpu
    assert devices.generator(cpu, 3).device == cpu
    with devices.tf32(True):
        assert torch.backends.cuda.matmul.allow_tf32
        with devices.tf32(False):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32


def test_compiled_model_gives_the_eager_outputs():
    """torch.compile (inductor, which builds C++ kernels with the system compiler) on a tiny PixelCNN, fp32."""
    model = tiny_model("pixelcnn", (1, 5, 5), 4, dtype=torch.float32)
    x = torch.randint(0, 4, (3, 1, 5, 5))
    torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compiled_evaluation_gives_the_eager_figures():
    model = tiny_model("pixelcnn", (1, 5, 5), 4, dtype=torch.float32)
    x = torch.randint(0, 4, (3, 1, 5, 5))
    compiled = evaluate(model, x, batch_size=2, compile=True)
    assert compiled["nats_per_image"] == pytest.approx(evaluate(model, x, batch_size=2)["nats_per_image"], rel=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["row_lstm", "diagonal_bilstm", "multiscale"])
def test_compiled_recurrent_models_give_the_eager_outputs(name):
    model = tiny_model(name, (1, 4, 4), 4, dtype=torch.float32)
    x = torch.randint(0, 4, (2, 1, 4, 4))
    torch.testing.assert_close(torch.compile(model)(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_compiled_training_matches_eager(tmp_path):
    config = TrainConfig.from_dict({**preset("tiny"), "steps": 3})
    train(config, tmp_path / "eager", progress=False, device="cpu")
    train(config.replace(compile=True), tmp_path / "compiled", progress=False, device="cpu")
    a, b = load_checkpoint(tmp_path / "eager").state_dict(), load_checkpoint(tmp_path / "compiled").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_gpu_check_runs_its_code_paths_on_a_cpu(tmp_path):
    """benchmarks/gpu_check.py --device cpu --dry-run: tiny shapes, every section; without CUDA, one line."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script), "--device", "cpu", "--dry-run", "--out",
                             str(tmp_path / "check.md")], capture_output=True, text=True, timeout=240, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    table = (tmp_path / "check.md").read_text()
    assert "| diagonal_bilstm | small | fp32 |" in table and "## Sampling" in table
    assert "| pixelcnn | 16 | fp32 |" in table.split("## Roofline")[1]  # the roofline section has its rows
    if not torch.cuda.is_available():
        result = subprocess.run([sys.executable, str(script), "--out", str(tmp_path / "none.md")],
                                capture_output=True, text=True, timeout=120, env=env)
        assert result.returncode == 0 and len(result.stdout.strip().splitlines()) == 1


def test_bench_shows_a_progress_bar_per_configuration(monkeypatch, capsys):
    """`bench` times each precision under its own bar (steps, time per step, what is left); --quiet has none."""
    from pixelrnn import benchmark

    bars = []
    real = benchmark.tqdm

    def recording(iterable, **kwargs):
        bars.append(kwargs)
        return real(iterable, **kwargs)

    monkeypatch.setattr(benchmark, "tqdm", recording)
    args = ["bench", "--layers", "1", "--hidden", "4", "--head", "8", "--steps", "2", "--warmup", "1",
            "--precision", "fp32", "bf16", "--batch-size", "2"]
    assert cli_main(args) == 0
    assert [(b["desc"], b["disable"]) for b in bars] == [("pixelcnn fp32", None), ("pixelcnn bf16", None)]
    bars.clear()
    assert cli_main([*args, "--quiet"]) == 0
    assert all(b["disable"] is True for b in bars) and len(bars) == 2
