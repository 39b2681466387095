"""What each extension process is, without Lava: ports, shapes, latency, parameters and the two ``evaluate``\\ s.

The Lava processes of this folder are thin wrappers around this module: a process's constructor takes the
`ExtensionSemantics` of its arguments (``proc_params`` = `ExtensionSemantics.params`, ports from ``in_shapes``,
``s_out`` from ``out_shape``, window Vars from ``window``), and its float / fixed-point model's ``evaluate`` is
`ExtensionSemantics.float_fn` / ``fixed_fn`` applied to ``proc_params``. The batched emulator
(`hardware_sims.emulator.extensions`) calls the same functions on the same parameters without importing Lava, so a
machine without Lava (a GPU box) emulates graphs with extension nodes bit for bit as Lava would run them.

=========================  ================================  =========  ==============================================
constructor                node                              window     accumulator / factor (fixed point)
=========================  ================================  =========  ==============================================
`spike_attention`          ``snnav.SpikeAttention``          0 / W      ``sum Q K V`` / ``scale * gain``
`attention_scores`         ``snnav.AttentionScores``         0          ``sum_i Q K`` / ``gain``
`attention_apply`          ``snnav.AttentionApply``          0          ``sum_m P V`` / ``scale * gain``
`complementary_fusion`     ``snnav.ComplementaryFusion``     W          ``(sum_m S)(sum_s Tm)`` / ``gain / (N W)``
`gate`                     ``snnav.Gate``                    0          ``X G`` / ``gain``
`causal_spike_attention`   ``snnav.CausalSpikeAttention``    0, state   ``sum_i Q_t KV_t`` / ``scale * gain``
`causal_fusion`            ``snnav.CausalFusion``            0, state   ``(sum_m S_t) Sum_t`` / ``gain / (N (t+1))``
=========================  ================================  =========  ==============================================

RUNNING processes (``state`` not empty) keep their state in arrays named by `ExtensionSemantics.state` plus
``steps_seen`` (the steps since the reset: 0 at the sample's first step, where the state is overwritten rather than
added to, so a reset sets only ``steps_seen``); their ``evaluate`` is ``fn(params, state, *inputs)`` and updates
``state`` in place. The running kernels accept leading batch axes, so the emulator passes a whole batch (its state
arrays carry the batch axis).

Arithmetic: `hardware_sims.extensions.kernels`; formats and requantization: `hardware_sims.extensions.ports`.
Port biases are not part of the semantics (the process adds them to what a port receives, see ``base.py``).
"""

# No `from __future__ import annotations`: the Lava process modules that import this one are re-executed outside
# sys.modules by Lava's model search, where a dataclass cannot resolve string annotations.
import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from export.ir.extensions import (
    AttentionApply,
    AttentionScores,
    CausalFusion,
    CausalSpikeAttention,
    ComplementaryFusion,
    Gate,
    SpikeAttention,
)
from hardware_sims.extensions import kernels as K
from hardware_sims.extensions.ports import (
    GUARD_BITS,
    MANT_BITS,
    OUT_BITS,
    FixedPlan,
    PortFormat,
    graded,
    make_plan,
    requantize,
    to_dyadic,
)

__all__ = ["ExtensionSemantics", "spike_attention", "attention_scores", "attention_apply", "complementary_fusion",
           "gate", "SEMANTICS", "semantics_of", "spike_attention_float", "spike_attention_fixed", "scores_float",
           "scores_fixed", "apply_float", "apply_fixed", "fusion_float", "fusion_fixed", "gate_float", "gate_fixed",
           "causal_spike_attention", "causal_fusion", "causal_attention_float", "causal_attention_fixed",
           "causal_fusion_float", "causal_fusion_fixed", "RUNNING_HORIZON", "new_state"]

RUNNING_HORIZON = 2**12
"""Steps after a reset for which a RUNNING process's fixed-point accumulator is proven exact in int64 (checked when
it is built); the fixed-point models refuse to run further."""

Evaluate = Callable[..., np.ndarray]  # evaluate(params, *inputs) -> output


