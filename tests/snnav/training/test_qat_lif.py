"""The fixed-point LIF of quantization-aware fine-tuning against a step-by-step reference of Loihi's integer LIF."""

from __future__ import annotations

import pytest
import torch

from snnav.training.qat import ACT_UNIT, DECAY_UNITY, STATE_LIMIT, NeuronQuant, fixed_point_lif


def _reference(x, nq):
    """The integer LIF written out per step (module docstring of snnav.training.qat), float64, no shortcuts."""
    s, m = nq.scale, float(STATE_LIMIT)
    a = (x.double() * nq.c - nq.bias_float) * (s / ACT_UNIT)
    a = (torch.floor(a + 2.0**-12) if nq.floor else torch.round(a)) * ACT_UNIT
    u = torch.zeros_like(a[0])
    v = torch.zeros_like(a[0])
    spikes, hs = [], []
    for t in range(a.shape[0]):
        cur = torch.trunc(u * (DECAY_UNITY - (nq.du + 1)) / DECAY_UNITY) + a[t]
        wrapped = torch.where(cur > m, cur - 2 * m, cur)
        u = torch.where(wrapped <= -m, cur + 2 * m, wrapped)
        h = torch.clamp(torch.trunc(v * (DECAY_UNITY - nq.dv) / DECAY_UNITY) + u + nq.bias_int, -(m - 1), m - 1)
        fired = h > nq.vth_int
        spikes.append(fired.double())
        hs.append(h / s)
        v = torch.where(fired, torch.zeros_like(h), h)
    return torch.stack(spikes), torch.stack(hs)


@pytest.mark.parametrize("du,dv,floor", [(4095, 2048, False), (4095, 2048, True), (1000, 300, False), (0, 4095, True)])
def test_fixed_point_lif_is_the_integer_lif_with_its_surrogate_gradient(du, dv, floor):
    gen = torch.Generator().manual_seed(du + dv)
    scale = 2.0**12
    # Large inputs reach the 24-bit wrap of u and the saturation of v; small ones spike through leaky integration.
    x = torch.randn(12, 3, 5, 7, generator=gen) * torch.tensor([0.5, 4.0, 4000.0]).reshape(1, 3, 1, 1)
    x.requires_grad_(True)
    nq = NeuronQuant(scale, dv, du, 1 << 12, 0.5, torch.rand(5, 7, generator=gen, dtype=torch.float64) * 0.1,
                     torch.round(torch.rand(5, 7, generator=gen, dtype=torch.float64) * 64) * 64, floor)
    spikes = fixed_point_lif(x, nq, tau=2.0, slope=4.0)
    ref_spikes, h = _reference(x.detach(), nq)
    assert 0 < int(spikes.sum()) < spikes.numel()
    assert torch.equal(spikes.double(), ref_spikes)
    grad = torch.randn(spikes.shape, generator=gen)
    spikes.backward(grad)
    sig = torch.sigmoid((h.float() - nq.vth_int / scale) * 4.0)
    assert torch.equal(x.grad, grad * 4.0 * sig * (1 - sig) / 2.0)
