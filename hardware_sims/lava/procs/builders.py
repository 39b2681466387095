"""The table the Lava compiler uses to turn an snnav extension node into a Lava process.

``EXTENSION_BUILDERS[type_name](node, name, **fixed) -> ExtensionBuild(process, in_ports, out_port, latency)``:

* ``process``: the custom Lava process (float and fixed-point models, chosen by the run config's ``select_tag``);
* ``in_ports``: ``{port name: InPort}`` for every port of the extension (``node.PORTS``); connect every source of a
  port to it (Lava sums several connections into one InPort, like NIR's fan-in);
* ``out_port``: the graded OutPort ``s_out``;
* ``latency``: 0 for per-step nodes, ``node.window`` for WINDOW nodes (output of step t appears at step t + W).

Keyword arguments (all optional) set the fixed-point formats and the output gain, see ``hardware_sims.extensions.ports``:
``in_formats={port: PortFormat}`` (default binary spikes; ``Gate.gate`` 24-bit graded), ``out_exp`` (default
lossless for a dyadic factor), ``out_bits`` (default 24), ``gain`` (float multiplied after the node's value, e.g. a
consumer's input weight folded in; default 1), ``bias`` (``{port: constant}`` added to what a port receives, no
latency: an upstream bias; real values in float, mantissas in the port's exponent in fixed point; see
``base.ExtensionProcess``). ``process.out_exp`` tells the consumer how to read the messages.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from lava.magma.core.process.ports.ports import InPort, OutPort

from export.ir.extensions import (
    AttentionApply,
    AttentionScores,
    CausalFusion,
    CausalSpikeAttention,
    ComplementaryFusion,
    Gate,
    SpikeAttention,
)
from hardware_sims.lava.procs.attention_apply import AttentionApplyProcess
from hardware_sims.lava.procs.attention_scores import AttentionScoresProcess
from hardware_sims.lava.procs.base import ExtensionProcess
from hardware_sims.lava.procs.causal import CausalFusionProcess, CausalSpikeAttentionProcess
from hardware_sims.lava.procs.complementary_fusion import ComplementaryFusionProcess
from hardware_sims.lava.procs.gate import GateProcess
from hardware_sims.lava.procs.spike_attention import SpikeAttentionProcess

__all__ = ["ExtensionBuild", "EXTENSION_BUILDERS", "PROCESS_CLASSES", "build_extension"]


class ExtensionBuild(NamedTuple):
    """A built extension node (unpacks as ``process, in_ports, out_port, latency``)."""

    process: ExtensionProcess
    in_ports: dict[str, InPort]
    out_port: OutPort
    latency: int


def _built(process: ExtensionProcess) -> ExtensionBuild:
    ports = {p: getattr(process, p) for p in process.PORTS}
    return ExtensionBuild(process, ports, process.s_out, process.latency)


def build_spike_attention(node: SpikeAttention, name: str, **fixed: Any) -> ExtensionBuild:
    return _built(SpikeAttentionProcess(shape=node.shape, num_heads=node.num_heads, scale=node.scale,
                                        axis=node.axis, layout=node.layout, window=node.window, name=name, **fixed))


def build_attention_scores(node: AttentionScores, name: str, **fixed: Any) -> ExtensionBuild:
    return _built(AttentionScoresProcess(shape=node.shape, num_heads=node.num_heads, name=name, **fixed))


def build_attention_apply(node: AttentionApply, name: str, **fixed: Any) -> ExtensionBuild:
    return _built(AttentionApplyProcess(shape=node.shape, num_heads=node.num_heads, scale=node.scale, name=name,
                                        **fixed))


def build_complementary_fusion(node: ComplementaryFusion, name: str, **fixed: Any) -> ExtensionBuild:
    return _built(ComplementaryFusionProcess(shape=node.shape, window=node.window, name=name, **fixed))


def build_gate(node: Gate, name: str, **fixed: Any) -> ExtensionBuild:
    return _built(GateProcess(shape=node.shape, name=name, **fixed))


def build_causal_spike_attention(node: CausalSpikeAttention, name: str, **fixed: Any) -> ExtensionBuild:
    return _built(CausalSpikeAttentionProcess(shape=node.shape, num_heads=node.num_heads, scale=node.scale,
                                              name=name, **fixed))


def build_causal_fusion(node: CausalFusion, name: str, **fixed: Any) -> ExtensionBuild:
    return _built(CausalFusionProcess(shape=node.shape, name=name, **fixed))


EXTENSION_BUILDERS: dict[str, Callable[..., ExtensionBuild]] = {
    SpikeAttention.type_name: build_spike_attention,
    AttentionScores.type_name: build_attention_scores,
    AttentionApply.type_name: build_attention_apply,
    ComplementaryFusion.type_name: build_complementary_fusion,
    Gate.type_name: build_gate,
    CausalSpikeAttention.type_name: build_causal_spike_attention,
    CausalFusion.type_name: build_causal_fusion,
}

PROCESS_CLASSES: dict[str, type[ExtensionProcess]] = {
    SpikeAttention.type_name: SpikeAttentionProcess,
    AttentionScores.type_name: AttentionScoresProcess,
    AttentionApply.type_name: AttentionApplyProcess,
    ComplementaryFusion.type_name: ComplementaryFusionProcess,
    Gate.type_name: GateProcess,
    CausalSpikeAttention.type_name: CausalSpikeAttentionProcess,
    CausalFusion.type_name: CausalFusionProcess,
}


def build_extension(node: Any, name: str, **fixed: Any) -> ExtensionBuild:
    """``EXTENSION_BUILDERS[node.type_name](node, name, **fixed)`` with a clear error for a non-extension node."""
    builder = EXTENSION_BUILDERS.get(getattr(node, "type_name", None))
    if builder is None:
        raise TypeError(f"node {name!r} ({type(node).__name__}) is not an snnav extension node; the Lava extension "
                        f"processes cover {sorted(EXTENSION_BUILDERS)}")
    return builder(node, name, **fixed)
