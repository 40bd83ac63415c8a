"""``pixelrnn bench``, ``pixelrnn models`` and ``pixelrnn plot``: training speed, the shipped models, and curves.

``bench`` times training steps of a model configuration on a data set's images; ``models`` lists the checkpoints
shipped with the package and their recorded test figures; ``plot`` draws the training curves of runs from their
metrics.csv.
"""

from __future__ import annotations

from .. import __version__, devices, pretrained
from ..benchmark import bench
from ..config import model_settings
from ..data import load_dataset
from ..models import model_names
from ..plot import plot_curves
from ..precision import PRECISIONS, resolve_precision
from .common import Shared, count, model_flags, natural, output_flags, warn_if_emulated, writable


def add_bench(sub, shared: Shared) -> None:
    p = sub.add_parser("bench", help="training images/s of a model configuration",
                       parents=[shared.running, shared.model, shared.data_dir, shared.quiet])
    p.add_argument("--model", choices=model_names(), default="pixelcnn", help="model family")
    p.add_argument("--data", default="digits", help="data set whose images and shape to use")
    p.add_argument("--batch-size", type=count, default=16, help="images per step")
    p.add_argument("--precision", nargs="+", default=["auto"], choices=PRECISIONS,
                   help="precisions to measure, e.g. fp32 bf16 (auto: bf16 where the device runs it natively, "
                        "else fp32)")
    p.add_argument("--warmup", type=natural, default=3, help="untimed steps first")
    p.add_argument("--steps", type=count, default=10, help="timed steps (the median is reported)")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    device = devices.resolve_device(args.device)
    precisions = [resolve_precision(precision, device) for precision in args.precision]
    for precision in dict.fromkeys(args.precision):
        warn_if_emulated(precision, device)
    data = load_dataset(args.data, "train", args.data_dir)
    options = model_settings(args.model, model_flags(args))
    print(f"{'model':<18}{'batch':>6}{'precision':>10}{'images/s':>10}")
    for precision, result in bench(args.model, data, options, precisions, args.batch_size, device,
                                   warmup=args.warmup, steps=args.steps, progress=not args.quiet):
        print(f"{args.model:<18}{args.batch_size:>6}{precision:>10}{result['images_per_s']:>10.1f}")
    return 0


def add_models(sub, shared: Shared) -> None:
    p = sub.add_parser("models", help="list the trained models shipped with the package",
                       description="The trained models shipped with the package. Wherever a run folder is expected, "
                                   "a shipped name works too (pretrained:NAME when a folder of that name exists).")
    p.set_defaults(func=cmd_models)


def cmd_models(args) -> int:
    shipped = [pretrained.shipped(name) for name in pretrained.names()]
    if not shipped:
        print(f"none shipped yet: this pixelrnn {__version__} has no trained models built in")
        return 0
    print(f"{'name':<26}{'data':<15}{'shape':<10}{'parameters':>11}{'test bits/dim':>15}{'size':>9}")
    for model in shipped:
        r = model.record
        shape = "x".join(map(str, r["image_shape"]))
        print(f"{model.name:<26}{r['data']:<15}{shape:<10}{r['parameters']:>11,}{r['test_bits_per_dim']:>15.4f}"
              f"{model.size() / 1e6:>7.1f}MB")
    print("use a name wherever a run folder goes, e.g. `pixelrnn sample NAME -n 16`; in Python: "
          "pixelrnn.load_pretrained(NAME)")
    return 0


def add_plot(sub, shared: Shared) -> None:
    p = sub.add_parser("plot", help="training curves of runs as a PNG (needs matplotlib)",
                       description="Train and validation bits/dim against steps and against training time, one "
                                   "colour per run, from each run's metrics.csv. Needs matplotlib: "
                                   "pip install 'pixelrnn[plot]'.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folders, metrics.csv files or shipped model names")
    output_flags(p, "curves.png", "the PNG to write")
    p.set_defaults(func=cmd_plot)


def cmd_plot(args) -> int:
    output = writable(args.output, args.force, image=True)
    runs = {str(run): pretrained.metrics_file(run) for run in args.runs}
    print(f"wrote the curves of {len(runs)} run{'s' if len(runs) > 1 else ''} to {plot_curves(runs, output)}")
    return 0