@dataclass(frozen=True)
class ExtensionSemantics:
    """One extension process, as data.

    Attributes:
        type_name: the extension node's type name.
        ports: input ports, in the order ``evaluate`` takes them.
        in_shapes: port -> shape of what it receives.
        out_shape: shape of ``s_out``.
        window: 0 (per step, latency 0) or W (WINDOW: latency W, ``evaluate`` gets ``(W, *shape)`` buffers).
        params: the process parameters (Lava ``proc_params`` minus ``bias``): the node's parameters, ``window``,
            ``plan`` (the `FixedPlan`), ``gain``.
        float_fn, fixed_fn: ``fn(params, *inputs) -> output`` (float64 / int32 messages of the plan's format);
            for a RUNNING process ``fn(params, state, *inputs)``, updating ``state`` in place.
        state: RUNNING processes: state array name -> per-sample shape (besides ``steps_seen (1,)``); empty for
            per-step and WINDOW processes.
    """

    type_name: str
    ports: tuple[str, ...]
    in_shapes: Mapping[str, tuple[int, ...]]
    out_shape: tuple[int, ...]
    window: int
    params: Mapping[str, Any]
    float_fn: Evaluate
    fixed_fn: Evaluate
    state: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def stateful(self) -> bool:
        """True for a RUNNING process (a state over the steps since the reset, latency 0)."""
        return bool(self.state)

    @property
    def plan(self) -> FixedPlan:
        return self.params["plan"]

    def evaluate(self, fixed: bool) -> Evaluate:
        return self.fixed_fn if fixed else self.float_fn


def _f64(*xs: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(x, dtype=np.float64) for x in xs]


def _i64(*xs: np.ndarray) -> list[np.ndarray]:
    return [np.asarray(x, dtype=np.int64) for x in xs]


def _out(params: Mapping[str, Any], acc: np.ndarray) -> np.ndarray:
    """The int64 accumulator as int32 messages of the plan's output format (rounded, saturated)."""
    return params["plan"].requantize(acc).astype(np.int32)


def _what(cls: str, name: str | None) -> str:
    return f"{cls} {name or ''}".strip()


# ------------------------------------------------------------------------------------------------ SpikeAttention
def spike_attention_float(pp, q, k, v):
    if pp["axis"] == "tokens":
        return K.attention_tokens_float(*_f64(q, k, v), pp["num_heads"], pp["scale"], pp["gain"])
    return K.attention_time_float(*_f64(q, k, v), pp["num_heads"], pp["scale"], pp["layout"], pp["gain"])


def spike_attention_fixed(pp, q, k, v):
    if pp["axis"] == "tokens":
        acc = K.attention_tokens_acc(*_i64(q, k, v), pp["num_heads"])
    else:
        acc = K.time_layout(K.attention_time_acc(*_i64(q, k, v), pp["num_heads"]), pp["layout"])
    return _out(pp, acc)


def spike_attention(*, shape, num_heads: int, scale: float, axis: str = "tokens", layout: str = "clean",
                    window: int = 0, in_formats: dict[str, PortFormat] | None = None, out_exp: int | None = None,
                    out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None) -> ExtensionSemantics:
    """``snnav.SpikeAttention`` (the process's arguments): ``q``, ``k``, ``v`` ``(C, N)`` -> ``(C, N)``."""
    node = SpikeAttention(shape=tuple(shape), num_heads=num_heads, scale=scale, axis=axis, layout=layout,
                          window=window)  # validates the parameters like the NIR node
    c, n = node.shape
    terms = (n if node.axis == "tokens" else node.window) * node.head_dim
    plan = make_plan(_what("SpikeAttentionProcess", name), node.PORTS, in_formats, node.PORTS, terms,
                     node.scale * gain, out_exp, out_bits)
    params = {"shape": node.shape, "num_heads": node.num_heads, "scale": node.scale, "axis": node.axis,
              "layout": node.layout, "window": node.window, "plan": plan, "gain": float(gain)}
    return ExtensionSemantics(node.type_name, node.PORTS, {p: node.shape for p in node.PORTS}, node.shape,
                              node.window, params, spike_attention_float, spike_attention_fixed)


