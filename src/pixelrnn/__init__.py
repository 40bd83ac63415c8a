"""pixelrnn: the models of "Pixel Recurrent Neural Networks" (van den Oord, Kalchbrenner, Kavukcuoglu, ICML 2016).

Exact likelihood models of images, with a 256-way (or K-way) softmax per colour value, masks A and B, and R -> G -> B
order inside a pixel. See ``pixelrnn.build_model`` and the README.
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .errors import PixelRNNError
from .images import read_images, save_images
from .models import build_from_config, build_model, model_defaults, model_names, model_options
from .pretrained import load_pretrained

MODELS: tuple[str, ...] = model_names()

__version__ = "0.1.0"

__all__ = ["MODELS", "PixelRNNError", "build_from_config", "build_model", "load_checkpoint", "load_pretrained",
           "model_defaults", "model_options", "read_images", "save_checkpoint", "save_images"]
