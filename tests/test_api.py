"""The Python API from a user's files: read_images / save_images, model.bits_per_dim, and pictures for a person.

Reading and writing PNG files must be exact (the files are lossless input and output), and the enlarged pictures
(sample grids, completion panels) must show every value unchanged, as a block of one colour.
"""

import inspect
import math

import numpy as np
import pytest
import torch
from PIL import Image

import pixelrnn
from pixelrnn import distributions
from pixelrnn.errors import ConfigError, ImageError
from pixelrnn.evaluate import evaluate
from pixelrnn.images import save_image
from pixelrnn.pictures import Layout, completion_panel, enlargement, grid, save_grid
from helpers import tiny_model
from test_docs import README, run_page


def values_from(picture: np.ndarray, levels: int) -> np.ndarray:
    """8-bit pixels back to values in [0, levels), as read_image maps them."""
    return np.round(picture.astype(np.float64) * (levels - 1) / 255).astype(np.int64)


def tiles(picture: np.ndarray, layout: Layout, top: int = 0) -> list[np.ndarray]:
    """Each image's tile of a grid picture [H, W] or [H, W, C], its grid starting ``top`` rows down."""
    side_h, side_w = layout.height * layout.scale, layout.width * layout.scale
    out = []
    for k in range(layout.count):
        y, x = layout.origin(k)
        out.append(picture[top + y:top + y + side_h, x:x + side_w])
    return out


# read_images and save_images

@pytest.mark.parametrize("shape,levels", [((1, 5, 7), 256), ((1, 5, 7), 17), ((3, 6, 4), 256), ((3, 6, 4), 4)],
                         ids=["grey-256", "grey-17", "rgb-256", "rgb-4"])
def test_save_images_then_read_images_gives_back_the_same_values(tmp_path, shape, levels):
    x = torch.randint(0, levels, (3, *shape), generator=torch.Generator().manual_seed(0))
    paths = pixelrnn.save_images(x, levels, tmp_path / "pngs")
    assert [p.name for p in paths] == ["image-00000.png", "image-00001.png", "image-00002.png"]
    assert Image.open(paths[0]).size == (shape[2], shape[1])  # lossless files keep the image's own size
    back = pixelrnn.read_images(paths, shape, levels)
    assert back.dtype == torch.int64 and torch.equal(back, x)


def test_save_images_to_given_paths_and_read_one_path(tmp_path):
    x = torch.randint(0, 256, (2, 1, 4, 4))
    paths = pixelrnn.save_images(x, 256, [tmp_path / "a.png", tmp_path / "b.png"])
    assert torch.equal(pixelrnn.read_images(str(paths[1]), (1, 4, 4), 256), x[1:])


def test_read_images_names_the_file_that_does_not_fit(tmp_path):
    good = pixelrnn.save_images(torch.zeros(1, 1, 8, 8, dtype=torch.long), 17, tmp_path / "good")[0]
    wrong = save_image(torch.zeros(1, 9, 8, dtype=torch.long), 17, tmp_path / "wrong.png")
    with pytest.raises(ImageError) as error:
        pixelrnn.read_images([good, wrong], (1, 8, 8), 17)
    message = str(error.value)
    assert "\n" not in message and str(wrong) in message and "8x9" in message and "8x8" in message
    with pytest.raises(ImageError, match="3 channel"):
        pixelrnn.read_images([good], (3, 8, 8), 17)
    with pytest.raises(ImageError, match="no images"):
        pixelrnn.read_images([], (1, 8, 8), 17)


