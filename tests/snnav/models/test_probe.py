"""FiringRates: hook-based rates match the spikes, describe only the last forward, leave no hooks behind."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snnav.models import FiringRates
from snnav.neurons import MultiStepLIF


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lif1 = MultiStepLIF()
        self.lif2 = MultiStepLIF(threshold=0.5)

    def forward(self, x):
        return self.lif2(self.lif1(x) + 0.5 * x)


def test_rates_match_spikes_of_last_forward():
    model = Tiny()
    x1 = torch.rand(4, 3, 10, generator=torch.Generator().manual_seed(0)) * 4
    x2 = torch.zeros(4, 3, 10)
    s1 = model.lif1(x1)  # expected spikes, computed before the probe exists
    s2 = model.lif2(s1 + 0.5 * x1)
    with FiringRates(model) as probe:
        model(x1)
        assert probe.rates == pytest.approx({"lif1": s1.mean().item(), "lif2": s2.mean().item()}, rel=1e-6)
        assert probe.spike_counts["lif1"] == s1.sum().item()
        model(x2)
    assert probe.rates == {"lif1": 0.0, "lif2": 0.0}  # only the last forward; readable after exit
    assert not model.lif1._forward_hooks and not model._forward_pre_hooks  # hooks removed


def test_no_recording_outside_the_context():
    model = Tiny()
    probe = FiringRates(model)
    model(torch.ones(2, 1, 3) * 4)
    assert probe.rates == {}
