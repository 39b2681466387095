"""The arithmetic of snnav's extension processes as pure numpy functions (the Lava models call these).

Notation as in ``export/EXTENSIONS.md``: token tensors ``(C, N)``, ``h`` heads, ``d = C / h``, channel ``c = g*d + i``;
a ``(C, N)`` tensor is viewed as ``(h, d, N)``; a window of ``W`` steps is an array ``(W, C, N)``.

Float kernels (float64) follow the spec's order: the sums of products, then ``scale`` last (then the optional output
``gain``). Integer kernels compute the same sums of products exactly in int64 and return the *accumulator*; the
fixed-point models turn it into the output format with :meth:`FixedPlan.requantize` (``hardware_sims.extensions.ports``).

=====================  ==================================================================================
attention_tokens       ``O[g*d+j, n] = scale * sum_m (sum_i Q[g*d+i, n] K[g*d+i, m]) V[g*d+j, m]``
attention_time         window: ``R[t, g, j, n] = scale * sum_s (sum_i Q_t[g*d+i, n] K_s[g*d+i, n]) V_s[g*d+j, n]``,
                       then :func:`time_layout` (clean / faithful)
attention_scores       ``S[g, n, m] = sum_i Q[g*d+i, n] K[g*d+i, m]``
attention_apply        ``O[g*d+j, n] = scale * sum_m P[g, n, m] V[g*d+j, m]``
complementary_fusion   window: ``O_t[c, n] = (sum_m S_t[c, m] / N) * (sum_s Tm_s[c, n] / W)``
gate                   ``O[c, n] = X[c, n] * G[0]``
causal_attention       running: ``KV[g, i, j, n] += K_t[g*d+i, n] V_t[g*d+j, n]`` (``=`` at the sample's first
                       step), ``O_t[g*d+j, n] = scale * sum_i Q_t[g*d+i, n] KV[g, i, j, n]``
causal_fusion          running: ``Sum[c, n] += Tm_t[c, n]`` (``=`` at the first step),
                       ``O_t[c, n] = (sum_m S_t[c, m] / N) * (Sum[c, n] / (t + 1))``
=====================  ==================================================================================

The running kernels take arrays with any leading axes (``[..., C, N]``, the state ``[..., h, d, d, N]`` /
``[..., C, N]``), so one call serves one sample (Lava) or a batch (the emulator).

The time attention associates as the spec writes it (per token, a ``W x W`` score matrix over steps, then applied to
``V``); the torch interpreter associates ``Q (K^T V)``. Both are exact for integer-valued (spike) inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "heads",
    "attention_tokens_acc",
    "attention_time_acc",
    "attention_scores_acc",
    "attention_apply_acc",
    "fusion_acc",
    "gate_acc",
    "time_layout",
    "attention_tokens_float",
    "attention_time_float",
    "attention_scores_float",
    "attention_apply_float",
    "fusion_float",
    "gate_float",
    "apply_gain",
    "WindowState",
    "window_step",
    "causal_kv_update",
    "causal_attention_acc",
    "causal_attention_float",
    "running_sum_update",
    "causal_fusion_acc",
    "causal_fusion_float",
    "advance",
]


def heads(x: np.ndarray, h: int) -> np.ndarray:
    """``[..., C, N]`` -> ``[..., h, d, N]``."""
    return x.reshape(*x.shape[:-2], h, x.shape[-2] // h, x.shape[-1])


# ------------------------------------------------------------------------------ sums of products (float or int)
def attention_tokens_acc(q: np.ndarray, k: np.ndarray, v: np.ndarray, h: int) -> np.ndarray:
    """``sum_m (sum_i Q[g*d+i, n] K[g*d+i, m]) V[g*d+j, m]``, ``(C, N)`` in, ``(C, N)`` out (dtype of the inputs)."""
    qh, kh, vh = heads(q, h), heads(k, h), heads(v, h)  # (h, d, N)
    scores = np.matmul(qh.transpose(0, 2, 1), kh)  # (h, N(n), N(m))
    out = np.matmul(scores, vh.transpose(0, 2, 1))  # (h, N(n), d(j))
    return out.transpose(0, 2, 1).reshape(q.shape)  # (C, N)


def attention_time_acc(q: np.ndarray, k: np.ndarray, v: np.ndarray, h: int) -> np.ndarray:
    """``R[t, g, j, n] = sum_s (sum_i Q_t[g*d+i, n] K_s[g*d+i, n]) V_s[g*d+j, n]``.

    ``(W, C, N)`` each in, ``(W, h, d, N)`` out.
    """
    qh, kh, vh = (heads(x, h).transpose(1, 3, 0, 2) for x in (q, k, v))  # (h, N, W, d)
    scores = np.matmul(qh, kh.transpose(0, 1, 3, 2))  # (h, N, W(t), W(s))
    r = np.matmul(scores, vh)  # (h, N, W(t), d(j))
    return r.transpose(2, 0, 3, 1)  # (W, h, d, N)


def attention_scores_acc(q: np.ndarray, k: np.ndarray, h: int) -> np.ndarray:
    """``S[g, n, m] = sum_i Q[g*d+i, n] K[g*d+i, m]``: ``(C, N)`` in, ``(h, N, N)`` out."""
    return np.matmul(heads(q, h).transpose(0, 2, 1), heads(k, h))


def attention_apply_acc(p: np.ndarray, v: np.ndarray, h: int) -> np.ndarray:
    """``sum_m P[g, n, m] V[g*d+j, m]``: ``p (h, N, N)``, ``v (C, N)`` in, ``(C, N)`` out."""
    out = np.matmul(p, heads(v, h).transpose(0, 2, 1))  # (h, N(n), d(j))
    return out.transpose(0, 2, 1).reshape(v.shape)


def fusion_acc(spatial: np.ndarray, temporal: np.ndarray) -> np.ndarray:
    """``(sum_m S_t[c, m]) * (sum_s Tm_s[c, n])``: ``(W, C, N)`` each in, ``(W, C, N)`` out (integer accumulator)."""
    return spatial.sum(axis=-1, keepdims=True) * temporal.sum(axis=0, keepdims=True)


def gate_acc(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``X[c, n] * G[0]``."""
    return x * g.reshape(())


