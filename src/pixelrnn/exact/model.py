"""What every integer model shares: its description, the image as integers, frequencies, and the step-wise walk.

An integer model is the exact counterpart of a float model of "Pixel Recurrent Neural Networks" (van den Oord et
al., ICML 2016): the same network and the same order of values, computed in integers (:mod:`.arith`), giving for
each value an integer frequency table (:mod:`.frequencies`) instead of a softmax. It is made from the float model
by :func:`pixelrnn.exact.quantize` and stored beside it (:mod:`.store`).

Each family (one module each: :mod:`.pixelcnn`, ...) provides

- ``logits(x, y)``: the full-image pass, integer logits of every value at once, (B, H, W, C, K);
- ``stepper(batch, y)``: the step-wise pass, an object with ``logits(x, i, j)`` (B, C, K) for pixel (i, j) given
  the values before it, ``commit(x, i, j)`` once the pixel's values are all known, and ``end_row(x, i)``;

and this base class turns both into frequency tables in the model's order: the encoder reads them from one full
pass, the decoder walks value by value. Both are exact, so they are equal, and a test holds them to it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, ClassVar

import torch
from tqdm.auto import tqdm

from ..devices import eval_batch_size
from .arith import DTYPE
from .frequencies import EXP_BITS, LOGIT_EXP, coder_weights
from .network import Network
from .ops import Linear, Op
from .tables import exp_table


@dataclass(frozen=True)
class Settings:
    """How a float model is quantised: bits of activations and weights, headroom above the calibrated range."""

    act_bits: int = 16  # activations are signed integers of this many bits
    weight_bits: int = 16  # weights too, each tensor at its own power-of-two scale
    headroom_bits: int = 1  # calibration leaves this many bits above the largest activation it met
    calibration_images: int = 64

    def __post_init__(self):
        for name in ("act_bits", "weight_bits"):
            if not 4 <= getattr(self, name) <= 24:
                raise ValueError(f"{name} must lie in [4, 24], not {getattr(self, name)}")
        if not 0 <= self.headroom_bits <= 8 or self.calibration_images < 1:
            raise ValueError("headroom_bits must lie in [0, 8] and calibration_images be at least 1")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class IntegerModel:
    """Base class of the integer families: ``family`` names the float family it stands for."""

    family: ClassVar[str]
    # Bytes of its widest float64 map that a full pass of the encoder holds on a CPU: only speed depends on it. A
    # pass's maps should stay near the CPU's caches, and a recurrent pass's per-row operations want enough images to
    # amortise their calls. Measured on one core (Intel Xeon), encoding 256 Fashion-MNIST images (a widest map of
    # 1.6 MB an image): the PixelCNN 1.4x faster at 2 images a pass than at 16, the Row LSTM 1.1x at 4; the Diagonal
    # BiLSTM is fastest at 16. Small images take many per pass (8 x 8 digits: 64), so per-pass calls stay few.
    cpu_pass_bytes: ClassVar[int] = 32 << 20

    def __init__(self, config: dict[str, Any], settings: Settings, ops: dict[str, Op], info: dict[str, Any],
                 prefix: str = ""):
        self.config = config  # the float model's config (``model.config``)
        self.settings = settings
        self.net = Network(ops, prefix=prefix)  # a part of a larger model (a multi-scale level) has a prefix
        self.info = info  # what the store records: calibration source, the float model's fingerprint
        self.device = torch.device("cpu")
        self.table = exp_table(LOGIT_EXP, EXP_BITS).to(torch.float64)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.config["image_shape"])

    @property
    def levels(self) -> int:
        return int(self.config["levels"])

    @property
    def num_classes(self) -> int | None:
        return self.config.get("num_classes")

    @property
    def ops(self) -> dict[str, Op]:
        return self.net.ops

    def to(self, device: str | torch.device) -> IntegerModel:
        """This model with its integers on ``device`` (the results do not depend on it)."""
        device = torch.device(device)
        moved = type(self)(self.config, self.settings, {n: op.to(device) for n, op in self.ops.items()}, self.info)
        moved.place(device, self.table.to(device))
        return moved

    def place(self, device: torch.device, table: torch.Tensor) -> None:
        """Record where this model's integers are (a model made of others places them too)."""
        self.device, self.table = device, table

    def to_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Values in [0, K) -> the integers 2x - (K - 1), channels last: the float model's inputs x * 2/(K-1) - 1,
        times K - 1 (the first layer's weights carry the 1/(K-1))."""
        u = x.to(self.device, DTYPE) * 2 - (self.levels - 1)
        return u.movedim(1, -1) if u.dim() == 4 else u

    def unfold(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., C*K) -> (..., C, K), laid out as the float head lays out its colour groups."""
        c, k = self.image_shape[0], self.levels
        if self.config.get("grouping", "contiguous") == "contiguous":
            return logits.view(*logits.shape[:-1], c, k)
        return logits.view(*logits.shape[:-1], k, c).transpose(-1, -2)

    def pass_images(self) -> int:
        """Images per full pass of the encoder: on a CPU as many as ``cpu_pass_bytes`` of the widest map hold (1 to
        256), on a GPU as many as evaluation takes."""
        if self.device.type != "cpu":
            return eval_batch_size(self.device)
        _, height, width = self.image_shape
        own = [op for name, op in self.ops.items() if name.startswith(self.net.prefix) and isinstance(op, Linear)]
        widest = max((op.weight.shape[1] for op in own), default=1)
        return max(1, min(256, self.cpu_pass_bytes // (8 * height * width * widest)))

    def check_labels(self, y: torch.Tensor | None, batch: int) -> torch.Tensor | None:
        if not self.num_classes:
            return None
        if y is None:
            raise ValueError("a class-conditional integer model needs labels")
        return torch.as_tensor(y, device=self.device).long().reshape(-1).expand(batch)

    # The two passes; families implement them.

    def logits(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        """Integer logits (B, H, W, C, K) of every value of ``x`` (B, C, H, W), in units of 2**-LOGIT_EXP."""
        raise NotImplementedError

    def stepper(self, batch: int, y: torch.Tensor | None = None):  # pragma: no cover - abstract
        raise NotImplementedError

    def order(self) -> list[tuple[int, int, int]]:
        """(channel, row, column) of every value in coding order: raster, then R, G, B (as the float model)."""
        c, h, w = self.image_shape
        return [(k, i, j) for i in range(h) for j in range(w) for k in range(c)]

    def step_flops(self, batch: int) -> int:
        """The FLOPs of the largest product of one step of the step-wise pass, for ``batch`` images."""
        largest = max((t.numel() for op in self.ops.values() for t in op.tensors().values() if t.dim() == 2),
                      default=0)
        return 2 * batch * largest

    def step_bytes(self) -> int:
        """About how many bytes the decoder's step-wise pass holds per image: its caches (of a k x k layer, the rows
        a pixel reads and a row's sums of the rows above: :class:`.steps.RowWindows`) and conditioning maps, doubled
        for what a step makes on the way."""
        _, height, width = self.image_shape
        values = 0
        own = {name[len(self.net.prefix):]: op for name, op in self.ops.items() if name.startswith(self.net.prefix)}
        for name, op in own.items():
            if isinstance(op, Linear) and op.taps != ((0, 0),):
                top, _, left, right = op.padding
                values += (top + 1) * (width + left + right) * op.in_features + width * op.weight.shape[1]
            elif isinstance(op, Linear) and name.startswith("context_bias"):
                values += height * width * op.weight.shape[1]  # a conditioning map, held whole
        return 2 * 8 * values

    # Frequencies from both passes.

    def weights(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The full pass: the coder's weights, frequencies minus one (float64 integers, (B, C, H, W, K)), of every
        value of ``x`` at once (:func:`.frequencies.coder_weights`)."""
        with torch.no_grad():
            logits = self.logits(x.to(self.device), self.check_labels(y, len(x)))  # (B, H, W, C, K)
            return coder_weights(logits, self.table).permute(0, 3, 1, 2, 4)

    def ordered_weights(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The coder's weights of every value in coding order (:meth:`order`): float64 (B, values, K)."""
        with torch.no_grad():
            logits = self.logits(x.to(self.device), self.check_labels(y, len(x)))  # (B, H, W, C, K): raster order
            return coder_weights(logits, self.table).view(len(x), -1, self.levels)

    def frequencies(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The full pass: frequency tables int64 (B, C, H, W, K) of every value of ``x`` at once."""
        return self.weights(x, y).add_(1).to(torch.int64)

    def walk(self, x: torch.Tensor, choose: Callable[[int, int, int, torch.Tensor], torch.Tensor],
             y: torch.Tensor | None = None, progress: bool = False, desc: str = "decoding") -> torch.Tensor:
        """The step-wise pass: visit every value in order; ``choose(c, i, j, weights (B, K))`` gives its values
        (B,), from the coder's weights of that value (frequencies minus one, as :meth:`weights`).

        ``x`` (B, C, H, W) is filled in place and returned. The walk runs in inference mode: thousands of small
        operations, each without autograd's bookkeeping (about a tenth of a step's time); ``x`` itself, made
        outside, stays an ordinary tensor.
        """
        with torch.inference_mode():
            stepper = self.stepper(len(x), self.check_labels(y, len(x)))
            return raster_walk(self, stepper, x, choose, progress, desc)


def raster_walk(model: IntegerModel, stepper, x: torch.Tensor, choose, progress: bool, desc: str,
                wants=None) -> torch.Tensor:
    """Raster order, R, G, B inside a pixel: each value's frequencies from ``stepper``, its value from ``choose``.

    ``wants(c, i, j)``: whether value (c, i, j) is to be chosen (default: all); a value that is not keeps what ``x``
    holds, and its pixel's last pass still runs, which leaves the pixel's activations in the caches.
    """
    channels, height, width = x.shape[1:]
    bar = tqdm(total=height * width, desc=desc, unit="pixel", disable=None if progress else True, leave=False)
    for i in range(height):
        for j in range(width):
            for c in range(channels):
                wanted = wants is None or wants(c, i, j)
                if not wanted and c < channels - 1:
                    continue
                logits = stepper.logits(x, i, j)[:, c]
                if wanted:
                    x[:, c, i, j] = choose(c, i, j, coder_weights(logits, model.table)).to(x.device)
            stepper.commit(x, i, j)
            bar.update(1)
        stepper.end_row(x, i)
    bar.close()
    return x
