"""Neuron evaluators of the reference interpreter, one table per discretisation convention.

NIR gives neurons as continuous-time ODEs; each backend discretises them its own way. A convention is a table
``nir type -> builder``; a type missing from a convention's table falls back to the "nir" table. All state starts
at zero under "nir" and "snntorch"; under "norse" v starts at v_leak (IF: at v_reset) as Norse's cells do.
Coefficients are computed in float64 from the stored parameters and cast to the compute dtype once. x is the
summed fan-in of one step, ``c`` the coefficient named beside each update.

"nir" (forward Euler, reset on the step of the spike, strict threshold ``v > v_threshold``)::

    I        v <- v + c * x                                   c = dt * r            out: v
    LI       v <- v + c * ((v_leak - v) + r * x)              c = dt / tau          out: v
    IF       v <- v + c * x;  z = v > v_thr;  v <- v_reset where z                  c = dt * r
    LIF      v <- v + c * ((v_leak - v) + r * x); z = v > v_thr; v <- v_reset where z   c = dt / tau
    CubaLI   i <- i + cs * (w_in * x - i);  v <- v + cm * ((v_leak - v) + r * i)   cs = dt/tau_syn, cm = dt/tau_mem
    CubaLIF  CubaLI, then z = v > v_thr; v <- v_reset where z (the current i is not reset)

    The membrane is driven by the current of the same step (i updated first), as in snnTorch's Synaptic, Norse's
    LIFCell and Lava's LIF.

"snntorch" (snnTorch 1.0.0 ``Leaky``/``Synaptic``/``RLeaky`` with their defaults ``reset_mechanism="subtract"``,
``reset_delay=True``; the exporter wrote ``tau = dt/(1-beta)``, ``r = tau/dt``, ``w_in = tau_syn/dt``, v_reset = 0)::

    LIF      reset = (mem - thr) > 0                 # from the previous step's (unreset) membrane
             mem <- beta * mem + x_1 + x_2 + ... - reset * thr        beta = clamp(1 - dt'/tau, 0, 1)
             z = (mem - thr) > 0
    CubaLIF  syn <- alpha * syn + x_1 + ...;  mem <- beta * mem + syn - reset * thr     alpha = 1 - dt'/tau_syn

    Fan-in terms are added one by one (feed-forward first, then recurrent: RLeaky's ``beta*mem + input +
    recurrent(spk)``). ``dt'`` is dt rounded to the stored dtype of tau: snnTorch computed ``tau = dt / (1 - beta)``
    in float32 with dt = 1e-4 rounded to float32, and inverting with that dt recovers every float32 beta >= 0.5
    exactly. For beta < 0.5 the float32 ``1 - beta`` already lost bits (beta = 0.1 gives back 0.099999994), so no
    reader can recover beta bit for bit. The spike is the unreset membrane above threshold; the reset (a
    subtraction of thr, not the NIR reset to v_reset) lands on the next step. Graphs whose gain ``r*dt'/tau`` (or
    ``w_in*dt'/tau_syn``) is not 1, or whose v_leak or v_reset is not 0, are not snnTorch exports and are refused.
    beta = 1 (a pure integrator) is exported as tau = r = inf and read back as beta = 1.

"norse" (Norse 1.1.0 cells stepped with ``dt``; its importer maps ``tau_mem_inv = 1/tau``; reset
``v <- (1 - z) v + z v_reset`` on the step of the spike; threshold ``(v - v_th) > 0``)::

    LIF      v <- v + c * ((r * x + v_leak) - v)                 (LIFBoxCell)     c = float(dt) * float(1/tau)
    LI       v <- v + c * ((v_leak - v) + r * x)                 (LIBoxCell)
    IF       v <- v + r * x                                      (IAFCell: dt is not used)
    CubaLIF  i <- i + w_in * x;  v <- v + cm * ((v_leak - v) + r * i);  i <- i + (-cs) * i     (LIFCell)

    ``c = dt * tau_mem_inv`` is a product in the compute dtype of dt and ``1/tau`` (1/tau in float64, then cast),
    as Norse multiplies its float32 ``tau_mem_inv`` by the Python float dt. CubaLIF follows Norse's exporter
    (LIFCell -> CubaLIF with r = w_in = 1: the current jumps by the input); Norse's own importer reads CubaLIF
    differently (an LIBox synapse with v_leak), so Norse does not round-trip CubaLIF.

    Norse 1.1.0's exporter (``norse.torch.to_nir``) writes ``tau = dt / tau_mem_inv`` instead of ``1/tau_mem_inv``
    (norse#411), drops v_reset (NIR's default 0) and keeps the sample's batch axis in the Input type: its graphs
    run under this convention only after ``tau <- tau / dt`` (tests/export/test_interpreter_interop.py).
"""

