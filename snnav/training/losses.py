"""Training losses of S-CMRL (``docs/scmrl.md`` §2) and their composition with CMCI's and IEMF's auxiliary heads.

* :class:`LabelSmoothingCE` — timm's ``LabelSmoothingCrossEntropy``: ``(1 - eps) NLL + eps mean_c(-log p_c)``.
* :func:`semantic_alignment_loss` — the class-level contrastive loss between the audio and visual residual features,
  exactly as the reference computes it (time mean, no normalisation, audio anchors only, positives include the
  diagonal, sum over positives divided by B), or a normalised symmetric variant.
* :class:`TrainingLoss` — ``L = LS-CE(logits) + sum LS-CE(aux heads) + w L_sao``, data-parallel aware.
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from snnav.models.output import ModelOutput

__all__ = ["LabelSmoothingCE", "semantic_alignment_loss", "TrainingLoss"]


class LabelSmoothingCE(nn.Module):
    """``mean_b [(1 - eps) (-log p_{b,y_b}) + eps mean_c(-log p_{b,c})]`` over logits ``[B, K]`` and labels ``[B]``."""

    def __init__(self, eps: float = 0.1) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        logp = F.log_softmax(logits, dim=-1)  # (B, K)
        nll = -logp.gather(1, labels[:, None]).squeeze(1)  # (B,)
        smooth = -logp.mean(dim=-1)  # (B,)
        return ((1.0 - self.eps) * nll + self.eps * smooth).mean()


def _directional(anchor: Tensor, other: Tensor, same: Tensor, tau: float, per_positive: bool) -> Tensor:
    """``-sum_{i} w_i sum_j M_ij log_softmax_j(anchor_i . other_j / tau)`` with ``w_i = 1/B`` or ``1/|P_i|``."""
    logp = F.log_softmax(anchor @ other.T / tau, dim=1)  # (rows, B)
    weights = same.sum(dim=1, keepdim=True) if per_positive else torch.full_like(logp[:, :1], other.shape[0])
    return -((same * logp) / weights).sum()


def semantic_alignment_loss(a: Tensor, v: Tensor, labels: Tensor, tau: float = 0.07, symmetric: bool = False,
                            normalize: bool = False, rows: slice | None = None) -> Tensor:
    """S-CMRL's semantic-alignment loss (docs/scmrl.md §2)::

        a = mean_T Fa ; v = mean_T Fv                    # (B, D)
        S = a v^T / tau ;  M_ij = [y_i == y_j]           # (B, B), diagonal included
        L = -(1/B) sum_i (1/B) sum_j M_ij log_softmax_j(S_ij)

    Args:
        a: audio features ``[T, B, D]`` (or ``[B, D]``, already time-averaged).
        v: visual features, same shape.
        labels: ``[B]`` class indices.
        tau: temperature.
        symmetric: average the audio->visual and visual->audio directions (the reference has only the first).
        normalize: L2-normalise a and v and divide each anchor's sum by its number of positives instead of B.
        rows: only the anchors in this slice of the batch contribute (their sum is still divided by the full B).
            Data-parallel training gathers the whole batch's features and gives each process its own anchors,
            so the processes' partial losses sum to the full-batch loss.

    Returns:
        A scalar.
    """
    if a.dim() == 3:
        a, v = a.mean(dim=0), v.mean(dim=0)  # (T, B, D) -> (B, D)
    if normalize:
        a, v = F.normalize(a, dim=1), F.normalize(v, dim=1)
    rows = rows if rows is not None else slice(0, a.shape[0])
    same = (labels[rows, None] == labels[None, :]).to(a.dtype)  # (rows, B)
    n = a.shape[0]
    loss = _directional(a[rows], v, same, tau, normalize) / n
    if symmetric:
        loss = 0.5 * (loss + _directional(v[rows], a, same, tau, normalize) / n)
    return loss


# (features [T, B, D] or [B], dim) -> (whole-batch tensor, this process's rows, number of processes)
Gather = Callable[[Tensor, int], tuple[Tensor, slice, int]]


def _no_gather(x: Tensor, dim: int) -> tuple[Tensor, slice, int]:
    return x, slice(0, x.shape[dim]), 1


class TrainingLoss:
    """``L = LS-CE(logits) + sum_k LS-CE(aux_k) + w L_sao`` (docs/scmrl.md §2, docs/iemf.md §1.3 A).

    Auxiliary heads are CMCI's ``output.aux_logits`` and any ``extra_logits`` (IEMF's unimodal heads). The alignment
    term is added only when the model produces alignment features and ``align != "off"``.

    Data parallel: each process's loss is its own batch's mean CE plus ``W x`` its anchors' share of the alignment
    loss on the gathered batch, so the average of the W processes' gradients is the whole-batch gradient.

    Args:
        label_smoothing: eps of every CE term.
        align: ``"exact"``, ``"symmetric"`` (normalised, both directions) or ``"off"``.
        tau, weight: the alignment loss's temperature and weight.
        gather: differentiable all-gather of a per-process tensor along ``dim`` (see
            :meth:`snnav.training.distributed.DistContext.gather`); ``None`` in a single process.
        step_loss: ``"final"`` (``ce`` of ``output.logits``) or ``"every-step"``: ``ce`` is the mean over the T steps
            of the CE of ``output.step_logits[t]`` (the decision readable after t+1 steps), which rewards correct
            decisions early in the sequence.
    """

    def __init__(self, label_smoothing: float = 0.1, align: str = "exact", tau: float = 0.07, weight: float = 1.0,
                 gather: Gather | None = None, step_loss: str = "final") -> None:
        if step_loss not in ("final", "every-step"):
            raise ValueError(f"step_loss must be 'final' or 'every-step'; got {step_loss!r}")
        self.step_loss = step_loss
        self.ce = LabelSmoothingCE(label_smoothing)
        self.align, self.tau, self.weight = align, tau, weight
        self.gather = gather or _no_gather

    def _decision_ce(self, output: ModelOutput, labels: Tensor) -> Tensor:
        if self.step_loss == "final":
            return self.ce(output.logits, labels)
        if output.step_logits is None:
            raise ValueError("step_loss = 'every-step' needs a model that reads its decision at every step "
                             "(ModelOutput.step_logits: the audio-visual models); this one does not")
        steps = output.step_logits
        return torch.stack([self.ce(steps[t], labels) for t in range(steps.shape[0])]).mean()

    def uses_alignment(self, output: ModelOutput) -> bool:
        return self.align != "off" and output.align_audio is not None and output.align_visual is not None

    def __call__(self, output: ModelOutput, labels: Tensor,
                 extra_logits: Mapping[str, Tensor] | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its detached parts (``ce``, ``aux``, ``align`` when present)."""
        parts: dict[str, Tensor] = {"ce": self._decision_ce(output, labels)}
        aux = [self.ce(logits, labels) for logits in (*output.aux_logits.values(), *(extra_logits or {}).values())]
        if aux:
            parts["aux"] = torch.stack(aux).sum()
        if self.uses_alignment(output):
            a, rows, world = self.gather(output.align_audio.mean(dim=0), 0)  # (B_global, D)
            v, _, _ = self.gather(output.align_visual.mean(dim=0), 0)
            all_labels, _, _ = self.gather(labels, 0)
            sym = self.align == "symmetric"
            sao = semantic_alignment_loss(a, v, all_labels, self.tau, symmetric=sym, normalize=sym, rows=rows)
            parts["align"] = self.weight * world * sao
        total = torch.stack(list(parts.values())).sum()
        return total, {k: p.detach() for k, p in parts.items()}