# ----------------------------------------------------------------------------------------------- AttentionScores
def scores_float(pp, q, k):
    return K.attention_scores_float(*_f64(q, k), pp["num_heads"], pp["gain"])


def scores_fixed(pp, q, k):
    return _out(pp, K.attention_scores_acc(*_i64(q, k), pp["num_heads"]))


def attention_scores(*, shape, num_heads: int, in_formats: dict[str, PortFormat] | None = None,
                     out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0,
                     name: str | None = None) -> ExtensionSemantics:
    """``snnav.AttentionScores``: ``q``, ``k`` ``(C, N)`` -> ``(h, N, N)``."""
    node = AttentionScores(shape=tuple(shape), num_heads=num_heads)
    plan = make_plan(_what("AttentionScoresProcess", name), node.PORTS, in_formats, node.PORTS, node.head_dim,
                     gain, out_exp, out_bits)
    n = node.shape[1]
    params = {"shape": node.shape, "num_heads": node.num_heads, "window": 0, "plan": plan, "gain": float(gain)}
    return ExtensionSemantics(node.type_name, node.PORTS, {p: node.shape for p in node.PORTS},
                              (node.num_heads, n, n), 0, params, scores_float, scores_fixed)


# ------------------------------------------------------------------------------------------------ AttentionApply
def apply_float(pp, p, v):
    return K.attention_apply_float(*_f64(p, v), pp["num_heads"], pp["scale"], pp["gain"])


def apply_fixed(pp, p, v):
    return _out(pp, K.attention_apply_acc(*_i64(p, v), pp["num_heads"]))


def attention_apply(*, shape, num_heads: int, scale: float, in_formats: dict[str, PortFormat] | None = None,
                    out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0,
                    name: str | None = None) -> ExtensionSemantics:
    """``snnav.AttentionApply``: ``p`` ``(h, N, N)``, ``v`` ``(C, N)`` -> ``(C, N)``."""
    node = AttentionApply(shape=tuple(shape), num_heads=num_heads, scale=scale)
    c, n = node.shape
    plan = make_plan(_what("AttentionApplyProcess", name), node.PORTS, in_formats, node.PORTS, n,
                     node.scale * gain, out_exp, out_bits)
    params = {"shape": node.shape, "num_heads": node.num_heads, "scale": node.scale, "window": 0, "plan": plan,
              "gain": float(gain)}
    return ExtensionSemantics(node.type_name, node.PORTS, {"p": (node.num_heads, n, n), "v": node.shape},
                              node.shape, 0, params, apply_float, apply_fixed)


# ------------------------------------------------------------------------------------------- ComplementaryFusion
def fusion_float(pp, spatial, temporal):
    return K.fusion_float(*_f64(spatial, temporal), pp["gain"])


def fusion_fixed(pp, spatial, temporal):
    return _out(pp, K.fusion_acc(*_i64(spatial, temporal)))


def complementary_fusion(*, shape, window: int, in_formats: dict[str, PortFormat] | None = None,
                         out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0,
                         name: str | None = None) -> ExtensionSemantics:
    """``snnav.ComplementaryFusion``: ``spatial``, ``temporal`` ``(C, N)`` -> ``(C, N)``, WINDOW of `window` steps."""
    node = ComplementaryFusion(shape=tuple(shape), window=window)
    n = node.shape[1]
    plan = make_plan(_what("ComplementaryFusionProcess", name), node.PORTS, in_formats, node.PORTS,
                     n * node.window, gain / (n * node.window), out_exp, out_bits)
    params = {"shape": node.shape, "window": node.window, "plan": plan, "gain": float(gain)}
    return ExtensionSemantics(node.type_name, node.PORTS, {p: node.shape for p in node.PORTS}, node.shape,
                              node.window, params, fusion_float, fusion_fixed)


# ---------------------------------------------------------------------------------------------------------- Gate
def gate_float(pp, x, g):
    return K.gate_float(*_f64(x, g), pp["gain"])


def gate_fixed(pp, x, g):
    return _out(pp, K.gate_acc(*_i64(x, g)))


