"""Time and energy per inference of a mapped network on a neuromorphic chip, with lower and upper bounds.

Inputs: a `Mapping` (``map_plan``) and the activity of one inference per layer (`LayerActivity`, from
``ActivityCounts`` with `activity_from_counts`, or given directly, e.g. from a paper). Formulas (per inference;
``S`` = steps per sample = T + the plan's pipeline latency; every compartment is updated every step)::

    synops_L     = binary synaptic events into L + graded events x g          (g = 1 with graded spikes; else
                                                                               1 / 1 / weight_bits for lower /
                                                                               value / upper: a multi-spike code)
    updates_L    = compartments_L x S;  active_L from the run, idle_L = updates_L - active_L
    messages_r   = spikes of r's source x destination cores reached           (one per core, Loihi multicast)
    E_dyn        = sum_L synops_L e_syn + active_L e_act + idle_L e_idle
                 + sum_r messages_r (e_spike + hops_ew_r e_hop_ew + hops_ns_r e_hop_ns)  + E_ext
    E_ext        = ext_ops x e_ext_op                      (programmable neurons: Loihi 2, lower and value)
                 = ext_ops / x86_ops_per_s x x86_power     (embedded cores: Loihi 1 always; Loihi 2 upper)
    t_L (a step) = synops_L/(T cores_L) t_syn + compartments_L/cores_L (f t_act + (1-f) t_idle)
                 + spikes_L/(T cores_L) x reached_L t_spike,       f = active_L / updates_L
    t_ext        = ext_ops/(T x86_ops_per_s embedded_cores)   or   ext_ops/(T cores_ext) (t_syn + t_act)
    t_step       = max(t_L, t_ext) + barrier(tiles),  barrier = t_bmin + (t_bmax - t_bmin)(min(tiles, 32) - 1)/31
                                                                 + (chips - 1) t_bmax
    latency      = S x t_step;   throughput = 1 / latency (samples one after another, as snnav runs them)
    E_static     = p_static x chips x latency     (lower: p_static_lower x cores/cores_per_chip x latency)

Memory traffic: on Loihi every operation is local to a core's SRAM, and Davies et al.'s per-operation figures are
core-level energies that include it (the synapse read of a synaptic op, the state read/write of a neuron update);
routing is priced per message and hop. The three bounds use each figure's ``lower``, ``value`` and ``upper``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping as TMapping
from dataclasses import dataclass, field
from typing import Any

from hardware_sims.cost.mapping import Mapping

__all__ = ["LayerActivity", "ChipCost", "activity_from_counts", "chip_cost", "BOUNDS", "INCLUDED", "EXCLUDED"]

BOUNDS = ("lower", "value", "upper")
INCLUDED = ("synaptic ops (incl. the synapse read from core SRAM)",
            "neuron updates of every compartment every step (incl. state read/write)",
            "spike messages per destination core and tile hops",
            "barrier synchronisation per step", "static power x chips x time",
            "extension nodes on programmable neurons or embedded cores (assumption, bounded)")
EXCLUDED = ("host I/O and input encoding off chip", "chip-to-chip link energy (latency only: one barrier per chip)",
            "learning", "the embedded cores' management work", "board power (regulators, FPGA, USB)")


@dataclass(frozen=True)
class LayerActivity:
    """What one inference does in a layer (means per sample): binary synaptic events into it, graded events into
    it (graded input x weight), spikes it sends, compartment updates with input or a spike."""

    synaptic_events: float = 0.0
    graded_events: float = 0.0
    spikes: float = 0.0
    active_updates: float = 0.0


@dataclass(frozen=True)
class ChipCost:
    """Energy and time per inference on a chip, each a dict of bound -> value (`BOUNDS`).

    Attributes:
        energy_dynamic_j / energy_static_j / energy_total_j / latency_s / throughput_per_s: by bound.
        step_s: per-step latency by bound; slowest: the layer that sets it (value bound).
        by_component_j: bound -> {synaptic, neuron, routing, extension, static}.
        by_layer_j: value bound, dynamic energy per layer (extension nodes included).
        cores, chips, fits: from the mapping; notes: assumptions made here.
    """

    chip: str
    energy_dynamic_j: TMapping[str, float]
    energy_static_j: TMapping[str, float]
    energy_total_j: TMapping[str, float]
    latency_s: TMapping[str, float]
    throughput_per_s: TMapping[str, float]
    step_s: TMapping[str, float]
    slowest: str
    by_component_j: TMapping[str, TMapping[str, float]]
    by_layer_j: TMapping[str, float]
    cores: int
    chips: int
    fits: bool
    steps_per_sample: int
    notes: tuple[str, ...] = ()
    kind: str = "estimate"
    included: tuple[str, ...] = INCLUDED
    excluded: tuple[str, ...] = EXCLUDED
    sources: TMapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, TMapping) else list(v) if isinstance(v, tuple) else v)
                for k, v in self.__dict__.items()} | {
            "by_component_j": {b: dict(v) for b, v in self.by_component_j.items()}}


def activity_from_counts(mapping: Mapping, counts: Any) -> tuple[dict[str, LayerActivity], dict[str, float]]:
    """Per-layer activity and per-extension operations from ``hardware_sims.counts.ActivityCounts``.

    A linear NIR node's events go to the layers that store its synapses, split by their share of its synapses.
    """
    nodes = counts.nodes
    out: dict[str, LayerActivity] = {}
    for name, layer in mapping.layers.items():
        ev = gr = 0.0
        for node, share in layer.synapse_nodes.items():
            n = nodes.get(node)
            if n is not None:
                ev += share * n.synaptic_events
                gr += share * n.dense_macs
        own = nodes.get(layer.node)
        out[name] = LayerActivity(ev, gr, own.spikes if own else 0.0, own.neuron_updates_active if own else 0.0)
    ext = {name: (nodes[e.node].ext_acs + nodes[e.node].ext_macs) if e.node in nodes else 0.0
           for name, e in mapping.extensions.items()}
    return out, ext


def _barrier(chip, tiles: int, chips: int, bound: str) -> float:
    lo, hi = chip["t_barrier_min"], chip["t_barrier_max"]
    n = max(chip["barrier_tiles_max"], 1)
    frac = (min(tiles, n) - 1) / max(n - 1, 1)
    return (lo + (hi - lo) * frac + (chips - 1) * hi) * 1e-9


def _balance(mapping: Mapping, work: dict[str, float]) -> dict[str, int]:
    """Cores per layer after spreading the spare cores of the chips already used over the slowest layers.

    ``work`` is a layer's per-step time on one core (its time on ``c`` cores is ``work / c``). The chips are paid
    for in static power whether their cores work or not, so a compiler spreads the busiest layers over them; each
    spare core goes to the layer whose time it shortens most (greedy, which is optimal for ``work / c``).
    """
    cores = {name: layer.cores for name, layer in mapping.layers.items()}
    cores.update({name: max(ext.cores, 1) for name, ext in mapping.extensions.items() if name in work})
    spare = mapping.chips * int(mapping.chip["cores_per_chip"]) - mapping.cores
    limit = {name: layer.compartments for name, layer in mapping.layers.items()}  # one neuron per core at most
    heap = [(-work[n] / cores[n], n) for n in cores if work.get(n, 0.0) > 0]
    heapq.heapify(heap)
    while spare > 0 and heap:
        _, name = heapq.heappop(heap)
        if cores[name] >= limit.get(name, cores[name] + spare):
            continue
        cores[name] += 1
        spare -= 1
        heapq.heappush(heap, (-work[name] / cores[name], name))
    return cores


def chip_cost(mapping: Mapping, activity: TMapping[str, LayerActivity], ext_ops: TMapping[str, float] | None = None,
              *, balance: bool = True) -> ChipCost:
    """Energy (dynamic, static, total) and time per inference, with bounds (module docstring for the formulas).

    Args:
        mapping: the placement (``map_plan``).
        activity: layer name -> `LayerActivity` (layers missing here are idle).
        ext_ops: extension process name -> operations per inference (products and sums; COUNTS.md).
        balance: spread the spare cores of the chips the mapping needs over the slowest layers (`_balance`), as a
            compiler would; without it every layer runs on the fewest cores that hold it.
    """
    chip = mapping.chip
    ext_ops = dict(ext_ops or {})
    T = max(mapping.time_steps, 1)
    S = mapping.steps_per_sample
    reached_out: dict[str, float] = {}
    for r in mapping.routes:
        reached_out[r.src] = reached_out.get(r.src, 0.0) + r.dst_cores_reached
    graded_chip = chip["graded_spikes"] >= 0.5
    programmable = chip["programmable_neurons"] >= 0.5
    cores_of = {name: layer.cores for name, layer in mapping.layers.items()}
    cores_of.update({name: max(ext.cores, 1) for name, ext in mapping.extensions.items()})
    if balance:
        work = {}
        for name, layer in mapping.layers.items():
            a = activity.get(name, LayerActivity())
            updates = layer.compartments * S
            frac = min(a.active_updates, updates) / updates if updates else 0.0
            work[name] = ((a.synaptic_events + a.graded_events) / T * chip["t_synaptic_op"]
                          + layer.compartments * (frac * chip["t_neuron_update_active"]
                                                  + (1 - frac) * chip["t_neuron_update_idle"])
                          + a.spikes / T * reached_out.get(name, 0.0) * chip["t_spike_within_tile"])
        if programmable:
            for name in mapping.extensions:
                work[name] = ext_ops.get(name, 0.0) / T * (chip["t_synaptic_op"] + chip["t_neuron_update_active"])
        cores_of = _balance(mapping, work)
    res: dict[str, dict[str, float]] = {}
    by_layer: dict[str, float] = {}
    slowest = ""
    notes: list[str] = []
    for bound in BOUNDS:
        def f(name: str, bound: str = bound) -> float:
            return {"lower": chip.lo, "value": lambda n: chip[n], "upper": chip.hi}[bound](name)

        g = 1.0 if graded_chip else {"lower": 1.0, "value": 1.0, "upper": float(mapping.weight_bits)}[bound]
        comp = {"synaptic": 0.0, "neuron": 0.0, "routing": 0.0, "extension": 0.0}
        t_max, who = 0.0, ""
        for name, layer in mapping.layers.items():
            a = activity.get(name, LayerActivity())
            synops = a.synaptic_events + a.graded_events * g
            updates = layer.compartments * S
            active = min(a.active_updates, updates)
            e_syn = synops * f("e_synaptic_op")
            e_upd = active * f("e_neuron_update_active") + (updates - active) * f("e_neuron_update_idle")
            comp["synaptic"] += e_syn
            comp["neuron"] += e_upd
            frac = active / updates if updates else 0.0
            c = cores_of[name]
            t = (synops / T / c * f("t_synaptic_op")
                 + layer.compartments / c * (frac * f("t_neuron_update_active")
                                             + (1 - frac) * f("t_neuron_update_idle"))
                 + a.spikes / T / c * reached_out.get(name, 0.0) * f("t_spike_within_tile")) * 1e-9
            if t > t_max:
                t_max, who = t, name
            if bound == "value":
                by_layer[name] = (e_syn + e_upd) * 1e-12
        for r in mapping.routes:
            src = activity.get(r.src)
            if src is None:
                continue
            msgs = src.spikes * r.dst_cores_reached
            e = msgs * (f("e_spike_within_tile") + r.hops_ew * f("e_hop_ew") + r.hops_ns * f("e_hop_ns"))
            comp["routing"] += e
            if bound == "value":
                by_layer[r.dst] = by_layer.get(r.dst, 0.0) + e * 1e-12
        for name, ext in mapping.extensions.items():
            ops = ext_ops.get(name, 0.0)
            on_neurons = programmable and bound != "upper"
            if on_neurons:
                e = ops * f("e_ext_op")
                t = ops / T / cores_of[name] * (f("t_synaptic_op") + f("t_neuron_update_active")) * 1e-9
            else:
                # embedded cores: the slowest rate and highest power for the upper bound, the reverse for lower
                rate = {"lower": chip.hi, "value": lambda n: chip[n], "upper": chip.lo}[bound]("x86_ops_per_s")
                power = f("x86_power")
                e = ops / rate * power * 1e12
                t = ops / T / (rate * max(chip["embedded_cores"], 1))
            comp["extension"] += e
            if bound == "value":
                by_layer[name] = e * 1e-12
            if t > t_max:
                t_max, who = t, name
        step = t_max + _barrier(chip, mapping.tiles, mapping.chips, bound)
        latency = S * step
        static_w = f("p_static_chip") * (mapping.chips if bound != "lower" else
                                         sum(cores_of.values()) / chip["cores_per_chip"])
        dyn = sum(comp.values()) * 1e-12
        stat = static_w * latency
        res[bound] = {"dyn": dyn, "static": stat, "latency": latency, "step": step,
                      **{k: v * 1e-12 for k, v in comp.items()}}
        if bound == "value":
            slowest = who
    if any(layer.graded_input for layer in mapping.layers.values()) and not graded_chip:
        notes.append(f"graded inputs priced at 1 (lower, value) to {mapping.weight_bits} (upper) synaptic ops per "
                     "event: a multi-spike code (assumption)")
    used = sum(cores_of.values())
    if balance and used > mapping.cores:
        notes.append(f"load balanced: {used - mapping.cores} spare cores of the {mapping.chips} chip(s) spread over the "
                     "slowest layers (as a compiler would; the extra destination cores' spike messages are not "
                     "re-priced)")
    if mapping.extensions:
        notes.append("extension nodes: " + ("programmable product neurons (lower, value) or the embedded x86 cores "
                                            "(upper)" if programmable else "the embedded x86 cores")
                     + "; both are assumptions (no published figure)")
    total = {b: res[b]["dyn"] + res[b]["static"] for b in BOUNDS}
    return ChipCost(
        chip=chip.name,
        energy_dynamic_j={b: res[b]["dyn"] for b in BOUNDS},
        energy_static_j={b: res[b]["static"] for b in BOUNDS},
        energy_total_j=total,
        latency_s={b: res[b]["latency"] for b in BOUNDS},
        throughput_per_s={b: 1.0 / res[b]["latency"] if res[b]["latency"] else math.inf for b in BOUNDS},
        step_s={b: res[b]["step"] for b in BOUNDS},
        slowest=slowest,
        by_component_j={b: {k: res[b][k] for k in ("synaptic", "neuron", "routing", "extension", "static")}
                        for b in BOUNDS},
        by_layer_j=by_layer, cores=sum(cores_of.values()), chips=mapping.chips, fits=mapping.fits, steps_per_sample=S,
        notes=tuple(notes),
        sources={k: chip.cite(k) for k in ("e_synaptic_op", "e_neuron_update_active", "t_synaptic_op",
                                          "t_barrier_max", "p_static_chip", "e_ext_op", "x86_ops_per_s")})
