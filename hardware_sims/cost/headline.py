"""One row per target with everything the report's headline table needs (for the CLI and the report).

`headline_rows` returns, per target (each chip, the GPU measured or modelled at each batch size, a 45 nm dense
accelerator): energy per inference (dynamic / static / total, each ``{"lower", "value", "upper"}`` in joules),
time per inference and throughput (same bounds), cores and chips (chips only), whether it fits, whether the row is
measured or estimated, what is included and excluded, the sources, and notes.

45 nm dense accelerator (Lemaire et al. 2022's memory-access view, Horowitz 2014's 45 nm figures)::

    E = MACs x 4.6 pJ (32-bit float MAC)  +  weight reads  +  activation traffic (reads + writes) x 10 pJ / word
    weight reads: lower = every weight once per inference; value = once per step; upper = once per MAC (no reuse)
    static power and time are not modelled (no clock or area is assumed)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hardware_sims.cost.chip_cost import activity_from_counts, chip_cost
from hardware_sims.cost.gpu import (
    GPU,
    DenseWorkload,
    dense_workload,
    get_gpu,
    predict_gpu,
    read_measurements,
)
from hardware_sims.cost.mapping import map_plan

__all__ = ["headline_rows", "dense45_energy", "E_MAC_45NM_PJ", "E_SRAM_WORD_45NM_PJ"]

E_MAC_45NM_PJ = 4.6
"""32-bit float multiply (3.7 pJ) + add (0.9 pJ), 45 nm, 0.9 V: Horowitz, ISSCC 2014 (estimate)."""
E_SRAM_WORD_45NM_PJ = 10.0
"""A 32-bit word from a 32 KB SRAM: 20 pJ per 64-bit read (Horowitz, ISSCC 2014), halved (estimate)."""


def _b(lower: float, value: float, upper: float) -> dict[str, float]:
    return {"lower": float(lower), "value": float(value), "upper": float(upper)}


def dense45_energy(plan: Any, time_steps: int | None = None) -> dict[str, Any]:
    """Energy per inference of the plan as a dense network on a 45 nm accelerator with memory traffic."""
    T = int(time_steps or (plan.metadata or {}).get("time_steps") or 1)
    macs = weights = acts = 0.0
    for p in plan.processes.values():
        n = float(np.prod(p.shape))
        if p.kind in ("dense", "sparse", "conv"):
            if p.kind == "dense":
                syn = stored = float(np.asarray(p.params["weights"]).size)
            elif p.kind == "sparse":
                syn = stored = float(p.params["weights"].nnz)
            else:
                w = np.asarray(p.params["weight"])
                syn, stored = n * float(np.prod(w.shape[1:])), float(w.size)
            macs += syn * T
            weights += stored
            acts += (float(np.prod(p.in_shape)) if p.in_shape else 0.0) * T + n * T
        elif p.kind in ("neuron", "extension"):
            acts += 4 * n * T  # state read + write, input read, output write
    compute = macs * E_MAC_45NM_PJ
    act_e = acts * E_SRAM_WORD_45NM_PJ
    w = (weights * E_SRAM_WORD_45NM_PJ, weights * T * E_SRAM_WORD_45NM_PJ, macs * E_SRAM_WORD_45NM_PJ)
    dyn = _b(*((compute + act_e + x) * 1e-12 for x in w))
    return {"macs": macs, "weights": weights, "activation_words": acts, "energy_dynamic_j": dyn,
            "by_component_j": {"compute": compute * 1e-12, "activations": act_e * 1e-12,
                               "weights": _b(*(x * 1e-12 for x in w))}}


def headline_rows(plan: Any, counts: Any, *, chips: tuple[str, ...] = ("loihi1", "loihi2"),
                  weight_bits: int = 8, gpu: GPU | str = "h100", gpu_measurement: str | None = None,
                  gpu_target: str = "torch", batches: tuple[int, ...] = (1, 64),
                  workload: DenseWorkload | None = None) -> list[dict[str, Any]]:
    """The headline table: one dict per target (module docstring).

    Args:
        plan: the compiled plan of the model (float or fixed).
        counts: its ``ActivityCounts`` (from ``snnav simulate``).
        chips: chip names or JSON paths.
        weight_bits: quantized weight width for the mappings.
        gpu: a GPU description (calibrate it first with ``calibrate_gpu`` for a modelled row) or a name.
        gpu_measurement: a ``scripts/measure_gpu.py`` file of this model: measured GPU rows (else modelled rows).
        gpu_target: which measured target ("torch" or "nir-interpreter").
        batches: GPU batch sizes.
    """
    rows: list[dict[str, Any]] = []
    T = counts.run.time_steps
    for chip in chips:
        m = map_plan(plan, chip, weight_bits=weight_bits, time_steps=T)
        act, ext = activity_from_counts(m, counts)
        c = chip_cost(m, act, ext)
        rows.append({"target": m.chip.name, "kind": "estimate", "batch": 1,
                     "energy_dynamic_j": dict(c.energy_dynamic_j), "energy_static_j": dict(c.energy_static_j),
                     "energy_total_j": dict(c.energy_total_j), "time_s": dict(c.latency_s),
                     "throughput_per_s": dict(c.throughput_per_s), "cores": c.cores, "chips": c.chips,
                     "fits": c.fits, "violations": [v.text() for v in m.violations],
                     "by_component_j": {k: dict(v) for k, v in c.by_component_j.items()},
                     "by_layer_j": dict(c.by_layer_j), "slowest_layer": c.slowest,
                     "steps_per_sample": c.steps_per_sample,
                     "included": list(c.included), "excluded": list(c.excluded), "sources": dict(c.sources),
                     "notes": list(c.notes) + list(m.notes)})
    gpu = get_gpu(gpu)
    if gpu_measurement is not None:
        for ms in sorted((x for x in read_measurements(gpu_measurement) if x.target == gpu_target),
                         key=lambda x: x.batch):
            static = ms.energy_j_per_sample - ms.dynamic_energy_j_per_sample
            rows.append({"target": f"{ms.gpu_name} ({gpu_target})", "kind": "measured", "batch": ms.batch,
                         "energy_dynamic_j": _b(*[ms.dynamic_energy_j_per_sample] * 3),
                         "energy_static_j": _b(*[static] * 3), "energy_total_j": _b(*[ms.energy_j_per_sample] * 3),
                         "time_s": _b(*[ms.wall_s_per_sample] * 3),
                         "throughput_per_s": _b(*[1 / ms.wall_s_per_sample] * 3), "cores": None, "chips": None,
                         "fits": True, "violations": [],
                         "included": ["whole board energy (NVML)", "idle power over the window (static)"],
                         "excluded": ["host CPU", "data transfer to the GPU"],
                         "sources": {"measurement": ms.path}, "notes": []})
    else:
        wl = workload or dense_workload(plan, gpu)
        for b in batches:
            p = predict_gpu(wl, gpu, b)
            rows.append({"target": f"{gpu.name} (model)", "kind": "estimate", "batch": b,
                         "energy_dynamic_j": _b(*[p.dynamic_per_sample_j] * 3),
                         "energy_static_j": _b(*[p.idle_per_sample_j] * 3),
                         "energy_total_j": _b(*[p.energy_per_sample_j] * 3), "time_s": _b(*[p.time_per_sample_s] * 3),
                         "throughput_per_s": _b(*[p.throughput_per_s] * 3), "cores": None, "chips": None,
                         "fits": True, "violations": [],
                         "by_component_j": {bound: dict(p.by_component_j) for bound in ("lower", "value", "upper")},
                         "bound": p.bound,
                         "included": ["launch overhead", "roofline compute and memory time", "idle power x time",
                                      "dynamic energy per kernel, byte and FLOP"],
                         "excluded": ["host CPU", "data transfer to the GPU"],
                         "sources": {k: gpu.cite(k) for k in ("peak_flops", "memory_bandwidth", "idle_power",
                                                              "t_launch", "e_byte")},
                         "notes": [f"calibrated from {gpu.calibrated_from}" if gpu.calibrated_from else
                                   "NOT calibrated: launch time and energies per kernel/byte are assumptions"]})
    d = dense45_energy(plan, T)
    rows.append({"target": "45 nm dense accelerator", "kind": "estimate", "batch": 1,
                 "energy_dynamic_j": d["energy_dynamic_j"], "energy_static_j": _b(0, 0, 0),
                 "energy_total_j": d["energy_dynamic_j"], "time_s": None, "throughput_per_s": None, "cores": None,
                 "chips": None, "fits": True, "violations": [],
                 "by_component_j": {bound: {"compute": d["by_component_j"]["compute"],
                                            "memory (activations)": d["by_component_j"]["activations"],
                                            "memory (weights)": d["by_component_j"]["weights"][bound]}
                                    for bound in ("lower", "value", "upper")},
                 "included": ["32-bit float MACs", "weight reads (once per inference / step / MAC)",
                              "activation and state reads and writes (SRAM)"],
                 "excluded": ["static power", "time", "DRAM", "control"],
                 "sources": {"energy": "Horowitz, ISSCC 2014 (45 nm, 0.9 V) [estimate]; memory-access model after "
                                       "Lemaire et al., ICONIP 2022"},
                 "notes": []})
    return rows
