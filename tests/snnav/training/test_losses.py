"""Losses against independent float64 computations (python loops with math.exp/log) and hand-worked numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from snnav.models.output import ModelOutput
from snnav.training.losses import LabelSmoothingCE, TrainingLoss, semantic_alignment_loss


def _log_softmax_row(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(x - m) for x in row))
    return [x - lse for x in row]


def _reference_sao(a, v, labels, tau, symmetric=False, normalize=False):
    """Loop implementation of docs/scmrl.md §2 (and the normalised symmetric variant)."""
    a = np.asarray(a, dtype=np.float64).mean(axis=0)  # (B, D)
    v = np.asarray(v, dtype=np.float64).mean(axis=0)
    if normalize:
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    n = len(labels)

    def direction(x, y):
        total = 0.0
        for i in range(n):
            logp = _log_softmax_row([sum(x[i, k] * y[j, k] for k in range(x.shape[1])) / tau for j in range(n)])
            pos = [j for j in range(n) if labels[i] == labels[j]]
            denom = len(pos) if normalize else n
            total += -sum(logp[j] for j in pos) / denom
        return total / n

    loss = direction(a, v)
    return 0.5 * (loss + direction(v, a)) if symmetric else loss


def test_label_smoothing_ce_matches_formula():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]], dtype=torch.float64)
    labels = torch.tensor([0, 2])
    eps = 0.1
    expected = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        logp = _log_softmax_row(row)
        expected += (1 - eps) * -logp[y] + eps * -sum(logp) / len(logp)
    expected /= 2
    assert LabelSmoothingCE(eps)(logits, labels).item() == pytest.approx(expected, rel=1e-12)
    assert LabelSmoothingCE(0.0)(logits, labels).item() == pytest.approx(F.cross_entropy(logits, labels).item())


def test_alignment_hand_worked_example():
    # a = v = identity, labels distinct, tau = 1: S = I, each anchor's only positive is its diagonal with
    # log p = 1 - log(e + 1); L = -(1/2) * 2 * (1/2) * (1 - log(1 + e)) = (log(1 + e) - 1) / 2 = 0.1566308...
    eye = torch.eye(2, dtype=torch.float64)[None]  # (T=1, B=2, D=2)
    loss = semantic_alignment_loss(eye, eye, torch.tensor([0, 1]), tau=1.0)
    assert loss.item() == pytest.approx((math.log(1 + math.e) - 1) / 2, rel=1e-12)
    assert loss.item() == pytest.approx(0.15663084, abs=1e-8)


def test_alignment_exact_matches_loop_reference():
    gen = torch.Generator().manual_seed(0)
    a = (torch.rand(3, 5, 4, generator=gen) < 0.4).double()  # spike-like rates, T = 3, B = 5, D = 4
    v = (torch.rand(3, 5, 4, generator=gen) < 0.4).double()
    labels = torch.tensor([1, 0, 1, 2, 1])
    got = semantic_alignment_loss(a, v, labels, tau=0.07).item()
    assert got == pytest.approx(_reference_sao(a.numpy(), v.numpy(), labels.tolist(), 0.07), rel=1e-10)
    # Not normalised: doubling the features changes the loss (logits scale with |a||v|).
    assert semantic_alignment_loss(2 * a, v, labels, tau=0.07).item() != pytest.approx(got, rel=1e-3)
    # One-directional: swapping the modalities changes it.
    assert semantic_alignment_loss(v, a, labels, tau=0.07).item() != pytest.approx(got, rel=1e-6)


def test_alignment_symmetric_normalised_matches_loop_reference():
    gen = torch.Generator().manual_seed(1)
    a, v = torch.rand(2, 6, 3, generator=gen).double(), torch.rand(2, 6, 3, generator=gen).double()
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    got = semantic_alignment_loss(a, v, labels, tau=0.1, symmetric=True, normalize=True).item()
    ref = _reference_sao(a.numpy(), v.numpy(), labels.tolist(), 0.1, symmetric=True, normalize=True)
    assert got == pytest.approx(ref, rel=1e-10)
    # Scale-invariant and symmetric in the modalities.
    scaled = semantic_alignment_loss(3 * a, v, labels, tau=0.1, symmetric=True, normalize=True)
    assert scaled.item() == pytest.approx(got)
    assert semantic_alignment_loss(v, a, labels, tau=0.1, symmetric=True, normalize=True).item() == pytest.approx(got)


@pytest.mark.parametrize("symmetric", [False, True])
def test_alignment_row_shards_sum_to_whole_batch(symmetric):
    gen = torch.Generator().manual_seed(2)
    a, v = torch.rand(2, 8, 5, generator=gen).double(), torch.rand(2, 8, 5, generator=gen).double()
    labels = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])
    whole = semantic_alignment_loss(a, v, labels, 0.07, symmetric, symmetric)
    parts = [semantic_alignment_loss(a, v, labels, 0.07, symmetric, symmetric, rows=slice(k, k + 4)) for k in (0, 4)]
    assert float(sum(parts)) == pytest.approx(float(whole), rel=1e-12)


def test_training_loss_composes_the_parts():
    gen = torch.Generator().manual_seed(3)
    logits, aux = torch.randn(4, 3, generator=gen), torch.randn(4, 3, generator=gen)
    extra = torch.randn(4, 3, generator=gen)
    fa, fv = torch.rand(2, 4, 6, generator=gen), torch.rand(2, 4, 6, generator=gen)
    labels = torch.tensor([0, 2, 1, 2])
    out = ModelOutput(logits=logits, align_audio=fa, align_visual=fv, aux_logits={"audio": aux})
    total, parts = TrainingLoss(0.1, "exact", 0.07, 0.5)(out, labels, {"iemf_audio": extra})
    ce = LabelSmoothingCE(0.1)
    assert parts["ce"].item() == pytest.approx(ce(logits, labels).item())
    assert parts["aux"].item() == pytest.approx((ce(aux, labels) + ce(extra, labels)).item())
    assert parts["align"].item() == pytest.approx(0.5 * semantic_alignment_loss(fa, fv, labels, 0.07).item())
    assert total.item() == pytest.approx(sum(p.item() for p in parts.values()))
    total_off, parts_off = TrainingLoss(0.1, "off")(out, labels)
    assert "align" not in parts_off and total_off.item() == pytest.approx((parts["ce"] + ce(aux, labels)).item())


def test_every_step_loss_is_the_mean_ce_of_the_step_logits():
    gen = torch.Generator().manual_seed(5)
    steps = torch.randn(3, 4, 5, generator=gen)  # [T, B, K]
    labels = torch.tensor([0, 4, 1, 1])
    out = ModelOutput(logits=steps[-1], step_logits=steps)
    ce = LabelSmoothingCE(0.1)
    _, parts = TrainingLoss(0.1, "off", step_loss="every-step")(out, labels)
    assert parts["ce"].item() == pytest.approx(sum(ce(steps[t], labels).item() for t in range(3)) / 3)
    _, final = TrainingLoss(0.1, "off")(out, labels)
    assert final["ce"].item() == pytest.approx(ce(steps[-1], labels).item())
    assert parts["ce"].item() != pytest.approx(final["ce"].item())
    with pytest.raises(ValueError, match="step_logits"):
        TrainingLoss(0.1, "off", step_loss="every-step")(ModelOutput(logits=steps[-1]), labels)
    with pytest.raises(ValueError, match="step_loss"):
        TrainingLoss(step_loss="early")
