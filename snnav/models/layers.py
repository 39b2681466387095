"""Building blocks shared by every model: conv stems (SPS, ShallowSPS), MLP, MLPBlock and spiking self-attention.

All blocks take ``neuron_layer``, a zero-argument callable returning a multi-step spiking module over
``[T, B, ...]`` (default :class:`snnav.neurons.MultiStepLIF`), so a new neuron needs no edit here.
Convolutions and batch norm run on the merged ``(T*B)`` dimension, so BN statistics are shared over time and
batch (docs/scmrl.md §7); neurons run time-first. Token tensors use the layout ``(T, B, C, N)``.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor, nn

from snnav.errors import ConfigError
from snnav.models.spike_pool import SpikeMaxPool2d
from snnav.neurons import MultiStepLIF

__all__ = [
    "NeuronLayer",
    "ConvBNLIF1d",
    "SPS",
    "ShallowSPS",
    "MLP",
    "MLPBlock",
    "multihead_spike_product",
    "SSA",
    "SpikformerBlock",
    "ATTN_SCALE",
    "STEMS",
    "check_choice",
    "make_stem",
    "make_spike_pool",
]

NeuronLayer = Callable[[], nn.Module]

ATTN_SCALE = 0.25
"""Fixed attention scale of the reference, independent of the head size d (docs/scmrl.md §1.3)."""


def check_choice(key: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {value!r}. Pick one of those.")


class ConvBNLIF1d(nn.Module):
    """1x1 Conv1d -> BatchNorm1d -> spiking neuron over ``(T, B, C_in, N)`` -> ``(T, B, C_out, N)``."""

    def __init__(self, c_in: int, c_out: int, neuron_layer: NeuronLayer = MultiStepLIF, bias: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=1, bias=bias)
        self.bn = nn.BatchNorm1d(c_out)
        self.lif = neuron_layer()

    def forward(self, x: Tensor) -> Tensor:
        t, b = x.shape[:2]
        y = self.bn(self.conv(x.flatten(0, 1)))  # (T*B, C_out, N)
        return self.lif(y.reshape(t, b, *y.shape[1:]))  # (T, B, C_out, N)


def make_spike_pool(neuron: nn.Module) -> nn.Module:
    """MaxPool(3, 2, 1) for the output of ``neuron``: :class:`SpikeMaxPool2d` behind the fused :class:`MultiStepLIF`.

    The fast pool needs binary input, which ``MultiStepLIF`` guarantees; any other neuron, and the reference path
    (``fused=False``), get ``nn.MaxPool2d``. Both compute the same values and gradients.
    """
    if isinstance(neuron, MultiStepLIF) and neuron.fused:
        return SpikeMaxPool2d()
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


class ConvStage(nn.Module):
    """Conv3x3 (no bias) -> BN2d -> neuron [-> MaxPool(3, 2, 1)] over ``(T, B, C, H, W)``."""

    def __init__(self, c_in: int, c_out: int, neuron_layer: NeuronLayer, pool: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.lif = neuron_layer()
        self.pool = make_spike_pool(self.lif) if pool else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        t, b = x.shape[:2]
        y = self.bn(self.conv(x.flatten(0, 1)))  # (T*B, C_out, H, W)
        s = self.lif(y.reshape(t, b, *y.shape[1:]))  # (T, B, C_out, H, W)
        s = self.pool(s.flatten(0, 1))  # (T*B, C_out, H', W')
        return s.reshape(t, b, *s.shape[1:])  # (T, B, C_out, H', W')


class PatchSplitting(nn.Module):
    """Stages of pooled conv stages, then the conv relative position embedding (RPE) added as spikes."""

    def __init__(self, channels: list[int], neuron_layer: NeuronLayer) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            ConvStage(c_in, c_out, neuron_layer, pool=True) for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.rpe = ConvStage(channels[-1], channels[-1], neuron_layer, pool=False)
        self.in_channels = channels[0]
        self.downsample = 2 ** len(self.stages)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(T, B, C_in, H, W)`` to tokens ``(T, B, D, N)`` with N = (H/s)(W/s); values in {0, 1, 2}."""
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects (T, B, C={self.in_channels}, H, W); got shape {tuple(x.shape)}. "
                "Check the time-first layout and the in_channels setting."
            )
        h, w = x.shape[-2:]
        if h % self.downsample or w % self.downsample:
            raise ValueError(
                f"{type(self).__name__} needs H and W divisible by {self.downsample}; got {h}x{w}. "
                "Resize the input or pick the other stem."
            )
        for stage in self.stages:
            x = stage(x)  # (T, B, C_i, H_i, W_i)
        x = x + self.rpe(x)  # (T, B, D, H/s, W/s)
        return x.flatten(3)  # (T, B, D, N)


