"""Quantization study: accuracy of Loihi fixed point (the batched emulator) against float, over weight bits and
threshold scales.

    python scripts/quantization_study.py [--model runs/default/model.nir] [--data runs/default/av_digits.h5]
        [--samples 0] [--weight-bits 8 6 4 3 2] [--v-headroom 4 8 16 32] [--batch-size 128]
        [--out results/quantization_study.md]

The knobs are options of the shared quantizer (``hardware_sims.fixed_point.plan_quantizer.quantize_plan``), the one the Lava backend
and the emulator both use:

* ``weight_bits``: Loihi's ``numWeightBits`` (Lava's ``num_weight_bits``): mantissas keep that many bits (sign
  included for mixed-sign layers) in the same 8-bit range, the exponent per layer chosen as usual. 8 is the default.
* ``v_headroom``: the threshold scale. Each population takes the largest ``state_exp`` whose 24-bit ``v`` holds
  ``v_headroom * vth``; ``vth_mant = vth * 2**(6 + state_exp)``. Multiplying it by ``2**k`` divides thresholds and
  the weights' integer grid by ``2**k`` (coarser thresholds and inputs, a wider weight range). 16 is the default.

For every setting the whole test split (or ``--samples``) runs through ``emulate(..., precision="fixed")`` -- bit
for bit what ``run_lava`` computes (``tests/hardware_sims/emulator/test_emulator.py``) -- and is compared with the float
references on the same samples: the torch NIR interpreter (float64) and the emulator in float (Lava's float
formulas). Printed per setting: accuracy, its change from the interpreter's, the share of samples whose prediction
equals the interpreter's / the float emulator's, and what the quantizer reports: weights clipped (outside the range
of the layer's largest exponent) and zeroed (nonzero weights rounded to 0), neuron parameters clipped, the median and
largest relative weight error, the most distinct mantissas in one layer, the layers whose worst-case ``a_out``
exceeds Loihi's 16-bit ``a_in`` (a saturation Lava does not model), the spiking populations' ``state_exp`` and
threshold mantissa. ``--out`` writes the table as markdown (atomically) with the command in its header.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

import hardware_sims  # noqa: F401  (lava compatibility fixes first; the emulator itself imports no Lava)


def load_split(model: Path, data: Path, samples: int):
    """The graph, the first `samples` test samples (0: all) as ``{input: [T, B, ...]}`` and their labels."""
    from export.ir.nirfile import read_graph
    from snnav.app.simulate import batch_arrays, open_test_split

    graph = read_graph(model)
    dataset = open_test_split(graph, data)
    n = len(dataset) if samples <= 0 else min(samples, len(dataset))
    inputs, labels = batch_arrays(dataset, 0, n)
    return graph, {k: v for k, v in inputs.items() if k in graph.nodes}, labels


def interpreter_logits(graph, inputs: dict, chunk: int = 100) -> np.ndarray:
    """``[B, K]`` logits of the float64 torch interpreter at the graph's readout step."""
    import torch

    from export.interpreter import Interpreter

    interp = Interpreter(graph, dtype=torch.float64)
    step = graph.metadata.get("readout_step")
    n = next(iter(inputs.values())).shape[1]
    out = []
    with torch.no_grad():
        for b0 in range(0, n, chunk):
            res = interp.run({k: torch.from_numpy(v[:, b0:b0 + chunk]) for k, v in inputs.items()}, record=False)
            (logits,) = res.outputs.values()
            out.append(logits[-1 if step is None else int(step)].numpy())
    return np.concatenate(out)


def quant_figures(plan) -> dict:
    """What the quantizer reports for a fixed plan, summed over layers."""
    from hardware_sims.fixed_point import formats as lf

    q = plan.quant
    layers = q.report.layers
    syn = [r for r in layers if r.kind == "synapse"]
    neu = [r for r in layers if r.kind == "neuron"]
    levels = max(len(np.unique(w.mant.data if hasattr(w.mant, "tocsr") else w.mant)) for w in q.synapses.values())
    worst = max(syn, key=lambda r: r.rel_error)
    spiking = [p.name for p in plan.of_kind("neuron") if p.spiking]
    return {
        "weights": sum(r.size for r in syn),
        "w_clipped": sum(r.clipped for r in syn),
        "w_zeroed": sum(int(r.details.get("zeroed", 0)) for r in syn),
        "n_clipped": sum(r.clipped for r in neu),
        "rel_median": statistics.median(r.rel_error for r in syn),
        "rel_max": max(r.rel_error for r in syn),
        "levels": levels,
        "a_in_over": sum(1 for r in syn if int(r.details.get("a_out_bound", 0)) > lf.A_IN_MAX),
        "state_exps": Counter(int(q.state_exps[n]) for n in spiking),
        "vth_mants": Counter(int(q.neurons[n].vth_mant) for n in spiking),
        "worst": f"{worst.name} ({worst.rel_error:.2f}; exp {worst.exponents.get('weight_exp')}, "
                 f"{int(worst.details.get('zeroed', 0))}/{worst.size} zeroed, {worst.clipped} clipped)",
    }


