"""Operations inside snnav's extension nodes (``export/EXTENSIONS.md``), counted from the values at their ports.

The rules (``hardware_sims/counts/COUNTS.md`` §5 has the reasoning and the formulas):

* A **product** ``a * b`` is counted when both operands are nonzero (event-driven: a zero operand costs nothing).
  It is an **AC** when both operands are spikes (+-1), a **MAC** as soon as one is graded (neither 0 nor +-1), as
  the issue defines it. Spike x spike is an AC; spike x graded and graded x graded are MACs (an upper bound: a chip
  could add the graded operand). Each counted product includes its accumulation into the sum.
* An **addition** of a nonzero term into a sum with no product (the token and step sums of ComplementaryFusion) is
  an AC, whatever the term's value.
* **Constant factors** (``scale``, ``1/N``, ``1/W``) are not counted: they fold into the consumer's weights or
  threshold (one multiply per output element where they are not folded).
* Intermediate values (an attention score matrix) are computed from the port values to find their nonzeros.

Every counter takes the node and its port values ``[T, B, *port shape]`` and returns ``(acs, macs)``, one value per
sample (summed over the steps). `EXTENSION_COUNTERS` maps type names to counters; `register_extension_counter`
adds one for a third-party extension.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["EXTENSION_COUNTERS", "register_extension_counter", "extension_ops", "scores_ops", "apply_ops"]

Ops = tuple[np.ndarray, np.ndarray]  # (ACs per sample, MACs per sample)


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(nonzero, graded) as float64 0/1 arrays: graded = nonzero and not +-1."""
    nz = x != 0
    return nz.astype(np.float64), (nz & (np.abs(x) != 1)).astype(np.float64)


