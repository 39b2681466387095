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
* spikes per sample (every LIF layer) over all T steps and up to the final decision.

    python scripts/streaming_comparison.py --data /tmp/avd_t16.h5 --samples 600 \\
        --run "S-CMRL (faithful)=runs/scmrl" --run "S-CMRL causal=runs/causal" --run "AV add=runs/avadd" \\
        --out results/streaming/README.md --csv results/streaming/accuracy_vs_steps.csv
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
    from snnav.app import cli
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
    args = parser.parse_args(argv)

    rows, curves = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.run:
            name, _, run = spec.partition("=")
            nir_path = Path(tmp) / f"{len(rows)}.nir"
            if cli.main(["export", run, "--out", str(nir_path), "--dt-s", "1e-3"]) != 0:
                print(f"export of {run} failed", file=sys.stderr)
                return 1
            graph = read_graph(nir_path)
            res = simulate(graph, open_test_split(graph, args.data), args.samples, args.precision,
                           backend=args.backend, stream=True)
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
            })
            curves[name] = (st.accuracy_by_step, causal)
    steps = len(next(iter(curves.values()))[0])
    ks = list(rows[0]["partial"])
    head = ("| model | WINDOW nodes | pipeline depth (steps) | accuracy (last step) | float reference | "
            + " | ".join(f"after {k}/{steps} steps" for k in ks)
            + " | torch best test accuracy | decision final at t* (mean) | decision latency (Lava steps, mean) | spikes / sample | "
              "spikes up to the decision |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        partial = " | ".join("n/a (waits for T)" if v is None else f"{100 * v:.1f}%" for v in r["partial"].values())
        lines.append(f"| {r['name']} (`{r['model']}`) | {r['windows']} | {r['depth']} | {100 * r['acc']:.1f}% | "
                     f"{100 * r['float']:.1f}% | {partial} | {100 * r['torch']:.1f}% | {r['tstar']:.2f} | {r['latency']:.2f} | "
                     f"{r['spikes']:.0f} | {r['spikes_dec']:.0f} |")
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
        "* spikes: every LIF layer, per sample, over all T steps / over output steps 0..t*.",
        f"* accuracy vs steps seen: `{args.csv.name}`.", ""])
    with atomic_path(args.out) as tmp_out:
        tmp_out.write_text(text, encoding="utf-8")
    csv = ["steps_seen," + ",".join(curves)]
    for t in range(steps):
        csv.append(f"{t + 1}," + ",".join(f"{a[t]:.4f}" if causal else "" for a, causal in curves.values()))
    with atomic_path(args.csv) as tmp_csv:
        tmp_csv.write_text("\n".join(csv) + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
