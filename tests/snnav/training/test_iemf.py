"""IEMF: coefficient values from docs/iemf.md §1.2, cue strengths, gradient/lr modulation, every audio-visual model."""

from __future__ import annotations

import math

import pytest
import torch

from snnav.errors import ConfigError
from snnav.models import create_model, list_models, model_preset
from snnav.training.config import IEMFConfig, TrainConfig
from snnav.training.iemf import IEMF, cue_strength, inverse_effectiveness
from snnav.training.schedule import apply_lr, build_optimizer

TINY = {**model_preset("av-digits").model_kwargs(), "embed_dim": 16, "num_heads": 4, "mlp_ratio": 2}
AV_MODELS = [m for m in list_models() if not m.startswith("spikformer-")]


@pytest.mark.parametrize("r, expected", [(0.25, 1.635), (0.5, 1.462), (0.75, 1.245), (1.0, 1.0), (1.5, 0.538),
                                         (2.0, 0.238), (3.0, 0.036)])
def test_coefficient_sample_values(r, expected):
    # s_a = s_v = r, s_av = 1 gives ratio r (docs/iemf.md §1.2 item 5 lists these values)
    coef, ratio = inverse_effectiveness(r, r, 1.0)
    assert ratio == pytest.approx(r) and coef == pytest.approx(expected, abs=5e-4)
    assert inverse_effectiveness(r, r, 1.0, gain=2.0)[0] == pytest.approx(2 * coef)


def test_coefficient_bounds():
    assert inverse_effectiveness(1e-9, 1e-9, 1.0)[0] == pytest.approx(1 + math.tanh(1.0))
    assert inverse_effectiveness(5.0, 5.0, 1e-3)[0] < 1e-6


def test_cue_strength_is_the_sum_of_true_class_probabilities():
    logits = torch.tensor([[0.0, math.log(3.0)], [2.0, 2.0]])
    assert cue_strength(logits, torch.tensor([1, 0])).item() == pytest.approx(0.75 + 0.5)


def test_unimodal_model_is_refused():
    model = create_model("spikformer-audio", **TINY)
    with pytest.raises(ConfigError, match="one modality"):
        IEMF(IEMFConfig(enabled=True), model)


@pytest.mark.parametrize("name", AV_MODELS)
def test_every_audio_visual_model_works(name):
    torch.manual_seed(0)
    model = create_model(name, **TINY)
    iemf = IEMF(IEMFConfig(enabled=True), model)
    audio, visual = torch.rand(2, 3, 1, 32, 32), torch.rand(2, 3, 1, 32, 32)  # (T, B, C, H, W)
    out = model(audio, visual)
    logits = iemf.unimodal_logits(out)
    assert logits["iemf_audio"].shape == logits["iemf_visual"].shape == out.logits.shape == (3, 10)
    scores = IEMF.local_scores(out, logits, torch.tensor([0, 1, 2]))
    assert scores[3] == 3 and all(0 < float(s) < 3 for s in scores[:3])
    assert {id(p) for p in iemf.fusion_parameters()} == {id(p) for p in model.head.parameters()}


@pytest.mark.parametrize("name, reaches_mlp", [("av-add", True), ("av-concat", True), ("scmrl", False),
                                                ("cmrl", False), ("cmci", False)])
def test_unimodal_losses_train_what_the_heads_read(name, reaches_mlp):
    # docs/iemf.md §5 item 1: on av-add / av-concat the unimodal heads read the features entering the fused head
    # (the MLPBlocks' output, as the authors); on cross-modal models they read the stem output, so their losses
    # reach the stems but neither the MLPBlocks nor the cross-modal blocks.
    torch.manual_seed(0)
    model = create_model(name, **TINY)
    iemf = IEMF(IEMFConfig(enabled=True), model)
    out = model(torch.rand(2, 3, 1, 32, 32) * 3, torch.rand(2, 3, 1, 32, 32) * 3)
    sum(v.sum() for v in iemf.unimodal_logits(out).values()).backward()

    def touched(module):
        return any(p.grad is not None and p.grad.any() for p in module.parameters())

    assert touched(model.stem_audio) and touched(model.stem_visual)
    assert touched(model.mlp_audio) == touched(model.mlp_visual) == reaches_mlp
    assert not touched(model.head)
    assert not any(touched(b) for b in model.fusion_blocks())


def _grads(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=gen)
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_grad_mode_scales_fusion_grads_and_adds_noise():
    model = create_model("scmrl", **TINY)
    iemf = IEMF(IEMFConfig(enabled=True, mode="grad", noise=False, start_epoch=1, end_epoch=2), model)
    before = _grads(model)
    record = iemf.coefficient(torch.tensor([30.0, 10.0, 40.0, 100.0]), epoch=1, step=1)  # r = 0.5
    assert record.applied and record.I == pytest.approx(1 + math.tanh(0.5)) and record.s_fused == 0.4
    iemf.modulate_gradients(record)
    for name, p in model.named_parameters():
        factor = record.I if name.startswith("head.") else 1.0
        assert torch.equal(p.grad, before[name] * factor) or torch.allclose(p.grad, before[name] * factor)
    # outside the window nothing changes
    outside = iemf.coefficient(torch.tensor([30.0, 10.0, 40.0, 100.0]), epoch=3, step=2)
    grads = _grads(model, seed=1)
    iemf.modulate_gradients(outside)
    assert not outside.applied and all(torch.equal(p.grad, grads[n]) for n, p in model.named_parameters())


def test_grad_noise_has_the_gradient_std_and_is_reproducible():
    model = create_model("scmrl", **TINY)
    before = _grads(model)
    iemf = IEMF(IEMFConfig(enabled=True, mode="grad"), model, seed=5)
    state = iemf.state_dict()
    record = iemf.coefficient(torch.tensor([1.0, 1.0, 1.0, 1.0]), epoch=0, step=1)  # r = 1 -> I = 1
    iemf.modulate_gradients(record)
    noise = model.head.weight.grad - before["head.weight"]
    assert noise.std().item() == pytest.approx(before["head.weight"].std().item(), rel=0.15)
    # the generator state travels in the state dict: restoring it reproduces the noise
    _grads(model)
    iemf.load_state_dict(state)
    iemf.modulate_gradients(record)
    assert torch.equal(model.head.weight.grad - before["head.weight"], noise)


def test_lr_mode_scales_the_fusion_groups_only_for_the_step():
    model = create_model("scmrl", **TINY)
    iemf = IEMF(IEMFConfig(enabled=True, end_epoch=0), model, optimizer="adamw")
    assert iemf.mode == "lr"
    opt = build_optimizer(TrainConfig(), model.named_parameters(), iemf.fusion_parameters())
    record = iemf.coefficient(torch.tensor([10.0, 10.0, 40.0, 50.0]), epoch=0, step=1)
    apply_lr(opt, 1e-3, iemf.lr_factor(record))
    assert {g["name"]: g["lr"] for g in opt.param_groups} == pytest.approx(
        {"main_decay": 1e-3, "main_no_decay": 1e-3, "fusion_decay": 1e-3 * record.I,
         "fusion_no_decay": 1e-3 * record.I})
    later = iemf.coefficient(torch.tensor([10.0, 10.0, 40.0, 50.0]), epoch=1, step=2)
    apply_lr(opt, 5e-4, iemf.lr_factor(later))
    assert all(g["lr"] == 5e-4 for g in opt.param_groups)
    assert IEMF(IEMFConfig(enabled=True), model, optimizer="sgd").mode == "grad"
