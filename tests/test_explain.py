"""Bit maps and predictive distributions: per-value log-probabilities, `pixelrnn explain`, `complete --explain`."""

import importlib.util
import json
import sys

import pytest
import torch

import pixelrnn
from pixelrnn import distributions, explain_figures
from pixelrnn.cli import main
from pixelrnn.data import load_dataset
from pixelrnn.errors import ConfigError, DataError, PixelRNNError
from pixelrnn.evaluate import evaluate
from pixelrnn.explain import check_pixels, explain, first_hidden_pixel, parse_pixel
from helpers import stepwise_logits, tiny_model

HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None
TOLERANCE = {torch.float64: dict(rtol=1e-9, atol=1e-9), torch.float32: dict(rtol=1e-4, atol=1e-4)}


def values(shape, levels, n=2, seed=0):
    return torch.randint(0, levels, (n, *shape), generator=torch.Generator().manual_seed(seed))


def reference_terms(model, x, y=None):
    """log p of each value from the step-wise walk, which visits the values in the model's own order."""
    logits = stepwise_logits(model, x, y)
    return torch.log_softmax(logits, dim=1).gather(1, x[:, None]).squeeze(1)


# log_prob_per_value

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_per_value_terms_are_the_conditionals_that_log_prob_sums(model_name, dtype):
    model = tiny_model(model_name, (3, 4, 4), 5, dtype=dtype)
    x = values(model.image_shape, 5)
    with torch.no_grad():
        terms = model.log_prob_per_value(x)
        assert terms.shape == x.shape and terms.dtype == dtype
        assert torch.equal(terms.sum((1, 2, 3)), model.log_prob(x))
        torch.testing.assert_close(terms, reference_terms(model, x), **TOLERANCE[dtype])
    assert (terms <= 0).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_per_value_terms_of_a_class_conditional_model(model_name, dtype):
    model = tiny_model(model_name, (1, 4, 4), 3, dtype=dtype, num_classes=3)
    with torch.no_grad():  # the class biases start at zero; give them values so that the class matters
        for name, p in model.named_parameters():
            if "class_bias" in name:
                p.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    x, y = values(model.image_shape, 3), torch.tensor([0, 2])
    with torch.no_grad():
        terms = model.log_prob_per_value(x, y)
        assert torch.equal(terms.sum((1, 2, 3)), model.log_prob(x, y))
        torch.testing.assert_close(terms, reference_terms(model, x, y), **TOLERANCE[dtype])
        assert not torch.allclose(terms, model.log_prob_per_value(x, torch.tensor([1, 1])))


def test_the_multiscale_map_holds_every_level_where_its_pixels_were_taken_from():
    model = tiny_model("multiscale", (1, 8, 8), 4, small=(2, 4))  # levels of 2x2, 4x4 and 8x8
    x = values(model.image_shape, 4)
    with torch.no_grad():
        terms = model.log_prob_per_value(x)
        small = model.small_model  # the 4x4 model: itself a multi-scale model of its 2x2 image
        assert torch.equal(terms[:, :, ::2, ::2], small.log_prob_per_value(x[:, :, ::2, ::2]))
        assert torch.equal(terms[:, :, ::4, ::4], small.small_model.log_prob_per_value(x[:, :, ::4, ::4]))
        rest = torch.ones(8, 8, dtype=torch.bool)
        rest[::2, ::2] = False
        logits = model.conditional(x, None, model.context(x[:, :, ::2, ::2]))  # log p(rest | the 4x4 image)
        assert torch.equal(terms[:, :, rest], distributions.log_probs(logits, x)[:, :, rest])


# explain

def test_the_total_is_evaluates_figure_and_each_image_its_log_prob():
    model = tiny_model("pixelcnn", (1, 6, 6), 7, dtype=torch.float32)
    x = values(model.image_shape, 7, n=5)
    explanation = explain(model, x, batch_size=2)
    assert abs(explanation.total_bits_per_dim - evaluate(model, x, batch_size=2)["bits_per_dim"]) <= 1e-6
    assert torch.equal(explanation.nats, -model.log_prob(x).detach().double())
    torch.testing.assert_close(explanation.bits_per_dim, model.bits_per_dim(x).detach().double())
    torch.testing.assert_close(explanation.bits.sum((1, 2, 3)) / 36, explanation.bits_per_dim, rtol=1e-6, atol=0)
    assert explanation.pixel_bits.shape == (5, 6, 6)


