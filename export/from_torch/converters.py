"""Converters ``module -> NIR nodes`` for every block of snnav's registered models (see ``export/from_torch/exporter.py``).

Each converter mirrors the ``forward`` of its module in ``snnav/models`` and says which line it reproduces; shapes
in comments are per sample, per step: images ``(C, H, W)``, tokens ``(C, N)``.
"""

from __future__ import annotations

import nir
import numpy as np
from torch import nn

import export.ir.extensions as ext
from export.from_torch.builder import Builder, ExportError, Value, convert, converter, sum_values
from export.from_torch.fold import fold_bn
from snnav.models.attention import (
    CCSSA,
    CausalCCSSA,
    CausalTemporalCrossAttention,
    RelativeBiasCrossAttention,
    SpatialCrossAttention,
    TemporalCrossAttention,
)
from snnav.models.audiovisual import AudioVisualSpikformer, CrossModalResidualBlock
from snnav.models.baselines import CMCIBranch, CMCISpikformer, ReplacingAttentionBlock, WeightAttentionBlock
from snnav.models.layers import ATTN_SCALE, MLP, SSA, ConvBNLIF1d, ConvStage, MLPBlock, PatchSplitting, SpikformerBlock
from snnav.models.spikformer import Spikformer


def _p(path: str, child: str) -> str:
    return f"{path}.{child}" if path else child


