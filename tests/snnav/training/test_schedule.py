"""The lr schedule (worked values of docs/scmrl.md §3), parameter groups and the optimizer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snnav.training.config import TrainConfig
from snnav.training.schedule import apply_lr, build_optimizer, lr_at_epoch, param_groups, scaled_lr

PEAK = 6.25e-4  # 5e-3 * 128 / 1024


def test_linear_scaling_gives_the_reference_peak():
    assert scaled_lr(5e-3, 128) == pytest.approx(6.25e-4)
    assert TrainConfig().effective_lr == pytest.approx(6.25e-4)
    assert TrainConfig(lr_reference_batch=0).effective_lr == 5e-3


@pytest.mark.parametrize("epoch, expected", [
    (0, 1e-6),                                  # warm-up starts at warmup_lr
    (2, 1e-6 + 2 * (PEAK - 1e-6) / 5),          # 2.5060e-4
    (4, 1e-6 + 4 * (PEAK - 1e-6) / 5),          # 5.0020e-4
    (5, 6.2121417e-4),                          # cosine at absolute t = 5: 1e-5 + 0.5*6.15e-4*(1 + cos(0.05 pi))
    (50, 1e-5 + 0.5 * (PEAK - 1e-5)),           # half way: 3.175e-4
    (99, 1.01517e-5),                           # 1e-5 + 0.5*6.15e-4*(1 - cos(0.01 pi))
    (100, 1e-5),                                # past the end: the floor
])
def test_lr_values(epoch, expected):
    assert lr_at_epoch(epoch, PEAK, 100, 5, 1e-6, 1e-5) == pytest.approx(expected, rel=1e-5)


def test_no_warmup_prefix_means_a_small_step_down_after_warmup():
    last_warm, first_cos = lr_at_epoch(4, PEAK, 100), lr_at_epoch(5, PEAK, 100)
    peak_if_prefixed = PEAK
    assert first_cos < peak_if_prefixed and first_cos > last_warm
    values = [lr_at_epoch(e, PEAK, 100) for e in range(5, 100)]
    assert all(x > y for x, y in zip(values, values[1:]))  # monotone cosine decay


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 3, 1)
        self.bn = nn.BatchNorm1d(3)
        self.head = nn.Linear(3, 2)


def test_param_groups_split_decay_and_fusion():
    net = _Net()
    groups = param_groups(net.named_parameters(), 1e-4, fusion_params=list(net.head.parameters()))
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {"main_decay", "main_no_decay", "fusion_decay", "fusion_no_decay"}
    assert by_name["main_decay"]["params"] == [net.conv.weight]
    assert by_name["main_no_decay"]["params"] == [net.conv.bias, net.bn.weight, net.bn.bias]
    assert by_name["fusion_decay"]["params"] == [net.head.weight] and by_name["fusion_decay"]["weight_decay"] == 1e-4
    assert by_name["fusion_no_decay"]["params"] == [net.head.bias]
    assert all(g["weight_decay"] == 0.0 for g in groups if g["name"].endswith("no_decay"))


def test_optimizer_and_apply_lr():
    net = _Net()
    opt = build_optimizer(TrainConfig(), net.named_parameters(), fusion_params=list(net.head.parameters()))
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.9, 0.999)
    apply_lr(opt, 1e-3, fusion_factor=1.5)
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3, 1.5e-3, 1.5e-3]
    apply_lr(opt, 2e-3)
    assert all(math.isclose(g["lr"], 2e-3) for g in opt.param_groups)
    sgd = build_optimizer(TrainConfig(optimizer="sgd"), net.named_parameters())
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
