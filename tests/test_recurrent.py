"""The Row LSTM and the Diagonal BiLSTM layers: skewing, directions, receptive fields, fast path = reference."""

import pytest
import torch

from pixelrnn.masks import ColourGroups
from pixelrnn.models.diagonal_bilstm import DiagonalBiLSTMLayer, shift_down, skew, unskew
from pixelrnn.models.row_lstm import RowLSTMLayer
from helpers import randomise_initial_states, tiny_model


def test_skew_by_hand():
    x = torch.arange(1, 10).view(1, 1, 3, 3)  # a b c / d e f / g h i
    expected = torch.tensor([[1, 2, 3, 0, 0], [0, 4, 5, 6, 0], [0, 0, 7, 8, 9]])
    assert torch.equal(skew(x)[0, 0], expected)


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 1), (2, 2, 5, 2), (1, 3, 6, 1)])
def test_unskew_inverts_skew(shape):
    x = torch.randn(shape)
    assert torch.equal(unskew(skew(x)), x)
    # The same with the map channels-last and features trailing, as the fast path holds it.
    y = x.permute(0, 2, 3, 1)
    assert torch.equal(unskew(skew(y, row_dim=1), row_dim=1), y)
    assert torch.equal(skew(y, row_dim=1), skew(x).permute(0, 2, 3, 1))


def test_shift_down_by_hand():
    x = torch.tensor([[1, 2], [3, 4], [5, 6]]).view(1, 1, 3, 2)
    assert shift_down(x)[0, 0].tolist() == [[0, 0], [1, 2], [3, 4]]


