"""Lava against the NIR interpreter for every registered model, on AV-Digits test samples: float and fixed point.

For each model of ``snnav.models.list_models()`` it takes a trained checkpoint found under ``--runs`` (any
``best.pt`` of that model; finished runs first, then in path order), exports it in float64
(``export_config_for(ckpt, dt, dtype="float64")``), and runs the same ``--samples`` AV-Digits test samples (evenly
spaced over the test split) through

* the torch NIR interpreter (``export.interpreter.Interpreter``, float64): the reference;
* Lava floating point (``run_lava(..., precision="float")``), recording the spikes of every LIF node;
* Lava fixed point (``precision="fixed"``: the plan quantized by ``hardware_sims.fixed_point.quantize``), logits only.

A model without a checkpoint falls back to a small randomized export (the models of ``tests/export/conftest.py``,
16x16 inputs, T = 4) fed uniform random inputs in [0, 3); its row says so and has no accuracy.

Prints and writes (``--out``, markdown, atomically) one row per model:

* spike mismatches Lava float vs interpreter over every LIF node (all steps, samples, neurons), and of how many;
* max |Δlogit| Lava float vs interpreter at the readout step;
* prediction agreement Lava fixed vs Lava float;
* accuracy of the interpreter, Lava float and Lava fixed on the samples' labels;
* the quantization report: synapse weights clipped and rounded (of all weights), and LIF parameters clipped.

Lava starts one OS process per Lava process (a trained S-CMRL export: about 135, plus one recorder per LIF node in
the float run); models run one after the other.

    python scripts/lava_agreement.py --runs runs/ablation-32 --data runs/default/av_digits.h5 --samples 8 \\
        --out results/lava_agreement.md
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DT_S = 1e-3


# ------------------------------------------------------------------------------------------------ checkpoints


def _finished(run_dir: Path, ckpt: dict) -> tuple[bool, int, int]:
    """(finished, epochs done, epochs planned) of a training run, from its metrics file and config."""
    from snnav.training.loop import read_metrics

    planned = int(ckpt["config"].get("epochs") or 0)
    try:
        done = len(read_metrics(run_dir).get("epochs", []))
    except (OSError, ValueError):
        done = int(ckpt.get("epoch") or 0)
    return done >= planned > 0, done, planned


def find_checkpoints(roots: list[Path]) -> dict[str, dict]:
    """``{model name: {"path", "finished", "epochs", "planned", "best_acc"}}``: per model, a finished run first."""
    import torch

    found: dict[str, list[dict]] = {}
    for root in roots:
        if not root.is_dir():
            print(f"note: --runs {root} is not a folder; skipped", file=sys.stderr)
            continue
        for path in sorted(root.rglob("best.pt")):
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=False)
                name = ckpt["model_name"]
            except Exception as exc:  # noqa: BLE001 - a checkpoint being written or foreign: skip it, say so
                print(f"note: {path} unreadable ({exc}); skipped", file=sys.stderr)
                continue
            finished, done, planned = _finished(path.parent, ckpt)
            found.setdefault(name, []).append({"path": path, "finished": finished, "epochs": done,
                                               "planned": planned, "best_acc": ckpt.get("best_acc")})
    return {name: sorted(c, key=lambda c: not c["finished"])[0] for name, c in found.items()}


# ------------------------------------------------------------------------------------------------------ inputs


def trained_case(info: dict, data: Path, samples: int):
    """``(graph, inputs {name: [T, B, ...] float64}, labels)`` for a checkpoint: float64 export, test samples."""
    import numpy as np
    import torch

    from export.from_torch.exporter import export_model
    from snnav.app.checkpoint_export import export_config_for, load_trained_model
    from snnav.training.build import open_datasets
    from snnav.training.config import TrainConfig

    model, ckpt = load_trained_model(info["path"])
    graph = export_model(model, export_config_for(ckpt, DT_S, dtype="float64"))
    config = TrainConfig.from_dict(ckpt["config"]).replace(data=str(data))
    (test,) = open_datasets(config, ("test",))
    idx = np.unique(np.linspace(0, len(test) - 1, min(samples, len(test))).round().astype(int))
    items = [test[int(i)] for i in idx]
    x = {"audio": torch.stack([it[0] for it in items], 1), "visual": torch.stack([it[1] for it in items], 1)}
    inputs = {k: v.numpy().astype(np.float64) for k, v in x.items() if k in graph.nodes}
    return graph, inputs, np.array([it[2] for it in items])


def _test_models():
    """``tests/export/conftest.py`` as a module: the small randomized models the export tests use."""
    spec = importlib.util.spec_from_file_location("snnav_export_test_models", REPO / "tests/export/conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_case(name: str, samples: int, seed: int):
    """``(graph, inputs, None)``: the small randomized model (float64 export) on uniform [0, 3) inputs."""
    import numpy as np

    from export.from_torch.exporter import ExportConfig, export_model

    tm = _test_models()
    model = tm.small_model(name)
    unimodal = {"spikformer-audio": "visual", "spikformer-visual": "audio"}.get(name)
    shapes = {"audio": (1, tm.SIZE, tm.SIZE), "visual": (2, tm.SIZE, tm.SIZE)}
    cfg = ExportConfig(dt_s=DT_S, time_steps=tm.T, dtype="float64",
                       audio_shape=None if unimodal == "audio" else shapes["audio"],
                       visual_shape=None if unimodal == "visual" else shapes["visual"])
    graph = export_model(model, cfg)
    rng = np.random.default_rng(seed)
    inputs = {k: 3 * rng.random((tm.T, samples, *s)) for k, s in shapes.items() if k in graph.nodes}
    return graph, inputs, None


# ---------------------------------------------------------------------------------------------------- compare


def _quant_summary(report) -> dict:
    syn = [r for r in report.layers if r.kind == "synapse"]
    neu = [r for r in report.layers if r.kind == "neuron"]
    bias = [r for r in report.layers if r.kind == "bias"]
    params: dict[str, int] = {}
    for r in neu:
        for p in r.details.get("clipped", []):
            params[p.split("[")[0]] = params.get(p.split("[")[0], 0) + 1
    return {"weights": sum(r.size for r in syn), "w_clipped": sum(r.clipped for r in syn),
            "w_clipped_layers": sum(1 for r in syn if r.clipped), "neuron_clipped_params": params,
            "w_rounded": sum(r.rounded for r in syn),
            "w_zeroed": sum(int(r.details.get("zeroed", 0)) for r in syn),
            "neuron_clipped": sum(r.clipped for r in neu), "port_bias_rounded": sum(r.rounded for r in bias)}


def compare(graph, inputs: dict, labels) -> dict:
    """Interpreter, Lava float (every LIF recorded) and Lava fixed on the same inputs; the table's numbers."""
    import numpy as np
    import torch

    from export.interpreter import Interpreter
    from hardware_sims.lava.run import run_lava
    from hardware_sims.plan import build_plan

    plan = build_plan(graph)
    lifs = [p.name for p in plan.of_kind("neuron") if p.params["nir_type"] == "LIF"]
    t0 = time.perf_counter()
    ref = Interpreter(graph, dtype=torch.float64).run({k: torch.from_numpy(v) for k, v in inputs.items()})
    interp_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    flt = run_lava(plan, inputs, precision="float", record=lifs)
    float_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fix = run_lava(plan, inputs, precision="fixed", record=False)
    fixed_s = time.perf_counter() - t0

    step = flt.readout_step if flt.readout_step is not None else -1
    ref_logits = ref.outputs["logits"].numpy()[step]
    flt_logits, fix_logits = flt.readout("logits"), fix.readout("logits")
    mismatches = sum(int((flt.records[n] != ref.records[n].numpy()).sum()) for n in lifs)
    entries = sum(int(ref.records[n].numel()) for n in lifs)
    pred = {k: v.argmax(-1) for k, v in (("interp", ref_logits), ("float", flt_logits), ("fixed", fix_logits))}
    row = {
        "samples": int(ref_logits.shape[0]), "lif_layers": len(lifs), "processes": len(plan.processes),
        "steps_per_sample": int(flt.steps_per_sample),
        "mismatches": mismatches, "entries": entries,
        "max_dlogit": float(np.abs(flt_logits - ref_logits).max()),
        "float_eq_interp": float((pred["float"] == pred["interp"]).mean()),
        "fixed_eq_float": float((pred["fixed"] == pred["float"]).mean()),
        "max_dlogit_fixed": float(np.abs(fix_logits - flt_logits).max()),
        "quant": _quant_summary(fix.plan.quant.report),
        "seconds": {"interpreter": interp_s, "lava_float": float_s, "lava_fixed": fixed_s,
                    "float_ms_per_step": flt.timing["ms_per_step"], "fixed_ms_per_step": fix.timing["ms_per_step"]},
    }
    if labels is not None:
        row["acc"] = {k: float((v == labels).mean()) for k, v in pred.items()}
    return row


