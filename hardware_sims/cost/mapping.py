"""Place a compiled plan onto a chip's cores: compartments, synaptic memory, fan-in/fan-out axons, cores, chips.

A **layer** is one neuron population of the plan (a ``neuron`` process: one compartment per element) together with
the synapse processes that feed it: on Loihi a synapse is stored in the core of its *destination* neuron. The
number of cores of a layer is the smallest number that satisfies, per core (neurons split in contiguous blocks):

* compartments: ``ceil(n / compartments_per_core)``;
* synaptic memory: synapses x (weight bits + the format's overhead bits) <= ``synaptic_memory_per_core``
  (convolutions on a chip with weight sharing store their kernel once per core instead);
* fan-in: the distinct presynaptic axons the core's neurons read <= ``fan_in_axons_per_core`` (exact from the
  weights for dense and sparse layers; from the receptive fields for convolutions). A single neuron whose fan-in
  exceeds the limit cannot be placed: a violation, with the amount.

Then, per source layer, fan-out: neurons per core x destination cores each neuron reaches <=
``fan_out_axons_per_core`` (a violation otherwise). Cores are numbered in plan order and laid on the mesh (tiles
of ``cores_per_tile``, ``mesh_tiles_x`` x ``mesh_tiles_y`` tiles per chip) to count hops between connected layers.

Alignment delays become synaptic delays (no compartments) up to ``max_synaptic_delay`` steps, relay compartments
beyond. Extension nodes (``snnav.*``: spike x spike products, fusion) have **no neurocore primitive**: each is
listed with how a chip would run it -- programmable neurons (Loihi 2: one product neuron per output element and
step, an assumption) or the embedded x86 cores -- and priced later with a lower and an upper bound. Graded inputs
on a chip without graded spikes are flagged (they need a multi-spike code). Inputs come from the host.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping as TMapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware_sims.cost.chip import Chip, get_chip
from hardware_sims.plan.lowering import build_plan
from snnav.errors import InputError

__all__ = ["Layer", "Extension", "Violation", "Route", "Mapping", "map_plan", "SYNAPSE_KINDS"]

SYNAPSE_KINDS = ("dense", "sparse", "conv")


@dataclass(frozen=True)
class Violation:
    """A constraint the placement breaks: which layer, what limit, by how much."""

    layer: str
    constraint: str
    needed: float
    limit: float
    unit: str
    note: str = ""

    @property
    def amount(self) -> float:
        return self.needed - self.limit

    def text(self) -> str:
        return (f"{self.layer}: {self.constraint} needs {self.needed:g} {self.unit}, limit {self.limit:g} "
                f"(over by {self.amount:g}{', ' + self.note if self.note else ''})")

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "constraint": self.constraint, "needed": self.needed, "limit": self.limit,
                "amount": self.amount, "unit": self.unit, "note": self.note}


@dataclass(frozen=True)
class Layer:
    """One neuron population on its cores.

    Attributes:
        name: the neuron process (its NIR node is ``node``); compartments: elements (+ relay compartments).
        synapses: synapses stored on its cores; synapse_bits: their memory in bits (weights + overhead).
        synapse_nodes: NIR linear node -> the share of that node's synapses stored here (for the counts).
        fan_in_axons: most distinct input axons one core reads; cores: cores used; limited_by: what set ``cores``.
        graded_input: some input is graded (a real value, not a spike).
        sources: the layers (or inputs/extensions) whose spikes arrive here.
        first_core: index of its first core in the placement.
    """

    name: str
    node: str
    compartments: int
    synapses: int
    synapse_bits: float
    synapse_nodes: TMapping[str, float]
    fan_in_axons: int
    cores: int
    limited_by: str
    graded_input: bool
    sources: tuple[str, ...]
    first_core: int = 0
    relay_compartments: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "node": self.node, "compartments": self.compartments, "synapses": self.synapses,
                "synapse_bytes": self.synapse_bits / 8, "fan_in_axons": self.fan_in_axons, "cores": self.cores,
                "limited_by": self.limited_by, "graded_input": self.graded_input, "sources": list(self.sources),
                "first_core": self.first_core, "relay_compartments": self.relay_compartments}


@dataclass(frozen=True)
class Extension:
    """An extension node: no neurocore primitive. ``placement`` says how the chip would run it; ``cores`` is the
    neurocores the lower bound uses (Loihi 2 programmable neurons), 0 when it runs on the embedded cores."""

    name: str
    node: str
    type_name: str
    outputs: int
    placement: str
    cores: int
    note: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "node": self.node, "type": self.type_name, "outputs": self.outputs,
                "placement": self.placement, "cores": self.cores, "note": self.note, "assumption": True}


@dataclass(frozen=True)
class Route:
    """Spikes from ``src`` to layer ``dst``: destination cores each source spike reaches, mean hops."""

    src: str
    dst: str
    dst_cores_reached: float
    hops_ew: float
    hops_ns: float
    chip_crossings: float


@dataclass(frozen=True)
class Mapping:
    """The placement of a plan on a chip (module docstring)."""

    chip: Chip
    weight_bits: int
    layers: TMapping[str, Layer]
    extensions: TMapping[str, Extension]
    routes: tuple[Route, ...]
    violations: tuple[Violation, ...]
    notes: tuple[str, ...]
    time_steps: int
    steps_per_sample: int

    @property
    def cores(self) -> int:
        return sum(layer.cores for layer in self.layers.values()) + sum(e.cores for e in self.extensions.values())

    @property
    def chips(self) -> int:
        return max(1, math.ceil(self.cores / self.chip["cores_per_chip"]))

    @property
    def fits(self) -> bool:
        return not self.violations

    @property
    def tiles(self) -> int:
        return max(1, math.ceil(self.cores / self.chip["cores_per_tile"]))

    @property
    def utilisation(self) -> dict[str, float]:
        """Compartments and synaptic memory used over what the used cores offer; cores over the chips' cores."""
        cores = max(self.cores, 1)
        comp = sum(layer.compartments for layer in self.layers.values())
        mem = sum(layer.synapse_bits for layer in self.layers.values()) / 8
        return {"compartments": comp / (cores * self.chip["compartments_per_core"]),
                "synaptic_memory": mem / (cores * self.chip["synaptic_memory_per_core"]),
                "cores_of_chips": self.cores / (self.chips * self.chip["cores_per_chip"])}

    def summary(self) -> str:
        lines = [f"{self.chip.name}: {self.cores} cores on {self.chips} chip(s), weights {self.weight_bits} bit, "
                 f"{'fits' if self.fits else f'{len(self.violations)} violation(s)'}; utilisation "
                 + ", ".join(f"{k} {v:.0%}" for k, v in self.utilisation.items())]
        for layer in self.layers.values():
            lines.append(f"  {layer.name:<40} {layer.compartments:>7} comp {layer.synapses:>9} syn "
                         f"{layer.synapse_bits / 8 / 1024:>8.1f} KiB fan-in {layer.fan_in_axons:>5}  "
                         f"{layer.cores:>4} cores ({layer.limited_by})")
        for ext in self.extensions.values():
            lines.append(f"  {ext.name:<40} extension {ext.type_name}: {ext.placement} ({ext.cores} cores; "
                         "assumption)")
        lines += [f"  VIOLATION {v.text()}" for v in self.violations]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"chip": self.chip.name, "weight_bits": self.weight_bits, "cores": self.cores, "chips": self.chips,
                "fits": self.fits, "utilisation": self.utilisation,
                "layers": {k: v.to_dict() for k, v in self.layers.items()},
                "extensions": {k: v.to_dict() for k, v in self.extensions.items()},
                "violations": [v.to_dict() for v in self.violations], "notes": list(self.notes),
                "time_steps": self.time_steps, "steps_per_sample": self.steps_per_sample}


