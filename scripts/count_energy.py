"""Count the activity of an exported model on test samples and print its energy per inference under every built-in
cost model (estimates), per node and in total.

    python scripts/count_energy.py [--model MODEL.nir] [--data av_digits.h5] [--samples 16]
                                   [--precision fixed|float] [--backend emulator|lava] [--json OUT.json]

The samples run through the emulator (default; bit-exact with Lava in fixed point) or Lava itself with
``record=True``; `hardware_sims.counts.count_activity` counts them (definitions: hardware_sims/counts/COUNTS.md) and
`hardware_sims.cost.energy.estimate_energy` prices the counts with each available model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)


def load(model: Path, data: Path, samples: int):
    """The graph, the first `samples` test samples of the split it was trained on (``{input: [T, B, ...]}``, only
    the graph's inputs) and their labels."""
    from export.ir.nirfile import read_graph
    from snnav.app.simulate import open_test_split

    graph = read_graph(model)
    dataset = open_test_split(graph, data)
    items = [dataset[i] for i in range(min(samples, len(dataset)) if samples > 0 else len(dataset))]
    inputs = {"audio": np.stack([it[0].numpy() for it in items], axis=1).astype(np.float64),  # (T, B, C, H, W)
              "visual": np.stack([it[1].numpy() for it in items], axis=1).astype(np.float64)}
    return graph, {k: v for k, v in inputs.items() if k in graph.nodes}, np.array([it[2] for it in items])


def _fmt(x: float) -> str:
    return f"{x:.4g}" if x else "0"


def node_table(counts, estimates) -> str:
    names = [e.model for e in estimates]
    head = (f"{'node':40s} {'type':22s} {'spikes':>9s} {'syn.events':>11s} {'dense MACs':>11s} {'upd.active':>11s} "
            f"{'upd.idle':>9s} {'ext AC':>8s} {'ext MAC':>8s} " + " ".join(f"{n + ' pJ':>14s}" for n in names))
    lines = [head, "-" * len(head)]
    for name, n in counts.nodes.items():
        lines.append(f"{name[:40]:40s} {n.type[:22]:22s} {_fmt(n.spikes):>9s} {_fmt(n.synaptic_events):>11s} "
                     f"{_fmt(n.dense_macs):>11s} {_fmt(n.neuron_updates_active):>11s} "
                     f"{_fmt(n.neuron_updates_idle):>9s} "
                     f"{_fmt(n.ext_acs):>8s} {_fmt(n.ext_macs):>8s} "
                     + " ".join(f"{_fmt(e.by_node_pj[name]):>14s}" for e in estimates))
    t = counts.totals
    lines.append("-" * len(head))
    lines.append(f"{'total (mean per sample)':63s} {_fmt(t['spikes']):>9s} {_fmt(t['synaptic_events']):>11s} "
                 f"{_fmt(t['dense_macs']):>11s} {_fmt(t['neuron_updates_active']):>11s} "
                 f"{_fmt(t['neuron_updates_idle']):>9s} {_fmt(t['ext_acs']):>8s} {_fmt(t['ext_macs']):>8s} "
                 + " ".join(f"{_fmt(e.total_pj):>14s}" for e in estimates))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("/tmp/mainjob/model.nir"))
    parser.add_argument("--data", type=Path, default=Path("/tmp/mainjob/av_digits.h5"))
    parser.add_argument("--samples", type=int, default=16,
                        help="test samples (0: the whole split; default %(default)s)")
    parser.add_argument("--precision", choices=("fixed", "float"), default="fixed")
    parser.add_argument("--backend", choices=("emulator", "lava"), default="emulator")
    parser.add_argument("--json", type=Path, default=None, help="also write the counts and estimates here")
    args = parser.parse_args()

    from hardware_sims.cost.energy import available_cost_models, builtin_cost_model, estimate_energy
    from hardware_sims.counts import count_activity
    from hardware_sims.emulator import emulate
    from hardware_sims.lava.run import run_lava

    graph, inputs, labels = load(args.model, args.data, args.samples)
    runner = emulate if args.backend == "emulator" else run_lava
    t0 = time.perf_counter()
    result = runner(graph, inputs, precision=args.precision, record=True)
    t1 = time.perf_counter()
    counts = count_activity(result, graph)
    t2 = time.perf_counter()
    accuracy = float((result.readout().argmax(-1) == labels).mean())
    print(f"{args.model}: {counts.run.samples} test samples x {counts.run.time_steps} steps on {args.backend} "
          f"({args.precision}), accuracy {accuracy:.1%}; run {t1 - t0:.1f} s, counting {t2 - t1:.1f} s")
    models = [builtin_cost_model(m["name"]) for m in available_cost_models() if m["available"]]
    estimates = [estimate_energy(counts, m) for m in models]
    print(node_table(counts, estimates))
    nb = counts.neurobench
    print(f"\nNeuroBench: activation sparsity {nb.activation_sparsity:.4f}, effective MACs {nb.effective_macs:.4g}, "
          f"effective ACs {nb.effective_acs:.4g}, dense {nb.dense:.4g}; missed by its counter: extension ACs "
          f"{nb.missed_ext_acs:.4g}, extension MACs {nb.missed_ext_macs:.4g}, pooling events "
          f"{nb.missed_pooling_events:.4g} (means per sample)")
    print("\nEnergy per inference (estimates from counts and cost models):")
    for model, e in zip(models, estimates):
        ops = ", ".join(f"{op} {pj / 1e6:.3f} uJ" for op, pj in e.by_operation_pj.items())
        print(f"  {e.model:14s} {e.total_pj / 1e6:10.3f} uJ = {e.total_j:.4g} J   [{ops}]")
        print(f"  {'':14s} source: {e.source}")
        for count, u in e.uncosted.items():
            print(f"  {'':14s} not costed: {count} = {u.amount:.4g} per inference")
        for count in e.assumptions:
            print(f"  {'':14s} assumption: {count} priced as {model.counts[count].operation}")
    for m in available_cost_models():
        if not m["available"]:
            print(f"  {m['name']:14s} unavailable: {m['reason']}")
    if args.json is not None:
        payload = {"counts": counts.to_dict(), "estimates": [e.to_dict() for e in estimates],
                   "command": vars(args) | {"model": str(args.model), "data": str(args.data),
                                            "json": str(args.json)}}
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1))
        tmp.replace(args.json)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
