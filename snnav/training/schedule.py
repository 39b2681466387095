"""The optimisation recipe of S-CMRL (``docs/scmrl.md`` §3): lr as a pure function of the epoch, parameter groups,
and the optimizer.

The reference uses timm's ``CosineLRScheduler`` stepped once per epoch with ``warmup_t = 5``,
``warmup_lr_init = 1e-6``, ``lr_min = 1e-5``, ``t_initial = epochs`` and no ``warmup_prefix``; written out (epoch e
0-based, E epochs, W warm-up epochs, peak lr L)::

    lr(e) = 1e-6 + e (L - 1e-6) / W                           e < W
    lr(e) = min_lr + (L - min_lr) (1 + cos(pi e / E)) / 2     W <= e < E      (absolute e: no warmup prefix)
    lr(e) = min_lr                                            e >= E

So the cosine is already at ``cos(pi W / E)`` when the warm-up ends: there is a small step down at e = W (at E = 100,
from 6.25e-4 to 6.22e-4). Being a pure function, the schedule needs no state in a checkpoint beyond the epoch.

The peak is linearly scaled by batch size, ``L = lr * batch / 1024`` (timm's ``--lr`` convention that the
reference's ``train_snn.py`` applies): ``--lr 5e-3`` at batch 128 gives 6.25e-4.
"""

from __future__ import annotations

import math
from typing import Iterable

import torch
from torch import nn

from snnav.training.config import TrainConfig

__all__ = ["scaled_lr", "lr_at_epoch", "param_groups", "build_optimizer", "apply_lr"]


def scaled_lr(lr: float, batch_size: int, reference_batch: int = 1024) -> float:
    """``lr * batch_size / reference_batch`` (no scaling when ``reference_batch`` is 0)."""
    return lr if reference_batch == 0 else lr * batch_size / reference_batch


def lr_at_epoch(epoch: int, base_lr: float, epochs: int, warmup_epochs: int = 5, warmup_lr: float = 1e-6,
                min_lr: float = 1e-5) -> float:
    """The learning rate of (0-based) ``epoch`` (module docstring has the formula)."""
    if epoch < warmup_epochs:
        return warmup_lr + epoch * (base_lr - warmup_lr) / warmup_epochs
    if epoch >= epochs:
        return min_lr
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * epoch / epochs))


def config_lr(config: TrainConfig, epoch: int) -> float:
    """:func:`lr_at_epoch` with the values of ``config``."""
    return lr_at_epoch(epoch, config.effective_lr, config.epochs, config.warmup_epochs, config.warmup_lr,
                       config.min_lr)


def _no_decay(name: str, param: nn.Parameter) -> bool:
    # timm's param_groups_weight_decay: 1-D tensors (BN/LayerNorm weights, biases) and anything named *.bias.
    return param.ndim <= 1 or name.endswith(".bias")


def param_groups(named_params: Iterable[tuple[str, nn.Parameter]], weight_decay: float,
                 fusion_params: Iterable[nn.Parameter] = ()) -> list[dict]:
    """Split trainable parameters into (fusion?, decay?) groups, each tagged ``fusion`` and ``name``.

    The fusion parameters (IEMF's P_F) get groups of their own so their lr can be scaled by I (docs/iemf.md §5 item 6).
    Empty groups are left out; the order is fixed, so optimizer state dicts line up between runs.
    """
    fusion_ids = {id(p) for p in fusion_params}
    buckets: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in named_params:
        if param.requires_grad:
            buckets.setdefault((id(param) in fusion_ids, _no_decay(name, param)), []).append(param)
    groups = []
    for fusion in (False, True):
        for no_decay in (False, True):
            params = buckets.get((fusion, no_decay))
            if params:
                groups.append({
                    "params": params,
                    "weight_decay": 0.0 if no_decay else weight_decay,
                    "fusion": fusion,
                    "name": ("fusion" if fusion else "main") + ("_no_decay" if no_decay else "_decay"),
                })
    return groups


def build_optimizer(config: TrainConfig, named_params: Iterable[tuple[str, nn.Parameter]],
                    fusion_params: Iterable[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """AdamW (or Nesterov SGD) over :func:`param_groups`; the lr is set each step by :func:`apply_lr`."""
    groups = param_groups(named_params, config.weight_decay, fusion_params)
    lr0 = config_lr(config, 0)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=lr0, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=lr0, momentum=config.momentum, nesterov=config.nesterov and config.momentum > 0,
                           weight_decay=config.weight_decay)


def apply_lr(optimizer: torch.optim.Optimizer, lr: float, fusion_factor: float = 1.0) -> None:
    """Set every group's lr to ``lr``, and the fusion groups' to ``lr * fusion_factor``.

    Called before every step, so a modulated fusion lr never outlives its step (the AV-CIL bug, docs/iemf.md §1.5).
    """
    for group in optimizer.param_groups:
        group["lr"] = lr * fusion_factor if group.get("fusion") else lr
