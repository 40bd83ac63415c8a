"""What the integer families share, as :mod:`pixelrnn.models.layers` does for the float ones: the output head and
the conditioning biases of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016).

The head (section 3.5 of the paper): ReLU, a 1 x 1 mask-B map to ``head`` features, ReLU, a 1 x 1 mask-B map to
C*K logits, here integers in units of 2**-LOGIT_EXP. The conditioning: a class-conditional model adds a learned
vector per class to every layer's input (its input-to-state map, for the LSTMs); a model conditioned on a context
map (the multi-scale model's upsampled small image) adds that map's own 1 x 1 image per layer.
"""

from __future__ import annotations

import torch

from .arith import Fixed, relu
from .frequencies import LOGIT_BOUND, LOGIT_EXP
from .network import Network


def head(net: Network, h: Fixed) -> Fixed:
    """The output head (ReLU, 1 x 1, ReLU, 1 x 1): integer logits (..., C*K) in units of 2**-LOGIT_EXP."""
    hidden = net.linear("head.hidden", relu(h), relu=True)
    return net.linear("head.logits", hidden, out_exp=LOGIT_EXP, bound=LOGIT_BOUND)


def conditioning(net: Network, config: dict, y: torch.Tensor | None, context: Fixed | None,
                 layers: int) -> list[Fixed | None]:
    """Per layer, its conditioning bias: the class vector (B, 1, 1, w), the context map's 1 x 1 image (B, H, W, w),
    their sum, or None."""
    biases: list[Fixed | None] = []
    for k in range(layers):
        bias = None
        if config.get("num_classes"):
            vectors = net.embed(f"class_bias.{k}", y)  # (B, w)
            bias = Fixed(vectors.values[:, None, None], vectors.exp)
        if config.get("context_channels"):
            if context is None:
                raise ValueError("this integer model is conditioned on a context map; give one")
            part = net.linear(f"context_bias.{k}", context)  # (B, H, W, w)
            bias = part if bias is None else net.add(f"conditioning.{k}", bias, part)
        biases.append(bias)
    return biases