# ------------------------------------------------------------------------------------------------------ table


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def format_rows(rows: list[dict]) -> str:
    lines = ["| model | source | samples | spike mismatches float vs interp (LIF layers) | max abs Δlogit float "
             "| fixed = float prediction | accuracy interp / float / fixed | quantization (fixed point) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['source']} | — | error: {r['error']} | — | — | — | — |")
            continue
        q = r["quant"]
        acc = " / ".join(_pct(r["acc"][k]) for k in ("interp", "float", "fixed")) if "acc" in r else "— (random)"
        clipped = f"{q['w_clipped']:,} clipped" + (f" (in {q['w_clipped_layers']} layers)" if q["w_clipped"] else "")
        params = ", ".join(f"{k} x{v}" for k, v in sorted(q["neuron_clipped_params"].items()))
        quant = (f"{clipped}, {q['w_rounded']:,} rounded ({q['w_zeroed']:,} to 0) of {q['weights']:,} weights; "
                 f"{q['neuron_clipped']} neuron params clipped" + (f" ({params})" if params else ""))
        if q["port_bias_rounded"]:
            quant += f"; {q['port_bias_rounded']} port biases rounded"
        lines.append(f"| {r['model']} | {r['source']} | {r['samples']} | {r['mismatches']} of {r['entries']:,} "
                     f"({r['lif_layers']}) | {r['max_dlogit']:.1e} | {_pct(r['fixed_eq_float'])} (max abs Δlogit "
                     f"{r['max_dlogit_fixed']:.2g}) | {acc} | {quant} |")
    return "\n".join(lines) + "\n"


