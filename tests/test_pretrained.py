"""Shipped checkpoints: export, name resolution, the models command, the demo, and regression tests on real weights.

The mechanism is tested end to end on a tiny digits model exported into a temporary folder, so these tests can fail
before any real checkpoint ships. The regression tests run over whatever the package ships.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import pixelrnn
from pixelrnn import pretrained
from pixelrnn.cli import main
from pixelrnn.data import load_dataset
from pixelrnn.errors import ConfigError, DataError
from pixelrnn.evaluate import evaluate
from pixelrnn.pretrained import demo as demo_module
from pixelrnn.pretrained.export import BF16_TOLERANCE, export

PACKAGE_DIR = Path(pretrained.__file__).resolve().parent
SHIPPED = pretrained.names(PACKAGE_DIR) or [pytest.param(None, marks=pytest.mark.skip(reason="no model shipped yet"))]
NAME = "digits-tiny"


def first_bits_per_dim(model, record: dict) -> float:
    """Bits/dim of the shipped model on the first test images its record names; skipped where the data is missing."""
    try:
        data = load_dataset(record["data"], "test", download=False)
    except DataError as e:
        pytest.skip(f"{record['data']} is not installed ({e})")
    n = record["first_images"]
    labels = None if data.labels is None else data.labels[:n]
    return evaluate(model, data.images[:n], labels)["bits_per_dim"]


def samples_match(name: str, directory: Path) -> bool:
    """Whether the fixed-seed samples of a shipped model equal the images stored beside it."""
    model = pretrained.shipped(name, directory)
    with pytest.MonkeyPatch.context() as m:
        m.setenv(pretrained.ENV, str(directory))
        drawn = pretrained.draw_samples(pixelrnn.load_pretrained(name))
    return np.array_equal(drawn, np.load(model.samples))


# The models the package ships.

@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_bits_per_dim_on_first_test_images(name, monkeypatch):
    monkeypatch.setenv(pretrained.ENV, str(PACKAGE_DIR))
    record = pretrained.shipped(name).record
    assert first_bits_per_dim(pixelrnn.load_pretrained(name), record) == pytest.approx(
        record["first_bits_per_dim"], abs=1e-4)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_samples_are_the_stored_ones(name):
    assert samples_match(name, PACKAGE_DIR), f"{name} draws other images than it did when exported"


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_small_and_complete(name):
    folder = PACKAGE_DIR / name
    assert (folder / "model.safetensors").stat().st_size <= 5_500_000
    for f in (pretrained.RECORD, pretrained.SAMPLES, pretrained.METRICS, "config.json"):
        assert (folder / f).is_file()


# The whole mechanism, on a tiny model exported into a temporary folder.

@pytest.fixture(scope="module")
def shipped_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrained")
    run = root / "run"
    assert main(["train", "--preset", "tiny", "--out", str(run), "--steps", "6", "--quiet"]) == 0
    export(run, NAME, root / "shipped", command="pixelrnn train --preset tiny --steps 6", log=lambda line: None)
    return root / "shipped"


@pytest.fixture
def shipped(shipped_dir, tmp_path, monkeypatch):
    """The exported tiny model as the only shipped one; the working directory is empty."""
    monkeypatch.setenv(pretrained.ENV, str(shipped_dir))
    monkeypatch.chdir(tmp_path)
    return shipped_dir


def test_export_records_what_it_measured(shipped):
    record = pretrained.shipped(NAME).record
    assert pretrained.names() == [NAME]
    assert record["data"] == "digits" and record["image_shape"] == [1, 8, 8] and record["levels"] == 17
    assert record["test_images"] == 300 and record["first_images"] == 300  # digits has fewer than 500
    assert record["training"]["steps"] == 6 and record["training"]["seconds"] > 0
    by_storage = record["test_bits_per_dim_by_storage"]
    bf16 = abs(by_storage["bfloat16"] - by_storage["float32"]) <= BF16_TOLERANCE
    assert record["storage_dtype"] == ("bfloat16" if bf16 else "float32")
    # the whole-split figure is the stored model's; here the first 300 images are the whole split
    assert record["test_bits_per_dim"] == by_storage[record["storage_dtype"]]
    assert record["test_bits_per_dim"] == pytest.approx(record["first_bits_per_dim"], abs=1e-6)
    assert np.load(shipped / NAME / pretrained.SAMPLES).shape == (4, 1, 8, 8)
    assert (shipped / NAME / pretrained.METRICS).read_text().startswith("step,split,")
    model = pixelrnn.load_pretrained(NAME)
    assert model.dtype == torch.float32 and not model.training
    assert record["parameters"] == sum(p.numel() for p in model.parameters())


def test_export_refuses_to_overwrite(shipped):
    with pytest.raises(ConfigError, match="--force"):
        export(shipped.parent / "run", NAME, shipped, log=lambda line: None)


def test_export_keeps_fp32_weights_where_bf16_would_cost_too_much(shipped_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("pixelrnn.pretrained.export.BF16_TOLERANCE", -1.0)  # any rounding costs too much
    export(shipped_dir.parent / "run", NAME, tmp_path, log=lambda line: None)
    record = pretrained.shipped(NAME, tmp_path).record
    assert record["storage_dtype"] == "float32"
    assert record["test_bits_per_dim"] == record["test_bits_per_dim_by_storage"]["float32"]
    trained = pixelrnn.load_checkpoint(shipped_dir.parent / "run")
    stored = pixelrnn.load_checkpoint(tmp_path / NAME)
    assert stored.dtype == torch.float32
    for (name, a), (_, b) in zip(trained.state_dict().items(), stored.state_dict().items()):
        assert torch.equal(a, b), name
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary folder left behind


@pytest.mark.parametrize("model, options", [
    ("row_lstm", []), ("diagonal_bilstm", []), ("multiscale", ["--set", "small=4"]),
    ("pixelcnn", ["--set", "num_classes=10"]),  # class-conditional: its samples are of classes 0-3
])
def test_every_kind_of_model_exports_and_passes_its_regression_checks(tmp_path, monkeypatch, model, options):
    run, shipped = tmp_path / "run", tmp_path / "shipped"
    assert main(["train", "--preset", "tiny", "--model", model, *options, "--steps", "3", "--out", str(run),
                 "--quiet"]) == 0
    export(run, "kind", shipped, log=lambda line: None)
    monkeypatch.setenv(pretrained.ENV, str(shipped))
    record = pretrained.shipped("kind").record
    loaded = pixelrnn.load_pretrained("kind")
    assert loaded.config["model"] == model and record["model"] == model
    assert first_bits_per_dim(loaded, record) == pytest.approx(record["first_bits_per_dim"], abs=1e-4)
    assert samples_match("kind", shipped)


def test_bf16_weights_are_upcast_on_load(tmp_path):
    model = pixelrnn.build_model("pixelcnn", (1, 4, 4), 4, layers=1, hidden=4, head=8)
    pixelrnn.save_checkpoint(tmp_path / "ckpt", model.to(torch.bfloat16))
    assert pixelrnn.load_checkpoint(tmp_path / "ckpt").dtype == torch.bfloat16
    assert pretrained.load(tmp_path / "ckpt").dtype == torch.float32


def test_regression_check_on_the_exported_model(shipped):
    record = pretrained.shipped(NAME).record
    assert first_bits_per_dim(pixelrnn.load_pretrained(NAME), record) == pytest.approx(
        record["first_bits_per_dim"], abs=1e-4)
    assert samples_match(NAME, shipped)


def test_a_damaged_stored_sample_is_detected(shipped, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(shipped, copy)
    stored = np.load(copy / NAME / pretrained.SAMPLES)
    stored[1, 0, 3, 5] = (int(stored[1, 0, 3, 5]) + 1) % 17
    np.save(copy / NAME / pretrained.SAMPLES, stored)
    assert not samples_match(NAME, copy)


def test_evaluate_by_name_through_the_command_line(shipped, capsys):
    assert main(["evaluate", NAME, "--quiet"]) == 0  # the data set recorded with the model: digits
    line = capsys.readouterr().out.splitlines()[1].split()
    assert line[0] == "digits" and int(line[2]) == 300
    assert float(line[3]) == pytest.approx(pretrained.shipped(NAME).record["test_bits_per_dim"], abs=1e-4)
    assert not list(shipped.rglob("eval-*.json"))  # nothing is written into the shipped folder


def test_sample_and_compress_by_name(shipped, capsys):
    assert main(["sample", NAME, "-n", "2", "-o", "s.png", "--quiet"]) == 0
    assert main(["compress", f"pretrained:{NAME}", "--data", "digits", "--limit", "3", "-o", "x.prnn", "--quiet"]) == 0
    assert main(["decompress", NAME, "x.prnn", "-o", "decoded", "--quiet"]) == 0
    assert Path("s.png").is_file() and len(list(Path("decoded").glob("*.png"))) == 3


def test_a_path_that_exists_wins_and_the_prefix_forces_the_shipped_model(shipped, capsys):
    Path(NAME).mkdir()  # an empty folder with the shipped name
    assert main(["sample", NAME, "-n", "1", "-o", "a.png", "--quiet"]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err
    assert main(["sample", f"pretrained:{NAME}", "-n", "1", "-o", "a.png", "--quiet"]) == 0


def test_an_unknown_name_lists_the_shipped_ones(shipped, capsys):
    assert main(["evaluate", "no-such-model", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and NAME in err and "pixelrnn models" in err
    with pytest.raises(pixelrnn.PixelRNNError, match=NAME):
        pixelrnn.load_pretrained("no-such-model")


def test_models_lists_the_shipped_ones(shipped, capsys, monkeypatch):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    record = pretrained.shipped(NAME).record
    assert NAME in out and "digits" in out and "1x8x8" in out and f"{record['test_bits_per_dim']:.4f}" in out
    monkeypatch.setenv(pretrained.ENV, str(shipped.parent / "empty"))
    assert main(["models"]) == 0
    assert "none shipped yet" in capsys.readouterr().out


def test_demo_uses_the_shipped_model(shipped, capsys):
    assert demo_module.demo("out", NAME, samples=4, compress=5) == 0
    out = capsys.readouterr().out
    assert Path(f"out/{NAME}-samples.png").is_file() and Path(f"out/{NAME}-completions.png").is_file()
    assert "compressed losslessly" in out and "PNG" in out


def test_demo_without_the_data_or_the_model_still_succeeds(shipped, capsys, monkeypatch):
    assert demo_module.demo("out", "not-shipped") == 0
    assert "skipping" in capsys.readouterr().out

    def missing(*args, **kwargs):
        raise DataError("not here")

    monkeypatch.setattr(demo_module, "load_dataset", missing)
    assert demo_module.demo("out", NAME, samples=4) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "dataset-fashion-mnist" in lines[-1] and Path(f"out/{NAME}-samples.png").is_file()
