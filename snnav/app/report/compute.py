"""The report as plain data: accuracies, per-layer activity, energies per cost model, the GPU side, the raster.

`build_report(inputs)` turns the files `snnav.app.report.inputs.collect_inputs` read into one JSON-ready dict. Energies
are `hardware_sims.cost.energy.estimate_energy` of a result's counts under a cost model; nothing here prices an
operation itself. Every number in the dict sits next to ``sources`` (ids of `inputs.Source`) and, for energies,
the cost model's name, its citation and the word "estimate" or "measured".

The GPU side: with a GPU measurement file, the trained torch model's measured energy per sample (NVML, dynamic =
board minus idle; the largest batch measured); without one, the 45 nm estimate of running the same network densely
in float — every synapse at every step a multiply-accumulate — which is the counts' ``dense_synapses`` priced as
``horowitz45nm`` MACs (`dense_equivalent`), labelled as such.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from dataclasses import replace
from typing import Any

from hardware_sims.cost.energy import estimate_energy
from hardware_sims.counts import COUNT_FIELDS, ActivityCounts
from snnav._version import __version__
from snnav.app.report.headline import headline
from snnav.app.report.inputs import ReportInputs
from snnav.app.report.quantization import quantization_section
from snnav.app.report.results import ResultFileError

__all__ = ["FORMAT", "VERSION", "GPU_ESTIMATE_MODEL", "result_label", "dense_equivalent", "build_report"]

FORMAT = "snnav.app.report"
VERSION = 1
GPU_ESTIMATE_MODEL = "horowitz45nm"
SKIPPED_TYPES = ("Input", "Output")  # nodes that do no operations of their own


def result_label(backend: str, precision: str) -> str:
    """What a simulation result stands for, in the report's words."""
    if precision == "fixed":
        return "Loihi fixed point (" + ("emulator, bit-exact with Lava)" if backend == "emulator" else "Lava)")
    return "Lava float (" + ("emulator of Lava's float models)" if backend == "emulator" else "Lava)")


