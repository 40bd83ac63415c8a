"""Fast (step-wise) generation equals the reference: same logits at every position, same images for same draws."""

import pytest
import torch

from PIL import Image

from pixelrnn import generate
from pixelrnn.errors import PixelRNNError
from pixelrnn.occlusion import occlusion
from helpers import stepwise_logits, tiny_model

SHAPES = [(1, 5, 4), (3, 3, 4), (1, 1, 6), (3, 4, 1)]


@pytest.mark.parametrize("image_shape", SHAPES)
def test_stepwise_logits_equal_the_full_pass(model_name, image_shape):
    model = tiny_model(model_name, image_shape, 5, dtype=torch.float64, gain=2.0)
    x = torch.randint(0, 5, (3, *image_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(stepwise_logits(model, x), model(x), atol=1e-12)


def test_stepwise_logits_in_float32(model_name):
    model = tiny_model(model_name, (3, 4, 4), 7, dtype=torch.float32)
    x = torch.randint(0, 7, (2, 3, 4, 4))
    with torch.no_grad():
        fast = stepwise_logits(model, x)
        assert fast.dtype == torch.float32
        assert torch.allclose(fast, model(x), atol=1e-5)


@pytest.mark.parametrize("options", [dict(residual=False), dict(skip=False), dict(residual=False, skip=False)])
@pytest.mark.parametrize("name", ["row_lstm", "diagonal_bilstm"])
def test_stepwise_without_residual_or_skip(name, options):
    model = tiny_model(name, (3, 3, 3), 4, **options)
    x = torch.randint(0, 4, (2, 3, 3, 3))
    with torch.no_grad():
        assert torch.allclose(stepwise_logits(model, x), model(x), atol=1e-12)


@pytest.mark.parametrize("image_shape", [(1, 4, 4), (3, 3, 3)])
def test_fast_and_naive_sampling_draw_the_same_images(model_name, image_shape):
    model = tiny_model(model_name, image_shape, 6, dtype=torch.float64, gain=2.0)
    fast = model.sample(4, generator=torch.Generator().manual_seed(7), method="fast")
    naive = model.sample(4, generator=torch.Generator().manual_seed(7), method="naive")
    assert torch.equal(fast, naive)


def test_fast_and_naive_completion_agree_and_keep_known_values(model_name):
    model = tiny_model(model_name, (3, 4, 4), 6, dtype=torch.float64, gain=2.0)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 6, (3, 3, 4, 4), generator=gen)
    known = torch.rand(3, 3, 4, 4, generator=gen) < 0.4
    fast = model.complete(x, known, generator=torch.Generator().manual_seed(2), method="fast")
    naive = model.complete(x, known, generator=torch.Generator().manual_seed(2), method="naive")
    assert torch.equal(fast, naive)
    assert torch.equal(fast[known], x[known])


def test_temperature_zero_is_greedy(model_name):
    model = tiny_model(model_name, (1, 3, 3), 4, dtype=torch.float64)
    x = model.sample(2, temperature=0.0)
    assert torch.equal(x[0], x[1])  # no randomness left
    logits = model(x)
    assert torch.equal(logits.argmax(1), x)  # every value is its conditional's mode


def test_occlusions(tmp_path):
    shape = (3, 4, 6)
    assert occlusion("bottom-half", shape)[:, :2].all() and not occlusion("bottom-half", shape)[:, 2:].any()
    assert occlusion("right-half", shape)[:, :, :3].all() and not occlusion("right-half", shape)[:, :, 3:].any()
    box = occlusion("box:1,0,3,2", shape)
    assert (~box).sum() == 3 * 2 * 2 and not box[0, 0, 1] and box[0, 2, 1]
    mask = torch.zeros(4, 6, dtype=torch.uint8)
    mask[3, 5] = 255
    Image.fromarray(mask.numpy()).save(tmp_path / "mask.png")
    known = occlusion(str(tmp_path / "mask.png"), shape)
    assert (~known).sum() == 3 and not known[:, 3, 5].any()
    Image.fromarray(mask[:3].numpy()).save(tmp_path / "small.png")
    with pytest.raises(PixelRNNError, match="6x3"):
        occlusion(str(tmp_path / "small.png"), shape)


@pytest.mark.parametrize("image_shape", [(3, 3, 4), (3, 2, 2)])
def test_stepwise_logits_with_interleaved_colour_groups(model_name, image_shape):
    model = tiny_model(model_name, image_shape, 5, gain=2.0, grouping="interleaved")
    x = torch.randint(0, 5, (3, *image_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(stepwise_logits(model, x), model(x), atol=1e-12)


def test_fast_and_naive_sampling_agree_with_interleaved_colour_groups(model_name):
    model = tiny_model(model_name, (3, 2, 2), 6, gain=2.0, grouping="interleaved")
    fast = model.sample(4, generator=torch.Generator().manual_seed(7), method="fast")
    naive = model.sample(4, generator=torch.Generator().manual_seed(7), method="naive")
    assert torch.equal(fast, naive)


def test_one_label_or_one_per_image(model_name):
    model = tiny_model(model_name, (1, 2, 2), 3, num_classes=2)
    with pytest.raises(PixelRNNError, match="one per image"):
        model.sample(3, y=torch.tensor([0, 1]))
    assert model.sample(3, y=1).shape == (3, 1, 2, 2)


def test_step_wise_walk_runs_small_steps_on_one_thread_and_restores_the_setting():
    """Small per-step products run on one thread (they only wait on a busy machine); the caller's setting returns,
    also when the walk fails."""
    model = tiny_model("pixelcnn", (1, 2, 2), 4)
    x = torch.zeros(2, 1, 2, 2, dtype=torch.long)
    seen = []

    def choose(c, i, j, logits):
        seen.append(torch.get_num_threads())
        return logits.argmax(-1)

    def fail(c, i, j, logits):
        raise KeyboardInterrupt

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert generate.step_threads(model, len(x)) == 1
        generate.walk(model, x, lambda c, i, j: True, choose)
        assert set(seen) == {1} and torch.get_num_threads() == 2
        with pytest.raises(KeyboardInterrupt):
            generate.walk(model, x, lambda c, i, j: True, fail)
        assert torch.get_num_threads() == 2
        assert generate.step_threads(model, 10**9) == 2  # large steps keep the caller's threads
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_draws_follow_the_categorical_and_never_take_an_impossible_value(temperature):
    """``distributions.sample`` (inverse transform sampling): each value's share of many draws lies within five
    standard errors of its probability under the tempered softmax, and a value of probability 0 never comes up."""
    from pixelrnn.distributions import sample
    logits = torch.tensor([0.0, -float("inf"), 1.5, -0.5, 2.0, -float("inf")])
    n = 100_000
    drawn = sample(logits.expand(n // 4, 4, 6), temperature, torch.Generator().manual_seed(3))
    assert drawn.shape == (n // 4, 4) and drawn.dtype == torch.long
    p = torch.softmax(logits.double() / temperature, -1)
    share = torch.bincount(drawn.flatten(), minlength=6).double() / n
    assert share[1] == 0 and share[5] == 0
    assert torch.all((share - p).abs() <= 5 * (p * (1 - p) / n).sqrt() + 1e-12)
    again = sample(logits.expand(n // 4, 4, 6), temperature, torch.Generator().manual_seed(3))
    assert torch.equal(drawn, again)  # the same generator, the same draws
