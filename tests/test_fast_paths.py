"""The speed paths of the PixelCNN's training pass and step-wise pass, each against the plain formula, in float64.

- the composed skips (``PixelCNN.compose_skips``): outputs and every parameter's gradient, against the sum of
  ``skips[k](out_k)`` as written;
- the channels-last maps: the logits do not depend on the layout of the images, and come out with the K logits of
  each value side by side, which is what lets the loss skip a copy;
- the loss over such logits (rows of a (values, K) matrix) against ``F.cross_entropy`` on [B, K, C, H, W];
- the step-wise k x k convolution that reads the rows above once per row, against the full masked convolution, and
  the quick stepper built on it (``model.walk(..., stable=False)``, what sampling uses) against the full pass.
"""

import pytest
import torch
import torch.nn.functional as F

from pixelrnn import distributions
from pixelrnn.masks import ColourGroups, MaskedConv2d
from pixelrnn.models.layers import RowSplitConvAt
from helpers import tiny_model

OPTIONS = [dict(), dict(grouping="interleaved"), dict(residual=False), dict(num_classes=3), dict(context_channels=2)]


def conditions(model, batch, gen):
    y = torch.randint(0, 3, (batch,), generator=gen) if model.settings.num_classes else None
    channels = model.settings.context_channels
    context = torch.randn(batch, channels, 4, 3, dtype=torch.float64, generator=gen) if channels else None
    return y, context


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("channels", [1, 3])
def test_composed_skips_equal_the_skips_as_written(options, channels):
    model = tiny_model("pixelcnn", (channels, 4, 3), 5, gain=2.0, **options).train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (3, channels, 4, 3), generator=gen)
    y, context = conditions(model, len(x), gen)
    grad = torch.randn(3, 5, channels, 4, 3, dtype=torch.float64, generator=gen)
    results = []
    for composed in (True, False):
        model.compose_skips = composed
        logits = model(x, y, context)
        results.append((logits, torch.autograd.grad(logits, list(model.parameters()), grad, allow_unused=True)))
    (fast, fast_grads), (plain, plain_grads) = results
    assert torch.allclose(fast, plain, atol=1e-12)
    for a, b in zip(fast_grads, plain_grads):
        assert (a is None) == (b is None)
        assert a is None or torch.allclose(a, b, atol=1e-12)


def test_the_logits_do_not_depend_on_the_layout_of_the_images():
    model = tiny_model("pixelcnn", (3, 5, 4), 6)
    x = torch.randint(0, 6, (2, 3, 5, 4), generator=torch.Generator().manual_seed(0))
    stored_by_pixel = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # how a data set's array may hold them
    with torch.no_grad():
        logits = model(x)
        assert torch.equal(logits, model(stored_by_pixel))
    # Channels-last all the way to the head: the K logits of each value lie side by side in memory.
    assert distributions._rows_order(logits) is not None


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layout", ["by value", "by pixel", "K last"])
def test_the_loss_over_rows_equals_the_cross_entropy(channels, layout):
    gen = torch.Generator().manual_seed(1)
    b, k, h, w = 2, 7, 3, 4
    if layout == "by value":  # [B, K, C, H, W] contiguous: cross_entropy itself
        logits = torch.randn(b, k, channels, h, w, dtype=torch.float64, generator=gen)
    elif layout == "by pixel":  # a channels-last head's [B, C*K, H, W] unfolded with contiguous colour groups
        out = torch.randn(b, h, w, channels * k, dtype=torch.float64, generator=gen).permute(0, 3, 1, 2)
        logits = out.view(b, channels, k, h, w).transpose(1, 2)
    else:
        logits = torch.randn(b, channels, h, w, k, dtype=torch.float64, generator=gen).permute(0, 4, 1, 2, 3)
    logits.requires_grad_()
    x = torch.randint(0, k, (b, channels, h, w), generator=gen)
    fast, reference = distributions.log_probs(logits, x), -F.cross_entropy(logits, x, reduction="none")
    assert fast.shape == reference.shape and torch.allclose(fast, reference, atol=1e-12)
    grad = torch.randn(reference.shape, dtype=torch.float64, generator=gen)
    assert torch.allclose(*(torch.autograd.grad(v, logits, grad)[0] for v in (fast, reference)), atol=1e-12)


