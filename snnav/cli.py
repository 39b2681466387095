"""The ``snnav`` command: argument parsing and dispatch only; each subcommand lives in its own ``cli_*`` module."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable, Sequence

from snnav._version import __version__
from snnav.errors import SnnavError

# (name, module, help); each module exposes add_arguments(parser) and run(args) -> int. Imported lazily so that
# `snnav --help` stays fast and a subcommand's heavy imports (torch, lava) are paid only when it runs.
SUBCOMMANDS: tuple[tuple[str, str, str], ...] = (
    ("run", "snnav.cli_run", "run the whole pipeline on the embedded default data (the main job)"),
    ("data", "snnav.cli_data", "make or inspect datasets (AV-Digits, the embedded default)"),
    ("train", "snnav.cli_train", "train a model: checkpoints, exact resume, torchrun data parallel"),
    ("export", "snnav.cli_export", "export a trained model to a NIR graph (.nir) and print its summary"),
    ("simulate", "snnav.cli_simulate", "run an exported model on Lava's Loihi simulation (float or fixed point)"),
    ("report", "snnav.cli_report", "accuracy, activity and energy of a simulated model: JSON, CSV, Markdown, HTML"),
    ("info", "snnav.cli_info", "show versions of the stack and check that Lava runs"),
)


def _load(module_name: str):
    import importlib

    return importlib.import_module(module_name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        _load(module_name).add_arguments(sp)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if verbosity < 2:
        logging.getLogger("lava").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    _configure_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = getattr(args, "_handler", None) or _load(args._module).run
    try:
        return int(handler(args) or 0)
    except SnnavError as exc:
        print(f"snnav {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"snnav {args.command}: interrupted; outputs that were being written were discarded", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
