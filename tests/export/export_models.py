"""Small models of every registered kind with firing layers, and inputs, for the export tests (imported by name:
``conftest`` is not importable under one name when several test folders have one)."""

from __future__ import annotations

import torch
from torch import nn

from snnav.models import create_model

T, B, SIZE = 4, 3, 16
SMALL = dict(num_classes=5, embed_dim=32, num_heads=4, mlp_ratio=2, stem="shallow", in_channels_audio=1,
             in_channels_visual=2)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give batch norms random running statistics and affine parameters, and linears random biases, so that every
    layer fires at a moderate rate (the exporter must fold real statistics, not the identity of a fresh BN)."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(lo + (hi - lo) * torch.rand(t.shape, generator=gen, dtype=t.dtype))

    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                uniform(m.weight, 0.5, 1.5)
                # Q, K, V fire often so that 0.25 Q K^T V reaches the attention neuron's threshold
                qkv = name.rsplit(".", 2)[-2:-1] in (["q"], ["k"], ["v"])
                uniform(m.bias, *((1.0, 2.5) if qkv else (0.3, 1.3)))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                uniform(m.running_var, 0.5, 2.0)
            elif isinstance(m, nn.Linear) and m.bias is not None:
                uniform(m.bias, 0.5, 1.5)
    return model


def small_model(name: str, seed: int = 0, **changes) -> nn.Module:
    torch.manual_seed(seed)
    return randomize(create_model(name, **{**SMALL, **changes}), seed).eval()


def inputs(seed: int = 1, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio ``[T, B, 1, 16, 16]`` and visual ``[T, B, 2, 16, 16]`` in [0, 3)."""
    gen = torch.Generator().manual_seed(seed)
    audio = 3 * torch.rand(T, B, 1, SIZE, SIZE, generator=gen, dtype=dtype)
    visual = 3 * torch.rand(T, B, 2, SIZE, SIZE, generator=gen, dtype=dtype)
    return audio, visual
