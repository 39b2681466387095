"""Quantization with and without quantization-aware fine-tuning: accuracy and energy per inference of the deployed
fixed point (the batched emulator, bit for bit Lava's), per weight-bit setting.

    python scripts/qat_study.py --float-run RUN --finetuned 8=RUN_Q8 6=RUN_Q6 4=RUN_Q4 [--data FILE]
        [--bits 8 6 4] [--samples 0] [--cost-model loihi1] [--out results/qat_study.md]

* *without fine-tuning*: the float run exported (``snnav export``'s graph) and quantized with ``weight_bits = N`` and
  the default threshold scale, as ``scripts/quantization_study.py`` does;
* *with fine-tuning*: ``RUN_QN/model.nir``, written by ``snnav train --finetune RUN --fixed-point --weight-bits N``:
  its ``metadata["quantizer"]`` pins the settings the model was fine-tuned through, and the emulator uses them.

Per row: the emulator's fixed-point accuracy on the test split, its share of samples predicted as the torch model
predicts them (for fine-tuned runs: the torch model's own fixed-point forward, which the agreement test proves equal
spike for spike), and the energy per inference (``hardware_sims.counts`` on the same run, priced with
``--cost-model``). The float references: the float torch model and the emulator in float on the float export.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

import hardware_sims  # noqa: F401  (lava compatibility fixes first; the emulator itself imports no Lava)
from export.from_torch.exporter import export_model
from export.ir.nirfile import read_graph
from hardware_sims.cost.energy import estimate_energy
from hardware_sims.counts import count_activity, merge_all
from hardware_sims.emulator import emulate
from snnav.app.checkpoint_export import export_config_for, load_trained_model
from snnav.app.qat import DEFAULT_DT_S, finetuned_model
from snnav.app.simulate import batch_arrays, open_test_split
from snnav.io import atomic_path
from snnav.training.loop import load_qat_spec


def _emulate(graph, dataset, n, chunk, precision, quant_options, cost_model):
    """``(predictions [n], energy per inference in pJ)`` over the first n test samples, in chunks."""
    preds, counts = [], []
    for b0 in range(0, n, chunk):
        inputs, _ = batch_arrays(dataset, b0, min(n, b0 + chunk))
        inputs = {k: v for k, v in inputs.items() if k in graph.nodes}
        result = emulate(graph, inputs, precision=precision, record=True, quant_options=quant_options,
                         batch_size=chunk)
        preds.append(result.readout().argmax(-1))
        counts.append(count_activity(result, graph))
    return np.concatenate(preds), estimate_energy(merge_all(counts), cost_model).total_pj


def _torch_predictions(model, dataset, n, chunk):
    out = []
    with torch.no_grad():
        for b0 in range(0, n, chunk):
            items = [dataset[i] for i in range(b0, min(n, b0 + chunk))]
            audio = torch.stack([it[0] for it in items], 1)
            visual = torch.stack([it[1] for it in items], 1)
            out.append(model(audio, visual).logits.argmax(-1).numpy())
    return np.concatenate(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--float-run", type=Path, required=True)
    parser.add_argument("--finetuned", nargs="*", default=[], metavar="BITS=RUN_DIR")
    parser.add_argument("--data", type=Path, default=None, help="default: the float run's data path")
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 6, 4], help="weight bits of the rows without "
                        "fine-tuning (every --finetuned setting also gets one)")
    parser.add_argument("--samples", type=int, default=0, help="test samples (0: the whole test split)")
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--cost-model", default="loihi1")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    t_start, load0 = time.perf_counter(), os.getloadavg()[0]
    model, ckpt = load_trained_model(args.float_run)
    graph = export_model(model, export_config_for(ckpt, DEFAULT_DT_S))
    data = args.data or Path(ckpt["config"]["data"])
    dataset = open_test_split(graph, data)
    n = len(dataset) if args.samples <= 0 else min(args.samples, len(dataset))
    _, labels = batch_arrays(dataset, 0, n)
    ref = _torch_predictions(model, dataset, n, args.chunk)
    flt, e_flt = _emulate(graph, dataset, n, args.chunk, "float", None, args.cost_model)
    print(f"float torch {np.mean(ref == labels):.2%}, emulator float {np.mean(flt == labels):.2%} "
          f"({e_flt / 1e3:.1f} nJ)", flush=True)
    finetuned = dict(item.split("=", 1) for item in args.finetuned)
    bits_all = sorted({int(b) for b in finetuned} | set(args.bits), reverse=True)
    rows = []
    for bits in bits_all:
        t0 = time.perf_counter()
        pred, energy = _emulate(graph, dataset, n, args.chunk, "fixed", {"weight_bits": bits}, args.cost_model)
        rows.append((bits, "no", "-", np.mean(pred == labels), np.mean(pred == ref), energy,
                     time.perf_counter() - t0))
        print(rows[-1], flush=True)
        if str(bits) in finetuned:
            t0 = time.perf_counter()
            run = Path(finetuned[str(bits)])
            ft_graph = run / "model.nir"
            ft_graph = read_graph(ft_graph)
            pred, energy = _emulate(ft_graph, dataset, n, args.chunk, "fixed", None, args.cost_model)
            ft_model, ft_ckpt = finetuned_model(run, load_qat_spec(run / "qat_spec.pt"))
            ours = _torch_predictions(ft_model, dataset, n, args.chunk)
            epochs = len(ft_ckpt["history"])  # best.pt: the deployed checkpoint, the run's best epoch
            ran = json.loads((run / "metrics.json").read_text(encoding="utf-8")).get("epochs_completed", epochs)
            rows.append((bits, "yes", f"{epochs} of {ran} ({ft_ckpt['history'][-1]['time_s'] / 60:.1f} min per "
                         f"epoch, lr {ft_ckpt['history'][0]['lr']:.3g})",
                         np.mean(pred == labels), np.mean(pred == ours), energy, time.perf_counter() - t0))
            print(rows[-1], flush=True)

    acc_ref = np.mean(ref == labels)
    cmd = " ".join(shlex.quote(a) for a in ["python", "scripts/qat_study.py", *sys.argv[1:]])
    lines = [
        "# Quantization-aware fine-tuning: fixed-point accuracy and energy with and without it",
        "",
        f"Command: `{cmd}`",
        "",
        f"Float run `{args.float_run}` ({ckpt['model_name']}), AV-Digits test split, {n} samples. Machine: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average {load0:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end; {time.perf_counter() - t_start:.0f} s in all.",
        "",
        f"Float references: torch model **{acc_ref:.2%}**; emulator float {np.mean(flt == labels):.2%} "
        f"({e_flt / 1e3:.1f} nJ per inference, cost model `{args.cost_model}`).",
        "",
        "| weight bits | fine-tuned | epochs | accuracy | vs float | same pred. as torch | energy / inference | s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for bits, ft, epochs, acc, same, energy, secs in rows:
        lines.append(f"| {bits} | {ft} | {epochs} | {acc:.2%} | {100 * (acc - acc_ref):+.1f} pp | {same:.2%} | "
                     f"{energy / 1e3:.1f} nJ | {secs:.0f} |")
    lines += [
        "",
        "Columns: *accuracy*: the emulator in fixed point (bit for bit Lava's); *vs float*: minus the float torch "
        "model's accuracy; *same pred. as torch*: share of samples the emulator predicts as the torch model does (the "
        "float model for rows without fine-tuning, the fine-tuned model's fixed-point forward for the others); "
        "*energy / inference*: `hardware_sims.counts` of the same emulator run priced with the cost model (an "
        "estimate, not a measurement); *epochs*: fine-tuning epochs of the deployed checkpoint (the run's best "
        "epoch by its test accuracy, `best.pt`, as every export) of the epochs run, the minutes of the last one and "
        "the first epoch's lr; *s*: seconds "
        "for the row (emulation with records, counting).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