def time_layout(r: np.ndarray, layout: str) -> np.ndarray:
    """``R (W, h, d, N)`` -> outputs ``(W, C, N)`` of the window.

    clean: ``O_t[g*d+j, n] = R[t, g, j, n]``. faithful: per token n, ``R[:, :, :, n]`` laid out ``(h, W, d)`` (flat
    ``f = g*W*d + t*d + j``) and read as ``(W, C)``: ``O_{f // C}[f % C, n]``.
    """
    w, h, d, n = r.shape
    if layout == "clean":
        return r.reshape(w, h * d, n)
    if layout == "faithful":
        return r.transpose(1, 0, 2, 3).reshape(w, h * d, n)  # (h, W, d, N) flat over (g, t, j) -> (W, C, N)
    raise ValueError(f"layout must be 'clean' or 'faithful', got {layout!r}")


# ------------------------------------------------------------------------------------------- float (float64)
def apply_gain(out: np.ndarray, gain: float) -> np.ndarray:
    """The optional output gain, multiplied after the spec's value (skipped when 1, so the spec value is bit-exact)."""
    return out if gain == 1.0 else out * gain


def attention_tokens_float(q, k, v, h: int, scale: float, gain: float = 1.0) -> np.ndarray:
    return apply_gain(attention_tokens_acc(q, k, v, h) * scale, gain)


def attention_time_float(q, k, v, h: int, scale: float, layout: str, gain: float = 1.0) -> np.ndarray:
    return apply_gain(time_layout(attention_time_acc(q, k, v, h) * scale, layout), gain)


def attention_scores_float(q, k, h: int, gain: float = 1.0) -> np.ndarray:
    return apply_gain(attention_scores_acc(q, k, h), gain)


def attention_apply_float(p, v, h: int, scale: float, gain: float = 1.0) -> np.ndarray:
    return apply_gain(attention_apply_acc(p, v, h) * scale, gain)


