"""Quantize a whole Lava `Plan` (``hardware_sims.plan.plan``): one state scale per fan-in group, then every
synapse and neuron in Loihi's formats (pure numpy; reads the plan's plain data, imports no Lava).

Rules (conventions in :mod:`hardware_sims.fixed_point.quantize`):

* **Groups.** A synapse's integer output means ``a_out * 2**-(6 + state_exp)``, so every process it feeds (through
  alignment delays) must use the same ``state_exp``. Neuron populations and extension input ports that share a
  synapse form one group (union-find); the group takes the smallest ``state_exp`` its members prefer (the widest
  range): a neuron prefers :func:`~hardware_sims.fixed_point.quantize.choose_state_exp` (threshold, ``v_headroom``, bias; readouts
  ``readout_v_max``), an extension port or a read-only synapse ``port_state_exp``.
* **Messages.** Spikes have exponent 0; a graded Input ``input_exp`` (its data go through
  :func:`~hardware_sims.fixed_point.quantize.quantize_messages`); a delay passes its source's; an extension's output exponent is
  what ``source_exps`` says (a mapping, or a callable ``(name, port_formats) -> out_exp`` that builds the extension's
  fixed-point plan from the formats of its inputs). A synapse's ``input_exp`` is its source's exponent.
* **Direct inputs.** A message sent straight into a LIF (no synapse: spikes, a delay, an extension's output)
  arrives as ``m << 6``, so it fixes that group's ``state_exp = exp(m) - 6`` (spikes: -6, integer thresholds);
  a plan that wants finer neurons should give such paths an identity synapse.
* **Extension ports** get ``(exp, max_abs)`` of what arrives: ``(6 + state_exp, sum of a_out bounds)`` from
  synapses, ``(0, number of sources)`` from spikes, ``(e, 2**23)`` from a graded source; sources of different
  exponents into one port are refused.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.errors import FixedPointError
from hardware_sims.fixed_point.quantize import (
    V_HEADROOM,
    QuantLIF,
    QuantReport,
    QuantWeights,
    choose_state_exp,
    quantize_lif,
    quantize_weights,
)

__all__ = ["PlanQuant", "quantize_plan", "DEFAULT_INPUT_EXP", "DEFAULT_PORT_STATE_EXP"]

DEFAULT_INPUT_EXP = 8
"""Fractional bits of graded Input data (resolution 1/256, range +-32768 in 24-bit messages)."""
DEFAULT_PORT_STATE_EXP = 6
"""``state_exp`` of synapses into extension ports: ``a_out`` with 12 fractional bits."""
GRADED_MAX_ABS = 2 ** (lf.STATE_BITS - 1)
SYNAPSES = ("dense", "sparse", "conv")


@dataclass(frozen=True)
class PlanQuant:
    """The quantizer's data of a fixed-point plan (``plan.quant``).

    Attributes:
        synapses: synapse process -> its weights (``mant``, ``exp``, ``sign_mode``; conv: ``conv_weight()``).
        neurons: neuron process -> its LIF parameters (``bias_mant`` shaped like ``params["bias"]``).
        state_exps: neuron and synapse process -> ``state_exp`` (real state = integer / 2**(12 + state_exp)).
        message_exps: process -> fractional bits of the messages it sends (``s_out``, or ``a_out`` of a synapse).
        port_formats: ``(extension process, port)`` -> ``(exp, max_abs)`` for ``extensions.ports.PortFormat``.
        report: every clip and rounding.
    """

    synapses: Mapping[str, QuantWeights]
    neurons: Mapping[str, QuantLIF]
    state_exps: Mapping[str, int]
    message_exps: Mapping[str, int]
    port_formats: Mapping[tuple[str, str], tuple[int, int]]
    report: QuantReport

    def read_exp(self, proc: str, var: str) -> int:
        """Fractional bits of a recorded variable: ``real = integer * 2**-read_exp(proc, var)``."""
        if var in ("v", "u"):  # a neuron's state
            return lf.STATE_FRAC_BITS + self.state_exps[proc]
        return self.message_exps[proc]


class _Groups:
    def __init__(self):
        self.parent: dict[Any, Any] = {}

    def find(self, key):
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, keys):
        keys = list(keys)
        for k in keys[1:]:
            self.parent[self.find(k)] = self.find(keys[0])


class _PlanQuantizer:
    def __init__(self, plan, state_exp, source_exps, input_exp, input_max, port_state_exp, v_headroom, readout_v_max,
                 weight_bits, weight_exps=None):
        self.weight_exps = dict(weight_exps or {})
        self.plan, self.procs, self.input_max, self.weight_bits = plan, plan.processes, input_max, weight_bits
        self.fixed_state_exp, self.input_exp = state_exp, input_exp
        self.exp_fn = source_exps if callable(source_exps) else None
        self.exp_map = dict(source_exps or {}) if self.exp_fn is None else {}
        self.port_state_exp, self.v_headroom, self.readout_v_max = port_state_exp, v_headroom, readout_v_max
        self.out, self.into = {}, {}
        for c in plan.connections:
            self.out.setdefault(c.src, []).append(c)
            self.into.setdefault(c.dst, []).append(c)
        self.synapses, self.msg, self.ports, self.visiting = {}, {}, {}, set()

    def consumers(self, name: str) -> list[tuple]:
        """Group keys fed by process `name`, following alignment delays."""
        keys = []
        for c in self.out.get(name, []):
            kind = self.procs[c.dst].kind
            if kind == "delay":
                keys += self.consumers(c.dst)
            elif kind == "neuron":
                keys.append(("neuron", c.dst))
            elif kind == "extension":
                keys.append(("port", c.dst, c.port))
        return keys

    def preferred(self, key) -> int:
        if self.fixed_state_exp is not None:
            return self.fixed_state_exp
        if key[0] != "neuron":
            return self.port_state_exp
        p = self.procs[key[1]].params
        vth = float(p["vth"])
        v_max = self.readout_v_max if not math.isfinite(vth) else self.v_headroom * max(vth, 2.0**-lf.STATE_FRAC_BITS)
        bias = np.asarray(p.get("bias", 0.0), dtype=np.float64)
        return choose_state_exp(vth, v_max=v_max, bias_max=float(np.abs(bias).max(initial=0.0)))

    def assign_groups(self) -> None:
        groups = _Groups()
        members = [("neuron", p.name) for p in self.procs.values() if p.kind == "neuron"]
        for p in self.procs.values():
            if p.kind in SYNAPSES:
                keys = self.consumers(p.name) or [("readout", p.name)]
                members += keys
                groups.union(keys)
        best: dict[Any, int] = {}
        for key in members:
            root = groups.find(key)
            best[root] = min(best.get(root, lf.STATE_BITS), self.preferred(key))
        self.group_exp = {key: best[groups.find(key)] for key in members}
        forced: dict[Any, tuple[int, str]] = {}  # a message straight into a LIF's a_in fixes the scale
        for key in members:
            if key[0] != "neuron":
                continue
            for c in self.into.get(key[1], []):
                if self.procs[self._origin(c.src)].kind not in SYNAPSES:
                    se, root = self.source_exp(c.src) - lf.ACT_SHIFT, groups.find(key)
                    if forced.get(root, (se,))[0] != se:
                        raise FixedPointError(f"neuron {key[1]!r} receives messages of different exponents directly "
                                         f"(from {forced[root][1]!r} and {c.src!r}); route them through synapses")
                    forced[root] = (se, c.src)
        for root, (se, src) in forced.items():
            done = [n for n, q in self.synapses.items() if groups.find(self._key(n)) == root and q.state_exp != se]
            if done:
                raise FixedPointError(f"{src!r} feeds a neuron directly, fixing its state_exp to {se}, but synapses {done} "
                                 "of the same group were needed earlier at another scale; insert a synapse")
        self.group_exp = {key: forced.get(groups.find(key), (best[groups.find(key)],))[0] for key in members}

    def _origin(self, name: str) -> str:
        while self.procs[name].kind == "delay" and self.into.get(name):
            name = self.into[name][0].src
        return name

    def _key(self, synapse: str) -> tuple:
        return (self.consumers(synapse) or [("readout", synapse)])[0]

    def spiking(self, name: str) -> bool:
        """True when `name` sends binary spikes (a spiking neuron, a binary Input, a delay of either)."""
        spec = self.procs[name]
        if spec.kind == "input":
            return not any(self.procs[c.dst].graded_in for c in self.out.get(name, []))
        return spec.kind in ("neuron", "delay") and spec.spiking

    def source_exp(self, name: str) -> int:
        if name in self.msg:
            return self.msg[name]
        spec = self.procs[name]
        if spec.kind == "input":
            exp = 0 if self.spiking(name) else int(self.exp_map.get(name, self.input_exp))
        elif spec.kind == "neuron":
            exp = 0
        elif spec.kind == "delay":
            exp = self.source_exp(self.into[name][0].src) if self.into.get(name) else 0
        elif spec.kind in SYNAPSES:
            exp = lf.ACT_SHIFT + self.quantize_synapse(name).state_exp
        else:  # extension
            exp = self.extension_exp(name)
        self.msg[name] = int(exp)
        return self.msg[name]

    def extension_exp(self, name: str) -> int:
        if name in self.visiting:
            raise FixedPointError(f"extension {name!r} feeds itself without a spiking neuron in the loop; its message "
                             "exponent cannot be derived -- pass it in source_exps")
        self.visiting.add(name)
        formats = self.port_formats_of(name)
        self.visiting.discard(name)
        if self.exp_fn is not None:
            return int(self.exp_fn(name, formats))
        if name not in self.exp_map:
            raise FixedPointError(f"extension {name!r} sends graded messages into a synapse; quantize_plan needs their "
                             "exponent: pass source_exps={name: process.out_exp} or a callable (name, port_formats) "
                             "-> out_exp")
        return int(self.exp_map[name])

    def port_formats_of(self, ext: str) -> dict[str, tuple[int, int]]:
        by_port: dict[str, list[tuple[int, int]]] = {}
        for c in self.into.get(ext, []):
            src = self.procs[c.src]
            exp = self.source_exp(c.src)
            if src.kind in SYNAPSES:
                fmt = (exp, self.quantize_synapse(c.src).a_out_bound)
            elif self.spiking(c.src):
                fmt = (exp, 1)
            else:
                graded_input = self.procs[self._origin(c.src)].kind == "input"
                fmt = (exp, int(np.rint(self.input_max * 2.0**exp)) if graded_input else GRADED_MAX_ABS)
            by_port.setdefault(c.port, []).append(fmt)
        out = {}
        for port, fmts in by_port.items():
            exps = sorted({e for e, _ in fmts})
            if len(exps) > 1:
                raise FixedPointError(f"extension {ext!r} port {port!r} sums messages of different exponents {exps}; "
                                 "route them through one synapse layer (a gain synapse) so they share a scale")
            out[port] = (exps[0], int(sum(m for _, m in fmts)))
            self.ports[(ext, port)] = out[port]
        return out

    def quantize_synapse(self, name: str) -> QuantWeights:
        if name not in self.synapses:
            spec = self.procs[name]
            key = self._key(name)
            if not self.into.get(name):
                raise FixedPointError(f"synapse {name!r} has no input connection; the plan is incomplete")
            src = self.into[name][0].src
            ie = self.source_exp(src)
            w = spec.params["weights"] if spec.kind != "conv" else spec.params["weight"]
            origin = self.procs[self._origin(src)]
            graded_max = 1.0 if ie == 0 else self.input_max if origin.kind == "input" else GRADED_MAX_ABS * 2.0**-ie
            self.synapses[name] = quantize_weights(
                w, state_exp=self.group_exp[key], input_exp=ie, target="conv" if spec.kind == "conv" else "dense",
                input_max=graded_max, signed_input=bool(spec.graded_in), weight_bits=self.weight_bits,
                exp=self.weight_exps.get(name, self.weight_exps.get(spec.node) if spec.role == "node" else None))
        return self.synapses[name]

    def run(self):
        self.assign_groups()
        neurons, layers, state_exps = {}, [], {}
        for spec in self.procs.values():
            if spec.kind in SYNAPSES:
                q = self.quantize_synapse(spec.name)
                layers.append(q.report(spec.name))
                state_exps[spec.name] = q.state_exp
            elif spec.kind == "neuron":
                p, se = spec.params, self.group_exp[("neuron", spec.name)]
                bias = np.asarray(p.get("bias", 0.0), dtype=np.float64)
                q = quantize_lif(float(p["dv"]), float(p["du"]), float(p["vth"]), bias, state_exp=se)
                neurons[spec.name] = dataclasses.replace(q, bias_mant=q.bias_mant.reshape(bias.shape or (1,)))
                layers.append(q.report(spec.name))
                state_exps[spec.name] = se
        for spec in self.procs.values():
            if spec.kind == "extension":
                self.port_formats_of(spec.name)
            if spec.kind != "extension" or self.exp_fn is not None or spec.name in self.exp_map:
                self.source_exp(spec.name)
        return PlanQuant(self.synapses, neurons, state_exps, dict(self.msg), dict(self.ports),
                         QuantReport(tuple(layers)))


def quantize_plan(plan, *, state_exp: int | None = None,
                  source_exps: Mapping[str, int] | Callable[[str, dict], int] | None = None,
                  input_exp: int = DEFAULT_INPUT_EXP, input_max: float = 1.0,
                  port_state_exp: int = DEFAULT_PORT_STATE_EXP, v_headroom: float = V_HEADROOM,
                  readout_v_max: float = 64.0,
                  weight_bits: int = lf.WEIGHT_BITS, weight_exps: Mapping[str, int] | None = None):
    """Quantize every synapse and neuron of a float `Plan`.

    Args:
        plan: a float ``Plan`` (``build_plan``).
        state_exp: one ``state_exp`` for every group (0: Lava/slayer's ``vth_mant = theta * 64``); None chooses per
            group (module docstring).
        source_exps: message exponents of extension processes (and overrides for Inputs), or a callable.
        input_exp: fractional bits of graded Input data.
        input_max: largest ``|x|`` of graded Input data (only for the worst-case ``a_out`` bounds in the report;
            other graded messages are bounded by their 24-bit range).
        port_state_exp: preferred ``state_exp`` of extension ports and read-only synapses.
        v_headroom: a spiking population's ``|v|`` range in thresholds (default `V_HEADROOM` = 16); readout_v_max: a readout's, in real units.
            This is the threshold scale: a population takes the largest ``state_exp`` whose 24-bit ``v`` holds
            ``v_headroom * vth``, so its threshold mantissa is ``vth * 2**(6 + state_exp)``; multiplying `v_headroom`
            by ``2**k`` lowers ``state_exp`` by k (while the 17-bit threshold and the bias allow it), i.e. scales the
            thresholds and the weights' integer grid down by ``2**k``: coarser thresholds and inputs, more headroom.
        weight_bits: Loihi's ``numWeightBits`` for every synapse (1..8, default 8 = Lava's default; see
            `hardware_sims.fixed_point.quantize.quantize_weights`). Lava's Dense/Sparse get it as ``num_weight_bits``.
        weight_exps: pinned weight exponents, by synapse process name or by NIR node name (the synapse that
            implements the node itself, role "node"); the others are chosen as usual. Quantization-aware fine-tuning
            trains against these and writes them into ``graph.metadata["quantizer"]`` (`prepare_fixed` reads it).

    Returns:
        ``(fixed_plan, report)``: the plan with ``precision="fixed"`` and ``quant`` a :class:`PlanQuant`.
    """
    if getattr(plan, "precision", "float") != "float":
        raise FixedPointError(f"quantize_plan expects a float plan, got precision={plan.precision!r}")
    lf.weight_mant_grid(lf.SignMode.MIXED, weight_bits)  # validates weight_bits
    quant = _PlanQuantizer(plan, state_exp, source_exps, input_exp, input_max, port_state_exp, v_headroom,
                           readout_v_max, int(weight_bits), weight_exps).run()
    return dataclasses.replace(plan, precision="fixed", quant=quant), quant.report
