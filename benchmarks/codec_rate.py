"""The exact codec's rate on a whole data-set split, against each shipped model's recorded test NLL.

    OMP_NUM_THREADS=1 taskset -c 1 python benchmarks/codec_rate.py fashion-pixelcnn fashion-row-lstm \\
        fashion-pixelcnn-classes fashion-diagonal-bilstm fashion-multiscale

Each model compresses all 10,000 Fashion-MNIST test images (format 4, files of 2,000 images, class-conditional
models with the test labels stored); one JSON line per model: the files' bits/dim, the NLL its record.json holds
for the same split, their ratio, and the encoding time.
"""

import argparse
import json
import time

import pixelrnn
from pixelrnn import codec, exact
from pixelrnn.data import load_dataset
from pixelrnn.pretrained import resolve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="shipped model names")
    parser.add_argument("--per-file", type=int, default=2000, help="images per compressed file")
    args = parser.parse_args()
    data = load_dataset("fashion-mnist", "test")
    images = data.images.long()
    for name in args.models:
        model = pixelrnn.load_pretrained(name)
        record = json.loads((resolve(name) / "record.json").read_text())
        integer = exact.for_checkpoint(model, resolve(name), write=False)
        labels = data.labels if model.settings.num_classes else None
        start = time.time()
        size = 0
        for first in range(0, len(images), args.per_file):
            part = slice(first, first + args.per_file)
            size += len(codec.encode(model, images[part], labels=None if labels is None else labels[part],
                                     integer=integer))
        bits_per_dim = 8 * size / images.numel()
        print(json.dumps({"model": name, "images": len(images), "file_bits_per_dim": bits_per_dim,
                          "float_nll": record["test_bits_per_dim"], "ratio": bits_per_dim / record["test_bits_per_dim"],
                          "seconds": round(time.time() - start, 1)}), flush=True)


if __name__ == "__main__":
    main()
