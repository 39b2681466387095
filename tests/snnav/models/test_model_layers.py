"""Stems, MLP, spiking self-attention: shapes, token grids, value ranges, input checks."""

from __future__ import annotations

import pytest
import torch

from snnav.errors import ConfigError
from snnav.models.layers import SPS, SSA, MLPBlock, ShallowSPS, make_stem, multihead_spike_product, split_heads


def spikes(*shape: int, p: float = 0.3, seed: int = 0) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p).float()


@pytest.mark.parametrize(
    "stem_cls, size, tokens", [(SPS, 32, 4), (SPS, 64, 16), (ShallowSPS, 16, 16), (ShallowSPS, 28, 49)]
)
def test_stem_token_grid_and_values(stem_cls, size, tokens):
    torch.manual_seed(0)
    stem = stem_cls(in_channels=2, embed_dim=32)
    out = stem(torch.rand(3, 2, 2, size, size) * 4)
    assert out.shape == (3, 2, 32, tokens)
    assert set(out.unique().tolist()) <= {0.0, 1.0, 2.0}  # pooled spikes + RPE spikes
    assert out.max() == 2.0  # both terms fire somewhere on this input


def test_stem_rejects_bad_sizes_and_channels():
    with pytest.raises(ValueError, match="divisible by 16"):
        SPS(1, 32)(torch.zeros(2, 1, 1, 40, 40))
    with pytest.raises(ValueError, match="C=1"):
        ShallowSPS(1, 32)(torch.zeros(2, 1, 3, 16, 16))
    with pytest.raises(ConfigError, match="stem"):
        make_stem("deep", 1, 32)


def test_split_heads_channel_layout():
    x = torch.arange(2 * 1 * 8 * 3, dtype=torch.float32).reshape(2, 1, 8, 3)  # (T, B, C, N)
    heads = split_heads(x, num_heads=4)  # (T, B, h, N, d) with c = head * d + j
    assert heads.shape == (2, 1, 4, 3, 2)
    assert heads[1, 0, 2, 1, 1] == x[1, 0, 2 * 2 + 1, 1]


@pytest.mark.parametrize("n, d", [(16, 4), (4, 16)])
def test_spike_product_reassociation_is_exact(n, d):
    q, k, v = spikes(2, 3, 4, n, d, seed=1), spikes(2, 3, 4, n, d, seed=2), spikes(2, 3, 4, n, d, seed=3)
    assert torch.equal(multihead_spike_product(q, k, v), (q @ k.transpose(-2, -1)) @ v)


def test_ssa_against_einsum_reference():
    torch.manual_seed(0)
    ssa = SSA(dim=32, num_heads=8)
    x = spikes(3, 2, 32, 9, p=0.5, seed=4)
    q, k, v = ssa.qkv(x, x)
    h, d = 8, 4
    qh, kh, vh = (z.reshape(3, 2, h, d, 9) for z in (q, k, v))  # channel c = head * d + j
    ref = 0.25 * torch.einsum("tbhin,tbhim,tbhjm->tbhjn", qh, kh, vh).reshape(3, 2, 32, 9)
    assert torch.equal(ssa.attend(q, k, v), ref)
    out = ssa(x)
    assert out.shape == x.shape and set(out.unique().tolist()) <= {0.0, 1.0}


def test_mlp_block_is_residual():
    torch.manual_seed(0)
    block = MLPBlock(16, mlp_ratio=4)
    x = spikes(2, 3, 16, 5, seed=5)
    out = block(x)
    assert torch.equal(out - x, block.mlp(x))
    assert set((out - x).unique().tolist()) <= {0.0, 1.0}
