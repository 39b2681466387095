"""The same network as a dense workload on a GPU: FLOPs, bytes and kernels, a roofline with launch overhead,
energy = idle power x time + dynamic (per kernel, per byte, per FLOP), calibrated from NVML measurements.

Dense workload of a plan (per sample unless said; T steps; ``b`` = bytes per value)::

    linear node (conv, dense, sparse)  FLOPs 2 x synapses x T;  bytes (in + out) x T x b;  weights once per call
    stateful neuron (LIF, CubaLIF, IF) FLOPs f_n x n x T;       bytes state_values x n x T x b;
                                       kernels_per_stateful_neuron_step x T per call (a loop over steps)
    stateless node (Threshold, I, delay)  bytes 2 n T b;        kernels_per_stateless_node per call
    extension (attention, fusion)      FLOPs 4 x out x N x T (dense products over the last axis N);
                                       kernels_per_extension_step x T per call

A call of ``B`` samples::

    t_host   = K x t_launch                                   (Python dispatch + launch, independent of B)
    t_device = max(B x FLOPs / peak_flops, (weights + B x bytes) / memory_bandwidth)   (roofline, peak figures)
    t_call   = max(t_host, t_device)                          (launches overlap with device work)
    E_call   = idle_power x t_call + e_kernel K + e_byte (weights + B bytes) + e_flop B FLOPs
    per sample: t_call / B, E_call / B; dynamic = E_call - idle_power t_call

`calibrate_gpu` fits ``t_launch`` (batch-1 time / K: batch 1 is launch-bound), ``e_kernel`` and ``e_byte``
(least squares on the dynamic energy per call at each measured batch size) on one model's measurement file
(``scripts/measure_gpu.py``'s format); ``idle_power`` comes from the same file. `predict_gpu` applies them to any
workload.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping as TMapping
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from hardware_sims.cost.chip import Description, Figure, parse_figures, read_header, read_json_file
from hardware_sims.cost.errors import CostModelError

__all__ = ["GPU", "GPU_FIELDS", "DenseWorkload", "GPUPrediction", "Measurement", "Calibration", "get_gpu",
           "load_gpu", "gpu_from_dict", "dense_workload", "predict_gpu", "read_measurements", "calibrate_gpu"]

GPU_FORMAT = "snnav.gpu"
GPU_FIELDS: dict[str, str] = {
    "peak_flops": "FLOP/s", "memory_bandwidth": "B/s", "board_power_max": "W", "idle_power": "W",
    "bytes_per_value": "bytes", "kernels_per_stateful_neuron_step": "kernels", "kernels_per_stateless_node": "kernels",
    "kernels_per_linear_node": "kernels", "kernels_per_extension_step": "kernels",
    "state_values_per_neuron_update": "values", "flops_per_neuron_update": "FLOP",
    "t_launch": "s", "e_kernel": "J", "e_byte": "J/B", "e_flop": "J/FLOP",
}
BUILTIN_GPUS = ("h100", "h100-calibrated")
"""``h100``: datasheet figures and assumptions; ``h100-calibrated``: the same with the launch time and energies fitted
to NVML measurements of S-CMRL (written by ``scripts/validate_gpu_model.py --write-calibration``)."""
STATEFUL = ("LIF", "CubaLIF", "IF", "CubaLI", "LI")


@dataclass(frozen=True)
class GPU(Description):
    """A validated GPU description; ``calibrated_from`` names the measurement file a calibrated one was fitted to."""

    FORMAT = GPU_FORMAT

    calibrated_from: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form `gpu_from_dict` reads (a calibrated GPU keeps the file it was calibrated from)."""
        out = super().to_dict()
        if self.calibrated_from:
            out["calibrated_from"] = self.calibrated_from
        return out


def gpu_from_dict(data: TMapping[str, Any], label: str = "gpu") -> GPU:
    extra = {k: v for k, v in data.items() if k != "calibrated_from"} if isinstance(data, TMapping) else data
    name, description, sources = read_header(label, extra, GPU_FORMAT)
    calibrated = data.get("calibrated_from")
    if calibrated is not None and not isinstance(calibrated, str):
        raise CostModelError(f"{label}: calibrated_from: expected the measurement file's path, found {calibrated!r}")
    return GPU(name, description, sources, parse_figures(label, data["figures"], GPU_FIELDS, sources), calibrated)


def load_gpu(path: str | os.PathLike) -> GPU:
    path = Path(path)
    return gpu_from_dict(read_json_file(path), label=path.name)


def get_gpu(name_or_path: str | os.PathLike | GPU) -> GPU:
    if isinstance(name_or_path, GPU):
        return name_or_path
    text = os.fspath(name_or_path)
    if text in BUILTIN_GPUS:
        ref = resources.files("hardware_sims.cost").joinpath("gpus", f"{text}.json")
        return gpu_from_dict(json.loads(ref.read_text(encoding="utf-8")), label=f"{text}.json")
    if text.endswith(".json") or os.sep in text:
        return load_gpu(text)
    raise CostModelError(f"gpu {text!r}: not a built-in GPU ({', '.join(BUILTIN_GPUS)}) nor a .json path")