def influence(layer, height, width, channels):
    """For each output pixel, the set of input pixels whose change reaches it (from exact float64 gradients)."""
    x = torch.randn(1, channels, height, width, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    seen = {}
    for r in range(height):
        for c in range(width):
            (grad,) = torch.autograd.grad(out[0, :, r, c].sum(), x, retain_graph=True)
            pixels = grad[0].abs().sum(0).nonzero().tolist()
            seen[(r, c)] = {tuple(p) for p in pixels}
    return seen


def test_diagonal_directions_and_down_shift_by_hand():
    """Left-to-right sees the rectangle up-left of a pixel (itself included); right-to-left, mirrored back and
    shifted down, adds the rows above from the pixel's column rightwards. Nothing else."""
    torch.manual_seed(0)
    height, width = 4, 5
    layer = DiagonalBiLSTMLayer(hidden=3, colours=ColourGroups(1, "contiguous")).double()
    seen = influence(layer, height, width, channels=6)
    for (r, c), pixels in seen.items():
        left_to_right = {(i, j) for i in range(r + 1) for j in range(c + 1)}
        right_to_left = {(i, j) for i in range(r) for j in range(c, width)}
        assert pixels == left_to_right | right_to_left, (r, c)


def test_row_lstm_layer_sees_a_triangle():
    """Row r - d contributes columns c - d - 1 .. c + d (k = 3); the own row only columns c - 1 and c."""
    torch.manual_seed(0)
    height, width = 5, 7
    layer = RowLSTMLayer(hidden=3, kernel=3, colours=ColourGroups(1, "contiguous")).double()
    seen = influence(layer, height, width, channels=6)
    for (r, c), pixels in seen.items():
        triangle = {(r - d, j) for d in range(r + 1) for j in range(c - d - 1, c + d + 1) if 0 <= j < width}
        assert pixels == triangle, (r, c)


def test_row_lstm_model_does_not_see_the_whole_context():
    """Through the 7 x 7 first layer and two layers the triangle widens, but stays bounded: a pixel at the far
    right of the row above is out of reach of the first pixel of a row."""
    model = tiny_model("row_lstm", (1, 3, 12), 4)
    x = torch.randint(0, 4, (1, 1, 3, 12))
    y = x.clone()
    y[0, 0, 1, 11] = (x[0, 0, 1, 11] + 1) % 4
    with torch.no_grad():
        assert torch.equal(model(x)[:, :, 0, 2, 0], model(y)[:, :, 0, 2, 0])


@pytest.mark.parametrize("image_shape", [(1, 4, 4), (3, 3, 4)])
def test_diagonal_bilstm_model_sees_the_whole_context(image_shape):
    """The last value's logits change when any earlier value changes."""
    c, h, w = image_shape
    model = tiny_model("diagonal_bilstm", image_shape, 4, hidden=8, head=32)
    x = torch.randint(0, 4, (1, *image_shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model(x)[:, :, c - 1, h - 1, w - 1]
        for k in range(c):
            for i in range(h):
                for j in range(w):
                    if (k, i, j) == (c - 1, h - 1, w - 1):
                        continue
                    y = x.clone()
                    y[0, k, i, j] = (x[0, k, i, j] + 2) % 4
                    assert not torch.equal(model(y)[:, :, c - 1, h - 1, w - 1], base), (k, i, j)


@pytest.mark.parametrize("make_layer", [
    lambda **kw: RowLSTMLayer(hidden=6, kernel=3, colours=ColourGroups(3, "contiguous"), **kw),
    lambda **kw: RowLSTMLayer(hidden=4, kernel=5, colours=ColourGroups(1, "interleaved"), **kw),
    lambda **kw: DiagonalBiLSTMLayer(hidden=6, colours=ColourGroups(3, "contiguous"), **kw),
    lambda **kw: RowLSTMLayer(hidden=6, kernel=3, colours=ColourGroups(3, "interleaved"), **kw),
    lambda **kw: DiagonalBiLSTMLayer(hidden=5, colours=ColourGroups(3, "interleaved"), **kw),
    lambda **kw: DiagonalBiLSTMLayer(hidden=4, colours=ColourGroups(1, "interleaved"), **kw),
], ids=["row_lstm", "row_lstm_k5", "diagonal_bilstm", "row_lstm_rgb_interleaved", "diagonal_bilstm_rgb_interleaved",
        "diagonal_bilstm_grey"])
@pytest.mark.parametrize("shape", [(2, 5, 3), (3, 4, 6), (1, 1, 1)])
@pytest.mark.parametrize("learn_initial_state", [True, False])
def test_fast_path_equals_reference(make_layer, shape, learn_initial_state):
    """Outputs and gradients (the initial states' included) of the fast recurrence equal the plain one, in float64."""
    torch.manual_seed(0)
    layer = make_layer(learn_initial_state=learn_initial_state).double()
    randomise_initial_states(layer)
    assert learn_initial_state == any("initial" in name for name, _ in layer.named_parameters())
    channels = layer.input_to_state.in_channels
    x = torch.randn(shape[0], channels, shape[1], shape[2], dtype=torch.float64, requires_grad=True)
    fast, reference = layer(x), layer.forward_reference(x)
    assert torch.allclose(fast, reference, atol=1e-12)
    weight = torch.randn_like(fast)
    grads_fast = torch.autograd.grad((fast * weight).sum(), [x, *layer.parameters()])
    grads_ref = torch.autograd.grad((reference * weight).sum(), [x, *layer.parameters()])
    for a, b in zip(grads_fast, grads_ref):
        assert torch.allclose(a, b, atol=1e-12)


def test_learned_initial_states_reach_the_first_row_and_column():
    """The learned states change the output where the paper's scan starts, and zero states give the old layer."""
    torch.manual_seed(0)
    x = torch.randn(1, 12, 3, 4, dtype=torch.float64)
    for make in (lambda **kw: RowLSTMLayer(6, 3, ColourGroups(3, "contiguous"), **kw),
                 lambda **kw: DiagonalBiLSTMLayer(6, ColourGroups(3, "contiguous"), **kw)):
        torch.manual_seed(1)
        learned = make().double()
        torch.manual_seed(1)
        zero = make(learn_initial_state=False).double()
        assert torch.equal(learned(x), zero(x))  # initialised at zero: training starts from the zero-state model
        randomise_initial_states(learned)
        assert not torch.allclose(learned(x)[:, :, 0], zero(x)[:, :, 0])


@pytest.mark.parametrize("name,wavefront", [("row_lstm", True), ("row_lstm", False), ("diagonal_bilstm", None)])
def test_bf16_autocast_stays_close_to_fp32(name, wavefront):
    model = tiny_model(name, (1, 6, 6), 16, dtype=torch.float32, layers=3)
    if wavefront is not None:  # the Row LSTM on its wavefront (the default) and layer by layer
        model.wavefront = wavefront
    x = torch.randint(0, 16, (4, 1, 6, 6))
    with torch.no_grad():
        exact = model.log_prob(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            approx = model.log_prob(x)
    assert approx.dtype == torch.float32
    assert torch.allclose(approx, exact, rtol=2e-2)


@pytest.mark.parametrize("name", ["row_lstm", "diagonal_bilstm"])
def test_residual_and_skip_switch_off(name):
    for residual, skip in [(False, False), (True, False), (False, True)]:
        model = tiny_model(name, (1, 3, 3), 2, residual=residual, skip=skip)
        assert hasattr(model, "skips") == skip
        assert model(torch.zeros(1, 1, 3, 3, dtype=torch.long)).shape == (1, 2, 1, 3, 3)


def by_hand(model, x):
    """Section 3.3's stack written out layer by layer from the model's own modules, for every residual/skip choice."""
    stream = model.input(model.to_inputs(x))  # (B, 2h, H, W)
    skips = []
    for k, layer in enumerate(model.lstm_layers):
        out = model.outputs[k](layer.forward_reference(stream))  # (B, 2h, H, W)
        stream = stream + out if model.settings.residual else out
        if model.settings.skip:
            skips.append(model.skips[k](out))
    return model.head(sum(skips) if model.settings.skip else stream)


@pytest.mark.parametrize("name", ["row_lstm", "diagonal_bilstm"])
@pytest.mark.parametrize("residual,skip", [(True, True), (False, False), (True, False), (False, True)])
def test_residual_and_skip_paths_equal_a_hand_computation(name, residual, skip):
    model = tiny_model(name, (3, 3, 4), 4, gain=2.0, layers=3, residual=residual, skip=skip)
    x = torch.randint(0, 4, (2, 3, 3, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(model(x), by_hand(model, x), atol=1e-12)


@pytest.mark.parametrize("name", ["row_lstm", "diagonal_bilstm"])
def test_switching_residual_or_skip_off_changes_the_output(name):
    """With the same weights, each switch changes the logits: the options are not ignored."""
    x = torch.randint(0, 4, (2, 1, 3, 3), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = tiny_model(name, (1, 3, 3), 4, gain=2.0)(x)
        no_residual = tiny_model(name, (1, 3, 3), 4, gain=2.0, residual=False)(x)
        assert not torch.allclose(full, no_residual)
        no_skip, no_skip_no_residual = (tiny_model(name, (1, 3, 3), 4, gain=2.0, skip=False, residual=r)(x)
                                        for r in (True, False))
    assert not torch.allclose(full, no_skip) and not torch.allclose(no_skip, no_skip_no_residual)