# ----------------------------------------------------------------------------------------------------------------
# synapse statistics


@dataclass
class _Syn:
    proc: Any
    rows_nnz: np.ndarray  # synapses per output neuron (flattened)
    unique_weights: int   # weights stored once per core with weight sharing (conv), else = synapses
    sparse_format: bool


def _syn_stats(proc) -> _Syn:
    out = int(np.prod(proc.shape))
    if proc.kind == "dense":
        w = np.asarray(proc.params["weights"])
        nnz = (w != 0).sum(axis=1).astype(np.int64)
        return _Syn(proc, nnz, int(nnz.sum()), False)
    if proc.kind == "sparse":
        w = proc.params["weights"]
        nnz = np.diff(np.asarray(w.indptr)).astype(np.int64)
        return _Syn(proc, nnz, int(nnz.sum()), True)
    wt = np.asarray(proc.params["weight"])  # (C_out, C_in/g, kh, kw)
    per = int(np.prod(wt.shape[1:]))
    return _Syn(proc, np.full(out, per, dtype=np.int64), int(wt.size), False)


def _fan_in(syn: _Syn, lo: int, hi: int, n_out: int) -> int:
    """Distinct presynaptic axons read by output neurons [lo, hi)."""
    proc = syn.proc
    in_size = int(np.prod(proc.in_shape)) if proc.in_shape else int(proc.params.get("in_size", 0))
    if proc.kind == "dense":
        w = np.asarray(proc.params["weights"])
        return int((w[lo:hi] != 0).any(axis=0).sum())
    if proc.kind == "sparse":
        w = proc.params["weights"]
        idx = np.asarray(w.indices)[w.indptr[lo]:w.indptr[hi]]
        return int(np.unique(idx).size)
    # conv: the receptive field of the block's output rows (a block of C-order (C, H, W) neurons: a fraction of
    # the output rows of some channels), all input channels of its groups
    c_out, cin_g, kh, _ = np.asarray(proc.params["weight"]).shape
    groups = int(proc.params.get("groups", 1))
    oh = proc.shape[1]
    cin, ih, iw = proc.in_shape
    sh = proc.params["stride"][0]
    frac = (hi - lo) / n_out
    if frac >= 1:
        return int(in_size)
    rows_in = min(ih, math.ceil(frac * oh * sh + kh))
    chans = cin if groups == 1 else min(cin, math.ceil(frac * c_out) * cin_g)
    return int(min(in_size, chans * rows_in * iw))


