"""Unimodal Spikformer baselines (docs/scmrl.md §1.3): SPS stem, one SSA + MLP block, mean readout, linear head."""

from __future__ import annotations

from torch import Tensor, nn

from snnav.models.audiovisual import FUSION_SCOPES, init_linear
from snnav.models.layers import NeuronLayer, SpikformerBlock, check_choice, make_stem
from snnav.models.output import ModelOutput
from snnav.models.registry import AV_DEFAULTS, register_model
from snnav.neurons import MultiStepLIF

__all__ = ["Spikformer"]


class Spikformer(nn.Module):
    """``logits = head(mean_T mean_N Block(SPS(x)))`` on one modality; the other input is ignored (may be None).

    Args:
        num_classes: K.
        modality: ``"audio"`` or ``"visual"``: which input of ``forward(audio, visual)`` is used.
        embed_dim: D.
        num_heads: h (16).
        mlp_ratio: MLP hidden width factor (4).
        in_channels: channels of the used modality.
        stem: ``"sps"`` or ``"shallow"``.
        neuron_layer: zero-argument callable returning a multi-step spiking module.
    """

    def __init__(
        self,
        num_classes: int,
        modality: str = "audio",
        embed_dim: int = 256,
        num_heads: int = 16,
        mlp_ratio: int = 4,
        in_channels: int = 1,
        stem: str = "sps",
        neuron_layer: NeuronLayer = MultiStepLIF,
    ) -> None:
        super().__init__()
        check_choice("modality", modality, ("audio", "visual"))
        self.modalities = (modality,)
        self.embed_dim = embed_dim
        self.stem = make_stem(stem, in_channels, embed_dim, neuron_layer)
        self.block = SpikformerBlock(embed_dim, num_heads, mlp_ratio, neuron_layer)
        self.head = nn.Linear(embed_dim, num_classes)
        init_linear(self)

    def forward(self, audio: Tensor | None, visual: Tensor | None = None) -> ModelOutput:
        (modality,) = self.modalities
        x = audio if modality == "audio" else visual
        if x is None:
            raise ValueError(f"the {modality}-only Spikformer needs a {modality} tensor [T, B, C, H, W]; got None.")
        x0 = self.stem(x)  # (T, B, D, N)
        logits = self.head(self.block(x0).mean(dim=3).mean(dim=0))  # (B, K)
        feat = x0.mean(dim=3).mean(dim=0)  # (B, D)
        if modality == "audio":
            return ModelOutput(logits=logits, feat_audio=feat)
        return ModelOutput(logits=logits, feat_visual=feat)

    def fusion_parameters(self, scope: str = "head") -> list[nn.Parameter]:
        """The head (a unimodal model has no fusion module; both scopes give the head)."""
        check_choice("scope", scope, FUSION_SCOPES)
        return list(self.head.parameters())


@register_model("spikformer-audio", defaults=AV_DEFAULTS)
def _spikformer_audio(num_classes: int, *, in_channels_audio: int, in_channels_visual: int, **cfg) -> Spikformer:
    """Audio-only; ``in_channels_visual`` is accepted so dataset presets apply to every model, and unused."""
    return Spikformer(num_classes, modality="audio", in_channels=in_channels_audio, **cfg)


@register_model("spikformer-visual", defaults=AV_DEFAULTS)
def _spikformer_visual(num_classes: int, *, in_channels_audio: int, in_channels_visual: int, **cfg) -> Spikformer:
    """Visual-only; ``in_channels_audio`` is accepted so dataset presets apply to every model, and unused."""
    return Spikformer(num_classes, modality="visual", in_channels=in_channels_visual, **cfg)
