"""The Lava plan of a NIR graph: processes, weights, connections, latencies and readouts, as plain numpy data.

`hardware_sims.plan.lowering.build_plan` lowers a graph into a `Plan` without importing or running Lava.
`hardware_sims.lava.build` turns a plan into Lava processes; the quantizer (`hardware_sims.fixed_point.quantize`) and the
batched emulator read the same structure. Everything is in NIR layout (C-order flattening of the NIR shape, conv
weights in torch's ``(C_out, C_in/groups, kh, kw)`` cross-correlation form); the only conversion to Lava's
``(X, Y, C)`` layout is in `hardware_sims.lava.layout`.

Timing (SEMANTICS.md): a process's ``latency`` is the Lava step, counted from the start of a sample, at which its
output carries NIR step 0; ``live_step`` is the step at which its input carries NIR step 0 (its state is reset to
zero there). Synapses have ``latency = live_step + 1``, neurons and delays ``latency = live_step`` (a delay of k
steps outputs the aligned value, see `ProcessSpec`), a WINDOW extension ``live_step + W``. A sample of T steps runs
for ``plan.steps_per_sample(T) = T + plan.max_latency`` steps.

Process kinds and their ``params`` (float64 unless said otherwise):

============  ==========================================================================================
kind          params
============  ==========================================================================================
input         ``{}`` (the data come with the run)
dense         ``weights``: ndarray ``(out_size, in_size)``; every factor (Scale, neuron gain r*dt/tau) folded
sparse        ``weights``: scipy CSR ``(out_size, in_size)``
conv          ``weight`` ``(C_out, C_in/groups, kh, kw)`` (cross-correlation), ``stride`` ``(sh, sw)``,
              ``padding`` ``(ph, pw)`` (symmetric), ``dilation`` ``(dh, dw)``, ``groups`` (int)
neuron        ``nir_type`` (str), ``du``, ``dv``, ``vth`` (floats), ``bias`` (ndarray over ``shape``: Lava's
              ``bias_mant``), ``read`` ("s_out" spikes or "v" membrane)
delay         ``steps``: int ndarray over ``shape`` (output = input ``steps`` Lava steps earlier, zeros before
              ``live_step``), ``mute_preroll`` (bool: output zeros before ``live_step``, the recurrent gate)
extension     ``node`` (the NIR extension node), ``type_name``, ``window`` (int), ``bias`` (``{port: ndarray over
              the port's shape}``: the constant part of a port's value, an upstream bias, which the process adds
              to what the port receives; empty when no port has one)
============  ==========================================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ProcessSpec", "Connection", "ReadTerm", "Readout", "Plan", "PROCESS_KINDS", "STATE_VARS",
           "with_state_readouts", "state_readout_name"]

PROCESS_KINDS: tuple[str, ...] = ("input", "dense", "sparse", "conv", "neuron", "delay", "extension")
SYNAPSE_KINDS: tuple[str, ...] = ("dense", "sparse", "conv")
STATE_VARS: tuple[str, ...] = ("v", "u")
"""The state of a neuron population (Lava ``LIFReset``): membrane ``v`` and current ``u``."""


@dataclass(frozen=True)
class ProcessSpec:
    """One Lava process to create.

    Attributes:
        name: unique process name (also the Lava process name).
        kind: one of `PROCESS_KINDS`; ``params`` as in the module table.
        node: the NIR node it implements (a linear node for a synapse; for an inserted gain synapse, delay or gate,
            the node whose input it serves).
        role: why it exists: "node" (the NIR node itself), "gain" (a diagonal synapse that applies a factor where
            no synapse exists to fold it into), "align" (a delay inserted to align converging paths, possibly merged
            with a NIR Delay), "gate" (mutes a recurrent source before its first live step), "readout" (a synapse
            that only feeds a graph output), "bias" (a bias source -- a neuron spiking at every step -- and its synapse,
            carrying a constant into a Cuba neuron's current u).
        shape: NIR shape of its output (synapses: the layer's output shape).
        in_shape: NIR shape of its input (synapses; None otherwise).
        latency: Lava step within a sample at which its output carries NIR step 0.
        live_step: Lava step within a sample at which its input carries NIR step 0; stateful processes reset there.
        graded_in: its input messages are graded values rather than binary spikes (Lava ``num_message_bits > 0``).
        params: kind-specific parameters (module table).
    """

    name: str
    kind: str
    node: str
    role: str
    shape: tuple[int, ...]
    in_shape: tuple[int, ...] | None
    latency: int
    live_step: int
    graded_in: bool
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def spiking(self) -> bool:
        """True when the output messages are binary spikes (spiking neurons; delays/gates of spikes)."""
        if self.kind == "neuron":
            return self.params["read"] == "s_out"
        if self.kind == "delay":
            return not self.graded_in
        return False


@dataclass(frozen=True)
class Connection:
    """``src``'s output port feeds port ``port`` of ``dst`` (several connections into one port are summed)."""

    src: str
    dst: str
    port: str


@dataclass(frozen=True)
class ReadTerm:
    """One recorded signal: NIR step t of the term is ``factor * x[latency + t - shift]`` (0 where t < shift).

    ``var`` is "s_out" (a neuron's spikes, an input's or extension's messages), "a_out" (a synapse's output), "v"
    (a neuron's membrane) or "u" (its current), read at the end of the step. ``factor`` (None = 1) broadcasts to
    the readout's shape.
    """

    proc: str
    var: str
    latency: int
    factor: np.ndarray | None = None
    shift: int = 0


@dataclass(frozen=True)
class Readout:
    """How to read a NIR node's output: the sum of its terms plus a constant ``bias`` (None = 0), shaped ``shape``."""

    node: str
    shape: tuple[int, ...]
    terms: tuple[ReadTerm, ...]
    bias: np.ndarray | None = None


@dataclass(frozen=True)
class Plan:
    """A NIR graph lowered to Lava processes (see the module docstring).

    Attributes:
        processes: every process, by name, in creation order (inputs first).
        connections: every port-to-port connection.
        inputs: graph Input name -> its process (kind "input"); input_shapes: Input name -> NIR shape.
        outputs: the graph's Output node names (each has a readout).
        readouts: NIR node -> how to read it back (all neuron, extension, input and Output nodes, the wiring nodes
            whose value needs no extra process, and the nodes asked for with ``extra_readouts``).
        node_latency: NIR signal node (input, neuron, extension) -> Lava step of its NIR step 0.
        max_latency: the largest latency of any process.
        dt: seconds per step (None when no node needs it).
        metadata: the graph's metadata (``readout_step``, ``time_steps`` when snnav wrote them).
        precision: "float", or "fixed" for a quantized plan.
        quant: the quantizer's per-process data of a fixed-point plan (None in float).
        convention: whose stepping the neurons follow: "nir", "snntorch" or "norse" (`hardware_sims.plan.neurons`).
        convention_note: why that convention (the caller's choice, or what `detect_convention` saw).
    """

    processes: Mapping[str, ProcessSpec]
    connections: tuple[Connection, ...]
    inputs: Mapping[str, str]
    input_shapes: Mapping[str, tuple[int, ...]]
    outputs: tuple[str, ...]
    readouts: Mapping[str, Readout]
    node_latency: Mapping[str, int]
    max_latency: int
    dt: float | None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    precision: str = "float"
    quant: Any = None
    convention: str = "nir"
    convention_note: str = ""

    def steps_per_sample(self, time_steps: int) -> int:
        """Lava steps one sample of `time_steps` NIR steps runs for (the last output needs ``max_latency`` more)."""
        return int(time_steps) + self.max_latency

    def of_kind(self, *kinds: str) -> list[ProcessSpec]:
        """The processes of the given kinds, in plan order."""
        return [p for p in self.processes.values() if p.kind in kinds]

    @property
    def inserted_delays(self) -> list[ProcessSpec]:
        """The delay processes inserted for alignment (role "align"; NIR Delay nodes merge into them)."""
        return [p for p in self.processes.values() if p.kind == "delay" and p.role == "align"]

    @property
    def windows(self) -> dict[str, int]:
        """Extension process name -> its window (WINDOW nodes only)."""
        return {p.name: int(p.params["window"]) for p in self.of_kind("extension") if p.params["window"]}

    def inbound(self, proc: str) -> list[Connection]:
        """The connections into `proc`, in plan order."""
        return [c for c in self.connections if c.dst == proc]

    def summary(self) -> str:
        """One line per process: name, kind, role, shape, live step -> latency."""
        lines = [f"{len(self.processes)} processes, max latency {self.max_latency}"]
        for p in self.processes.values():
            lines.append(f"  {p.name:<32} {p.kind:<9} {p.role:<8} {str(p.shape):<16} L {p.live_step}->{p.latency}")
        return "\n".join(lines)


def state_readout_name(node: str, var: str) -> str:
    """The readout name of a neuron's state variable: ``"<node>#<var>"`` (``var`` in `STATE_VARS`)."""
    return f"{node}#{var}"


def with_state_readouts(plan: Plan, neurons: Iterable[str] | None = None,
                        variables: Iterable[str] = STATE_VARS) -> Plan:
    """`plan` plus a readout ``"<node>#<var>"`` of each named neuron's state, aligned like its spikes.

    Row t of such a record is the variable at the end of the neuron's NIR step t (Lava step ``latency + t``, where
    Lava's ``LIFReset`` has just updated ``u`` then ``v``, and reset ``v`` where it spiked). Real units (fixed point:
    the integers times ``2**-(12 + state_exp)``, exact in float64).

    Args:
        plan: a plan (float or quantized).
        neurons: NIR neuron node names (LIF, IF, CubaLIF, LI, I, Threshold: one ``LIFReset`` each); default every
            spiking neuron.
        variables: a subset of `STATE_VARS`.

    Raises:
        ValueError: a name that is not a neuron node of the plan, or an unknown variable.
    """
    variables = tuple(variables)
    bad_vars = sorted(set(variables) - set(STATE_VARS))
    if bad_vars:
        raise ValueError(f"unknown state variable(s) {bad_vars}; a neuron's state is {list(STATE_VARS)}")
    by_node = {p.node: p for p in plan.of_kind("neuron") if p.role == "node"}
    if neurons is None:
        chosen = [p for p in by_node.values() if p.params["read"] == "s_out"]
    else:
        names = [neurons] if isinstance(neurons, str) else list(neurons)
        unknown = [n for n in names if n not in by_node]
        if unknown:
            raise ValueError(f"cannot record the state of {unknown}: not neuron nodes of this graph; its neuron nodes "
                             f"are {sorted(by_node)}")
        chosen = [by_node[n] for n in dict.fromkeys(names)]
    extra = {state_readout_name(p.node, var): Readout(p.node, p.shape, (ReadTerm(p.name, var, p.latency),))
             for p in chosen for var in variables}
    return dataclasses.replace(plan, readouts={**plan.readouts, **extra})
