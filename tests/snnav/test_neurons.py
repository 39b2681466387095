"""MyNode neuron: golden trajectories, surrogate gradient, fused == unfused (spikes and gradients)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from snnav.neurons import MultiStepLIF, mynode_step


def run_steps(inputs: list[float], dtype=torch.float32, **kw) -> tuple[list[float], list[float], list[float]]:
    """Drive ``mynode_step`` with a scalar sequence; return (H, spikes, V) per step."""
    v = torch.zeros((), dtype=dtype)
    hs, ss, vs = [], [], []
    for x in inputs:
        x = torch.tensor(x, dtype=dtype)
        tau = kw.get("tau", 2.0)
        hs.append(float(v + (x - v) / tau))
        s, v = mynode_step(x, v, **kw)
        ss.append(float(s))
        vs.append(float(v))
    return hs, ss, vs


def test_constant_input_one_charges_towards_threshold():
    hs, ss, vs = run_steps([1.0] * 6)
    assert hs == [0.5, 0.75, 0.875, 0.9375, 0.96875, 0.984375]  # H_t = 1 - 2^-(t+1), exact in binary
    assert ss == [0.0] * 6
    assert vs == hs  # no spike, no reset


def test_constant_input_one_fires_only_through_float32_rounding():
    # In exact arithmetic H never reaches 1; in float32 1 - 2^-25 rounds (ties to even) to 1.0 at step 24.
    _, ss, _ = run_steps([1.0] * 30)
    assert ss.index(1.0) == 24
    _, ss64, _ = run_steps([1.0] * 30, dtype=torch.float64)
    assert 1.0 not in ss64


def test_input_exactly_two_fires_at_threshold_every_step():
    hs, ss, vs = run_steps([2.0] * 4)
    assert hs == [1.0] * 4  # H == theta fires (>=), then hard reset to 0
    assert ss == [1.0] * 4
    assert vs == [0.0] * 4


def test_just_below_two_does_not_fire_on_first_step():
    below = 2.0 - 2.0**-22
    hs, ss, _ = run_steps([below, below, below])
    assert hs[0] < 1.0 and ss == [0.0, 1.0, 0.0]


def test_periodic_firing_and_hard_reset():
    hs, ss, vs = run_steps([1.5] * 6)
    assert hs == [0.75, 1.125, 0.75, 1.125, 0.75, 1.125]
    assert ss == [0.0, 1.0] * 3
    assert vs == [0.75, 0.0] * 3


def test_reset_applies_to_membrane_not_next_input():
    # After a spike V = 0, and the next input is integrated from 0 (snn.Leaky's zero reset would drop it).
    hs, ss, _ = run_steps([2.0, 1.0, 1.0])
    assert ss == [1.0, 0.0, 0.0]
    assert hs == [1.0, 0.5, 0.75]


def test_tau_and_threshold_parameters():
    hs, ss, _ = run_steps([1.0, 1.0], tau=4.0, threshold=0.4)
    assert hs == [0.25, 0.4375]
    assert ss == [0.0, 1.0]


def test_surrogate_gradient_value_at_and_away_from_threshold():
    for h, expected in [(1.0, 4 * 0.25), (0.5, 4 * (s := 1 / (1 + math.exp(2))) * (1 - s))]:
        x = torch.tensor(2 * h, requires_grad=True)  # H = x / 2 from V = 0
        spike, _ = mynode_step(x, torch.zeros(()))
        spike.backward()
        assert x.grad.item() == pytest.approx(expected / 2.0, rel=1e-6)  # dS/dH * dH/dX, dH/dX = 1/tau


def test_bptt_gradient_through_membrane_only_without_detach():
    def grad_x0(detach: bool) -> float:
        x = torch.tensor([0.4, 0.6], requires_grad=True)
        out = MultiStepLIF(detach_mem=detach, fused=False)(x[:, None])
        out[1, 0].backward()
        return x.grad[0].item()

    h1 = 0.2 / 2 + 0.6 / 2  # H_0 = 0.2 (no spike), H_1 = V_0/2 + X_1/2
    sig = 1 / (1 + math.exp(-4 * (h1 - 1.0)))
    assert grad_x0(detach=True) == 0.0
    assert grad_x0(detach=False) == pytest.approx(4 * sig * (1 - sig) * 0.25, rel=1e-6)


def test_multistep_matches_step_function_and_resets_between_calls():
    torch.manual_seed(0)
    x = torch.randn(5, 3, 4) + 1.0
    lif = MultiStepLIF(fused=False)
    v = torch.zeros(3, 4)
    expected = []
    for t in range(5):
        s, v = mynode_step(x[t], v)
        expected.append(s)
    assert torch.equal(lif(x), torch.stack(expected))
    assert torch.equal(lif(x), lif(x))  # state starts at 0 on every call


def test_rejects_input_without_time_axis():
    with pytest.raises(ValueError, match="time-first"):
        MultiStepLIF()(torch.ones(4))
    with pytest.raises(ValueError, match="tau"):
        MultiStepLIF(tau=0.0)


def _spikes_and_grad(x: torch.Tensor, upstream: torch.Tensor, **kw) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    out = MultiStepLIF(**kw)(x)
    (out * upstream).sum().backward()
    return out.detach(), x.grad


@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("shape", [(6, 4, 5, 7), (3, 2, 10), (1, 5)])
def test_fused_equals_unfused(detach: bool, shape: tuple[int, ...]):
    gen = torch.Generator().manual_seed(sum(shape) + detach)
    x = torch.randn(shape, generator=gen) * 1.5 + 1.0
    upstream = torch.randn(shape, generator=gen)
    s_ref, g_ref = _spikes_and_grad(x, upstream, fused=False, detach_mem=detach)
    s_fused, g_fused = _spikes_and_grad(x, upstream, fused=True, detach_mem=detach)
    assert 0 < s_ref.mean() < 1  # the test exercises both firing and silent neurons
    assert torch.equal(s_fused, s_ref)
    assert torch.equal(g_fused, g_ref)  # bit-identical, BPTT included


def test_fused_handles_exact_threshold_and_float64():
    x = torch.full((3, 2), 2.0, dtype=torch.float64)
    assert torch.equal(MultiStepLIF(fused=True)(x), torch.ones_like(x))
    assert MultiStepLIF(fused=True)(x).dtype == torch.float64


@settings(max_examples=25, deadline=None)
@given(
    t=st.integers(1, 6),
    n=st.integers(1, 8),
    tau=st.sampled_from([1.5, 2.0, 3.0]),
    threshold=st.sampled_from([0.5, 1.0]),
    detach=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fused_equals_unfused_property(t, n, tau, threshold, detach, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(t, 2, n, generator=gen) * 2.0
    up = torch.randn(t, 2, n, generator=gen)
    kw = dict(tau=tau, threshold=threshold, detach_mem=detach)
    s_ref, g_ref = _spikes_and_grad(x, up, fused=False, **kw)
    s_fused, g_fused = _spikes_and_grad(x, up, fused=True, **kw)
    assert torch.equal(s_fused, s_ref)
    assert torch.equal(g_fused, g_ref)


def test_snntorch_sigmoid_surrogate_differs_from_mynode():
    """Why the reference path does not use ``snntorch.surrogate.sigmoid`` (see snnav.neurons docstring)."""
    surrogate = pytest.importorskip("snntorch.surrogate")
    spike_fn = surrogate.sigmoid(slope=4)
    u = torch.tensor([0.0, -30.0], requires_grad=True)  # U = H - theta
    out = spike_fn(u)
    out.sum().backward()
    assert out[0].item() == 0.0  # strict U > 0: H == theta does not fire; MyNode fires
    assert torch.isnan(u.grad[1])  # exp(120) overflows in float32
    x = torch.tensor([2.0 * (1.0 - 30.0)], requires_grad=True)  # H - theta = -30 through MyNode
    s, _ = mynode_step(x, torch.zeros(1))
    s.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("detach", [True, False])
def test_golden_trajectories_through_module(fused, detach):
    lif = MultiStepLIF(fused=fused, detach_mem=detach)
    spikes = lambda value, steps: lif(torch.full((steps, 1), value))[:, 0].tolist()  # noqa: E731
    assert spikes(2.0, 4) == [1.0] * 4
    assert spikes(1.5, 6) == [0.0, 1.0] * 3
    assert spikes(1.0, 30).index(1.0) == 24  # the float32 rounding of H = 1 - 2^-25 is reproduced exactly
    assert spikes(-3.0, 5) == [0.0] * 5
