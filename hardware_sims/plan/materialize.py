"""Turn source paths into process specs and connections (pass 3 and 4 of `hardware_sims.plan.lowering`).

A `Path` is one term of a consumer's input. Its processes, in order from the source:

* a **gate** (recurrent terms only): a zero-step delay that sends zeros before the source's live step, so the
  source's last pre-roll step (previous sample's tail, or pre-roll activity) cannot reach the consumer's first
  live step through the recurrent synapse;
* an **alignment delay** of ``L_in(consumer) - lambda + shift`` steps (``lambda``: when the path would deliver NIR
  step 0 without it; ``shift``: the NIR Delay nodes on the path), placed on the source's output so that it delays
  spikes rather than graded sums and is shared by every path from that source with the same delay;
* one **synapse** per linear layer, the path's factors folded into the weights: each layer's column factor (a Scale
  before it) and, on the last layer, the row factor (Scales after it times the consumer's input gain);
* a **gain synapse** (diagonal ``Sparse``) when a row factor remains and no layer exists to hold it.

A neuron whose input has a constant that must enter its current ``u`` (a Cuba neuron after a biased layer, see
`hardware_sims.plan.neurons`) gets a **bias source**: a one-neuron ``LIFReset`` (``du = dv = 1``, ``bias = 1``,
``vth = 0.5``: a spike at every step, including its reset steps, since Lava resets before the update) and a dense
synapse ``(size, 1)`` of ``gain * constant`` into the neuron's ``a_in``, both role "bias". The source spikes at
every step of every sample, so any step serves as its live step; it is placed one step before the neuron's.

Identical processes are shared (same layer, same input process, same folded factors; same delay of the same port).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from hardware_sims.plan.errors import UnsupportedGraphError
from hardware_sims.plan.exprs import Expr, OpStep, Term
from hardware_sims.plan.linear import SPARSE_MIN_ZEROS, LinearOp, scaled
from hardware_sims.plan.neurons import NeuronParams
from hardware_sims.plan.plan import Connection, ProcessSpec, ReadTerm

__all__ = ["Path", "Materializer"]


@dataclass(frozen=True)
class Path:
    """One term into port `port` of `consumer`; `row` (None = 1, over ``term.shape``) is applied at its end."""

    consumer: str
    port: str | None
    term: Term
    row: np.ndarray | None

    @property
    def gain_synapse(self) -> bool:
        return not self.term.ops and self.row is not None

    @property
    def synapses(self) -> int:
        return len(self.term.ops) + int(self.gain_synapse)


def _key(x: np.ndarray | None) -> Any:
    if x is None:
        return None
    x = np.ascontiguousarray(x, dtype=np.float64)
    return (x.shape, x.tobytes())


class Materializer:
    """Collects `ProcessSpec` s and `Connection` s; ``l_in``/``l_out`` are the signal nodes' live steps/latencies."""

    def __init__(self, nodes: dict, roles: dict, ops: dict[str, LinearOp], neurons: dict[str, NeuronParams],
                 l_in: dict[str, int], l_out: dict[str, int]):
        self.nodes, self.roles, self.ops, self.neurons = nodes, roles, ops, neurons
        self.l_in, self.l_out = l_in, l_out
        self.processes: dict[str, ProcessSpec] = {}
        self.connections: list[Connection] = []
        self._cache: dict[Any, str] = {}

    # ---------------------------------------------------------------------------------------------- helpers
    def _add(self, spec: ProcessSpec, key: Any = None) -> str:
        if key is not None:
            self._cache[key] = spec.name
        self.processes[spec.name] = spec
        return spec.name

    def _name(self, base: str) -> str:
        if base not in self.processes:
            return base
        n = 2
        while f"{base}#{n}" in self.processes:
            n += 1
        return f"{base}#{n}"

    def _var(self, source: str) -> str:
        return self.neurons[source].read if source in self.neurons else "s_out"

    # ------------------------------------------------------------------------------------------ signal nodes
    def add_input(self, name: str, shape: tuple[int, ...]) -> None:
        self._add(ProcessSpec(name, "input", name, "node", tuple(shape), None, 0, 0, True))

    def add_consumer(self, name: str, shape: tuple[int, ...], ports: dict[str | None, Expr]) -> None:
        lat, live = self.l_out[name], self.l_in[name]
        if name in self.neurons:
            p = self.neurons[name]
            params = {"nir_type": p.nir_type, "du": p.du, "dv": p.dv, "vth": p.vth,
                      "bias": p.bias_mant(ports[None].bias), "read": p.read}
            self._add(ProcessSpec(name, "neuron", name, "node", tuple(shape), tuple(shape), lat, live, True, params))
            current = p.current_bias(ports[None].bias)
            if current is not None:
                self._bias_source(name, current, live)
        else:
            node = self.nodes[name]
            # a constant in a port's value (an upstream bias) is added by the process itself, with no latency
            bias = {port: np.broadcast_to(v.bias, v.shape).astype(np.float64) for port, v in ports.items()
                    if v.bias is not None and np.any(v.bias)}
            params = {"node": node, "type_name": node.type_name, "window": lat - live, "bias": bias,
                      "stateful": bool(getattr(node, "stateful", False))}
            self._add(ProcessSpec(name, "extension", name, "node", tuple(shape), None, lat, live, True, params))

    def _bias_source(self, consumer: str, current: np.ndarray, live: int) -> None:
        """A neuron spiking at every step and a synapse ``current`` from it into `consumer`'s ``a_in``."""
        if live < 1:
            raise UnsupportedGraphError(f"node {consumer!r}: a bias source needs one step of synapse latency before "
                                        "its live step")  # the latency pass gives such neurons live >= 1
        src = self._name(f"bias:{consumer}")
        params = {"nir_type": "BiasSource", "du": 1.0, "dv": 1.0, "vth": 0.5, "bias": np.ones((1,)), "read": "s_out"}
        self._add(ProcessSpec(src, "neuron", consumer, "bias", (1,), (1,), live - 1, live - 1, True, params))
        weights = np.asarray(current, dtype=np.float64).reshape(-1, 1)
        syn = self._name(f"bias:{consumer}:w")
        self._add(ProcessSpec(syn, "dense", consumer, "bias", tuple(current.shape), (1,), live, live - 1, False,
                              {"weights": weights}))
        self.connections.append(Connection(src, syn, "s_in"))
        self.connections.append(Connection(syn, consumer, "a_in"))

    def signal_read(self, name: str) -> ReadTerm:
        """How to read a signal node: its own process."""
        return ReadTerm(name, self._var(name), self.l_out[name])

    # ------------------------------------------------------------------------------------------ path pieces
    def _gate(self, source: str) -> str:
        key = ("gate", source)
        if key in self._cache:
            return self._cache[key]
        src = self.processes[source]
        lat = self.l_out[source]
        params = {"steps": np.zeros(src.shape, dtype=np.int64), "mute_preroll": True}
        spec = ProcessSpec(self._name(f"gate:{source}"), "delay", source, "gate", src.shape, src.shape, lat, lat,
                           not src.spiking, params)
        name = self._add(spec, key)
        self.connections.append(Connection(source, name, "s_in"))
        return name

    def _synapse(self, step: OpStep, in_proc: str, row: np.ndarray | None, role: str) -> str:
        key = ("syn", step.node, in_proc, _key(row), _key(step.col))
        if key in self._cache:
            return self._cache[key]
        op = scaled(self.ops[step.node], row=row, col=step.col)
        src = self.processes[in_proc]
        if op.kind == "conv":
            g = op.conv
            kind = "conv"
            params = {"weight": g.weight, "stride": g.stride, "padding": (g.padding[0], g.padding[2]),
                      "dilation": g.dilation, "groups": g.groups}
        else:
            zeros = 1.0 - op.matrix.nnz / max(1, op.out_size * op.in_size)
            kind = "sparse" if zeros >= SPARSE_MIN_ZEROS else "dense"
            params = {"weights": op.matrix if kind == "sparse" else op.matrix.toarray()}
        taken = any(p.node == step.node and p.kind in ("dense", "sparse", "conv") for p in self.processes.values())
        base = f"{step.node}<-{in_proc}" if taken else step.node
        spec = ProcessSpec(self._name(base), kind, step.node, role, op.out_shape, op.in_shape, src.latency + 1,
                           src.latency, not src.spiking, params)
        name = self._add(spec, key)
        self.connections.append(Connection(in_proc, name, "s_in"))
        return name

    def _gain(self, consumer: str, in_proc: str, row: np.ndarray, shape: tuple[int, ...]) -> str:
        key = ("gain", in_proc, _key(row))
        if key in self._cache:
            return self._cache[key]

        src = self.processes[in_proc]
        weights = sp.diags(np.broadcast_to(row, shape).reshape(-1)).tocsr()
        spec = ProcessSpec(self._name(f"gain:{consumer}<-{in_proc}"), "sparse", consumer, "gain", tuple(shape),
                           tuple(shape), src.latency + 1, src.latency, not src.spiking, {"weights": weights})
        name = self._add(spec, key)
        self.connections.append(Connection(in_proc, name, "s_in"))
        return name

    def _delay(self, in_proc: str, steps: np.ndarray, align: int, term_shape: tuple[int, ...]) -> str:
        """A delay of `steps` (int or per element of the term) on `in_proc`'s output; `align` = steps - shift."""
        src = self.processes[in_proc]
        steps = np.asarray(steps, dtype=np.int64)
        if steps.ndim:  # per element: only on paths without linear layers, where the term is a reshaped source
            steps = np.broadcast_to(steps, term_shape).reshape(src.shape)
        steps = np.broadcast_to(steps, src.shape).copy()
        key = ("delay", in_proc, steps.tobytes())
        if key in self._cache:
            return self._cache[key]
        uniform = bool(np.all(steps == steps.flat[0]))
        label = int(steps.flat[0]) if uniform else f"{int(steps.min())}..{int(steps.max())}"
        spec = ProcessSpec(self._name(f"delay{label}:{in_proc}"), "delay", in_proc, "align", src.shape, src.shape,
                           src.latency + align, src.latency, not src.spiking, {"steps": steps, "mute_preroll": False})
        name = self._add(spec, key)
        self.connections.append(Connection(in_proc, name, "s_in"))
        return name

    # -------------------------------------------------------------------------------------------------- paths
    def connect_path(self, path: Path) -> None:
        """Create the processes of one path and connect it into its consumer.

        The alignment delay sits right after the source (or its gate), before the synapses: it delays spikes
        rather than graded sums, and paths from one source share it.
        """
        t = path.term
        proc = self._gate(t.source) if t.delayed else t.source
        lam = self.l_out[t.source] + path.synapses - int(t.delayed)
        align = self.l_in[path.consumer] - lam  # >= 0: the latency pass takes the maximum
        steps = align + np.asarray(t.shift)
        if np.any(steps > 0):
            proc = self._delay(proc, steps, align, t.shape)
        for j, step in enumerate(t.ops):
            proc = self._synapse(step, proc, path.row if j == len(t.ops) - 1 else None, "node")
        if path.gain_synapse:
            proc = self._gain(path.consumer, proc, path.row, t.shape)
        port = "a_in" if path.consumer in self.neurons else path.port
        self.connections.append(Connection(proc, path.consumer, port))

    def read_term(self, t: Term) -> ReadTerm:
        """A term of a wiring node's value as something to record (chains get their own synapses if needed)."""
        shift = np.asarray(t.shift) + int(t.delayed)
        shift = int(shift) if shift.ndim == 0 else shift
        if not t.ops:
            return ReadTerm(t.source, self._var(t.source), self.l_out[t.source], t.factor, shift)
        if self._var(t.source) == "v":
            raise UnsupportedGraphError(f"{t.source!r} outputs its membrane v, which a linear layer reads; a Lava "
                                        "LIF sends only spikes, so v can be read out but not forwarded")
        proc = t.source
        for j, step in enumerate(t.ops):
            row = None if j < len(t.ops) - 1 or t.factor is None else np.broadcast_to(t.factor, t.shape).copy()
            proc = self._synapse(step, proc, row, "readout")
        return ReadTerm(proc, "a_out", self.processes[proc].latency, None, shift)
