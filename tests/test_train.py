"""Training, resuming, evaluation and the one bits/dim function."""

import json
import math

import pytest
import torch

import pixelrnn
from pixelrnn import distributions
from pixelrnn.checkpoint import load_checkpoint, load_trainer_state
from pixelrnn.config import TrainConfig
from pixelrnn.presets import preset
from pixelrnn.errors import ConfigError
from pixelrnn.evaluate import evaluate
from pixelrnn.train import batch_indices, lr_factor, train
from helpers import tiny_model

TINY_RUN = dict(model="pixelcnn", model_options=dict(layers=1, hidden=4, head=8), data="digits", steps=8,
                batch_size=8, eval_every=4, eval_limit=16, checkpoint_every=3, log_every=2, warmup_steps=2)


def weights(run_dir):
    return load_checkpoint(run_dir).state_dict()


@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
def test_resume_continues_exactly(tmp_path, optimizer):
    """N steps in one go and N/2 + resume + N/2 give bitwise the same weights (CPU, same seed)."""
    config = TrainConfig(**TINY_RUN, optimizer=optimizer)
    train(config, tmp_path / "whole", progress=False)
    train(config, tmp_path / "split", progress=False, stop_after=4)
    assert load_trainer_state(tmp_path / "split")["step"] == 4
    train(config, tmp_path / "split", resume=True, progress=False)
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_lowers_the_loss_and_writes_metrics(tmp_path):
    config = TrainConfig(**{**TINY_RUN, "steps": 60, "lr": 3e-3})
    result = train(config, tmp_path, progress=False)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,split,bits_per_dim")
    first_train = float(rows[1].split(",")[2])
    assert result.train_bits_per_dim < first_train
    assert result.valid["images"] == 200  # the final validation pass covers the whole split
    assert result.valid["bits_per_dim"] < math.log2(17)  # better than uniform over 17 levels


