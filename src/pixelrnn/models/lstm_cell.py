"""The LSTM cell of equation 3 of "Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016), once.

    [o, f, i, g] = sigma(K_ss (*) h_(i-1) + K_is (*) x_i)      sigma: logistic for o, f, i; tanh for g
    c_i = f . c_(i-1) + i . g,    h_i = o . tanh(c_i)

Every layer here stacks its 4h gate pre-activations in the order of ``GATES`` along one dimension. The Row LSTM and
the Diagonal BiLSTM, their plain references, their fast scans (with hand-written backward passes) and their steppers
all call these functions, so the cell and its gate order are defined in this file alone.
"""

from __future__ import annotations

import torch

GATES = ("o", "f", "i", "g")  # the order of the four gate blocks in every 4h map


def gate_activations(gates: torch.Tensor, dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """The pre-activations [o, f, i, g] stacked along ``dim`` -> their activations, same shape (into ``out``)."""
    hid = gates.shape[dim] // len(GATES)
    # o, f, i in one sigmoid call, g through tanh; with ``out`` (the scans, no autograd) each straight into its part.
    if out is None:
        sigmoid, tanh = torch.sigmoid(gates.narrow(dim, 0, 3 * hid)), torch.tanh(gates.narrow(dim, 3 * hid, hid))
        return torch.cat([sigmoid, tanh], dim)
    torch.sigmoid(gates.narrow(dim, 0, 3 * hid), out=out.narrow(dim, 0, 3 * hid))
    torch.tanh(gates.narrow(dim, 3 * hid, hid), out=out.narrow(dim, 3 * hid, hid))
    return out


def lstm_step(gates: torch.Tensor, cell: torch.Tensor, dim: int,
              acts: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Equation 3 from the pre-activations ``gates`` and the previous ``cell`` state.

    ``acts``, if given, receives the gate activations (a fast scan's saved buffer: no copy afterwards).

    Returns:
        (hidden, cell, activations): the new states, each the shape of ``cell``, and the gate activations that
        :func:`lstm_backward` needs.
    """
    acts = gate_activations(gates, dim, acts)
    o, f, i, g = acts.chunk(len(GATES), dim)
    cell = torch.addcmul(f * cell, i, g)
    return o * torch.tanh(cell), cell, acts


def lstm_update(gates: torch.Tensor, cell: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Equation 3 without the activations: (hidden, cell), each the shape of ``cell``."""
    hidden, cell, _ = lstm_step(gates, cell, dim)
    return hidden, cell


def lstm_backward(acts: torch.Tensor, cell_prev: torch.Tensor, cell: torch.Tensor, grad_hidden: torch.Tensor,
                  grad_cell: torch.Tensor, dim: int,
                  out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of equation 3, written by hand for the fast scans.

    Args:
        acts: the gate activations [o, f, i, g] of :func:`lstm_step`.
        cell_prev, cell: the cell state before and after the step.
        grad_hidden, grad_cell: dL/dh and dL/dc of the step's outputs (dL/dc from the later steps only).
        out: if given, receives the gradient of the pre-activations (in its own dtype: a scan's matmul buffer).

    Returns:
        (dL/d pre-activations [o, f, i, g] stacked along ``dim``, dL/d cell_prev).
    """
    o, f, i, g = acts.chunk(len(GATES), dim)
    tanh_c = torch.tanh(cell)
    dc = grad_cell + grad_hidden * o * (1 - tanh_c * tanh_c)
    grad_gates = torch.cat([grad_hidden * tanh_c * o * (1 - o), dc * cell_prev * f * (1 - f), dc * g * i * (1 - i),
                            dc * i * (1 - g * g)], dim, out=out)
    return grad_gates, dc * f
