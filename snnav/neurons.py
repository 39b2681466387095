"""S-CMRL's spiking neuron (BrainCog ``MyNode``, scmrl.md §1.1): a pure step function and a multi-step module.

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

    Forward runs the recurrence without building a graph, writing H_t in place into one preallocated buffer.
    Spikes are recomputed in backward as ``H >= theta``. Backward, per step t (reverse order):

    * ``detach=True``: ``dL/dX_t = dL/dS_t * s'(H_t) / tau`` — each step's gradient reaches only its own input.
    * ``detach=False`` (BPTT), with g_V the gradient arriving at V_t from step t + 1::

        g_H = dL/dS_t * s'(H_t) + g_V * (1 - S_t)
        dL/dX_t = g_H / tau ;  g_V <- g_H - g_H / tau

    The surrogate is evaluated per step, on tensors the size of the unfused path's: ATen's vectorised sigmoid and
    its scalar tail differ in the last bit, so one call over all T would change which elements take which path.
    Everything else is exactly rounded arithmetic mirroring autograd's on the unfused path, so spikes and
    gradients (both ``detach`` settings) are bit-identical to :func:`mynode_step` under autograd
    (``tests/snnav/test_neurons.py``).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx, x: Tensor, tau: float, threshold: float, slope: float, detach: bool
    ) -> Tensor:
        h_all = torch.empty_like(x, memory_format=torch.contiguous_format)  # (T, B, ...)
        spikes = torch.empty_like(h_all)  # (T, B, ...)
        v = torch.zeros_like(h_all[0])  # (B, ...)
        tau_t = torch.tensor(tau, dtype=x.dtype, device=x.device)
        # Four passes per step. addcdiv computes V + 1 * (X - V) / tau, and addcmul H + (-1) * H * S, which for
        # S in {0, 1} is exactly H * (1 - S): both are bitwise equal to the unfused path's expressions.
        for t in range(x.shape[0]):
            h = torch.sub(x[t], v, out=h_all[t])
            torch.addcdiv(v, h, tau_t, out=h)
            s = torch.ge(h, threshold, out=spikes[t])
            v = torch.addcmul(h, h, s, value=-1.0)
        if ctx.needs_input_grad[0]:
            ctx.save_for_backward(h_all)
        ctx.tau, ctx.threshold, ctx.slope, ctx.detach = tau, threshold, slope, detach
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: Tensor):  # type: ignore[override]
        (h_all,) = ctx.saved_tensors
        tau, threshold = ctx.tau, ctx.threshold
        grad_x = torch.empty_like(h_all)
        grad_v = None
        for t in range(h_all.shape[0] - 1, -1, -1):
            g = _spike_grad(grad_spikes[t], h_all[t], threshold, ctx.slope)
            if not ctx.detach:
                if grad_v is not None:
                    g = g + grad_v * (h_all[t] < threshold)  # (1 - S_t)
                grad_v = g - g / tau
            torch.div(g, tau, out=grad_x[t])
        return grad_x, None, None, None, None


class MultiStepLIF(nn.Module):
    """MyNode over time-first input ``[T, B, ...]`` (any trailing dims); the state starts at 0 on every call.

    Args:
        tau: membrane time constant in steps (2.0 in S-CMRL).
        threshold: firing threshold theta (1.0 in S-CMRL; the reference's ``v_threshold=0.5`` is ignored there).
        surrogate_slope: slope a of the sigmoid surrogate (4.0).
        detach_mem: detach the membrane between steps (True in S-CMRL; False gives BPTT, an ablation).
        fused: run all steps in :class:`FusedMultiStepLIF` (less memory, faster backward). ``False`` runs the
            reference loop of :func:`mynode_step` under autograd. Both give identical spikes.
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
