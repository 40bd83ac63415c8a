"""The paper's three orderings, checked at an equal number of training steps for every contender.

"Pixel Recurrent Neural Networks" (van den Oord et al., ICML 2016) reports, lower bits/dim being better:

- model family at equal depth: PixelCNN worse than Row LSTM worse than Diagonal BiLSTM (table 3);
- on a Row LSTM, residual plus skip connections beat either alone, and either alone beats neither (section 5.3);
- more layers are better (its depth figures, 1 to 12 layers).

Every contender is trained to exactly ``--steps`` optimizer steps (not for equal time) and scored in fp32 on the
first ``--eval-images`` test images. The closest pair of each ordering is then trained again with a second seed;
a finding whose margin is smaller than that seed-to-seed spread is "within noise".

    python benchmarks/ablation.py --out runs/ablation                     # everything, in one process
    python benchmarks/ablation.py --out runs/ablation --only pixelcnn     # a subset (one process per core)
    python benchmarks/ablation.py --out runs/ablation --list              # every contender and its state
    python benchmarks/ablation.py --out runs/ablation --from-runs pixelcnn=runs/long-pixelcnn ...

Each contender trains in its own run folder, ``OUT/NAME``; one that already holds the checkpoint of step N is not
trained again, and one that was stopped resumes, so a long job can be continued later. A contender whose result is
stored in ``OUT/results/NAME.json`` is neither trained nor scored again, even without its run folder. ``--from-runs
NAME=RUN`` reads a contender off an existing run folder instead, from its checkpoint of step N (a run keeps only
its two newest checkpoints, so this works while that step is still kept).

A contender trained here follows a cosine schedule over ``--schedule-steps`` (by default ``--steps``) and stops at
step N: to compare with long runs read at step N, pass their length, so that every contender has had the same
learning rates. The table says so when the contenders' schedules differ.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pixelrnn import checkpoint as ckpt
from pixelrnn.allocator import tune
from pixelrnn.config import TrainConfig
from pixelrnn.data import load_dataset
from pixelrnn.devices import resolve_device
from pixelrnn.errors import ConfigError, PixelRNNError, write_atomic
from pixelrnn.evaluate import evaluate
from pixelrnn.train import train

# Sizes: the benchmark configuration of the README's results (the fashion-* presets), and the paper's CIFAR-10 one.
SCALES = {
    "benchmark": dict(data="fashion-mnist", layers=7, hidden=64, head=64, depths=[2, 4], batch_size=16,
                      precision="bf16", steps=2000, eval_images=2000),
    "paper": dict(data="cifar10", layers=12, hidden=128, head=1024, depths=[2, 6], batch_size=16,
                  precision="bf16", steps=20000, eval_images=10000),
}
SECOND_SEED_SUFFIX = "-seed1"
VERDICTS = ("holds", "does not hold", "within noise")


@dataclass(frozen=True)
class Contender:
    """One model to train: a family and its options, at one seed."""

    name: str
    label: str  # what the table calls it
    model: str
    options: dict = field(default_factory=dict)
    seed: int = 0


@dataclass(frozen=True)
class Finding:
    """An ordering of the paper, as claims "``worse`` has more bits/dim than ``better``"."""

    key: str
    title: str
    contenders: tuple[str, ...]  # worst first, as the paper orders them
    claims: tuple[tuple[str, str], ...]
    labels: dict = field(default_factory=dict)  # what this finding calls a contender, where not its own label


def contenders_and_findings(layers: int, hidden: int, head: int, depths: list[int]) -> tuple[dict, list]:
    """The seed-0 contenders by name, and the three findings over them."""
    size = dict(layers=layers, hidden=hidden, head=head)
    c = [Contender("pixelcnn", "PixelCNN", "pixelcnn", size),
         Contender("row-lstm", "Row LSTM", "row_lstm", size),
         Contender("diagonal-bilstm", "Diagonal BiLSTM", "diagonal_bilstm", size),
         Contender("row-lstm-neither", "neither", "row_lstm", {**size, "residual": False, "skip": False}),
         Contender("row-lstm-residual-only", "residual only", "row_lstm", {**size, "skip": False}),
         Contender("row-lstm-skip-only", "skip only", "row_lstm", {**size, "residual": False})]
    for d in depths:
        if not 1 <= d < layers:
            raise ConfigError(f"--depths must be shallower than --layers {layers}, not {d}")
        c.append(Contender(f"row-lstm-{d}-layers", f"{d} layer{'s' * (d > 1)}", "row_lstm", {**size, "layers": d}))
    by_depth = [f"row-lstm-{d}-layers" for d in sorted(depths)] + ["row-lstm"]
    findings = [
        Finding("family", f"model family, {layers} layers: PixelCNN > Row LSTM > Diagonal BiLSTM",
                ("pixelcnn", "row-lstm", "diagonal-bilstm"),
                (("pixelcnn", "row-lstm"), ("row-lstm", "diagonal-bilstm"))),
        Finding("connections", f"Row LSTM, {layers} layers: neither > residual only, skip only > both",
                ("row-lstm-neither", "row-lstm-residual-only", "row-lstm-skip-only", "row-lstm"),
                (("row-lstm-neither", "row-lstm-residual-only"), ("row-lstm-neither", "row-lstm-skip-only"),
                 ("row-lstm-residual-only", "row-lstm"), ("row-lstm-skip-only", "row-lstm")),
                {"row-lstm": "both"}),
        Finding("depth", f"Row LSTM depth: {' > '.join(str(d) for d in sorted(depths) + [layers])} layers",
                tuple(by_depth), tuple(zip(by_depth, by_depth[1:])), {"row-lstm": f"{layers} layers"}),
    ]
    return {x.name: x for x in c}, findings


def second_seed(c: Contender) -> Contender:
    return Contender(c.name + SECOND_SEED_SUFFIX, c.label + " (seed 1)", c.model, c.options, seed=1)


# --- verdicts: pure functions of the measured numbers -----------------------------------------------------------

def verdict(margin: float, spread: float | None) -> str:
    """"within noise" when the margin is smaller than the seed spread, else "holds" or "does not hold".

    Args:
        margin: bits/dim of the contender the paper calls worse minus that of the better one (> 0: as the paper).
        spread: the seed-to-seed spread of the finding, or None when it is not measured yet.
    """
    if spread is not None and abs(margin) < spread:
        return "within noise"
    return "holds" if margin > 0 else "does not hold"


def closest_claim(finding: Finding, bits: dict[str, float]) -> tuple[str, str] | None:
    """The claim with the smallest |margin| at seed 0 (None until every contender is measured)."""
    if any(name not in bits for name in finding.contenders):
        return None
    return min(finding.claims, key=lambda claim: abs(bits[claim[0]] - bits[claim[1]]))


def seed_spread(pair: tuple[str, str], bits: dict[str, float]) -> float | None:
    """The largest change of bits/dim between seeds 0 and 1 over the two contenders of ``pair``."""
    if any(name + SECOND_SEED_SUFFIX not in bits for name in pair):
        return None
    return max(abs(bits[name] - bits[name + SECOND_SEED_SUFFIX]) for name in pair)


def seed1_margin(pair: tuple[str, str], bits: dict[str, float]) -> float | None:
    """The closest pair's margin between its two seed-1 runs (same seed, so the same data order and a like start)."""
    worse, better = (name + SECOND_SEED_SUFFIX for name in pair)
    return bits[worse] - bits[better] if worse in bits and better in bits else None


