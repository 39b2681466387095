"""S-CMRL's spiking neuron (BrainCog ``MyNode``, docs/scmrl.md §1.1): a pure step function and a multi-step module.

Discrete-time update, for one step t with input current X_t and membrane V (V_{-1} = 0)::

    V'  = stopgrad(V_{t-1})  if detach else V_{t-1}
    H_t = V' + (X_t - V') / tau                 # = 0.5 V' + 0.5 X_t for tau = 2
    S_t = Heaviside(H_t - theta)                # fires when H_t >= theta
    V_t = H_t * (1 - stopgrad(S_t))             # hard reset to 0

Surrogate gradient (sigmoid, slope a)::

    dS/dH = a * sigmoid(a (H - theta)) * (1 - sigmoid(a (H - theta)))

In NIR terms this is ``LIF(tau = tau * dt, r = 1, v_leak = 0, v_threshold = theta, v_reset = 0)`` under forward Euler,
except that NIR fires on ``v > theta`` while this neuron fires on ``H >= theta``; exporters must handle that edge.

Why not snnTorch:

* ``snn.Leaky(reset_mechanism="zero")`` integrates ``beta * U + I`` (here the input is scaled by ``1/tau`` too),
  its zero reset also discards the input of the step after a spike (here the reset applies to the membrane that the
  next input is added to), and it does not detach U between steps. It is a different neuron.
* ``snntorch.surrogate.sigmoid(slope=4)`` has the right surrogate in exact arithmetic but differs in three ways
  (checked on snnTorch 1.0.0, see ``tests/snnav/test_neurons.py``): its forward is ``input > 0`` — strict, so
  ``H == theta`` does not fire, unlike BrainCog's ``x >= 0`` (its own docstring says ``>=``); its backward is written
  ``k exp(-kU) / (exp(-kU) + 1)^2``, which overflows to ``inf / inf = nan`` for ``U < -22`` in float32; and it
  always returns float32. So the reference path uses :class:`SigmoidHeaviside` below instead.

Nothing here records global state: firing rates are read with :class:`snnav.models.probe.FiringRates` (hooks).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["SigmoidHeaviside", "mynode_step", "MultiStepLIF", "FusedMultiStepLIF"]


def _spike_grad(grad_spike: Tensor, h: Tensor, threshold: float, slope: float) -> Tensor:
    """``dL/dH = dL/dS * a * sigma(a (h - theta)) * (1 - sigma(a (h - theta)))``.

    One fixed sequence of kernels shared by both paths: ``sigmoid_backward(g, y) = g * (1 - y) * y`` fuses the last
    three multiplications into one pass.
    """
    sig = torch.sigmoid((h - threshold) * slope)
    return torch.ops.aten.sigmoid_backward(grad_spike * slope, sig)


def _scaled_distance(h: Tensor, threshold: float, slope: float, out: Tensor | None = None) -> Tensor:
    """``(h - threshold) * slope`` rounded exactly as those two operations round, in one pass when it can be.

    For a power-of-two slope a >= 1, ``a h - a theta`` is one addcmul (``-a theta + h * a``): ``h * a`` and ``a theta``
    are exact (no underflow when scaling up), and rounding commutes with scaling by a power of two, so its single
    rounding equals ``a`` times the rounding of ``h - theta``. A subnormal ``h - theta`` is itself exact; with
    ``|a theta|`` far below the overflow threshold, ``h * a`` overflows exactly when ``(h - theta) * a`` does.
    Other slopes, thresholds and dtypes take the two operations.
    """
    mantissa, _ = math.frexp(slope)
    if mantissa != 0.5 or slope < 1 or abs(threshold) * slope > 2.0**40 or h.dtype not in (torch.float32, torch.float64):
        return torch.sub(h, threshold, out=out).mul_(slope) if out is not None else torch.sub(h, threshold).mul_(slope)
    a = torch.tensor(slope, dtype=h.dtype, device=h.device)
    neg_a_theta = torch.tensor(threshold, dtype=h.dtype, device=h.device).mul_(-slope)  # theta as h's dtype sees it
    return torch.addcmul(neg_a_theta, h, a, out=out) if out is not None else torch.addcmul(neg_a_theta, h, a)


class SigmoidHeaviside(torch.autograd.Function):
    """Heaviside step ``S = [H >= theta]`` forward, sigmoid surrogate (slope a) backward."""

    @staticmethod
    def forward(ctx, h: Tensor, threshold: float, slope: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(h)
        ctx.threshold, ctx.slope = threshold, slope
        return (h >= threshold).to(h.dtype)

    @staticmethod
    def backward(ctx, grad_spike: Tensor):  # type: ignore[override]
        (h,) = ctx.saved_tensors
        return _spike_grad(grad_spike, h, ctx.threshold, ctx.slope), None, None


def mynode_step(
    x: Tensor,
    v: Tensor,
    tau: float = 2.0,
    threshold: float = 1.0,
    detach: bool = True,
    surrogate_slope: float = 4.0,
) -> tuple[Tensor, Tensor]:
    """One step of the MyNode neuron (module docstring has the equations).

    Args:
        x: input current X_t, any shape.
        v: membrane after the previous step's reset (zeros at t = 0), broadcastable to ``x``.
        tau: membrane time constant in steps.
        threshold: firing threshold theta; fires when ``H >= theta``.
        detach: stop the gradient through the previous membrane (S-CMRL's ``mem_detach=True``).
        surrogate_slope: slope a of the sigmoid surrogate.

    Returns:
        ``(spike, v)``: binary spikes S_t in ``x``'s dtype and the reset membrane V_t.
    """
    if detach:
        v = v.detach()
    h = v + (x - v) / tau
    spike = SigmoidHeaviside.apply(h, threshold, surrogate_slope)
    return spike, h * (1.0 - spike.detach())


class FusedMultiStepLIF(torch.autograd.Function):
    """All T steps of :func:`mynode_step` in one autograd node; saves only H ``(T, B, ...)``.

    Forward runs the recurrence without building a graph, writing H_t in place into one preallocated buffer (a
    one-step scratch buffer when no gradient is needed). Spikes are recomputed in backward as ``H >= theta``.
    Backward, per step t (reverse order):

    * ``detach=True``: ``dL/dX_t = dL/dS_t * s'(H_t) / tau`` — each step's gradient reaches only its own input.
    * ``detach=False`` (BPTT), with g_V the gradient arriving at V_t from step t + 1::

        g_H = dL/dS_t * s'(H_t) + g_V * (1 - S_t)
        dL/dX_t = g_H / tau ;  g_V <- g_H - g_H / tau

    The surrogate's sigmoid is evaluated per step, on tensors of the unfused path's size and memory layout: ATen's
    vectorised sigmoid and its scalar tail differ in the last bit, so one call over all T would change which elements
    take which path. The other elementwise passes are exactly rounded and run over all T at once (fewer, larger
    kernels). Everything mirrors autograd's arithmetic on the unfused path, so spikes and gradients (both ``detach``
    settings) are bit-identical to :func:`mynode_step` under autograd (``tests/snnav/test_neurons.py``).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, tau: float, threshold: float, slope: float, detach: bool
    ) -> Tensor:
        steps = x.shape[0]
        save = ctx.needs_input_grad[0]
        # H keeps x's memory layout, like the unfused path's per-step H, so backward's per-step sigmoid sees the same
        # element order; without a gradient one step of H is enough.
        h_all = torch.empty_like(x) if save else torch.empty_like(x[:1])  # (T or 1, B, ...)
        spikes = torch.empty_like(x, memory_format=torch.contiguous_format)  # (T, B, ...), as torch.stack gives
        tau_t = torch.tensor(tau, dtype=x.dtype, device=x.device)
        v = None
        # Up to four passes per step. addcdiv computes V + 1 * (X - V) / tau, and addcmul H + (-1) * H * S, which for
        # S in {0, 1} is exactly H * (1 - S): both are bitwise equal to the unfused path's expressions. At t = 0,
        # V = 0 and 0 + (X - 0) / tau is X / tau (up to the sign of a zero); the last step's V is never used.
        for t in range(steps):
            h = h_all[t if save else 0]
            if t == 0:
                torch.div(x[0], tau_t, out=h)
            else:
                torch.sub(x[t], v, out=h)
                torch.addcdiv(v, h, tau_t, out=h)
            s = torch.ge(h, threshold, out=spikes[t])
            if t + 1 < steps:
                v = torch.addcmul(h, h, s, value=-1.0, out=v if v is not None else torch.empty_like(h))
        if save:
            ctx.save_for_backward(h_all)
        ctx.tau, ctx.threshold, ctx.slope, ctx.detach = tau, threshold, slope, detach
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):  # type: ignore[override]
        (h_all,) = ctx.saved_tensors
        tau, threshold, slope = ctx.tau, ctx.threshold, ctx.slope
        if torch.compiler.is_compiling():
            return _traceable_backward(grad_spikes, h_all, tau, threshold, slope, ctx.detach), None, None, None, None
        # One step at a time through reused buffers: a step's H, surrogate and gradient stay in cache across the
        # five passes, and the sigmoid sees exactly the unfused path's per-step tensor (see the class docstring).
        # The gradient is contiguous like the unfused path's (assembled from per-step select gradients), so layers
        # upstream reduce it in the same memory order.
        grad = torch.empty_like(h_all, memory_format=torch.contiguous_format)  # (T, B, ...)
        sig = torch.empty_like(h_all[0])  # (B, ...), H's layout
        grad_v = None
        for t in range(h_all.shape[0] - 1, -1, -1):
            torch.sigmoid(_scaled_distance(h_all[t], threshold, slope, out=sig), out=sig)  # s(a (H - theta))
            g = torch.mul(grad_spikes[t], slope, out=grad[t])
            torch.ops.aten.sigmoid_backward.grad_input(g, sig, grad_input=g)  # dL/dS * s'(H)
            if not ctx.detach:
                if grad_v is not None:
                    g.add_(grad_v * (h_all[t] < threshold))  # + g_V (1 - S_t)
                grad_v = g - g / tau
            g.div_(tau)
        return grad, None, None, None, None


