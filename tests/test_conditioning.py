"""Class conditioning and the multi-scale model: exact for each condition, and the same through every path."""

import itertools

import pytest
import torch

import pixelrnn
from helpers import stepwise_logits, tiny_model

FAMILIES = ["pixelcnn", "row_lstm", "diagonal_bilstm", "multiscale"]


def conditional_model(name, image_shape, levels, classes=3, **options):
    model = tiny_model(name, image_shape, levels, gain=2.0, num_classes=classes, **options)
    with torch.no_grad():  # the class biases start at zero; make them matter
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                module.weight.normal_(0, 2.0)
    return model


def every_image(image_shape, levels):
    values = torch.tensor(list(itertools.product(range(levels), repeat=torch.Size(image_shape).numel())))
    return values.view(-1, *image_shape)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_class_is_a_normalised_distribution(name):
    image_shape = (3, 2, 2) if name == "multiscale" else (3, 1, 2)
    model = conditional_model(name, image_shape, 2)
    images = every_image(image_shape, 2)
    totals, logps = [], []
    with torch.no_grad():
        for label in range(3):
            logp = model.log_prob(images, torch.full((len(images),), label))
            logps.append(logp)
            totals.append(logp.exp().sum().item())
    assert all(abs(t - 1) < 1e-6 for t in totals), totals
    assert not torch.allclose(logps[0], logps[1])  # the class matters


@pytest.mark.parametrize("name", FAMILIES)
def test_conditional_fast_path_and_sampling_agree_with_the_full_pass(name):
    model = conditional_model(name, (3, 2, 4), 5)
    x = torch.randint(0, 5, (4, 3, 2, 4), generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        assert torch.allclose(stepwise_logits(model, x, y), model(x, y), atol=1e-12)
    fast = model.sample(4, generator=torch.Generator().manual_seed(3), y=y)
    naive = model.sample(4, generator=torch.Generator().manual_seed(3), y=y, method="naive")
    assert torch.equal(fast, naive)


def test_labels_for_an_unconditional_model_or_out_of_range_are_errors():
    model = tiny_model("pixelcnn", (1, 3, 3), 2)
    with pytest.raises(pixelrnn.PixelRNNError, match="not class-conditional"):
        model(torch.zeros(1, 1, 3, 3, dtype=torch.long), torch.tensor([0]))
    conditional = conditional_model("pixelcnn", (1, 3, 3), 2)
    with pytest.raises(pixelrnn.PixelRNNError, match=r"\[0, 3\)"):
        conditional(torch.zeros(1, 1, 3, 3, dtype=torch.long), torch.tensor([3]))


def test_evaluate_checks_every_label_before_it_scores_a_batch(monkeypatch):
    """An out-of-range label among many is refused before the first batch is scored: on a GPU the batches' labels
    are not read back, and a bad one would end in a device-side assert."""
    from pixelrnn.evaluate import evaluate
    model = conditional_model("pixelcnn", (1, 3, 3), 2)
    scored = []
    monkeypatch.setattr(model, "log_prob", lambda x, y=None: scored.append(len(x)) or torch.zeros(len(x)))
    labels = torch.zeros(40, dtype=torch.long)
    labels[37] = 3
    with pytest.raises(pixelrnn.PixelRNNError, match=r"\[0, 3\)"):
        evaluate(model, torch.zeros(40, 1, 3, 3, dtype=torch.long), labels, batch_size=8)
    assert scored == []


def test_multiscale_is_normalised_on_4x4_with_a_2x2_small_image():
    model = tiny_model("multiscale", (1, 4, 4), 2, gain=2.0, small=2)
    images = every_image((1, 4, 4), 2)
    with torch.no_grad():
        total = torch.cat([model.log_prob(chunk) for chunk in images.split(8192)]).exp().sum()
    assert abs(total.item() - 1) < 1e-6


@pytest.mark.parametrize("base", ["pixelcnn", "row_lstm", "diagonal_bilstm"])
def test_multiscale_splits_its_likelihood_exactly(base):
    """log p(x) = log p(x_small) + log p(rest | x_small), the small image scored by the small model alone."""
    model = tiny_model("multiscale", (3, 4, 6), 4, base=base, small=2)
    x = torch.randint(0, 4, (2, 3, 4, 6))
    with torch.no_grad():
        small = x[:, :, ::2, ::2]
        logits = model(x)
        assert torch.equal(logits[:, :, :, ::2, ::2], model.small_model(small))
        rest = model.conditional(x, context=model.context(small))
        keep = torch.ones(4, 6, dtype=torch.bool)
        keep[::2, ::2] = False
        assert torch.equal(logits[..., keep], rest[..., keep])
        from pixelrnn import distributions

        per_value = distributions.log_probs(logits, x)
        expected = model.small_model.log_prob(small) + per_value[..., keep].flatten(1).sum(1)
        assert torch.allclose(model.log_prob(x), expected, atol=1e-12)


def test_multiscale_generates_the_small_image_first():
    model = tiny_model("multiscale", (1, 4, 4), 3, small=2)
    order = model.order()
    assert order[:4] == [(0, 0, 0), (0, 0, 2), (0, 2, 0), (0, 2, 2)]
    assert sorted(order) == sorted((0, i, j) for i in range(4) for j in range(4))


def test_multiscale_options_are_checked():
    with pytest.raises(pixelrnn.PixelRNNError, match="small=3"):
        pixelrnn.build_model("multiscale", (1, 8, 8), 2, small=3)
    with pytest.raises(pixelrnn.PixelRNNError, match="base must be"):
        pixelrnn.build_model("multiscale", (1, 8, 8), 2, small=4, base="transformer")