def judge(finding: Finding, bits: dict[str, float]) -> dict:
    """A finding's claims with margins and verdicts, and the finding's own verdict.

    The finding holds when every claim holds; it does not hold when any claim is reversed by more than the seed
    spread; otherwise it is within noise. Until its second-seed runs are in, the verdict is marked "(one seed)".
    The closest pair's margin at seed 1 is reported beside it, not judged: it tells a margin that is small against
    the spread but keeps its sign at both seeds from one that flips.
    """
    pair = closest_claim(finding, bits)
    if pair is None:
        return {"key": finding.key, "title": finding.title, "claims": [], "closest": None, "spread": None,
                "seed1_margin": None, "verdict": "pending"}
    spread = seed_spread(pair, bits)
    claims = [{"worse": w, "better": b, "margin": bits[w] - bits[b], "verdict": verdict(bits[w] - bits[b], spread)}
              for w, b in finding.claims]
    found = {c["verdict"] for c in claims}
    overall = next(v for v in ("does not hold", "within noise", "holds") if v in found)
    if spread is None:
        overall += " (one seed)"
    return {"key": finding.key, "title": finding.title, "claims": claims, "closest": list(pair), "spread": spread,
            "seed1_margin": seed1_margin(pair, bits), "verdict": overall}


def table(judged: list[dict], bits: dict[str, float], labels: dict[str, str], findings: list[Finding],
          notes: list[str]) -> str:
    """The markdown table: finding, contenders with their test bits/dim, margin, seed spread, verdict."""
    lines = ["| finding | contenders (test bits/dim) | margin of the closest pair | seed spread | verdict |",
             "|---|---|---|---|---|"]
    for f, j in zip(findings, judged):
        named = {**labels, **f.labels}
        shown = []
        for name in f.contenders:
            value = f"{bits[name]:.4f}" if name in bits else "pending"
            again = bits.get(name + SECOND_SEED_SUFFIX)
            shown.append(f"{named[name]} {value}" + (f" / {again:.4f}" if again is not None else ""))
        if j["closest"]:
            w, b = j["closest"]
            again = f" / {j['seed1_margin']:+.4f}" if j["seed1_margin"] is not None else ""
            margin = f"{bits[w] - bits[b]:+.4f}{again} ({named[w]} − {named[b]})"
        else:
            margin = "pending"
        spread = f"{j['spread']:.4f}" if j["spread"] is not None else "pending"
        lines.append(f"| {f.title} | {'; '.join(shown)} | {margin} | {spread} | {j['verdict']} |")
    lines.append("")
    lines.append("Bits/dim at seed 0 / seed 1; margin: the worse contender's bits/dim minus the better one's, at "
                 "seed 0 / seed 1 (positive: as the paper; the verdict judges seed 0's); seed spread: the largest "
                 "seed-0 to seed-1 change of the closest pair's two contenders.")
    lines += [f"Note: {n}" for n in notes]
    return "\n".join(lines) + "\n"


