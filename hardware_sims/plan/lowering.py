"""NIR graph -> `Plan`: values of every node, latencies, and the processes that realise them (pure numpy).

Four passes over the flattened graph (`export.ir.graph`, the interpreter's own edge resolution and schedule):

1. **Values.** In the interpreter's evaluation order every node gets an `Expr` (`exprs`): a signal node (Input,
   neuron, extension) is a leaf; wiring nodes transform their summed fan-in. Terms read over a recurrent edge are
   marked ``delayed``.
2. **Latencies.** A consumer (neuron or extension) receives each term of its input ``lambda = L(source) + k -
   delayed`` steps after the source's NIR step 0, with k synapse processes on the path (the linear layers, plus a
   diagonal gain synapse where a factor must be applied and no layer exists to fold it into). Its live step is
   ``L_in = max(0, max lambda)``; its output latency ``L = L_in + window``. In a cycle this is iterated to a
   fixed point; a loop whose synapses outnumber its recurrent edges never settles and is refused.
3. **Processes.** Per consumer and term: the synapse processes (deduplicated), then a delay of ``L_in - lambda +
   shift`` steps (the NIR Delay's own shift merged with the alignment), then a connection into the consumer port.
   A recurrent term's source first passes a gate (a zero-step delay muted before the source's live step), so the
   step before a sample's first live step cannot leak into it.
4. **Readouts.** Signal nodes are read from their own process; Outputs and other wiring nodes as sums of processes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from export.ir.errors import GraphValidationError
from export.ir.graph import flatten_graph, schedule
from hardware_sims.plan import exprs as ex
from hardware_sims.plan.conventions import resolve_convention
from hardware_sims.plan.errors import LatencyError, UnsupportedGraphError
from hardware_sims.plan.linear import linear_op, node_bias
from hardware_sims.plan.materialize import Materializer, Path
from hardware_sims.plan.neurons import DEFAULT_DT, NeuronParams, needs_dt, neuron_params
from hardware_sims.plan.plan import Plan, Readout
from hardware_sims.plan.registry import SUPPORTED, known_extensions, role_of

__all__ = ["build_plan"]

SIGNAL_ROLES = ("input", "neuron", "extension")


@dataclass
class _Graph:
    flat: Any
    sched: Any
    roles: dict[str, str]


def _analyse(graph: nir.NIRGraph) -> _Graph:
    flat = flatten_graph(graph)
    sched = schedule(flat)
    roles, bad = {}, []
    for name, node in flat.nodes.items():
        role = role_of(name, node, flat.inputs, flat.outputs)
        if role is None:
            bad.append(f"{name!r} ({getattr(node, 'type_name', type(node).__name__)})")
        roles[name] = role
    if bad:
        exts = known_extensions()
        raise UnsupportedGraphError(
            f"the Lava backend does not map node(s) {', '.join(bad)}; it maps NIR {', '.join(SUPPORTED)} and the "
            f"extension nodes {exts or '(none registered)'}. Replace those nodes or register a builder with "
            "hardware_sims.plan.register_extension"
        )
    return _Graph(flat, sched, roles)


def _resolve_dt(graph: nir.NIRGraph, dt: float | None, g: _Graph, convention: str = "nir") -> float | None:
    if dt is None:
        dt = (graph.metadata or {}).get("dt")
    if dt is None:
        dt = DEFAULT_DT.get(convention)  # the library's exporter dt (snnTorch 1e-4, Norse 1e-3)
    if dt is None:
        users = sorted(n for n, node in g.flat.nodes.items() if needs_dt(node) or isinstance(node, nir.Delay))
        if users:
            raise GraphValidationError(
                f"nodes {users} need dt, but the graph has no metadata['dt'] and none was passed: pass dt=... in "
                "seconds (snnTorch exports assume 1e-4, Norse 1e-3)"
            )
        return None
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise GraphValidationError(f"dt must be a positive finite number of seconds, found {dt!r}")
    return dt


class _Lowering:
    def __init__(self, graph: nir.NIRGraph, dt: float | None, convention: str | None = "nir"):
        self.g = _analyse(graph)
        self.convention, self.convention_note = resolve_convention(graph, convention)
        self.dt = _resolve_dt(graph, dt, self.g, self.convention)
        self.metadata = dict(graph.metadata or {})
        self.nodes = self.g.flat.nodes
        self.values: dict[str, ex.Expr] = {}
        self.ops: dict[str, Any] = {}
        self.inputs: dict[str, dict[str | None, ex.Expr]] = {}  # consumer -> port -> value
        self.neurons: dict[str, NeuronParams] = {}

    # ------------------------------------------------------------------------------------------------ values
    def _signal_shape(self, name: str) -> tuple[int, ...]:
        node = self.nodes[name]
        if self.g.roles[name] == "input":
            return tuple(int(d) for d in node.input_type["input"])
        return tuple(int(d) for d in node.output_type["output"])

    def _value_of(self, src: str, delayed: bool) -> ex.Expr:
        if src not in self.values:  # a recurrent source evaluated later: signal nodes are leaves
            self.values[src] = ex.leaf(src, self._signal_shape(src))
        value = self.values[src]
        if delayed:
            value = ex.Expr(tuple(ex.Term(t.source, t.shape, True, t.ops, t.factor, t.shift) for t in value.terms),
                            value.shape, value.bias)
        return value

    def _fan_in(self, name: str) -> dict[str | None, ex.Expr]:
        ports = {}
        for port, feeds in self.g.sched.fan_in[name].items():
            values = [self._value_of(self.g.flat.edges[i].src, delayed) for i, delayed in feeds]
            ports[port] = ex.add(values, name)
        return ports

    def values_pass(self) -> None:
        for name in self.g.sched.order:
            role, node = self.g.roles[name], self.nodes[name]
            if role == "input":
                self.values[name] = ex.leaf(name, self._signal_shape(name))
                continue
            ports = self._fan_in(name)
            if role in ("neuron", "extension"):
                self.inputs[name] = ports
                shape = ports[None].shape if role == "neuron" else self._signal_shape(name)
                if role == "neuron":
                    self.neurons[name] = self._neuron(name, node, shape)
                if name in self.values and self.values[name].shape != shape:
                    raise UnsupportedGraphError(f"node {name!r}: declared output {self.values[name].shape}, "
                                                f"computed {shape}")
                self.values[name] = ex.leaf(name, shape)
                continue
            x = ports[None]
            if role in ("identity", "output"):
                self.values[name] = x
            elif role == "flatten":
                shape = ex.flatten_shape(x.shape, int(node.start_dim), int(node.end_dim), name)
                self.values[name] = ex.flatten(x, shape)
            elif role == "scale":
                self.values[name] = ex.scale(x, np.asarray(node.scale, dtype=np.float64), name)
            elif role == "delay":
                self.values[name] = ex.delay(x, self._delay_steps(name, node), name)
            elif role == "linear":
                op = self.ops[name] = linear_op(name, node, x.shape)
                self.values[name] = ex.through_linear(x, op, node_bias(node, op.out_shape), name)

    def _neuron(self, name: str, node: Any, shape: tuple[int, ...]) -> NeuronParams:
        params = neuron_params(node, name, self.dt if self.dt is not None else math.nan, self.convention)
        if np.broadcast_shapes(params.shape, shape) != tuple(shape):
            raise UnsupportedGraphError(f"node {name!r}: parameters of shape {params.shape} do not fit its input "
                                        f"{shape}")
        return dataclasses.replace(params, shape=tuple(shape))

    def _delay_steps(self, name: str, node: nir.Delay) -> np.ndarray:
        steps = np.asarray(node.delay, dtype=np.float64) / self.dt
        rounded = np.round(steps)
        if np.any(rounded < 0) or np.any(np.abs(steps - rounded) > 1e-6 * np.maximum(1.0, np.abs(steps))):
            raise UnsupportedGraphError(f"node {name!r}: delay/dt must be whole non-negative steps, found "
                                        f"{np.unique(steps)[:5]} (dt={self.dt})")
        return rounded.astype(np.int64)

    # -------------------------------------------------------------------------------------------- latencies
    def _gain(self, consumer: str) -> np.ndarray | None:
        return self.neurons[consumer].gain if consumer in self.neurons else None

    def _paths(self) -> list[Path]:
        paths = []
        for consumer, ports in self.inputs.items():
            gain = self._gain(consumer)
            for port, value in ports.items():
                for term in value.terms:
                    row = term.factor if gain is None else (gain if term.factor is None else term.factor * gain)
                    if row is not None and np.all(np.asarray(row) == 1):
                        row = None
                    if row is not None:
                        row = np.broadcast_to(row, term.shape).copy()
                    paths.append(Path(consumer, port, term, row))
        return paths

    def _min_live(self) -> dict[str, int]:
        """Neurons fed a constant into their current: their bias source's synapse needs one step."""
        return {n: 1 for n, p in self.neurons.items() if p.current_bias(self.inputs[n][None].bias) is not None}

    def latency_pass(self, paths: list[Path]) -> tuple[dict[str, int], dict[str, int]]:
        window = {n: int(getattr(self.nodes[n], "window", 0) or 0) for n in self.inputs}
        floor = self._min_live()
        l_in = {n: 0 for n, r in self.g.roles.items() if r in SIGNAL_ROLES}
        l_out = {n: window.get(n, 0) for n in l_in}
        into: dict[str, list[Path]] = {n: [] for n in self.inputs}
        for p in paths:
            into[p.consumer].append(p)
        order = [n for n in self.g.sched.order if n in self.inputs]  # topological: acyclic graphs settle at once
        for _ in range(len(l_out) + 2):
            changed = []
            for consumer in order:
                new_in = max([floor.get(consumer, 0),
                              *(l_out[p.term.source] + p.synapses - p.term.delayed for p in into[consumer])])
                if new_in != l_in[consumer]:
                    l_in[consumer], l_out[consumer] = new_in, new_in + window[consumer]
                    changed.append(consumer)
            if not changed:
                return l_in, l_out
        raise LatencyError(
            f"the recurrent loop(s) through {sorted(changed)} cannot be aligned: each synapse layer adds one Lava "
            "step, and a loop may have only as many synapse layers as recurrent edges (NIR gives each one step). "
            "Merge the loop's linear layers into one"
        )

    # ----------------------------------------------------------------------------------------------- build
    def lower(self, extra_readouts: tuple[str, ...]) -> Plan:
        self.values_pass()
        for name, ports in self.inputs.items():
            self._check_consumer(name, ports)
        paths = self._paths()
        l_in, l_out = self.latency_pass(paths)
        mat = Materializer(self.nodes, self.g.roles, self.ops, self.neurons, l_in, l_out)
        for name in self.g.flat.inputs:
            mat.add_input(name, self.values[name].shape)
        for name in self.inputs:
            mat.add_consumer(name, self.values[name].shape, self.inputs[name])
        for path in paths:
            mat.connect_path(path)
        readouts = self._readouts(mat, extra_readouts)
        procs = mat.processes
        return Plan(
            processes=procs, connections=tuple(mat.connections), inputs={n: n for n in self.g.flat.inputs},
            input_shapes={n: self.values[n].shape for n in self.g.flat.inputs}, outputs=tuple(self.g.flat.outputs),
            readouts=readouts, node_latency=dict(l_out), max_latency=max(p.latency for p in procs.values()),
            dt=self.dt, metadata=self.metadata, convention=self.convention, convention_note=self.convention_note,
        )

    def _check_consumer(self, name: str, ports: dict[str | None, ex.Expr]) -> None:
        for port, value in ports.items():
            for term in value.terms:
                src = term.source
                if src in self.neurons and self.neurons[src].read == "v":
                    raise UnsupportedGraphError(
                        f"node {src!r} ({self.neurons[src].nir_type}) outputs its membrane v, which feeds "
                        f"{name!r}; a Lava LIF sends only spikes, so v can be read out but not forwarded"
                    )

    def _readouts(self, mat: Materializer, extra: tuple[str, ...]) -> dict[str, Readout]:
        unknown = sorted(set(extra) - set(self.values))
        if unknown:
            raise ValueError(f"cannot read {unknown}: no such node; nodes are {sorted(self.values)}")
        readouts = {}
        for name, value in self.values.items():
            role = self.g.roles[name]
            if role in SIGNAL_ROLES:
                readouts[name] = Readout(name, value.shape, (mat.signal_read(name),))
            elif role == "output" or name in extra or all(not t.ops for t in value.terms):
                readouts[name] = Readout(name, value.shape, tuple(mat.read_term(t) for t in value.terms),
                                         value.bias)
        return readouts


