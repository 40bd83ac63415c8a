"""The exact path's two passes give the same integers, and its integer models stay close to their float models.

The encoder takes every frequency table from one full-image pass; the decoder walks value by value. A file decodes
only if both give the very same integers, so the tests compare the frequency tables of the two passes for
equality (not closeness), for every family (PixelCNN, Row LSTM, Diagonal BiLSTM, and the multi-scale model over each
of them), on random tiny models and images: grey and colour, both colour-group layouts, with and without residual
and skip paths, learned or zero initial states, class-conditional, conditioned on a context map, two and three
levels.
"""

import math

import pytest
import torch

from pixelrnn import exact
from pixelrnn.errors import CheckpointError
from pixelrnn.exact.arith import Fixed
from pixelrnn.checkpoint import save_checkpoint
from pixelrnn.exact.frequencies import LOGIT_EXP, PRECISION, frequencies
from pixelrnn.exact.model import Settings, raster_walk
from pixelrnn.exact.pixelcnn import IntegerPixelCNN
from pixelrnn.exact.quantize import calibrate
from helpers import tiny_model

PIXELCNN_CASES = {
    "grey": ((1, 5, 4), 7, {}),
    "colour": ((3, 4, 4), 16, {}),
    "colour-interleaved": ((3, 3, 4), 5, dict(grouping="interleaved")),
    "no-residual-no-skip": ((1, 4, 5), 4, dict(residual=False, skip=False)),
    "no-skip": ((3, 3, 3), 4, dict(skip=False)),
    "classes": ((1, 4, 4), 8, dict(num_classes=3)),
    "colour-classes": ((3, 3, 3), 6, dict(num_classes=2, layers=3)),
}


def conditional(model):
    """Give a class-conditional model's class vectors random values: they start at zero."""
    with torch.no_grad():
        for embedding in getattr(model, "class_bias", []):
            embedding.weight.normal_(generator=torch.Generator().manual_seed(7))
    return model


def stepwise_frequencies(integer, x, y=None, context=None):
    """The frequency tables (B, C, H, W, K) of ``x`` from the step-wise pass, value by value, as the decoder sees
    them (it is given the true values, as the decoder would have decoded them)."""
    out = torch.zeros(len(x), *integer.image_shape, integer.levels, dtype=torch.int64)

    def choose(c, i, j, weights):
        out[:, c, i, j] = weights.long() + 1  # the coder's weights are the frequencies minus one
        return x[:, c, i, j]

    if context is None:
        integer.walk(torch.zeros_like(x), choose, y)
    else:  # the walk of a context-conditioned stepper, as the multi-scale model runs it
        raster_walk(integer, integer.stepper(len(x), y, context), torch.zeros_like(x), choose, False, "")
    return out


FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm"]
RECURRENT_ONLY = {"no-initial-state": ((1, 4, 5), 4, dict(learn_initial_state=False, residual=False))}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", [*PIXELCNN_CASES, *RECURRENT_ONLY])
def test_the_two_passes_give_equal_frequency_tables(family, case):
    if case in RECURRENT_ONLY and family == "pixelcnn":
        pytest.skip("a PixelCNN has no recurrent state")
    shape, levels, options = {**PIXELCNN_CASES, **RECURRENT_ONLY}[case]
    model = conditional(tiny_model(family, shape, levels, dtype=torch.float32, gain=2.0, **options))
    integer = exact.quantize(model)
    x = torch.randint(0, levels, (5, *shape), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 0, 1]) % options["num_classes"] if "num_classes" in options else None
    full = integer.frequencies(x, y)
    assert full.shape == (5, *shape, levels) and (full.sum(-1) == 2**PRECISION).all() and (full >= 1).all()
    assert torch.equal(stepwise_frequencies(integer, x, y), full)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", [*PIXELCNN_CASES, *RECURRENT_ONLY])
def test_the_decoder_s_fast_stepper_gives_the_reference_stepper_s_integers(family, case):
    """The decoder's stepper (operations prepared once, rolling caches, biases folded into products) against the
    step-wise pass written with the full one: the same tables at every value, integer for integer."""
    if case in RECURRENT_ONLY and family == "pixelcnn":
        pytest.skip("a PixelCNN has no recurrent state")
    shape, levels, options = {**PIXELCNN_CASES, **RECURRENT_ONLY}[case]
    model = conditional(tiny_model(family, shape, levels, dtype=torch.float32, gain=2.0, **options))
    integer = exact.quantize(model)
    assert type(integer.stepper(2)) is not type(integer.reference_stepper(2))
    x = torch.randint(0, levels, (4, *shape), generator=torch.Generator().manual_seed(3))
    y = integer.check_labels(torch.tensor([1, 0, 1, 0]) if "num_classes" in options else None, len(x))
    tables = []
    for stepper in (integer.stepper(len(x), y), integer.reference_stepper(len(x), y)):
        seen = []

        def choose(c, i, j, weights):
            seen.append(weights.clone())
            return x[:, c, i, j]

        with torch.inference_mode():
            raster_walk(integer, stepper, torch.zeros_like(x), choose, False, "")
        tables.append(torch.stack(seen))
    assert torch.equal(*tables)