def test_the_distribution_at_a_pixel_gives_each_value_its_own_term():
    """p(true value) of each channel at a pixel is 2**-bits of that value: both condition on the same values."""
    model = tiny_model("row_lstm", (3, 4, 4), 6, dtype=torch.float64)
    x = values(model.image_shape, 6, n=3)
    pixels = [(0, 0), (2, 3), "3,1"]
    explanation = explain(model, x, pixels=pixels)
    assert explanation.pixels == ((0, 0), (2, 3), (3, 1))
    assert explanation.probabilities.shape == (3, 3, 3, 6)
    torch.testing.assert_close(explanation.probabilities.sum(-1), torch.ones(3, 3, 3, dtype=torch.float64))
    for p, (i, j) in enumerate(explanation.pixels):
        assert torch.equal(explanation.true_values[:, p], x[:, :, i, j])
        chosen = explanation.probabilities[:, p].gather(-1, x[:, :, i, j, None]).squeeze(-1)
        torch.testing.assert_close(chosen, 2 ** -explanation.bits[:, :, i, j])


def test_a_temperature_reshapes_the_distributions_but_not_the_bits():
    model = tiny_model("pixelcnn", (1, 4, 4), 5, dtype=torch.float64)
    x = values(model.image_shape, 5)
    plain, hot = explain(model, x, pixels=[(1, 1)]), explain(model, x, pixels=[(1, 1)], temperature=2.0)
    assert torch.equal(plain.bits, hot.bits)
    expected = torch.softmax(model(x)[:, :, 0, 1, 1].detach() / 2.0, dim=1)
    torch.testing.assert_close(hot.probabilities[:, 0, 0], expected)


def test_a_class_conditional_model_needs_its_classes():
    model = tiny_model("pixelcnn", (1, 4, 4), 3, num_classes=2)
    x = values(model.image_shape, 3)
    with pytest.raises(ConfigError, match="class-conditional"):
        explain(model, x)
    torch.testing.assert_close(explain(model, x, labels=1).nats, -model.log_prob(x, 1).detach())


def test_bad_pixels_are_one_clear_error():
    assert parse_pixel("3, 4") == (3, 4)
    for text in ("3", "a,b", "1,2,3", ""):
        with pytest.raises(ConfigError, match="ROW,COLUMN"):
            parse_pixel(text)
    with pytest.raises(ConfigError, match="outside the 4x5 image"):
        check_pixels([(4, 0)], (1, 4, 5))
    with pytest.raises(ConfigError, match="outside"):
        check_pixels([(0, -1)], (1, 4, 5))
    with pytest.raises(ConfigError, match="two whole numbers"):
        check_pixels([(1.5, 0)], (1, 4, 5))


def test_the_first_hidden_pixel_follows_the_models_order():
    known = torch.ones(1, 8, 8, dtype=torch.bool)
    known[:, 4:] = False
    assert first_hidden_pixel(tiny_model("pixelcnn", (1, 8, 8), 3), known) == (4, 0)
    known = torch.ones(1, 8, 8, dtype=torch.bool)
    known[:, 7, 6] = known[:, 1, 1] = False  # the multi-scale model draws its 4x4 image, at even rows/columns, first
    assert first_hidden_pixel(tiny_model("multiscale", (1, 8, 8), 3), known) == (1, 1)
    known[:, 6, 6] = False
    assert first_hidden_pixel(tiny_model("multiscale", (1, 8, 8), 3), known) == (6, 6)
    with pytest.raises(PixelRNNError, match="nothing is hidden"):
        first_hidden_pixel(tiny_model("pixelcnn", (1, 8, 8), 3), torch.ones(1, 8, 8, dtype=torch.bool))


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_the_figure_of_a_colour_model(tmp_path):
    model = tiny_model("pixelcnn", (3, 4, 4), 4, dtype=torch.float32)
    explanation = explain(model, values(model.image_shape, 4), pixels=[(1, 2)])
    picture = explain_figures.render(explanation)
    shown = explain_figures.render(explain(model, values(model.image_shape, 4)), maps=False)
    assert picture.mode == "RGB" and picture.width > shown.width  # the maps and their colour bars take room
    path = explain_figures.save_figure(explanation, tmp_path / "map.jpg")
    assert path.read_bytes()[:2] == b"\xff\xd8"


