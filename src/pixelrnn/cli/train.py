"""``pixelrnn train`` and ``pixelrnn presets``: train a model from a preset and flags; list or show the presets.

Training itself is :func:`pixelrnn.train.train`; this module turns the flags into a
:class:`~pixelrnn.config.TrainConfig` and reports the :class:`~pixelrnn.train.TrainResult`, with the exact command
to go on.
"""

from __future__ import annotations

import argparse
import json
import shlex

from .. import distributed
from ..checkpoint import RunFolder
from ..config import FLAG_FIELDS, TrainConfig, merge
from ..data import DATASETS, dataset_info, load_dataset
from ..estimates import GPU_MIN_STEP_SECONDS, GPU_TFLOPS, duration, preset_estimates
from ..models import model_defaults, model_names
from ..precision import PRECISIONS
from ..presets import PRESETS, cpu_sized, default_preset, paper_preset, preset
from ..signals import EXIT_STATUS
from ..train import TrainResult, train
from .common import Shared, count, model_flags, natural, path, positive, seed, warn_if_emulated


def add_train(sub, shared: Shared) -> None:
    p = sub.add_parser("train", help="train a model", parents=[shared.running, shared.model, shared.data_dir,
                                                                 shared.quiet, shared.verify],
                       description="Train a model. Without --preset, a data set's CPU-sized preset is used where "
                                   "one exists (`pixelrnn presets` lists them); any flag overrides the preset.")
    p.add_argument("--model", choices=model_names(), help="model family (default: the preset's, else pixelcnn)")
    p.add_argument("--data", help=f"{', '.join(DATASETS)} or folder:PATH (default: the preset's, else digits)")
    p.add_argument("--out", type=path, required=True, help="the run folder")
    p.add_argument("--preset", help="named configuration (default: the CPU-sized one for --data, if any); "
                                    "`pixelrnn presets` lists them")
    steps = p.add_mutually_exclusive_group()
    steps.add_argument("--steps", type=count, help="total optimizer steps (default: the preset's, else 1000)")
    steps.add_argument("--epochs", type=positive, help="total epochs over the training split, instead of --steps")
    p.add_argument("--batch-size", type=count, help=f"images per step (default: the preset's, else "
                                                   f"{TrainConfig.batch_size})")
    p.add_argument("--precision", choices=PRECISIONS, help="auto: bf16 where the device runs it natively (AVX-512 "
                   "bf16 or AMX, a GPU of compute capability 8.0+), else fp32; bf16: matrix work in bfloat16 under "
                   f"autocast (default: {TrainConfig.precision}; on --resume, the run's own, and it may change)")
    p.add_argument("--optimizer", choices=("rmsprop", "adam"), help=f"default: {TrainConfig.optimizer}")
    p.add_argument("--lr", type=positive, help=f"peak learning rate (default: the preset's, else {TrainConfig.lr})")
    p.add_argument("--seed", type=seed, help=f"seed of the weights and the data order (default: {TrainConfig.seed})")
    p.add_argument("--eval-every", type=natural, help="steps between validation passes; 0: only at the end (default: "
                                                  f"the preset's, else {TrainConfig.eval_every})")
    p.add_argument("--checkpoint-every", type=count, help="steps between checkpoints (default: the preset's, else "
                                                          f"{TrainConfig.checkpoint_every})")
    p.add_argument("--time-limit", type=positive, metavar="MINUTES", help="stop (with a checkpoint) after this long")
    p.add_argument("--threads", type=thread_count, metavar="N|fit",
                   help="intra-op threads on a CPU (default: torch's, every core); fit: the cores other processes "
                        "leave free, looked at every few seconds (faster on a shared machine; the floats then "
                        "depend on the load, so another run does not repeat them bit for bit)")
    p.add_argument("--image-size", type=count, help="resize folder:PATH images to this size")
    p.add_argument("--class-conditional", action="store_true",
                   help="condition on the data set's class labels (a learned bias per class in every layer)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint, "
                                                         "with its own settings; flags given override them")
    p.add_argument("--grad-accum", type=count, metavar="K", help="split each global batch (--batch-size) into K "
                                                                 "micro-steps, to fit in memory (default: 1)")
    p.add_argument("--compile", action="store_true", default=None, help="run the model through torch.compile")
    p.add_argument("--show", action="store_true", help="print the full configuration and exit without training")
    p.set_defaults(func=cmd_train)


def thread_count(text: str) -> int | str:
    """An argparse type: a whole number of threads of at least 1, or "fit"."""
    if text == "fit":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"must be a number of threads (1 or more) or 'fit', not {text!r}")


def _base_config(args, run: RunFolder) -> dict:
    """What the flags override: the run's own settings when resuming, else the preset."""
    if args.resume and run.training_config.is_file():
        return run.read_training_config()
    if args.preset is not None:
        return preset(args.preset)
    data, model = args.data or TrainConfig.data, args.model or TrainConfig.model
    name = default_preset(data, model)
    say = print if not args.show and distributed.is_main() else (lambda line: None)
    if name:
        say(f"using preset {name}, the CPU-sized configuration of {model} for {data} "
            f"(`pixelrnn presets {name}` shows it; --preset or flags change it)")
        return preset(name)
    # No CPU preset for this data and model (a folder of the user's images, or a paper-sized data set): a model
    # sized for its image shape, not the family's defaults (the paper's CIFAR-10 size, hours per epoch on a CPU).
    shape = dataset_info(data)["image_shape"] or load_dataset(data, "train", args.data_dir,
                                                               image_size=args.image_size).image_shape
    options = cpu_sized(tuple(shape))
    paper = paper_preset(data, model)
    also = f"; --preset {paper} is the paper's" if paper else ""
    say(f"no CPU preset for {model} on {data}: a CPU-sized {model} for {'x'.join(map(str, shape))} images, "
        f"{options['layers']} layers, h = {options['hidden']}, head {options['head']} (--layers, --hidden, --head "
        f"change it{also})")
    return {"model_options": options}