# ---------------------------------------------------------------------------------------------------------- stems
@converter(ConvStage)
def _conv_stage(b: Builder, m: ConvStage, path: str, x: Value) -> Value:
    """Conv3x3 + BN -> LIF [-> max-pool(3, 2, 1) as SumPool2d + Threshold(0.5) on binary spikes]."""
    c_in, h, w = x.shape
    weight, bias = fold_bn(m.conv, m.bn, b.np_dtype)
    conv = nir.Conv2d(input_shape=(h, w), weight=weight, stride=1, padding=1, dilation=1, groups=1, bias=bias)
    y = Value((b.add(_p(path, "conv"), conv, _p(path, "conv") + ":bn folded", x),), (weight.shape[0], h, w))
    s = b.lif(_p(path, "lif"), m.lif, y)  # (C, H, W)
    if isinstance(m.pool, nn.Identity):
        return s
    c = weight.shape[0]
    pool = nir.SumPool2d(kernel_size=np.array([3, 3]), stride=np.array([2, 2]), padding=np.array([1, 1]))
    pooled = Value((b.add(_p(path, "pool"), pool, _p(path, "pool") + ":sum", s),), (c, (h + 1) // 2, (w + 1) // 2))
    any_spike = nir.Threshold(threshold=np.full(pooled.shape, 0.5, dtype=b.np_dtype))
    return Value((b.add(_p(path, "pool_or"), any_spike, _p(path, "pool") + ":any spike", pooled),), pooled.shape)


@converter(PatchSplitting)
def _patch_splitting(b: Builder, m: PatchSplitting, path: str, x: Value) -> Value:
    """``x + rpe(x)`` after the pooled stages, flattened to tokens: ``(D, H', W') -> (D, N)``."""
    if x.shape[0] != m.in_channels:
        raise ExportError(f"{path} expects {m.in_channels} input channels; the export config gives {x.shape}.")
    if x.shape[1] % m.downsample or x.shape[2] % m.downsample:
        raise ExportError(f"{path} needs H and W divisible by {m.downsample}; the export config gives {x.shape}.")
    for i, stage in enumerate(m.stages):
        x = convert(b, stage, _p(path, f"stages.{i}"), x)
    rpe = convert(b, m.rpe, _p(path, "rpe"), x)
    tokens = []
    for value, tag in ((x, "flatten_x"), (rpe, "flatten_rpe")):  # Flatten is linear: flatten(x) + flatten(rpe)
        c, h, w = value.shape
        node = nir.Flatten(input_type={"input": np.array(value.shape)}, start_dim=1, end_dim=2)
        tokens.append(Value((b.add(_p(path, tag), node, f"{path}:{tag}", value),), (c, h * w)))
    return sum_values(*tokens)


# ------------------------------------------------------------------------------------------------- token blocks
@converter(ConvBNLIF1d)
def _conv_bn_lif(b: Builder, m: ConvBNLIF1d, path: str, x: Value) -> Value:
    return b.lif(_p(path, "lif"), m.lif, b.conv_bn_1d(path, m.conv, m.bn, x))


@converter(MLP)
def _mlp(b: Builder, m: MLP, path: str, x: Value) -> Value:
    return convert(b, m.fc2, _p(path, "fc2"), convert(b, m.fc1, _p(path, "fc1"), x))


@converter(MLPBlock)
def _mlp_block(b: Builder, m: MLPBlock, path: str, x: Value) -> Value:
    return sum_values(x, convert(b, m.mlp, _p(path, "mlp"), x))  # x + MLP(x)


def _attention_core(b: Builder, m: SSA, path: str, q: Value, k: Value, v: Value) -> Value:
    """``0.25 Q K^T V`` per head, as the extension node matching the module's attend()."""
    c, n = q.shape
    ports = {"q": q, "k": k, "v": v}
    if isinstance(m, CausalTemporalCrossAttention):  # running form, no window: step t reads steps 0..t
        node: nir.NIRNode = ext.CausalSpikeAttention(shape=np.array([c, n]), num_heads=m.num_heads,
                                                     scale=ATTN_SCALE)
    elif isinstance(m, TemporalCrossAttention):
        node = ext.SpikeAttention(shape=np.array([c, n]), num_heads=m.num_heads, scale=ATTN_SCALE, axis="time",
                                  layout=m.temporal_reshape, window=b.config.time_steps)
    elif isinstance(m, RelativeBiasCrossAttention):
        if m.random_rpb:
            raise ExportError(f"{path} redraws its relative position bias at random on every forward "
                              "(sca_random_rpb=True): no fixed graph computes it. Export an SCA built with "
                              "sca_random_rpb=False.")
        scores = ext.AttentionScores(shape=np.array([c, n]), num_heads=m.num_heads)
        s = Value((b.add(_p(path, "scores"), scores, f"{path}:scores", {"q": q, "k": k}),), (m.num_heads, n, n))
        p = b.lif(_p(path, "rpb_lif"), m.rpb_lif, s)  # LIF over Q K^T, (h, N, N)
        node = ext.AttentionApply(shape=np.array([c, n]), num_heads=m.num_heads, scale=ATTN_SCALE)
        ports = {"p": p, "v": v}
    else:
        node = ext.SpikeAttention(shape=np.array([c, n]), num_heads=m.num_heads, scale=ATTN_SCALE, axis="tokens")
    return Value((b.add(_p(path, "attend"), node, f"{path}:attend", ports),), (c, n))


@converter(SSA)
def _ssa(b: Builder, m: SSA, path: str, x: Value, y: Value | None = None) -> Value:
    """``proj(attn_lif(attend(q(x), k(y), v(y))))``; y defaults to x (self-attention)."""
    y = x if y is None else y
    q = convert(b, m.q, _p(path, "q"), x)
    k = convert(b, m.k, _p(path, "k"), y)
    v = convert(b, m.v, _p(path, "v"), y)
    a = b.lif(_p(path, "attn_lif"), m.attn_lif, _attention_core(b, m, path, q, k, v))
    return convert(b, m.proj, _p(path, "proj"), a)


@converter(CCSSA)
def _ccssa(b: Builder, m: CCSSA, path: str, x: Value, y: Value) -> Value:
    """``mean_N(S)[t] * mean_T(Tm)[n]`` of the spatial and temporal branches (a window node)."""
    s = convert(b, m.spatial, _p(path, "spatial"), x, y)
    tm = convert(b, m.temporal, _p(path, "temporal"), x, y)
    node = ext.ComplementaryFusion(shape=np.array(s.shape), window=b.config.time_steps)
    return Value((b.add(_p(path, "fusion"), node, f"{path}:fusion", {"spatial": s, "temporal": tm}),), s.shape)


@converter(CausalCCSSA)
def _causal_ccssa(b: Builder, m: CausalCCSSA, path: str, x: Value, y: Value) -> Value:
    """``mean_N(S)[t] * running mean_{s<=t}(Tm)[n]``: a RUNNING node, nothing waits for later steps."""
    s = convert(b, m.spatial, _p(path, "spatial"), x, y)
    tm = convert(b, m.temporal, _p(path, "temporal"), x, y)
    node = ext.CausalFusion(shape=np.array(s.shape))
    return Value((b.add(_p(path, "fusion"), node, f"{path}:fusion", {"spatial": s, "temporal": tm}),), s.shape)


@converter(SpikformerBlock)
def _spikformer_block(b: Builder, m: SpikformerBlock, path: str, x: Value) -> Value:
    x1 = sum_values(x, convert(b, m.attn, _p(path, "attn"), x))  # x + SSA(x)
    return convert(b, m.mlp, _p(path, "mlp"), x1)


@converter(CrossModalResidualBlock)
def _cross_modal_residual(b: Builder, m: CrossModalResidualBlock, path: str, x: Value, y: Value) -> Value:
    """``x + alpha * res``; S-CMRL's ``res = LIF(Linear(attn(x, y)))`` over channels, CMRL's ``res = attn(x, y)``."""
    res = convert(b, m.attn, _p(path, "attn"), x, y)
    if m.project:
        z = b.token_linear(_p(path, "trans_linear"), m.trans_linear, res)
        res = b.lif(_p(path, "trans_lif"), m.trans_lif, z, source_axes=(1, 0))  # the model runs it on (N, C)
    return sum_values(x, b.scale(_p(path, "alpha"), m.alpha, res, f"{path}:alpha"))


@converter(WeightAttentionBlock)
def _weight_attention(b: Builder, m: WeightAttentionBlock, path: str, x: Value, y: Value) -> Value:
    """``x * fc2(fc1(cat(mean_N x, mean_N y)))``: fc1 split into its x and y halves, summed at fc2 (fan-in)."""
    d = x.shape[0]
    w1 = m.fc1.weight  # (D, 2D)
    hx = b.token_mean_affine(_p(path, "fc1_x"), w1[:, :d], m.fc1.bias, x, _p(path, "fc1") + ":x half")
    hy = b.token_mean_affine(_p(path, "fc1_y"), w1[:, d:], None, y, _p(path, "fc1") + ":y half")
    w2 = nir.Affine(weight=m.fc2.weight.detach().double().numpy().astype(b.np_dtype),
                    bias=m.fc2.bias.detach().double().numpy().astype(b.np_dtype))
    gate = Value((b.add(_p(path, "fc2"), w2, _p(path, "fc2"), sum_values(hx, hy)),), (1,))
    node = ext.Gate(shape=np.array(x.shape))
    return Value((b.add(_p(path, "gate"), node, f"{path}:gate", {"x": x, "gate": gate}),), x.shape)


@converter(ReplacingAttentionBlock)
def _replacing(b: Builder, m: ReplacingAttentionBlock, path: str, x: Value, y: Value) -> Value:
    return convert(b, m.attn, _p(path, "attn"), x, y)


@converter(CMCIBranch)
def _cmci_branch(b: Builder, m: CMCIBranch, path: str, x: Value, y: Value) -> Value:
    z = sum_values(b.token_linear(_p(path, "fc1"), m.fc1, x), b.token_linear(_p(path, "fc2"), m.fc2, y))
    return convert(b, m.mlp, _p(path, "mlp"), b.lif(_p(path, "lif"), m.lif, z, source_axes=(1, 0)))  # on (N, C)


# ------------------------------------------------------------------------------------------------------- models
def _readout(b: Builder, head: nn.Linear, path: str, *parts: Value) -> Value:
    """``head(mean_T(sum_i mean_N part_i))`` (add fusion / unimodal) as Flatten -> Affine -> I."""
    mean_n = b.token_mean_affine(path, head.weight, head.bias, sum_values(*parts), path)
    return b.time_mean(_p(path, "mean_t"), mean_n, f"{path}:mean over T")


@converter(Spikformer)
def _spikformer(b: Builder, m: Spikformer, path: str, x: Value) -> Value:
    tokens = convert(b, m.block, _p(path, "block"), convert(b, m.stem, _p(path, "stem"), x))
    return _readout(b, m.head, _p(path, "head"), tokens)


@converter(AudioVisualSpikformer)
def _audio_visual(b: Builder, m: AudioVisualSpikformer, path: str, audio: Value, visual: Value) -> Value:
    a0 = convert(b, m.stem_audio, _p(path, "stem_audio"), audio)
    v0 = convert(b, m.stem_visual, _p(path, "stem_visual"), visual)
    if m.fusion_blocks() and a0.shape != v0.shape:
        raise ExportError(f"audio tokens {a0.shape} and visual tokens {v0.shape} differ; cross-modal blocks need "
                          "equal token counts. Give both modalities the same H x W.")
    a1 = a0 if m.block_audio is None else convert(b, m.block_audio, _p(path, "block_audio"), a0, v0)
    v1 = v0 if m.block_visual is None else convert(b, m.block_visual, _p(path, "block_visual"), v0, a0)
    a2 = convert(b, m.mlp_audio, _p(path, "mlp_audio"), a1)
    v2 = convert(b, m.mlp_visual, _p(path, "mlp_visual"), v1)
    if m.interaction == "add":
        return _readout(b, m.head, _p(path, "head"), a2, v2)
    d = m.embed_dim  # concat: head(cat(a, v)) = W_a a + W_v v + b
    head = _p(path, "head")
    ha = b.token_mean_affine(_p(path, "head_audio_half"), m.head.weight[:, :d], m.head.bias, a2, head + ":audio half")
    hv = b.token_mean_affine(_p(path, "head_visual_half"), m.head.weight[:, d:], None, v2, head + ":visual half")
    return b.time_mean(_p(path, "head.mean_t"), sum_values(ha, hv), head + ":mean over T")


@converter(CMCISpikformer)
def _cmci(b: Builder, m: CMCISpikformer, path: str, audio: Value, visual: Value) -> Value:
    """Only the prediction path: ``head(mean branch(A0, V0))``; the auxiliary heads are a training signal."""
    a0 = convert(b, m.stem_audio, _p(path, "stem_audio"), audio)
    v0 = convert(b, m.stem_visual, _p(path, "stem_visual"), visual)
    branch = convert(b, m.block_audio, _p(path, "block_audio"), a0, v0)
    for name in ("mlp_audio", "mlp_visual", "head_audio", "head_visual"):
        b.omitted[_p(path, name)] = "feeds only CMCI's auxiliary heads, a training signal, not the prediction"
    return _readout(b, m.head, _p(path, "head"), branch)


# SpatialCrossAttention and TemporalCrossAttention are SSA subclasses: _ssa handles both (the MRO lookup finds SSA).
_ = (SpatialCrossAttention, TemporalCrossAttention, CausalTemporalCrossAttention)