def build_plan(graph: nir.NIRGraph, *, dt: float | None = None, extra_readouts: Iterable[str] = (),
               convention: str | None = "nir") -> Plan:
    """Lower a NIR graph into a float `Plan` (no Lava involved).

    Args:
        graph: the graph (nested subgraphs and snnav extension nodes allowed).
        dt: seconds per step; default ``graph.metadata["dt"]`` (required when a neuron or Delay node needs it).
        extra_readouts: further NIR node names to make readable (e.g. a linear layer's output; each costs the
            synapse processes that compute it for the readout).
        convention: whose stepping the neurons follow: "nir" (default), "snntorch", "norse" (the library's, where
            Lava's LIF can express it, `hardware_sims.plan.neurons`), or "auto" (`detect_convention`); the plan
            records it (``plan.convention``, ``plan.convention_note``). Without dt, "snntorch"/"norse" use their
            exporters' dt (1e-4, 1e-3).

    Returns:
        The plan.

    Raises:
        UnsupportedGraphError: every node the backend cannot map, listed by name with what is supported; a
            convention's stepping Lava cannot express, naming the node and why.
        ConventionError: an unknown convention.
        LatencyError: a recurrent loop that cannot be aligned.
        GraphValidationError: bad edges, missing dt.
    """
    return _Lowering(graph, dt, convention).lower(tuple(extra_readouts))
