"""IEMF: inverse-effectiveness driven multimodal fusion (``docs/iemf.md`` §1.2-§1.4, §5).

Per training step, on the current batch (B samples, labels y)::

    o^a = W_a f_a + b_a ;  o^v = W_v f_v + b_v          # unimodal heads on the pre-fusion features, trained with CE
    s^m = sum_b softmax(o^m_b)[y_b]   for m in {a, v, av}  (detached; summed over every process's batch)
    r   = (s^a + s^v) / (2 s^av)
    I   = kappa (1 + tanh(1 - r))                          # in (0, 1.76 kappa); I > 1 when the fused cue is stronger

Inside the epoch window, on the fusion parameters P_F only:

* grad mode (SGD): ``g <- I g + N(0, (std(g) + 1e-8)^2)`` elementwise after the gradient average, with std over the
  unscaled gradient tensor and the noise drawn from a generator seeded identically in every process (so the
  processes keep identical weights). Weight decay inside the optimizer is not scaled.
* lr mode (AdamW, which is invariant to gradient scale): the fusion groups' lr is the schedule's value times I,
  set again before every step; no noise. AdamW's decoupled weight decay (``lr x wd``) is therefore scaled too.

The unimodal losses are on at every epoch (the classification code's practice); only the modulation has a window.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from snnav.errors import ConfigError
from snnav.models.output import ModelOutput
from snnav.training.config import IEMFConfig

__all__ = ["cue_strength", "inverse_effectiveness", "IEMFStep", "IEMF"]


def cue_strength(logits: Tensor, labels: Tensor) -> Tensor:
    """``s = sum_b softmax(logits_b)[y_b]`` (a detached scalar): how strongly a head supports the true classes."""
    with torch.no_grad():
        probs = torch.softmax(logits.detach(), dim=-1)  # (B, K)
        return probs.gather(1, labels[:, None]).sum()


def inverse_effectiveness(s_audio: float, s_visual: float, s_fused: float, gain: float = 1.0) -> tuple[float, float]:
    """``(I, r)`` with ``r = (s_a + s_v) / (2 s_av)`` and ``I = gain (1 + tanh(1 - r))``."""
    r = (s_audio + s_visual) / (2.0 * max(s_fused, 1e-12))
    return gain * (1.0 + math.tanh(1.0 - r)), r


@dataclass(frozen=True)
class IEMFStep:
    """One step's IEMF record: the coefficient, the ratio, per-sample cue strengths, and whether I was applied."""

    step: int
    epoch: int
    I: float  # noqa: E741 - the paper's name
    r: float
    s_audio: float
    s_visual: float
    s_fused: float
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class IEMF(nn.Module):
    """The unimodal heads and the modulation of a multimodal model's fusion parameters.

    Args:
        config: :class:`IEMFConfig`.
        model: a model with ``modalities`` = (audio, visual), ``embed_dim``, ``head`` and
            ``fusion_parameters(scope)`` (every snnav audio-visual model).
        optimizer: ``"adamw"`` or ``"sgd"`` (decides ``mode = "auto"``).
        seed: seeds the gradient-noise generator.

    Raises:
        ConfigError: the model has a single modality (IEMF compares unimodal with fused cues).
    """

    def __init__(self, config: IEMFConfig, model: nn.Module, optimizer: str = "adamw", seed: int = 0) -> None:
        super().__init__()
        name = getattr(model, "model_name", type(model).__name__)
        if len(getattr(model, "modalities", ())) < 2:
            raise ConfigError(f"IEMF needs an audio-visual model, but {name!r} uses one modality; "
                              "drop --iemf / [iemf] enabled, or pick an audio-visual model.")
        self.config = config
        self.mode = config.mode if config.mode != "auto" else ("grad" if optimizer == "sgd" else "lr")
        dim, classes = model.embed_dim, model.head.out_features
        self.head_audio = nn.Linear(dim, classes)
        self.head_visual = nn.Linear(dim, classes)
        for head in (self.head_audio, self.head_visual):  # the models' Linear init (trunc-normal 0.02, zero bias)
            nn.init.trunc_normal_(head.weight, std=0.02)
            nn.init.zeros_(head.bias)
        self._fusion = list(model.fusion_parameters(config.scope))
        self.generator = torch.Generator().manual_seed(int(seed) + 0x1E3F)

    def fusion_parameters(self) -> list[nn.Parameter]:
        """P_F."""
        return list(self._fusion)

    def unimodal_logits(self, output: ModelOutput) -> dict[str, Tensor]:
        """``{"iemf_audio": o^a, "iemf_visual": o^v}`` from the pre-fusion features ``[B, D]``."""
        if output.feat_audio is None or output.feat_visual is None:
            raise ConfigError("IEMF needs the model's pre-fusion features (feat_audio, feat_visual); this model "
                              "does not return them, so IEMF cannot be used with it.")
        return {"iemf_audio": self.head_audio(output.feat_audio), "iemf_visual": self.head_visual(output.feat_visual)}

    @staticmethod
    def local_scores(output: ModelOutput, unimodal: dict[str, Tensor], labels: Tensor) -> Tensor:
        """``[s^a, s^v, s^av, B]`` of this process's batch (sums, to be summed over processes)."""
        return torch.stack([
            cue_strength(unimodal["iemf_audio"], labels),
            cue_strength(unimodal["iemf_visual"], labels),
            cue_strength(output.logits, labels),
            torch.tensor(float(labels.shape[0]), dtype=output.logits.dtype, device=labels.device),
        ]).to(torch.float64)

    def coefficient(self, scores: Tensor, epoch: int, step: int) -> IEMFStep:
        """The step's record from the (global) ``[s^a, s^v, s^av, B]``."""
        s_a, s_v, s_av, n = (float(x) for x in scores)
        coef, r = inverse_effectiveness(s_a, s_v, s_av, self.config.gain)
        return IEMFStep(step, epoch, coef, r, s_a / n, s_v / n, s_av / n, self.config.active(epoch))

    def lr_factor(self, record: IEMFStep) -> float:
        """The fusion groups' lr multiplier this step (I in lr mode inside the window, else 1)."""
        return record.I if (self.mode == "lr" and record.applied) else 1.0

    def modulate_gradients(self, record: IEMFStep) -> None:
        """Grad mode inside the window: ``g <- I g + noise`` on P_F (after the gradient average)."""
        if self.mode != "grad" or not record.applied:
            return
        with torch.no_grad():
            for p in self._fusion:
                if p.grad is None:
                    continue
                g = p.grad
                std = float(g.std()) if g.numel() > 1 else 0.0  # std of the unscaled gradient
                g.mul_(record.I)
                if self.config.noise:
                    noise = torch.randn(g.shape, generator=self.generator, dtype=g.dtype)
                    g.add_(noise.to(g.device), alpha=std + 1e-8)

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())