def cmd_train(args) -> int:
    run = RunFolder(args.out)
    flags = {name: getattr(args, name) for name in FLAG_FIELDS}
    config = merge(_base_config(args, run), flags, model_flags(args), class_conditional=args.class_conditional)
    if args.show:
        print(json.dumps(_in_full(config), indent=2))
        return 0
    time_limit = args.time_limit * 60 if args.time_limit else None
    with distributed.session(args.device) as device:  # under torchrun: join the job, leave it at the end
        warn_if_emulated(config.precision, device)
        result = train(config, run.root, resume=args.resume, progress=not args.quiet, time_limit=time_limit,
                       device=device, verify=not args.no_verify, threads=args.threads)
    if not distributed.is_main():
        return EXIT_STATUS if result.stopped == "terminated" else 0
    return _report(result, config, run, args)


def _report(result: TrainResult, config: TrainConfig, run: RunFolder, args) -> int:
    """Say how training went, where the checkpoint is, and the exact command to go on."""
    step, total = result.step, result.total_steps
    resume = f"pixelrnn train --resume --out {shlex.quote(str(run.root))}"
    if result.stopped == "already finished":
        print(f"{run.root} already reached step {step} of {total}: nothing to train, nothing written. "
              f"To train longer: {resume} --steps {2 * step}")
        return 0
    # For 2-level data the paper reports nats per image (binarized MNIST, table 4): show them beside bits/dim.
    binary = dataset_info(config.data)["levels"] == 2

    def nats(value: float | None) -> str:
        return f" ({value:.2f} nats/image)" if binary and value is not None else ""

    if result.train_bits_per_dim is not None:
        print(f"trained {config.model} on {args.data or config.data}: step {step}/{total}, "
              f"train bits/dim {result.train_bits_per_dim:.4f}{nats(result.train_nats_per_image)}, "
              f"{result.images_per_s:.1f} images/s")
    valid = result.valid
    if valid and valid["step"] == step:
        print(f"validation bits/dim {valid['bits_per_dim']:.4f}{nats(valid['nats_per_image'])} at step {step} "
              f"over {valid['images']} images")
    elif valid:  # a run stopped early: its last figure is older than its weights, and says so
        print(f"last validation: bits/dim {valid['bits_per_dim']:.4f}{nats(valid['nats_per_image'])} at step "
              f"{valid['step']} (not the final weights of step {step}) over the first {valid['images']} images")
    if result.stopped == "finished":
        print(f"finished at step {step} of {total}; checkpoint written to {result.checkpoint}")
        print(f"to train longer: {resume} --steps {2 * step}")
        return 0
    why = {"time limit": f"stopped at the time limit ({args.time_limit or 0:g} min)",
           "terminated": "stopped on a termination signal (SIGTERM or SIGUSR1)"}.get(result.stopped, "interrupted")
    again = f" --time-limit {args.time_limit:g}" if args.time_limit else ""
    print(f"{why} at step {step} of {total}; checkpoint written to {result.checkpoint}")
    print(f"to continue: {resume}{again}")
    return {"interrupted": 130, "terminated": EXIT_STATUS}.get(result.stopped, 0)


def add_presets(sub, shared: Shared) -> None:
    p = sub.add_parser("presets", help="list the named configurations, or show one in full")
    p.add_argument("name", nargs="?", help="a preset to show in full (default: list them all)")
    p.add_argument("--times", action="store_true",
                   help="add how long each takes on one core of this machine (from a measured step of each model "
                        "family, about half a minute) and on a GPU (an estimate from the FLOPs per step)")
    p.set_defaults(func=cmd_presets)


def _in_full(config: TrainConfig) -> dict:
    """Every field of ``config``, and every model option as the model will be built, defaults included."""
    shown = config.to_dict()
    shown["model_options"] = {**model_defaults(config.model), **config.model_options}
    return shown


def cmd_presets(args) -> int:
    if args.name is not None:  # `presets ''` is an unknown preset, not the listing
        print(json.dumps(_in_full(TrainConfig.from_dict(preset(args.name))), indent=2))
        return 0
    width = max(map(len, PRESETS))
    times = preset_estimates(progress=True) if args.times else None
    if times:
        print(f"{'':<{width}}  {'':<16}{'steps':>8}{'one core':>11}{'GPU (est.)':>12}")
    for name, p in PRESETS.items():
        columns = ""
        if times:
            t = times[name]
            steps = "?" if t["steps"] is None else f"{t['steps']:,}"
            columns = f"{steps:>8}{duration(t['here_hours']):>11}{duration(t['gpu_hours']):>12}  "
        print(f"{name:<{width}}  {p.values['data']:<16}{columns}{p.about}")
    if times:
        print(f"one core: the FLOPs of the training steps at this machine's measured rate for the model family "
              f"(validation passes not counted); GPU: at an assumed {GPU_TFLOPS:g} TFLOP/s and at least "
              f"{GPU_MIN_STEP_SECONDS * 1000:g} ms a step, not measured")
    print("`pixelrnn presets NAME` shows one in full; `pixelrnn train --preset NAME` trains it.")
    return 0
