"""Evaluators of NIR's stateless nodes and `Delay` for the reference interpreter, over time-first tensors.

Every evaluator is built once per node by a builder in `STANDARD_BUILDERS` (``type -> builder``) and then called
as ``op.forward(terms, state) -> (out, state)``, where `terms` maps a port (None for the implicit port of a
standard node) to the list of its fan-in tensors, each ``[T, B, *shape]``. Stateless nodes sum their terms left
to right and compute all T steps at once; the per-sample NIR shapes exclude batch and time, so a NIR axis ``k``
is tensor axis ``k + 2``.

Semantics (x: summed input, per sample and step):

=============  ==================================================================================================
Input/Output   ``y = x``
Affine         ``y = W x + b`` over the last axis; W is ``[..., out, in]`` (2-D W: ``torch.nn.functional.linear``)
Linear         ``y = W x``
Scale          ``y = s * x`` (elementwise, s broadcast over the per-sample shape)
Conv1d/Conv2d  cross-correlation as ``torch.nn.functional.conv{1,2}d`` (stride, padding int/pair/'same'/'valid',
               dilation, groups, bias); `input_shape` is not needed
SumPool2d      ``y[c, i, j] = sum_{a<kh, b<kw} xpad[c, i*sh + a, j*sw + b]``, xpad zero-padded by (ph, pw): a true
               sum (nirtorch's LPPool2d ignores padding and takes absolute values; not copied)
AvgPool2d      the SumPool2d window sum divided by ``kh*kw`` (padding zeros counted: torch's
               ``count_include_pad=True``)
Flatten        ``torch.flatten`` over per-sample axes start_dim..end_dim (NIR dims exclude batch)
Threshold      ``z = 1.0 if x > theta else 0.0`` (strict)
Delay          ``y_t = x_{t - d}``, zeros for ``t < d``, ``d = round(delay / dt)`` steps per element
=============  ==================================================================================================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from export.ir.errors import InvalidNodeError

__all__ = ["Context", "Op", "STANDARD_BUILDERS", "as_f64", "param", "sum_terms"]

logger = logging.getLogger(__name__)

Forward = Callable[[dict, Any], tuple[Tensor, Any]]


@dataclass(frozen=True)
class Context:
    """What a builder needs besides the node: step `dt` (s), compute dtype/device, convention name, node name."""

    dt: float
    dtype: torch.dtype
    device: torch.device
    convention: str
    name: str = ""


@dataclass(frozen=True)
class Op:
    """A built node: ``forward(terms, state) -> (out [T, B, ...], state)``; state None means "initial"."""

    forward: Forward
    spiking: bool = False
    window: int = 0


def as_f64(value: Any) -> np.ndarray:
    """A stored NIR parameter (numpy array, torch tensor or scalar) as a float64 numpy array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def param(value: Any, ctx: Context) -> Tensor:
    """A stored parameter as a tensor of the compute dtype (float32 parameters convert exactly)."""
    return torch.as_tensor(as_f64(value), dtype=ctx.dtype, device=ctx.device)


def sum_terms(terms: list[Tensor]) -> Tensor:
    """Fan-in: the terms summed left to right (the order is fixed by the schedule)."""
    out = terms[0]
    for term in terms[1:]:
        out = out + term
    return out


def _stateless(fn: Callable[[Tensor], Tensor], spiking: bool = False) -> Op:
    return Op(lambda terms, state: (fn(sum_terms(terms[None])), None), spiking=spiking)


def _ints(value: Any, n: int, what: str, ctx: Context) -> tuple[int, ...]:
    arr = np.atleast_1d(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value))
    if arr.size == 1:
        arr = np.repeat(arr, n)
    if arr.shape != (n,) or np.any(arr != np.round(arr)):
        raise InvalidNodeError(f"node {ctx.name!r}: {what} must be an int or {n} ints, got {value!r}")
    return tuple(int(v) for v in arr)


def _fold(x: Tensor, nd: int) -> tuple[Tensor, tuple[int, int]]:
    """``[T, B, *s]`` -> ``[T*B, *s]`` for the torch functionals that take one batch axis."""
    if x.dim() != nd + 2:
        raise InvalidNodeError(f"expected a [T, B] + {nd}-D per-sample tensor, got shape {tuple(x.shape)}")
    return x.reshape(-1, *x.shape[2:]), tuple(x.shape[:2])


def build_identity(node: Any, ctx: Context) -> Op:
    return _stateless(lambda x: x)


def build_affine(node: nir.Affine | nir.Linear, ctx: Context) -> Op:
    weight = param(node.weight, ctx)
    bias = param(node.bias, ctx) if getattr(node, "bias", None) is not None else None
    if weight.dim() < 2:
        raise InvalidNodeError(f"node {ctx.name!r}: weight must be [..., out, in], got shape {tuple(weight.shape)}")
    if weight.dim() == 2:
        return _stateless(lambda x: F.linear(x, weight, bias))

    def batched(x: Tensor) -> Tensor:  # W [..., out, in] @ x [T, B, ..., in]
        y = torch.matmul(weight, x.unsqueeze(-1)).squeeze(-1)
        return y + bias if bias is not None else y

    return _stateless(batched)


def build_scale(node: nir.Scale, ctx: Context) -> Op:
    scale = param(node.scale, ctx)
    return _stateless(lambda x: x * scale)


def _conv_padding(padding: Any, nd: int, ctx: Context) -> str | tuple[int, ...]:
    if isinstance(padding, (str, np.str_, bytes)):
        padding = padding.decode() if isinstance(padding, bytes) else str(padding)
        if padding not in ("same", "valid"):
            raise InvalidNodeError(f"node {ctx.name!r}: padding must be 'same', 'valid' or ints, got {padding!r}")
        return padding
    return _ints(padding, nd, "padding", ctx)