def test_the_row_cross_entropy_has_the_values_and_gradients_of_cross_entropy():
    gen = torch.Generator().manual_seed(2)
    z = torch.randn(20, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    target = torch.randint(0, 6, (20,), generator=gen)
    for _ in range(3):
        grad = torch.randn(20, dtype=torch.float64, generator=gen)
        fast, reference = distributions.RowCrossEntropy.apply(z, target), F.cross_entropy(z, target, reduction="none")
        assert torch.allclose(fast, reference, atol=1e-12)
        assert torch.allclose(*(torch.autograd.grad(v, z, grad)[0] for v in (fast, reference)), atol=1e-12)


@pytest.mark.parametrize("kernel,mask_type", [(3, "B"), (5, "B"), (7, "A"), ((1, 3), "B"), ((3, 1), "B")])
@pytest.mark.parametrize("colours", [ColourGroups(1), ColourGroups(3)])
def test_the_row_split_convolution_equals_the_full_one_at_every_pixel(kernel, mask_type, colours):
    """Stored pixel by pixel in raster order, each output equals the masked convolution of the whole map."""
    torch.manual_seed(0)
    conv = MaskedConv2d(6, 9, kernel, mask_type, colours).double()
    maps = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    full = F.conv2d(maps, conv.masked_weight(), conv.bias, padding=conv.padding)  # (B, out, H, W)
    with torch.no_grad():
        at = RowSplitConvAt(conv, 2, 5, 4, maps)
        for i in range(5):
            for j in range(4):
                at.store(i, j, maps[:, :, i, j])
                assert torch.allclose(at(i, j), full[:, :, i, j], atol=1e-12), (i, j)


def test_a_second_backward_through_the_row_cross_entropy_is_refused_not_wrong():
    """Its backward turns the saved log-softmax into the gradient in place; autograd sees that and refuses."""
    z = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    loss = distributions.RowCrossEntropy.apply(z, torch.randint(0, 7, (5,))).sum()
    torch.autograd.grad(loss, z, retain_graph=True)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(loss, z)


@torch.no_grad()
def quick_logits(model, x, y=None, context=None):
    """The logits [B, K, C, H, W] of ``x`` from the quick step-wise path, value by value."""
    out = torch.empty(len(x), model.levels, *model.image_shape, dtype=model.dtype)

    def record(c, i, j, logits):
        out[:, :, c, i, j] = logits
        return x[:, c, i, j]

    model.walk(x.clone(), lambda c, i, j: True, record, y=y, context=context, stable=False)
    return out


QUICK_CASES = [((1, 4, 3), o) for o in OPTIONS] + [((3, 4, 3), o) for o in OPTIONS] + [
    ((3, 4, 3), dict(skip=False)), ((1, 4, 3), dict(skip=False, residual=False)), ((1, 5, 4), dict(kernel=5)),
    ((3, 4, 1), dict()), ((1, 1, 5), dict()), ((3, 4, 3), dict(layers=1))]


@pytest.mark.parametrize("image_shape,options", QUICK_CASES)
def test_the_quick_stepper_gives_the_logits_of_the_full_pass(image_shape, options):
    model = tiny_model("pixelcnn", image_shape, 5, gain=2.0, **options)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 5, (3, *image_shape), generator=gen)
    y = torch.randint(0, 3, (3,), generator=gen) if model.settings.num_classes else None
    channels = model.settings.context_channels
    context = torch.randn(3, channels, *image_shape[1:], dtype=torch.float64, generator=gen) if channels else None
    with torch.no_grad():
        assert torch.allclose(quick_logits(model, x, y, context), model(x, y, context), atol=1e-12)
