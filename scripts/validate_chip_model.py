"""Reproduce published MEASURED energy per inference on Loihi with snnav's mapping + chip cost model.

    PYTHONPATH=. python scripts/validate_chip_model.py [--out results/chip_model_validation.md]

Each case gives the model the published network's size (built as a NIR graph of Affine + LIF layers and mapped
with ``map_plan``) and its activity, and compares the predicted dynamic energy per inference with the measured
one. Every input says where it comes from: ``paper`` (read from the cited table/text), ``repository`` (the authors'
published run logs) or ``assumed`` (not published: swept over a range, so the prediction is a range). Only the
measured energies are targets; nothing is fitted to them.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nir
import numpy as np

from hardware_sims.cost.chip_cost import LayerActivity, chip_cost
from hardware_sims.cost.mapping import map_plan


@dataclass(frozen=True)
class Target:
    label: str
    joules: float
    what: str


@dataclass(frozen=True)
class Case:
    name: str
    chip: str
    citation: str
    targets: tuple[Target, ...]       # measured figures compared with (first: the published headline)
    graph: Callable[[], nir.NIRGraph]  # the published network
    inputs: dict[str, str]            # input -> provenance text
    steps: tuple[int, ...]            # steps per inference (swept)
    rates: tuple[float, ...]          # spikes per neuron per step (swept)
    input_rate: tuple[float, ...]     # input events per input channel per step (swept)


def _affine(rng, b: int, a: int) -> nir.Affine:
    return nir.Affine(weight=rng.normal(size=(b, a)).astype(np.float32), bias=np.zeros(b, dtype=np.float32))


def _lif(b: int) -> nir.LIF:
    return nir.LIF(tau=np.full(b, 2e-3), r=np.ones(b), v_leak=np.zeros(b), v_threshold=np.ones(b),
                   v_reset=np.zeros(b))


def graph_of(layers: tuple[int, ...], seed: int = 0) -> nir.NIRGraph:
    """A fully connected chain layers[0] -> layers[1] -> ... (Affine + LIF per layer)."""
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": np.array([layers[0]])})}
    edges, prev = [], "input"
    for i, (a, b) in enumerate(zip(layers, layers[1:])):
        nodes[f"fc{i}"] = _affine(rng, b, a)
        nodes[f"lif{i}"] = _lif(b)
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"lif{i}")]
        prev = f"lif{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([layers[-1]])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3})


def scaled_graph(n_copies: int, n_layers: int = 10, width: int = 256, seed: int = 0) -> nir.NIRGraph:
    """Blouw et al.'s scaling network (their Fig. 7): 390 -> 256 -> n_copies parallel branches of n_layers x 256
    -> 256 (sum of the branches) -> 29, all fully connected. Neurons: n_copies x n_layers x 256 + 512 (+ 29 out)."""
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": np.array([390])}), "fc_in": _affine(rng, width, 390),
             "h1": _lif(width)}
    edges = [("input", "fc_in"), ("fc_in", "h1")]
    for c in range(n_copies):
        prev = "h1"
        for k in range(n_layers):
            nodes[f"b{c}_{k}_fc"], nodes[f"b{c}_{k}"] = _affine(rng, width, width), _lif(width)
            edges += [(prev, f"b{c}_{k}_fc"), (f"b{c}_{k}_fc", f"b{c}_{k}")]
            prev = f"b{c}_{k}"
        nodes[f"b{c}_out"] = _affine(rng, width, width)
        edges += [(prev, f"b{c}_out"), (f"b{c}_out", "h2")]
    nodes.update(h2=_lif(width), fc_out=_affine(rng, 29, width), out=_lif(29),
                 output=nir.Output(output_type={"output": np.array([29])}))
    edges += [("h2", "fc_out"), ("fc_out", "out"), ("out", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3})


BLOUW = ("P. Blouw, X. Choo, E. Hunsberger, C. Eliasmith, 'Benchmarking Keyword Spotting Efficiency on Neuromorphic "
         "Hardware', NICE 2019, doi:10.1145/3320288.3320304, arXiv:1812.01739; text read from the authors' LaTeX "
         "source paper/power_summary_acm_format.tex in github.com/abr/power_benchmarks")
X86 = ("the paper's Data I/O section: Loihi's idle power was measured after boot, and idling after a model has run "
       "once draws 'approximately 70mW' more (the embedded x86 cores, the authors speculate), so that much of the "
       "dynamic power is not spent on the inference itself")

CASES = (
    Case(
        name="Keyword spotter (Blouw et al. 2019) on Loihi 1",
        chip="loihi1",
        citation=BLOUW,
        targets=(
            Target("published", 0.00027, "dynamic energy per inference, Table 1: (0.110 W running - 0.029 W idle "
                                         "after boot) / 296 inferences per s"),
            Target("less x86 offset", (0.081 - 0.070) / 296, "(0.081 W - ~0.070 W) / 296 inferences per s: the "
                   "published dynamic power less ~70 mW, after " + X86),
        ),
        graph=lambda: graph_of((390, 256, 256, 29)),
        inputs={"measured energy, throughput, idle and running power": "paper (Table 1)",
                "390 inputs, 256 + 256 hidden, 29 outputs, fully connected": "paper (Methodology: 'a frame (390 "
                "dimensions) ... passed through two 256-dimensional hidden layers ... a 29-dimensional output "
                "vector'; Fig. 2: 'Layers are fully connected')",
                "~70 mW of the dynamic power is the x86 cores' post-run idle, not inference": "paper (Data I/O "
                "section, 'approximately 70mW'; an approximate figure)",
                "time steps per inference": "assumed: swept 10-100 (not published)",
                "hidden firing rate": "assumed: swept 0.02-0.2 spikes per neuron per step (not published)",
                "input event rate": "assumed: swept 0.1-0.5 events per input channel per step (not published)",
                "active neuron updates": "assumed: every update of every step (dense layers: any input event "
                                         "reaches every neuron)"},
        steps=(10, 30, 100),
        rates=(0.02, 0.05, 0.2),
        input_rate=(0.1, 0.5),
    ),
    Case(
        name="Scaled keyword-spotter network, N = 10 branches (Blouw et al. 2019, Figs. 6-7) on Loihi 1",
        chip="loihi1",
        citation=BLOUW + "; power log logs/running/loihi_C10L10_run1.csv and run summary loihi_C10L10_run1.json "
                         "in the same repository (the data behind Figs. 6-7)",
        targets=(
            Target("vs boot idle", (0.112 - 0.0317) / 62.0, "dynamic energy per inference as the paper defines it: "
                   "(0.112 W while inferring - 0.0317 W idle after boot) / 62.0 inferences per s (1000 inferences "
                   "in 16.12 s); read from the run's power log (3 s.f.)"),
            Target("inference only", (0.112 - 0.0985) / 62.0, "(0.112 W while inferring - 0.0985 W on the same "
                   "log just before and after the inference window, chip set up and x86 cores running) / 62.0 "
                   "inferences per s: the part of the power that starts and stops with the inferences"),
        ),
        graph=lambda: scaled_graph(10),
        inputs={"network: 390 -> 256 -> 10 branches x 10 layers x 256 -> 256 -> 29, fully connected": "paper (Fig. 7 "
                "topology, axis label '# neurons = N*10*256 + 512'; the branches join at the second hidden layer)",
                "N = 10 copies, 10 layers per branch, 1000 inferences, start/end times": "repository run summary "
                "loihi_C10L10_run1.json (n_copies 10, n_layers 10)",
                "power while inferring / before-after plateau / idle": "repository power log (loihi_C10L10_run1.csv "
                "running; idle/loihi_C10L10_run1.csv): ~0.112 W, ~0.0985 W, ~0.0317 W, read by eye to 3 s.f.",
                "input layer on 8 cores in the measurement (vs 2 in the keyword spotter)": "paper (Results); the "
                "model places it as its mapper does",
                "weights": "paper: random from a fixed uniform distribution (so activity is not that of a trained "
                           "network)",
                "time steps per inference": "assumed: swept 10-100 (not published)",
                "hidden firing rate": "assumed: swept 0.02-0.2 spikes per neuron per step (not published)",
                "input event rate": "assumed: swept 0.1-0.5 events per input channel per step (not published)",
                "active neuron updates": "assumed: every update of every step"},
        steps=(10, 30, 100),
        rates=(0.02, 0.05, 0.2),
        input_rate=(0.1, 0.5),
    ),
)


def predict(case: Case, steps: int, rate: float, in_rate: float):
    from hardware_sims.plan.lowering import build_plan

    graph = case.graph()
    plan = build_plan(graph, dt=1e-3)
    mapping = map_plan(plan, case.chip, weight_bits=8, time_steps=steps)
    fed_by_input = {dst for src, dst in graph.edges if src == "input"}
    act = {}
    for name, layer in mapping.layers.items():
        pre = in_rate if set(layer.synapse_nodes) & fed_by_input else rate
        # fully connected: every presynaptic event is one synaptic op per stored synapse row it reaches, i.e.
        # events x fan-out = rate x synapses x steps; every neuron of a step with input is updated actively
        act[name] = LayerActivity(synaptic_events=pre * layer.synapses * steps,
                                  spikes=rate * layer.compartments * steps,
                                  active_updates=layer.compartments * steps)
    return chip_cost(mapping, act).energy_dynamic_j["value"], mapping


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    lines = ["# Chip model against published measured energy per inference", "",
             "Command: `PYTHONPATH=. python scripts/validate_chip_model.py"
             + (f" --out {args.out}`" if args.out else "`"), "",
             "Model: `hardware_sims/cost/mapping.py` + `chip_cost.py`, central figures (Davies et al. 2018 Table 2 for "
             "Loihi 1). Nothing is fitted to the measured values. Inputs the paper does not give are swept; the "
             "prediction is therefore a range, and the ratio predicted/measured is reported for every point.", ""]
    for case in CASES:
        lines += [f"## {case.name}", "", f"Source: {case.citation}.", "", "Measured (the targets compared with):", ""]
        lines += [f"- **{t.label}: {t.joules * 1e6:.0f} uJ** -- {t.what}." for t in case.targets]
        lines += ["", "Inputs and where they come from:", ""]
        lines += [f"- {k}: {v}" for k, v in case.inputs.items()]
        heads = " | ".join(f"pred./{t.label}" for t in case.targets)
        lines += ["", f"| steps/inference | hidden rate | input rate | cores | predicted uJ | {heads} |",
                  "| ---: | ---: | ---: | ---: | ---: |" + " ---: |" * len(case.targets)]
        ratios: dict[str, list[float]] = {t.label: [] for t in case.targets}
        for steps, rate, in_rate in itertools.product(case.steps, case.rates, case.input_rate):
            e, mapping = predict(case, steps, rate, in_rate)
            for t in case.targets:
                ratios[t.label].append(e / t.joules)
            lines.append(f"| {steps} | {rate:g} | {in_rate:g} | {mapping.cores} | {e * 1e6:.1f} | "
                         + " | ".join(f"{e / t.joules:.3f}" for t in case.targets) + " |")
        lines += [""]
        lines += [f"Ratio predicted/{label} over the swept inputs: {min(r):.3f} to {max(r):.3f} (geometric middle "
                  f"{np.exp(np.mean(np.log(r))):.3f})." for label, r in ratios.items()]
        lines += [""]
    lines += ["## What this does and does not show", "",
              "- Two published Loihi 1 measurements are reproduced, both from Blouw et al. 2019: the trained keyword "
              "spotter (Table 1) and the largest network of their scaling study (N = 10, 26,112 neurons, Figs. 6-7, "
              "from the authors' own power log). They are two networks 50x apart in size measured on the same "
              "board with the same method, not two independent labs. No Loihi 2 measurement is reproduced: the "
              "lava-dl PilotNet SDNN benchmark notebook and Shrestha et al. (ICASSP 2024) publish layer sizes, but "
              "the activity (synops per frame) is only plotted, per core, or not reachable from this session.",
              "- 'published' / 'vs boot idle' is the dynamic energy as the paper defines it (running power minus "
              "idle power after boot, over throughput). It contains ~70 mW that the paper itself attributes to the "
              "embedded x86 cores idling after a first run, and host I/O and barrier overheads; none of that is in "
              "the model's dynamic energy (chip_cost's EXCLUDED). 'less x86 offset' / 'inference only' remove that "
              "offset (for N = 10 directly from the log, the plateau before and after the inference window; for the "
              "keyword spotter from the paper's approximate 70 mW, so that target is uncertain by ~+-10 uJ for each "
              "+-3 mW), and are the like-for-like comparison for the model.",
              "- The activity (steps per inference, firing rates, input event rate) is not published for either "
              "network: the spread of the ratio is the model's sensitivity to it, not an error bar of the chip "
              "figures. The N = 10 network has random weights, so its firing rates are not those of a trained "
              "network either.",
              "- Throughput (296 and 62 inferences per s) is set by the host-to-chip I/O of NxSDK 0.7.5, not by the "
              "chip; the model's static energy is therefore not compared (it would use the model's latency, not "
              "the measured one)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
