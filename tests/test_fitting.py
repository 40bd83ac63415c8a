"""Which data a model may use, from Python: the shape, the levels and the labels must fit the model, and a checkpoint
loads with the data set it was trained on unless another is given."""

import pytest
import torch

from pixelrnn import save_checkpoint
from pixelrnn.data import ImageData
from pixelrnn.errors import ConfigError, PixelRNNError
from pixelrnn.fitting import check_fits, load_with_data
from helpers import tiny_model


def data(shape=(1, 4, 4), levels=4, labelled=True, name="tiny"):
    images = torch.randint(0, levels, (5, *shape), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    labels = torch.arange(5) % 3 if labelled else None
    return ImageData(name, "test", images, levels, labels, 3 if labelled else None)


def test_data_of_the_model_shape_and_levels_fits():
    check_fits(tiny_model("pixelcnn", (1, 4, 4), 4), data(labelled=False))
    check_fits(tiny_model("pixelcnn", (1, 4, 4), 4, num_classes=3), data())


@pytest.mark.parametrize("shape,levels", [((1, 8, 8), 4), ((3, 4, 4), 4), ((1, 4, 4), 17)])
def test_another_shape_or_number_of_levels_is_refused(shape, levels):
    with pytest.raises(PixelRNNError, match=r"the model was trained on \(1, 4, 4\) with 4 levels; pick the matching"):
        check_fits(tiny_model("pixelcnn", (1, 4, 4), 4), data(shape, levels), "mine")
    with pytest.raises(PixelRNNError, match="^mine has images"):
        check_fits(tiny_model("pixelcnn", (1, 4, 4), 4), data(shape, levels), "mine")
    with pytest.raises(PixelRNNError, match="^tiny has images"):  # without a name: the data set's own
        check_fits(tiny_model("pixelcnn", (1, 4, 4), 4), data(shape, levels))


def test_a_class_conditional_model_on_unlabelled_data_is_refused():
    model = tiny_model("pixelcnn", (1, 4, 4), 4, num_classes=3)
    with pytest.raises(ConfigError, match="the model is class-conditional, but tiny has no class labels.*"
                                          "e.g. --data fashion-mnist"):
        check_fits(model, data(labelled=False))
    with pytest.raises(ConfigError, match="^runs/x is class-conditional.*e.g. --data digits$"):
        check_fits(model, data(labelled=False), run="runs/x", trained_on="digits")


def test_a_checkpoint_loads_with_the_split_it_was_trained_on(tmp_path):
    model = tiny_model("pixelcnn", (1, 8, 8), 17, dtype=torch.float32)
    save_checkpoint(tmp_path / "run", model, extra_config={"train": {"data": "digits"}})
    loaded, split = load_with_data(tmp_path / "run")
    assert (split.name, split.split, split.levels) == ("digits", "test", 17)
    assert loaded.image_shape == (1, 8, 8) and loaded.levels == 17
    assert load_with_data(tmp_path / "run", split="valid")[1].split == "valid"


def test_a_checkpoint_without_its_data_needs_one_given_that_fits(tmp_path):
    save_checkpoint(tmp_path / "bare", tiny_model("pixelcnn", (1, 8, 8), 17, dtype=torch.float32))
    with pytest.raises(ConfigError, match="does not say what data it was trained on; pass --data"):
        load_with_data(tmp_path / "bare")
    assert load_with_data(tmp_path / "bare", data="digits")[1].name == "digits"
    save_checkpoint(tmp_path / "small", tiny_model("pixelcnn", (1, 4, 4), 17, dtype=torch.float32))
    with pytest.raises(PixelRNNError, match="^digits has images"):
        load_with_data(tmp_path / "small", data="digits")
