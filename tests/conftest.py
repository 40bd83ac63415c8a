"""Shared fixtures: tiny versions of every registered model, so that tests over all models stay fast."""

import pytest
import torch

import pixelrnn

# Options that make each family tiny but keep every part of it (at least two layers, so that residual and
# layer-to-layer paths are exercised).
TINY = {
    "pixelcnn": dict(layers=2, hidden=8, head=16),
    "row_lstm": dict(layers=2, hidden=8, head=16),
    "diagonal_bilstm": dict(layers=2, hidden=8, head=16),
    "multiscale": dict(layers=2, hidden=8, head=16),
}


def tiny_model(name, image_shape, levels, dtype=torch.float64, seed=0, scale=1.0, **overrides):
    """A tiny model of family ``name`` with random weights, optionally scaled up so its softmaxes are peaky."""
    torch.manual_seed(seed)
    model = pixelrnn.build_model(name, image_shape, levels, **{**TINY.get(name, {}), **overrides})
    if scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
    return model.to(dtype).eval()


@pytest.fixture(params=pixelrnn.MODELS)
def model_name(request):
    return request.param