def fusion_float(spatial: np.ndarray, temporal: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Mean over tokens m, then mean over the window's steps s, then the product (the spec's float order)."""
    n, w = spatial.shape[-1], temporal.shape[0]
    s_mean = spatial.sum(axis=-1, keepdims=True) / n  # (W, C, 1)
    t_mean = temporal.sum(axis=0, keepdims=True) / w  # (1, C, N)
    return apply_gain(s_mean * t_mean, gain)


def gate_float(x: np.ndarray, g: np.ndarray, gain: float = 1.0) -> np.ndarray:
    return apply_gain(gate_acc(x, g), gain)


# --------------------------------------------------------------------------------- window streaming (latency W)
class WindowState:
    """State of a WINDOW process, the arrays its Lava Vars hold (see :func:`window_step`).

    Attributes:
        steps_seen: ``(1,)`` int: steps received since the last reset, kept in ``[W, 2W)`` after the first window.
        in_bufs: one ``(W, *port_shape)`` buffer per input port: the current window's inputs.
        out_buf: ``(W, *out_shape)``: the outputs of the previous window, emitted one per step.
    """

    def __init__(self, window: int, in_shapes: list[tuple[int, ...]], out_shape: tuple[int, ...], dtype) -> None:
        self.steps_seen = np.zeros(1, dtype=np.int32)
        self.in_bufs = [np.zeros((window, *s), dtype=dtype) for s in in_shapes]
        self.out_buf = np.zeros((window, *out_shape), dtype=dtype)


def window_step(steps_seen: np.ndarray, in_bufs: list[np.ndarray], out_buf: np.ndarray, inputs: list[np.ndarray],
                compute) -> np.ndarray:
    """One time step of a WINDOW process with latency ``W = out_buf.shape[0]``; updates the arrays in place.

    At phase ``p = steps_seen % W`` it stores ``inputs`` at ``in_bufs[.][p]`` and returns ``out_buf[p]``, the output
    of the previous window for window step p (zeros during the first window after a reset, whatever ``out_buf``
    holds). At ``p = W - 1`` the window is complete: ``out_buf <- compute(*in_bufs)``. So the output for window step
    t appears exactly W steps later, and a reset needs only ``steps_seen = 0``: every input slot is rewritten before
    the window that reads it ends, and stale ``out_buf`` contents are never emitted.
    """
    w = out_buf.shape[0]
    seen = int(steps_seen[0])
    p = seen % w
    out = out_buf[p].copy() if seen >= w else np.zeros_like(out_buf[p])
    for buf, x in zip(in_bufs, inputs):
        buf[p] = x
    if p == w - 1:
        out_buf[...] = compute(*in_bufs)
    seen += 1
    steps_seen[0] = seen - w if seen >= 2 * w else seen
    return out


# ---------------------------------------------------------------------------- running (causal) nodes, latency 0
def advance(steps_seen: np.ndarray) -> int:
    """The step count of a RUNNING process before this step (0: the sample's first step, state to overwrite), and
    ``steps_seen += 1`` in place (saturating at the int32 maximum)."""
    seen = int(steps_seen[0])
    steps_seen[0] = min(seen + 1, np.iinfo(np.int32).max)
    return seen


def causal_kv_update(kv: np.ndarray, first: bool, k: np.ndarray, v: np.ndarray, h: int) -> None:
    """``KV[..., g, i, j, n] (+)= K[..., g*d+i, n] V[..., g*d+j, n]`` in place (``=`` when `first`)."""
    term = heads(k, h)[..., :, :, None, :] * heads(v, h)[..., :, None, :, :]  # [..., h, d(i), d(j), N]
    if first:
        kv[...] = term
    else:
        kv += term


def causal_attention_acc(kv: np.ndarray, q: np.ndarray, h: int) -> np.ndarray:
    """``sum_i Q[..., g*d+i, n] KV[..., g, i, j, n]``: ``[..., C, N]`` out."""
    return (heads(q, h)[..., :, :, None, :] * kv).sum(axis=-3).reshape(q.shape)


def causal_attention_float(kv: np.ndarray, q: np.ndarray, h: int, scale: float, gain: float = 1.0) -> np.ndarray:
    return apply_gain(causal_attention_acc(kv, q, h) * scale, gain)


def running_sum_update(total: np.ndarray, first: bool, x: np.ndarray) -> None:
    """``total (+)= x`` in place (``=`` when `first`)."""
    if first:
        total[...] = x
    else:
        total += x


def causal_fusion_acc(spatial: np.ndarray, total: np.ndarray) -> np.ndarray:
    """``(sum_m S[..., c, m]) * Sum[..., c, n]`` (integer accumulator, before ``1 / (N (t+1))``)."""
    return spatial.sum(axis=-1, keepdims=True) * total


def causal_fusion_float(spatial: np.ndarray, total: np.ndarray, count: int, gain: float = 1.0) -> np.ndarray:
    """Mean over tokens, the running sum divided by the step count ``t + 1``, then the product (the spec's order)."""
    s_mean = spatial.sum(axis=-1, keepdims=True) / spatial.shape[-1]
    return apply_gain(s_mean * (total / count), gain)