def _counter(c: Counter) -> str:
    return ", ".join(f"{k} ({v})" if len(c) > 1 else f"{k}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("runs/default/model.nir"))
    parser.add_argument("--data", type=Path, default=Path("runs/default/av_digits.h5"))
    parser.add_argument("--samples", type=int, default=0, help="test samples (0: the whole test split)")
    parser.add_argument("--weight-bits", type=int, nargs="+", default=[8, 6, 4, 3, 2])
    parser.add_argument("--v-headroom", type=float, nargs="+", default=[4.0, 8.0, 16.0, 32.0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", type=Path, default=None, help="write the table (markdown) here")
    args = parser.parse_args()

    from hardware_sims.emulator import emulate
    from hardware_sims.fixed_point.prepare import prepare_fixed
    from hardware_sims.plan import build_plan

    t_start = time.perf_counter()
    load0 = os.getloadavg()[0]
    graph, inputs, labels = load_split(args.model, args.data, args.samples)
    n = len(labels)
    plan = build_plan(graph)
    print(f"{args.model}: {n} test samples; load average {load0:.1f} on {os.cpu_count()} cores", flush=True)

    t0 = time.perf_counter()
    ref = interpreter_logits(graph, inputs).argmax(-1)
    print(f"interpreter (float64): accuracy {np.mean(ref == labels):.2%} ({time.perf_counter() - t0:.0f} s)",
          flush=True)
    t0 = time.perf_counter()
    flt = emulate(plan, inputs, precision="float", record=False, batch_size=args.batch_size).readout().argmax(-1)
    print(f"emulator float: accuracy {np.mean(flt == labels):.2%}, same prediction as the interpreter "
          f"{np.mean(flt == ref):.2%} ({time.perf_counter() - t0:.0f} s)", flush=True)

    head = ("| weight bits | v_headroom | state_exp (spiking) | vth_mant | accuracy | vs float | same pred. "
            "(interp.) | same pred. (emu float) | weights clipped | weights zeroed | neuron params clipped | "
            "weight rel. err. median / max | worst synapse layer | max levels | a_out > 16 bit | s |")
    rows = [head, "|" + "|".join("---" for _ in range(head.count("|") - 1)) + "|"]
    for bits in args.weight_bits:
        for headroom in args.v_headroom:
            options = {"weight_bits": bits, "v_headroom": headroom}
            t0 = time.perf_counter()
            fixed_plan, _, _ = prepare_fixed(plan, {}, **options)  # the call emulate and run_lava make
            fig = quant_figures(fixed_plan)
            pred = emulate(fixed_plan, inputs, precision="fixed", record=False,
                           batch_size=args.batch_size).readout().argmax(-1)
            acc = float(np.mean(pred == labels))
            row = (f"| {bits} | {headroom:g} | {_counter(fig['state_exps'])} | {_counter(fig['vth_mants'])} | "
                   f"{acc:.2%} | {100 * (acc - np.mean(ref == labels)):+.1f} pp | {np.mean(pred == ref):.2%} | "
                   f"{np.mean(pred == flt):.2%} | {fig['w_clipped']} / {fig['weights']} | {fig['w_zeroed']} | "
                   f"{fig['n_clipped']} | {fig['rel_median']:.3g} / {fig['rel_max']:.3g} | {fig['worst']} | "
                   f"{fig['levels']} | {fig['a_in_over']} | {time.perf_counter() - t0:.0f} |")
            rows.append(row)
            print(row, flush=True)

    cmd = " ".join(shlex.quote(a) for a in ["python", "scripts/quantization_study.py", *sys.argv[1:]])
    text = "\n".join([
        "# Quantization study: Loihi fixed point (batched emulator) vs float",
        "",
        f"Command: `{cmd}`",
        "",
        f"Model `{args.model}` (graph metadata: {graph.metadata.get('model', '?')}), AV-Digits test split, {n} "
        f"samples. Machine: {os.cpu_count()} cores, Python {platform.python_version()}, load average {load0:.1f} at "
        f"start, {os.getloadavg()[0]:.1f} at end; {time.perf_counter() - t_start:.0f} s in all.",
        "",
        f"Float references on the same samples: torch NIR interpreter (float64) accuracy "
        f"**{np.mean(ref == labels):.2%}**; emulator float (Lava's float formulas) {np.mean(flt == labels):.2%}, "
        f"same prediction as the interpreter {np.mean(flt == ref):.2%}.",
        "",
        *rows,
        "",
        "Columns: *weight bits* = ``quantize_plan(weight_bits=...)`` (Loihi's numWeightBits, 8 = default); "
        "*v_headroom* = ``quantize_plan(v_headroom=...)`` (the threshold scale: x2 lowers every spiking population's "
        "state_exp by 1, 16 = default); *state_exp*, *vth_mant*: over the spiking populations (count in brackets when "
        "they differ); "
        "*accuracy*: emulator fixed point (bit-exact with Lava); *vs float*: minus the interpreter's accuracy; "
        "*same pred.*: share of samples predicted as by the interpreter / by the float emulator; *weights clipped*: "
        "weights outside the range of the layer's exponent (saturated), of all weights; *weights zeroed*: nonzero "
        "weights rounded to 0; *neuron params clipped*: thresholds, decays and biases that saturated; *weight rel. "
        "err.*: ||q - w|| / ||w|| per synapse layer; *worst synapse layer*: the one with the largest relative error, "
        "its weight exponent and how many of its weights rounded to 0 / saturated; *max levels*: most distinct "
        "mantissas in one layer; *a_out > 16 bit*: synapse layers whose worst-case output exceeds Loihi's 16-bit a_in "
        "(Lava does not saturate it, so the emulator does not either); *s*: seconds for the setting (quantize + "
        "emulate).",
        "",
    ])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=args.out.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