@pytest.mark.parametrize("family", ["row_lstm", "diagonal_bilstm"])
def test_a_cell_that_cannot_join_its_clamps_exactly_runs_them_apart_with_the_same_integers(family, monkeypatch):
    """Both passes join the gates' rounding and the tables' index into one clamp only where the offsets keep every
    accumulator exact; elsewhere (here: with no room proved) the gates and the cell run apart, with the same
    integers."""
    from pixelrnn.exact import recurrent, recurrent_steps
    from pixelrnn.exact.ops import Gates
    model = conditional(tiny_model(family, (3, 4, 4), 16, dtype=torch.float32, gain=2.0))
    x = torch.randint(0, 16, (3, 3, 4, 4), generator=torch.Generator().manual_seed(5))
    integer = exact.quantize(model)
    joined = stepwise_frequencies(integer, x)
    assert torch.equal(integer.frequencies(x), joined)
    gates = [op for op in integer.ops.values() if isinstance(op, Gates)]
    assert gates and all(op.joined[1].exact for op in gates)
    monkeypatch.setattr(recurrent, "EXACT_LIMIT", 0)
    apart = exact.quantize(model)
    cells = [cell for layer, *_ in apart.stepper(1).steps for cell in vars(layer).values()
             if isinstance(cell, recurrent_steps.CellAt)]
    assert cells and not any(cell.fused for cell in cells)
    assert torch.equal(stepwise_frequencies(apart, x), joined)
    assert torch.equal(apart.frequencies(x), joined)
    assert not any(op.joined[1].exact for op in apart.ops.values() if isinstance(op, Gates))


MULTISCALE_CASES = {
    "grey": ((1, 4, 4), 7, {}),
    "colour": ((3, 4, 6), 6, {}),
    "classes": ((1, 4, 4), 8, dict(num_classes=3)),
    "three-levels": ((1, 8, 8), 5, dict(small=(2, 4))),
}


@pytest.mark.parametrize("base", FAMILIES)
@pytest.mark.parametrize("case", MULTISCALE_CASES)
def test_the_multiscale_model_s_two_passes_agree_and_follow_its_order(base, case):
    """The small image first (coarsest level first), then the rest given it: the walk visits the values in the float
    model's order, and its tables equal the full pass's."""
    shape, levels, options = MULTISCALE_CASES[case]
    model = tiny_model("multiscale", shape, levels, dtype=torch.float32, gain=1.5, base=base, **options)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.normal_(generator=torch.Generator().manual_seed(7))
    integer = exact.quantize(model)
    x = torch.randint(0, levels, (3, *shape), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 2, 1]) if "num_classes" in options else None
    full = integer.frequencies(x, y)
    seen = []
    out = torch.zeros_like(full)

    def choose(c, i, j, weights):
        out[:, c, i, j] = weights.long() + 1
        seen.append((c, i, j))
        return x[:, c, i, j]

    integer.walk(torch.zeros_like(x), choose, y)
    assert seen == integer.order() == model.order()
    assert torch.equal(out, full)
    order = torch.tensor(integer.order())
    assert torch.equal(integer.ordered_weights(x, y).long() + 1, full[:, order[:, 0], order[:, 1], order[:, 2]])
    with torch.no_grad():
        reference = torch.log_softmax(model(x, y).double(), 1)
    got = torch.log_softmax(integer.logits(x, y).permute(0, 4, 3, 1, 2) * 2.0**-LOGIT_EXP, 1)
    assert (got - reference).abs().max() < 0.01


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("case", ["grey", "colour", "classes"])
def test_the_integer_model_is_close_to_the_float_model(family, case):
    shape, levels, options = PIXELCNN_CASES[case]
    model = conditional(tiny_model(family, shape, levels, dtype=torch.float32, gain=2.0, **options))
    integer = exact.quantize(model)
    x = torch.randint(0, levels, (8, *shape), generator=torch.Generator().manual_seed(2))
    y = torch.arange(8) % options["num_classes"] if "num_classes" in options else None
    with torch.no_grad():
        reference = torch.log_softmax(model(x, y).double(), 1)  # (B, K, C, H, W)
    got = torch.log_softmax(integer.logits(x, y).permute(0, 4, 3, 1, 2) * 2.0**-LOGIT_EXP, 1)
    assert (got - reference).abs().max() < 0.01  # 16-bit activations: the logits' own rounding dominates
    bits = -reference.gather(1, x[:, None]).sum() / math.log(2)
    coded = (PRECISION - torch.log2(integer.frequencies(x, y).gather(-1, x[..., None]).double())).sum()
    assert abs(coded / bits - 1) < 0.005