class SPS(PatchSplitting):
    """Spiking Patch Splitting (docs/scmrl.md §1.2): in -> D/8 -> D/4 -> D/2 -> D, each pooled /2, then RPE.

    N = HW/256 tokens.
    """

    def __init__(self, in_channels: int, embed_dim: int, neuron_layer: NeuronLayer = MultiStepLIF) -> None:
        if embed_dim % 8:
            raise ConfigError(f"the sps stem needs embed_dim divisible by 8; got {embed_dim}. Use a multiple of 8.")
        d = embed_dim
        super().__init__([in_channels, d // 8, d // 4, d // 2, d], neuron_layer)


class ShallowSPS(PatchSplitting):
    """Two-stage stem used for MNISTDVS-NTIDIGITS (docs/scmrl.md §1.2): in -> D/2 -> D, pooled /2 twice; N = HW/16."""

    def __init__(self, in_channels: int, embed_dim: int, neuron_layer: NeuronLayer = MultiStepLIF) -> None:
        if embed_dim % 2:
            raise ConfigError(f"the shallow stem needs an even embed_dim; got {embed_dim}. Use an even number.")
        super().__init__([in_channels, embed_dim // 2, embed_dim], neuron_layer)


STEMS = ("sps", "shallow")


def make_stem(stem: str, in_channels: int, embed_dim: int, neuron_layer: NeuronLayer = MultiStepLIF) -> nn.Module:
    """Build the tokenizer named by ``stem``: ``"sps"`` (N = HW/256) or ``"shallow"`` (N = HW/16)."""
    check_choice("stem", stem, STEMS)
    return (SPS if stem == "sps" else ShallowSPS)(in_channels, embed_dim, neuron_layer)


class MLP(nn.Module):
    """Conv1d(C, rC, k1, bias) -> BN -> neuron -> Conv1d(rC, C, k1, bias) -> BN -> neuron (docs/scmrl.md §1.4)."""

    def __init__(self, dim: int, mlp_ratio: int = 4, neuron_layer: NeuronLayer = MultiStepLIF) -> None:
        super().__init__()
        hidden = dim * mlp_ratio
        self.fc1 = ConvBNLIF1d(dim, hidden, neuron_layer, bias=True)
        self.fc2 = ConvBNLIF1d(hidden, dim, neuron_layer, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1(x))  # (T, B, C, N)


class MLPBlock(nn.Module):
    """``x + MLP(x)`` over ``(T, B, C, N)``."""

    def __init__(self, dim: int, mlp_ratio: int = 4, neuron_layer: NeuronLayer = MultiStepLIF) -> None:
        super().__init__()
        self.mlp = MLP(dim, mlp_ratio, neuron_layer)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mlp(x)


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(T, B, C, N)`` -> ``(T, B, h, N, d)`` with channel c = head * d + j."""
    t, b, c, n = x.shape
    return x.transpose(2, 3).reshape(t, b, n, num_heads, c // num_heads).transpose(2, 3)  # (T, B, h, N, d)


def multihead_spike_product(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``(q @ k^T) @ v`` over the last two dims, without softmax.

    With no softmax the product is associative, so it is evaluated as ``q @ (k^T @ v)`` when that is cheaper
    (tokens > head dim). For binary q, k, v every partial sum is an integer below 2^24, so both orders are exact
    in float32 and give bit-identical results; for graded (non-binary) spikes they agree to float rounding.
    """
    n, d = q.shape[-2], v.shape[-1]
    if n > d:
        return q @ (k.transpose(-2, -1) @ v)  # (..., N, d) @ (..., d, d) -> (..., N, d)
    return (q @ k.transpose(-2, -1)) @ v  # (..., N, N) @ (..., N, d) -> (..., N, d)


class SSA(nn.Module):
    """Spiking (self- or cross-) attention over tokens, per time step (docs/scmrl.md §1.3, §1.5 spatial branch).

    ``Q = LIF(BN(Wq x))``, ``K = LIF(BN(Wk y))``, ``V = LIF(BN(Wv y))`` (binary), split into h heads;
    ``out = LIF_proj(BN(Wp LIF_attn(0.25 * Q K^T V)))``, binary ``(T, B, C, N)``. ``y`` defaults to ``x``.
    """

    def __init__(self, dim: int, num_heads: int = 16, neuron_layer: NeuronLayer = MultiStepLIF) -> None:
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embed_dim must be divisible by num_heads; got {dim} and {num_heads}. Change either.")
        self.num_heads = num_heads
        self.q = ConvBNLIF1d(dim, dim, neuron_layer)
        self.k = ConvBNLIF1d(dim, dim, neuron_layer)
        self.v = ConvBNLIF1d(dim, dim, neuron_layer)
        self.attn_lif = neuron_layer()
        self.proj = ConvBNLIF1d(dim, dim, neuron_layer)

    def qkv(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Binary Q from x and K, V from y, each ``(T, B, C, N)``."""
        return self.q(x), self.k(y), self.v(y)

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """``0.25 Q K^T V`` per head over tokens; ``(T, B, C, N)`` in, ``(T, B, C, N)`` out."""
        t, b, c, n = q.shape
        h = self.num_heads
        out = multihead_spike_product(split_heads(q, h), split_heads(k, h), split_heads(v, h)) * ATTN_SCALE
        return out.transpose(3, 4).reshape(t, b, c, n)  # (T, B, h, d, N) -> (T, B, C, N), c = head*d + j

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        q, k, v = self.qkv(x, x if y is None else y)
        return self.proj(self.attn_lif(self.attend(q, k, v)))  # (T, B, C, N)


class SpikformerBlock(nn.Module):
    """Unimodal Spikformer block: ``x = x + SSA(x); x = x + MLP(x)`` (no LayerNorm: the reference's are unused)."""

    def __init__(
        self, dim: int, num_heads: int = 16, mlp_ratio: int = 4, neuron_layer: NeuronLayer = MultiStepLIF
    ) -> None:
        super().__init__()
        self.attn = SSA(dim, num_heads, neuron_layer)
        self.mlp = MLPBlock(dim, mlp_ratio, neuron_layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x + self.attn(x))  # (T, B, C, N)