def gate(*, shape, in_formats: dict[str, PortFormat] | None = None, out_exp: int | None = None,
         out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None) -> ExtensionSemantics:
    """``snnav.Gate``: ``x`` ``(C, N)``, ``gate`` ``(1,)`` (default format: 24-bit graded, exponent 0) -> ``(C, N)``."""
    node = Gate(shape=tuple(shape))
    plan = make_plan(_what("GateProcess", name), node.PORTS, in_formats, node.PORTS, 1, gain, out_exp, out_bits,
                     defaults={"gate": graded(0)})
    params = {"shape": node.shape, "window": 0, "plan": plan, "gain": float(gain)}
    return ExtensionSemantics(node.type_name, node.PORTS, {"x": node.shape, "gate": (1,)}, node.shape, 0, params,
                              gate_float, gate_fixed)


# --------------------------------------------------------------------------------------------- running processes
def new_state(sem: ExtensionSemantics, fixed: bool, batch: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """Zeroed state arrays of a RUNNING process (with leading `batch` axes), and ``steps_seen``."""
    dtype = np.int64 if fixed else np.float64
    state = {name: np.zeros((*batch, *shape), dtype=dtype) for name, shape in sem.state.items()}
    state["steps_seen"] = np.zeros(1, dtype=np.int32)
    return state


def _first(state: Mapping[str, np.ndarray], fixed: bool, what: str) -> tuple[bool, int]:
    """(is this the sample's first step, the step count t + 1), advancing ``steps_seen``."""
    seen = K.advance(state["steps_seen"])
    if fixed and seen >= RUNNING_HORIZON:
        raise ValueError(f"{what}: {seen + 1} steps since the reset exceed RUNNING_HORIZON = {RUNNING_HORIZON}, the "
                         "steps for which its fixed-point accumulator is proven exact; reset it per sample")
    return seen == 0, seen + 1


def causal_attention_float(pp, st, q, k, v):
    first, _ = _first(st, False, "CausalSpikeAttention")
    q, k, v = _f64(q, k, v)
    K.causal_kv_update(st["kv"], first, k, v, pp["num_heads"])
    return K.causal_attention_float(st["kv"], q, pp["num_heads"], pp["scale"], pp["gain"])


def causal_attention_fixed(pp, st, q, k, v):
    first, _ = _first(st, True, "CausalSpikeAttention")
    q, k, v = _i64(q, k, v)
    K.causal_kv_update(st["kv"], first, k, v, pp["num_heads"])
    return _out(pp, K.causal_attention_acc(st["kv"], q, pp["num_heads"]))


def causal_spike_attention(*, shape, num_heads: int, scale: float, in_formats: dict[str, PortFormat] | None = None,
                           out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0,
                           name: str | None = None) -> ExtensionSemantics:
    """``snnav.CausalSpikeAttention``: ``q``, ``k``, ``v`` ``(C, N)`` -> ``(C, N)``, state ``kv (h, d, d, N)``."""
    node = CausalSpikeAttention(shape=tuple(shape), num_heads=num_heads, scale=scale)
    c, n = node.shape
    h, d = node.num_heads, node.head_dim
    plan = make_plan(_what("CausalSpikeAttentionProcess", name), node.PORTS, in_formats, node.PORTS,
                     RUNNING_HORIZON * d, node.scale * gain, out_exp, out_bits)
    params = {"shape": node.shape, "num_heads": h, "scale": node.scale, "window": 0, "plan": plan,
              "gain": float(gain)}
    return ExtensionSemantics(node.type_name, node.PORTS, {p: node.shape for p in node.PORTS}, node.shape, 0,
                              params, causal_attention_float, causal_attention_fixed, {"kv": (h, d, d, n)})


@functools.lru_cache(maxsize=4096)
def _fusion_factor(gain: float, n: int, count: int):
    return to_dyadic(gain / (n * count))


def causal_fusion_float(pp, st, spatial, temporal):
    first, count = _first(st, False, "CausalFusion")
    spatial, temporal = _f64(spatial, temporal)
    K.running_sum_update(st["total"], first, temporal)
    return K.causal_fusion_float(spatial, st["total"], count, pp["gain"])


def causal_fusion_fixed(pp, st, spatial, temporal):
    first, count = _first(st, True, "CausalFusion")
    spatial, temporal = _i64(spatial, temporal)
    K.running_sum_update(st["total"], first, temporal)
    plan = pp["plan"]
    acc = K.causal_fusion_acc(spatial, st["total"])
    factor = _fusion_factor(pp["gain"], spatial.shape[-1], count)
    return requantize(acc, plan.acc_exp, factor, plan.out_exp, plan.out_bits).astype(np.int32)


def causal_fusion(*, shape, in_formats: dict[str, PortFormat] | None = None, out_exp: int | None = None,
                  out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None) -> ExtensionSemantics:
    """``snnav.CausalFusion``: ``spatial``, ``temporal`` ``(C, N)`` -> ``(C, N)``, state ``total (C, N)``.

    Fixed point: the factor at step t is ``gain / (N (t+1))`` (a dyadic number of `MANT_BITS` bits, per step); the
    default output exponent keeps ``GUARD_BITS`` fractional bits below ``gain / N`` (the factor at step 0).
    """
    node = CausalFusion(shape=tuple(shape))
    n = node.shape[1]
    what = _what("CausalFusionProcess", name)
    if out_exp is None:
        probe = make_plan(what, node.PORTS, in_formats, node.PORTS, 1, gain / n, None, out_bits)
        out_exp = probe.acc_exp - math.floor(math.log2(abs(gain / n))) + GUARD_BITS if gain else probe.acc_exp
    plan = make_plan(what, node.PORTS, in_formats, node.PORTS, n * RUNNING_HORIZON, gain / n, out_exp, out_bits)
    worst = plan.acc_max << (MANT_BITS + max(0, -plan.shift))  # any step's mantissa is below 2**MANT_BITS
    if worst >= 2**63:
        raise ValueError(f"{what}: the worst-case fixed-point accumulator ({worst:.3e}) does not fit in int64; "
                         "declare tighter max_abs for its ports")
    params = {"shape": node.shape, "window": 0, "plan": plan, "gain": float(gain)}
    return ExtensionSemantics(node.type_name, node.PORTS, {p: node.shape for p in node.PORTS}, node.shape, 0,
                              params, causal_fusion_float, causal_fusion_fixed, {"total": node.shape})


# --------------------------------------------------------------------------------------------------- node table
SEMANTICS: dict[str, Callable[..., ExtensionSemantics]] = {
    SpikeAttention.type_name: lambda node, **kw: spike_attention(
        shape=node.shape, num_heads=node.num_heads, scale=node.scale, axis=node.axis, layout=node.layout,
        window=node.window, **kw),
    AttentionScores.type_name: lambda node, **kw: attention_scores(shape=node.shape, num_heads=node.num_heads,
                                                                   **kw),
    AttentionApply.type_name: lambda node, **kw: attention_apply(shape=node.shape, num_heads=node.num_heads,
                                                                 scale=node.scale, **kw),
    ComplementaryFusion.type_name: lambda node, **kw: complementary_fusion(shape=node.shape, window=node.window,
                                                                           **kw),
    Gate.type_name: lambda node, **kw: gate(shape=node.shape, **kw),
    CausalSpikeAttention.type_name: lambda node, **kw: causal_spike_attention(
        shape=node.shape, num_heads=node.num_heads, scale=node.scale, **kw),
    CausalFusion.type_name: lambda node, **kw: causal_fusion(shape=node.shape, **kw),
}
"""Extension type name -> ``fn(node, *, in_formats=None, out_exp=None, out_bits=24, gain=1.0, name=None)``; the
same table as ``builders.EXTENSION_BUILDERS``, without Lava."""


def semantics_of(node: Any, name: str | None = None, **fixed: Any) -> ExtensionSemantics:
    """`SEMANTICS` ``[node.type_name](node, name=name, **fixed)``, with a clear error for an unknown node."""
    fn = SEMANTICS.get(getattr(node, "type_name", None))
    if fn is None:
        raise TypeError(f"node {name!r} ({type(node).__name__}) is not one of snnav's extension nodes "
                        f"{sorted(SEMANTICS)}")
    return fn(node, name=name, **fixed)
