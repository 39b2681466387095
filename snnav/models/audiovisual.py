"""Audio-visual spiking transformers: plain add/concat fusion, CMRL and S-CMRL (docs/scmrl.md §1.2-§1.7).

Forward pass (shapes for tokens ``(T, B, D, N)``)::

    A0 = SPS_a(audio) ; V0 = SPS_v(visual)                       # stem output
    A1, align_a = block_audio(A0, V0) ; V1, align_v = block_visual(V0, A0)   # identity for add/concat
    A2 = A1 + MLP_a(A1) ; V2 = V1 + MLP_v(V1)
    logits = head(mean_T(mean_N A2 + mean_N V2))                 # or cat(...) for concat

``feat_audio`` / ``feat_visual`` (what IEMF's unimodal heads read) depend on the model's ``unimodal_features``
(docs/iemf.md §5 item 1): ``"fusion-input"`` = ``mean_T mean_N A2`` / ``V2``, the exact per-modality features
entering the head, as in the authors' IEMF classification code; used by av-add and av-concat, where those features
are still unimodal. ``"stem"`` = ``mean_T mean_N A0`` / ``V0``; used by every model with a cross-modal block
(CMRL, S-CMRL, WeightAttention, SCA, CMCI), because after that block A2 already carries the other modality and the
"unimodal" cue would not be unimodal.

There is one cross-modal stage per direction and no self-attention. The baselines (WeightAttention, SCA, CMCI) live
in :mod:`snnav.models.baselines`. Modules the reference creates but never calls (AVattention, LayerNorms, res_lif,
attn_drop; docs/scmrl.md §6 item 12) are not reproduced, so parameter counts are the spec's "on forward path" column.

``temporal_reshape`` defaults to ``"faithful"``: the architecture contract is that this model computes what the
reference computes (same weights -> same outputs) and the paper's numbers come from that layout. The clean
layout is not what makes export easy or hard: the temporal branch attends over all T steps (keys from later steps)
and CCSSA averages over T, so either way an exporter needs a whole-window extension node, in which the faithful
layout is one more fixed index permutation. ``"clean"`` is kept as the ablation of §1.5.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
from torch import Tensor, nn

from snnav.models.attention import make_cross_attention
from snnav.models.layers import MLPBlock, NeuronLayer, check_choice, make_stem
from snnav.models.output import ModelOutput
from snnav.models.registry import AV_DEFAULTS, register_model
from snnav.neurons import MultiStepLIF

__all__ = [
    "FUSION_SCOPES",
    "UNIMODAL_FEATURES",
    "init_linear",
    "CrossModalResidualBlock",
    "AudioVisualSpikformer",
    "CrossModalResidualSpikformer",
]

FUSION_SCOPES = ("head", "head+attention")
UNIMODAL_FEATURES = ("stem", "fusion-input")
BlockFactory = Callable[[], nn.Module]


def init_linear(module: nn.Module) -> None:
    """Reference init: every ``nn.Linear`` gets trunc-normal(std 0.02) weights and zero bias; convs/BN keep defaults."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def check_same_tokens(a: Tensor, v: Tensor) -> None:
    """Raise ValueError unless audio and visual tokens ``(T, B, D, N)`` agree in every dimension."""
    if a.shape != v.shape:
        raise ValueError(
            f"audio tokens {tuple(a.shape)} and visual tokens {tuple(v.shape)} differ (T, B, D, N); cross-modal "
            "blocks need equal T, B and token count N. Give both modalities the same H x W (and T)."
        )


