"""The properties every model must have: causal, normalised, sampling what it scores, following its dtype."""

import itertools
import json
import math

import pytest
import torch

from safetensors.torch import save_file

import pixelrnn
from pixelrnn import checkpoint, distributions
from helpers import assert_causal, stepwise_logits, tiny_model

CAUSALITY_SHAPES = [(1, 4, 4), (3, 3, 3), (1, 5, 3), (3, 2, 4)]
NORMALISATION_CASES = [((1, 3, 3), 2), ((3, 2, 2), 2), ((3, 1, 2), 3)]


def every_image(image_shape, levels):
    n = math.prod(image_shape)
    values = torch.tensor(list(itertools.product(range(levels), repeat=n)))
    # itertools yields the last position fastest; reshaping in C-order gives (C, H, W) images.
    return values.reshape(-1, *image_shape)


@pytest.mark.parametrize("image_shape", CAUSALITY_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_causality(model_name, image_shape, dtype):
    """Changing any value at or after a position never changes that position's logits."""
    levels = 4
    model = tiny_model(model_name, image_shape, levels, dtype=dtype, gain=2.0)
    assert_causal(model, levels)


def test_logits_do_depend_on_the_past(model_name):
    """The causality test is not vacuous: later logits react to earlier values, G to R of its own pixel.

    A tiny random network can have every ReLU of one colour group dead at one pixel, so a dependence only has to
    show for one of a few random initialisations.
    """
    x = torch.randint(0, 4, (8, 3, 3, 3), generator=torch.Generator().manual_seed(0))
    y = x.clone()
    y[:, 0, 0, 0] = (x[:, 0, 0, 0] + 2) % 4
    for position in [(2, 2, 2), (1, 0, 0), (2, 0, 0), (0, 0, 1)]:
        seen = False
        for seed in range(5):
            model = tiny_model(model_name, (3, 3, 3), 4, seed=seed)
            with torch.no_grad():
                seen |= not torch.allclose(model(x)[:, :, position[0], position[1], position[2]],
                                           model(y)[:, :, position[0], position[1], position[2]])
        assert seen, f"value {position} never depends on the first R value"


@pytest.mark.parametrize("image_shape,levels", NORMALISATION_CASES)
def test_normalisation(model_name, image_shape, levels):
    """exp(log_prob) summed over every possible image is 1, in float64."""
    model = tiny_model(model_name, image_shape, levels, dtype=torch.float64, gain=2.0)
    images = every_image(image_shape, levels)
    with torch.no_grad():
        total = torch.cat([model.log_prob(chunk) for chunk in images.split(1024)]).exp().sum()
    assert abs(total.item() - 1.0) < 1e-6


def test_follows_parameter_dtype(model_name):
    x = torch.randint(0, 3, (2, 3, 3, 3))
    for dtype in (torch.float32, torch.float64):
        model = tiny_model(model_name, (3, 3, 3), 3, dtype=dtype)
        assert model(x).dtype == dtype
        assert model.log_prob(x).dtype == dtype


def test_config_rebuilds_the_model(model_name):
    model = tiny_model(model_name, (1, 4, 4), 5, dtype=torch.float32)
    rebuilt = pixelrnn.build_from_config(model.config)
    assert rebuilt.config == model.config
    assert model.image_shape == (1, 4, 4) and model.levels == 5


def chi_square_critical(df, z=3.09):
    """Upper 0.1% point of the chi-square distribution (Wilson-Hilferty approximation)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_samples_follow_log_prob(model_name):
    image_shape, levels, n = (1, 1, 3), 3, 6000
    model = tiny_model(model_name, image_shape, levels, dtype=torch.float64, gain=2.0)
    images = every_image(image_shape, levels)
    with torch.no_grad():
        expected = model.log_prob(images).exp() * n
    samples = model.sample(n, generator=torch.Generator().manual_seed(0))
    index = (samples.reshape(n, -1) * torch.tensor([levels**2, levels, 1])).sum(1)
    observed = torch.bincount(index, minlength=len(images)).double()
    chi2 = ((observed - expected) ** 2 / expected).sum().item()
    assert chi2 < chi_square_critical(len(images) - 1)


def test_complete_keeps_known_values(model_name):
    model = tiny_model(model_name, (3, 3, 3), 4, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 4, (3, 3, 3, 3), generator=gen)
    known = torch.rand(3, 3, 3, 3, generator=gen) < 0.5
    out = model.complete(x, known, generator=gen)
    assert torch.equal(out[known], x[known])
    assert out.min() >= 0 and out.max() < 4
    assert not torch.equal(out, x)  # the unknown values were drawn, not copied


def test_sample_with_a_seed_is_reproducible(model_name):
    model = tiny_model(model_name, (1, 3, 3), 4, dtype=torch.float32)
    a = model.sample(2, generator=torch.Generator().manual_seed(3))
    b = model.sample(2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.long and a.shape == (2, 1, 3, 3)


def test_wrong_image_shape_is_a_clear_error(model_name):
    model = tiny_model(model_name, (1, 4, 4), 4, dtype=torch.float32)
    with pytest.raises(pixelrnn.PixelRNNError, match="built for"):
        model(torch.zeros(1, 1, 5, 5, dtype=torch.long))


def test_unknown_model_or_option_is_a_clear_error():
    with pytest.raises(pixelrnn.PixelRNNError, match="unknown model"):
        pixelrnn.build_model("pixelgan", (1, 4, 4), 2)
    with pytest.raises(pixelrnn.PixelRNNError, match="has no option"):
        pixelrnn.build_model("pixelcnn", (1, 4, 4), 2, hiden=3)


# Three colour channels with interleaved groups: with one channel interleaved equals contiguous, so only these
# shapes tell a grouping bug apart.
@pytest.mark.parametrize("image_shape", [(3, 3, 3), (3, 2, 4)])
def test_causality_with_interleaved_colour_groups(model_name, image_shape):
    assert_causal(tiny_model(model_name, image_shape, 4, gain=2.0, grouping="interleaved"), 4)


def test_normalisation_with_interleaved_colour_groups(model_name):
    image_shape = (3, 2, 2)
    model = tiny_model(model_name, image_shape, 2, gain=2.0, grouping="interleaved")
    with torch.no_grad():
        total = model.log_prob(every_image(image_shape, 2)).exp().sum()
    assert abs(total.item() - 1.0) < 1e-6


def test_interleaved_and_contiguous_groups_are_different_models(model_name):
    """The layout reaches the masks: the same weights give other logits (else the interleaved tests prove nothing)."""
    x = torch.randint(0, 4, (2, 3, 2, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        contiguous = tiny_model(model_name, (3, 2, 4), 4)(x)
        interleaved = tiny_model(model_name, (3, 2, 4), 4, grouping="interleaved")(x)
    assert not torch.allclose(contiguous, interleaved)


@pytest.mark.parametrize("bad", [4, -1])
def test_log_prob_of_values_out_of_range_is_a_clear_error(model_name, bad):
    model = tiny_model(model_name, (1, 2, 2), 4, dtype=torch.float32)
    x = torch.zeros(1, 1, 2, 2, dtype=torch.long)
    x[0, 0, 1, 1] = bad
    with pytest.raises(pixelrnn.PixelRNNError, match=r"\[0, 4\)"):
        model.log_prob(x)


def test_multiscale_small_side_that_does_not_fit_names_sizes_that_do():
    with pytest.raises(pixelrnn.PixelRNNError, match=r"sizes that work: 14, 7, 4, 2, 1 \(e.g. --set small=14\)"):
        pixelrnn.build_model("multiscale", (1, 28, 28), 256)
    with pytest.raises(pixelrnn.PixelRNNError, match="none"):
        pixelrnn.build_model("multiscale", (1, 7, 5), 2, small=1)


def test_parameter_names_are_the_checkpoint_format():
    """Checkpoints store weights by these names; renaming one needs a new checkpoint format version.

    The options off here (PixelCNN skips, learned initial states) are those a checkpoint written before they
    existed loads with: the names of such a model are the old ones, and the new options only add names.
    """
    old = dict(pixelcnn=dict(skip=False), row_lstm=dict(learn_initial_state=False))
    names = {name: sorted(tiny_model(name, (1, 2, 2), 2, layers=1, **old[name]).state_dict()) for name in old}
    assert names["pixelcnn"] == [
        "blocks.0.conv.bias", "blocks.0.conv.weight", "blocks.0.expand.bias", "blocks.0.expand.weight",
        "blocks.0.reduce.bias", "blocks.0.reduce.weight", "head.hidden.bias", "head.hidden.weight",
        "head.logits.bias", "head.logits.weight", "input.bias", "input.weight"]
    assert names["row_lstm"] == [
        "head.hidden.bias", "head.hidden.weight", "head.logits.bias", "head.logits.weight", "input.bias",
        "input.weight", "lstm_layers.0.input_to_state.bias", "lstm_layers.0.input_to_state.weight",
        "lstm_layers.0.state_to_state.weight", "outputs.0.bias", "outputs.0.weight", "skips.0.bias", "skips.0.weight"]
    new = {name: set(tiny_model(name, (1, 2, 2), 2, layers=1).state_dict()) - set(names[name]) for name in old}
    assert new == {"pixelcnn": {"skips.0.bias", "skips.0.weight"},
                   "row_lstm": {"lstm_layers.0.initial_hidden", "lstm_layers.0.initial_cell"}}


# The options beyond each family's defaults: a three-level multi-scale model (sizes 1 and 2 below 4 x 4) on each
# base, the LSTM layers with zero initial states, the PixelCNN without skips or without residuals.
VARIANTS = [
    ("multiscale", dict(small=(1, 2), base="pixelcnn")),
    ("multiscale", dict(small=(1, 2), base="row_lstm")),
    ("multiscale", dict(small=(1, 2), base="diagonal_bilstm")),
    ("row_lstm", dict(learn_initial_state=False)),
    ("diagonal_bilstm", dict(learn_initial_state=False)),
    ("pixelcnn", dict(skip=False)),
    ("pixelcnn", dict(residual=False)),
]
VARIANT_IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in options.items())}" for name, options in VARIANTS]


@pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("image_shape", [(1, 4, 4), (3, 4, 4)])
def test_causality_of_every_option(name, options, image_shape):
    """As test_causality, for the options off the default path."""
    levels = 3
    assert_causal(tiny_model(name, image_shape, levels, gain=2.0, **options), levels)


@pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)
def test_normalisation_of_every_option(name, options):
    """exp(log_prob) over every image sums to 1; for three levels over all 2^16 binary 4 x 4 images.

    The three-level check runs on one base, with one thin layer, to stay fast: the other bases differ only in the
    family of each level, whose own normalisation is tested above.
    """
    image_shape, tiny = (1, 3, 3), {}
    if name == "multiscale":
        if options["base"] != "pixelcnn":
            pytest.skip("three levels: normalisation checked on the PixelCNN base (see the docstring)")
        image_shape, tiny = (1, 4, 4), dict(layers=1, hidden=4, head=8)
    model = tiny_model(name, image_shape, 2, gain=2.0, **options, **tiny)
    with torch.no_grad():
        total = torch.cat([model.log_prob(chunk) for chunk in every_image(image_shape, 2).split(8192)]).exp().sum()
    assert abs(total.item() - 1.0) < 1e-6


@pytest.mark.parametrize("name,options", VARIANTS, ids=VARIANT_IDS)
def test_fast_paths_of_every_option_equal_the_full_pass(name, options):
    """The steppers (level by level for the multi-scale model) give the full pass's logits, and the same samples."""
    model = tiny_model(name, (3, 4, 4), 5, gain=2.0, **options)
    x = torch.randint(0, 5, (2, 3, 4, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(stepwise_logits(model, x), model(x), atol=1e-12)
    fast = model.sample(3, generator=torch.Generator().manual_seed(7), method="fast")
    naive = model.sample(3, generator=torch.Generator().manual_seed(7), method="naive")
    assert torch.equal(fast, naive)


def test_three_levels_generate_coarsest_first_and_sum_their_likelihoods():
    model = tiny_model("multiscale", (1, 4, 4), 3, small=(1, 2))
    assert model.order()[:4] == [(0, 0, 0), (0, 0, 2), (0, 2, 0), (0, 2, 2)]  # 1 x 1, then the rest of 2 x 2
    x = torch.randint(0, 3, (2, 1, 4, 4))
    keep = torch.ones(4, 4, dtype=torch.bool)
    keep[::2, ::2] = False
    with torch.no_grad():
        middle = x[:, :, ::2, ::2]
        rest = distributions.log_probs(model.conditional(x, context=model.context(middle)), x)[..., keep]
        assert torch.allclose(model.log_prob(x), model.small_model.log_prob(middle) + rest.flatten(1).sum(1))
        inner = model.small_model  # itself a two-level model: 1 x 1, then 2 x 2 given it
        assert inner.name == "multiscale" and inner.image_shape == (1, 2, 2) and inner.factor == 2


def test_small_as_a_list_of_one_is_the_two_level_model():
    one = tiny_model("multiscale", (1, 4, 4), 3, small=2)
    for small in ([2], (2,), "2", "[2]"):
        listed = tiny_model("multiscale", (1, 4, 4), 3, small=small)
        assert listed.config == one.config and listed.config["small"] == 2
        assert list(listed.state_dict()) == list(one.state_dict())
    three = tiny_model("multiscale", (1, 28, 28), 2, small="7,14", layers=1, hidden=2, head=2)
    assert three.config["small"] == (7, 14) and pixelrnn.build_from_config(three.config).config == three.config
    assert tiny_model("multiscale", (1, 4, 4), 3, small=[1, 2]).config == pixelrnn.build_from_config(
        {**tiny_model("multiscale", (1, 4, 4), 3, small=[1, 2]).config, "small": [1, 2]}).config  # JSON gives lists


@pytest.mark.parametrize("small,message", [((2, 1), "must increase"), ((5, 6), "small=5 does not fit 6 x 6"),
                                           ((4, 6), "small=4 does not fit 6 x 6"), ("7,x", "list of them"),
                                           ((), "list of them"), (0, "positive")])
def test_multiscale_levels_are_checked(small, message):
    with pytest.raises(pixelrnn.PixelRNNError, match=message):
        pixelrnn.build_model("multiscale", (1, 12, 12), 2, small=small)


@pytest.mark.parametrize("name,old_options", [
    ("row_lstm", dict(learn_initial_state=False)), ("diagonal_bilstm", dict(learn_initial_state=False)),
    ("pixelcnn", dict(skip=False)),
    ("multiscale", dict(base="pixelcnn", small=2, skip=False, learn_initial_state=False)),
    ("multiscale", dict(base="row_lstm", small=2, learn_initial_state=False))])
def test_a_checkpoint_written_before_the_new_options_loads_as_it_was(tmp_path, name, old_options):
    """An old checkpoint's config lacks the keys (and its weights the parameters) of learned initial states and
    PixelCNN skips; it loads with zero states and no PixelCNN skips, and gives the same logits."""
    model = tiny_model(name, (1, 4, 4), 3, dtype=torch.float32, **old_options)
    old_config = {k: v for k, v in model.config.items() if k not in ("learn_initial_state",)}
    if name == "pixelcnn":
        old_config.pop("skip"), old_config.pop("residual")
    if name == "multiscale":  # multi-scale configs always stored skip (True), which a PixelCNN base ignored
        old_config["skip"] = True
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path),
              metadata={"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "config": json.dumps(old_config),
                        "sha256": checkpoint.weights_sha256(model.state_dict())})
    loaded = pixelrnn.load_checkpoint(path)
    assert loaded.config == model.config
    x = torch.randint(0, 3, (2, 1, 4, 4))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_new_models_follow_the_paper_by_default():
    """Learned initial states (section 5.2) and skips in every network (section 4) are on unless switched off."""
    for name in ("row_lstm", "diagonal_bilstm", "multiscale"):
        assert pixelrnn.models.model_defaults(name)["learn_initial_state"] is True
    for name in pixelrnn.MODELS:
        options = pixelrnn.models.model_defaults(name)
        assert options["skip"] is True and options["residual"] is True


def test_every_preset_describes_a_model_of_its_data():
    """Each preset's model options are valid for its model and its data's image size (checked without weights)."""
    from pixelrnn.presets import PRESETS

    shapes = {"digits": (1, 8, 8), "fashion-mnist": (1, 28, 28), "binarized-mnist": (1, 28, 28),
              "cifar10": (3, 32, 32), "imagenet32": (3, 32, 32), "imagenet64": (3, 64, 64)}
    for name, preset in PRESETS.items():
        values = preset.values
        config = pixelrnn.models.model_class(values["model"]).Config(
            image_shape=shapes[values["data"]], levels=2, **values["model_options"])
        assert config.to_dict()["image_shape"] == list(shapes[values["data"]]), name
    assert PRESETS["imagenet32-row-lstm"].values["batch_size"] == 64  # the paper's batch at 32 x 32
    assert PRESETS["imagenet64-multiscale"].values["batch_size"] == 32
    assert PRESETS["fashion-multiscale-3"].values["model_options"]["small"] == [7, 14]


def test_the_readme_lists_every_preset():
    """The presets table, which the README links to, lives in docs/training.md."""
    from pathlib import Path

    from pixelrnn.presets import PRESETS

    training = (Path(__file__).resolve().parent.parent / "docs" / "training.md").read_text()
    assert [name for name in PRESETS if f"| `{name}` |" not in training] == []
