"""Write the golden files of tests/test_exact_decoding.py: a few tiny compressed files of the shipped models, made
once on one machine, with their images, so that every test run, on whatever CPU it gets, decodes them and compares.

    python tests/golden/make_golden.py

Run it again only when the format or the shipped integer models change on purpose: files already written by users
are what these stand for.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

import pixelrnn
from pixelrnn import codec, exact, pretrained
from pixelrnn.data import load_dataset
from pixelrnn.errors import write_atomic

HERE = Path(__file__).resolve().parent
# Each shipped model with an integer form: which test images, and whether the file stores names.
GOLDEN = {
    "fashion-pixelcnn": dict(first=0, count=2, names=None),
    "fashion-pixelcnn-classes": dict(first=2, count=2, names=["coat", "top"]),
    "fashion-row-lstm": dict(first=4, count=1, names=None),
    "fashion-diagonal-bilstm": dict(first=5, count=1, names=["shirt"]),
    "fashion-multiscale": dict(first=6, count=1, names=None),
}


def main() -> None:
    test = load_dataset("fashion-mnist", "test")
    for name, spec in GOLDEN.items():
        model = pixelrnn.load_pretrained(name)
        integer = exact.for_checkpoint(model, pretrained.resolve(name), write=False)
        part = slice(spec["first"], spec["first"] + spec["count"])
        images, labels = test.images[part].long(), test.labels[part]
        labels = labels if model.settings.num_classes else None
        data = codec.encode(model, images, names=spec["names"], labels=labels, integer=integer)
        write_atomic(HERE / f"{name}.prnn", data)
        np.save(HERE / f"{name}.npy", images.numpy().astype(np.uint8))
        record = {"labels": None if labels is None else labels.tolist(), "names": spec["names"],
                  "integer_model": exact.fingerprint(integer), "bytes": len(data)}
        write_atomic(HERE / f"{name}.json", (json.dumps(record, indent=2) + "\n").encode())
        print(f"{name}: {len(data)} bytes for {len(images)} images")


if __name__ == "__main__":
    main()