class CrossModalResidualBlock(nn.Module):
    """One direction of CMRL / S-CMRL (docs/scmrl.md §1.6): ``x_out = x + alpha * res`` with ``res = attn(x, y)``.

    With ``project=True`` (S-CMRL), ``res = LIF_trans(Linear_{D->D}(attn(x, y)))`` over channels, binary, and the
    block also returns ``mean_N res`` ``(T, B, D)`` for the alignment loss; otherwise ``res`` is the (real-valued for
    CCSSA) attention output and no alignment feature is returned.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 16,
        neuron_layer: NeuronLayer = MultiStepLIF,
        attn_variant: str = "spatial-temporal",
        alpha: float = 1.5,
        temporal_reshape: str = "faithful",
        project: bool = False,
    ) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.attn = make_cross_attention(attn_variant, dim, num_heads, neuron_layer, temporal_reshape)
        self.project = project
        if project:
            self.trans_linear = nn.Linear(dim, dim)
            self.trans_lif = neuron_layer()

    def forward(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
        res = self.attn(x, y)  # (T, B, C, N)
        if not self.project:
            return x + self.alpha * res, None
        res = self.trans_lif(self.trans_linear(res.transpose(2, 3))).transpose(2, 3)  # (T, B, N, C) -> (T, B, C, N)
        return x + self.alpha * res, res.mean(dim=3)  # (T, B, C, N), (T, B, C)


class AudioVisualSpikformer(nn.Module):
    """Two SPS stems, an optional cross-modal block per direction, an MLPBlock per modality and a linear head.

    Args:
        num_classes: K.
        embed_dim: D.
        num_heads: h (16 in the reference).
        mlp_ratio: MLP hidden width factor (4).
        in_channels_audio: audio channels (1).
        in_channels_visual: visual channels (3 RGB, 2 events).
        stem: ``"sps"`` or ``"shallow"``.
        neuron_layer: zero-argument callable returning a multi-step spiking module.
        interaction: ``"add"`` (head D -> K) or ``"concat"`` (head 2D -> K).
        block_factories: ``(audio, visual)`` callables building each direction's block ``f(x, y) -> (x_out, align)``,
            ``None`` entries meaning identity. Subclasses fill this in.

    Attributes:
        unimodal_features: which features ``feat_audio`` / ``feat_visual`` (IEMF's unimodal heads) are:
            ``"fusion-input"`` (the per-modality features entering the head; the authors' choice, valid only
            without cross-modal blocks) or ``"stem"`` (the stem output; every subclass with a cross-modal block).
            A class attribute; an instance may override it (e.g. ``"stem"`` on av-add to compare both choices).
    """

    modalities: tuple[str, ...] = ("audio", "visual")
    unimodal_features: str = "fusion-input"

    def __init__(
        self,
        num_classes: int,
        embed_dim: int = 256,
        num_heads: int = 16,
        mlp_ratio: int = 4,
        in_channels_audio: int = 1,
        in_channels_visual: int = 3,
        stem: str = "sps",
        neuron_layer: NeuronLayer = MultiStepLIF,
        interaction: str = "add",
        block_factories: tuple[BlockFactory | None, BlockFactory | None] = (None, None),
    ) -> None:
        super().__init__()
        check_choice("interaction", interaction, ("add", "concat"))
        self.embed_dim = embed_dim
        self.interaction = interaction
        self.stem_audio = make_stem(stem, in_channels_audio, embed_dim, neuron_layer)
        self.stem_visual = make_stem(stem, in_channels_visual, embed_dim, neuron_layer)
        self.block_audio = block_factories[0]() if block_factories[0] else None
        self.block_visual = block_factories[1]() if block_factories[1] else None
        self.mlp_audio = MLPBlock(embed_dim, mlp_ratio, neuron_layer)
        self.mlp_visual = MLPBlock(embed_dim, mlp_ratio, neuron_layer)
        self.head = nn.Linear(embed_dim * (2 if interaction == "concat" else 1), num_classes)
        init_linear(self)
        check_choice("unimodal_features", self.unimodal_features, UNIMODAL_FEATURES)
        if self.unimodal_features == "fusion-input" and self.fusion_blocks():
            raise ValueError(f"{type(self).__name__} has cross-modal blocks, so the features entering its head are "
                             "not unimodal; set the class attribute unimodal_features = 'stem'.")

    def encode(self, audio: Tensor | None, visual: Tensor | None) -> tuple[Tensor, Tensor]:
        """Stem tokens ``(T, B, D, N)`` of both modalities."""
        if audio is None or visual is None:
            raise ValueError(f"{type(self).__name__} needs both audio and visual [T, B, C, H, W] tensors; got None.")
        return self.stem_audio(audio), self.stem_visual(visual)

    def forward(self, audio: Tensor, visual: Tensor) -> ModelOutput:
        a0, v0 = self.encode(audio, visual)  # (T, B, D, N) each
        if self.fusion_blocks():
            check_same_tokens(a0, v0)
        elif a0.shape[:3] != v0.shape[:3]:
            raise ValueError(f"audio tokens {tuple(a0.shape)} and visual tokens {tuple(v0.shape)} differ in T, B or D.")
        a1, align_a = (a0, None) if self.block_audio is None else self.block_audio(a0, v0)
        v1, align_v = (v0, None) if self.block_visual is None else self.block_visual(v0, a0)
        a2, v2 = self.mlp_audio(a1), self.mlp_visual(v1)  # (T, B, D, N)
        a, v = a2.mean(dim=3), v2.mean(dim=3)  # (T, B, D)
        fused = a + v if self.interaction == "add" else torch.cat((a, v), dim=2)  # (T, B, D or 2D)
        check_choice("unimodal_features", self.unimodal_features, UNIMODAL_FEATURES)
        if self.unimodal_features == "stem":
            feat_a, feat_v = a0.mean(dim=3).mean(dim=0), v0.mean(dim=3).mean(dim=0)  # (B, D)
        else:
            feat_a, feat_v = a.mean(dim=0), v.mean(dim=0)  # (B, D): the head reads cat(...) or their sum
        count = torch.arange(1, fused.shape[0] + 1, dtype=fused.dtype, device=fused.device).reshape(-1, 1, 1)
        return ModelOutput(
            logits=self.head(fused.mean(dim=0)),  # (B, K)
            feat_audio=feat_a,
            feat_visual=feat_v,
            align_audio=align_a,
            align_visual=align_v,
            step_logits=self.head(fused.cumsum(dim=0) / count),  # (T, B, K): head(running mean up to step t)
        )

    def fusion_blocks(self) -> list[nn.Module]:
        """Cross-modal modules (the part mixing modalities besides the head)."""
        return [b for b in (self.block_audio, self.block_visual) if b is not None]

    def fusion_parameters(self, scope: str = "head") -> list[nn.Parameter]:
        """IEMF's P_F (docs/iemf.md §5 item 5): the fused head, optionally with the cross-modal blocks."""
        check_choice("scope", scope, FUSION_SCOPES)
        modules = [self.head] + (self.fusion_blocks() if scope == "head+attention" else [])
        return [p for m in modules for p in m.parameters()]


class CrossModalResidualSpikformer(AudioVisualSpikformer):
    """CMRL (``project=False``) and S-CMRL (``project=True``): a residual cross-attention block per direction.

    Extra args beyond :class:`AudioVisualSpikformer`: ``attn_variant`` (spatial | temporal | spatial-temporal),
    ``alpha`` (fixed residual weight), ``temporal_reshape`` (faithful | clean), ``project``. IEMF's unimodal heads
    read the stem output: A1 = A0 + alpha * res already carries the visual cue.
    """

    unimodal_features = "stem"

    def __init__(
        self,
        num_classes: int,
        *,
        attn_variant: str = "spatial-temporal",
        alpha: float = 1.5,
        temporal_reshape: str = "faithful",
        project: bool = True,
        embed_dim: int = 256,
        num_heads: int = 16,
        neuron_layer: NeuronLayer = MultiStepLIF,
        **backbone,
    ) -> None:
        block = partial(
            CrossModalResidualBlock, embed_dim, num_heads, neuron_layer, attn_variant, alpha, temporal_reshape, project
        )
        super().__init__(
            num_classes,
            embed_dim=embed_dim,
            num_heads=num_heads,
            neuron_layer=neuron_layer,
            block_factories=(block, block),
            **backbone,
        )


_CMRL_DEFAULTS = {**AV_DEFAULTS, "attn_variant": "spatial-temporal", "alpha": 1.5, "temporal_reshape": "faithful"}


@register_model("av-add", defaults=AV_DEFAULTS)
def _av_add(num_classes: int, **cfg) -> AudioVisualSpikformer:
    return AudioVisualSpikformer(num_classes, interaction="add", **cfg)


@register_model("av-concat", defaults=AV_DEFAULTS)
def _av_concat(num_classes: int, **cfg) -> AudioVisualSpikformer:
    return AudioVisualSpikformer(num_classes, interaction="concat", **cfg)


#: The authors' single-branch CMRL rows (docs/scmrl.md §3.1, B-CREMA-D: ``--attn-method Spatial`` / ``Temporal``)
#: did not pass ``--alpha``, so they ran with their code's default alpha = 1.0.
_CMRL_VARIANT_DEFAULTS = {"attn_variant": {"spatial": {"alpha": 1.0}, "temporal": {"alpha": 1.0}}}


@register_model("cmrl", defaults=_CMRL_DEFAULTS, choice_defaults=_CMRL_VARIANT_DEFAULTS)
def _cmrl(num_classes: int, **cfg) -> CrossModalResidualSpikformer:
    """Cross-modal residual without the alignment projection (docs/scmrl.md §1.5-§1.6).

    ``alpha`` defaults to the value of the authors' run of each variant: 1.5 for ``spatial-temporal`` (so cmrl and
    scmrl differ in one factor, the projection), 1.0 for ``spatial`` and ``temporal`` (the CREMA-D rows, which used
    the code's default). Their UrbanSound8K-AV single-branch rows passed ``--alpha 1.5``: give ``alpha=1.5``
    explicitly to reproduce those. An explicit ``alpha`` always wins.
    """
    return CrossModalResidualSpikformer(num_classes, project=False, **cfg)


@register_model("scmrl", defaults=_CMRL_DEFAULTS)
def _scmrl(num_classes: int, **cfg) -> CrossModalResidualSpikformer:
    """Full S-CMRL: CCSSA + trans_linear + trans_lif re-spiked residual, alpha 1.5, alignment features."""
    return CrossModalResidualSpikformer(num_classes, project=True, **cfg)


_CAUSAL_DEFAULTS = {**_CMRL_DEFAULTS, "attn_variant": "causal-spatial-temporal", "temporal_reshape": "clean"}


@register_model("scmrl-causal", defaults=_CAUSAL_DEFAULTS)
def _scmrl_causal(num_classes: int, **cfg) -> CrossModalResidualSpikformer:
    """Streaming S-CMRL (docs/scmrl.md §8): S-CMRL whose temporal branch and fusion see the current and past steps
    only, so every step's output (and ``step_logits``) uses no future input; exports without WINDOW nodes."""
    return CrossModalResidualSpikformer(num_classes, project=True, **cfg)
