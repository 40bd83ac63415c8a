"""Every example in README.md and docs/*.md runs, on a tiny configuration, and every link resolves.

The fences decide what is done with a block; every fenced block names one of these three languages:

- ```sh: commands a reader types. Every line is checked, and a line of a kind this file does not know fails:
  - `pixelrnn ARGS` (or `.venv/bin/pixelrnn ARGS`) runs in-process through `pixelrnn.cli.main`, shrunk by `shrink`
    (few steps, a tiny model, few images), in the page's own working directory, where small files of every data set
    it may read are written first in their real formats. Without a GPU, a `--device cuda` line is parsed as written
    and then runs with `--device cpu`.
  - `torchrun LAUNCHER -m pixelrnn ARGS`: torchrun's own parser reads LAUNCHER, pixelrnn's parser reads ARGS, and a
    `train` prints its full configuration (`--show`), which checks the preset and every value.
    tests/test_distributed.py runs the two-process line of docs/training.md under torchrun for real.
  - `python benchmarks/X.py ARGS`: the script runs up to its own `parse_args`, and that parser reads ARGS. Inline
    `python benchmarks/...` spans in the text are checked the same way.
  - `make TARGET`: the Makefile has the target; `. .venv/bin/activate`: the Makefile creates that environment.
  - comments, `wait`, a trailing `&`, and the prefixes `NAME=VALUE` and `taskset -c CPUS` are shell plumbing: dropped.
- ```python: runs as written (exec), in the page's working directory, after the page's blocks above it; the
  README's runs alone, in an empty directory (it must not need the commands above it).
- ```text: output or a file layout shown to the reader; not run.

Each page runs in a fresh directory, its blocks in order, as a reader would type them. Every link, image and anchor
in the text, and every `benchmarks/`, `docs/`, `src/` or `tests/` path written as code, must resolve.
"""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch.distributed.run import get_args_parser as torchrun_parser

from pixelrnn.cli import build_parser, main
from data_files import write_amat, write_cifar, write_idx_set, write_imagenet_archives, write_images

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
LANGUAGES = ("sh", "python", "text")
TINY_MODEL = ["--layers", "1", "--hidden", "4", "--head", "8"]


# Reading the pages

@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    end: int  # of the closing fence
    language: str
    text: str


@dataclass(frozen=True)
class Command:
    page: Path
    line: int
    kind: str  # pixelrnn, torchrun, benchmark, make, activate, or unknown
    words: tuple[str, ...]  # without the shell plumbing; for pixelrnn, the arguments after the program name

    def __str__(self) -> str:
        program = "pixelrnn " if self.kind == "pixelrnn" else ""
        return f"{self.page.relative_to(ROOT)}:{self.line}: {program}{' '.join(self.words)}"


FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, each dedented by its fence's indentation (blocks may sit in list items)."""
    found, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, language = len(opening.group(1)), opening.group(2)
        end = next(k for k in range(i + 1, len(lines)) if FENCE.match(lines[k]) and not FENCE.match(lines[k]).group(2))
        text = "\n".join(line[indent:] for line in lines[i + 1:end]) + "\n"
        found.append(Block(page, i + 1, end + 1, language, text))
        i = end + 1
    return found


def prose(page: Path) -> str:
    """The page with its fenced blocks blanked out (so that line numbers stay)."""
    inside = {n for b in blocks(page) for n in range(b.line, b.end + 1)}
    return "\n".join("" if n in inside else line for n, line in enumerate(page.read_text().splitlines(), 1))


def strip_plumbing(words: list[str]) -> list[str]:
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", words[0]):
        words = words[1:]
    if words[:2] == ["taskset", "-c"]:
        words = words[3:]
    return words[:-1] if words[-1:] == ["&"] else words


