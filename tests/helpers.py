"""Helpers shared by the tests: tiny versions of every registered model, and the step-wise logits of a model."""

import pytest
import torch

import pixelrnn
from pixelrnn import codec

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


def randomise_initial_states(module, seed=0):
    """Give learned initial LSTM states random values: they start at zero, which would hide them from the tests."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.rsplit(".", 1)[-1] in ("initial_hidden", "initial_cell"):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


def tiny_model(name, image_shape, levels, dtype=torch.float64, seed=0, gain=1.0, **overrides):
    """A tiny model of family ``name`` with random weights, multiplied by ``gain`` to make its softmaxes peaky."""
    torch.manual_seed(seed)
    options = dict(TINY.get(name, {}))
    if name == "multiscale":
        options.update(small=multiscale_small(image_shape), upsample_channels=4)
    model = pixelrnn.build_model(name, image_shape, levels, **{**options, **overrides})
    randomise_initial_states(model, seed)
    if gain != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(gain)
    return model.to(dtype).eval()


@torch.no_grad()
def stepwise_logits(model, x, y=None):
    """The logits [B, K, C, H, W] of ``x`` computed by the fast step-wise path (``model.walk``), value by value.

    Equal to ``model(x, y)`` to float tolerance; the tests use it to check every model's stepper.
    """
    model.check_images(x)
    out = x.new_empty(len(x), model.levels, *model.image_shape, dtype=model.dtype)

    def record(c, i, j, logits):
        out[:, :, c, i, j] = logits
        return x[:, c, i, j]

    model.walk(x.clone(), lambda c, i, j: True, record, y=model.check_labels(y, len(x)))
    return out


def assert_causal(model, levels):
    """Change every value at or after each position in the model's order: that position's logits stay the same."""
    gen = torch.Generator(device=model.device).manual_seed(1)
    x = torch.randint(0, levels, (2, *model.image_shape), generator=gen, device=model.device)
    order = model.order()
    with torch.no_grad():
        base = model(x)
        for t, (c, i, j) in enumerate(order):
            y = x.clone()
            for c2, i2, j2 in order[t:]:
                shift = torch.randint(0, levels - 1, (2,), generator=gen, device=model.device)
                y[:, c2, i2, j2] = (x[:, c2, i2, j2] + 1 + shift) % levels
            changed = model(y)
            assert torch.equal(changed[:, :, c, i, j], base[:, :, c, i, j]), f"value {(c, i, j)} sees the future"


def seal(body: bytes) -> bytes:
    """A compressed file with its trailing checksum recomputed, as anyone editing a file can do."""
    return body + codec._digest(body)


def refusal(model, data: bytes) -> str:
    """The one-line CodecError that decoding ``data`` raises."""
    with pytest.raises(codec.CodecError) as caught:
        codec.decode(model, data)
    message = str(caught.value)
    assert message and "\n" not in message
    return message