from __future__ import annotations

from typing import Any, Callable

import nir
import numpy as np
import torch
from torch import Tensor

from export.interpreter.nodes import Context, Op, as_f64, param, sum_terms
from export.ir.errors import InvalidNodeError

__all__ = ["CONVENTIONS", "NEURON_BUILDERS", "neuron_builder"]

_GAIN_RTOL = 1e-4  # float32 rounding of tau, r, w_in in snnTorch's exporter moves the gain by < 1e-6


def _const(value: np.ndarray, ctx: Context) -> Tensor:
    return torch.as_tensor(value, dtype=ctx.dtype, device=ctx.device)


def _loop(x: Tensor, state: Any, init: Callable[[Tensor], Any], step: Callable) -> tuple[Tensor, Any]:
    """Run ``step(x_t, state) -> (out_t, state)`` over the T axis of ``x`` ([T, B, ...])."""
    if state is None:
        state = init(x[0])
    outs = []
    for t in range(x.shape[0]):
        out, state = step(x[t], state)
        outs.append(out)
    return torch.stack(outs), state


def _zeros_like_param(x: Tensor, *params: Tensor) -> Tensor:
    return torch.zeros(torch.broadcast_shapes(x.shape, *(p.shape for p in params)), dtype=x.dtype, device=x.device)


# ---------------------------------------------------------------------------------------------------- "nir"


def _euler_leak(v: Tensor, x: Tensor, c: Tensor, r: Tensor, v_leak: Tensor) -> Tensor:
    """``v + c * ((v_leak - v) + r * x)``, evaluated in exactly this order: with c = 0.5, r = 1, v_leak = 0 it
    equals S-CMRL's ``V + (X - V) / 2`` bit for bit in float32 (``0 - v``, ``1 * x`` and ``* 0.5`` are exact)."""
    return v + c * ((v_leak - v) + r * x)


def _nir_i(node: nir.I, ctx: Context) -> Op:
    c = _const(ctx.dt * as_f64(node.r), ctx)

    def step(x, v):
        v = v + c * x
        return v, v

    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, lambda x: _zeros_like_param(x, c), step))


def _nir_li(node: nir.LI, ctx: Context) -> Op:
    c, r, v_leak = _const(ctx.dt / as_f64(node.tau), ctx), param(node.r, ctx), param(node.v_leak, ctx)

    def step(x, v):
        v = _euler_leak(v, x, c, r, v_leak)
        return v, v

    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, lambda x: _zeros_like_param(x, c, r), step))


def _nir_if(node: nir.IF, ctx: Context) -> Op:
    c, v_th, v_reset = _const(ctx.dt * as_f64(node.r), ctx), param(node.v_threshold, ctx), param(node.v_reset, ctx)

    def step(x, v):
        v = v + c * x
        z = v > v_th
        return z.to(ctx.dtype), torch.where(z, v_reset, v)

    init = lambda x: _zeros_like_param(x, c, v_th)  # noqa: E731
    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, init, step), spiking=True)


def _nir_lif(node: nir.LIF, ctx: Context) -> Op:
    c, r = _const(ctx.dt / as_f64(node.tau), ctx), param(node.r, ctx)
    v_leak, v_th, v_reset = param(node.v_leak, ctx), param(node.v_threshold, ctx), param(node.v_reset, ctx)

    def step(x, v):
        v = _euler_leak(v, x, c, r, v_leak)
        z = v > v_th
        return z.to(ctx.dtype), torch.where(z, v_reset, v)

    init = lambda x: _zeros_like_param(x, c, v_th)  # noqa: E731
    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, init, step), spiking=True)