def classify(page: Path, line: int, words: list[str]) -> Command | None:
    words = strip_plumbing(words)
    if not words or words == ["wait"]:
        return None
    program = words[0]
    if program in ("pixelrnn", ".venv/bin/pixelrnn"):
        return Command(page, line, "pixelrnn", tuple(words[1:]))
    if program == "torchrun":
        kind = "torchrun"
    elif program == "python" and len(words) > 1 and words[1].startswith("benchmarks/"):
        kind = "benchmark"
    elif program == "make":
        kind = "make"
    elif program in (".", "source"):
        kind = "activate"
    else:
        kind = "unknown"
    return Command(page, line, kind, tuple(words))


def sh_commands(page: Path) -> list[Command]:
    """Every command of the page's sh blocks, continuation lines joined, in order."""
    commands = []
    for block in blocks(page):
        if block.language != "sh":
            continue
        pending, first = "", 0
        for k, line in enumerate(block.text.splitlines()):
            first = first or block.line + 1 + k
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            command = classify(page, first, shlex.split(pending + line, comments=True))
            pending, first = "", 0
            if command:
                commands.append(command)
    return commands


def inline_benchmark_commands(page: Path) -> list[Command]:
    """Benchmark commands written inline in the text: `python benchmarks/X.py ...` spans."""
    text = prose(page)
    return [classify(page, text.count("\n", 0, span.start()) + 1, shlex.split(" ".join(span.group(1).split())))
            for span in re.finditer(r"`([^`]*\bpython benchmarks/[^`]*)`", text)]


def readme_commands() -> list[list[str]]:
    """The arguments of every `pixelrnn` line of the README's sh blocks."""
    return [list(c.words) for c in sh_commands(README) if c.kind == "pixelrnn"]


# Running them

def _drop_flag(args: list[str], flag: str) -> list[str]:
    if flag in args:
        i = args.index(flag)
        return args[:i] + args[i + 2:]
    return args


def shrink(args: list[str]) -> list[str]:
    """The same command on a tiny configuration: few steps, a tiny model, few images."""
    command = args[0] if args else ""
    if command == "train":
        args = _drop_flag(_drop_flag(args, "--steps"), "--epochs")
        if "--resume" in args:
            return args + ["--steps", "4", "--quiet"]
        for flag in ("--layers", "--hidden", "--head"):
            args = _drop_flag(args, flag)
        return args + TINY_MODEL + ["--steps", "2", "--quiet", "--eval-every", "0"]
    if command == "sample":
        return _drop_flag(args, "-n") + ["-n", "2", "--quiet"]
    if command == "complete":
        return _drop_flag(_drop_flag(args, "-n"), "-k") + ["-n", "2", "-k", "2", "--quiet"]
    if command == "compress":
        return _drop_flag(args, "--limit") + ["--limit", "4", "--quiet"] if "--data" in args else args + ["--quiet"]
    if command == "decompress":
        return args + ["--quiet"]
    if command == "evaluate":
        return args + ["--limit", "12", "--quiet"]
    if command == "bench":
        args = _drop_flag(args, "--batch-size")
        for flag in ("--layers", "--hidden", "--head"):
            args = _drop_flag(args, flag)
        return args + TINY_MODEL + ["--steps", "1", "--warmup", "0", "--batch-size", "2", "--precision", "fp32"]
    return args


def parse_error(parser: argparse.ArgumentParser, args) -> str | None:
    """None if the parser accepts ``args``, else its exit status (argparse prints why on stderr)."""
    try:
        parser.parse_args(list(args))
    except SystemExit as e:
        return f"exit status {e.code}"
    return None


def parses(parser: argparse.ArgumentParser, args, where) -> argparse.Namespace:
    if error := parse_error(parser, args):
        pytest.fail(f"{where}: its flags do not parse ({error}; argparse says why above)")
    return parser.parse_args(list(args))


def on_this_machine(args: list[str], where) -> list[str]:
    """Without a GPU, a `--device cuda` command parses as written and then runs on the CPU."""
    if "--device" in args and args[args.index("--device") + 1].startswith("cuda") and not torch.cuda.is_available():
        parses(build_parser(), args, where)
        i = args.index("--device")
        return [*args[:i + 1], "cpu", *args[i + 2:]]
    return args


