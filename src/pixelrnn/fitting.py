"""Which data a trained model may score, complete or compress, and loading the two together.

A model of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) is a distribution over images of one
shape, with K discrete values per channel: its likelihood of an image of another shape or range means nothing, and a
class-conditional model (the paper's conditional image generation) without its class is far from what it learned.
:func:`check_fits` refuses such pairs with one clear error; :func:`load_with_data` loads a checkpoint or shipped
model with the split of the data set it was trained on (or another one given), checked the same way.
"""

from __future__ import annotations

from pathlib import Path

from . import pretrained
from .checkpoint import read_training_config
from .data import ImageData, load_dataset
from .errors import ConfigError, PixelRNNError
from .models import AutoregressiveModel

__all__ = ["check_fits", "load_with_data"]


def check_fits(model: AutoregressiveModel, data: ImageData, name: str | None = None, *, run: str | Path | None = None,
               trained_on: str | None = None) -> None:
    """Refuse data that ``model`` cannot use as it learned to.

    Args:
        model: a trained model.
        data: the split to use with it.
        name: the data set's name as the user gave it, for the messages (default: ``data.name``).
        run: where the model came from (a run folder or a shipped name), for the messages.
        trained_on: the data set the model was trained on, suggested when ``data`` has no labels.

    Raises:
        PixelRNNError: the images have another shape or number of levels than the model.
        ConfigError: the model is class-conditional and the data has no class labels.
    """
    name = name or data.name
    if tuple(data.image_shape) != model.image_shape or data.levels != model.levels:
        raise PixelRNNError(f"{name} has images {data.image_shape} with {data.levels} levels, but the model was "
                            f"trained on {model.image_shape} with {model.levels} levels; pick the matching --data")
    if model.settings.num_classes and data.labels is None:
        # Without its class bias a class-conditional model is far from what it learned (0.8 bits/dim worse on
        # Fashion-MNIST): a silent figure or completion from it would mislead.
        raise ConfigError(f"{run or 'the model'} is class-conditional, but {name} has no class labels; pick a "
                          f"labelled data set, e.g. --data {trained_on or 'fashion-mnist'}")


def load_with_data(run: str | Path, data: str | None = None, split: str = "test", data_dir: str | Path | None = None,
                   verify: bool = True) -> tuple[AutoregressiveModel, ImageData]:
    """A checkpoint's model, and the data split to use with it (by default the data it was trained on).

    Args:
        run: a run folder, checkpoint folder or file, or a shipped model's name (``pixelrnn models``).
        data: the data set to load instead of the one the model was trained on, e.g. ``"digits"``.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        data_dir: where data sets live (default: the one the run was trained from, else the usual one).
        verify: check the weights against their recorded sha256.

    Returns:
        ``(model, split)``: the model on the CPU, and the split as an :class:`~pixelrnn.data.ImageData`.

    Raises:
        ConfigError: the checkpoint does not say what data it was trained on and ``data`` is not given, or see
            :func:`check_fits`.
        PixelRNNError: see :func:`check_fits`; also a missing checkpoint or data set.
    """
    model = pretrained.load(run, verify=verify)
    trained = read_training_config(pretrained.resolve(run))
    name = data or trained.get("data")
    if name is None:
        raise ConfigError("this checkpoint does not say what data it was trained on; pass --data, e.g. --data digits")
    split_data = load_dataset(name, split, data_dir or trained.get("data_dir"), image_size=trained.get("image_size"))
    check_fits(model, split_data, name, run=run, trained_on=trained.get("data"))
    return model, split_data