def test_save_images_refuses_what_a_file_cannot_hold_exactly(tmp_path):
    x = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    with pytest.raises(ConfigError, match="one path per image"):
        pixelrnn.save_images(x, 2, [tmp_path / "a.png"])
    with pytest.raises(ConfigError, match=r"\[0, 2\)"):
        pixelrnn.save_images(x + 2, 2, tmp_path / "out")
    with pytest.raises(ConfigError, match="integer"):
        pixelrnn.save_images(x.float(), 2, tmp_path / "out")
    with pytest.raises(ConfigError, match=r"\[N, C, H, W\]"):
        pixelrnn.save_images(x[0], 2, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# bits per dimension

def test_model_bits_per_dim_is_minus_log_prob_over_dims_ln2_and_matches_evaluate():
    model = tiny_model("pixelcnn", (1, 4, 5), 7)
    x = torch.randint(0, 7, (3, 1, 4, 5), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        bits = model.bits_per_dim(x)
        expected = -model.log_prob(x) / (20 * math.log(2))
    assert bits.shape == (3,) and torch.allclose(bits, expected, rtol=1e-12, atol=0)
    assert bits[0].item() == pytest.approx(evaluate(model, x[:1])["bits_per_dim"], rel=1e-10)


def test_model_bits_per_dim_of_a_class_conditional_model_is_given_the_class():
    model = tiny_model("pixelcnn", (1, 3, 3), 4, num_classes=3)
    with torch.no_grad():
        for p in model.class_bias.parameters():
            p.normal_()  # the class biases start at zero, which would hide a dropped label
        x, y = torch.randint(0, 4, (2, 1, 3, 3)), torch.tensor([0, 2])
        bits = model.bits_per_dim(x, y)
        assert torch.allclose(bits, -model.log_prob(x, y) / (9 * math.log(2)), rtol=1e-12, atol=0)
        assert not torch.allclose(bits, model.bits_per_dim(x, torch.tensor([1, 1])))


def test_nats_to_bits_per_dim_names_its_arguments_in_its_errors():
    assert distributions.nats_to_bits_per_dim(math.log(2) * 10, 10) == pytest.approx(1.0)
    assert torch.allclose(distributions.nats_to_bits_per_dim(torch.tensor([math.log(4)]), 2), torch.tensor([1.0]))
    with pytest.raises(TypeError, match=r"dims must be an int.*math.prod"):
        distributions.nats_to_bits_per_dim(1.0, (1, 28, 28))
    with pytest.raises(TypeError, match="nats must be"):
        distributions.nats_to_bits_per_dim([1.0], 4)
    with pytest.raises(ValueError, match="at least 1"):
        distributions.nats_to_bits_per_dim(1.0, 0)


def test_log_probs_refuses_mismatched_arguments_clearly():
    logits = torch.zeros(2, 5, 1, 3, 3)
    with pytest.raises(TypeError, match=r"int64.*x\.long\(\)"):
        distributions.log_probs(logits, torch.zeros(2, 1, 3, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match=r"\[B, K, C, H, W\]"):
        distributions.log_probs(logits, torch.zeros(2, 1, 3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        distributions.log_prob(logits, [[0]])


def test_public_functions_document_their_arguments_and_results():
    public = [getattr(pixelrnn, n) for n in pixelrnn.__all__]
    public += [getattr(distributions, n) for n in ("log_probs", "log_prob", "nats_to_bits_per_dim", "bits_per_dim",
                                                   "sample")]
    public += [pixelrnn.read_images, pixelrnn.save_images, type(tiny_model("pixelcnn", (1, 2, 2), 2)).bits_per_dim]
    mine = [f for f in public if inspect.isfunction(f) and f.__module__ in ("pixelrnn.images", "pixelrnn.distributions",
                                                                            "pixelrnn.models.base")]
    undocumented = [f.__qualname__ for f in mine if not ("Args:" in f.__doc__ and "Returns:" in f.__doc__)]
    assert len(mine) >= 8 and undocumented == []


# pictures for a person

@pytest.mark.parametrize("side,factor", [(8, 8), (28, 3), (32, 2), (64, 1), (100, 1)])
def test_enlargement_reaches_64_pixels_with_an_integer_factor(side, factor):
    assert enlargement(side, side) == factor and enlargement(side, 200) == factor
    assert side * factor >= 64 or factor == 1


def test_a_sampled_grid_shows_exactly_the_sampled_values(tmp_path):
    model = tiny_model("pixelcnn", (1, 8, 8), 17, dtype=torch.float32)
    x = model.sample(6, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, model.sample(6, generator=torch.Generator().manual_seed(0)))
    picture = np.asarray(Image.open(save_grid(x, 17, tmp_path / "grid.png")))
    layout = Layout.of(6, 8, 8)
    assert layout.scale == 8 and picture.shape == (layout.size[1], layout.size[0])
    for k, tile in enumerate(tiles(picture, layout)):
        small = tile[::8, ::8]  # downscaled at the image positions
        assert np.array_equal(values_from(small, 17), x[k, 0].numpy())
        assert np.array_equal(tile, small.repeat(8, 0).repeat(8, 1))  # nearest neighbour: blocks of one value


def test_an_rgb_grid_is_enlarged_x3_for_28x28_and_not_for_64x64():
    x = torch.randint(0, 256, (2, 3, 28, 28))
    layout = Layout.of(2, 28, 28)
    picture = np.asarray(grid(x, 256))
    assert layout.scale == 3 and picture.shape == (layout.size[1], layout.size[0], 3)
    assert all(np.array_equal(tile[::3, ::3], x[k].permute(1, 2, 0).numpy())
               for k, tile in enumerate(tiles(picture, layout)))
    assert Layout.of(1, 64, 64).scale == 1 and grid(torch.zeros(1, 1, 64, 64, dtype=torch.long), 2).width < 80


def test_a_completion_panel_has_a_label_row_over_unchanged_images(tmp_path):
    originals = torch.randint(0, 17, (2, 1, 8, 8))
    known = torch.zeros(1, 8, 8, dtype=torch.bool)
    known[:, :4] = True
    completions = torch.randint(0, 17, (2, 3, 1, 8, 8))
    picture = np.asarray(Image.open(completion_panel(originals, known, completions, 17, tmp_path / "panel.png")))
    layout = Layout.of(10, 8, 8, columns=5)
    top = picture.shape[0] - layout.size[1]
    assert 10 <= top <= 40 and picture.shape[1] == layout.size[0]
    labels = picture[:top]
    for first, last in [(0, 0), (1, 3), (4, 4)]:  # occluded, completions, original: ink above each
        left, right = layout.origin(first)[1], layout.origin(last)[1] + 64
        assert labels[:, left:right].min() < 128
    expected = torch.cat([torch.where(known, originals, 8)[:, None], completions, originals[:, None]], 1)
    for k, tile in enumerate(tiles(picture, layout, top)):
        assert np.array_equal(values_from(tile[::8, ::8], 17), expected.flatten(0, 1)[k, 0].numpy())
        assert np.array_equal(tile, tile[::8, ::8].repeat(8, 0).repeat(8, 1))


def test_save_image_is_not_enlarged(tmp_path):
    x = torch.randint(0, 17, (1, 8, 8))
    path = save_image(x, 17, tmp_path / "one.png")
    assert Image.open(path).size == (8, 8)
    assert torch.equal(pixelrnn.read_images([path], (1, 8, 8), 17)[0], x)


def test_readme_python_example_goes_from_png_files_to_bits_and_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (namespace,) = run_page(README, None, languages=("python",))
    model, images, samples = namespace["model"], namespace["images"], namespace["samples"]
    assert images.shape == (2, 1, 28, 28) and torch.equal(images, namespace["x"][:2])
    assert torch.allclose(namespace["bits"], -namespace["nats"] / (784 * math.log(2)))
    assert torch.equal(pixelrnn.read_images(namespace["written"], model.image_shape, model.levels), samples)
    assert Image.open(tmp_path / "runs" / "samples.png").width >= 2 * 28 * 3
    assert {p.name for p in tmp_path.iterdir()} == {"runs"}
