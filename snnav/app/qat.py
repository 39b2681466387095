"""Quantization-aware fine-tuning, the application side: the deployment quantizer's choices as a :class:`QATSpec`.

``snnav train --finetune RUN --fixed-point [--weight-bits N] --out NEW`` (``commands/train.py``):

1. the float model of RUN is exported (``export.from_torch``), lowered (``hardware_sims.plan.build_plan``) and
   quantized exactly as the emulator and Lava deploy it (``hardware_sims.fixed_point.prepare.prepare_fixed``);
2. :func:`build_spec` maps every synapse and spiking neuron process back to the module it came from (the export's
   ``metadata["source"]``) and writes the numbers the library's forward needs (``snnav.training.qat``): per weight
   the real step of one mantissa unit in the module's own weight (the plan's step divided by the exporter's folds:
   batch norm per output channel, ``1/tau`` and ``Scale`` factors), the mantissa range; per neuron the state scale,
   decays, threshold and bias as integers; the input messages' exponents. Every synapse's weight exponent is pinned
   (a NIR node served by several synapse processes -- a residual fan-in -- gets one exponent, the largest; at
   ``weight_bits <= FIT_EXPONENTS_BITS`` the one of least weight quantization error, clipping the largest weights);
3. the library fine-tunes through that forward, resumable like any run;
4. :func:`export_finetuned` writes the deployed graph: the fine-tuned weights on their grid, and
   ``metadata["quantizer"]`` (weight bits, threshold scale, the pinned exponents), which ``prepare_fixed`` reads,
   so the emulator and Lava quantize with the settings the model was trained through.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import nn

import hardware_sims  # noqa: F401  (lava compatibility fixes first; the plan and quantizer import no Lava)
from export.from_torch.exporter import export_model
from export.ir.nirfile import write_graph
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.prepare import prepare_fixed
from hardware_sims.fixed_point.quantize import V_HEADROOM, quantize_weights
from hardware_sims.plan import build_plan
from snnav.app.checkpoint_export import export_config_for, load_trained_model
from snnav.errors import ConfigError
from snnav.io import atomic_path
from snnav.neurons import MultiStepLIF
from snnav.training.qat import NeuronQuant, QATSpec, WeightQuant, apply_qat, load_plain_state_dict, snap_weights

__all__ = ["build_spec", "spec_for_run", "save_spec", "export_finetuned", "finetuned_graph", "finetuned_model", "SYNAPSES", "DEFAULT_DT_S",
           "FIT_EXPONENTS_BITS"]

SYNAPSES = ("dense", "sparse", "conv")
DEFAULT_DT_S = 1e-3
FIT_EXPONENTS_BITS = 6
"""At this many weight bits or fewer the spec's weight exponents minimize the weight quantization error (clipping the
largest weights) instead of following the quantizer's no-clipping rule, which leaves most 4-bit mantissas at 0."""
FIT_EXPONENT_RANGE = 4
"""How many exponents below the no-clipping one are tried (each halves the step)."""
"""dt of the export the spec is derived from (the fixed-point formats do not depend on it: ``dt/tau`` is a ratio)."""


def _module_path(node) -> str | None:
    source = (node.metadata or {}).get("source")
    return None if source is None else str(source).split(":")[0]


def _weights(spec) -> np.ndarray:
    w = spec.params["weight"] if spec.kind == "conv" else spec.params["weights"]
    w = w.toarray() if hasattr(w, "toarray") else np.asarray(w)
    return w.astype(np.float64)


def _channel_folds(node_weight: np.ndarray, torch_weight: np.ndarray) -> np.ndarray:
    """Per output channel: the factor the exporter multiplied the module's weight by (batch norm, ``1/N``...)."""
    nw = np.abs(node_weight.reshape(node_weight.shape[0], -1)).max(1)
    tw = np.abs(torch_weight.reshape(torch_weight.shape[0], -1)).max(1)
    return np.where(tw > 0, nw / np.where(tw > 0, tw, 1.0), 1.0)