@dataclass(frozen=True)
class DenseWorkload:
    """A network run densely: FLOPs and activation bytes per sample, weight bytes and kernels per call."""

    name: str
    flops_per_sample: float
    activation_bytes_per_sample: float
    weight_bytes: float
    kernels_per_call: float
    by_layer: TMapping[str, TMapping[str, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "flops_per_sample": self.flops_per_sample,
                "activation_bytes_per_sample": self.activation_bytes_per_sample, "weight_bytes": self.weight_bytes,
                "kernels_per_call": self.kernels_per_call}


def _synapses(p) -> tuple[float, float]:
    """(synapses = MACs per step, stored weights)."""
    if p.kind == "dense":
        w = np.asarray(p.params["weights"])
        return float(w.size), float(w.size)
    if p.kind == "sparse":
        nnz = float(p.params["weights"].nnz)
        return nnz, nnz
    w = np.asarray(p.params["weight"])
    return float(np.prod(p.shape)) * float(np.prod(w.shape[1:])), float(w.size)


def dense_workload(plan: Any, gpu: GPU | str = "h100", *, time_steps: int | None = None,
                   name: str | None = None) -> DenseWorkload:
    """FLOPs, bytes and kernels of a plan run densely on a GPU (module docstring)."""
    gpu = get_gpu(gpu)
    T = int(time_steps or (plan.metadata or {}).get("time_steps") or 1)
    b = gpu["bytes_per_value"]
    flops = act = wbytes = kernels = 0.0
    by_layer: dict[str, dict[str, float]] = {}
    linear_nodes: set[str] = set()
    for p in plan.processes.values():
        n = float(np.prod(p.shape))
        f = a = w = k = 0.0
        if p.kind in ("dense", "sparse", "conv"):
            syn, stored = _synapses(p)
            f, w = 2 * syn * T, stored * b
            a = (float(np.prod(p.in_shape)) if p.in_shape else 0.0) * T * b + n * T * b
            if p.node not in linear_nodes and p.role == "node":
                linear_nodes.add(p.node)
                k = gpu["kernels_per_linear_node"]
        elif p.kind == "neuron":
            if p.params.get("nir_type") in STATEFUL:
                f = gpu["flops_per_neuron_update"] * n * T
                a = gpu["state_values_per_neuron_update"] * n * T * b
                k = gpu["kernels_per_stateful_neuron_step"] * T
            else:
                f, a, k = n * T, 2 * n * T * b, gpu["kernels_per_stateless_node"]
        elif p.kind == "extension":
            last = float(p.shape[-1]) if p.shape else 1.0
            f = 4 * n * last * T
            a = 4 * n * T * b
            k = gpu["kernels_per_extension_step"] * T
        elif p.kind == "delay" and p.role != "align":
            a, k = 2 * n * T * b, gpu["kernels_per_stateless_node"]
        if f or a or w or k:
            by_layer[p.name] = {"flops": f, "bytes": a, "weight_bytes": w, "kernels": k}
        flops, act, wbytes, kernels = flops + f, act + a, wbytes + w, kernels + k
    return DenseWorkload(name or str((plan.metadata or {}).get("model", "network")), flops, act, wbytes, kernels,
                         by_layer)


@dataclass(frozen=True)
class GPUPrediction:
    """Time and energy per sample at one batch size (an estimate from the roofline + launch model)."""

    gpu: str
    workload: str
    batch: int
    time_per_call_s: float
    host_s: float
    device_s: float
    bound: str
    time_per_sample_s: float
    throughput_per_s: float
    energy_per_sample_j: float
    dynamic_per_sample_j: float
    idle_per_sample_j: float
    by_component_j: TMapping[str, float]
    calibrated_from: str | None
    kind: str = "estimate"

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, TMapping) else v) for k, v in self.__dict__.items()}


def predict_gpu(workload: DenseWorkload, gpu: GPU | str = "h100", batch: int = 1) -> GPUPrediction:
    """Roofline time with launch overhead and energy per sample of `workload` at `batch` (module docstring)."""
    gpu = get_gpu(gpu)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch must be an int >= 1; got {batch!r}")
    K = workload.kernels_per_call
    host = K * gpu["t_launch"]
    flops = batch * workload.flops_per_sample
    moved = workload.weight_bytes + batch * workload.activation_bytes_per_sample
    device = max(flops / gpu["peak_flops"], moved / gpu["memory_bandwidth"])
    t = max(host, device)
    comp = {"idle": gpu["idle_power"] * t, "kernels": gpu["e_kernel"] * K, "memory": gpu["e_byte"] * moved,
            "compute": gpu["e_flop"] * flops}
    total = sum(comp.values())
    return GPUPrediction(gpu.name, workload.name, batch, t, host, device, "host (launch)" if host >= device else
                         "device (roofline)", t / batch, batch / t, total / batch, (total - comp["idle"]) / batch,
                         comp["idle"] / batch, {k: v / batch for k, v in comp.items()}, gpu.calibrated_from)