def _counts(data: dict[str, Any], path: str):
    try:
        return ActivityCounts.from_dict(data["counts"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultFileError(f"{path}: the activity counts cannot be read ({exc}); simulate again with "
                              f"{data.get('command', 'snnav simulate ... --out FILE')}") from exc


def dense_equivalent(counts):
    """The counts of the same network run densely in float (a GPU): every synapse at every step a MAC.

    ``dense_macs`` becomes each node's ``dense_synapses``; synaptic events become zero; extension products all
    become MACs (their event-driven counts: a lower bound of what a dense kernel computes); every neuron is updated
    at every step. Spikes are kept (a dense machine still computes them).
    """

    steps, samples = counts.run.time_steps, counts.run.samples
    nodes = {}
    for name, n in counts.nodes.items():
        spiking_or_neuron = (n.neuron_updates_active + n.neuron_updates_idle) > 0
        nodes[name] = replace(n, synaptic_events=0.0, dense_macs=n.dense_synapses, ext_acs=0.0,
                              ext_macs=n.ext_acs + n.ext_macs,
                              neuron_updates_active=float(n.neurons * steps) if spiking_or_neuron else 0.0,
                              neuron_updates_idle=0.0)
    per_sample = {k: tuple(counts.per_sample[k]) for k in COUNT_FIELDS}
    dense_total = sum(n.dense_synapses for n in counts.nodes.values())
    updates_total = sum(n.neuron_updates_active for n in nodes.values())
    per_sample.update(
        synaptic_events=(0.0,) * samples, dense_macs=(float(dense_total),) * samples, ext_acs=(0.0,) * samples,
        ext_macs=tuple(a + m for a, m in zip(counts.per_sample["ext_acs"], counts.per_sample["ext_macs"])),
        neuron_updates_active=(float(updates_total),) * samples, neuron_updates_idle=(0.0,) * samples)
    return replace(counts, nodes=nodes, per_sample=per_sample)


def _node_count_energy(counts, model) -> dict[str, dict[str, float]]:
    """pJ per inference by node and by count: the split `estimate_energy` sums (`_energy_entry` checks it does)."""

    out = {}
    for name, n in counts.nodes.items():
        parts = {k: model.energy_of(k) * getattr(n, k) for k in COUNT_FIELDS if model.energy_of(k) is not None}
        out[name] = {k: v for k, v in parts.items() if v}
    return out


def _energy_entry(source, counts, model_source, model, what: str) -> dict[str, Any]:
    est = estimate_energy(counts, model)
    by_node_count = _node_count_energy(counts, model)
    for name, pj in est.by_node_pj.items():  # the split must add up to estimate_energy's own figures
        split = sum(by_node_count[name].values())
        if not math.isclose(split, pj, rel_tol=1e-9, abs_tol=1e-6):
            raise RuntimeError(f"energy split of node {name} ({split} pJ) differs from estimate_energy ({pj} pJ)")
    return {
        "result": source.id, "what": what, "cost_model": model.name, "cost_model_source": model.source.text(),
        "technology": model.technology, "kind": est.kind, "label": est.label,
        "total_pj": est.total_pj, "total_j": est.total_j,
        "by_node_pj": dict(est.by_node_pj), "by_count_pj": dict(est.by_count_pj),
        "by_operation_pj": dict(est.by_operation_pj), "by_node_count_pj": by_node_count,
        "operation_pj": {op: c.energy_pj for op, c in model.operations.items()},
        "count_operation": {k: c.operation for k, c in model.counts.items()},
        "statuses": dict(est.statuses), "assumptions": dict(est.assumptions),
        "uncosted": {k: v.to_dict() for k, v in est.uncosted.items()},
        "sources": [source.id, model_source.id],
    }


def _activity_rows(source, counts) -> list[dict[str, Any]]:
    rows = []
    for name, n in counts.nodes.items():
        if n.type in SKIPPED_TYPES:
            continue
        rate = n.firing_rate
        ops = n.synaptic_events + n.dense_macs
        rows.append({
            "result": source.id, "node": name, "type": n.type, "neurons": n.neurons, "spikes": n.spikes,
            "firing_rate": rate, "activation_sparsity": None if rate is None else 1.0 - rate,
            "neuron_updates_active": n.neuron_updates_active, "neuron_updates_idle": n.neuron_updates_idle,
            "synaptic_events": n.synaptic_events, "dense_macs": n.dense_macs, "dense_synapses": n.dense_synapses,
            "synaptic_sparsity": 1.0 - ops / n.dense_synapses if n.dense_synapses else None,
            "ext_acs": n.ext_acs, "ext_macs": n.ext_macs, "sources": [source.id],
        })
    return rows


def _simulation_entry(source, data: dict[str, Any], counts) -> dict[str, Any]:
    return {
        "id": source.id, "label": result_label(data["backend"], data["precision"]), "backend": data["backend"],
        "precision": data["precision"], "samples": data["samples"], "accuracy": data["accuracy"],
        "float_accuracy": data["float_accuracy"], "agreement": data["agreement"],
        "float_reference": data.get("float_reference"), "timing": data.get("timing"),
        "model": data["model"], "data": data["data"], "command": data.get("command"),
        "time_steps": counts.run.time_steps, "dt_s": counts.run.dt_s,
        "totals": counts.totals, "neurobench": counts.neurobench.to_dict(), "sources": [source.id],
    }


def _primary(sims: list[dict[str, Any]]) -> dict[str, Any]:
    """The result the per-layer plots show: fixed point first, then the most samples, then the emulator."""
    return max(sims, key=lambda s: (s["precision"] == "fixed", s["samples"], s["backend"] == "emulator"))


def _training(inputs: ReportInputs) -> dict[str, Any]:
    metrics, config = inputs.training["metrics"], inputs.training["config"]
    epochs = metrics["epochs"]
    accs = [e["test_acc"] for e in epochs]
    best = metrics.get("best_acc", max(accs))
    return {"dir": inputs.training["dir"], "model": config.get("model"), "dataset": config.get("dataset"),
            "model_config": config.get("model_config"), "epochs": len(epochs), "best_acc": best,
            "best_epoch": metrics.get("best_epoch", accs.index(max(accs))), "last_acc": accs[-1],
            "accuracy_note": "torch float32 accuracy on the whole test split, evaluated by the training loop; the "
                             "export (best.pt) is the best epoch's model", "sources": ["run"]}


def _gpu_measured(source, data: dict[str, Any], training: dict[str, Any]) -> dict[str, Any]:
    rows = [r for r in data["measurements"] if r.get("target") == "torch"] or data["measurements"]
    row = max(rows, key=lambda r: r["batch_size"])
    dynamic = row.get("dynamic_energy_j_per_sample")
    energy = dynamic if isinstance(dynamic, (int, float)) and dynamic > 0 else row["energy_j_per_sample"]
    return {
        "kind": "measured", "label": data.get("method", "measured"),
        "name": f"GPU float ({(data.get('hardware') or {}).get('gpu_name', 'GPU')}, {row['target']}, batch "
                f"{row['batch_size']}{', dynamic energy' if energy is dynamic else ''})",
        "energy_j": energy,
        "energy_basis": ("dynamic energy per sample (board energy minus idle power x window)"
                         if energy is dynamic else "board energy per sample (the dynamic figure was not positive)"),
        "board_energy_j": row["energy_j_per_sample"], "dynamic_energy_j": dynamic,
        "wall_s_per_sample": row.get("wall_s_per_sample"), "samples_per_s": row.get("samples_per_s"),
        "accuracy": training["best_acc"], "accuracy_sources": ["run"],
        "hardware": data.get("hardware"), "idle": data.get("idle"), "measurements": data["measurements"],
        "command": data.get("command"), "sources": [source.id],
    }


def model_fingerprint(model_name: Any, model_config: Any) -> str:
    """A short hash of a model's structure (its registered name and model config), to tell two models apart."""
    text = json.dumps({"model": model_name, "model_config": model_config}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _gpu_mismatch(data: dict[str, Any], training: dict[str, Any], model_sha256: str | None) -> list[str]:
    """A warning when the GPU measurement is of another model than the report's, naming both models' hashes: the
    exports' sha256 when the measurement recorded its export's, else the fingerprints of name + model config."""
    run = data.get("run") or {}
    theirs_nir = run.get("nir_sha256")
    if theirs_nir and model_sha256:
        if theirs_nir == model_sha256:
            return []
        what = f"export sha256 {theirs_nir[:12]} (measured) vs {model_sha256[:12]} (this report's)"
    else:
        theirs = model_fingerprint(run.get("model_name"), run.get("model_config"))
        ours = model_fingerprint(training["model"], training.get("model_config"))
        if run.get("model_name") is None or theirs == ours:
            return []
        what = f"model {run.get('model_name')} [{theirs}] (measured) vs {training['model']} [{ours}] (this report's)"
    return [f"WARNING: the GPU measurement is of another model than this report's ({what}; measured on "
            f"{run.get('checkpoint', '?')}, best test accuracy {run.get('best_acc')}): its energy is not this "
            "model's."]


def _gpu_estimated(sims, counts_of, inputs: ReportInputs, training: dict[str, Any]) -> dict[str, Any] | None:
    models = {m.name: (s, m) for s, m in inputs.cost_models}
    if GPU_ESTIMATE_MODEL not in models:
        return None
    base = max(sims, key=lambda s: (s["precision"] == "float", s["samples"]))
    model_source, model = models[GPU_ESTIMATE_MODEL]
    dense = dense_equivalent(counts_of[base["id"]])
    entry = _energy_entry(next(s for s, _ in inputs.results if s.id == base["id"]), dense, model_source, model,
                          "dense float on a GPU (estimate)")
    return {
        "counts_per_inference": {k: v for k, v in dense.totals.items() if k in entry["by_count_pj"]},
        "kind": "estimate", "label": f"estimate: no GPU measurement given; {model.name} MACs for every synapse at "
                                     f"every step (dense float), from the counts of {base['id']}",
        "name": "GPU float (45 nm estimate, dense)", "energy_j": entry["total_j"], "energy": entry,
        "accuracy": training["best_acc"], "accuracy_sources": ["run"], "sources": entry["sources"],
    }


def _points(sims, energies, gpu) -> list[dict[str, Any]]:
    points = []
    if gpu is not None:
        points.append({"name": gpu["name"], "accuracy": gpu["accuracy"], "energy_j": gpu["energy_j"],
                       "kind": gpu["kind"], "cost_model": None if gpu["kind"] == "measured" else GPU_ESTIMATE_MODEL,
                       "samples": None, "sources": sorted({*gpu["sources"], *gpu["accuracy_sources"]})})
    for sim in sims:
        for e in (e for e in energies if e["result"] == sim["id"]):
            points.append({"name": f"{sim['label']} x {e['cost_model']}", "accuracy": sim["accuracy"],
                           "energy_j": e["total_j"], "kind": e["kind"], "cost_model": e["cost_model"],
                           "result": sim["id"], "samples": sim["samples"], "sources": e["sources"]})
    return points


def _raster(inputs: ReportInputs, primary_id: str) -> dict[str, Any] | None:
    ordered = sorted(inputs.results, key=lambda r: r[0].id != primary_id)
    for source, data in ordered:
        raster = data.get("raster")
        if isinstance(raster, dict) and raster.get("nodes"):
            order = list(data["counts"]["nodes"])  # the plan's order: inputs first, readout last
            nodes = dict(sorted(raster["nodes"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order
                                else len(order)))
            return {**raster, "nodes": nodes, "result": source.id, "time_steps": data["counts"]["run"]["time_steps"],
                    "label": result_label(data["backend"], data["precision"]), "sources": [source.id]}
    return None


def _mean_bounds(values: dict[str, list[float]]) -> dict[str, float]:
    return {b: sum(v) / len(v) for b, v in values.items()}


def _streaming(source, data: dict[str, Any]) -> dict[str, Any] | None:
    """A result's decision read at every step (``snnav simulate --stream``), with means over its samples."""
    st = data.get("stream")
    if not isinstance(st, dict):
        return None
    n = len(st["final_steps"])
    chips = {name: {"kind": c["kind"], "step_s": dict(c["step_s"]), "depth_steps": c["depth_steps"],
                    "window": c.get("window", False), "fits": c.get("fits", True),
                    "violations": list(c.get("violations", [])),
                    "energy_to_decision_j": _mean_bounds(c["energy_to_decision_j"]),
                    "dynamic_to_decision_j": _mean_bounds(c["dynamic_to_decision_j"]),
                    "energy_per_sample_j": _mean_bounds(c["energy_per_sample_j"]),
                    "time_to_decision_s": _mean_bounds(c["time_to_decision_s"]),
                    "time_per_step_includes": c.get("time_per_step_includes", ""),
                    "included": list(c["included"]), "excluded": list(c["excluded"])}
             for name, c in st["chips"].items()}
    return {"result": source.id, "label": result_label(data["backend"], data["precision"]), "samples": n,
            "steps": st["steps"], "pipeline_depth": st["pipeline_depth"], "window_nodes": list(st["window_nodes"]),
            "accuracy_by_step": list(st["accuracy_by_step"]),
            "float_accuracy_by_step": list(st["float_accuracy_by_step"]),
            "final_step_mean": sum(st["final_steps"]) / n,
            "decision_latency_steps_mean": sum(st["decision_latency_steps"]) / n,
            "spikes_total_mean": sum(st["spikes_total"]) / n if st["spikes_total"] else None,
            "spikes_to_decision_mean": sum(st["spikes_to_decision"]) / n if st["spikes_to_decision"] else None,
            "chips": chips, "sources": [source.id]}


def build_report(inputs: ReportInputs) -> dict[str, Any]:
    """Everything the report shows, JSON-ready (see the module docstring)."""
    training = _training(inputs)
    counts_of = {s.id: _counts(d, s.path) for s, d in inputs.results}
    sims = [_simulation_entry(s, d, counts_of[s.id]) for s, d in inputs.results]
    energies = [_energy_entry(s, counts_of[s.id], ms, m, "the simulated run's counts")
                for s, _ in inputs.results for ms, m in inputs.cost_models]
    notes = []
    if inputs.gpu is not None:
        gpu = _gpu_measured(inputs.gpu[0], inputs.gpu[1], training)
        primary_data = next((d for src, d in inputs.results if src.id == _primary(sims)["id"]), {})
        notes += _gpu_mismatch(inputs.gpu[1], training, (primary_data.get("model") or {}).get("sha256"))
    else:
        gpu = _gpu_estimated(sims, counts_of, inputs, training)
        notes.append("No GPU measurement was given (--gpu-measurement FILE, or snnav run on a CUDA machine): the "
                     "headline's GPU rows are the roofline model calibrated on NVML measurements (h100-calibrated), "
                     f"and the per-operation GPU point below is {GPU_ESTIMATE_MODEL} MACs for every synapse at every "
                     "step; both are estimates, not measurements.")
    if not any(s["precision"] == "float" for s in sims):
        notes.append("No floating-point simulation result: the Lava float point is missing; add one with snnav "
                     "simulate MODEL.nir --backend emulator --precision float --samples 1000 --out "
                     "RUN_DIR/simulations/emulator-float.json")
    notes.append("The headline prices one inference on each target with the chip mapping, memory traffic, static "
                 "power and time (hardware_sims.cost). The per-operation tables further down are the older "
                 "conventions: counted operations times a cost model's energy per operation, without static power, "
                 "routing or the mapping; they are kept for comparison with papers that report them.")
    primary = _primary(sims)
    streaming = [x for x in (_streaming(s, d) for s, d in inputs.results) if x is not None]
    extra = {"streaming": streaming} if streaming else {}  # only with a --stream result: otherwise as before
    quantization = quantization_section(inputs, sims, counts_of, training)
    if quantization is not None:  # only with a result of a fine-tuned export: otherwise as before
        extra["quantization"] = quantization
    return {
        "format": FORMAT, "version": VERSION, "snnav_version": __version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "run_dir": str(inputs.run_dir), "sources": [s.to_dict() for s in inputs.sources],
        "training": training, "simulations": sims, "primary_result": primary["id"],
        "activity": [row for s, _ in inputs.results for row in _activity_rows(s, counts_of[s.id])],
        "energy": energies, "gpu": gpu, "accuracy_vs_energy": _points(sims, energies, gpu),
        "raster": _raster(inputs, primary["id"]), "notes": notes,
        "headline": headline(inputs, sims, counts_of, primary, training), **extra,
    }
