"""The exact inference path: integer models whose probabilities are bit-identical on every machine.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) gives exact likelihoods, so a model is a
lossless compressor; but a range coder needs the probabilities bit for bit the same where a file is encoded and
where it is decoded, and float arithmetic does not promise that across CPUs, BLAS libraries, thread counts or GPUs.
Here the model runs in integers (Ballé, Johnston and Minnen, "Integer networks for data compression with
latent-variable models", ICLR 2019): exact products and sums (:mod:`.arith`), nonlinearities from integer tables
(:mod:`.tables`), integer frequency tables for the coder (:mod:`.frequencies`). Then nothing that differs between
machines can change a result, and the full-image pass and the step-wise pass give the same integers, so a file is
encoded from one parallel pass and decoded value by value.

Every family has an integer form, one module each, with all its options (residual and skip paths, colour, class
labels, learned initial states, a context map): the PixelCNN (:mod:`.pixelcnn`), the Row LSTM (:mod:`.row_lstm`),
the Diagonal BiLSTM (:mod:`.diagonal_bilstm`), both with the fixed-point LSTM cell of :mod:`.recurrent`, and the
multi-scale model over each of them (:mod:`.multiscale`).

Entry points: :func:`quantize` (a float model -> its integer model), :func:`for_checkpoint` (the integer model
stored beside a checkpoint, made and stored when missing), :func:`supports`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ConfigError
from ..models.diagonal_bilstm import DiagonalBiLSTM
from ..models.multiscale import MultiScale
from ..models.pixelcnn import PixelCNN
from ..models.row_lstm import RowLSTM
from .diagonal_bilstm import IntegerDiagonalBiLSTM
from .model import IntegerModel, Settings
from .multiscale import IntegerMultiScale
from .pixelcnn import IntegerPixelCNN
from .row_lstm import IntegerRowLSTM
from .quantize import calibrate, generated_images
from .store import FILE, exact_path, fingerprint, load_integer, model_fingerprint, save_integer

__all__ = ["FILE", "FAMILIES", "IntegerModel", "Settings", "exact_path", "fingerprint", "for_checkpoint",
           "load_integer", "model_fingerprint", "quantize", "save_integer", "stored_integer", "supports"]

# The float families with an integer form, by their model class, and the integer class by family name.
INTEGER_FORMS: dict[type, type[IntegerModel]] = {PixelCNN: IntegerPixelCNN, RowLSTM: IntegerRowLSTM,
                                                 DiagonalBiLSTM: IntegerDiagonalBiLSTM, MultiScale: IntegerMultiScale}
FAMILIES: dict[str, type[IntegerModel]] = {cls.family: cls for cls in INTEGER_FORMS.values()}
CALIBRATION_PIXELS = 64 * 32 * 32


def supports(model) -> bool:
    """Whether ``model``'s family has an integer form (and so codes with format version 4)."""
    return type(model) in INTEGER_FORMS and not model.settings.context_channels


def quantize(model, images: torch.Tensor | None = None, labels: torch.Tensor | None = None,
             settings: Settings | None = None, source: str | None = None) -> IntegerModel:
    """The integer model of ``model``, calibrated on ``images`` (default, and what the codec uses: the fixed
    generated images of :func:`.quantize.generated_images`, so that the integer model depends on the weights alone).

    Args:
        model: a float model of a family that :func:`supports`.
        images: calibration images, int [N, C, H, W]; the first ``settings.calibration_images`` are used.
        labels: their classes, for a class-conditional model (default: image n gets class n mod classes).
        settings: bits and headroom (default: :class:`Settings`).
        source: a description of where ``images`` came from, recorded with the integer model.

    Returns:
        The integer model, on the CPU.
    """
    if type(model) not in INTEGER_FORMS:
        raise ConfigError(f"the {model.config['model']} family has no exact integer form yet")
    if model.settings.context_channels:
        raise ConfigError("a model conditioned on a context map is quantised as a level of its multi-scale model, "
                          "which makes the map")
    settings = settings or Settings()
    _, height, width = model.image_shape
    # At most about CALIBRATION_PIXELS pixels (64 images of 32 x 32), at least 4 images: one full pass holds them all.
    n = min(settings.calibration_images, max(4, CALIBRATION_PIXELS // (height * width)))
    if images is None:
        images, labels, source = generated_images(n, model.image_shape, model.levels), None, "generated"
    images = images[:n]
    labels = None if labels is None else labels[:n]
    info = {"calibration": f"{source or 'given'} images [:{len(images)}]",
            "float_fingerprint": model_fingerprint(model)}
    family = INTEGER_FORMS[type(model)]
    return calibrate(family, model, images, labels, settings, info,
                     lambda integer, net, x, y: integer.logits(x, y, net=net))


def stored_integer(model, checkpoint: str | Path) -> IntegerModel | None:
    """The integer model stored beside ``checkpoint`` (a checkpoint folder or weights file) if it belongs to these
    weights, else None.

    Raises:
        CheckpointError: the stored integer model is damaged.
    """
    path = exact_path(Path(checkpoint))
    if path.is_file():
        integer = load_integer(path, FAMILIES)
        if integer.info.get("float_fingerprint") == model_fingerprint(model):
            return integer
    return None


def for_checkpoint(model, checkpoint: str | Path, write: bool = True) -> IntegerModel:
    """The integer model stored beside ``checkpoint`` (:func:`stored_integer`); else :func:`quantize` (with the
    generated calibration images) and, with ``write``, stored there.

    The integer model is a function of the float weights alone, so computing it again gives the same integers; the
    stored one saves the time and pins the integers a file was written with.

    Raises:
        CheckpointError: the stored integer model is damaged.
        OutputError: it cannot be written.
    """
    integer = stored_integer(model, checkpoint)
    if integer is None:
        integer = quantize(model)
        if write:
            save_integer(exact_path(Path(checkpoint)), integer)
    return integer
