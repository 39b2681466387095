"""Cross-modal attention: spatial / temporal (faithful and clean layouts) against independent references, CCSSA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from snnav.errors import ConfigError
from snnav.models.attention import (
    CCSSA,
    RelativeBiasCrossAttention,
    SpatialCrossAttention,
    TemporalCrossAttention,
    make_cross_attention,
    relative_position_index,
)

T, B, H_HEADS = 4, 2, 16


def spikes(*shape: int, seed: int, p: float = 0.5) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p).float()


def temporal_reference(q, k, v, num_heads: int, faithful: bool) -> np.ndarray:
    """Loop-level reference of docs/scmrl.md §1.5: attention over time per token and head, then the output layout.

    Faithful: output time t' = head // (h/T), channel (head mod h/T)·T·d + t·d + j.
    Clean: time t, channel head·d + j.
    """
    q, k, v = (z.numpy().astype(np.float64) for z in (q, k, v))
    t_steps, b, c, n = q.shape
    d = c // num_heads
    group = num_heads // t_steps
    out = np.zeros((t_steps, b, c, n))
    for head in range(num_heads):
        sl = slice(head * d, (head + 1) * d)
        # (N, B, T, d) per head; attn over T with keys/values from all steps at the same token
        qh, kh, vh = (z[:, :, sl, :].transpose(3, 1, 0, 2) for z in (q, k, v))
        res = 0.25 * np.einsum("nbtd,nbsd,nbsj->nbtj", qh, kh, vh)  # (N, B, T, d)
        for t in range(t_steps):
            for j in range(d):
                if faithful:
                    out[head // group, :, (head % group) * t_steps * d + t * d + j, :] = res[:, :, t, j].T
                else:
                    out[t, :, head * d + j, :] = res[:, :, t, j].T
    return out


@pytest.mark.parametrize("layout", ["faithful", "clean"])
def test_temporal_attention_layout_matches_reference(layout):
    torch.manual_seed(0)
    attn = TemporalCrossAttention(dim=64, num_heads=H_HEADS, temporal_reshape=layout)
    q, k, v = spikes(T, B, 64, 5, seed=1), spikes(T, B, 64, 5, seed=2), spikes(T, B, 64, 5, seed=3)
    ref = temporal_reference(q, k, v, H_HEADS, faithful=layout == "faithful")
    np.testing.assert_array_equal(attn.attend(q, k, v).numpy(), ref)


def test_faithful_and_clean_layouts_differ_only_by_placement():
    torch.manual_seed(0)
    q, k, v = spikes(T, B, 64, 5, seed=4), spikes(T, B, 64, 5, seed=5), spikes(T, B, 64, 5, seed=6)
    faithful = TemporalCrossAttention(64, H_HEADS, temporal_reshape="faithful").attend(q, k, v)
    clean = TemporalCrossAttention(64, H_HEADS, temporal_reshape="clean").attend(q, k, v)
    assert not torch.equal(faithful, clean)
    # Same multiset of values per (B, N): the bug moves values between time and channel, it does not change them.
    def per_token_values(z):
        return z.permute(1, 3, 0, 2).flatten(2).sort().values  # (B, N, T*C), sorted

    assert torch.equal(per_token_values(faithful), per_token_values(clean))
    # Faithful output time 0 holds heads 0-3 (group h/T = 4) of every real time step.
    group, d = H_HEADS // T, 64 // H_HEADS
    heads_0_to_3 = clean.reshape(T, B, H_HEADS, d, 5)[:, :, :group]  # (T, B, group, d, N)
    assert torch.equal(faithful[0], heads_0_to_3.permute(1, 2, 0, 3, 4).reshape(B, group * T * d, 5))


def test_spatial_cross_attention_queries_x_and_reads_y():
    torch.manual_seed(0)
    attn = SpatialCrossAttention(dim=32, num_heads=8)
    x, y = spikes(T, B, 32, 9, seed=7), spikes(T, B, 32, 9, seed=8)
    q, k, v = attn.qkv(x, y)
    assert torch.equal(q, attn.q(x)) and torch.equal(k, attn.k(y)) and torch.equal(v, attn.v(y))
    qh, kh, vh = (z.reshape(T, B, 8, 4, 9) for z in (q, k, v))
    ref = 0.25 * torch.einsum("tbhin,tbhim,tbhjm->tbhjn", qh, kh, vh).reshape(T, B, 32, 9)
    assert torch.equal(attn.attend(q, k, v), ref)


def test_ccssa_is_outer_product_of_branch_means():
    torch.manual_seed(0)
    ccssa = CCSSA(dim=64, num_heads=H_HEADS)
    x, y = spikes(T, B, 64, 6, seed=9), spikes(T, B, 64, 6, seed=10)
    out = ccssa(x, y)
    s, tm = ccssa.spatial(x, y), ccssa.temporal(x, y)
    expected = torch.einsum("tbc,bcn->tbcn", s.mean(dim=3), tm.mean(dim=0))
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)
    assert out.min() >= 0 and out.max() <= 1
    # rank 1 over (t, n) for every (b, c)
    assert torch.linalg.matrix_rank(out.permute(1, 2, 0, 3).double()).max() <= 1


def test_factory_variants_and_errors():
    assert isinstance(make_cross_attention("spatial", 32, 8), SpatialCrossAttention)
    assert isinstance(make_cross_attention("temporal", 32, 8, temporal_reshape="clean"), TemporalCrossAttention)
    assert isinstance(make_cross_attention("spatial-temporal", 32, 8), CCSSA)
    with pytest.raises(ConfigError, match="attn_variant"):
        make_cross_attention("spatiotemporal", 32, 8)
    with pytest.raises(ConfigError, match="temporal_reshape"):
        make_cross_attention("temporal", 32, 8, temporal_reshape="fixed")


def test_relative_position_index():
    idx = relative_position_index(3)
    assert idx.shape == (9, 9)
    assert idx.unique().numel() == 25  # every offset (dy, dx) in [-2, 2]^2 occurs on a 3x3 grid
    assert torch.all(idx.diagonal() == 12)  # zero offset is the centre of the 5x5 table
    assert idx[0, 8] == 0 and idx[8, 0] == 24  # (-2, -2) and (+2, +2)


def reference_rpb(grid: int, table: torch.Tensor) -> torch.Tensor:
    """Loop-level SCA bias (docs/scmrl.md §1.8): B[p, q] = table[dr + G, dc + G], (dr, dc) = offset of p from q."""
    n = grid * grid
    out = torch.zeros(n, n)
    for p in range(n):
        for q in range(n):
            dr, dc = p // grid - q // grid, p % grid - q % grid
            out[p, q] = table[dr + grid, dc + grid]
    return out


def test_relative_position_index_with_the_reference_margin():
    idx = relative_position_index(3, margin=1)  # (2G+1)^2 = 49 entries, the outer ring never indexed
    assert idx.shape == (9, 9) and idx.unique().numel() == 25
    assert torch.all(idx.diagonal() == 24)  # zero offset is the centre of the 7x7 table
    assert idx[0, 8] == 8 and idx[8, 0] == 40  # (-2, -2) -> (1, 1), (+2, +2) -> (5, 5)


def test_random_rpb_is_one_matrix_per_forward_shared_by_every_head_step_and_sample():
    n_tokens = 16  # 4 x 4 grid
    x, y = spikes(T, B, 32, n_tokens, seed=21), spikes(T, B, 32, n_tokens, seed=22)
    noisy = RelativeBiasCrossAttention(32, 8, random_rpb=True)
    seen = []
    noisy.rpb_lif.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach().clone()))
    q, k, v = noisy.qkv(x, y)
    torch.manual_seed(5)
    noisy.attend(torch.zeros_like(q), k, v)  # Q = 0: rpb_lif's input is exactly the bias
    bias = seen[0]  # (T, B, h, N, N)
    assert bias.shape == (T, B, 8, n_tokens, n_tokens)
    assert torch.equal(bias, bias[:1, :1, :1].expand_as(bias))
    torch.manual_seed(5)
    noisy.attend(q, k, v)  # with spikes, the same bias sits on top of Q K^T
    qh, kh = (z.transpose(2, 3).reshape(T, B, n_tokens, 8, 4).transpose(2, 3) for z in (q, k))
    torch.testing.assert_close(seen[1], qh @ kh.transpose(-2, -1) + bias, rtol=0, atol=1e-6)
    # and it is the reference's draw: one randn((2G+1), (2G+1)) on the global generator, nothing else drawn
    torch.manual_seed(5)
    table = torch.randn(9, 9)
    after = torch.randn(3)
    torch.testing.assert_close(bias[0, 0, 0], reference_rpb(4, table), rtol=0, atol=0)
    torch.manual_seed(5)
    RelativeBiasCrossAttention._bias(n_tokens, q)
    assert torch.equal(torch.randn(3), after)  # same number of draws as the reference


def test_relative_bias_attention_random_vs_deterministic():
    torch.manual_seed(0)
    x, y = spikes(T, B, 32, 16, seed=11), spikes(T, B, 32, 16, seed=12)
    fixed = RelativeBiasCrossAttention(32, 8, random_rpb=False)
    assert torch.equal(fixed(x, y), fixed(x, y))
    noisy = RelativeBiasCrossAttention(32, 8, random_rpb=True)
    noisy.load_state_dict(fixed.state_dict())
    torch.manual_seed(1)
    first = noisy.attend(*noisy.qkv(x, y))
    torch.manual_seed(2)
    assert not torch.equal(first, noisy.attend(*noisy.qkv(x, y)))
    with pytest.raises(ValueError, match="square"):
        noisy(spikes(T, B, 32, 12, seed=13), spikes(T, B, 32, 12, seed=14))
