"""The same properties on a CUDA GPU: causal, normalised, fast paths equal to their references, step-wise
generation equal to the full pass, bf16 training finite. Skipped on machines without CUDA."""

import itertools
import math

import pytest
import torch

from pixelrnn.config import TrainConfig
from pixelrnn.presets import preset
from pixelrnn.masks import ColourGroups
from pixelrnn.models.diagonal_bilstm import DiagonalBiLSTMLayer
from pixelrnn.models.row_lstm import RowLSTMLayer
from pixelrnn.train import train
from helpers import assert_causal, randomise_initial_states, stepwise_logits, tiny_model

pytestmark = pytest.mark.cuda
CUDA = torch.device("cuda")


def on_cuda(name, image_shape, levels, dtype=torch.float64, **kw):
    return tiny_model(name, image_shape, levels, dtype=dtype, **kw).to(CUDA)


@pytest.mark.parametrize("image_shape", [(1, 4, 4), (3, 2, 3)])
def test_causality_on_cuda(model_name, image_shape):
    levels = 4
    assert_causal(on_cuda(model_name, image_shape, levels, gain=2.0), levels)


@pytest.mark.parametrize("image_shape,levels", [((1, 3, 3), 2), ((3, 1, 2), 3)])
def test_normalisation_on_cuda(model_name, image_shape, levels):
    model = on_cuda(model_name, image_shape, levels)
    n = math.prod(image_shape)
    images = torch.tensor(list(itertools.product(range(levels), repeat=n)), device=CUDA).reshape(-1, *image_shape)
    with torch.no_grad():
        total = torch.logsumexp(model.log_prob(images), 0).exp().item()
    assert total == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("make_layer", [
    lambda: RowLSTMLayer(hidden=6, kernel=3, colours=ColourGroups(3, "contiguous")),
    lambda: DiagonalBiLSTMLayer(hidden=6, colours=ColourGroups(3, "contiguous")),
], ids=["row_lstm", "diagonal_bilstm"])
def test_fast_path_equals_reference_on_cuda(make_layer):
    torch.manual_seed(0)
    layer = make_layer().double()
    randomise_initial_states(layer)
    layer = layer.to(CUDA)
    x = torch.randn(2, layer.input_to_state.in_channels, 4, 5, dtype=torch.float64, device=CUDA, requires_grad=True)
    fast, reference = layer(x), layer.forward_reference(x)
    torch.testing.assert_close(fast, reference, atol=1e-10, rtol=0)
    weight = torch.randn_like(fast)
    grads_fast = torch.autograd.grad((fast * weight).sum(), [x, *layer.parameters()])
    grads_ref = torch.autograd.grad((reference * weight).sum(), [x, *layer.parameters()])
    for a, b in zip(grads_fast, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_stepwise_equals_the_full_pass_on_cuda(model_name):
    model = on_cuda(model_name, (3, 3, 4), 5, gain=2.0)
    x = torch.randint(0, 5, (3, 3, 3, 4), device=CUDA)
    with torch.no_grad():
        torch.testing.assert_close(stepwise_logits(model, x), model(x), atol=1e-10, rtol=0)


def test_sampling_on_cuda_uses_a_cuda_generator(model_name):
    model = on_cuda(model_name, (1, 4, 4), 3, dtype=torch.float32)
    gen = torch.Generator(device=CUDA)
    a = model.sample(2, generator=gen.manual_seed(0))
    b = model.sample(2, generator=gen.manual_seed(0))
    assert a.device.type == "cuda" and torch.equal(a, b)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", ["pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale"])
def test_mixed_precision_training_stays_finite_on_cuda(tmp_path, name, precision):
    values = preset("tiny")
    if name == "multiscale":  # 4x4 first, then the 8x8 digits given it
        values["model_options"] = {**values["model_options"], "small": 4}
    config = TrainConfig.from_dict({**values, "model": name, "steps": 5, "precision": precision})
    result = train(config, tmp_path, progress=False, device="cuda")
    assert math.isfinite(result.train_bits_per_dim) and math.isfinite(result.valid["bits_per_dim"])
