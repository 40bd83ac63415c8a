"""The exact path's primitives: integer arithmetic with proved bounds, nonlinearity tables, frequency tables, and
constriction reading those tables without rounding anything.

The exact path (pixelrnn.exact) is only as exact as these pieces: every rescaling must be exact IEEE arithmetic, an
overflow-prone layer must be refused when it is made, a table must be the same integers wherever it is computed,
and the coder must see the very frequencies the model made.
"""

import decimal
import hashlib

import constriction
import numpy as np
import pytest
import torch

from pixelrnn.errors import ConfigError
from pixelrnn.exact import arith, tables
from pixelrnn.exact.frequencies import EXP_BITS, LOGIT_EXP, PRECISION, coder_weights, frequencies
from pixelrnn.exact.ops import Linear
from pixelrnn.exact.quantize import generated_images


def test_rescale_rounds_half_up_and_clamps():
    acc = torch.tensor([-6.0, -5.0, -4.0, -3.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 2.0**40], dtype=torch.float64)
    got = arith.rescale(acc, 2, 10)  # acc / 4, halves up: -1.5 -> -1, -1.25 -> -1, 0.75 -> 1, 1.25 -> 1, 1.5 -> 2
    assert got.tolist() == [-1, -1, -1, -1, 0, 0, 0, 1, 1, 1, 2, 10]
    assert arith.rescale(acc[:3], -3, 100).tolist() == [-48, -40, -32]  # a left shift is exact


def test_rescale_is_exact_up_to_the_proved_bound():
    """Near 2**53 every step of the rescaling is still exact: compared with Python's integers."""
    rng = np.random.default_rng(0)
    ints = [int(v) for v in rng.integers(-(2**52), 2**52, 2000)] + [2**52 - 1, -(2**52) + 1, 2**51 + 2**10]
    for shift in (1, 7, 20, 40):
        got = arith.rescale(torch.tensor(ints, dtype=torch.float64), shift, 2**60).tolist()
        assert got == [(v + 2 ** (shift - 1)) >> shift for v in ints]  # floor((v + half) / 2**shift)


def test_an_overflow_prone_layer_is_refused():
    weight = torch.full((4096, 2), 2.0**15, dtype=torch.float64)
    assert arith.worst_case(weight, 2**15 - 1) < 2**53  # 2**42: fine
    Linear(weight, None, ((0, 0),), 0, 0, 0, 2**15, 2**15).check("fine")
    wide = torch.full((2**24, 1), 2.0**15, dtype=torch.float64)  # fan-in 2**24 of 16-bit weights and activations
    with pytest.raises(ConfigError, match="layer wide cannot be computed exactly.*2\\*\\*53"):
        Linear(wide, None, ((0, 0),), 0, 0, 0, 2**15, 2**15 - 1).check("wide")
    with pytest.raises(ConfigError, match="cannot be computed exactly"):  # the bias counts too
        Linear(weight, torch.tensor([2.0**53, 0]), ((0, 0),), 0, 0, 0, 2**15, 1).check("biased")


def test_the_output_exponent_is_chosen_with_exact_integers():
    # 1000 at exponent 10 (0.977): with 8 bits (bound 127) and one bit of headroom, 1000 * 2**-4 = 62.5 fits.
    assert arith.choose_exp(1000, 10, 8, 1) == 6
    assert 1000 * 2.0 ** (6 - 10) * 2 <= 127 < 1000 * 2.0 ** (7 - 10) * 2
    assert arith.choose_exp(0, 12, 16, 1) == 12  # nothing met: the accumulator's own exponent
    assert arith.choose_exp(2**70, 0, 16, 1) == -57  # far above the range: 2**70 * 2**-57 * 2 = 2**14 fits


def test_weights_quantise_exactly_and_deterministically():
    w = torch.tensor([0.3, -0.7, 1e-9, 0.0], dtype=torch.float32)
    q, t = arith.quantize_tensor(w, 16)
    assert t == 15  # max 0.7 = 0.7 * 2**0: 0.7 * 2**15 < 2**15
    expected = [round(float(v) * 2**15) for v in w.double()]  # Python rounds half to even, as torch.round does
    assert q.tolist() == expected and q.abs().max() <= 2**15
    top, _ = arith.quantize_tensor(torch.tensor([1 - 2.0**-20, -0.25]), 16)  # 0.99999905 * 2**15 rounds to 2**15
    assert top.tolist() == [2**15 - 1, -(2**13)]  # kept a 16-bit integer: int16 on disk
    q3, t3 = arith.quantize_tensor(w, 16, divisor=3)
    assert q3.tolist() == [round(float(v) / 3 * 2**t3) for v in w.double()]


