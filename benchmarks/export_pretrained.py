"""Export a training run as a model shipped with the package.

    python benchmarks/export_pretrained.py runs/fashion-pixelcnn fashion-pixelcnn \
        --command "pixelrnn train --preset fashion-pixelcnn --out runs/fashion-pixelcnn ..." [--machine TEXT]

Measures test bits/dim over the whole test split (weights in fp32 and rounded to bf16), stores the weights in bf16
where that costs at most 0.002 bits/dim, measures the stored model on the first 500 test images, draws the 4
fixed-seed samples, copies metrics.csv, and writes src/pixelrnn/pretrained/NAME/. An existing NAME is replaced
only with --force. See pixelrnn/pretrained/export.py.
"""

import argparse
import sys

from pixelrnn.errors import PixelRNNError
from pixelrnn.pretrained.export import export


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="a run folder written by `pixelrnn train`")
    p.add_argument("name", help="the shipped name, e.g. fashion-pixelcnn")
    p.add_argument("--force", action="store_true", help="replace a shipped model of that name")
    p.add_argument("--command", help="the training command(s), recorded with the model")
    p.add_argument("--machine", help="the machine the run trained on (default: this one)")
    p.add_argument("--dir", help="where shipped models live (default: the package's pretrained/ folder)")
    p.add_argument("--device", default="cpu", help="where to evaluate")
    p.add_argument("--batch-size", type=int, help="images per forward pass when evaluating (default: 16 on a CPU, "
                                              "256 on a GPU)")
    args = p.parse_args(argv)
    try:
        export(args.run, args.name, args.dir, force=args.force, command=args.command, machine_name=args.machine,
               device=args.device, batch_size=args.batch_size, progress=True)
    except PixelRNNError as e:
        sys.stderr.write(f"export_pretrained: error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
