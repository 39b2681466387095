"""Reference NIR interpreter in torch: runs any NIR graph (standard nodes and snnav's extension nodes) on batched,
time-first inputs. It is the oracle that the trained torch models, Lava, snnTorch and Norse are compared with.

Usage::

    result = Interpreter(graph, dt=1e-3).run({"audio": a, "visual": v})   # each [T, B, *input_shape]
    result.outputs["logits"]   # [T, B, K]
    result.spikes["lif1"]      # [T, B, ...] spikes of every spiking node; result.records: every node's output

Evaluation. Nested subgraphs are flattened ("G.B" names) and edge ports resolved (`export/ir/graph.py`). An
acyclic graph is evaluated node by node in topological order over the whole sequence ``[T, B, ...]``: stateless
nodes at once over T, neurons looping over T. A graph with a cycle runs step by step: in every cycle, the edges
leaving a neuron carry a one-step delay (the consumer reads the neuron's output of step t-1, zeros at t = 0);
WINDOW extension nodes (``needs_future``) cannot run step by step and such graphs are refused. ``stepwise=True``
forces step-by-step evaluation of an acyclic graph too: in float32, a BLAS matmul over ``T*B`` rows may round
differently from the same matmul over ``B`` rows, so that is the mode for bit-exact comparison with libraries that
step one time step at a time (snnTorch, Norse); the default mode is the one for multi-step torch models. Fan-in
terms are summed in a fixed order (feed-forward edges in edge-list order, then recurrent ones): same input,
same bits.

dt comes from the argument, else ``graph.metadata["dt"]`` (snnav writes it), else it is an error: third-party
graphs carry none (snnTorch's exporter assumes dt = 1e-4, Norse's 1e-3).

Conventions (``convention=``): how each library steps the same NIR parameters. LIF shown; the exact arithmetic of
every neuron type is in `export/interp_neurons.py`.

========  ===========  ===================================  ===============  =======================  =========  ======
name      dt           LIF membrane update per step         spike            reset                    when       v0
========  ===========  ===================================  ===============  =======================  =========  ======
nir       argument or  ``v + (dt/tau)*((v_leak-v) + r*x)``  ``v > v_th``     ``v <- v_reset``         same step  0
          metadata     (forward Euler)
snntorch  1e-4 (its    ``mem = beta*mem + x - reset*thr``   ``mem-thr > 0``  subtract thr;            next step  0
          exporter)    ``beta = 1 - dt'/tau``                                v_reset ignored
norse     1e-3 (its    ``v + (dt*(1/tau))*((x+v_leak)-v)``  ``v-v_th > 0``   ``(1-z)*v + z*v_reset``  same step  v_leak
          default)     (LIFBoxCell; IF: ``v + x``, no dt)
========  ===========  ===================================  ===============  =======================  =========  ======

Per-step coefficients (dt/tau, dt*r, beta, 1/tau) are computed in float64 from the stored parameters and cast to the
compute dtype once. snnTorch's ``reset`` is its previous step's spike (``reset_delay=True``, the default of Leaky,
Synaptic and RLeaky); ``dt'`` is dt rounded to tau's stored dtype (snnTorch computed tau in float32). Types a
convention does not define (snntorch: I, LI, IF, CubaLI; norse: I, CubaLI) and all stateless nodes use "nir".
Norse's IF starts at v = v_reset, its CubaLIF current at 0.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Callable

import nir
import torch
from torch import Tensor

from export.interpreter.extensions import EXTENSION_BUILDERS
from export.interpreter.neurons import CONVENTIONS, neuron_builder
from export.interpreter.nodes import STANDARD_BUILDERS, Context, Op
from export.ir.errors import GraphValidationError, UnknownNodeTypeError
from export.ir.graph import NEURON_TYPES, FlatGraph, Schedule, flatten_graph, schedule
from export.ir.nirfile import read_graph

__all__ = ["Interpreter", "InterpreterResult", "run_graph", "CONVENTIONS"]

_NEEDS_DT = (*NEURON_TYPES, nir.Delay)


@dataclass(frozen=True)
class InterpreterResult:
    """What a run produced, all ``[T, B, *shape]``.

    Attributes:
        outputs: top-level Output node name -> its value.
        records: recorded node name -> its output (flattened names, "G.B" for node B of subgraph G).
        spikes: the records of the spiking nodes (IF, LIF, CubaLIF, Threshold), a subset of `records`.
    """

    outputs: dict[str, Tensor]
    records: dict[str, Tensor] = field(default_factory=dict)
    spikes: dict[str, Tensor] = field(default_factory=dict)


def _builder(node: Any, convention: str) -> Callable[[Any, Context], Op] | None:
    for cls in type(node).__mro__:  # table lookup; subclasses use their base's evaluator
        found = neuron_builder(convention, cls) or STANDARD_BUILDERS.get(cls) or EXTENSION_BUILDERS.get(cls)
        if found is not None:
            return found
    return None


def _resolve_dt(graph: nir.NIRGraph, dt: float | None, flat: FlatGraph) -> float:
    if dt is None:
        dt = (graph.metadata if isinstance(graph.metadata, dict) else {}).get("dt")
        if dt is None:
            if not any(isinstance(n, _NEEDS_DT) for n in flat.nodes.values()):
                return math.nan  # nothing uses dt
            raise GraphValidationError(
                "the graph has no metadata['dt'] and no dt was passed: pass Interpreter(graph, dt=...) in seconds "
                "(snnTorch exports assume dt=1e-4, Norse 1e-3)"
            )
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise GraphValidationError(f"dt must be a positive finite number of seconds, got {dt!r}")
    return dt


class Interpreter:
    """Runs a NIR graph in torch (see the module docstring for the semantics and conventions).

    Args:
        graph: the graph; nested NIRGraph nodes and snnav extension nodes are supported.
        dt: step in seconds; default ``graph.metadata["dt"]``.
        convention: "nir", "snntorch" or "norse" (module docstring).
        dtype: compute dtype; parameters are cast to it once (float32 parameters exactly).
        device: torch device.
        stepwise: evaluate one step at a time even when the graph is acyclic.

    Raises:
        GraphValidationError: bad edges, an algebraic loop, a WINDOW node in a step-by-step graph, no dt.
        UnknownNodeTypeError: a node type the interpreter does not evaluate.
        InvalidNodeError: a node's parameters do not fit the convention or the semantics.
    """

    def __init__(
        self,
        graph: nir.NIRGraph,
        *,
        dt: float | None = None,
        convention: str = "nir",
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        stepwise: bool = False,
    ):
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        self.flat: FlatGraph = flatten_graph(graph)
        self.schedule: Schedule = schedule(self.flat)
        self.dt = _resolve_dt(graph, dt, self.flat)
        self.convention, self.dtype, self.device = convention, dtype, torch.device(device)
        self.ops: dict[str, Op] = {}
        for name, node in self.flat.nodes.items():
            build = _builder(node, convention)
            if build is None:
                raise UnknownNodeTypeError(
                    f"node {name!r} has type {type(node).__name__}, which the interpreter does not evaluate; it "
                    "evaluates NIR's Input, Output, Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d, AvgPool2d, "
                    "Flatten, Threshold, Delay, I, LI, IF, LIF, CubaLI, CubaLIF and snnav's extension nodes"
                )
            self.ops[name] = build(node, Context(self.dt, dtype, self.device, convention, name))
        self.stepwise = stepwise or self.schedule.cyclic
        windows = sorted(n for n, op in self.ops.items() if op.window)
        if self.stepwise and windows:
            why = "the graph has a cycle" if self.schedule.cyclic else "stepwise=True was asked for"
            raise GraphValidationError(
                f"{why}, so it must run step by step, but WINDOW node(s) {windows} need future steps of their "
                "window; remove the cycle (or stepwise=True) or the window nodes"
            )

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the graph's Input nodes."""
        return self.flat.inputs

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the graph's Output nodes."""
        return self.flat.outputs

    @property
    def recurrent_edges(self) -> list[tuple[str, str]]:
        """The ``(src, dst)`` edges (flattened names) that carry the one-step delay."""
        return [(self.flat.edges[i].src, self.flat.edges[i].dst) for i in sorted(self.schedule.delayed)]

    def _prepare(self, inputs: Tensor | dict[str, Tensor]) -> tuple[dict[str, Tensor], int]:
        if isinstance(inputs, Tensor):
            if len(self.inputs) != 1:
                raise ValueError(f"the graph has inputs {list(self.inputs)}; pass a dict name -> [T, B, ...] tensor")
            inputs = {self.inputs[0]: inputs}
        if set(inputs) != set(self.inputs):
            raise ValueError(f"expected inputs {sorted(self.inputs)}, got {sorted(inputs)}")
        prepared, lead = {}, None
        for name in self.inputs:
            x = torch.as_tensor(inputs[name])
            declared = self.flat.nodes[name].input_type.get("input")
            shape = None if declared is None else tuple(int(d) for d in declared)
            if x.dim() < 2 or (shape is not None and tuple(x.shape[2:]) != shape):
                raise ValueError(
                    f"input {name!r}: expected a time-first tensor [T, B, *{shape}], got shape {tuple(x.shape)}"
                )
            if x.shape[0] < 1:
                raise ValueError(f"input {name!r}: needs at least one time step, got shape {tuple(x.shape)}")
            if lead is not None and tuple(x.shape[:2]) != lead:
                raise ValueError(f"inputs disagree on [T, B]: {lead} and {tuple(x.shape[:2])} ({name!r})")
            lead = tuple(x.shape[:2])
            prepared[name] = x.to(device=self.device, dtype=self.dtype)
        return prepared, lead[0]

    def _keep(self, record: bool | Iterable[str]) -> set[str]:
        if record is True:
            return set(self.ops)
        if record is False:
            return set()
        names = {record} if isinstance(record, str) else set(record)
        unknown = sorted(names - set(self.ops))
        if unknown:
            raise ValueError(f"cannot record {unknown}: no such node; nodes are {sorted(self.ops)}")
        return names

    def _terms(self, name: str, current: dict, previous: dict | None) -> dict | None:
        """Fan-in terms per port; delayed edges read `previous` (None: probe, skip them). None if a port is empty."""
        terms = {}
        for port, feeds in self.schedule.fan_in[name].items():
            values = []
            for index, delayed in feeds:
                src = self.flat.edges[index].src
                value = (previous.get(src) if previous is not None else None) if delayed else current.get(src)
                if value is not None:
                    values.append(value)
            if not values:
                return None
            terms[port] = values
        return terms

    def _run_sequence(self, xs: dict[str, Tensor], keep: set[str]) -> dict[str, Tensor]:
        uses = {n: 0 for n in self.ops}
        for edge in self.flat.edges:
            uses[edge.src] += 1
        values: dict[str, Tensor] = {}
        for name in self.schedule.order:
            values[name] = xs[name] if name in xs else self.ops[name].forward(self._terms(name, values, {}), None)[0]
            for port_feeds in self.schedule.fan_in[name].values():
                for index, _ in port_feeds:
                    src = self.flat.edges[index].src
                    uses[src] -= 1
                    if uses[src] == 0 and src not in keep and src not in self.outputs:
                        del values[src]  # no consumer left: free it
        return values

    def _step(self, xs: dict[str, Tensor], t: int, states: dict | None, previous: dict | None) -> dict:
        """One step; ``states=None`` is the shape probe at t = 0 (state not kept, recurrent terms skipped)."""
        current: dict[str, Tensor | None] = {}
        for name in self.schedule.order:
            if name in xs:
                current[name] = xs[name][t : t + 1]
                continue
            terms = self._terms(name, current, previous)
            if terms is None:
                if states is not None:
                    raise GraphValidationError(f"node {name!r} received no input at step {t}")
                continue
            out, new_state = self.ops[name].forward(terms, None if states is None else states[name])
            current[name] = out
            if states is not None:
                states[name] = new_state
        return current

    def _run_steps(self, xs: dict[str, Tensor], steps: int, keep: set[str]) -> dict[str, Tensor]:
        delayed_src = {self.flat.edges[i].src for i in self.schedule.delayed}
        previous: dict[str, Tensor] = {}
        if delayed_src and steps:
            probe = self._step(xs, 0, None, None)
            for src in sorted(delayed_src):
                if src not in probe:
                    raise GraphValidationError(
                        f"cannot size the recurrent output of {src!r} at t = 0: every input of it is recurrent"
                    )
                previous[src] = torch.zeros_like(probe[src])
        states: dict[str, Any] = {n: None for n in self.ops}
        kept: dict[str, list[Tensor]] = {n: [] for n in keep | set(self.outputs)}
        for t in range(steps):
            current = self._step(xs, t, states, previous)
            previous = {src: current[src] for src in delayed_src}
            for name, seq in kept.items():
                seq.append(current[name])
        return {name: torch.cat(seq) for name, seq in kept.items() if seq}

    @torch.no_grad()
    def run(self, inputs: Tensor | dict[str, Tensor], *, record: bool | Iterable[str] = True) -> InterpreterResult:
        """Run the graph on ``inputs`` (``[T, B, *shape]`` per Input node; a bare tensor for a one-input graph).

        Args:
            inputs: a tensor or a dict Input name -> tensor; cast to the interpreter's dtype and device.
            record: True records every node's output, False none, or an iterable of node names.

        Returns:
            `InterpreterResult`; fresh state every call (state zero / as the convention says at t = 0).
        """
        xs, steps = self._prepare(inputs)
        keep = self._keep(record)
        values = self._run_steps(xs, steps, keep) if self.stepwise else self._run_sequence(xs, keep)
        records = {n: values[n] for n in self.ops if n in keep and n in values}
        spikes = {n: v for n, v in records.items() if self.ops[n].spiking}
        return InterpreterResult({n: values[n] for n in self.outputs}, records, spikes)


def run_graph(
    graph_or_path: nir.NIRGraph | str | os.PathLike, inputs: Tensor | dict[str, Tensor], **kw: Any
) -> InterpreterResult:
    """Read the graph if a path is given (snnav's reader, which knows the extension nodes), then run it.

    Keyword arguments go to `Interpreter` (dt, convention, dtype, device, stepwise) and `Interpreter.run` (record).
    """
    record = kw.pop("record", True)
    graph = graph_or_path
    if not isinstance(graph, nir.NIRGraph):
        graph = read_graph(graph_or_path)
    return Interpreter(graph, **kw).run(inputs, record=record)