# --- training and scoring ---------------------------------------------------------------------------------------

# Fields a reused run folder must share with the contender; the rest (how long, how often) may differ.
SAME = ("model", "model_options", "data", "batch_size", "precision", "seed", "lr", "lr_schedule", "optimizer")


def train_config(c: Contender, args) -> TrainConfig:
    return TrainConfig(model=c.model, model_options=dict(c.options), data=args.data, data_dir=args.data_dir,
                       steps=args.schedule_steps or args.steps, batch_size=args.batch_size, precision=args.precision,
                       lr=args.lr, seed=c.seed, eval_every=0, checkpoint_every=min(500, args.steps),
                       warmup_steps=min(100, args.steps // 10))


def trained_checkpoint(c: Contender, args, log) -> Path:
    """The checkpoint of step N in OUT/NAME, training or resuming the run first if it has not reached it."""
    run = ckpt.RunFolder(Path(args.out) / c.name)
    config = train_config(c, args)
    at_n = run.step(args.steps)
    if run.has_checkpoint():
        before = run.read_training_config()
        changed = [k for k in SAME if before.get(k) != config.to_dict()[k]]
        if changed:
            raise ConfigError(f"{run.root} was trained with other values of {', '.join(changed)}; "
                              f"use another --out, or remove the folder")
        if before.get("steps") != config.steps:
            raise ConfigError(f"{run.root} follows a schedule of {before.get('steps')} steps, not {config.steps}; "
                              f"pass --schedule-steps {before.get('steps')}, or use another --out")
        if at_n.is_dir():
            log(f"{c.name}: step {args.steps} already trained in {run.root}")
            return at_n
        done = int(ckpt.load_trainer_state(run.root)["step"])
        if done > args.steps:
            raise ConfigError(f"{run.root} is past step {args.steps} (at {done}) and no longer keeps its checkpoint")
        log(f"{c.name}: resuming at step {done} of {args.steps}")
        stop_after = args.steps - done
    else:
        log(f"{c.name}: training {args.steps} steps in {run.root}")
        stop_after = args.steps
    train(config, run.root, resume=run.has_checkpoint(), progress=not args.quiet,
          stop_after=stop_after if config.steps > args.steps else None, device=args.device)
    if not at_n.is_dir():
        raise PixelRNNError(f"{c.name} stopped before step {args.steps}; run the script again to resume it")
    return at_n


def run_checkpoint(name: str, run: str, step: int) -> Path:
    """The checkpoint of ``step`` in an existing run folder, or an error naming the steps it keeps."""
    folder = ckpt.RunFolder(run)
    if not folder.checkpoints.is_dir():
        raise ConfigError(f"--from-runs {name}={run}: no checkpoints folder in {run}")
    at = folder.step(step)
    if not at.is_dir():
        kept = sorted(p.name for p in folder.checkpoints.glob("step-*"))
        raise ConfigError(f"--from-runs {name}={run}: no checkpoint of step {step}; "
                          f"it keeps {', '.join(kept) or 'none'}")
    return at


def score(name: str, source: Path, args, images, labels, log) -> dict:
    """Test bits/dim of a checkpoint in fp32, remembered in OUT/results/NAME.json (``run`` reuses it from there)."""
    cache = Path(args.out) / "results" / f"{name}.json"
    key = {"checkpoint": str(source.resolve()), "step": args.steps, "data": args.data, "eval_images": len(images)}
    model = ckpt.load_checkpoint(source, map_location=args.device).float()
    state = ckpt.load_trainer_state(source) or {}
    result = evaluate(model, images, labels, batch_size=args.eval_batch_size, precision="fp32")
    saved = {**key, "name": name, "bits_per_dim": result["bits_per_dim"],
             "schedule_steps": state.get("total_steps"), "training_seconds": state.get("seconds")}
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cache, (json.dumps(saved, indent=2) + "\n").encode())
    log(f"{name}: test bits/dim {saved['bits_per_dim']:.4f} on {len(images)} images")
    return saved


def stored_results(out: Path, names, args, images) -> dict[str, dict]:
    """Results that other processes (or earlier invocations) have written, for the same step, data and images."""
    found = {}
    for name in names:
        file = out / "results" / f"{name}.json"
        if file.is_file():
            saved = json.loads(file.read_text())
            if (saved.get("step"), saved.get("data"), saved.get("eval_images")) == (args.steps, args.data, len(images)):
                found[name] = saved
    return found


def run(args, log=print) -> dict:
    """Train and score what is asked (all, or ``--only``), then judge every finding on what has been measured.

    Returns:
        {"findings": [...], "results": {name: {...}}, "table": markdown}; both are also written to OUT.
    """
    args.device = resolve_device(args.device)
    out = Path(args.out)
    contenders, findings = contenders_and_findings(args.layers, args.hidden, args.head, args.depths)
    sources = dict(_pair(item) for item in args.from_runs)
    test = load_dataset(args.data, "test", args.data_dir)
    images = test.images[:args.eval_images]
    labels = None if test.labels is None else test.labels[:args.eval_images]

    def measure(everything: dict[str, Contender]) -> None:
        results.update(stored_results(out, everything, args, images))  # what other processes measured
        for name, c in everything.items():
            if args.list or (args.only and name not in args.only) or name in results:
                continue  # a stored result is reused; remove OUT/results/NAME.json to measure it again
            source = run_checkpoint(name, sources[name], args.steps) if name in sources else \
                trained_checkpoint(c, args, log)
            results[name] = score(name, source, args, images, labels, log)

    results = {}
    measure(contenders)
    # The second seed: the closest pair of each finding, once its seed-0 contenders are all measured.
    bits = {n: r["bits_per_dim"] for n, r in results.items()}
    again = {}
    for f in findings:
        pair = closest_claim(f, bits)
        for name in pair or ():
            repeat = second_seed(contenders[name])
            again[repeat.name] = repeat
    measure(again)
    unknown = set(args.only or ()) - set(contenders) - set(again)
    if unknown:
        log(f"not run: {', '.join(sorted(unknown))} (second-seed contenders are known once the seed-0 ones of "
            f"their finding are measured; --list shows them)")

    bits = {n: r["bits_per_dim"] for n, r in results.items()}
    labels = {**{n: c.label for n, c in contenders.items()}, **{n: c.label for n, c in again.items()}}
    judged = [judge(f, bits) for f in findings]
    schedules = sorted({r.get("schedule_steps") for r in results.values()} - {None})
    notes = []
    if len(schedules) > 1:
        notes.append(f"the contenders were read at step {args.steps} of learning-rate schedules of different "
                     f"lengths ({', '.join(map(str, schedules))} steps)")
    text = table(judged, bits, labels, findings, notes)
    header = (f"{args.data}, {args.steps} steps each, batch {args.batch_size}, {args.precision} training, "
              f"{args.layers} layers, h = {args.hidden}, head {args.head}; test bits/dim in fp32 over the first "
              f"{len(images)} test images.\n\n")
    if args.list:
        for name in [*contenders, *again]:
            state = "measured" if name in results else ("from " + sources[name] if name in sources else "to train")
            log(f"{name}: {state}")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "ablation.md", (header + text).encode())
    report = {"config": {k: v for k, v in vars(args).items() if k not in ("device", "list", "only", "quiet")},
              "findings": judged, "results": results, "table": text}
    write_atomic(out / "ablation.json", (json.dumps(report, indent=2, default=str) + "\n").encode())
    log(header + text)
    return report