def run_pixelrnn(command: Command, capsys) -> None:
    args = shrink(on_this_machine(list(command.words), command))
    try:
        status = main(args)
    except SystemExit as e:  # --help and --version exit from inside parse_args
        status = e.code
    assert status == 0, f"{command} failed: {capsys.readouterr().err[-3000:]}"


def check_torchrun(command: Command) -> None:
    launcher = parses(torchrun_parser(), command.words[1:], command)
    assert launcher.module and launcher.training_script == "pixelrnn", f"{command}: not `-m pixelrnn`"
    args = launcher.training_script_args
    parses(build_parser(), args, command)
    if args[0] == "train":
        assert main([*args, "--show"]) == 0, f"{command}: its configuration does not build"


def run_page(page: Path, capsys, languages=("sh", "python")) -> list[dict]:
    """Run the page's blocks in order in the current directory; returns the namespaces of its Python blocks."""
    commands = {c.line: c for c in sh_commands(page)}
    namespaces = []
    for block in blocks(page):
        if block.language == "python" and "python" in languages:
            namespace = {"__name__": "__docs__"}
            exec(compile(block.text, f"{page.name}:{block.line}", "exec"), namespace)
            namespaces.append(namespace)
        elif block.language == "sh" and "sh" in languages:
            for line in sorted(n for n in commands if block.line < n < block.end):
                command = commands[line]
                if command.kind == "pixelrnn":
                    run_pixelrnn(command, capsys)
                elif command.kind == "torchrun":
                    check_torchrun(command)
    return namespaces


def write_data_sets(root: Path) -> None:
    """Small files of every data set the pages read, in their real formats: under data/, and a folder `photos`."""
    data = root / "data"
    write_idx_set(data / "fashion-mnist", n_train=40, n_test=10)
    write_cifar(data / "cifar10" / "cifar-10-batches-py", per_batch=4, n_test=5)
    for k, (split, n) in enumerate([("train", 20), ("valid", 4), ("test", 4)]):
        write_amat(data / "binarized-mnist" / f"binarized_mnist_{split}.amat", n, start=k)
    write_imagenet_archives(data / "imagenet32", side=32, n_train=30, n_valid=5)
    write_images(root / "photos", 12, size=(36, 36), mode="RGB")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with small files of every data set the pages use, and no downloads."""
    write_data_sets(tmp_path)
    monkeypatch.setenv("PIXELRNN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PIXELRNN_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# The tests

def test_every_block_is_sh_python_or_text():
    wrong = [f"{b.page.name}:{b.line}: ```{b.language}" for page in PAGES for b in blocks(page)
             if b.language not in LANGUAGES]
    assert wrong == [], f"fence each block as one of {LANGUAGES}"


def test_every_command_is_one_the_tests_check():
    unknown = [str(c) for page in PAGES for c in sh_commands(page) if c.kind == "unknown"]
    assert unknown == [], "run these in tests/test_docs.py, or show them in a ```text block"


def test_every_command_has_an_example():
    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    shown = {c.words[0] for page in PAGES for c in sh_commands(page) if c.kind == "pixelrnn" and c.words}
    assert sorted(set(sub.choices) - shown) == []


def test_readme_commands_run(workdir, capsys):
    commands = readme_commands()
    assert {c[0] for c in commands} >= {"train", "evaluate", "sample", "complete", "compress", "decompress"}
    before = {p.name for p in workdir.iterdir()}
    run_page(README, capsys, languages=("sh",))
    runs = workdir / "runs"
    assert (runs / "digits" / "samples.png").is_file() and (runs / "digits" / "completions.png").is_file()
    assert len(list((runs / "decoded").glob("*.png"))) == 4
    assert (runs / "digits" / "eval-digits-test.json").is_file()
    assert {p.name for p in workdir.iterdir()} - before == {"runs"}  # nothing outside runs/


def test_readme_python_example_runs(tmp_path, monkeypatch):
    """The README's Python example runs as written, alone (it saves a checkpoint under runs/)."""
    monkeypatch.chdir(tmp_path)
    (namespace,) = run_page(README, None, languages=("python",))
    assert namespace["logp"].shape == (4,) and namespace["completions"].shape == (4, 1, 28, 28)
    assert (tmp_path / "runs" / "ckpt" / "model.safetensors").is_file()


