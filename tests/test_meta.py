"""Every model on PyTorch's ``meta`` device: the bugs a first GPU run would find, found without a GPU.

Meta tensors have shapes and dtypes but no values. The forward pass, the backward pass, an optimizer step (the
training loop's own ``train_step``) and the step-wise sampler run on them for every family. A tensor made on a
hard-coded device fails (:class:`OnMetaOnly` sees every result), and so does any read of a value back to the host
(``.item()``, ``.tolist()``, the truth of a tensor): a meta tensor has no value to read.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from pixelrnn import train as training
from pixelrnn.config import TrainConfig
from pixelrnn.train import make_optimizer, train, train_step
from helpers import tiny_model

META = torch.device("meta")
SHAPE, LEVELS, CLASSES = (3, 4, 4), 5, 3

FAMILIES = {
    "pixelcnn": {}, "row_lstm": {}, "diagonal_bilstm": {},
    "row_lstm-no-learned-state": dict(learn_initial_state=False),
    "diagonal_bilstm-no-skip": dict(skip=False, residual=False),
    "multiscale-row_lstm": dict(base="row_lstm"), "multiscale-diagonal_bilstm": dict(base="diagonal_bilstm"),
    "multiscale-pixelcnn": dict(base="pixelcnn"), "multiscale-three-levels": dict(small=(1, 2)),
    "row_lstm-wavefront": {}, "row_lstm-wavefront-classes": dict(num_classes=CLASSES),
    "pixelcnn-classes": dict(num_classes=CLASSES), "row_lstm-classes": dict(num_classes=CLASSES),
    "diagonal_bilstm-classes": dict(num_classes=CLASSES), "multiscale-classes": dict(num_classes=CLASSES),
}


class OnMetaOnly(TorchDispatchMode):
    """Fail at the first operation whose result is not a meta tensor, or that reads a value back to the host.

    A 0-dimensional CPU tensor is allowed: PyTorch mixes such scalars with tensors of any device without a copy
    or a wait (the optimizers keep their step counts in them), so one never breaks a GPU run.
    """

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten._local_scalar_dense, torch.ops.aten.is_nonzero):
            raise AssertionError(f"{func} reads a value back to the host")
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.device != META and t.dim() > 0:
                raise AssertionError(f"{func} made a tensor of shape {tuple(t.shape)} on {t.device}")
        return out


def meta_model(family: str):
    name = family.split("-")[0]
    model = tiny_model(name, SHAPE, LEVELS, dtype=torch.float32, **FAMILIES[family])
    if "wavefront" in family:
        model.wavefront = True  # the Row LSTM's layers on one wavefront (a speed setting, not an option)
    return model.to(META)


def images(batch: int = 2) -> torch.Tensor:
    return torch.randint(0, LEVELS, (batch, *SHAPE), device=META)


def labels(model, batch: int = 2) -> torch.Tensor | None:
    return torch.randint(0, CLASSES, (batch,), device=META) if model.settings.num_classes else None


def test_the_guard_catches_host_tensors_and_reads():
    x = torch.zeros(2, 3, device=META)
    with pytest.raises(AssertionError, match="on cpu"), OnMetaOnly():
        x + torch.ones(3)  # a host tensor where the model's device belongs
    with pytest.raises(AssertionError, match="reads a value"), OnMetaOnly():
        bool(x.sum() > 0)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_training_step_runs_on_the_meta_device(family):
    """Forward, backward, gradient clipping and an RMSProp step, with no host tensor and no host read."""
    model = meta_model(family).train()
    x = images()
    optimizer = make_optimizer(TrainConfig(), model.parameters())
    with OnMetaOnly():
        loss = train_step(model, optimizer, [(x, labels(model))], "fp32", grad_clip=TrainConfig.grad_clip)
    assert loss.device == META and loss.dim() == 0
    assert all(p.grad is not None and p.grad.device == META for p in model.parameters())
    assert all(state["square_avg"].device == META for state in optimizer.state.values())
    assert len(optimizer.state) == len([p for p in model.parameters() if p.requires_grad])


def test_the_training_loop_reads_the_loss_at_its_logging_steps_only(tmp_path, monkeypatch):
    """A read of the loss makes the host wait for the device: the loop reads it every ``log_every`` steps, not at
    every step (the steps' loss tensors record when they are read)."""
    reads = []

    class Loss:
        def __init__(self, value, step):
            self.value, self.step = value, step

        def __float__(self):
            reads.append(self.step)
            return float(self.value)

    steps = iter(range(1, 1000))
    step = training.train_step
    monkeypatch.setattr(training, "train_step", lambda *args, **kw: Loss(step(*args, **kw), next(steps)))
    config = TrainConfig(model="pixelcnn", model_options=dict(layers=1, hidden=4, head=8), data="digits",
                         steps=10, batch_size=8, log_every=4, eval_every=0, checkpoint_every=100)
    result = train(config, tmp_path, progress=False)
    assert reads == [4, 8, 10]  # the logging steps and the last one
    assert isinstance(result.train_bits_per_dim, float) and 0 < result.train_bits_per_dim < 10


@pytest.mark.parametrize("family", FAMILIES)
def test_the_step_wise_sampler_runs_on_the_meta_device(family):
    """The walk behind sampling, completion and the codec: every value of a 4 x 4 image, with its stepper."""
    model = meta_model(family).eval()
    x = images()
    chosen = []

    def choose(c, i, j, logits):
        assert logits.shape == (len(x), LEVELS) and logits.device == META
        chosen.append((c, i, j))
        return logits.argmax(-1)

    with torch.no_grad(), OnMetaOnly():
        out = model.walk(x, lambda c, i, j: True, choose, y=labels(model))
    assert out.device == META
    assert chosen == model.order()