def test_tables_are_the_correctly_rounded_values():
    """Every entry against decimal at a much higher precision, rounded half to even."""
    ctx = decimal.Context(prec=80)
    for in_exp, bits in [(8, EXP_BITS), (4, 12)]:
        table = tables.exp_table(in_exp, bits)
        assert table[0] == 2**bits and table[-1] == 0 and (table[:-1] > 0).all()
        for d in [0, 1, 2, 3, len(table) // 3, len(table) - 2, len(table) - 1]:
            value = ctx.multiply(ctx.exp(ctx.divide(-d, 2**in_exp)), 2**bits)
            assert table[d] == int(value.to_integral_value(rounding=decimal.ROUND_HALF_EVEN))
        assert (table[1:] <= table[:-1]).all()  # decreasing
    sig, tanh = tables.sigmoid_table(10, 15), tables.tanh_table(10, 15)
    half = (len(sig) - 1) // 2
    assert sig[half] == 2**14 and sig[-1] == 2**15 and sig[0] == 0
    assert torch.equal(tanh, -tanh.flip(0)) and tanh[(len(tanh) - 1) // 2] == 0
    for n in (1, 100, 1000, 3000):
        x = ctx.divide(n, 2**10)
        assert sig[half + n] == int(ctx.divide(2**15, 1 + ctx.exp(-x)).to_integral_value(decimal.ROUND_HALF_EVEN))
    assert torch.equal(tables.lookup(sig, torch.tensor([-10**9, 0.0, 10**9])), torch.tensor([0.0, 2**14, 2**15],
                                                                                            dtype=torch.float64))


def test_tables_are_pinned():
    """The integers of the tables are part of the file format: the same on every machine, and in every release
    whose files should still decode (recompute equals the digest recorded when the format was fixed)."""
    def digest(t):
        return hashlib.sha256(t.numpy().astype("<i8").tobytes()).hexdigest()[:16]

    assert len(tables.exp_table(LOGIT_EXP, EXP_BITS)) == 5147
    assert digest(tables.exp_table(LOGIT_EXP, EXP_BITS)) == EXP_DIGEST


EXP_DIGEST = "3257b2387dcb203c"


def random_logits(shape, levels, seed=0, spread=40.0):
    gen = torch.Generator().manual_seed(seed)
    return torch.round(torch.randn(*shape, levels, generator=gen, dtype=torch.float64) * spread * 2**LOGIT_EXP)


@pytest.mark.parametrize("levels", [2, 3, 17, 256])
def test_frequencies_sum_to_the_precision_and_none_is_zero(levels):
    logits = random_logits((50,), levels)
    logits[0] = 0  # all equal: ties everywhere
    logits[1, 0] = 2**30  # one huge logit
    freq = frequencies(logits)
    assert freq.dtype == torch.int64 and (freq.sum(-1) == 2**PRECISION).all() and (freq >= 1).all()
    assert torch.equal(coder_weights(logits), (freq - 1).double())  # what the coder is given
    # Against the softmax: the coder's cost of each value is within a hair of -log2 p.
    p = torch.softmax(logits * 2.0**-LOGIT_EXP, -1)
    cost = -torch.log2(freq.double() / 2**PRECISION)
    assert ((cost - -torch.log2(p)).abs() < 1e-3)[p > 1e-4].all()
    # Ties: the first largest logit takes the rest, whatever the device's tie rule.
    assert freq[0, 0] >= freq[0, 1:].max() and (freq[0, 1:] == freq[0, 1]).all()


def assert_frequencies_as_python_integers(logits):
    """``frequencies(logits)`` equals the recipe of :mod:`pixelrnn.exact.frequencies` done in Python integers, the
    rest going to the first of the largest logits (``list.index``)."""
    table = [int(v) for v in tables.exp_table(LOGIT_EXP, EXP_BITS)]
    for row, got in zip(logits.long().tolist(), frequencies(logits).tolist()):
        top = max(row)
        e = [table[min(top - v, len(table) - 1)] for v in row]
        m = ((2**PRECISION - len(row)) << EXP_BITS) // sum(e)
        f = [1 + (v * m >> EXP_BITS) for v in e]
        f[row.index(top)] += 2**PRECISION - sum(f)
        assert got == f


def test_frequencies_match_a_reference_in_python_integers():
    logits = random_logits((20,), 11, seed=3, spread=3.0)
    assert_frequencies_as_python_integers(logits)


def quantile_symbol(weights: np.ndarray, quantile: int) -> int:
    """The symbol constriction's range decoder finds at ``quantile`` (in units of 2**-24) of its first decode:
    a stream whose first word carries the quantile in its top 24 bits."""
    decoder = constriction.stream.queue.RangeDecoder(np.array([quantile << 8, 0], dtype=np.uint32))
    return int(decoder.decode(constriction.stream.model.Categorical(perfect=False), weights[None])[0])


@pytest.mark.parametrize("levels", [2, 5, 256])
def test_constriction_codes_with_exactly_these_frequencies(levels):
    """Every symbol's interval in constriction's range decoder is exactly [F_k, F_k + f_k): its quantisation of the
    weights f - 1 reproduces the integer table, boundary by boundary, for float64 and float32 weights alike."""
    freq = frequencies(random_logits((3,), levels, seed=levels, spread=5.0))
    for row in freq:
        starts = np.concatenate([[0], np.cumsum(row.numpy())])
        for dtype in (np.float64, np.float32):
            weights = (row - 1).numpy().astype(dtype)  # what the codec gives it: f - 1
            for k in range(levels):
                assert quantile_symbol(weights, int(starts[k])) == k
                assert quantile_symbol(weights, int(starts[k + 1]) - 1) == k


def test_generated_calibration_images_are_pinned():
    """The calibration images decide the integer model: a fixed integer recipe, the same on every machine."""
    images = generated_images(5, (3, 6, 7), 17)
    assert images.shape == (5, 3, 6, 7) and images.min() >= 0 and images.max() < 17
    assert hashlib.sha256(images.numpy().astype("<i8").tobytes()).hexdigest()[:16] == IMAGES_DIGEST
    assert torch.equal(generated_images(5, (3, 6, 7), 17), images)


IMAGES_DIGEST = "139485782b8e051c"


def test_the_largest_logit_that_comes_first_gets_the_rest_when_logits_tie():
    """Ties at the top: the remainder goes to the first of the largest logits, by the key gap * K + k, on every
    device (no argmax tie rule is relied on)."""
    rows = [[5, 9, 9, 1], [9, 9, 9, 9], [0, 0, 3, 3], [-7, 2, -7, 2], [4, 1, 1, 4]]
    logits = torch.tensor(rows, dtype=torch.float64) * 2**LOGIT_EXP
    assert_frequencies_as_python_integers(logits)


MASK_B_TAPS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 0))
MASK_A_TAPS = tuple((dy, dx) for dy in range(-3, 1) for dx in range(-3, 4) if dy < 0 or dx < 0)
ROW_TAPS = ((0, -1), (0, 0), (0, 1))  # a 1 x 3 input-to-state convolution
SKEWED_TAPS = ((-1, 0), (0, 0), (1, 0), (0, -2))  # reads below and far left: the frame's margins in every direction