def test_a_second_run_in_the_same_directory_needs_resume(tmp_path):
    config = TrainConfig(**{**TINY_RUN, "steps": 2})
    train(config, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(config, tmp_path, progress=False)
    with pytest.raises(ConfigError, match="other values of model_options"):
        train(config.replace(model_options=dict(layers=2, hidden=4, head=8)), tmp_path, resume=True, progress=False)


def test_bf16_training_runs_and_keeps_float32_weights(tmp_path):
    config = TrainConfig(**{**TINY_RUN, "steps": 3, "precision": "bf16"})
    train(config, tmp_path, progress=False)
    assert all(t.dtype == torch.float32 for t in weights(tmp_path).values() if t.is_floating_point())


def test_a_run_told_to_stop_early_estimates_the_steps_it_will_train(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("pixelrnn.train.LONG_RUN_SECONDS", 0)  # every run counts as long here
    train(TrainConfig(**{**TINY_RUN, "steps": 40}), tmp_path, progress=False, stop_after=8)
    (line,) = [l for l in capsys.readouterr().out.splitlines() if "to go" in l]
    assert "2 steps at" in line  # the estimate comes after 6 steps: 2 of the 8 remain, not 34 of the schedule


def test_batches_cover_each_epoch_once():
    seen = torch.cat([batch_indices(s, 20, 5, seed=3) for s in range(4)])
    assert sorted(seen.tolist()) == list(range(20))
    assert not torch.equal(batch_indices(4, 20, 5, seed=3), batch_indices(0, 20, 5, seed=3))  # new epoch order


def test_evaluate_scores_every_image_exactly():
    model = tiny_model("pixelcnn", (1, 4, 4), 5)
    images = torch.randint(0, 5, (7, 1, 4, 4), dtype=torch.uint8)
    result = evaluate(model, images, batch_size=3)  # 3 + 3 + 1: the last partial batch counts
    nats = -model.log_prob(images.long()).sum().item() / 7
    assert result["images"] == 7
    assert result["nats_per_image"] == pytest.approx(nats, rel=1e-12)
    assert result["bits_per_dim"] == pytest.approx(nats / (16 * math.log(2)), rel=1e-12)


def test_evaluate_by_default_scores_in_batches_of_the_devices_size(monkeypatch):
    sizes = []
    model = tiny_model("pixelcnn", (1, 4, 4), 5)
    score = model.log_prob
    monkeypatch.setattr(model, "log_prob", lambda x, y=None: sizes.append(len(x)) or score(x, y))
    images = torch.randint(0, 5, (40, 1, 4, 4), dtype=torch.uint8)
    result = evaluate(model, images)
    assert sizes == [16, 16, 8]  # devices.eval_batch_size on a CPU
    assert result["nats_per_image"] == pytest.approx(evaluate(model, images, batch_size=40)["nats_per_image"],
                                                     rel=1e-12)


def test_bits_per_dim_of_a_uniform_model_is_log2_levels():
    logits = torch.zeros(2, 256, 3, 4, 4)
    x = torch.randint(0, 256, (2, 3, 4, 4))
    assert distributions.bits_per_dim(logits, x).item() == pytest.approx(8.0)


def test_presets_and_unknown_fields():
    assert preset("cifar10-pixelcnn")["model_options"] == dict(layers=15, hidden=128, head=1024)
    with pytest.raises(pixelrnn.PixelRNNError, match="now called 'binarized-mnist-pixelcnn'"):
        preset("mnist-pixelcnn")
    with pytest.raises(pixelrnn.PixelRNNError, match="unknown preset"):
        preset("imagenet1024")
    with pytest.raises(pixelrnn.PixelRNNError, match="unknown training option"):
        TrainConfig.from_dict({"batchsize": 3})


def test_an_extended_schedule_joins_the_longer_one_without_a_jump():
    config = TrainConfig(**TINY_RUN)
    old, new = lr_factor(config, 100), lr_factor(config, 200)
    for start in (50, 100):  # an unfinished run, and a finished one (its cosine has reached 0)
        extended = lr_factor(config, 200, (start, old(start)))
        assert extended(start) == old(start)  # the next step keeps the rate the run had reached
        ramp = config.warmup_steps
        steps = range(start, start + ramp + 1)
        assert [extended(s) for s in steps] == pytest.approx(
            [old(start) + (new(start + ramp) - old(start)) * (s - start) / ramp for s in steps])
        assert all(extended(s) == new(s) for s in range(start + ramp, 201))  # then the 200-step schedule
    assert old(100) == 0 and lr_factor(config, 200, (100, 0.0))(101) > 0  # a finished run warms up again


def test_resume_with_more_steps_keeps_the_rate_and_then_resumes_exactly(tmp_path):
    config = TrainConfig(**TINY_RUN)  # 8 steps
    train(config, tmp_path / "a", progress=False, stop_after=4)
    rate = load_trainer_state(tmp_path / "a")["optimizer"]["param_groups"][0]["lr"]
    longer = config.replace(steps=16)
    train(longer, tmp_path / "a", resume=True, progress=False, stop_after=1)
    state = load_trainer_state(tmp_path / "a")
    assert state["lr_extended"] == (4, pytest.approx(rate / config.lr))
    expected = lr_factor(longer, 16, (4, rate / config.lr))(5) * config.lr
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(expected)
    # Resumed again at the same length, the extended schedule is kept: one go and two give the same weights.
    train(config, tmp_path / "b", progress=False, stop_after=4)
    train(longer, tmp_path / "b", resume=True, progress=False)
    train(longer, tmp_path / "a", resume=True, progress=False)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_metrics_carry_nats_per_image_in_a_last_column(tmp_path):
    """The paper's unit for binarized MNIST, appended after the older columns: nats = bits/dim * C*H*W * ln 2."""
    result = train(TrainConfig(**{**TINY_RUN, "steps": 2, "log_every": 1}), tmp_path, progress=False)
    header, *rows = [row.split(",") for row in (tmp_path / "metrics.csv").read_text().splitlines()]
    assert header == ["step", "split", "bits_per_dim", "images_per_s", "lr", "seconds", "nats_per_image"]
    dims = 8 * 8  # the digits
    for row in rows:
        assert math.isclose(float(row[6]), float(row[2]) * dims * math.log(2), rel_tol=1e-9)
    assert math.isclose(result.train_nats_per_image, result.train_bits_per_dim * dims * math.log(2))
    assert rows[-1][1] == "valid" and math.isclose(float(rows[-1][6]), result.valid["nats_per_image"])


def test_train_summary_gives_nats_per_image_for_two_level_data(tmp_path, capsys):
    """The paper reports binarized MNIST in nats per image; the summary shows them beside bits/dim."""
    from pixelrnn.cli import main
    from data_files import write_amat

    folder = tmp_path / "binarized-mnist"
    for split, n in (("train", 40), ("valid", 12), ("test", 8)):
        write_amat(folder / f"binarized_mnist_{split}.amat", n)
    argv = ["train", "--preset", "tiny", "--data", "binarized-mnist", "--data-dir", str(tmp_path), "--steps", "2",
            "--set", "eval_limit=8", "--quiet", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "nats/image" in out.split("train bits/dim")[1].splitlines()[0]
    assert "validation bits/dim" in out and "nats/image) at step 2" in out


@pytest.mark.parametrize("damage, says", [
    (lambda state: state.pop("optimizer"), "lacks its 'optimizer' entry"),
    (lambda state: state.update(step="12"), "'step' must be a whole number"),
    (lambda state: state.update(torch_rng=[1, 2, 3]), "'torch_rng' must be torch's RNG state"),
    (lambda state: state["optimizer"].update(param_groups=[]), "'optimizer' must be an optimizer state"),
    (lambda state: state.update(seconds=float("nan")), "'seconds' must be a number of seconds"),
])
def test_a_damaged_trainer_file_is_one_line(tmp_path, capsys, damage, says):
    """A trainer file with a missing entry or a value of the wrong type: resume refuses it in one line that names
    the file, and the run is left as it was."""
    from pixelrnn.checkpoint import RunFolder, TRAINER
    from pixelrnn.cli import main

    train(TrainConfig(**TINY_RUN), tmp_path, progress=False)
    file = RunFolder(tmp_path).latest() / TRAINER
    state = torch.load(file, weights_only=True)
    damage(state)
    torch.save(state, file)
    before = file.read_bytes()
    assert main(["train", "--out", str(tmp_path), "--resume", "--steps", "12", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert says in err and str(file) in err, err
    assert file.read_bytes() == before


def test_train_step_is_what_the_benchmark_times():
    """benchmark.train_speed runs the training loop's own step: the same weights after the same steps."""
    from pixelrnn.benchmark import train_speed
    from pixelrnn.train import make_optimizer, train_step

    x = torch.randint(0, 17, (4, 1, 8, 8))
    timed, stepped = (tiny_model("pixelcnn", (1, 8, 8), 17, dtype=torch.float32) for _ in range(2))
    stepped.load_state_dict(timed.state_dict())
    train_speed(timed, [x], warmup=1, steps=2)
    optimizer = make_optimizer(TrainConfig(lr=1e-4), stepped.parameters())
    stepped.train()
    for _ in range(3):
        train_step(stepped, optimizer, [(x, None)], grad_clip=TrainConfig.grad_clip)
    for name, value in stepped.state_dict().items():
        assert torch.equal(timed.state_dict()[name], value), name


def test_a_resume_may_change_the_precision(tmp_path, capsys):
    """Precision is a speed setting: a bf16 run resumes in fp32, says so, and records the new setting."""
    from pixelrnn.checkpoint import CONFIG, RunFolder

    config = TrainConfig(**{**TINY_RUN, "precision": "bf16"})
    train(config, tmp_path, progress=False, stop_after=4)
    capsys.readouterr()
    result = train(config.replace(precision="fp32"), tmp_path, resume=True, progress=False)
    assert result.step == 8 and result.stopped == "finished"
    assert "resuming with precision fp32 (was bf16): a speed setting" in capsys.readouterr().out
    run = RunFolder(tmp_path)
    assert run.read_training_config()["precision"] == "fp32"
    assert json.loads((run.latest() / CONFIG).read_text())["precision"] == "fp32"


def test_a_resume_that_changes_only_speed_settings_continues_exactly(tmp_path, capsys):
    config = TrainConfig(**{**TINY_RUN, "precision": "fp32"})
    train(config, tmp_path / "whole", progress=False)
    train(config, tmp_path / "split", progress=False, stop_after=4)
    train(config.replace(eval_batch_size=3), tmp_path / "split", resume=True, progress=False)
    assert "resuming with eval_batch_size 3 (was None)" in capsys.readouterr().out
    a, b = weights(tmp_path / "whole"), weights(tmp_path / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_another_precision_on_the_command_line(tmp_path, capsys):
    from pixelrnn.cli import main

    run = str(tmp_path / "r")
    assert main(["train", "--preset", "tiny", "--steps", "2", "--precision", "bf16", "--out", run, "--quiet"]) == 0
    capsys.readouterr()
    assert main(["train", "--resume", "--out", run, "--steps", "4", "--precision", "fp32", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "resuming with precision fp32 (was bf16): a speed setting; the run continues exactly otherwise" in out
    assert "finished at step 4" in out


def test_a_folder_without_a_preset_trains_a_cpu_sized_model_and_says_so(tmp_path, capsys, monkeypatch):
    """folder:PATH of 32x32 RGB images: not the family's defaults (the paper's CIFAR-10 size) but a CPU-sized
    model for that shape, named in one line; the run's first lines give the split, the model and the device."""
    import numpy as np
    from PIL import Image

    from pixelrnn.cli import main
    from pixelrnn.presets import cpu_sized

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(30):
        Image.fromarray(np.random.RandomState(i).randint(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    assert main(["train", "--data", f"folder:{folder}", "--out", str(tmp_path / "run"), "--show"]) == 0
    shown = capsys.readouterr().out
    options = json.loads(shown)["model_options"]
    assert {k: options[k] for k in ("layers", "hidden", "head")} == cpu_sized((3, 32, 32)) == \
        dict(layers=7, hidden=32, head=64)
    assert options["residual"] is True and options["first_kernel"] == 7  # --show resolves the defaults too
    assert main(["train", "--data", f"folder:{folder}", "--out", str(tmp_path / "run"), "--steps", "1",
                 "--layers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "no CPU preset for pixelcnn on folder:" in out and "h = 32, head 64" in out
    assert "data: folder:" in out and "24 train, 3 validation, 3 test images of 3x32x32" in out
    assert "model: pixelcnn, layers 1, h = 32, head 64" in out and "device: cpu (" in out


def test_cpu_sized_models_keep_the_fashion_size_on_28x28_and_shrink_on_larger_images():
    from pixelrnn.presets import cpu_sized

    assert cpu_sized((1, 28, 28)) == dict(layers=7, hidden=64, head=64)
    assert cpu_sized((1, 8, 8))["hidden"] == 64
    assert cpu_sized((3, 64, 64))["hidden"] == 16


def test_preset_times_count_the_work_of_a_step_and_the_steps_of_a_run(monkeypatch, capsys):
    """The FLOPs of a step counted on a crop equal those of the full image (the work per pixel is the same), the
    steps follow the data set's size (CIFAR-10: 100 epochs of 45,000 images at 16 is 281,250), and
    `presets --times` prints both columns."""
    from pixelrnn import estimates
    from pixelrnn.cli import main

    options = dict(layers=2, hidden=8, head=16)
    full = estimates.step_flops("pixelcnn", options, (3, 16, 16), 8, batch=2)
    monkeypatch.setattr(estimates, "CROP", 16)
    assert estimates.step_flops("pixelcnn", options, (3, 16, 16), 8, batch=2) == full
    assert estimates.train_images("cifar10") == 45_000 and estimates.train_images("digits") == 1297
    monkeypatch.setattr(estimates, "family_rate", lambda model, device: 1e9)
    monkeypatch.setattr(estimates, "step_flops", lambda *args: 3.6e12)  # an hour a step at 1 GFLOP/s
    times = estimates.preset_estimates()
    assert times["cifar10-pixelcnn"]["steps"] == 281_250
    assert times["cifar10-pixelcnn"]["here_hours"] == pytest.approx(281_250)
    assert estimates.duration(0.5) == "30 min" and estimates.duration(100) == "4 days"
    assert main(["presets", "--times"]) == 0
    out = capsys.readouterr().out
    assert "one core" in out and "GPU (est.)" in out and "281,250" in out


@pytest.mark.parametrize("damage", [b"step,split\n1,train,x\n", b"\x00\xff\xfe binary", b"step,seconds\nfour,1\n",
                                    b"split,bits_per_dim\ntrain,1.0\n", b"step,seconds\n1,soon\n"])
def test_a_damaged_metrics_file_is_one_line_on_resume(tmp_path, capsys, damage):
    from pixelrnn.checkpoint import RunFolder
    from pixelrnn.cli import main

    train(TrainConfig(**TINY_RUN), tmp_path, progress=False)
    RunFolder(tmp_path).metrics.write_bytes(damage)
    assert main(["train", "--out", str(tmp_path), "--resume", "--steps", "12", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "metrics.csv is damaged" in err, err
    assert RunFolder(tmp_path).metrics.read_bytes() == damage  # left as it was


def test_checkpoints_of_another_model_in_a_run_folder_are_refused_on_resume(tmp_path, capsys):
    import shutil

    from pixelrnn.checkpoint import RunFolder
    from pixelrnn.cli import main

    train(TrainConfig(**TINY_RUN), tmp_path / "a", progress=False)
    other = dict(TINY_RUN, model_options=dict(layers=2, hidden=6, head=8))
    train(TrainConfig(**other), tmp_path / "b", progress=False)
    a, b = RunFolder(tmp_path / "a"), RunFolder(tmp_path / "b")
    shutil.rmtree(a.checkpoints)
    shutil.copytree(b.checkpoints, a.checkpoints)  # a's settings, b's checkpoints
    assert main(["train", "--out", str(a.root), "--resume", "--steps", "12", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is not the one" in err and "train_config.json" in err, err