def test_a_context_map_conditions_both_passes_alike():
    """The multi-scale model's conditional PixelCNN: a (B, H, W, c) integer map biases every layer."""
    model = tiny_model("pixelcnn", (1, 4, 4), 6, dtype=torch.float32, gain=2.0, context_channels=3, num_classes=2)
    conditional(model)
    gen = torch.Generator().manual_seed(4)
    x = torch.randint(0, 6, (4, 1, 4, 4), generator=gen)
    y = torch.tensor([0, 1, 1, 0])
    context = Fixed(torch.randint(-3000, 3000, (4, 4, 4, 3), generator=gen).double(), 12)

    def run(integer, net, images, labels):
        return integer.logits(images, labels, context=context, net=net)

    integer = calibrate(IntegerPixelCNN, model, x, y, Settings(), {"calibration": "test"}, run)
    with torch.no_grad():
        reference = torch.log_softmax(model(x, y, context.real().permute(0, 3, 1, 2).float()).double(), 1)
        logits = integer.logits(x, y, context=context)
    got = torch.log_softmax(logits.permute(0, 4, 3, 1, 2) * 2.0**-LOGIT_EXP, 1)
    assert (got - reference).abs().max() < 0.01
    assert torch.equal(stepwise_frequencies(integer, x, y, context), frequencies(logits).permute(0, 3, 1, 2, 4))


def test_quantisation_is_deterministic_and_survives_storage(tmp_path):
    model = conditional(tiny_model("pixelcnn", (3, 3, 4), 5, dtype=torch.float32, num_classes=2))
    integer = exact.quantize(model)
    assert exact.fingerprint(exact.quantize(model)) == exact.fingerprint(integer)
    exact.save_integer(tmp_path / "exact.safetensors", integer)
    loaded = exact.load_integer(tmp_path / "exact.safetensors", exact.FAMILIES)
    assert exact.fingerprint(loaded) == exact.fingerprint(integer) and loaded.info == integer.info
    x = torch.randint(0, 5, (3, 3, 3, 4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.frequencies(x, torch.tensor([0, 1, 1])), integer.frequencies(x, torch.tensor([0, 1, 1])))


def test_a_float64_model_gives_the_same_integers_as_its_float32_weights():
    """Quantisation reads the stored weights exactly: the same values in another dtype are the same integers."""
    model = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32)
    a, b = exact.quantize(model), exact.quantize(model.double())
    assert exact.fingerprint(a) == exact.fingerprint(b)


def test_a_damaged_integer_model_is_refused(tmp_path):
    model = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32)
    path = tmp_path / "exact.safetensors"
    exact.save_integer(path, exact.quantize(model))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # a bit of the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="damaged"):
        exact.load_integer(path, exact.FAMILIES)
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        exact.load_integer(path, exact.FAMILIES)


def test_the_integer_model_is_stored_beside_the_checkpoint_and_reused(tmp_path):
    model = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32)
    folder = save_checkpoint(tmp_path / "ckpt", model)
    integer = exact.for_checkpoint(model, folder)
    stored = folder / exact.FILE
    assert stored.is_file()
    assert exact.fingerprint(exact.for_checkpoint(model, folder)) == exact.fingerprint(integer)
    other = tiny_model("pixelcnn", (1, 4, 4), 8, dtype=torch.float32, seed=3)  # new weights: made again
    assert exact.fingerprint(exact.for_checkpoint(other, folder)) != exact.fingerprint(integer)


def held_bytes(stepper) -> int:
    """The bytes of every tensor storage reachable from a stepper's attributes (each storage once; not through the
    integer model, whose weights do not grow with the batch)."""
    from pixelrnn.exact.model import IntegerModel
    seen, visited, total, todo = set(), set(), 0, [stepper]
    while todo:
        item = todo.pop()
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            if storage.data_ptr() not in seen:
                seen.add(storage.data_ptr())
                total += storage.nbytes()
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, (type, IntegerModel)) and id(item) not in visited:
            visited.add(id(item))
            todo.extend(vars(item).values())
    return total


@pytest.mark.parametrize("family", [*FAMILIES, "multiscale"])
def test_the_decoder_s_memory_estimate_bounds_what_its_stepper_holds_per_image(family):
    """``step_bytes`` sizes the decoder's batches: what a stepper holds for each further image stays within it."""
    options = dict(base="row_lstm") if family == "multiscale" else {}
    model = tiny_model(family, (1, 6, 6), 5, dtype=torch.float32, gain=1.5, **options)
    integer = exact.quantize(model)
    steppers = {}
    for batch in (8, 24):
        x = torch.zeros(batch, 1, 6, 6, dtype=torch.long)
        if family == "multiscale":
            small = x[:, :, ::integer.factor, ::integer.factor]
            steppers[batch] = integer.conditional.stepper(batch, None, integer.context(integer.net, small))
        else:
            steppers[batch] = integer.stepper(batch)
    per_image = (held_bytes(steppers[24]) - held_bytes(steppers[8])) / 16
    assert 0 < per_image <= integer.step_bytes()