@pytest.mark.parametrize("taps", [MASK_B_TAPS, MASK_A_TAPS, ROW_TAPS, SKEWED_TAPS, ((0, 0),)])
@pytest.mark.parametrize("features", [3, 16, 40])
@pytest.mark.parametrize("relu", [False, True])
def test_a_whole_map_from_shifted_views_equals_the_gathered_columns(taps, features, relu):
    """``Linear.map`` (one product per tap on views of the padded frame, for many features) gives the integers of the
    reference: every tap gathered into columns, one product."""
    g = torch.Generator().manual_seed(len(taps) * 100 + features)
    weight = torch.randint(-2**15 + 1, 2**15, (len(taps) * features, 24), generator=g).double()
    bias = torch.randint(-2**20, 2**20, (24,), generator=g).double()
    op = Linear(weight, bias, taps, in_exp=6, w_exp=14, out_exp=9, bound=2**15 - 1, in_bound=2**15 - 1, relu=relu)
    op.check("test")
    for batch, height, width in [(3, 7, 9), (1, 1, 5), (2, 5, 1)]:
        x = torch.randint(-2**15 + 1, 2**15, (batch, height, width, features), generator=g).double()
        expected = op(op.columns(x))
        got = op.map(x)
        assert got.shape == expected.shape and torch.equal(got, expected)
        assert got.is_contiguous()


