"""Checkpoints: self-describing, atomic, and safe and clear on bad files."""

import json

import pytest
import torch
from safetensors.torch import save_file

import pixelrnn
from pixelrnn import checkpoint
from pixelrnn.errors import CheckpointError
from helpers import tiny_model


def test_round_trip_needs_no_flags(tmp_path, model_name):
    model = tiny_model(model_name, (3, 4, 4), 6, dtype=torch.float64)
    pixelrnn.save_checkpoint(tmp_path / "ckpt", model)
    loaded = pixelrnn.load_checkpoint(tmp_path / "ckpt")
    x = torch.randint(0, 6, (2, 3, 4, 4))
    assert loaded.config == model.config
    assert loaded.dtype == torch.float64
    assert torch.equal(loaded.log_prob(x), model.log_prob(x))
    # The weights file alone is enough: the config travels in its metadata.
    assert pixelrnn.load_checkpoint(tmp_path / "ckpt" / "model.safetensors").config == model.config


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        pixelrnn.load_checkpoint(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        pixelrnn.load_checkpoint(tmp_path / "empty")


def test_truncated_weights_are_a_clear_error(tmp_path):
    pixelrnn.save_checkpoint(tmp_path / "ckpt", tiny_model("pixelcnn", (1, 4, 4), 4))
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-50])
    with pytest.raises(CheckpointError, match="truncated"):
        pixelrnn.load_checkpoint(tmp_path / "ckpt")


def test_weights_of_another_model_are_a_clear_error(tmp_path):
    model = tiny_model("pixelcnn", (1, 4, 4), 4, dtype=torch.float32)
    other = tiny_model("pixelcnn", (1, 4, 4), 4, dtype=torch.float32, layers=3)
    (tmp_path / "bad").mkdir()
    weights = {k: v.contiguous() for k, v in other.state_dict().items()}
    metadata = {"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "config": json.dumps(model.config),
                "sha256": checkpoint.weights_sha256(weights)}
    save_file(weights, str(tmp_path / "bad" / "model.safetensors"), metadata=metadata)
    with pytest.raises(CheckpointError, match="does not match"):
        pixelrnn.load_checkpoint(tmp_path / "bad")


def test_a_foreign_safetensors_file_is_not_a_checkpoint(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(CheckpointError, match="not a pixelrnn checkpoint"):
        pixelrnn.load_checkpoint(tmp_path / "x.safetensors")


def test_a_failed_save_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    model = tiny_model("pixelcnn", (1, 4, 4), 4, dtype=torch.float32)
    pixelrnn.save_checkpoint(tmp_path / "ckpt", model)
    before = (tmp_path / "ckpt" / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint.torch, "save", crash)
    with pytest.raises(pixelrnn.errors.OutputError, match="cannot write"):
        pixelrnn.save_checkpoint(tmp_path / "ckpt", tiny_model("pixelcnn", (1, 4, 4), 4, seed=1), trainer_state={})
    assert (tmp_path / "ckpt" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary left behind


def test_trainer_state_is_loaded_without_running_code(tmp_path):
    model = tiny_model("pixelcnn", (1, 4, 4), 4, dtype=torch.float32)
    pixelrnn.save_checkpoint(tmp_path / "ckpt", model, trainer_state={"step": 3})

    class Evil:
        def __reduce__(self):
            return (exec, ("open('pwned', 'w').write('x')",))

    torch.save({"step": Evil()}, tmp_path / "ckpt" / "trainer.pt")
    with pytest.raises(CheckpointError):
        checkpoint.load_trainer_state(tmp_path / "ckpt")
    assert not (tmp_path / "pwned").exists()


def test_a_run_loads_from_any_of_its_paths(tmp_path):
    model = tiny_model("pixelcnn", (1, 4, 4), 4, dtype=torch.float32)
    run = checkpoint.RunFolder(tmp_path / "run")
    for step in (1, 2, 3):
        run.save(step, model, trainer_state={"step": step})
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["latest", "step-000000002", "step-000000003"]
    for path in (run.root, run.checkpoints, run.pointer, run.latest(), run.latest() / "model.safetensors"):
        assert pixelrnn.load_checkpoint(path).config == model.config
        assert checkpoint.resolve(path).name in ("step-000000003", "model.safetensors")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="pass the run folder"):
        pixelrnn.load_checkpoint(tmp_path / "notes.txt")


def test_non_finite_weights_are_refused_on_load(tmp_path):
    """A diverged run's weights (NaN, with a valid checksum) are refused in one line, not scored as NaN."""
    import pixelrnn
    from pixelrnn.errors import CheckpointError

    model = pixelrnn.build_model("pixelcnn", (1, 4, 4), 4, layers=1, hidden=4, head=8)
    with torch.no_grad():
        model.head.logits.bias[0] = float("nan")
    pixelrnn.save_checkpoint(tmp_path / "ckpt", model)
    with pytest.raises(CheckpointError, match="non-finite weights .* head.logits.bias"):
        pixelrnn.load_checkpoint(tmp_path / "ckpt")


@pytest.mark.parametrize("pointer", [b"\xff\xfe\x00binary", b"../../elsewhere", b"/etc", b"step-1"])
def test_a_latest_pointer_that_is_not_a_step_folder_of_the_run_is_refused(tmp_path, pointer):
    import pixelrnn
    from pixelrnn.checkpoint import RunFolder
    from pixelrnn.errors import CheckpointError

    run = RunFolder(tmp_path / "run")
    run.save(3, pixelrnn.build_model("pixelcnn", (1, 4, 4), 4, layers=1, hidden=4, head=8), {"step": 3})
    assert run.latest().name == "step-000000003"
    run.pointer.write_bytes(pointer)
    with pytest.raises(CheckpointError, match="latest"):
        run.latest()


def test_a_step_folder_linked_from_elsewhere_is_unlinked_not_deleted(tmp_path):
    """Old checkpoints are removed as new ones come; one that is a symlink (to another disk) loses its link, and
    the data it points to stays."""
    from pixelrnn.checkpoint import RunFolder
    model = tiny_model("pixelcnn", (1, 4, 4), 4)
    run = RunFolder(tmp_path / "run")
    first = run.save(1, model, {"step": 1})
    elsewhere = tmp_path / "elsewhere"
    first.rename(elsewhere)
    first.symlink_to(elsewhere)
    for step in (2, 3, 4):
        run.save(step, model, {"step": step}, keep=2)
    assert sorted(p.name for p in run.checkpoints.glob("step-*")) == ["step-000000003", "step-000000004"]
    assert (elsewhere / "model.safetensors").is_file()


def test_an_oserror_without_errno_still_says_its_cause():
    from pixelrnn.errors import output_error
    assert "Cannot call rmtree on a symbolic link" in str(output_error("x", OSError("Cannot call rmtree on a symbolic link")))
