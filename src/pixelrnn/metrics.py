"""The training curve of a run: ``metrics.csv``, and TensorBoard events when TensorBoard is installed.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) reports bits/dim (and nats per image for
binarized MNIST); a run logs both for its training batches and its validation passes, with images/s, the learning
rate and the training time, so that ``pixelrnn plot`` can draw the curves and a resumed run goes on where it was.
"""

from __future__ import annotations

import csv
import io

from . import checkpoint as ckpt
from .errors import CheckpointError, write_atomic, writing


class MetricsLog:
    """Appends rows to metrics.csv, and to TensorBoard when it is installed.

    ``seconds`` is the training time, cumulative across resumes. Starting at ``step``, rows logged after it (by a
    run that went on past its last checkpoint) are dropped, so that each step appears once after a resume.
    """

    # nats_per_image: the paper's unit for binarized MNIST (2 levels); filled for every data set.
    FIELDS = ("step", "split", "bits_per_dim", "images_per_s", "lr", "seconds", "nats_per_image")

    def __init__(self, run: ckpt.RunFolder, step: int = 0):
        self.path = run.metrics
        kept, fields = [], self.FIELDS
        if self.path.exists():
            kept, fields = self._read(step)
        self.seconds = max((float(row["seconds"]) for row in kept if row.get("seconds")), default=0.0)
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        write_atomic(self.path, text.getvalue().encode())  # the kept rows replace the old file only once complete
        with writing(self.path):
            self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=fields, extrasaction="ignore")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = SummaryWriter(str(run.tensorboard))
        except ImportError:  # TensorBoard is optional
            self.tensorboard = None

    def _read(self, step: int) -> tuple[list[dict], tuple[str, ...]]:
        """The rows up to ``step`` and the columns of an existing metrics.csv, or a one-line error if it is damaged."""
        try:
            with writing(self.path), open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                fields = tuple(reader.fieldnames or self.FIELDS)  # a run from before a column existed keeps its own
                if "step" not in fields or "seconds" not in fields:
                    raise ValueError(f"its columns are {', '.join(fields)[:80]}, without step and seconds")
                kept = [row for row in reader if int(row["step"]) <= step]
                for row in kept:
                    if row.get("seconds"):
                        float(row["seconds"])
        except (ValueError, TypeError, UnicodeDecodeError, csv.Error) as e:
            raise CheckpointError(f"{self.path} is damaged ({str(e).splitlines()[0][:120]}); move it aside to "
                                  f"resume (the run then logs from its checkpoint on)") from None
        return kept, fields

    def write(self, **row) -> None:
        with writing(self.path):
            self.writer.writerow(row)
            self.file.flush()
        if self.tensorboard is not None:
            self.tensorboard.add_scalar(f"{row['split']}/bits_per_dim", row["bits_per_dim"], row["step"])

    def close(self) -> None:
        with writing(self.path):
            self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
