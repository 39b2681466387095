"""The ``snnav`` command: argument parsing and dispatch only; each subcommand lives in :mod:`snnav.app.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from typing import Callable, Sequence

from snnav._version import __version__
from snnav.errors import SnnavError

# (name, module, help); each module exposes add_arguments(parser) and run(args) -> int. A subcommand's module (and
# its imports: torch, lava) is loaded only when that subcommand is named, so `snnav --help` stays fast.
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("run", "snnav.app.commands.run", "run the whole pipeline on the embedded default data (the main job)"),
    ("data", "snnav.app.commands.data", "make or inspect datasets (AV-Digits, the embedded default)"),
    ("train", "snnav.app.commands.train", "train a model: checkpoints, exact resume, torchrun data parallel"),
    ("export", "snnav.app.commands.export", "export a trained model to a NIR graph (.nir) and print its summary"),
    ("simulate", "snnav.app.commands.simulate",
     "run an exported model on Lava's Loihi simulation or the emulator (float or fixed point)"),
    ("compare", "snnav.app.commands.compare",
     "run backends (torch, interpreter, Lava, emulator; float, fixed) on the same samples: where they part and why"),
    ("map", "snnav.app.commands.map", "place an exported network on a chip's cores: cores, chips, memory, limits"),
    ("report", "snnav.app.commands.report", "accuracy, activity and energy of a simulated model: JSON, CSV, Markdown, HTML"),
    ("info", "snnav.app.commands.info", "show versions of the stack and check that Lava runs"),
)
INTERRUPTED = {
    "train": "interrupted; the last checkpoint is kept: re-running the same command continues the run from it",
    "run": "interrupted; finished stages are kept: re-running the same command continues from the stage it was in",
}
BUG_HINT = "this is a bug in snnav, not a mistake of yours; please report it with the command and the traceback above"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``snnav SUB: error: ...; see snnav SUB --help`` (exit status 2)."""

    def error(self, message: str):  # noqa: D102
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (the first argument that is not an option), if any."""
    names = {name for name, _, _ in SUBCOMMANDS}
    for arg in argv:
        if not arg.startswith("-"):
            return arg if arg in names else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with ``only``, just that subcommand's arguments are loaded (the others list their help)."""
    parser = _Parser(
        prog="snnav",
        description="Train spiking audio-visual models, export them to NIR, run them on Loihi-style simulators, "
        "and report what they cost.",
    )
    parser.add_argument("--version", action="version", version=f"snnav {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name, help_text in SUBCOMMANDS:
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        if only is None or only == name:
            importlib.import_module(module_name).add_arguments(sp)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbosity < 2:
        logging.getLogger("lava").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = _chosen(argv)
    parser = build_parser(only=chosen or "")
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _configure_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = getattr(args, "_handler", None) or importlib.import_module(
        args._module).run
    try:
        return int(handler(args) or 0)
    except SnnavError as exc:
        print(f"snnav {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`snnav ... | head`): not an error, and nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        message = INTERRUPTED.get(args.command, "interrupted; outputs that were being written were discarded")
        print(f"snnav {args.command}: {message}", file=sys.stderr)
        return 130
    except Exception:  # noqa: BLE001  (anything that is not an SnnavError is a bug: show it, and say so)
        traceback.print_exc()
        print(f"snnav {args.command}: internal error: {BUG_HINT}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
