"""The Row LSTM on one wavefront over its layers: equal to the layer-by-layer model, outputs and gradients."""

import pytest
import torch

import pixelrnn
from pixelrnn.models.row_wavefront import RowWavefront, cells, diagonals, windows
from helpers import randomise_initial_states, tiny_model
from test_recurrent import by_hand


def test_diagonals_visit_every_cell_once_after_the_cells_it_needs():
    """Cell (l, i) comes after (l - 1, i), its input, and after (l, i - 1), its row above."""
    for height, layers in [(4, 3), (2, 5), (1, 1), (3, 1), (1, 4)]:
        step = {}
        for d, (first, n, row) in enumerate(diagonals(height, layers)):
            for m in range(n):
                step[(first + m, row - m)] = d
        assert sorted(step) == [(l, i) for l in range(layers) for i in range(height)]
        assert all(step[(l, i)] > step[(l - 1, i)] for l in range(1, layers) for i in range(height))
        assert all(step[(l, i)] > step[(l, i - 1)] for l in range(layers) for i in range(1, height))


def test_cells_and_windows_are_views_of_the_right_elements():
    buffer = torch.arange(4 * 5 * 3 * 2).view(4, 5, 3, 2)  # (layer, row, column, feature)
    view = cells(buffer, 1, 3, 4)  # (1, 4), (2, 3), (3, 2)
    assert view.untyped_storage().data_ptr() == buffer.untyped_storage().data_ptr()  # a view, not a copy
    assert torch.equal(view, torch.stack([buffer[1, 4], buffer[2, 3], buffer[3, 2]]))
    row = torch.arange(5 * 2).view(5, 2)  # 5 columns (one of padding each side) of 2 features
    expected = torch.stack([row[j:j + 3].reshape(-1) for j in range(3)])  # tap-major: [col j, col j+1, col j+2]
    assert torch.equal(windows(row, 3), expected)


def random_conditioning(model, seed=1):
    """Class biases start at zero, which would hide them: give them random values."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for embedding in getattr(model, "class_bias", []):
            embedding.weight.copy_(torch.randn(embedding.weight.shape, generator=gen, dtype=embedding.weight.dtype))


CASES = {
    "default": ((1, 4, 5), {}),
    "rgb": ((3, 3, 4), {}),
    "rgb-interleaved": ((3, 3, 4), dict(grouping="interleaved")),
    "no-residual": ((1, 4, 3), dict(residual=False)),
    "no-skip": ((1, 4, 3), dict(skip=False)),
    "neither": ((3, 2, 3), dict(skip=False, residual=False)),
    "zero-states": ((1, 3, 4), dict(learn_initial_state=False)),
    "kernel-5": ((1, 3, 6), dict(kernel=5, layers=3)),
    "more-layers-than-rows": ((1, 2, 3), dict(layers=5)),
    "one-layer": ((1, 4, 3), dict(layers=1)),
    "one-row": ((1, 1, 4), dict(layers=3)),
    "one-column": ((3, 4, 1), {}),
    "classes": ((3, 3, 3), dict(num_classes=3)),
    "context": ((1, 4, 4), dict(context_channels=2)),
    "classes-and-context": ((1, 3, 3), dict(num_classes=2, context_channels=2, skip=False)),
}


@pytest.mark.parametrize("case", CASES)
def test_the_wavefront_equals_the_layer_by_layer_model(case):
    """Logits and the gradients of every parameter (and of a context map), in float64, against the layer-by-layer
    scan and against the plain per-layer reference."""
    shape, options = CASES[case]
    model = tiny_model("row_lstm", shape, 4, gain=1.5, **options)
    random_conditioning(model)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (3, *shape), generator=gen)
    y = torch.tensor([0, 1, 1]) if options.get("num_classes") else None
    context = (torch.randn(3, 2, *shape[1:], generator=gen, dtype=torch.float64, requires_grad=True)
               if options.get("context_channels") else None)
    inputs = [*model.parameters(), *([context] if context is not None else [])]
    weight = torch.randn(3, 4, *shape, generator=gen, dtype=torch.float64)  # a loss that weighs every logit

    def logits_and_grads(wavefront):
        model.wavefront = wavefront
        logits = model(x, y, context)
        return logits, torch.autograd.grad((logits * weight).sum(), inputs)

    (layered, layered_grads), (wave, wave_grads) = logits_and_grads(False), logits_and_grads(True)
    assert torch.allclose(wave, layered, atol=1e-12, rtol=0)
    if context is None and y is None:
        with torch.no_grad():
            assert torch.allclose(wave, by_hand(model, x), atol=1e-12, rtol=0)
    for (name, _), a, b in zip(model.named_parameters(), wave_grads, layered_grads):
        assert torch.allclose(a, b, atol=1e-11, rtol=0), name
    if context is not None:
        assert torch.allclose(wave_grads[-1], layered_grads[-1], atol=1e-11, rtol=0)
    assert any(g.abs().sum() > 0 for g in wave_grads)


@pytest.mark.parametrize("residual,cond_shape", [(True, None), (False, (2, 1, 2, 1, 8)), (True, (2, 3, 2, 3, 8))],
                         ids=["plain", "per-image-bias", "bias-map"])
def test_the_wavefront_passes_gradcheck(residual, cond_shape):
    """The hand-written backward against finite differences, every input at once, on a tiny stack."""
    gen = torch.Generator().manual_seed(0)
    layers, hid, kernel, (b, height, width) = 2, 2, 3, (2, 3, 3)
    taps = kernel // 2 + 1

    def rand(*shape):
        return (torch.randn(shape, generator=gen, dtype=torch.float64) * 0.7).requires_grad_()

    inputs = (rand(b, height, width, 2 * hid), rand(layers, 2 * hid * taps + hid * kernel, 4 * hid),
              rand(layers, 4 * hid), None if cond_shape is None else rand(*cond_shape), rand(layers, hid),
              rand(layers, hid), rand(layers, hid, 2 * hid), rand(layers, 2 * hid))
    assert torch.autograd.gradcheck(lambda *a: RowWavefront.apply(*a, kernel, residual), inputs, atol=1e-8, rtol=1e-6)


def test_the_wavefront_is_a_speed_setting_only():
    """Same parameters, same checkpoint names, same config: a model trained either way loads either way."""
    model = pixelrnn.build_model("row_lstm", (1, 4, 4), 4, layers=2, hidden=4, head=8)
    names = list(model.state_dict())
    model.wavefront = not model.wavefront
    assert list(model.state_dict()) == names and "wavefront" not in model.config
    randomise_initial_states(model)
    x = torch.randint(0, 4, (2, 1, 4, 4))
    with torch.no_grad():
        a = model(x)
        model.wavefront = not model.wavefront
        assert torch.allclose(model(x), a, atol=1e-5)