def _layer_cores(chip: Chip, n: int, syns: list[_Syn], bits: float, overhead: dict[bool, float]) -> tuple[int, str, int, float]:
    """(cores, limiting constraint, max fan-in per core, synapse bits) for a layer of n neurons."""
    cpc = int(chip["compartments_per_core"])
    mem_bits = chip["synaptic_memory_per_core"] * 8
    sharing = chip["conv_weight_sharing"] >= 0.5
    per_neuron = np.zeros(n)
    shared_bits = 0.0
    total_bits = 0.0
    for s in syns:
        b = bits + overhead[s.sparse_format]
        if s.proc.kind == "conv" and sharing:
            shared_bits += s.unique_weights * b
        else:
            per_neuron += s.rows_nnz[:n] * b if s.rows_nnz.size >= n else np.resize(s.rows_nnz, n) * b
    total_bits = float(per_neuron.sum())
    limit_fan_in = chip["fan_in_axons_per_core"]
    c_comp = max(1, math.ceil(n / cpc))
    c_mem = max(1, math.ceil(total_bits / max(mem_bits - shared_bits, 1.0))) if total_bits else 1
    cores, why = (c_comp, "compartments") if c_comp >= c_mem else (c_mem, "synaptic memory")

    def fan_in_at(c: int) -> int:
        block = math.ceil(n / c)
        worst = 0
        for lo in range(0, n, block) if c <= 64 else [0, (n // 2 // block) * block]:
            hi = min(n, lo + block)
            worst = max(worst, sum(_fan_in(s, lo, hi, n) for s in syns))
        return worst

    fan = fan_in_at(cores) if syns else 0
    c = cores
    while syns and fan > limit_fan_in and c < n:
        c = min(n, c * 2)
        fan = fan_in_at(c)
    if c != cores:
        # the smallest count between cores and c that satisfies the fan-in limit (bisection)
        lo_c, hi_c = cores, c
        while hi_c - lo_c > 1 and fan <= limit_fan_in:
            mid = (lo_c + hi_c) // 2
            if fan_in_at(mid) <= limit_fan_in:
                hi_c = mid
            else:
                lo_c = mid
        cores, why, fan = hi_c, "fan-in axons", fan_in_at(hi_c)
    total = total_bits + shared_bits * cores
    return cores, why, fan, total


def map_plan(plan_or_graph: Any, chip: Chip | str = "loihi2", *, weight_bits: int = 8, time_steps: int | None = None,
             dt: float | None = None) -> Mapping:
    """Place a plan (``hardware_sims.plan.plan.Plan``) or a NIR graph on ``chip``'s cores.

    Args:
        plan_or_graph: a compiled `Plan` (float or fixed), or a ``nir.NIRGraph`` (lowered with ``build_plan``).
        chip: a `Chip`, a built-in name (``loihi1``, ``loihi2``) or a chip JSON path.
        weight_bits: width of the quantized weights (snnav's quantizer default: 8).
        time_steps: NIR steps per sample (default the plan's ``metadata["time_steps"]``, else 1).
        dt: seconds per step when lowering a graph without one.

    Returns:
        The `Mapping`: cores per layer, chips, utilisation, violations (layer and amount), extension placements.
    """
    chip = get_chip(chip)
    plan = plan_or_graph
    if not hasattr(plan, "processes"):
        plan = build_plan(plan_or_graph, dt=dt)
    if isinstance(weight_bits, bool) or not isinstance(weight_bits, int) or weight_bits < 1:
        raise InputError(f"weight_bits must be an int >= 1; got {weight_bits!r}")
    T = int(time_steps or (plan.metadata or {}).get("time_steps") or 1)
    procs = plan.processes
    violations: list[Violation] = []
    notes: list[str] = []
    if weight_bits > chip["max_weight_bits"]:
        violations.append(Violation("(all synapses)", "weight width", weight_bits, chip["max_weight_bits"], "bits"))
    overhead = {False: chip.lo("synapse_overhead_bits"), True: chip.hi("synapse_overhead_bits")}
    relay = {}

    def origin(name: str) -> str:
        """The process whose spikes a synapse ultimately reads (through delays: synaptic delays on chip)."""
        seen = 0
        while procs[name].kind == "delay" and seen < 64:
            ins = plan.inbound(name)
            if not ins:
                break
            name, seen = ins[0].src, seen + 1
        return name

    for p in plan.of_kind("delay"):
        steps = int(np.max(p.params["steps"])) if np.size(p.params["steps"]) else 0
        if steps > chip["max_synaptic_delay"]:
            n_relay = int(np.prod(p.shape)) * math.ceil(steps / max(chip["max_synaptic_delay"], 1))
            relay[origin(p.name)] = relay.get(origin(p.name), 0) + n_relay
            notes.append(f"{p.name}: a delay of {steps} steps exceeds the {chip['max_synaptic_delay']:g}-step "
                         f"synaptic delay; {n_relay} relay compartments added to {origin(p.name)}")

    layers: dict[str, Layer] = {}
    node_share: dict[str, float] = {}
    syn_by_layer: dict[str, list[_Syn]] = {}
    for p in plan.of_kind("neuron"):
        syns = [_syn_stats(procs[c.src]) for c in plan.inbound(p.name) if procs[c.src].kind in SYNAPSE_KINDS]
        syn_by_layer[p.name] = syns
    for s in (s for ss in syn_by_layer.values() for s in ss):
        node_share[s.proc.node] = node_share.get(s.proc.node, 0) + float(s.rows_nnz.sum())
    core = 0
    split_latency = 0
    for p in plan.of_kind("neuron"):
        n = int(np.prod(p.shape))
        syns = syn_by_layer[p.name]
        cores, why, fan, bits = _layer_cores(chip, n, syns, weight_bits, overhead)
        extra = relay.get(p.name, 0)
        if extra:
            cores = max(cores, math.ceil((n + extra) / chip["compartments_per_core"]))
        split = 1
        dense_syns = [s for s in syns if s.proc.kind != "conv"]
        single = max((sum(_fan_in(s, i, i + 1, n) for s in syns) for i in range(min(n, 8))), default=0) \
            if dense_syns else 0
        if single > chip["fan_in_axons_per_core"] and chip["graded_spikes"] >= 0.5:
            # partial sums: each neuron's inputs split over k cores, each core sums its share and sends it as a
            # graded spike to the neuron (one more step of pipeline latency)
            split = math.ceil(single / chip["fan_in_axons_per_core"])
        elif single > chip["fan_in_axons_per_core"]:
            violations.append(Violation(p.name, "fan-in axons of one neuron", single, chip["fan_in_axons_per_core"],
                                        "axons", "binary spikes cannot carry partial sums between cores: restructure "
                                        "the layer (e.g. a hidden layer), or use a chip with graded spikes"))
        if split > 1:
            partial = n * split
            extra += partial
            cores += split * max(1, math.ceil(n / chip["compartments_per_core"]))
            fan = min(fan, int(chip["fan_in_axons_per_core"]))
            why = f"fan-in split over {split} partial-sum cores"
            split_latency = 1
            notes.append(f"{p.name}: one neuron reads more than {chip['fan_in_axons_per_core']:g} axons: its inputs are "
                         f"split over {split} partial-sum compartments on separate cores that send their sums as "
                         f"graded spikes ({partial} compartments; +1 step of pipeline latency; assumption: a "
                         "compiler's standard rewrite)")
        if syns and fan > chip["fan_in_axons_per_core"] and not any(v.layer == p.name for v in violations):
            violations.append(Violation(p.name, "fan-in axons per core", fan, chip["fan_in_axons_per_core"], "axons",
                                        "even at one neuron per core"))
        graded = any(s.proc.graded_in for s in syns)
        sources = tuple(dict.fromkeys(origin(procs[c.src].name if procs[c.src].kind not in SYNAPSE_KINDS else
                                             plan.inbound(c.src)[0].src)
                                      for c in plan.inbound(p.name)
                                      if procs[c.src].kind not in SYNAPSE_KINDS or plan.inbound(c.src)))
        shares = {}
        for s in syns:
            tot = node_share.get(s.proc.node, 0.0)
            shares[s.proc.node] = shares.get(s.proc.node, 0.0) + (float(s.rows_nnz.sum()) / tot if tot else 1.0)
        layers[p.name] = Layer(p.name, p.node, n + extra, int(sum(int(s.rows_nnz.sum()) for s in syns)), bits, shares,
                               fan, cores, why, graded, sources, core, extra)
        core += cores
        if graded and chip["graded_spikes"] < 0.5:
            notes.append(f"{p.name}: graded input on a chip with binary spikes only: each value needs a multi-spike "
                         "code (priced between 1 and weight_bits synaptic ops per event: assumption)")

    extensions: dict[str, Extension] = {}
    for p in plan.of_kind("extension"):
        n = int(np.prod(p.shape))
        if chip["programmable_neurons"] >= 0.5:
            cores = max(1, math.ceil(n / chip["compartments_per_core"]))
            placement = ("programmable product neurons on neurocores (lower bound) or the embedded x86 cores "
                         "(upper bound)")
            note = (f"no neurocore primitive multiplies two activations: {p.params['type_name']} priced as one "
                    "product-neuron update per product (lower) to the embedded cores (upper)")
        else:
            cores = 0
            placement = "embedded x86 cores (no programmable neurons on this chip)"
            note = (f"no neurocore primitive for {p.params['type_name']} and no programmable neurons: it runs on "
                    f"the {chip['embedded_cores']:g} embedded cores, which become the bottleneck")
        extensions[p.name] = Extension(p.name, p.node, p.params["type_name"], n, placement, cores, note)
        notes.append(f"{p.name}: {note} (assumption)")

    routes = _routes(chip, plan, layers, extensions, origin)
    # fan-out: spread a source layer over more cores until neurons per core x destination cores fits the limit
    reached: dict[str, float] = {}
    for r in routes:
        reached[r.src] = reached.get(r.src, 0.0) + r.dst_cores_reached
    grown = False
    for name, dst_cores in reached.items():
        layer = layers.get(name)
        if layer is None or dst_cores > chip["fan_out_axons_per_core"]:
            continue
        need = math.ceil(layer.compartments * dst_cores / chip["fan_out_axons_per_core"])
        if need > layer.cores:
            layers[name] = dataclasses.replace(layer, cores=need, limited_by="fan-out axons")
            grown = True
    if grown:
        core = 0
        for name, layer in layers.items():
            layers[name] = dataclasses.replace(layer, first_core=core)
            core += layer.cores
        routes = _routes(chip, plan, layers, extensions, origin)
    steps = plan.steps_per_sample(T) + split_latency
    mapping = Mapping(chip, weight_bits, layers, extensions, routes, tuple(violations), tuple(notes), T, steps)
    if mapping.chips > chip["chips_per_system"]:
        violations.append(Violation("(whole network)", "chips per system", mapping.chips, chip["chips_per_system"],
                                    "chips"))
    fan_out = _fan_out_violations(chip, layers, routes)
    return Mapping(chip, weight_bits, layers, extensions, routes, tuple(violations + fan_out), tuple(notes), T, steps)


def _coords(chip: Chip, core: float) -> tuple[float, float, float]:
    cpc = chip["cores_per_chip"]
    c_chip, local = divmod(core, cpc)
    tile = local // chip["cores_per_tile"]
    mx = max(chip["mesh_tiles_x"], 1)
    return tile % mx, tile // mx, c_chip


def _routes(chip: Chip, plan, layers: dict[str, Layer], extensions: dict[str, Extension], origin) -> tuple[Route, ...]:
    out: list[Route] = []
    for dst in layers.values():
        for c in plan.inbound(dst.name):
            syn = plan.processes[c.src]
            if syn.kind not in SYNAPSE_KINDS:
                continue
            ins = plan.inbound(syn.name)
            if not ins:
                continue
            src = origin(ins[0].src)
            stats = _syn_stats(syn)
            n_dst = int(np.prod(syn.shape))
            in_size = int(np.prod(syn.in_shape)) if syn.in_shape else 1
            fanout = stats.rows_nnz.sum() / max(in_size, 1)  # mean synapses per source element
            reached = float(min(dst.cores, max(1.0, math.ceil(fanout * dst.cores / max(n_dst, 1)))))
            if syn.kind == "dense":
                reached = float(dst.cores)
            if src in layers:
                s0, s1 = layers[src].first_core, layers[src].first_core + layers[src].cores
            else:
                s0 = s1 = dst.first_core  # host input / extension: enters at the layer (not priced as hops)
            d0, d1 = dst.first_core, dst.first_core + dst.cores
            a, b = _coords(chip, (s0 + s1 - 1) / 2), _coords(chip, (d0 + d1 - 1) / 2)
            chip_x = abs(math.floor((s0 + s1 - 1) / 2 / chip["cores_per_chip"]) -
                         math.floor((d0 + d1 - 1) / 2 / chip["cores_per_chip"]))
            # centroid distance plus half the spread of the destination's tiles
            spread = min(dst.cores / chip["cores_per_tile"], chip["mesh_tiles_x"] * chip["mesh_tiles_y"]) ** 0.5 / 2
            out.append(Route(src, dst.name, reached, abs(a[0] - b[0]) + spread / 2, abs(a[1] - b[1]) + spread / 2,
                             chip_x))
    return tuple(out)


def _fan_out_violations(chip: Chip, layers: dict[str, Layer], routes: tuple[Route, ...]) -> list[Violation]:
    reached: dict[str, float] = {}
    for r in routes:
        reached[r.src] = reached.get(r.src, 0.0) + r.dst_cores_reached
    out = []
    for name, dst_cores in reached.items():
        if name not in layers:
            continue
        if dst_cores > chip["fan_out_axons_per_core"]:
            out.append(Violation(name, "fan-out axons of one neuron", dst_cores, chip["fan_out_axons_per_core"],
                                 "axons", "destination cores one spike must reach, even at one neuron per core"))
    return out