def _pair(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise ConfigError(f"--from-runs takes NAME=RUN, e.g. pixelcnn=runs/fashion-pixelcnn, not {item!r}")
    return name, path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", required=True, help="folder of the contenders' run folders, ablation.md and .json")
    p.add_argument("--preset-scale", choices=SCALES, default="benchmark",
                   help="benchmark: Fashion-MNIST at the README's size; paper: CIFAR-10 at the paper's (GPU)")
    p.add_argument("--data", help="data set (default: the scale's)")
    p.add_argument("--data-dir")
    p.add_argument("--layers", type=int, help="depth of every contender but the shallower Row LSTMs")
    p.add_argument("--hidden", type=int)
    p.add_argument("--head", type=int)
    p.add_argument("--depths", type=int, nargs="+", help="the shallower Row LSTM depths")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), help="training precision; scoring is fp32")
    p.add_argument("--lr", type=float, default=TrainConfig.lr)
    p.add_argument("--steps", type=int, help="optimizer steps for every contender (N)")
    p.add_argument("--schedule-steps", type=int, help="length of the cosine schedule (default N); give the long "
                   "runs' length when reading them with --from-runs")
    p.add_argument("--eval-images", type=int, help="score on the first this many test images")
    p.add_argument("--eval-batch-size", type=int, help="default: 16 on a CPU, 256 on a GPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--only", nargs="+", metavar="NAME", help="train and score only these contenders")
    p.add_argument("--from-runs", nargs="+", default=[], metavar="NAME=RUN",
                   help="read a contender off an existing run folder, from its checkpoint of step N")
    p.add_argument("--list", action="store_true", help="list the contenders and their state; train nothing")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for key, value in SCALES[args.preset_scale].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.steps < 1 or (args.schedule_steps is not None and args.schedule_steps < args.steps):
        raise SystemExit("ablation.py: error: --steps must be at least 1, and --schedule-steps at least --steps")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        run(args)
    except PixelRNNError as e:
        sys.stderr.write(f"ablation.py: error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    tune()  # as the pixelrnn command does: fewer page faults in training
    sys.exit(main())
