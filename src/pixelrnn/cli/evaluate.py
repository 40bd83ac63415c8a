"""``pixelrnn evaluate``: exact bits/dim and nats/image of a model over a data split.

The figure is :func:`pixelrnn.evaluate.evaluate`'s, summed over every image of the split (the paper's negative
log-likelihood in bits per dimension, and in nats per image as its table for binarized MNIST gives it).
"""

from __future__ import annotations

import json
from pathlib import Path

from .. import distributed
from ..checkpoint import RunFolder
from ..errors import write_atomic
from ..evaluate import evaluate
from ..fitting import load_with_data
from ..precision import PRECISIONS, resolve_precision
from .common import Shared, count, path, warn_if_emulated


def add_evaluate(sub, shared: Shared) -> None:
    p = sub.add_parser("evaluate", help="exact bits/dim and nats/image over a data split",
                       parents=[shared.run, shared.running, shared.trained_on, shared.split, shared.data_dir,
                                shared.quiet])
    p.add_argument("--limit", type=count, help="only the first N images (default: all)")
    p.add_argument("--batch-size", type=count,
                   help="images per forward pass (speed only; default: 16 on a CPU, 256 on a GPU)")
    p.add_argument("--precision", default="auto", choices=PRECISIONS,
                   help="auto: bf16 where the device runs it natively, else fp32; bf16: matrix work in bfloat16 "
                        "(the sums stay in float64 either way)")
    p.add_argument("--json", type=path,
                   help="where to write the result (default: RUN/eval-DATA-SPLIT.json for a run folder)")
    p.add_argument("--compile", action="store_true", help="score through torch.compile")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    with distributed.session(args.device) as device:  # under torchrun each process scores its part of the images
        precision = resolve_precision(args.precision, device)
        warn_if_emulated(args.precision, device)
        with distributed.local_main_first():
            model, data = load_with_data(args.run, args.data, args.split, args.data_dir, verify=not args.no_verify)
        name = data.name
        images = data.images if args.limit is None else data.images[:args.limit]
        labels = None if data.labels is None else data.labels[:len(images)]
        result = evaluate(model.to(device), images, labels, batch_size=args.batch_size, precision=precision,
                          progress=not args.quiet, compile=args.compile)
    if not distributed.is_main():
        return 0
    result.update(data=name, split=args.split, model=model.config, precision=precision)
    width = max(14, len(args.data or name) + 2)  # a long folder:PATH must not run into the next column
    print(f"{'data':<{width}}{'split':<8}{'images':>8}{'bits/dim':>11}{'nats/image':>13}")
    print(f"{args.data or name:<{width}}{args.split:<8}{result['images']:>8}{result['bits_per_dim']:>11.4f}"
          f"{result['nats_per_image']:>13.2f}")
    out = Path(args.json) if args.json else RunFolder(args.run).evaluation(name, args.split)
    if Path(args.run).is_dir() or args.json:
        write_atomic(out, (json.dumps(result, indent=2) + "\n").encode())
        print(f"wrote {out}")
    return 0