def _traceable_backward(
    grad_spikes: Tensor, h_all: Tensor, tau: float, threshold: float, slope: float, detach: bool
) -> Tensor:
    """:meth:`FusedMultiStepLIF.backward` without out= buffers or in-place ops, for ``torch.compile``.

    Functionalisation does not keep the layout of out= buffers, so the eager backward's contiguous gradient can come
    out permuted, which the view before the neuron then rejects; inductor fuses these plain passes anyway.
    """
    steps = h_all.shape[0]
    surrogate = [_spike_grad(grad_spikes[t], h_all[t], threshold, slope) for t in range(steps)]  # dL/dS * s'(H)
    if detach:
        return (torch.stack(surrogate) / tau).contiguous()
    grads, grad_v = [], None
    for t in range(steps - 1, -1, -1):
        g = surrogate[t] if grad_v is None else surrogate[t] + grad_v * (h_all[t] < threshold)  # (1 - S_t)
        grad_v = g - g / tau
        grads.append(g / tau)
    return torch.stack(grads[::-1]).contiguous()


class MultiStepLIF(nn.Module):
    """MyNode over time-first input ``[T, B, ...]`` (any trailing dims); the state starts at 0 on every call.

    Args:
        tau: membrane time constant in steps (2.0 in S-CMRL).
        threshold: firing threshold theta (1.0 in S-CMRL; the reference's ``v_threshold=0.5`` is ignored there).
        surrogate_slope: slope a of the sigmoid surrogate (4.0).
        detach_mem: detach the membrane between steps (True in S-CMRL; False gives BPTT, an ablation).
        fused: run all steps in :class:`FusedMultiStepLIF` (less memory, faster), and let the model pool this
            neuron's spikes with :class:`snnav.models.spike_pool.SpikeMaxPool2d`. ``False`` runs the reference loop of
            :func:`mynode_step` under autograd (and ``nn.MaxPool2d``). Both give identical spikes and gradients.
    """

    def __init__(
        self,
        tau: float = 2.0,
        threshold: float = 1.0,
        surrogate_slope: float = 4.0,
        detach_mem: bool = True,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if tau <= 0:
            raise ValueError(f"tau must be > 0 (time steps); got {tau}. Pass a positive time constant.")
        self.tau = float(tau)
        self.threshold = float(threshold)
        self.surrogate_slope = float(surrogate_slope)
        self.detach_mem = bool(detach_mem)
        self.fused = bool(fused)

    def forward(self, x: Tensor) -> Tensor:
        """Return binary spikes ``[T, B, ...]`` for input current ``x`` of the same shape."""
        if x.dim() < 2:
            raise ValueError(f"MultiStepLIF expects time-first input [T, B, ...]; got shape {tuple(x.shape)}.")
        if self.fused:
            return FusedMultiStepLIF.apply(x, self.tau, self.threshold, self.surrogate_slope, self.detach_mem)
        v = torch.zeros_like(x[0])  # (B, ...)
        spikes = []
        for t in range(x.shape[0]):
            s, v = mynode_step(x[t], v, self.tau, self.threshold, self.detach_mem, self.surrogate_slope)
            spikes.append(s)
        return torch.stack(spikes)  # (T, B, ...)

    def extra_repr(self) -> str:
        return (
            f"tau={self.tau}, threshold={self.threshold}, surrogate_slope={self.surrogate_slope}, "
            f"detach_mem={self.detach_mem}, fused={self.fused}"
        )
