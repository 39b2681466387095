"""The optimized path (fused neuron + spike max-pool) computes exactly what the straightforward path computes.

``fused=True`` models run :class:`FusedMultiStepLIF` and :class:`SpikeMaxPool2d`; ``fused=False`` models run the
per-step neuron loop under autograd and ``nn.MaxPool2d``. With the same weights and inputs, outputs, BN running
statistics and every parameter gradient must be bit-identical.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from snnav.models import create_model, list_models, model_preset
from snnav.models.layers import make_spike_pool
from snnav.models.spike_pool import SpikeMaxPool2d, argmax_indices, window_codes
from snnav.neurons import MultiStepLIF

T, B, K = 4, 3, 5


def binary(shape: tuple[int, ...], p: float, seed: int, dtype=torch.float32) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p).to(dtype)


def pool_value_and_grad(pool: nn.Module, x: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = pool(x)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=x.dtype))
    return out.detach(), x.grad


# ------------------------------------------------------------------------------------------------ spike max-pool


@pytest.mark.parametrize("shape", [(2, 3, 16, 16), (2, 2, 7, 9), (1, 1, 1, 1), (3, 2, 2, 5), (64, 8, 32, 32)])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
def test_spike_pool_equals_maxpool(shape, p):
    x = binary(shape, p, seed=sum(shape))
    ref_out, ref_grad = pool_value_and_grad(nn.MaxPool2d(3, 2, 1), x)
    out, grad = pool_value_and_grad(SpikeMaxPool2d(), x)
    assert torch.equal(out, ref_out)
    assert torch.equal(grad, ref_grad)  # same element of every window receives the gradient


def test_spike_pool_indices_are_atens_including_empty_border_windows():
    for p in (0.0, 0.05, 0.3):
        x = binary((2, 4, 10, 12), p, seed=int(100 * p))
        _, ref_idx = F.max_pool2d_with_indices(x, 3, 2, 1)
        assert torch.equal(argmax_indices(window_codes(x), x.shape[-1]), ref_idx)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 12), w=st.integers(1, 12),
    p=st.floats(0.0, 1.0), seed=st.integers(0, 2**16), double=st.booleans(),
)
def test_spike_pool_property(n, c, h, w, p, seed, double):
    x = binary((n, c, h, w), p, seed, torch.float64 if double else torch.float32)
    ref_out, ref_grad = pool_value_and_grad(nn.MaxPool2d(3, 2, 1), x, seed)
    out, grad = pool_value_and_grad(SpikeMaxPool2d(), x, seed)
    assert torch.equal(out, ref_out) and torch.equal(grad, ref_grad)


def test_spike_pool_keeps_less_for_backward_and_falls_back_for_inexact_dtypes():
    x = binary((2, 3, 8, 8), 0.3, seed=1).requires_grad_(True)
    out = SpikeMaxPool2d()(x)
    assert [t.shape for t in out.grad_fn.saved_tensors] == [(2, 3, 4, 4)]  # the window codes only
    bf16 = binary((2, 3, 8, 8), 0.3, seed=1, dtype=torch.bfloat16)  # 511 is not exact in bfloat16
    assert torch.equal(SpikeMaxPool2d()(bf16), F.max_pool2d(bf16, 3, 2, 1))
    assert isinstance(SpikeMaxPool2d(), nn.MaxPool2d) and SpikeMaxPool2d().kernel_size == 3


def test_only_the_fused_builtin_neuron_gets_the_spike_pool():
    assert type(make_spike_pool(MultiStepLIF(fused=True))) is SpikeMaxPool2d
    assert type(make_spike_pool(MultiStepLIF(fused=False))) is nn.MaxPool2d
    assert type(make_spike_pool(nn.ReLU())) is nn.MaxPool2d  # no binary guarantee


# ------------------------------------------------------------------------------------------------ fused neuron


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize(
    "shape, perm",
    [((4, 3, 37, 129), None), ((4, 5, 16, 70), (0, 1, 3, 2)), ((4, 8, 16, 64), (0, 2, 1, 3)), ((4, 2, 8, 64, 64), None)],
)
def test_fused_neuron_equals_loop_on_large_and_strided_input(detach, shape, perm):
    # Large per-step tensors split across threads and vector tails; permuted ones are what attention feeds in.
    gen = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=gen) * 1.5 + 1.0
    x = x if perm is None else x.permute(*perm).contiguous().permute(*perm)
    upstream = torch.randn(x.shape, generator=gen)
    results = []
    for fused in (False, True):
        xx = x.detach().clone(memory_format=torch.preserve_format).requires_grad_(True)
        out = MultiStepLIF(fused=fused, detach_mem=detach)(xx)
        (out * upstream).sum().backward()
        results.append((out, xx.grad))
    (s_ref, g_ref), (s_fused, g_fused) = results
    assert torch.equal(s_fused, s_ref)
    assert torch.equal(g_fused, g_ref)
    with torch.no_grad():
        assert torch.equal(MultiStepLIF(fused=True, detach_mem=detach)(x), s_ref)  # one-step scratch buffer


# ------------------------------------------------------------------------------------------------ whole models


def excite(model: nn.Module) -> nn.Module:
    """Raise BN and linear biases so every layer fires and every gradient is non-trivial (see test_model_zoo)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.bias.fill_(2.0)
            elif isinstance(m, nn.Linear):
                m.bias.fill_(1.2)
    return model


