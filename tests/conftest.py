"""Shared fixtures: tiny versions of every registered model, so that tests over all models stay fast."""

import pytest
import torch

import pixelrnn

# Tiny models run tens of thousands of small products; with a second thread each one waits for the other, and
# with anything else busy on the machine the suite slows down many times over. One thread is as fast when quiet.
torch.set_num_threads(1)

# Options that make each family tiny but keep every part of it (at least two layers, so that residual and
# layer-to-layer paths are exercised).
TINY = {
    "pixelcnn": dict(layers=2, hidden=8, head=16),
    "row_lstm": dict(layers=2, hidden=8, head=16),
    "diagonal_bilstm": dict(layers=2, hidden=8, head=16),
    "multiscale": dict(layers=2, hidden=8, head=16),
}


def multiscale_small(image_shape):
    """The side of the small image for a tiny multi-scale model: subsample by the smallest common factor."""
    _, h, w = image_shape
    factor = next((f for f in range(2, min(h, w) + 1) if h % f == 0 and w % f == 0), None)
    if factor is None:
        pytest.skip(f"a multi-scale model needs a common factor of {h} and {w}")
    return h // factor


def tiny_model(name, image_shape, levels, dtype=torch.float64, seed=0, scale=1.0, **overrides):
    """A tiny model of family ``name`` with random weights, optionally scaled up so its softmaxes are peaky."""
    torch.manual_seed(seed)
    options = dict(TINY.get(name, {}))
    if name == "multiscale":
        options.update(small=multiscale_small(image_shape), upsample_channels=4)
    model = pixelrnn.build_model(name, image_shape, levels, **{**options, **overrides})
    if scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
    return model.to(dtype).eval()


@pytest.fixture(params=pixelrnn.MODELS)
def model_name(request):
    return request.param