def _heads(x: np.ndarray, h: int) -> np.ndarray:
    """``[..., C, N]`` -> ``[..., h, d, N]``."""
    return x.reshape(*x.shape[:-2], h, x.shape[-2] // h, x.shape[-1])


def _windows(x: np.ndarray, w: int, name: str) -> np.ndarray:
    """``[T, B, ...]`` -> ``[K, W, B, ...]`` (T = K W)."""
    if w <= 0 or x.shape[0] % w:
        raise ValueError(f"{name}: a window of {w} steps does not divide the run's T = {x.shape[0]}")
    return x.reshape(x.shape[0] // w, w, *x.shape[1:])


def _pair_counts(a: np.ndarray, b: np.ndarray, axis_a: int, axis_b: int, sum_axes: tuple[int, ...]) -> Ops:
    """Products ``a_p * b_q`` of every nonzero pair along one free axis of each operand.

    ``a`` is reduced over ``axis_a`` and ``b`` over ``axis_b`` (the indices that pair up freely); the rest must
    broadcast; the product of the counts is summed over ``sum_axes`` (leaving the sample axis).
    """
    a_nz, a_gr = _split(a)
    b_nz, b_gr = _split(b)
    total = (a_nz.sum(axis=axis_a) * b_nz.sum(axis=axis_b)).sum(axis=sum_axes)
    # An AC only where both operands are spikes (+-1); any product with a graded operand is a MAC.
    acs = ((a_nz - a_gr).sum(axis=axis_a) * (b_nz - b_gr).sum(axis=axis_b)).sum(axis=sum_axes)
    return acs, total - acs


def scores_ops(q: np.ndarray, k: np.ndarray, h: int) -> Ops:
    """``S[g, n, m] = sum_i Q[g*d+i, n] K[g*d+i, m]``: for each channel, every token pair ``(n, m)``.

    ``q``, ``k``: ``[T, B, C, N]``.
    """
    del h  # channels pair within their head: the count does not depend on the grouping
    return _pair_counts(q, k, -1, -1, (0, 2))  # counts over tokens: [T, B, C]


def apply_ops(p: np.ndarray, v: np.ndarray, h: int) -> Ops:
    """``O[g*d+j, n] = sum_m P[g, n, m] V[g*d+j, m]``: for each head and key token m, every pair ``(n, j)``.

    ``p``: ``[T, B, h, N, N]``; ``v``: ``[T, B, C, N]``.
    """
    return _pair_counts(p, _heads(v, h), 3, 3, (0, 2, 3))  # [T, B, h, N(m)]


def _scores(q: np.ndarray, k: np.ndarray, h: int) -> np.ndarray:
    return np.einsum("tbgin,tbgim->tbgnm", _heads(q, h), _heads(k, h))


def spike_attention_ops(node: Any, ports: Mapping[str, np.ndarray]) -> Ops:
    """SpikeAttention as the kernels compute it: scores ``Q K^T`` (per head), then the scores times ``V``.

    ``axis="tokens"``: `scores_ops` + `apply_ops` on the scores. ``axis="time"``: per window, token and head, the
    ``W x W`` step scores ``S[t, s] = sum_i Q_t[i] K_s[i]`` (every pair (t, s) per channel), then ``R[t, j] =
    sum_s S[t, s] V_s[j]`` (every pair (t, j) per step s).
    """
    q, k, v, h = ports["q"], ports["k"], ports["v"], int(node.num_heads)
    if node.axis == "tokens":
        a1, m1 = scores_ops(q, k, h)
        a2, m2 = apply_ops(_scores(q, k, h), v, h)
        return a1 + a2, m1 + m2
    w = int(node.window)
    qh, kh, vh = (_heads(_windows(x, w, "SpikeAttention"), h) for x in (q, k, v))  # [K, W, B, h, d, N]
    a1, m1 = _pair_counts(qh, kh, 1, 1, (0, 2, 3, 4))  # counts over steps: [K, B, h, d, N]
    s = np.einsum("ktbgin,ksbgin->kbgnts", qh, kh)  # [K, B, h, N, W(t), W(s)]
    v_counts = np.moveaxis(vh, 1, -1)  # [K, B, h, d, N, W(s)]
    s_nz, s_gr = _split(s)
    v_nz, v_gr = _split(v_counts)
    total = (s_nz.sum(axis=4) * v_nz.sum(axis=3)).sum(axis=(0, 2, 3, 4))  # [K, B, h, N, W(s)]
    a2 = ((s_nz - s_gr).sum(axis=4) * (v_nz - v_gr).sum(axis=3)).sum(axis=(0, 2, 3, 4))  # spike x spike only
    return a1 + a2, m1 + total - a2


def scores_node_ops(node: Any, ports: Mapping[str, np.ndarray]) -> Ops:
    """AttentionScores: `scores_ops`."""
    return scores_ops(ports["q"], ports["k"], int(node.num_heads))


def apply_node_ops(node: Any, ports: Mapping[str, np.ndarray]) -> Ops:
    """AttentionApply: `apply_ops` (``scale`` not counted)."""
    return apply_ops(ports["p"], ports["v"], int(node.num_heads))


def fusion_ops(node: Any, ports: Mapping[str, np.ndarray]) -> Ops:
    """ComplementaryFusion, per window: ``a_t[c] = sum_m S_t[c, m]`` and ``b[c, n] = sum_s Tm_s[c, n]`` (one AC per
    nonzero term), then ``a_t[c] * b[c, n]`` for every step t and token n (``1/N``, ``1/W`` not counted)."""
    w = int(node.window)
    s = _windows(ports["spatial"], w, "ComplementaryFusion")  # [K, W, B, C, N]
    tm = _windows(ports["temporal"], w, "ComplementaryFusion")
    adds = (s != 0).sum(axis=(0, 1, 3, 4)) + (tm != 0).sum(axis=(0, 1, 3, 4))
    a = s.sum(axis=-1)  # [K, W(t), B, C]
    b = tm.sum(axis=1)[:, None]  # [K, 1, B, C, N]
    acs, macs = _pair_counts(a[..., None], b, -1, -1, (0, 1, 3))
    return adds + acs, macs


def gate_ops(node: Any, ports: Mapping[str, np.ndarray]) -> Ops:
    """Gate: ``X[c, n] * G[0]`` for every element."""
    x = ports["x"].reshape(*ports["x"].shape[:2], -1)[..., None]  # [T, B, C*N, 1]
    g = ports["gate"].reshape(*ports["gate"].shape[:2], 1, -1)  # [T, B, 1, 1]
    return _pair_counts(x, g, -1, -1, (0, 2))


def causal_attention_ops(node: Any, ports: Mapping[str, np.ndarray]) -> Ops:
    """CausalSpikeAttention in running form, per step, token and head: the update ``KV += K_t[i] V_t[j]`` (every
    nonzero pair (i, j)), then ``sum_i Q_t[i] KV_t[i, j]`` (every nonzero Q_t[i] with every nonzero KV_t[i, j]; KV
    holds counts, so mostly MACs)."""
    q, k, v, h = ports["q"], ports["k"], ports["v"], int(node.num_heads)
    qh, kh, vh = (_heads(x, h) for x in (q, k, v))  # [T, B, h, d, N]
    a1, m1 = _pair_counts(kh, vh, 3, 3, (0, 2, 3))
    kv = np.cumsum(kh[:, :, :, :, None, :] * vh[:, :, :, None, :, :], axis=0)  # [T, B, h, d(i), d(j), N]
    q_nz, q_gr = _split(qh[:, :, :, :, None, :])
    kv_nz, kv_gr = _split(kv)
    total = (q_nz * kv_nz).sum(axis=(0, 2, 3, 4, 5))
    a2 = ((q_nz - q_gr) * (kv_nz - kv_gr)).sum(axis=(0, 2, 3, 4, 5))
    return a1 + a2, m1 + total - a2


def causal_fusion_ops(node: Any, ports: Mapping[str, np.ndarray]) -> Ops:
    """CausalFusion, per step: ``a_t[c] = sum_m S_t[c, m]`` and ``Sum_t[c, n] += Tm_t[c, n]`` (one AC per nonzero
    term), then ``a_t[c] * Sum_t[c, n]`` for every token n (``1/N``, ``1/(t+1)`` not counted)."""
    s, tm = ports["spatial"], ports["temporal"]  # [T, B, C, N]
    adds = (s != 0).sum(axis=(0, 2, 3)) + (tm != 0).sum(axis=(0, 2, 3))
    a = s.sum(axis=-1)[..., None]  # [T, B, C, 1]
    b = np.cumsum(tm, axis=0)  # [T, B, C, N]
    acs, macs = _pair_counts(a[..., None], b[..., None], -1, -1, (0, 2, 3))
    return adds + acs, macs


EXTENSION_COUNTERS: dict[str, Callable[[Any, Mapping[str, np.ndarray]], Ops]] = {
    "snnav.SpikeAttention": spike_attention_ops,
    "snnav.AttentionScores": scores_node_ops,
    "snnav.AttentionApply": apply_node_ops,
    "snnav.ComplementaryFusion": fusion_ops,
    "snnav.Gate": gate_ops,
    "snnav.CausalSpikeAttention": causal_attention_ops,
    "snnav.CausalFusion": causal_fusion_ops,
}
"""Extension type name -> ``counter(node, ports) -> (acs, macs)`` (ports: name -> ``[T, B, *shape]``)."""


def register_extension_counter(type_name: str, counter: Callable[[Any, Mapping[str, np.ndarray]], Ops] | None
                               ) -> None:
    """Add (or with None remove) the operation counter of an extension type, e.g. a third-party one."""
    if counter is None:
        EXTENSION_COUNTERS.pop(type_name, None)
    else:
        EXTENSION_COUNTERS[type_name] = counter


def extension_ops(node: Any, ports: Mapping[str, np.ndarray]) -> Ops:
    """``(acs, macs)`` per sample of one extension node; ports: name -> ``[T, B, *port shape]``.

    Raises:
        ValueError: no counter is registered for the node's type.
    """
    type_name = getattr(node, "type_name", type(node).__name__)
    counter = EXTENSION_COUNTERS.get(type_name)
    if counter is None:
        raise ValueError(f"no operation counter for extension type {type_name!r}; counters exist for "
                         f"{sorted(EXTENSION_COUNTERS)}. Register one with "
                         "hardware_sims.counts.register_extension_counter")
    acs, macs = counter(node, ports)
    return np.asarray(acs, dtype=np.float64), np.asarray(macs, dtype=np.float64)