def loss_of(out) -> torch.Tensor:
    gen = torch.Generator().manual_seed(123)
    terms = [out.logits, *out.aux_logits.values()]
    terms += [t for t in (out.align_audio, out.align_visual, out.feat_audio, out.feat_visual) if t is not None]
    return sum((t * torch.randn(t.shape, generator=gen)).sum() for t in terms)


def run_pair(name: str, cfg: dict, audio: torch.Tensor, visual: torch.Tensor, fire: bool = True):
    """Straightforward and optimized model with the same weights: (outputs, grads, buffers) of each."""
    torch.manual_seed(0)
    ref = create_model(name, fused=False, **cfg)
    if fire:
        excite(ref)
    opt = create_model(name, fused=True, **cfg)
    opt.load_state_dict(ref.state_dict())
    results = []
    for model in (ref, opt):
        out = model(audio, visual)
        loss_of(out).backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        results.append((out, grads, dict(model.named_buffers())))
    return results


def assert_identical(results) -> None:
    (out_r, grads_r, bufs_r), (out_o, grads_o, bufs_o) = results
    for field in ("logits", "feat_audio", "feat_visual", "align_audio", "align_visual"):
        a, b = getattr(out_r, field), getattr(out_o, field)
        assert (a is None) == (b is None) and (a is None or torch.equal(a, b)), field
    for key, logits in out_r.aux_logits.items():
        assert torch.equal(logits, out_o.aux_logits[key]), key
    for name, grad in grads_r.items():
        assert (grad is None) == (grads_o[name] is None), name
        assert grad is None or torch.equal(grad, grads_o[name]), name
    for name, buf in bufs_r.items():
        assert torch.equal(buf, bufs_o[name]), name


SMALL = dict(num_classes=K, embed_dim=32, num_heads=4, in_channels_audio=1, in_channels_visual=2)


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("stem, size", [("shallow", 16), ("sps", 32)])
def test_optimized_model_is_bit_identical(name, stem, size):
    gen = torch.Generator().manual_seed(7)
    audio, visual = torch.rand(T, B, 1, size, size, generator=gen) * 3, torch.rand(T, B, 2, size, size, generator=gen) * 3
    results = run_pair(name, {**SMALL, "stem": stem}, audio, visual)
    assert any(g is not None and g.any() for g in results[0][1].values())
    assert any(isinstance(m, SpikeMaxPool2d) for m in create_model(name, fused=True, **SMALL, stem=stem).modules())
    assert_identical(results)


@pytest.mark.slow
@pytest.mark.parametrize("fire", [False, True])
def test_optimized_scmrl_is_bit_identical_at_the_urbansound8k_config(fire):
    preset = model_preset("urbansound8k-av")
    gen = torch.Generator().manual_seed(11)
    size = preset.input_size
    audio = torch.rand(preset.time_steps, 2, 1, size, size, generator=gen)
    visual = torch.rand(preset.time_steps, 2, 3, size, size, generator=gen)
    assert_identical(run_pair("scmrl", preset.model_kwargs(), audio, visual, fire))


@pytest.mark.slow
@pytest.mark.parametrize("detach", [True, False])
def test_fused_model_traces_under_torch_compile(detach):
    # aot_eager runs dynamo and AOT autograd (functionalisation) without inductor's code generation: it exercises the
    # neuron's traceable backward at a fraction of the compile time.
    gen = torch.Generator().manual_seed(3)
    audio, visual = torch.rand(T, 2, 1, 16, 16, generator=gen) * 3, torch.rand(T, 2, 2, 16, 16, generator=gen) * 3
    torch.manual_seed(0)
    model = excite(create_model("scmrl", fused=True, detach_mem=detach, **SMALL, stem="shallow"))
    compiled = torch.compile(model, backend="aot_eager")
    out_c = compiled(audio, visual)
    loss_of(out_c).backward()
    grads_c = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    out_e = model(audio, visual)
    loss_of(out_e).backward()
    assert torch.equal(out_c.logits, out_e.logits)
    for name, p in model.named_parameters():  # AOT autograd reorders some reductions: equal to float rounding
        torch.testing.assert_close(grads_c[name], p.grad, rtol=1e-5, atol=1e-5 * p.grad.abs().max().item(), msg=name)