def _least_error_exp(procs, quant, top: int, weight_bits: int) -> int:
    """The weight exponent, at most `top` (the deployment quantizer's: no clipping), whose grid quantizes the
    synapses `procs` (one NIR node's paths, one shared exponent) with the least summed relative error."""
    best, best_err = top, None
    for exp in range(top, top - FIT_EXPONENT_RANGE - 1, -1):
        errs = []
        for p in procs:
            q = quant.synapses[p.name]
            if exp < (0 if p.kind == "conv" else lf.WEIGHT_EXP_MIN):
                break
            w = p.params["weight"] if p.kind == "conv" else p.params["weights"]
            errs.append(quantize_weights(w, state_exp=q.state_exp, input_exp=q.input_exp,
                                         target="conv" if p.kind == "conv" else "dense", weight_bits=weight_bits,
                                         exp=exp).rel_error)
        if len(errs) < len(procs):
            break
        if best_err is None or sum(errs) < best_err:
            best, best_err = exp, sum(errs)
    return best


def build_spec(model: nn.Module, graph, *, weight_bits: int = lf.WEIGHT_BITS, v_headroom: float = V_HEADROOM,
               fit_exponents: bool | None = None) -> QATSpec:
    """The :class:`QATSpec` of `model` (float, eval mode) as exported to `graph` and quantized by the deployment
    quantizer with `weight_bits` and `v_headroom` (module docstring). With `fit_exponents` (default: at
    ``weight_bits <= FIT_EXPONENTS_BITS``) every layer's weight exponent is the one of least weight quantization error
    (:func:`_least_error_exp`: the largest weights clip, the rest keep more levels) instead of the quantizer's
    no-clipping rule; either way the exponents are pinned, so the deployed graph quantizes as the model trained."""
    plan = build_plan(graph)
    options = {"weight_bits": int(weight_bits), "v_headroom": float(v_headroom)}
    fixed, _, _ = prepare_fixed(plan, {}, **options)
    quant = fixed.quant
    # One exponent per NIR node: its synapse processes (one per fan-in path) share the module's weight.
    by_node: dict[str, list] = {}
    for p in plan.processes.values():
        if p.kind in SYNAPSES and p.role == "node":
            by_node.setdefault(p.node, []).append(p)
    pinned = {name: int(q.exp) for name, q in quant.synapses.items()}
    fit = int(weight_bits) <= FIT_EXPONENTS_BITS if fit_exponents is None else bool(fit_exponents)
    changed = False
    for procs in by_node.values():
        top = max(pinned[p.name] for p in procs)
        best = _least_error_exp(procs, quant, top, int(weight_bits)) if fit else top
        if any(pinned[p.name] != best for p in procs):
            changed = True
            for p in procs:
                pinned[p.name] = best
    if changed:
        fixed, _, _ = prepare_fixed(plan, {}, **options, weight_exps=pinned)
        quant = fixed.quant
    weights: dict[str, WeightQuant] = {}
    inexact: list[str] = []
    for node_name, procs in by_node.items():
        path = _module_path(graph.nodes[node_name])
        if path is None:
            continue
        module = model.get_submodule(path)
        if not isinstance(getattr(module, "weight", None), nn.Parameter):
            continue
        node_w = np.asarray(graph.nodes[node_name].weight, dtype=np.float64)
        torch_w = module.weight.detach().double().cpu().numpy()
        top = max(np.abs(node_w).max(), 1e-300)
        # Per path: the plan's folds (1/tau, a Scale such as S-CMRL's alpha) over its mantissa unit.
        units = [np.abs(_weights(p)).max() / top / quant.synapses[p.name].step for p in procs]
        ref = int(np.argmin(units))
        p, q = procs[ref], quant.synapses[procs[ref].name]
        folds = _channel_folds(node_w, torch_w) * (units[ref] * q.step)
        lo, hi, step_q = lf.weight_mant_grid(q.sign_mode, q.num_weight_bits)
        # A path whose folds are rho times the reference path's gets mantissas rho * m: exact only if rho * m lies
        # on the grid, so the reference grid is made coarser by rho's denominator and narrower by rho.
        den, lo_r, hi_r = 1, lo, hi
        for u in units:
            rho = Fraction(float(u / units[ref])).limit_denominator(64)
            if abs(float(rho) - u / units[ref]) > 1e-9 * (u / units[ref]):
                inexact.append(node_name)  # no small ratio: that path's mantissas round on their own
                continue
            den = int(np.lcm(den, rho.denominator))
            lo_r, hi_r = max(lo_r, int(np.ceil(lo / float(rho)))), min(hi_r, int(np.floor(hi / float(rho))))
        grid = step_q * den
        weights[path] = WeightQuant(torch.as_tensor(q.step / folds, dtype=torch.float64),
                                    -(-lo_r // grid) * grid, hi_r // grid * grid, int(grid), int(q.exp))
    neurons: dict[str, NeuronQuant] = {}
    for p in plan.processes.values():
        if p.kind != "neuron" or p.role != "node" or not p.spiking:
            continue
        node = graph.nodes[p.node]
        path = _module_path(node)
        if path is None or not isinstance(model.get_submodule(path), MultiStepLIF):
            continue  # e.g. the Threshold of a spike max-pool: exact in float already
        n = quant.neurons[p.name]
        feeding = [c.src for c in fixed.connections if c.dst == p.name]
        feeding = [fixed.processes[src] for src in feeding]
        shifts = [quant.synapses[f.name].exp for f in feeding if f.kind in SYNAPSES]
        floor = len(feeding) == 1 and len(shifts) == 1 and shifts[0] < 0  # a_out = sum >> -exp floors
        axes = (node.metadata or {}).get("source_axes")
        bias_f = np.broadcast_to(np.asarray(p.params.get("bias", 0.0), dtype=np.float64), p.shape)
        bias_i = np.broadcast_to(np.asarray(n.bias_mant, dtype=np.float64) * 2.0**n.bias_exp, p.shape)
        if axes is not None:
            bias_f, bias_i = np.transpose(bias_f, tuple(axes)), np.transpose(bias_i, tuple(axes))
        neurons[path] = NeuronQuant(float(lf.state_scale(n.state_exp)), int(n.dv), int(n.du),
                                    int(n.vth_mant) << lf.VTH_SHIFT, float(p.params["dv"]),
                                    torch.tensor(np.ascontiguousarray(bias_f)),
                                    torch.tensor(np.ascontiguousarray(bias_i)), floor)
    modalities = getattr(model, "modalities", ("audio", "visual"))
    input_exps = tuple(int(quant.message_exps.get(plan.inputs[m], 0)) for m in modalities if m in plan.inputs)
    settings = {**options, "weight_exps": {k: int(v) for k, v in pinned.items()}, "inexact": sorted(set(inexact)),
                "exponent_rule": "least-error" if fit else "no-clipping"}
    return QATSpec(weights, neurons, input_exps, settings)


def spec_for_run(run_dir: str | os.PathLike, *, weight_bits: int, v_headroom: float = V_HEADROOM,
                 fit_exponents: bool | None = None) -> tuple[QATSpec, dict]:
    """``(spec, checkpoint)`` of the trained float run in `run_dir`."""
    model, ckpt = load_trained_model(run_dir)
    if ckpt["config"].get("qat", {}).get("spec"):
        raise ConfigError(f"{run_dir} is already a fixed-point fine-tuning run; --finetune needs the float run.")
    graph = export_model(model, export_config_for(ckpt, DEFAULT_DT_S))
    return build_spec(model, graph, weight_bits=weight_bits, v_headroom=v_headroom,
                      fit_exponents=fit_exponents), ckpt


def save_spec(spec: QATSpec, path: str | os.PathLike) -> Path:
    """Write `spec` atomically (``torch.save`` of its dict; ``snnav.training.loop.load_qat_spec`` reads it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(spec.to_dict(), tmp)
    return path


def finetuned_model(run_dir: str | os.PathLike, spec: QATSpec) -> tuple[nn.Module, dict]:
    """The fine-tuned model of `run_dir` with its fixed-point forward (`spec`) applied, weights on their grid."""
    model, ckpt = load_trained_model(run_dir)  # loads the latent weights into a plain model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    apply_qat(model, spec)
    load_plain_state_dict(model, state)
    return snap_weights(model).eval(), ckpt


def finetuned_graph(run_dir: str | os.PathLike, spec: QATSpec, dt_s: float = DEFAULT_DT_S, dtype: str = "float32"):
    """The deployed graph of a fine-tuned run: weights on their grid, ``metadata["quantizer"]`` pinned."""
    model, ckpt = finetuned_model(run_dir, spec)
    graph = export_model(model, export_config_for(ckpt, dt_s, dtype))
    graph.metadata["quantizer"] = {"weight_bits": int(spec.settings["weight_bits"]),  # what prepare_fixed reads
                                   "v_headroom": float(spec.settings["v_headroom"]),
                                   "weight_exps": dict(spec.settings["weight_exps"])}
    return graph


def export_finetuned(run_dir: str | os.PathLike, spec: QATSpec, out: str | os.PathLike,
                     dt_s: float = DEFAULT_DT_S) -> Path:
    """Write :func:`finetuned_graph` to `out` (atomically)."""
    out = Path(out)
    write_graph(out, finetuned_graph(run_dir, spec, dt_s))
    return out
