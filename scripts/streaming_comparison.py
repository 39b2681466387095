"""Streaming comparison on AV-Digits: faithful S-CMRL vs streaming S-CMRL (``scmrl-causal``) vs AV add.

For every ``--run NAME=RUN_DIR`` (a finished ``snnav train`` run) it exports ``best.pt`` (``snnav export``, dt 1 ms),
runs ``--samples`` test samples on ``--backend`` (default the batched emulator of Lava, bit-exact with Lava fixed
point) in ``--precision`` with the decision read at every step (``snnav.app.simulate.simulate(stream=True)``), and
writes a markdown table (``--out``) and the accuracy-vs-steps curve (``--csv``):

* final accuracy (last step) on the backend and on the float reference (NIR interpreter, float64);
* WINDOW nodes and the pipeline depth (Lava steps from an input step to the output carrying it);
* accuracy after k of T input steps (only for graphs without WINDOW nodes: a graph with windows has no output
  before all T steps are buffered);
* the step t* from which each sample's decision no longer changes, and the decision latency t* + pipeline depth;
* spikes per sample (every LIF layer) over all T steps and up to the final decision;
* on each ``--chip`` (default loihi2 and loihi1; ``hardware_sims.cost.decision``, estimates with lower/upper
  bounds): the time per Lava step, the decision latency in µs, the energy per decision (up to t*) and per sample
  (all T steps); the first chip's figures are columns of the main table, every chip's are in a second table and in
  ``--cost-csv``;
* ``--plot``: the accuracy against the steps seen of every model (SVG).

    python scripts/streaming_comparison.py --data /tmp/avd_t16.h5 --samples 600 \\
        --run "S-CMRL (faithful)=runs/scmrl" --run "S-CMRL causal=runs/causal" --run "AV add=runs/avadd" \\
        --out results/streaming/README.md --csv results/streaming/accuracy_vs_steps.csv \\
        --cost-csv results/streaming/decision_cost.csv --plot results/streaming/accuracy_vs_steps.svg
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(REPO))
    from export.ir.nirfile import read_graph
    from hardware_sims.cost.decision import TIME_INCLUDES
    from snnav.app import cli
    from snnav.app.report.plots import accuracy_steps_svg
    from snnav.app.simulate import open_test_split, simulate
    from snnav.io import atomic_path
    from snnav.training.loop import read_metrics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (repeat)")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--backend", choices=("emulator", "lava"), default="emulator")
    parser.add_argument("--precision", choices=("fixed", "float"), default="fixed")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--cost-csv", type=Path, required=True, help="decision cost per model, chip and bound")
    parser.add_argument("--plot", type=Path, required=True, help="accuracy against the steps seen (SVG)")
    parser.add_argument("--chip", action="append", default=None, help="chips to price on (default loihi2, loihi1)")
    args = parser.parse_args(argv)
    chips = tuple(args.chip or ("loihi2", "loihi1"))

    rows, curves, streams = [], {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.run:
            name, _, run = spec.partition("=")
            nir_path = Path(tmp) / f"{len(rows)}.nir"
            if cli.main(["export", run, "--out", str(nir_path), "--dt-s", "1e-3"]) != 0:
                print(f"export of {run} failed", file=sys.stderr)
                return 1
            graph = read_graph(nir_path)
            res = simulate(graph, open_test_split(graph, args.data), args.samples, args.precision,
                           backend=args.backend, stream=True, chips=chips)
            st = res.stream
            epochs = read_metrics(Path(run)).get("epochs", [])
            torch_acc = max((e["test_acc"] for e in epochs), default=float("nan"))
            steps = st.steps
            causal = not st.window_nodes
            rows.append({
                "name": name, "model": graph.metadata.get("model"), "windows": len(st.window_nodes),
                "depth": st.pipeline_depth, "acc": res.accuracy, "float": res.float_accuracy, "torch": torch_acc,
                "partial": {k: (st.accuracy_by_step[k - 1] if causal else None)
                            for k in (steps // 4, steps // 2, 3 * steps // 4, steps)},
                "tstar": st.final_steps.mean(), "latency": st.decision_latency.mean(),
                "first": st.pipeline_depth, "spikes": st.spikes_total.mean(),
                "spikes_dec": st.spikes_to_decision.mean(), "samples": res.samples,
                "cost": {chip: {"step_us": {b: 1e6 * v for b, v in e.step_s.items()}, "depth": e.depth,
                                "latency_us": {b: 1e6 * v.mean() for b, v in e.time_to_decision_s.items()},
                                "decision_uj": {b: 1e6 * v.mean() for b, v in e.to_decision_j.items()},
                                "dynamic_uj": {b: 1e6 * v.mean() for b, v in e.to_decision_dynamic_j.items()},
                                "sample_uj": {b: 1e6 * v.mean() for b, v in e.per_sample_j.items()},
                                "included": e.included, "excluded": e.excluded, "fits": e.fits,
                                "violations": e.violations}
                         for chip, e in st.energy.items()},
            })
            curves[name] = (st.accuracy_by_step, causal)
            streams.append({"result": name, "label": f"{args.backend} {args.precision}", "steps": st.steps,
                            "window_nodes": list(st.window_nodes), "accuracy_by_step": list(st.accuracy_by_step),
                            "float_accuracy_by_step": list(st.float_accuracy_by_step)})
    steps = len(next(iter(curves.values()))[0])
    ks = list(rows[0]["partial"])
    main_chip = next(iter(rows[0]["cost"]))
    head = ("| model | WINDOW nodes | pipeline depth (steps) | accuracy (last step) | float reference | "
            + " | ".join(f"after {k}/{steps} steps" for k in ks)
            + " | torch best test accuracy | decision final at t* (mean) | decision latency (Lava steps, mean) | "
              f"decision latency on {main_chip} (µs, mean) | spikes / sample | spikes up to the decision | "
              f"energy / sample on {main_chip} (µJ) | energy per decision on {main_chip} (µJ) |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        partial = " | ".join("n/a (waits for T)" if v is None else f"{100 * v:.1f}%" for v in r["partial"].values())
        c = r["cost"][main_chip]
        lines.append(f"| {r['name']} (`{r['model']}`) | {r['windows']} | {r['depth']} | {100 * r['acc']:.1f}% | "
                     f"{100 * r['float']:.1f}% | {partial} | {100 * r['torch']:.1f}% | {r['tstar']:.2f} | "
                     f"{r['latency']:.2f} | {c['latency_us']['value']:.1f} | {r['spikes']:.0f} | "
                     f"{r['spikes_dec']:.0f} | {c['sample_uj']['value']:.2f} | {c['decision_uj']['value']:.2f} |")

    def rng(v: dict, digits: int = 2) -> str:
        return f"{v['value']:.{digits}f} ({v['lower']:.{digits}f} .. {v['upper']:.{digits}f})"

    cost_lines = ["| model | chip | chip pipeline depth (steps) | time per Lava step (µs) | decision latency (µs) | "
                  "energy per decision (µJ) | of which dynamic (µJ) | energy per sample, all T steps (µJ) |",
                  "|" + " --- |" * 8]
    cost_csv = ["model,chip,bound,chip_depth_steps,time_per_step_us,decision_latency_us,energy_per_decision_uj,"
                "dynamic_per_decision_uj,energy_per_sample_uj"]
    for r in rows:
        for chip, c in r["cost"].items():
            fits = "" if c["fits"] else f" (does not fit: {len(c['violations'])} violations, priced as if it did)"
            cost_lines.append(f"| {r['name']} | {chip}{fits} | {c['depth']} | {rng(c['step_us'], 3)} | "
                              f"{rng(c['latency_us'], 1)} | {rng(c['decision_uj'])} | {rng(c['dynamic_uj'])} | "
                              f"{rng(c['sample_uj'])} |")
            for b in ("lower", "value", "upper"):
                cost_csv.append(f"{r['name']},{chip},{b},{c['depth']},{c['step_us'][b]:.6g},{c['latency_us'][b]:.6g},"
                                f"{c['decision_uj'][b]:.6g},{c['dynamic_uj'][b]:.6g},{c['sample_uj'][b]:.6g}")
    first = rows[0]["cost"][main_chip]
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/streaming_comparison.py", *(argv or sys.argv[1:])])
    text = "\n".join([
        f"# Streaming comparison on AV-Digits (T = {steps}, {rows[0]['samples']} test samples, {args.backend} "
        f"{args.precision} point)", "",
        "Written by", "", f"    {command}", "", "from the runs trained by `results/streaming/run.sh`.", "",
        *lines, "",
        "* *after k/T steps*: accuracy of the decision read at output step k-1, which for a graph without WINDOW "
        "nodes depends on input steps 0..k-1 only (read at Lava step k-1 + pipeline depth). A graph with WINDOW "
        "nodes buffers all T steps before its first output.",
        "* *decision final at t\\**: the output step from which the sample's prediction no longer changes; "
        "decision latency = t* + pipeline depth. For a WINDOW graph every output already saw all T steps.",
        "* spikes: every LIF layer, per sample, over all T steps / up to the decision: output steps 0..t* (a graph "
        "with WINDOW nodes: all T steps, which its every output reads).",
        f"* accuracy vs steps seen: `{args.csv.name}` and `{args.plot.name}`.", "",
        "## Time and energy per decision on the chips (estimates; mean over the samples, value (lower .. upper "
        "bound))", "",
        *cost_lines, "",
        "* **Estimates** from the chip cost model (`hardware_sims/cost/decision.py` over `chip_cost.py`; the chips' "
        "per-operation energies and times, with their sources, in `hardware_sims/cost/chips/*.json`).",
        "* *time per Lava step*: " + TIME_INCLUDES + " (`chip_cost`'s per-step time of the whole sample's mean "
        "activity, the chips' spare cores spread over the slowest layers).",
        "* *decision latency (µs)* = (t* + 1 + the chip's pipeline depth) x time per Lava step: from the first input "
        "step to the end of the Lava step that outputs the final decision. The chip's depth is the mapping's steps "
        "per sample - T: the plan's deepest latency, + 1 where the mapping splits a neuron's fan-in over partial-sum "
        "cores that send graded spikes (an assumption of `hardware_sims/cost/mapping.py`).",
        "* *energy per decision*: dynamic energy of every node's activity at input steps 0..t* (the activity the "
        "decision depends on, counted on the run restricted to those steps) with every compartment updated at each "
        "of the t* + 1 + depth Lava steps, plus static power x the decision latency. The in-flight activity of input "
        "steps after t* that the first layers process while the decision crosses the pipeline is not included (it "
        "belongs to later decisions). A graph with WINDOW nodes is priced with all T steps' activity (its every "
        "output reads them). *Energy per sample*: all T steps, T + depth Lava steps (what `snnav report` prices).",
        f"* Included: {'; '.join(first['included'])}.",
        f"* Excluded: {'; '.join(first['excluded'])}.",
        f"* Per model, chip and bound: `{args.cost_csv.name}`.", ""])
    with atomic_path(args.out) as tmp_out:
        tmp_out.write_text(text, encoding="utf-8")
    csv = ["steps_seen," + ",".join(curves)]
    for t in range(steps):
        csv.append(f"{t + 1}," + ",".join(f"{a[t]:.4f}" if causal else "" for a, causal in curves.values()))
    with atomic_path(args.csv) as tmp_csv:
        tmp_csv.write_text("\n".join(csv) + "\n", encoding="utf-8")
    with atomic_path(args.cost_csv) as tmp_cost:
        tmp_cost.write_text("\n".join(cost_csv) + "\n", encoding="utf-8")
    with atomic_path(args.plot) as tmp_plot:
        tmp_plot.write_text(accuracy_steps_svg(streams), encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
