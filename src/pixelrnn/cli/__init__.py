"""The ``pixelrnn`` command: thin subcommands over the library.

Each subcommand parses its flags, calls one library function and prints. A problem the user can fix (a missing data
set, a bad flag, a corrupt file, a checkpoint of another model) ends with one line on stderr and exit status 2,
never a traceback. Flags that several commands share come from the parent parsers in ``Shared``
(:mod:`pixelrnn.cli.common`); each command's own flags sit beside its handler, in one module per command group:
``add_NAME(sub, shared)`` adds the subcommand's parser, and ``cmd_NAME(args)`` runs it and returns the exit status.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings

from .. import __version__, distributed
from ..allocator import tune
from ..errors import PixelRNNError
from .app import add_app
from .codec import add_compress, add_decompress, add_quantize
from .common import HelpFormatter, Parser, Shared
from .evaluate import add_evaluate
from .explain import add_explain
from .generate import add_complete, add_sample
from .tools import add_bench, add_models, add_plot
from .train import add_presets, add_train

__all__ = ["COMMANDS", "build_parser", "main"]

# The subcommands, in the order `pixelrnn --help` lists them.
COMMANDS = (add_train, add_evaluate, add_sample, add_complete, add_explain, add_compress, add_decompress, add_quantize,
            add_bench, add_presets, add_models, add_plot, add_app)


def build_parser() -> argparse.ArgumentParser:
    """The ``pixelrnn`` parser, with one subcommand per entry of :data:`COMMANDS`.

    Returns:
        The parser; each subcommand's namespace holds ``func``, its handler.
    """
    parser = Parser(prog="pixelrnn", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"pixelrnn {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    shared = Shared.build()
    for add in COMMANDS:
        add(sub, shared)
    for p in sub.choices.values():
        p.formatter_class = HelpFormatter
    parser.description = (f"PixelRNN models (van den Oord et al., 2016): {', '.join(sub.choices)}. "
                          f"`pixelrnn COMMAND --help` describes each.")
    return parser


def _one_line(command: str):
    """Warnings as one line on stderr, as errors are (Python's own format adds a line of source)."""
    def show(message, category, filename, lineno, file=None, line=None):
        sys.stderr.write(f"pixelrnn {command}: warning: {message}\n")
    return show


def main(argv: list[str] | None = None) -> int:
    """Run one ``pixelrnn`` command (the console script ``pixelrnn``).

    Args:
        argv: the arguments after ``pixelrnn`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 2 for a problem the user can fix, 130 when interrupted, 1 for a bug.
    """
    tune()  # fewer page faults in training and sampling; see allocator.py
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():  # restores showwarning afterwards
            warnings.showwarning = _one_line(args.command)
            return args.func(args)
    except PixelRNNError as e:
        sys.stderr.write(f"pixelrnn {args.command}: error: {e}{distributed.where()}\n")
        return 2
    except KeyboardInterrupt:
        # train handles Ctrl-C itself (it saves and says how to go on); this one came before or while saving.
        sys.stderr.write(f"pixelrnn {args.command}: interrupted; nothing new was written\n")
        return 130
    except Exception as e:
        if distributed.launched():  # under torchrun: one line from the rank that failed; torchrun ends the others
            sys.stderr.write(f"pixelrnn {args.command}: {distributed.describe_failure(e)}\n")
            return 1
        traceback.print_exc()  # not the user's doing: a bug, shown in full so that it can be fixed
        sys.stderr.write(f"pixelrnn {args.command}: internal error: this is a bug in pixelrnn {__version__}; please "
                         "report it with the command you ran and the traceback above\n")
        return 1
