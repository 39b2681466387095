"""``snnav map MODEL.nir --chip loihi2``: place an exported network on a neuromorphic chip's cores.

Prints, per layer, the compartments, synapses, synaptic memory (weights at their quantized width plus the core's
encoding overhead), fan-in axons and the cores it takes (and what limited it), where each snnav extension node would
run (no neurocore primitive: Loihi 2 programmable neurons or embedded cores, an assumption), the chips needed, the
utilisation, and every constraint the placement breaks with the layer and the amount. Exit status 2 when the network
does not fit, unless ``--allow-overflow``. Chips: ``loihi1``, ``loihi2`` or a chip JSON file (the form of
``hardware_sims/cost/chips/loihi2.json``: every figure with its unit, source and status).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from export.ir.nirfile import read_graph
from hardware_sims.cost.mapping import map_plan
from hardware_sims.plan.lowering import build_plan
from snnav.errors import UnsupportedGraphError
from snnav.io import refuse_existing, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, metavar="MODEL.nir", help="an exported graph (snnav export, or any NIR file)")
    parser.add_argument("--chip", action="append", default=None, metavar="CHIP",
                        help="loihi1, loihi2 or a chip JSON file; repeatable (default loihi2)")
    parser.add_argument("--weight-bits", type=int, default=8, help="quantized weight width (default %(default)s)")
    parser.add_argument("--allow-overflow", action="store_true",
                        help="exit 0 even when the network does not fit (the violations are still printed)")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="also write the mappings as JSON")
    parser.add_argument("--force", action="store_true", help="replace an existing --json file")


def run(args: argparse.Namespace) -> int:
    if args.json is not None:
        refuse_existing(args.json, args.force)
    graph = read_graph(args.model)
    plan = build_plan(graph)
    mappings = [map_plan(plan, chip, weight_bits=args.weight_bits) for chip in (args.chip or ["loihi2"])]
    for m in mappings:
        print(m.summary())
    if args.json is not None:
        write_json(args.json, {"model": str(args.model), "mappings": [m.to_dict() for m in mappings]})
        print(f"wrote {args.json}")
    over = [m for m in mappings if not m.fits]
    if over and not args.allow_overflow:
        worst = over[0].violations[0]
        raise UnsupportedGraphError(
            f"{args.model} does not fit on {', '.join(m.chip.name for m in over)}: {worst.text()}"
            + (f" (+{sum(len(m.violations) for m in over) - 1} more above)" if sum(len(m.violations) for m in over) > 1
               else "") + "; pass --allow-overflow to map it anyway")
    return 0
