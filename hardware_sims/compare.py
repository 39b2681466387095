"""Backend against backend: where two runs of one NIR graph part, and what fixed point did at that neuron.

Every backend's run becomes a `Trace`: its records by NIR node name, ``[T, B, *shape]`` aligned to NIR steps (a
`RunResult` of ``run_lava``/``emulate`` already is: `trace_of`; the application builds the traces of the NIR
interpreter and of the torch model, which this package does not import). `compare_traces` compares every pair of
traces on the nodes both recorded:

* per node (`NodeDiff`): spiking nodes (IF, LIF, CubaLIF, Threshold) count differing spikes; other nodes count
  values that differ by more than ``atol + rtol * max|value|`` of the node; the first NIR step that differs;
* the first divergence (`Divergence`): the earliest step at which a spiking node differs, and at that step the
  node first in the graph's schedule (the upstream-most), its first differing sample and neuron (flat C-order
  index and the multi-index); when no spike differs, the same over the other nodes. The values there: each
  trace's output, and membrane ``v`` and current ``u`` at that step and the one before where the trace recorded
  them (``record_state``);
* at that neuron, for each fixed-point trace (`quantization_at`): every weight into it (dense/sparse: its row;
  conv: the kernel of its output channel), its decays ``du``/``dv``, threshold ``vth`` and bias, as the float
  value against the quantized one (mantissa x scale), marked clipped or rounded and by how much; and its state: the
  fixed trace's ``v``/``u`` against the other trace's, the state resolution, and whether ``v`` sat at its 24-bit
  limit;
* a ranking of the nodes by divergence: spiking nodes by spike mismatch rate (then first step), then graded nodes
  likewise (in fixed against float every graded value differs a little).

No Lava here: the comparison reads records and plans (plain numpy).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import nir
import numpy as np

from export.ir.graph import flatten_graph, schedule
from hardware_sims.fixed_point import formats as lf
from hardware_sims.plan.plan import SYNAPSE_KINDS, Plan
from hardware_sims.runs import RunResult

__all__ = ["Trace", "trace_of", "NodeDiff", "QuantFinding", "Divergence", "PairComparison", "Comparison",
           "compare_traces", "compare_pair", "quantization_at", "spiking_nodes", "RTOL"]

RTOL = 1e-6
"""Graded values differ when ``|a - b| > atol + RTOL * max(|a|, |b|)`` over the node (float last-bit noise passes)."""
SPIKING_TYPES = (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold)


@dataclass(frozen=True)
class Trace:
    """One backend's run as the comparison reads it.

    Attributes:
        backend: its name (e.g. ``"lava-fixed"``).
        records: NIR node -> ``[T, B, *shape]``; ``"<node>#v"``/``"<node>#u"``: a neuron's state (optional).
        plan: the plan that ran (a fixed-point plan carries ``quant``: then the quantization at the divergence is
            reported); None for backends without one (the interpreter, torch).
        predictions: the predicted class of each sample (argmax of the readout), for the prediction agreement;
            None when unknown.
        precision: "float" or "fixed".
    """

    backend: str
    records: Mapping[str, np.ndarray]
    plan: Plan | None = None
    predictions: np.ndarray | None = None
    precision: str = "float"

    @property
    def fixed(self) -> bool:
        return self.plan is not None and self.plan.precision == "fixed"


def trace_of(result: RunResult, backend: str | None = None) -> Trace:
    """The `Trace` of a ``run_lava``/``emulate`` result (named ``"<backend>-<precision>"`` by default)."""
    precision = result.plan.precision
    name = backend or f"{result.backend or 'run'}-{precision}"
    predictions = None
    if len(result.outputs) == 1:
        out = result.readout()
        predictions = out.reshape(out.shape[0], -1).argmax(-1)
    return Trace(name, dict(result.records), result.plan, predictions, precision)


def spiking_nodes(graph: nir.NIRGraph) -> set[str]:
    """The nodes whose output is spikes (IF, LIF, CubaLIF, Threshold), flattened names."""
    return {n for n, node in flatten_graph(graph).nodes.items() if isinstance(node, SPIKING_TYPES)}


@dataclass(frozen=True)
class NodeDiff:
    """One node of one pair: ``mismatches`` of ``size`` values differ (spikes, or graded beyond the tolerance)."""

    node: str
    kind: str  # "spikes" | "values"
    size: int
    mismatches: int
    first_step: int | None
    max_abs_diff: float
    spikes: tuple[int, int] = (0, 0)  # spikes of the two traces (spiking nodes)

    @property
    def rate(self) -> float:
        return self.mismatches / self.size if self.size else 0.0


@dataclass(frozen=True)
class QuantFinding:
    """One parameter (or state) of a fixed-point trace at the divergent neuron.

    ``parameter``: ``"weights <synapse>"`` (``count`` weights, the largest error's index in ``where``), ``"dv"``,
    ``"du"``, ``"vth"``, ``"bias"``, ``"v"``, ``"u"``. ``float_value``/``fixed_value``: the float parameter and its
    quantized value x scale (weights: at the largest error). ``status``: "clipped", "rounded", "exact", or for state
    "saturated"/"differs"/"equal".
    """

    backend: str
    process: str
    parameter: str
    status: str
    float_value: float
    fixed_value: float
    error: float
    count: int = 1
    clipped: int = 0
    rounded: int = 0
    zeroed: int = 0
    where: str = ""
    note: str = ""


@dataclass(frozen=True)
class Divergence:
    """Where a pair first parts: NIR node, step, sample, neuron; the values there; fixed point at that neuron."""

    node: str
    kind: str  # "spikes" | "values"
    step: int
    sample: int
    neuron: int  # flat (C-order) index into the node's shape
    index: tuple[int, ...]
    values: Mapping[str, Mapping[str, float]]  # backend -> {"out", "out[t-1]", "v", "v[t-1]", "u", "u[t-1]"}
    quantization: tuple[QuantFinding, ...] = ()


@dataclass(frozen=True)
class PairComparison:
    """Two traces compared: per-node differences ranked by divergence, and the first divergence (None: agree)."""

    a: str
    b: str
    nodes: tuple[NodeDiff, ...]
    first: Divergence | None
    prediction_agreement: float | None = None

    @property
    def agree(self) -> bool:
        return self.first is None

    @property
    def spike_mismatches(self) -> int:
        return sum(d.mismatches for d in self.nodes if d.kind == "spikes")


@dataclass(frozen=True)
class Comparison:
    """Every pair of traces (`compare_traces`)."""

    backends: tuple[str, ...]
    pairs: tuple[PairComparison, ...]
    order: tuple[str, ...]  # the graph's schedule (node order used to find the upstream-most divergence)
    steps: int
    samples: int
    quant: Mapping[str, Any] = field(default_factory=dict)  # fixed backend -> its plan's QuantReport

    def pair(self, a: str, b: str) -> PairComparison:
        for p in self.pairs:
            if {p.a, p.b} == {a, b}:
                return p
        raise KeyError(f"no pair {a!r} / {b!r}; pairs are {[(p.a, p.b) for p in self.pairs]}")


# ------------------------------------------------------------------------------------------------- per node


def _node_diff(node: str, a: np.ndarray, b: np.ndarray, spiking: bool, rtol: float, atol: float
               ) -> tuple[NodeDiff, np.ndarray]:
    """The node's `NodeDiff` and the boolean mask ``[T, B, N]`` of differing values."""
    if a.shape != b.shape:
        raise ValueError(f"node {node!r}: records of shapes {a.shape} and {b.shape} cannot be compared; run both on "
                         "the same inputs")
    steps, batch = a.shape[:2]
    a2, b2 = a.reshape(steps, batch, -1), b.reshape(steps, batch, -1)
    diff = np.abs(a2.astype(np.float64) - b2.astype(np.float64))
    if spiking:
        mask = (a2 != 0) != (b2 != 0)
    else:
        scale = max(float(np.abs(a2).max(initial=0.0)), float(np.abs(b2).max(initial=0.0)))
        mask = diff > atol + rtol * scale
    rows = np.flatnonzero(mask.any(axis=(1, 2)))
    spikes = (int((a2 != 0).sum()), int((b2 != 0).sum())) if spiking else (0, 0)
    nd = NodeDiff(node, "spikes" if spiking else "values", int(mask.size), int(mask.sum()),
                  int(rows[0]) if rows.size else None, float(diff.max(initial=0.0)), spikes)
    return nd, mask


def _at(trace: Trace, key: str, step: int, sample: int, neuron: int) -> float | None:
    rec = trace.records.get(key)
    if rec is None or step < 0:
        return None
    return float(np.asarray(rec).reshape(rec.shape[0], rec.shape[1], -1)[step, sample, neuron])


def _values_at(trace: Trace, node: str, step: int, sample: int, neuron: int) -> dict[str, float]:
    """The trace's output, ``v``, ``u`` at the step and the one before; and for a neuron of a planned run, the
    membrane before the reset, ``v_pre = (1 - dv) v[t-1] + u + bias`` (Lava's LIF update, with the trace's own --
    in fixed point quantized -- ``dv`` and bias), and the threshold ``vth`` it is tested against."""
    out = {}
    for label, key in (("out", node), ("v", f"{node}#v"), ("u", f"{node}#u")):
        for suffix, t in (("", step), ("[t-1]", step - 1)):
            value = _at(trace, key, t, sample, neuron)
            if value is not None:
                out[label + suffix] = value
    proc = _neuron_process(trace.plan, node) if trace.plan is not None else None
    if proc is None or "u" not in out:
        return out
    p = proc.params
    bias = np.asarray(p.get("bias", 0.0), dtype=np.float64).ravel()
    dv, b, vth = float(p["dv"]), float(bias[neuron] if bias.size > 1 else bias.sum()), float(p["vth"])
    if trace.fixed and proc.name in trace.plan.quant.neurons:
        q = trace.plan.quant.neurons[proc.name]
        mant = np.asarray(q.bias_mant).ravel()
        dv = (q.dv + lf.DV_OFFSET) / lf.DECAY_UNITY
        b = float(mant[neuron] if mant.size > 1 else mant.sum()) * 2.0**q.bias_exp / q.scale
        vth = q.vth_mant * 2.0**lf.VTH_SHIFT / q.scale if np.isfinite(vth) else vth
    out["v_pre"] = (1.0 - dv) * out.get("v[t-1]", 0.0) + out["u"] + b
    if np.isfinite(vth):
        out["vth"] = vth
    return out


# ------------------------------------------------------------------------------------------------- quantization


def _neuron_process(plan: Plan, node: str):
    found = [p for p in plan.processes.values() if p.kind == "neuron" and p.node == node and p.role == "node"]
    return found[0] if found else None


def _synapses_into(plan: Plan, proc: str) -> list[str]:
    """Synapse processes whose output reaches `proc` (through alignment delays), in plan order."""
    out, todo, seen = [], [proc], set()
    while todo:
        dst = todo.pop()
        for c in plan.inbound(dst):
            if c.src in seen:
                continue
            seen.add(c.src)
            kind = plan.processes[c.src].kind
            if kind in SYNAPSE_KINDS:
                out.append(c.src)
            elif kind == "delay":
                todo.append(c.src)
    return [n for n in plan.processes if n in out]


def _weight_finding(backend: str, plan: Plan, syn: str, neuron: int, out_shape: tuple[int, ...]) -> QuantFinding:
    spec, q = plan.processes[syn], plan.quant.synapses[syn]
    if spec.kind == "conv":
        per_channel = int(np.prod(out_shape[1:])) if len(out_shape) > 1 else 1
        channel = neuron // per_channel
        w = np.asarray(spec.params["weight"], dtype=np.float64)[channel].ravel()
        mant = np.asarray(q.mant)[channel].ravel().astype(np.float64)
        labels = [f"kernel of channel {channel}, flat {i}" for i in range(w.size)]
        what = f"the kernel of output channel {channel}"
    else:
        weights, mants = spec.params["weights"], q.mant
        if hasattr(weights, "tocsr"):
            row = weights.tocsr()[neuron]
            cols = row.indices
            w = row.toarray().ravel()[cols]
            mant = np.asarray(mants.tocsr()[neuron].toarray(), dtype=np.float64).ravel()[cols]
        else:
            w = np.asarray(weights, dtype=np.float64)[neuron]
            mant = np.asarray(mants, dtype=np.float64)[neuron]
            cols = np.arange(w.size)
        labels = [f"input {int(c)}" for c in cols]
        what = f"row {neuron}"
    lo, hi, grid = lf.weight_mant_grid(q.sign_mode, q.num_weight_bits)
    step = q.step
    raw = grid * np.rint(w / (grid * step))
    clipped = (raw < lo) | (raw > hi)
    fixed = mant * step
    err = np.abs(fixed - w)
    rounded = ~clipped & (err > 0)
    zeroed = (mant == 0) & (w != 0)
    worst = int(np.argmax(err)) if err.size else 0
    status = "clipped" if clipped.any() else "rounded" if rounded.any() else "exact"
    note = (f"{what}: representable weights are multiples of {grid * step:.4g} in [{lo * step:.4g}, {hi * step:.4g}] "
            f"({q.num_weight_bits}-bit mantissas: multiples of {grid} in [{lo}, {hi}], unit {step:.4g}; weight_exp "
            f"{q.exp}, sign mode {q.sign_mode.name}); {int(zeroed.sum())} nonzero weights rounded to 0")
    return QuantFinding(backend, syn, f"weights {syn}", status, float(w[worst]) if w.size else 0.0,
                        float(fixed[worst]) if w.size else 0.0, float(err[worst]) if w.size else 0.0, int(w.size),
                        int(clipped.sum()), int(rounded.sum()), int(zeroed.sum()),
                        labels[worst] if labels else "", note)


def _scalar(backend: str, proc: str, name: str, x: float, q: float, clipped: bool, note: str = "") -> QuantFinding:
    err = abs(q - x) if np.isfinite(x) else 0.0
    status = "clipped" if clipped else "rounded" if err > 0 else "exact"
    return QuantFinding(backend, proc, name, status, float(x), float(q), float(err), clipped=int(clipped),
                        rounded=int(not clipped and err > 0), note=note)


def _input_findings(trace: Trace, proc: str, step: int, sample: int, other: Trace | None) -> list[QuantFinding]:
    """The rounding of graded Input data that reaches neuron process `proc` through a synapse: the Input's values in
    the two traces at `step` of `sample` (the whole input; its largest difference)."""
    plan, out = trace.plan, []
    for syn in _synapses_into(plan, proc):
        for c in plan.inbound(syn):
            src = c.src
            while plan.processes[src].kind == "delay" and plan.inbound(src):
                src = plan.inbound(src)[0].src
            spec = plan.processes[src]
            exp = int(plan.quant.message_exps.get(src, 0))
            if spec.kind != "input" or exp == 0 or other is None:
                continue
            name = spec.node
            mine, theirs = trace.records.get(name), other.records.get(name)
            if mine is None or theirs is None or np.shape(mine) != np.shape(theirs):
                continue
            a = np.asarray(mine)[step, sample].ravel()
            b = np.asarray(theirs)[step, sample].ravel()
            err = np.abs(a - b)
            worst = int(np.argmax(err)) if err.size else 0
            out.append(QuantFinding(
                trace.backend, src, f"input {name}", "rounded" if err.max(initial=0) > 0 else "exact",
                float(b[worst]), float(a[worst]), float(err[worst]), int(a.size), 0, int(np.count_nonzero(err)),
                int(np.count_nonzero((a == 0) & (b != 0))), f"element {worst}",
                f"graded messages of 2**-{exp} (input_exp {exp}); the whole input at this step and sample, against "
                f"{other.backend}"))
    return out


def quantization_at(trace: Trace, node: str, neuron: int, step: int | None = None, sample: int = 0,
                    other: Trace | None = None) -> tuple[QuantFinding, ...]:
    """What fixed point did at neuron `neuron` (flat index) of NIR node `node` in `trace` (a fixed-point trace;
    ``()`` otherwise, or when the node is no neuron): its weights, decays, threshold, bias, and -- at `step` of
    `sample` -- its state against `other`'s (module docstring)."""
    if not trace.fixed:
        return ()
    plan, backend = trace.plan, trace.backend
    proc = _neuron_process(plan, node)
    if proc is None or proc.name not in plan.quant.neurons:
        return ()
    found = [_weight_finding(backend, plan, syn, neuron, tuple(proc.shape))
             for syn in _synapses_into(plan, proc.name) if syn in plan.quant.synapses]
    p, q = proc.params, plan.quant.neurons[proc.name]
    scale = float(q.scale)
    clipped = set(q.clipped)
    found.append(_scalar(backend, proc.name, "dv", p["dv"], (q.dv + lf.DV_OFFSET) / lf.DECAY_UNITY, "dv" in clipped,
                         f"dv_fx = {q.dv} / {lf.DECAY_UNITY}"))
    found.append(_scalar(backend, proc.name, "du", p["du"], (q.du + lf.DU_OFFSET) / lf.DECAY_UNITY, "du" in clipped,
                         f"du_fx = {q.du} (+{lf.DU_OFFSET}) / {lf.DECAY_UNITY}"))
    vth = float(p["vth"])
    vth_q = q.vth_mant * 2.0**lf.VTH_SHIFT / scale
    found.append(_scalar(backend, proc.name, "vth", vth, vth_q if np.isfinite(vth) else vth, "vth" in clipped,
                         f"vth_mant = {q.vth_mant}, state_exp {q.state_exp} (1 unit = {1 / scale:.3g})"))
    bias = np.asarray(p.get("bias", 0.0), dtype=np.float64).ravel()
    mant = np.asarray(q.bias_mant).ravel()
    i = neuron if bias.size > 1 else 0
    if bias.size and np.any(bias):
        found.append(_scalar(backend, proc.name, "bias", bias[i], mant[min(i, mant.size - 1)] * 2.0**q.bias_exp / scale,
                             f"bias[{i}]" in clipped or (bias.size == 1 and "bias[0]" in clipped),
                             f"bias_mant {int(mant[min(i, mant.size - 1)])} << bias_exp {q.bias_exp}"))
    if step is not None:
        found += _input_findings(trace, proc.name, step, sample, other)
        mine_values = _values_at(trace, node, step, sample, neuron)
        their_values = _values_at(other, node, step, sample, neuron) if other is not None else {}
        for var in ("v", "u"):
            key = "v_pre" if var == "v" and "v_pre" in mine_values and "v_pre" in their_values else var
            mine = mine_values.get(key)
            if mine is None:
                continue
            theirs = their_values.get(key)
            limit = (lf.V_MAX if var == "v" else lf.STATE_LIMIT - 1) / scale
            saturated = abs(mine) >= limit
            err = abs(mine - theirs) if theirs is not None else 0.0
            status = ("saturated" if saturated else "no reference" if theirs is None else "differs" if err > 0
                      else "equal")
            ref = other.backend if other is not None and theirs is not None else "no reference"
            note = (f"resolution {1 / scale:.3g}, 24-bit range +-{limit:.4g}; against {ref}"
                    + ("; u wraps at 24 bits in Lava's fixed point" if var == "u" else ""))
            found.append(QuantFinding(backend, proc.name, "v before the reset" if key == "v_pre" else var, status,
                                      theirs if theirs is not None else float("nan"), mine, err, note=note))
    return tuple(found)


# ------------------------------------------------------------------------------------------------- pairs


def _prediction_agreement(a: Trace, b: Trace) -> float | None:
    if a.predictions is None or b.predictions is None or np.shape(a.predictions) != np.shape(b.predictions):
        return None
    return float((np.asarray(a.predictions) == np.asarray(b.predictions)).mean())


def compare_pair(a: Trace, b: Trace, order: Sequence[str], spiking: Iterable[str], *, rtol: float = RTOL,
                 atol: float = 0.0) -> PairComparison:
    """Compare two traces on the nodes both recorded (see the module docstring); `order` is the graph's schedule."""
    spiking = set(spiking)
    rank = {n: i for i, n in enumerate(order)}
    nodes = [n for n in a.records if "#" not in n and n in b.records]
    nodes.sort(key=lambda n: rank.get(n, len(rank)))
    diffs, masks = [], {}
    for n in nodes:
        nd, mask = _node_diff(n, np.asarray(a.records[n]), np.asarray(b.records[n]), n in spiking, rtol, atol)
        diffs.append(nd)
        masks[n] = mask
    first = None
    for kind in ("spikes", "values"):
        parted = [d for d in diffs if d.kind == kind and d.first_step is not None]
        if not parted:
            continue
        d = min(parted, key=lambda d: (d.first_step, rank.get(d.node, len(rank))))
        mask = masks[d.node][d.first_step]  # [B, N]
        sample, neuron = (int(x[0]) for x in np.nonzero(mask))
        shape = np.asarray(a.records[d.node]).shape[2:]
        index = tuple(int(i) for i in np.unravel_index(neuron, shape)) if shape else ()
        values = {t.backend: _values_at(t, d.node, d.first_step, sample, neuron) for t in (a, b)}
        quant = quantization_at(a, d.node, neuron, d.first_step, sample, b) + \
            quantization_at(b, d.node, neuron, d.first_step, sample, a)
        first = Divergence(d.node, kind, d.first_step, sample, neuron, index, values, quant)
        break
    ranked = sorted(diffs, key=lambda d: (d.kind != "spikes", -d.rate, d.first_step if d.first_step is not None else 1 << 30,
                                          rank.get(d.node, len(rank))))
    return PairComparison(a.backend, b.backend, tuple(ranked), first, _prediction_agreement(a, b))


def compare_traces(graph: nir.NIRGraph, traces: Sequence[Trace], *, pairs: Iterable[tuple[str, str]] | None = None,
                   rtol: float = RTOL, atol: float = 0.0) -> Comparison:
    """Compare every pair of `traces` (or the named `pairs`) of runs of `graph` on the same inputs.

    Raises:
        ValueError: fewer than two traces, two with one name, a named pair that is not among them, or records of
            different shapes (different inputs).
    """
    names = [t.backend for t in traces]
    if len(traces) < 2 or len(set(names)) != len(names):
        raise ValueError(f"compare needs at least two traces with distinct names, got {names}")
    by_name = {t.backend: t for t in traces}
    chosen = list(combinations(names, 2)) if pairs is None else list(pairs)
    unknown = sorted({n for p in chosen for n in p} - set(names))
    if unknown:
        raise ValueError(f"pairs name unknown traces {unknown}; traces are {names}")
    order = tuple(schedule(flatten_graph(graph)).order)
    spiking = spiking_nodes(graph)
    results = tuple(compare_pair(by_name[x], by_name[y], order, spiking, rtol=rtol, atol=atol) for x, y in chosen)
    first = next(iter(traces[0].records.values()))
    quant = {t.backend: t.plan.quant.report for t in traces if t.fixed}
    return Comparison(tuple(names), results, order, int(first.shape[0]), int(first.shape[1]), quant)