def test_without_matplotlib_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'pixelrnn\[plot\]'"):
        explain_figures.pyplot()


def test_the_shipped_pixelcnn_matches_evaluate_on_fashion_mnist():
    try:
        data = load_dataset("fashion-mnist", "test", download=False)
    except DataError as e:
        pytest.skip(f"Fashion-MNIST is not installed ({e})")
    model = pixelrnn.load_pretrained("fashion-pixelcnn")
    images = data.images[:4]
    explanation = explain(model, images, precision="auto")
    assert abs(explanation.total_bits_per_dim - evaluate(model, images, precision="auto")["bits_per_dim"]) <= 1e-6


# The command line

@pytest.fixture
def run(tmp_path, monkeypatch):
    """A tiny trained digits model (8x8, 17 levels) in tmp_path/run, the working directory."""
    monkeypatch.setenv("PIXELRNN_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--preset", "tiny", "--steps", "1", "--out", "run", "--quiet"]) == 0
    return tmp_path / "run"


def one_line_error(capsys, args) -> str:
    try:
        status = main(args)
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        status = e.code
    err = capsys.readouterr().err.strip()
    assert status == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_explain_writes_the_maps_and_its_total_is_evaluates(run, capsys):
    assert main(["explain", "run", "--split", "test", "--limit", "3", "--pixel", "1,2", "--pixel", "7,7",
                 "-o", "map.png", "--json", "explain.json"]) == 0
    assert main(["evaluate", "run", "--split", "test", "--limit", "3", "--json", "evaluate.json", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "wrote map.png" in out and "pixel 7,7 of test[2]" in out
    explained, evaluated = (json.loads((run.parent / name).read_text()) for name in ("explain.json", "evaluate.json"))
    assert explained["images"] == evaluated["images"] == 3
    assert abs(explained["bits_per_dim"] - evaluated["bits_per_dim"]) <= 1e-6
    assert [p["pixel"] for p in explained["pixels"]] == [[1, 2], [7, 7]]
    assert (run.parent / "map.png").read_bytes()[:4] == b"\x89PNG"


def test_explain_refuses_bad_input_in_one_line(run, capsys):
    pixelrnn.save_images(torch.zeros(1, 1, 6, 6, dtype=torch.long), 17, ["small.png"])
    assert "ROW,COLUMN" in one_line_error(capsys, ["explain", "run", "--pixel", "3"])
    assert "outside the 8x8 image" in one_line_error(capsys, ["explain", "run", "--pixel", "8,0"])
    assert "6x6" in one_line_error(capsys, ["explain", "run", "small.png"])
    assert "not both" in one_line_error(capsys, ["explain", "run", "small.png", "--data", "digits"])
    (run.parent / "map.png").write_bytes(b"")
    assert "--force" in one_line_error(capsys, ["explain", "run"])


def test_explain_without_matplotlib_says_what_to_install(run, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert "pip install 'pixelrnn[plot]'" in one_line_error(capsys, ["explain", "run"])


@pytest.mark.skipif(not HAS_MATPLOTLIB, reason="matplotlib is not installed")
def test_complete_explains_a_drawn_value(run, capsys):
    assert main(["complete", "run", "-n", "2", "-k", "2", "--explain", "--quiet", "-o", "c.png"]) == 0
    out = capsys.readouterr().out
    assert "distribution at pixel 4,0" in out and (run.parent / "c-explain.png").is_file()
    assert "add --explain" in one_line_error(capsys, ["complete", "run", "--pixel", "1,1", "-o", "d.png"])
    assert "outside" in one_line_error(capsys, ["complete", "run", "--explain", "--pixel", "1,9", "-o", "d.png"])
