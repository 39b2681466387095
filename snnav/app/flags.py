"""Command-line flags that were renamed keep working for a while, with a one-line deprecation message."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def deprecated_alias(parser: argparse.ArgumentParser | Any, old: str, new: str, **kwargs: Any) -> None:
    """Accept ``old`` as a hidden alias of ``new`` (same destination), saying once on stderr that it was renamed."""
    dest = new.lstrip("-").replace("-", "_")

    class _Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"snnav: {old} is deprecated and will be removed; use {new}", file=sys.stderr)
            setattr(namespace, dest, values)

    parser.add_argument(old, dest=dest, action=_Renamed, help=argparse.SUPPRESS, **kwargs)