def _cuba(node: nir.CubaLI | nir.CubaLIF, ctx: Context, spiking: bool) -> Op:
    cs, cm = _const(ctx.dt / as_f64(node.tau_syn), ctx), _const(ctx.dt / as_f64(node.tau_mem), ctx)
    w_in, r, v_leak = param(node.w_in, ctx), param(node.r, ctx), param(node.v_leak, ctx)
    if spiking:
        v_th, v_reset = param(node.v_threshold, ctx), param(node.v_reset, ctx)

    def step(x, state):
        i, v = state
        i = i + cs * (w_in * x - i)
        v = _euler_leak(v, i, cm, r, v_leak)
        if not spiking:
            return v, (i, v)
        z = v > v_th
        return z.to(ctx.dtype), (i, torch.where(z, v_reset, v))

    def init(x):
        zeros = _zeros_like_param(x, cs, cm, v_leak)
        return zeros, zeros

    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, init, step), spiking=spiking)


def _nir_cubali(node: nir.CubaLI, ctx: Context) -> Op:
    return _cuba(node, ctx, spiking=False)


def _nir_cubalif(node: nir.CubaLIF, ctx: Context) -> Op:
    return _cuba(node, ctx, spiking=True)


# ----------------------------------------------------------------------------------------------- "snntorch"


def _snntorch_decay(node: Any, tau_field: str, gain_field: str, ctx: Context) -> np.ndarray:
    """``clamp(1 - dt'/tau, 0, 1)`` in float64, after checking that the node is an snnTorch export."""
    stored = getattr(node, tau_field)
    stored_dtype = stored.detach().cpu().numpy().dtype if isinstance(stored, torch.Tensor) else np.asarray(stored).dtype
    dt = float(np.asarray(ctx.dt, dtype=stored_dtype)) if np.issubdtype(stored_dtype, np.floating) else ctx.dt
    tau, gain_param = as_f64(stored), as_f64(getattr(node, gain_field))
    with np.errstate(invalid="ignore"):
        gain = gain_param * dt / tau
    integrator = np.isinf(tau) & np.isinf(gain_param)  # beta = 1: snnTorch wrote tau = r = dt / 0 = inf
    if not np.all(integrator | np.isclose(gain, 1.0, rtol=_GAIN_RTOL, atol=0.0)):
        raise InvalidNodeError(
            f"node {ctx.name!r}: convention='snntorch' needs {gain_field} = {tau_field}/dt as snnTorch exports it "
            f"(gain {gain_field}*dt/{tau_field} = 1), found gain in [{gain.min():.6g}, {gain.max():.6g}] with "
            f"dt={ctx.dt}; pass the dt the graph was exported with (snnTorch: 1e-4) or use convention='nir'"
        )
    for field in ("v_leak", "v_reset"):
        if np.any(as_f64(getattr(node, field)) != 0):
            raise InvalidNodeError(
                f"node {ctx.name!r}: convention='snntorch' reproduces snnTorch neurons, which have {field} = 0; "
                f"this graph has nonzero {field}. Use convention='nir'"
            )
    return np.clip(1.0 - dt / tau, 0.0, 1.0)


def _snntorch_lif(node: nir.LIF, ctx: Context) -> Op:
    beta, thr = _const(_snntorch_decay(node, "tau", "r", ctx), ctx), param(node.v_threshold, ctx)

    def forward(terms, mem):
        xs = terms[None]
        outs = []
        if mem is None:
            mem = _zeros_like_param(xs[0][0], beta, thr)
        for t in range(xs[0].shape[0]):
            reset = ((mem - thr) > 0).to(ctx.dtype)
            m = beta * mem
            for x in xs:
                m = m + x[t]
            mem = m - reset * thr
            outs.append(((mem - thr) > 0).to(ctx.dtype))
        return torch.stack(outs), mem

    return Op(forward, spiking=True)


def _snntorch_cubalif(node: nir.CubaLIF, ctx: Context) -> Op:
    alpha = _const(_snntorch_decay(node, "tau_syn", "w_in", ctx), ctx)
    beta = _const(_snntorch_decay(node, "tau_mem", "r", ctx), ctx)
    thr = param(node.v_threshold, ctx)

    def forward(terms, state):
        xs = terms[None]
        outs = []
        if state is None:
            zeros = _zeros_like_param(xs[0][0], alpha, beta, thr)
            state = (zeros, zeros)
        syn, mem = state
        for t in range(xs[0].shape[0]):
            reset = ((mem - thr) > 0).to(ctx.dtype)
            syn = alpha * syn
            for x in xs:
                syn = syn + x[t]
            mem = (beta * mem + syn) - reset * thr
            outs.append(((mem - thr) > 0).to(ctx.dtype))
        return torch.stack(outs), (syn, mem)

    return Op(forward, spiking=True)


