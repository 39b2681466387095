"""The one return type of every snnav model's ``forward(audio, visual)``."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from torch import Tensor

__all__ = ["ModelOutput"]


@dataclass(frozen=True)
class ModelOutput:
    """What a model computed for one batch; fields a model does not produce are ``None`` (or an empty dict).

    Attributes:
        logits: ``[B, K]`` class scores of the fused prediction (or the unimodal one).
        feat_audio: ``[B, D]`` the unimodal audio representation IEMF's unimodal heads read (docs/iemf.md §5 item 1),
            a mean over tokens and T. Which features depends on the model's ``unimodal_features``: the audio
            features entering the fused head when they are still unimodal (av-add, av-concat, as the authors'
            IEMF code), otherwise the audio stem output before any cross-modal block (CMRL, S-CMRL, WeightAttention,
            SCA, CMCI); the stem output for the unimodal Spikformer. ``None`` if audio is unused.
        feat_visual: ``[B, D]`` the same for the visual modality.
        align_audio: ``[T, B, D]`` S-CMRL's re-spiked audio residual, mean over tokens (input of the
            semantic-alignment loss, docs/scmrl.md §2). Only models with the alignment projection set it.
        align_visual: ``[T, B, D]`` the same for the visual residual.
        aux_logits: extra ``[B, K]`` heads trained with their own loss (CMCI: ``"audio"`` and ``"visual"``).
        step_logits: ``[T, B, K]`` the decision readable at every step: the head applied to the running mean over
            the steps ``0..t`` of its input (``step_logits[T-1]`` is ``logits``). Audio-visual models set it; for a
            causal model step t uses no later input.
    """

    logits: Tensor
    feat_audio: Tensor | None = None
    feat_visual: Tensor | None = None
    align_audio: Tensor | None = None
    align_visual: Tensor | None = None
    aux_logits: dict[str, Tensor] = field(default_factory=dict)
    step_logits: Tensor | None = None

    def present(self) -> tuple[str, ...]:
        """Names of the fields this output carries (non-``None``, non-empty)."""
        names = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not (isinstance(value, dict) and not value):
                names.append(f.name)
        return tuple(names)
