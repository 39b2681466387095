"""Cross-modal spiking attention: spatial, temporal, their CCSSA combination, and SCA's relative-position variant.

Every module is called ``f(x, y)``: ``x`` is the query modality, ``y`` supplies keys and values, both
``(T, B, C, N)`` with the same T, B, C and N (docs/scmrl.md §1.5). Q, K, V are binary spikes; there is no softmax
and the scale is the reference's fixed 0.25.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from snnav.models.layers import ATTN_SCALE, SSA, NeuronLayer, check_choice, multihead_spike_product
from snnav.neurons import MultiStepLIF

__all__ = [
    "ATTN_VARIANTS",
    "TEMPORAL_RESHAPES",
    "SpatialCrossAttention",
    "TemporalCrossAttention",
    "CCSSA",
    "CausalTemporalCrossAttention",
    "CausalCCSSA",
    "RelativeBiasCrossAttention",
    "make_cross_attention",
]

ATTN_VARIANTS = ("spatial", "temporal", "spatial-temporal", "causal-temporal", "causal-spatial-temporal")
TEMPORAL_RESHAPES = ("faithful", "clean")


class SpatialCrossAttention(SSA):
    """Spatial branch: attention over the N tokens, independently per time step; binary ``(T, B, C, N)`` output."""

    def forward(self, x: Tensor, y: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(x, y)


class TemporalCrossAttention(SSA):
    """Temporal branch: attention over the T steps, independently per token and head (docs/scmrl.md §1.5).

    Q, K, V become ``(N, B, h, T, d)``; ``out = 0.25 Q K^T V`` is ``(N, B, h, T, d)``. Going back to ``(T, B, C, N)``:

    * ``temporal_reshape="faithful"`` keeps the reference's ``out.reshape(N, B, T, C).permute(2, 1, 3, 0)`` without
      first moving h next to d. Output "time" t' = head // (h/T) and channel = (head mod h/T)·T·d + t·d + j, so
      attn_lif runs its recurrence across head groups. This is what produced the paper's numbers.
    * ``"clean"`` moves h back first: output time t, channel head·d + j (the layout the spatial branch uses).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 16,
        neuron_layer: NeuronLayer = MultiStepLIF,
        temporal_reshape: str = "faithful",
    ) -> None:
        super().__init__(dim, num_heads, neuron_layer)
        check_choice("temporal_reshape", temporal_reshape, TEMPORAL_RESHAPES)
        self.temporal_reshape = temporal_reshape

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        t, b, c, n = q.shape
        h = self.num_heads

        def per_token(z: Tensor) -> Tensor:
            z = z.permute(3, 1, 0, 2)  # (N, B, T, C)
            return z.reshape(n, b, t, h, c // h).transpose(2, 3)  # (N, B, h, T, d)

        out = multihead_spike_product(per_token(q), per_token(k), per_token(v)) * ATTN_SCALE  # (N, B, h, T, d)
        if self.temporal_reshape == "clean":
            out = out.transpose(2, 3)  # (N, B, T, h, d)
        # faithful: the (h, T, d) memory of each (n, b) is reinterpreted as (T', C) — the reference's bug.
        return out.reshape(n, b, t, c).permute(2, 1, 3, 0)  # (T, B, C, N)


class CCSSA(nn.Module):
    """Cross-modal complementary spatio-temporal spiking attention (docs/scmrl.md §1.5).

    ``S`` = spatial branch, ``Tm`` = temporal branch (separate weights);
    ``out[t, b, c, n] = mean_n'(S)[t, b, c] * mean_t'(Tm)[b, c, n]``, real-valued in [0, 1].
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 16,
        neuron_layer: NeuronLayer = MultiStepLIF,
        temporal_reshape: str = "faithful",
    ) -> None:
        super().__init__()
        self.spatial = SpatialCrossAttention(dim, num_heads, neuron_layer)
        self.temporal = TemporalCrossAttention(dim, num_heads, neuron_layer, temporal_reshape)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        s = self.spatial(x, y).mean(dim=3, keepdim=True)  # (T, B, C, 1)
        tm = self.temporal(x, y).mean(dim=0, keepdim=True)  # (1, B, C, N)
        return s * tm  # (T, B, C, N)


class CausalTemporalCrossAttention(SSA):
    """Causal temporal branch (docs/scmrl.md §8): step t attends to the steps ``s <= t`` only, per token and head.

    ``out_t[g*d+j, n] = 0.25 * sum_{s<=t} sum_i Q_t[g*d+i, n] K_s[g*d+i, n] V_s[g*d+j, n]`` (the clean layout: the
    faithful one reads every step of the window into every output step and cannot be causal). At the last step it
    equals the clean TemporalCrossAttention's output for that step. Exported as ``snnav.CausalSpikeAttention``, whose
    running form keeps ``sum_{s<=t} K_s V_s^T``; here the masked ``(T, T)`` score matrix (cheaper to train, the same
    integers for binary spikes).
    """

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        t, b, c, n = q.shape
        h = self.num_heads

        def per_token(z: Tensor) -> Tensor:
            return z.permute(3, 1, 0, 2).reshape(n, b, t, h, c // h).transpose(2, 3)  # (N, B, h, T, d)

        qt, kt, vt = per_token(q), per_token(k), per_token(v)
        scores = (qt @ kt.transpose(-2, -1)).tril()  # (N, B, h, T(t), T(s)), s <= t only
        out = (scores @ vt) * ATTN_SCALE  # (N, B, h, T, d)
        return out.transpose(2, 3).reshape(n, b, t, c).permute(2, 1, 3, 0)  # (T, B, C, N), c = head*d + j


class CausalCCSSA(nn.Module):
    """Causal CCSSA (docs/scmrl.md §8): the spatial branch and the causal temporal branch, fused with a running mean.

    ``out[t, b, c, n] = mean_n'(S)[t, b, c] * (sum_{s<=t} Tm[s, b, c, n] / (t + 1))``: the temporal profile is the
    mean over the steps seen so far instead of over all T. At t = T-1 it is CCSSA's (clean-layout) value.
    """

    def __init__(self, dim: int, num_heads: int = 16, neuron_layer: NeuronLayer = MultiStepLIF) -> None:
        super().__init__()
        self.spatial = SpatialCrossAttention(dim, num_heads, neuron_layer)
        self.temporal = CausalTemporalCrossAttention(dim, num_heads, neuron_layer)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        s = self.spatial(x, y).mean(dim=3, keepdim=True)  # (T, B, C, 1)
        tm = self.temporal(x, y)  # (T, B, C, N)
        count = torch.arange(1, tm.shape[0] + 1, dtype=tm.dtype, device=tm.device).reshape(-1, 1, 1, 1)
        return s * (tm.cumsum(dim=0) / count)  # (T, B, C, N)


def relative_position_index(grid: int, margin: int = 0) -> Tensor:
    """Index ``(N, N)`` into a flattened square table of relative offsets for a G x G token grid (N = G^2).

    Token ``p`` sits at row ``p // G``, column ``p % G``. Entry ``[p, q]`` is ``(dr + s) * S + (dc + s)`` with
    ``(dr, dc)`` the offset of ``p`` from ``q``, side ``S = 2G - 1 + 2 margin`` and shift ``s = G - 1 + margin``.
    ``margin=0`` is the Swin-style ``(2G-1)^2`` table; ``margin=1`` is the reference SCA's ``(2G+1)^2`` table whose
    outer ring is drawn but never read (docs/scmrl.md §1.8).
    """
    side, shift = 2 * grid - 1 + 2 * margin, grid - 1 + margin
    coords = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")).flatten(1)  # (2, N)
    rel = coords[:, :, None] - coords[:, None, :] + shift  # (2, N, N), offsets shifted to >= 0
    return rel[0] * side + rel[1]  # (N, N)


class RelativeBiasCrossAttention(SSA):
    """SCA's visual block (docs/scmrl.md §1.8): ``out = 0.25 * LIF_rpb(Q K^T + B) V`` per head, then attn_lif and proj.

    In the reference, the bias B is not a parameter: every forward pass draws a fresh ``(2G+1) x (2G+1)`` table with
    one ``torch.randn`` call on the CPU global generator (default dtype), builds ONE ``(N, N)`` matrix
    ``B[p, q] = table[dr + G, dc + G]`` from the row/column offset ``(dr, dc)`` of token p from token q, and adds
    that same matrix to every time step, batch item and head. ``random_rpb=True`` reproduces that draw exactly:
    same generator, same shape, same order, so after the same ``torch.manual_seed`` it yields the reference's
    matrix. The model is then non-deterministic even in eval mode and cannot be exported (no fixed weights
    describe it). ``random_rpb=False`` uses B = 0 and keeps ``LIF_rpb`` on ``Q K^T``; it has the same parameters
    and is deterministic. The token grid must be square (G x G) for the relative index.
    """

    def __init__(
        self, dim: int, num_heads: int = 16, neuron_layer: NeuronLayer = MultiStepLIF, random_rpb: bool = False
    ) -> None:
        super().__init__(dim, num_heads, neuron_layer)
        self.random_rpb = bool(random_rpb)
        self.rpb_lif = neuron_layer()

    @staticmethod
    def _bias(n: int, like: Tensor) -> Tensor:
        """One ``(N, N)`` bias drawn as the reference draws it, moved to ``like``'s device and dtype."""
        grid = int(round(n**0.5))
        if grid * grid != n:
            raise ValueError(f"SCA's relative position bias needs a square token grid; got N={n} tokens.")
        table = torch.randn(2 * grid + 1, 2 * grid + 1)  # CPU global generator, default dtype, as the reference
        index = relative_position_index(grid, margin=1)
        return table.flatten()[index].to(device=like.device, dtype=like.dtype)  # (N, N)

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        t, b, c, n = q.shape
        h = self.num_heads

        def heads(z: Tensor) -> Tensor:
            return z.transpose(2, 3).reshape(t, b, n, h, c // h).transpose(2, 3)  # (T, B, h, N, d)

        attn = heads(q) @ heads(k).transpose(-2, -1)  # (T, B, h, N, N)
        if self.random_rpb:
            attn = attn + self._bias(n, attn)  # one (N, N) matrix, broadcast over T, B and heads
        out = (self.rpb_lif(attn) @ heads(v)) * ATTN_SCALE  # (T, B, h, N, d)
        return out.transpose(3, 4).reshape(t, b, c, n)  # (T, B, C, N), c = head*d + j


def make_cross_attention(
    variant: str,
    dim: int,
    num_heads: int = 16,
    neuron_layer: NeuronLayer = MultiStepLIF,
    temporal_reshape: str = "faithful",
) -> nn.Module:
    """Build the cross-attention named by ``variant`` (``spatial``, ``temporal``, ``spatial-temporal``, or the causal
    ``causal-temporal`` / ``causal-spatial-temporal``, which have the clean layout whatever ``temporal_reshape``)."""
    check_choice("attn_variant", variant, ATTN_VARIANTS)
    check_choice("temporal_reshape", temporal_reshape, TEMPORAL_RESHAPES)
    if variant.startswith("causal-") and temporal_reshape != "clean":
        raise ValueError(f"attn_variant={variant!r} is causal and has only the clean layout; the faithful layout "
                         "reads every step of the window into every output step. Set temporal_reshape='clean'.")
    if variant == "causal-temporal":
        return CausalTemporalCrossAttention(dim, num_heads, neuron_layer)
    if variant == "causal-spatial-temporal":
        return CausalCCSSA(dim, num_heads, neuron_layer)
    if variant == "spatial":
        return SpatialCrossAttention(dim, num_heads, neuron_layer)
    if variant == "temporal":
        return TemporalCrossAttention(dim, num_heads, neuron_layer, temporal_reshape)
    return CCSSA(dim, num_heads, neuron_layer, temporal_reshape)
