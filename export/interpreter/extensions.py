"""Evaluators of snnav's extension nodes (`export/ir/extensions.py`) for the reference interpreter.

Each evaluator is vectorised over ``[T, B]``; ports arrive as ``[T, B, *port_shape]`` (fan-in already summed).
Heads: channel ``c = g*d + i``, ``d = C / h``; a ``(C, N)`` tensor is viewed as ``(h, d, N)``. Products of binary
spikes summed are integers, exact in float32 below 2^24, and ``scale`` multiplies the summed product last.

=====================  ==========================================================================================
SpikeAttention tokens  ``O[g*d+j, n] = scale * sum_m (sum_i Q[g*d+i, n] K[g*d+i, m]) V[g*d+j, m]`` per step
SpikeAttention time    WINDOW W: per window of W steps, token n, head g:
                       ``R[t, g, j, n] = scale * sum_i Q_t[g*d+i, n] (sum_s K_s[g*d+i, n] V_s[g*d+j, n])``;
                       clean: ``O_t[g*d+j, n] = R[t, g, j, n]``; faithful: ``R[:, :, :, n]`` laid out
                       ``(h, W, d)`` (f = g*W*d + t*d + j) and read as ``(W, C)``: ``O_{f//C}[f%C, n]``
AttentionScores        ``S[g, n, m] = sum_i Q[g*d+i, n] K[g*d+i, m]`` per step, output ``(h, N, N)``
AttentionApply         ``O[g*d+j, n] = scale * sum_m P[g, n, m] V[g*d+j, m]`` per step
ComplementaryFusion    WINDOW W: ``O_t[c, n] = mean_m S_t[c, m] * mean_{s in window} Tm_s[c, n]`` (means are
                       ``sum / count`` as ``torch.mean``; the m-mean, the s-mean, then the product)
Gate                   ``O[c, n] = X[c, n] * G[0]`` per step
CausalSpikeAttention   RUNNING: ``KV_t[g, i, j, n] = KV_{t-1} + K_t[g*d+i, n] V_t[g*d+j, n]``,
                       ``O_t[g*d+j, n] = scale * sum_i Q_t[g*d+i, n] KV_t[g, i, j, n]``
CausalFusion           RUNNING: ``O_t[c, n] = mean_m S_t[c, m] * (sum_{s<=t} Tm_s[c, n] / (t + 1))`` (the m-mean as
                       ``torch.mean``, the running sum divided by the step count, then the product)
=====================  ==========================================================================================

WINDOW nodes cut the sequence into consecutive windows ``[kW, (k+1)W)``; T must be a multiple of W. RUNNING nodes
carry their state (running sums and the step count) from one call to the next: the whole sequence at once or
step by step gives the same values; the state starts at zero with every run.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from export.interpreter.nodes import Context, Op, sum_terms
from export.ir.errors import InvalidNodeError
from export.ir.extensions import (
    AttentionApply,
    AttentionScores,
    CausalFusion,
    CausalSpikeAttention,
    ComplementaryFusion,
    Gate,
    SpikeAttention,
)

__all__ = ["EXTENSION_BUILDERS"]


def _heads(x: Tensor, h: int) -> Tensor:
    """``[..., C, N]`` -> ``[..., h, d, N]``."""
    return x.reshape(*x.shape[:-2], h, x.shape[-2] // h, x.shape[-1])


def _windows(x: Tensor, w: int, name: str) -> Tensor:
    """``[T, B, ...]`` -> ``[K, W, B, ...]`` with ``K = T / W``."""
    t = x.shape[0]
    if t % w:
        raise InvalidNodeError(
            f"node {name!r} is a WINDOW node with window={w}; the input has T={t} steps, not a multiple of {w}. "
            f"Run T = {w} (the exported time_steps) or a multiple of it"
        )
    return x.reshape(t // w, w, *x.shape[1:])


def _ports(fn: Callable[..., Tensor], ports: tuple[str, ...], window: int = 0) -> Op:
    return Op(lambda terms, state: (fn(*(sum_terms(terms[p]) for p in ports)), None), window=window)


def _attention_tokens(node: SpikeAttention, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    h = node.num_heads
    qh, kh, vh = _heads(q, h), _heads(k, h), _heads(v, h)  # [T, B, h, d, N]
    scores = qh.transpose(-1, -2) @ kh  # [T, B, h, N(n), N(m)]
    out = (scores @ vh.transpose(-1, -2)).transpose(-1, -2)  # [T, B, h, d(j), N(n)]
    return out.reshape(q.shape) * node.scale


def _attention_time(node: SpikeAttention, q: Tensor, k: Tensor, v: Tensor, name: str) -> Tensor:
    h, w = node.num_heads, node.window
    # [K, W, B, h, d, N] -> [K, B, h, N, W, d]: token n becomes a batch axis, steps and channels a matrix
    qw, kw, vw = (_heads(_windows(x, w, name), h).permute(0, 2, 3, 5, 1, 4) for x in (q, k, v))
    kv = kw.transpose(-1, -2) @ vw  # [K, B, h, N, d(i), d(j)]: sum_s K_s[i] V_s[j]
    r = (qw @ kv) * node.scale  # [K, B, h, N, W(t), d(j)]: sum_i Q_t[i] kv[i, j]
    n_win, b, _, n, _, d = r.shape
    if node.layout == "faithful":  # per token: (h, W, d) head-major, read as (W, C)
        r = r.permute(0, 1, 3, 2, 4, 5).reshape(n_win, b, n, w, h * d)  # [K, B, N, W, C]
        return r.permute(0, 3, 1, 4, 2).reshape(q.shape)  # [K, W, B, C, N] -> [T, B, C, N]
    return r.permute(0, 4, 1, 2, 5, 3).reshape(q.shape)  # [K, W, B, h, d, N] -> [T, B, C, N]


def build_spike_attention(node: SpikeAttention, ctx: Context) -> Op:
    if node.axis == "tokens":
        return _ports(lambda q, k, v: _attention_tokens(node, q, k, v), node.PORTS)
    return _ports(lambda q, k, v: _attention_time(node, q, k, v, ctx.name), node.PORTS, window=node.window)


def build_attention_scores(node: AttentionScores, ctx: Context) -> Op:
    def scores(q: Tensor, k: Tensor) -> Tensor:
        return _heads(q, node.num_heads).transpose(-1, -2) @ _heads(k, node.num_heads)  # [T, B, h, N, N]

    return _ports(scores, node.PORTS)


def build_attention_apply(node: AttentionApply, ctx: Context) -> Op:
    def apply(p: Tensor, v: Tensor) -> Tensor:
        out = (p @ _heads(v, node.num_heads).transpose(-1, -2)).transpose(-1, -2)  # [T, B, h, d, N]
        return out.reshape(v.shape) * node.scale

    return _ports(apply, node.PORTS)


def build_complementary_fusion(node: ComplementaryFusion, ctx: Context) -> Op:
    def fuse(spatial: Tensor, temporal: Tensor) -> Tensor:
        s = _windows(spatial, node.window, ctx.name).mean(dim=-1, keepdim=True)  # [K, W, B, C, 1]
        tm = _windows(temporal, node.window, ctx.name).mean(dim=1, keepdim=True)  # [K, 1, B, C, N]
        return (s * tm).reshape(spatial.shape)

    return _ports(fuse, node.PORTS, window=node.window)


def build_gate(node: Gate, ctx: Context) -> Op:
    def gate(x: Tensor, g: Tensor) -> Tensor:
        if g.shape[2:] != (1,):
            raise InvalidNodeError(f"node {ctx.name!r}: port 'gate' must have per-sample shape (1,), got {g.shape}")
        return x * g.reshape(*g.shape[:2], *([1] * (x.dim() - 2)))

    return _ports(gate, node.PORTS)


def build_causal_spike_attention(node: CausalSpikeAttention, ctx: Context) -> Op:
    h = node.num_heads

    def forward(terms: dict, kv0: Tensor | None) -> tuple[Tensor, Tensor]:
        q, k, v = (sum_terms(terms[p]) for p in node.PORTS)  # [T, B, C, N]
        qh, kh, vh = _heads(q, h), _heads(k, h), _heads(v, h)  # [T, B, h, d, N]
        kv = (kh.unsqueeze(4) * vh.unsqueeze(3)).cumsum(dim=0)  # [T, B, h, d(i), d(j), N]
        if kv0 is not None:
            kv = kv + kv0
        out = (qh.unsqueeze(4) * kv).sum(dim=3)  # [T, B, h, d(j), N]: sum_i Q_t[i] KV_t[i, j]
        return out.reshape(q.shape) * node.scale, kv[-1:]

    return Op(forward)


def build_causal_fusion(node: CausalFusion, ctx: Context) -> Op:
    def forward(terms: dict, state: tuple[Tensor, int] | None) -> tuple[Tensor, tuple[Tensor, int]]:
        spatial, temporal = (sum_terms(terms[p]) for p in node.PORTS)  # [T, B, C, N]
        running = temporal.cumsum(dim=0)
        seen = 0
        if state is not None:
            running, seen = running + state[0], state[1]
        t = temporal.shape[0]
        count = torch.arange(seen + 1, seen + t + 1, dtype=temporal.dtype, device=temporal.device)
        s = spatial.mean(dim=-1, keepdim=True)  # [T, B, C, 1]
        out = s * (running / count.reshape(t, *([1] * (temporal.dim() - 1))))
        return out, (running[-1:], seen + t)

    return Op(forward)


EXTENSION_BUILDERS: dict[type, Callable[[Any, Context], Op]] = {
    SpikeAttention: build_spike_attention,
    AttentionScores: build_attention_scores,
    AttentionApply: build_attention_apply,
    ComplementaryFusion: build_complementary_fusion,
    Gate: build_gate,
    CausalSpikeAttention: build_causal_spike_attention,
    CausalFusion: build_causal_fusion,
}
