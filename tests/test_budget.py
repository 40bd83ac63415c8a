"""Sizes checked before allocating (pixelrnn.budget), and flags accepted anywhere among a command's paths."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny_model
from pixelrnn import budget
from pixelrnn.cli import build_parser
from pixelrnn.errors import ConfigError
from pixelrnn.models.registry import parameter_count, state_shapes

FAMILIES = [("pixelcnn", {}), ("row_lstm", {}), ("diagonal_bilstm", {}), ("multiscale", {"small": 2, "base": "pixelcnn"}),
            ("multiscale", {"small": 2, "base": "row_lstm"}), ("pixelcnn", {"num_classes": 3})]


@pytest.mark.parametrize("name,extra", FAMILIES)
@pytest.mark.parametrize("layers", [1, 2, 3, 5])
def test_the_parameter_count_extends_exactly_from_one_and_two_layers(name, extra, layers):
    model = tiny_model(name, (3, 4, 4), 4, dtype=torch.float32, layers=layers, **extra)
    real = sum(t.numel() for t in model.state_dict().values())
    assert parameter_count(model.config) == real
    assert state_shapes(model.config) == {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_a_config_of_any_depth_is_counted_at_once():
    model = tiny_model("row_lstm", (1, 4, 4), 4, dtype=torch.float32, layers=2)
    one = parameter_count({**model.config, "layers": 1})
    assert parameter_count({**model.config, "layers": 10**12}) == one + (10**12 - 1) * (parameter_count(model.config) - one)


@pytest.mark.parametrize("name,extra", FAMILIES[:4])
def test_the_meta_count_of_a_forward_pass_is_what_the_real_pass_makes(name, extra):
    """The estimate runs on the meta device; the same count on real tensors gives the same bytes (to a few scalars:
    a real pass may skip a scalar tensor that the meta pass makes)."""
    model = tiny_model(name, (1, 4, 4), 4, dtype=torch.float32, **extra)
    meta = budget._meta_model(model.config)
    x = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    with budget._NewTensorBytes() as counter, torch.no_grad():
        model(x)
    assert abs(budget._forward_bytes(meta, 2, False) - counter.total) <= 64


def test_training_that_cannot_fit_is_refused_with_its_estimate(monkeypatch):
    model = tiny_model("pixelcnn", (1, 8, 8), 4, dtype=torch.float32)
    budget.check_training_fits(model.config, 16)  # a tiny model fits anywhere
    with pytest.raises(ConfigError, match=r"parameters needs about .* TiB of memory.*--hidden"):
        budget.check_training_fits({**model.config, "hidden": 100_000}, 16)
    with pytest.raises(ConfigError, match=r"too large to build"):
        budget.check_training_fits({**model.config, "hidden": 10**12}, 16)
    shared, each = budget._training_per_image(model.config)
    monkeypatch.setattr(budget, "available_bytes", lambda device="cpu": 4 * 4 * parameter_count(model.config)
                        + shared + 10 * each)
    budget.check_training_fits(model.config, 10)
    with pytest.raises(ConfigError, match=r"batches of 11 images.*at most about 10 fits"):
        budget.check_training_fits(model.config, 11)


def test_drawing_more_images_than_memory_holds_is_refused(monkeypatch):
    model = tiny_model("row_lstm", (1, 6, 6), 4, dtype=torch.float32)
    budget.check_generation_fits(model, 8, "sampling 8 images", "ask for fewer")
    monkeypatch.setattr(budget, "available_bytes", lambda device="cpu": 10**6)
    with pytest.raises(ConfigError, match=r"sampling 10000 images needs about .* fit at once"):
        budget.check_generation_fits(model, 10_000, "sampling 10000 images", "ask for fewer")


def test_the_step_wise_estimate_is_below_the_naive_one():
    """Caches for one pixel at a time hold far less than a whole forward pass."""
    model = tiny_model("pixelcnn", (1, 8, 8), 4, dtype=torch.float32)
    meta = budget._meta_model(model.config)
    assert budget._per_image(budget._step_bytes, meta, False)[1] < budget._per_image(budget._forward_bytes, meta, False)[1]


@pytest.mark.parametrize("argv,field,value", [
    (["compress", "RUN", "--quiet", "a.png", "b.png", "-o", "x.prnn"], "images", ["a.png", "b.png"]),
    (["compress", "RUN", "a.png", "--quiet", "b.png", "-o", "x.prnn"], "images", ["a.png", "b.png"]),
    (["complete", "RUN", "a.png", "-k", "2", "b.png"], "images", ["a.png", "b.png"]),
    (["plot", "r1", "--force", "r2"], "runs", ["r1", "r2"]),
])
def test_flags_are_accepted_anywhere_among_the_paths(argv, field, value):
    assert getattr(build_parser().parse_args(argv), field) == value