def format_timing(rows: list[dict]) -> str:
    lines = ["| model | Lava processes | Lava steps per sample | float ms/step (every LIF recorded) | fixed ms/step "
             "| wall s: interpreter / Lava float / Lava fixed |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            continue
        t = r["seconds"]
        lines.append(f"| {r['model']} | {r['processes']} | {r['steps_per_sample']} | {t['float_ms_per_step']:.0f} "
                     f"| {t['fixed_ms_per_step']:.0f} | {t['interpreter']:.1f} / {t['lava_float']:.0f} / "
                     f"{t['lava_fixed']:.0f} |")
    return "\n".join(lines) + "\n"


def _load() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="*", default=[Path("runs/ablation-32")],
                        help="folders searched for trained best.pt files (several allowed)")
    parser.add_argument("--data", type=Path, default=Path("runs/default/av_digits.h5"))
    parser.add_argument("--samples", type=int, default=8, help="AV-Digits test samples per model")
    parser.add_argument("--out", type=Path, default=Path("results/lava_agreement.md"))
    parser.add_argument("--models", nargs="*", default=None, help="registered model names (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs of fallback models")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the interpreter)")
    args = parser.parse_args(argv)

    import torch

    import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)
    from snnav.io import atomic_path
    from snnav.models import list_models

    torch.set_num_threads(args.threads)
    names = args.models or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        parser.error(f"unknown models {unknown}; registered: {list_models()}")
    found = find_checkpoints(args.runs)
    load_start, t_start = _load(), time.perf_counter()
    rows = []
    for name in names:
        t0 = time.perf_counter()
        info = found.get(name)
        if info is not None:
            source = (f"`{info['path'].relative_to(REPO) if info['path'].is_relative_to(REPO) else info['path']}` "
                      f"(epoch {info['epochs']}/{info['planned']})")
        else:
            source = "no checkpoint: small randomized export, random inputs"
        try:
            if info is not None:
                graph, inputs, labels = trained_case(info, args.data, args.samples)
            else:
                graph, inputs, labels = random_case(name, args.samples, args.seed)
            row = {"model": name, "source": source, **compare(graph, inputs, labels)}
        except Exception as exc:  # noqa: BLE001 - one model's failure is a row of the table, not the end of the run
            row = {"model": name, "source": source, "error": f"{type(exc).__name__}: {exc}".replace("|", "/")}
        rows.append(row)
        if "error" in row:
            print(f"{name}: ERROR {row['error']}", flush=True)
        else:
            acc = row.get("acc")
            print(f"{name}: {row['mismatches']} spike mismatches of {row['entries']:,} in {row['lif_layers']} LIF "
                  f"layers, max |dlogit| {row['max_dlogit']:.1e}, fixed = float on {_pct(row['fixed_eq_float'])}"
                  + (f", accuracy {acc}" if acc else "")
                  + f" ({row['processes']} processes, {time.perf_counter() - t0:.0f} s)", flush=True)
    command = "python " + " ".join(shlex.quote(a) for a in [str(Path(sys.argv[0])), *(argv or sys.argv[1:])])
    text = (
        "# Lava (Loihi 2 simulation) vs the NIR interpreter on AV-Digits\n\n"
        f"Command: `{command}`\n\n"
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; float64 exports (dt = {DT_S} s); "
        f"{args.samples} test samples per model (evenly spaced over the test split of `{args.data}`); "
        f"{time.perf_counter() - t_start:.0f} s; load average (1/5/15 min) {load_start} at start, {_load()} at end "
        f"on {os.cpu_count()} cores.\n\n"
        + format_rows(rows)
        + "\n* spike mismatches: Lava float vs the torch interpreter (float64), over every LIF node of the graph, "
          "all steps, samples and neurons (entries compared in total; LIF layers in brackets).\n"
          "* fixed = float prediction: share of samples where Lava fixed point and Lava float pick the same class.\n"
          "* quantization: weights are 8-bit mantissas with a per-layer exponent (`hardware_sims.fixed_point.quantize`); "
          "rounded = changed by rounding only, clipped = saturated; neuron params = du, dv, vth, bias per "
          "population (dv = 1, the memoryless max-pool Threshold, is not representable: 4095/4096).\n"
        "\nTiming (the machine is shared; Lava runs one OS process per Lava process):\n\n" + format_timing(rows)
    )
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print("\n" + text)
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