@pytest.mark.parametrize("page", DOCS, ids=[p.name for p in DOCS])
def test_docs_page_examples_run(page, workdir, capsys):
    run_page(page, capsys)


_script_parsers: dict[str, argparse.ArgumentParser] = {}


class _Parsed(Exception):
    pass


def script_parser(script: str, monkeypatch) -> argparse.ArgumentParser:
    """The argument parser of a benchmark script: the script runs as __main__ until it parses its arguments."""
    if script not in _script_parsers:
        path = ROOT / script
        assert path.is_file(), f"{script} does not exist"
        found = []

        def capture(self, args=None, namespace=None):
            found.append(self)
            raise _Parsed

        with monkeypatch.context() as m:
            m.setattr(argparse.ArgumentParser, "parse_args", capture)
            m.setattr(sys, "argv", [str(path)])
            m.setattr(sys, "path", [str(path.parent), *sys.path])  # as `python benchmarks/X.py` puts its folder first
            with pytest.raises(_Parsed):
                runpy.run_path(str(path), run_name="__main__")
        _script_parsers[script] = found[0]
    return _script_parsers[script]


def test_benchmark_commands_parse(monkeypatch):
    commands = [c for page in PAGES for c in [*sh_commands(page), *inline_benchmark_commands(page)]
                if c.kind == "benchmark"]
    assert {c.words[1] for c in commands} >= {"benchmarks/ablation.py", "benchmarks/train_speed.py"}
    wrong = [f"{command} ({error})" for command in commands
             if (error := parse_error(script_parser(command.words[1], monkeypatch), command.words[2:]))]
    assert wrong == [], "these benchmark commands do not parse (argparse says why above)"


def test_make_and_activate_lines_match_the_makefile():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w.-]+):", makefile, flags=re.M))
    (venv,) = re.findall(r"^VENV\s*:?=\s*(\S+)", makefile, flags=re.M)
    commands = [c for page in PAGES for c in sh_commands(page)]
    for command in commands:
        if command.kind == "make":
            assert set(command.words[1:]) <= targets, command
        elif command.kind == "activate":
            assert command.words[1:] == (f"{venv}/bin/activate",), command
    assert {c.kind for c in sh_commands(README)} >= {"make", "activate"}


def test_the_docs_say_how_to_run_pixelrnn():
    """A newcomer's first `pixelrnn` after `make` needs the environment: the README says how."""
    text = README.read_text()
    assert ". .venv/bin/activate" in text and ".venv/bin/pixelrnn" in text


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen = set(), {}
    for heading in re.findall(r"^#+ (.+)$", prose(page), flags=re.M):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def test_links_images_and_paths_resolve():
    broken = []
    for page in PAGES:
        text = prose(page)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{page.name}: {target} (no such heading)")
        for span in re.findall(r"`((?:benchmarks|docs|src|tests)/[a-z0-9_./-]*)`", text):
            if not (ROOT / span).exists():
                broken.append(f"{page.name}: `{span}` (no such path)")
    assert broken == []


def test_the_readme_links_every_docs_page():
    linked = {(README.parent / target).resolve() for target in re.findall(r"\]\((docs/[^)#\s]+)", README.read_text())}
    assert [p.name for p in DOCS if p.resolve() not in linked] == []


def test_the_readme_stays_short():
    assert len(README.read_text().splitlines()) <= 250