def test_a_sum_of_terms_is_rescaled_as_python_integers_would():
    """``Add``: the exact sum at the finest exponent, then rounding half up and the clamp; terms that broadcast (a
    class bias) and in any order."""
    from pixelrnn.exact.ops import Add
    g = torch.Generator().manual_seed(5)
    a = torch.randint(-2**15, 2**15, (2, 3, 4, 5), generator=g).double()
    b = torch.randint(-2**15, 2**15, (2, 1, 1, 5), generator=g).double()
    for exps, out_exp in [((7, 9), 6), ((9, 7), 9), ((8, 8), 10), ((10, 4), 3)]:
        op = Add(exps, out_exp, bound=2**14, in_bound=2**15)
        for qs in ([arith.Fixed(a, exps[0]), arith.Fixed(b, exps[1])], [arith.Fixed(b, exps[0]), arith.Fixed(a, exps[1])]):
            got = op(qs)
            top = max(exps)
            full = [q.values.expand_as(a).long().flatten().tolist() for q in qs]
            for k, value in enumerate(got.flatten().tolist()):
                s = sum(t[k] << (top - q.exp) for t, q in zip(full, qs))
                shift = top - out_exp
                r = (s + (1 << (shift - 1))) >> shift if shift > 0 else s << -shift
                assert value == max(-2**14, min(2**14, r))


@pytest.mark.parametrize("shift", [5, 0, -3])
def test_rescaling_in_place_gives_the_same_integers(shift):
    acc = torch.randint(-2**40, 2**40, (1000,), generator=torch.Generator().manual_seed(shift + 9)).double()
    expected = arith.rescale(acc, shift, 2**30)
    assert torch.equal(arith.rescale_(acc.clone(), shift, 2**30), expected)


def written_out_lstm_cell(pre, cell, sigmoid, tanh):
    """Equation 3 in integers as :func:`pixelrnn.exact.recurrent.lstm_cell` documents it: a lookup per table and a
    rescaling per product."""
    from pixelrnn.exact.recurrent import C_BOUND, C_EXP, GATE_BOUND, H_EXP, T_IN, T_OUT
    hid = pre.shape[-1] // 4
    gates = tables.lookup(sigmoid, pre[..., :3 * hid])
    o, f, i = gates[..., :hid], gates[..., hid:2 * hid], gates[..., 2 * hid:]
    g = tables.lookup(tanh, pre[..., 3 * hid:])
    c = arith.rescale(f * cell + i * g, 2 * T_OUT - C_EXP, C_BOUND)
    squashed = tables.lookup(tanh, arith.rescale(c, C_EXP - T_IN, GATE_BOUND))
    return arith.rescale(squashed * o, 2 * T_OUT - H_EXP, 2**H_EXP), c


def test_the_lstm_cell_with_joined_tables_gives_the_written_out_integers():
    """One gather for the four gates from tables that carry the rescalings' powers of two: the same integers as a
    lookup per table and a rescaling per product, from saturated gates to cells at their clamp."""
    from pixelrnn.exact.recurrent import C_BOUND, GATE_BOUND, T_IN, T_OUT, CellTables, lstm_cell
    sigmoid = tables.sigmoid_table(T_IN, T_OUT).double()
    tanh = tables.tanh_table(T_IN, T_OUT).double()
    gen = torch.Generator().manual_seed(0)
    hid = 5
    pre = torch.cat([torch.randint(-2**12, 2**12, (300, 4 * hid), generator=gen),
                     torch.randint(-GATE_BOUND, GATE_BOUND + 1, (100, 4 * hid), generator=gen)]).double()
    pre[0] = GATE_BOUND
    pre[1] = -GATE_BOUND
    cell = torch.cat([torch.randint(-2**16, 2**16, (300, hid), generator=gen),
                      torch.randint(-C_BOUND, C_BOUND + 1, (100, hid), generator=gen)]).double()
    cell[0], cell[1] = C_BOUND, -C_BOUND  # with every gate saturated: beyond the cell's clamp
    h, c = lstm_cell(pre, cell, CellTables(sigmoid, tanh))
    want_h, want_c = written_out_lstm_cell(pre, cell, sigmoid, tanh)
    assert torch.equal(c, want_c) and torch.equal(h, want_h)
    assert c.abs().max() == C_BOUND  # the clamps were reached, not only the middle of the tables
