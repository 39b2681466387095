"""``snnav info``: the versions of the stack, and an optional end-to-end Lava check."""

from __future__ import annotations

import argparse
import importlib
import platform
import sys
from importlib import metadata

from snnav import __version__

STACK = ("torch", "snntorch", "nir", "nirtorch", "norse", "numpy", "h5py", "scipy", "sklearn", "lava", "lava.lib.dl")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check-lava", action="store_true",
                        help="run a small Dense->LIF network on Lava's Loihi2SimCfg and compare it with NumPy")


def _version_of(name: str) -> str:
    dist = {"sklearn": "scikit-learn", "lava": "lava-nc", "lava.lib.dl": "lava-dl"}.get(name, name)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def run(args: argparse.Namespace) -> int:
    print(f"snnav {__version__} on Python {platform.python_version()} ({sys.executable})")
    status = 0
    for name in STACK:
        try:
            importlib.import_module(name)
            state = "ok"
        except Exception as exc:  # noqa: BLE001  (report every failure of the stack, keep going)
            state, status = f"IMPORT FAILED: {type(exc).__name__}: {exc}", 1
        print(f"  {name:<12} {_version_of(name):<14} {state}")
    if args.check_lava:
        from hardware_sims.lava.check import run_lava_check  # noqa: PLC0415  (lava: heavy, only for --check-lava)

        result = run_lava_check()
        n = int(result.lava_spikes.sum())
        verdict = "agrees with" if result.agree else "DIFFERS from"
        print(f"  lava run on Loihi2SimCfg: {n} spikes, {verdict} the NumPy reference")
        status = status or (0 if result.agree else 1)
    return status