# -------------------------------------------------------------------------------------------------- "norse"


def _norse_coef(tau: Any, ctx: Context) -> Tensor:
    tau_inv = _const(1.0 / as_f64(tau), ctx)
    return tau_inv * ctx.dt  # Norse: dt * p.tau_mem_inv, dt rounded to the tensor's dtype first


def _norse_reset(z: Tensor, v: Tensor, v_reset: Tensor) -> Tensor:
    return (1 - z) * v + z * v_reset  # norse.torch.functional.reset.reset_value


def _norse_init(value: Tensor) -> Callable[[Tensor], Tensor]:
    return lambda x: value.expand(torch.broadcast_shapes(x.shape, value.shape)).clone()


def _norse_lif(node: nir.LIF, ctx: Context) -> Op:
    c, r = _norse_coef(node.tau, ctx), param(node.r, ctx)
    v_leak, v_th, v_reset = param(node.v_leak, ctx), param(node.v_threshold, ctx), param(node.v_reset, ctx)

    def step(x, v):
        v = v + c * ((r * x + v_leak) - v)  # lif_box_feed_forward_step: input + v_leak - v
        z = ((v - v_th) > 0).to(ctx.dtype)
        return z, _norse_reset(z, v, v_reset)

    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, _norse_init(v_leak), step), spiking=True)


def _norse_li(node: nir.LI, ctx: Context) -> Op:
    c, r, v_leak = _norse_coef(node.tau, ctx), param(node.r, ctx), param(node.v_leak, ctx)

    def step(x, v):
        v = v + c * ((v_leak - v) + r * x)  # li_box_feed_forward_step
        return v, v

    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, _norse_init(v_leak), step))


def _norse_if(node: nir.IF, ctx: Context) -> Op:
    r, v_th, v_reset = param(node.r, ctx), param(node.v_threshold, ctx), param(node.v_reset, ctx)

    def step(x, v):
        v = v + r * x  # iaf_feed_forward_step ignores dt
        z = ((v - v_th) > 0).to(ctx.dtype)
        return z, _norse_reset(z, v, v_reset)

    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, _norse_init(v_reset), step), spiking=True)


def _norse_cubalif(node: nir.CubaLIF, ctx: Context) -> Op:
    cm, cs = _norse_coef(node.tau_mem, ctx), _norse_coef(node.tau_syn, ctx)
    w_in, r = param(node.w_in, ctx), param(node.r, ctx)
    v_leak, v_th, v_reset = param(node.v_leak, ctx), param(node.v_threshold, ctx), param(node.v_reset, ctx)

    def step(x, state):
        i, v = state
        i = i + w_in * x  # lif_feed_forward_step: current jump first
        v = v + cm * ((v_leak - v) + r * i)
        i = i + (-cs) * i
        z = ((v - v_th) > 0).to(ctx.dtype)
        return z, (i, _norse_reset(z, v, v_reset))

    def init(x):
        v = _norse_init(v_leak)(x)
        return torch.zeros_like(v), v

    return Op(lambda terms, s: _loop(sum_terms(terms[None]), s, init, step), spiking=True)


NEURON_BUILDERS: dict[str, dict[type, Callable[[Any, Context], Op]]] = {
    "nir": {
        nir.I: _nir_i,
        nir.LI: _nir_li,
        nir.IF: _nir_if,
        nir.LIF: _nir_lif,
        nir.CubaLI: _nir_cubali,
        nir.CubaLIF: _nir_cubalif,
    },
    "snntorch": {nir.LIF: _snntorch_lif, nir.CubaLIF: _snntorch_cubalif},
    "norse": {nir.LIF: _norse_lif, nir.LI: _norse_li, nir.IF: _norse_if, nir.CubaLIF: _norse_cubalif},
}
CONVENTIONS: tuple[str, ...] = tuple(NEURON_BUILDERS)


def neuron_builder(convention: str, node_type: type) -> Callable[[Any, Context], Op] | None:
    """The builder for a neuron type under `convention` (falling back to "nir"), or None if not a neuron."""
    return NEURON_BUILDERS[convention].get(node_type) or NEURON_BUILDERS["nir"].get(node_type)