def _build_conv(node: nir.Conv1d | nir.Conv2d, ctx: Context, nd: int) -> Op:
    weight = param(node.weight, ctx)
    bias = param(node.bias, ctx) if node.bias is not None else None
    stride = _ints(node.stride, nd, "stride", ctx)
    dilation = _ints(node.dilation, nd, "dilation", ctx)
    padding = _conv_padding(node.padding, nd, ctx)
    groups = int(np.asarray(node.groups))
    if padding == "same" and any(s != 1 for s in stride):
        raise InvalidNodeError(
            f"node {ctx.name!r}: padding='same' with stride {stride} is undefined (torch allows it only for stride "
            "1); export explicit integer padding instead"
        )
    conv = F.conv1d if nd == 1 else F.conv2d

    def forward(x: Tensor) -> Tensor:
        flat, (t, b) = _fold(x, nd + 1)
        y = conv(flat, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
        return y.reshape(t, b, *y.shape[1:])

    return _stateless(forward)


def build_conv1d(node: nir.Conv1d, ctx: Context) -> Op:
    return _build_conv(node, ctx, 1)


def build_conv2d(node: nir.Conv2d, ctx: Context) -> Op:
    return _build_conv(node, ctx, 2)


def _pool_args(node: Any, ctx: Context) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    return (
        _ints(node.kernel_size, 2, "kernel_size", ctx),
        _ints(node.stride, 2, "stride", ctx),
        _ints(node.padding, 2, "padding", ctx),
    )


def build_sumpool2d(node: nir.SumPool2d, ctx: Context) -> Op:
    kernel, stride, (ph, pw) = _pool_args(node, ctx)

    def forward(x: Tensor) -> Tensor:
        flat, (t, b) = _fold(x, 3)
        flat = F.pad(flat, (pw, pw, ph, ph))  # zeros: a true sum over the padded window
        y = F.avg_pool2d(flat, kernel, stride, padding=0, divisor_override=1)
        return y.reshape(t, b, *y.shape[1:])

    return _stateless(forward)


def build_avgpool2d(node: nir.AvgPool2d, ctx: Context) -> Op:
    kernel, stride, (ph, pw) = _pool_args(node, ctx)
    fits = 2 * ph <= kernel[0] and 2 * pw <= kernel[1]  # torch's limit for its own padding

    def forward(x: Tensor) -> Tensor:
        flat, (t, b) = _fold(x, 3)
        if fits:  # same kernel as torch.nn.AvgPool2d, bit for bit
            y = F.avg_pool2d(flat, kernel, stride, padding=(ph, pw), count_include_pad=True)
        else:
            flat = F.pad(flat, (pw, pw, ph, ph))
            y = F.avg_pool2d(flat, kernel, stride, padding=0, divisor_override=kernel[0] * kernel[1])
        return y.reshape(t, b, *y.shape[1:])

    return _stateless(forward)


def build_flatten(node: nir.Flatten, ctx: Context) -> Op:
    start, end = int(node.start_dim), int(node.end_dim)
    start, end = (start + 2 if start >= 0 else start), (end + 2 if end >= 0 else end)
    return _stateless(lambda x: torch.flatten(x, start, end))


def build_threshold(node: nir.Threshold, ctx: Context) -> Op:
    theta = param(node.threshold, ctx)
    return _stateless(lambda x: (x > theta).to(ctx.dtype), spiking=True)


def build_delay(node: nir.Delay, ctx: Context) -> Op:
    """``y_t = x_{t-d}`` with a per-element integer delay ``d = round(delay / dt)``; state: the last dmax inputs."""
    steps_f = as_f64(node.delay) / ctx.dt
    steps = np.round(steps_f).astype(np.int64)
    if np.any(steps < 0):
        raise InvalidNodeError(f"node {ctx.name!r}: delays must be >= 0, got {node.delay!r}")
    if np.any(np.abs(steps_f - steps) > 1e-6 * np.maximum(1.0, np.abs(steps_f))):
        logger.warning("node %r: delay/dt = %s is not an integer number of steps; rounded", ctx.name, steps_f)
    dmax = int(steps.max()) if steps.size else 0
    d = torch.as_tensor(steps, device=ctx.device)

    def forward(terms: dict, buffer: Tensor | None) -> tuple[Tensor, Tensor]:
        x = sum_terms(terms[None])  # [T, B, *s]
        if dmax == 0:
            return x, buffer
        if buffer is None:
            buffer = x.new_zeros((dmax, *x.shape[1:]))
        seq = torch.cat([buffer, x])  # [dmax + T, B, *s]; x_t sits at row dmax + t
        t = x.shape[0]
        rows = torch.arange(t, device=x.device).reshape(t, *([1] * (x.dim() - 1))) + dmax  # [T, 1, ...]
        index = (rows - d.expand(x.shape[2:]).unsqueeze(0)).expand_as(x)
        return torch.gather(seq, 0, index), seq[-dmax:]

    return Op(forward)


STANDARD_BUILDERS: dict[type, Callable[[Any, Context], Op]] = {
    nir.Input: build_identity,
    nir.ir.graph.Identity: build_identity,  # defined by nir but not serializable (not in nir's __all_ir)
    nir.Output: build_identity,
    nir.Affine: build_affine,
    nir.Linear: build_affine,
    nir.Scale: build_scale,
    nir.Conv1d: build_conv1d,
    nir.Conv2d: build_conv2d,
    nir.SumPool2d: build_sumpool2d,
    nir.AvgPool2d: build_avgpool2d,
    nir.Flatten: build_flatten,
    nir.Threshold: build_threshold,
    nir.Delay: build_delay,
}