@dataclass(frozen=True)
class Measurement:
    """One NVML measurement window (``scripts/measure_gpu.py``): per-sample time, total and dynamic energy."""

    model: str
    target: str
    batch: int
    wall_s_per_sample: float
    energy_j_per_sample: float
    dynamic_energy_j_per_sample: float
    idle_power_w: float
    gpu_name: str
    path: str


def read_measurements(path: str | os.PathLike) -> list[Measurement]:
    """Every measurement of a ``snnav.gpu-measurement`` file (raises `CostModelError` naming a bad field)."""
    path = Path(path)
    data = read_json_file(path)
    if not isinstance(data, dict) or data.get("format") != "snnav.gpu-measurement":
        raise CostModelError(f"{path}: format: expected 'snnav.gpu-measurement'")
    for key in ("hardware", "run", "measurements"):
        if key not in data:
            raise CostModelError(f"{path}: {key}: missing")
    out = []
    for i, m in enumerate(data["measurements"]):
        for key in ("target", "batch_size", "wall_s_per_sample", "energy_j_per_sample", "dynamic_energy_j_per_sample",
                    "idle_power_w"):
            if key not in m:
                raise CostModelError(f"{path}: measurements[{i}].{key}: missing")
            if key != "target" and (isinstance(m[key], bool) or not isinstance(m[key], (int, float))
                                    or not math.isfinite(m[key])):
                raise CostModelError(f"{path}: measurements[{i}].{key}: expected a number, found {m[key]!r}")
        out.append(Measurement(str(data["run"].get("model_name", "?")), str(m["target"]), int(m["batch_size"]),
                               float(m["wall_s_per_sample"]), float(m["energy_j_per_sample"]),
                               float(m["dynamic_energy_j_per_sample"]), float(m["idle_power_w"]),
                               str(data["hardware"].get("gpu_name", "?")), str(path)))
    return out


@dataclass(frozen=True)
class Calibration:
    gpu: GPU
    residuals: TMapping[int, TMapping[str, float]]
    fitted: TMapping[str, float]


def calibrate_gpu(gpu: GPU | str, workload: DenseWorkload, measurements: list[Measurement], *,
                  target: str = "torch") -> Calibration:
    """Fit ``t_launch``, ``e_kernel``, ``e_byte`` and take ``idle_power`` from one model's measurements.

    Raises:
        CostModelError: no measurement of `target`, or none at batch 1.
    """
    gpu = get_gpu(gpu)
    ms = sorted((m for m in measurements if m.target == target), key=lambda m: m.batch)
    if not ms:
        raise CostModelError(f"no measurement of target {target!r} (have {sorted({m.target for m in measurements})})")
    if ms[0].model != workload.name:
        warnings.warn(f"calibrating the workload of model {workload.name!r} with measurements of model "
                      f"{ms[0].model!r} ({ms[0].path})", stacklevel=2)
    b1 = [m for m in ms if m.batch == 1]
    if not b1:
        raise CostModelError(f"{ms[0].path}: calibration needs a batch-1 measurement of {target!r}")
    K = workload.kernels_per_call
    t_launch = b1[0].wall_s_per_sample / K
    idle = float(np.mean([m.idle_power_w for m in ms]))
    # dynamic energy per call = e_kernel K + e_byte bytes_call  (+ e_flop FLOPs, fixed) -> least squares, >= 0
    rows, rhs = [], []
    for m in ms:
        moved = workload.weight_bytes + m.batch * workload.activation_bytes_per_sample
        rows.append([K, moved])
        rhs.append(m.dynamic_energy_j_per_sample * m.batch - gpu["e_flop"] * m.batch * workload.flops_per_sample)
    sol, *_ = np.linalg.lstsq(np.asarray(rows), np.asarray(rhs), rcond=None)
    e_kernel, e_byte = (max(float(x), 0.0) for x in sol)
    where = f"fitted to {Path(ms[0].path).name} ({ms[0].model}, target {target}, batches {[m.batch for m in ms]})"

    def fig(name: str, value: float) -> Figure:
        return Figure(name, value, GPU_FIELDS[name], "measured", "calibration", where,
                      "calibrated by hardware_sims.cost.gpu.calibrate_gpu", value, value)

    figures = dict(gpu.figures)
    figures.update({"t_launch": fig("t_launch", t_launch), "e_kernel": fig("e_kernel", e_kernel),
                    "e_byte": fig("e_byte", e_byte), "idle_power": fig("idle_power", idle)})
    cal = replace(gpu, figures=figures, sources={**gpu.sources, "calibration": ms[0].path},
                  calibrated_from=ms[0].path)
    residuals = {}
    for m in ms:
        p = predict_gpu(workload, cal, m.batch)
        residuals[m.batch] = {"time": p.time_per_sample_s / m.wall_s_per_sample - 1,
                              "energy": p.energy_per_sample_j / m.energy_j_per_sample - 1,
                              "dynamic": p.dynamic_per_sample_j / m.dynamic_energy_j_per_sample - 1}
    return Calibration(cal, residuals, {"t_launch": t_launch, "e_kernel": e_kernel, "e_byte": e_byte,
                                        "idle_power": idle})
