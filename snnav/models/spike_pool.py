"""Max-pooling of binary spikes, 3x3 / stride 2 / padding 1, as a depthwise convolution (the SPS stem's pool).

``nn.MaxPool2d`` on CPU walks each window with scalar code and spends more time than the convolution before it.
For input in {0, 1} the window can be read at once: a depthwise 3x3 stride-2 convolution with weights
``2^(8 - k)`` (k = 3 kh + kw, the window offset in row-major order) turns each window into a 9-bit code

    code[n, c, i, j] = sum_k x[n, c, 2i - 1 + kh, 2j - 1 + kw] * 2^(8 - k)      (zero padding)

an integer below 2^9, so every product and partial sum is exact in float32/float64 whatever the summation order.
Then ``max = min(code, 1)``, and the element ATen's max-pool picks (the first maximum in row-major window order,
ties kept by the strict ``>``) is the highest set bit of ``code``, or, for an all-zero window, the window's first
in-bounds element. Backward feeds those indices to ATen's own max-pool backward, so values and gradients are
bit-identical to ``nn.MaxPool2d(3, 2, 1)`` (``tests/snnav/models/test_optimized_equivalence.py``).

Only the 9-bit code is kept for backward (a quarter of the input), not the input and int64 indices that
``nn.MaxPool2d`` keeps. Input that is not binary gets wrong results: use this only after a neuron that emits
{0, 1} (``MultiStepLIF`` does). Off CPU, or for dtypes that cannot hold 511 exactly, ``nn.MaxPool2d`` runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["SpikeMaxPool2d"]

_EXACT_DTYPES = (torch.float32, torch.float64)  # integers up to 511 are exact; CPU conv kernels exist


def _first_set_offsets() -> tuple[Tensor, Tensor]:
    """``(kh, kw)`` of the highest set bit of every 9-bit code (code 0 -> (0, 0), the window's corner)."""
    kh, kw = torch.zeros(512, dtype=torch.long), torch.zeros(512, dtype=torch.long)
    for code in range(1, 512):
        k = 8 - (code.bit_length() - 1)  # bit 8 - k set <=> offset k is a spike; the highest bit is the first k
        kh[code], kw[code] = divmod(k, 3)
    return kh, kw


_KH, _KW = _first_set_offsets()
_BIT_WEIGHTS = 2.0 ** torch.arange(8, -1, -1, dtype=torch.float64).view(1, 1, 3, 3)  # (1, 1, 3, 3): 2^(8 - k)


def window_codes(x: Tensor) -> Tensor:
    """9-bit code of every 3x3 / stride-2 / pad-1 window of binary ``x`` ``(N, C, H, W)``; ``(N, C, H', W')``."""
    weight = _BIT_WEIGHTS.to(device=x.device, dtype=x.dtype).expand(x.shape[1], 1, 3, 3)  # depthwise
    return F.conv2d(x, weight, stride=2, padding=1, groups=x.shape[1])


def argmax_indices(code: Tensor, width: int) -> Tensor:
    """Flat ``h * width + w`` index of the element ``nn.MaxPool2d(3, 2, 1)`` selects in each window (int64)."""
    h_out, w_out = code.shape[-2:]
    code_i = code.to(torch.int32)  # (N, C, H', W')
    offsets = _KH.to(code.device) * width + _KW.to(code.device)  # (512,) int64
    idx = torch.index_select(offsets, 0, code_i.flatten()).view(code.shape)  # a gather; much faster than offsets[i]
    rows = torch.arange(h_out, device=code.device) * 2 - 1
    cols = torch.arange(w_out, device=code.device) * 2 - 1
    idx += rows[:, None] * width + cols  # window corner (2i - 1, 2j - 1), one outside the input at the top / left
    # An all-zero window keeps its first in-bounds element: row 0 rather than -1 at the top, column 0 at the left.
    # A set bit is always in bounds (the padding is zero), so only empty border windows move.
    idx[..., 0, :] += (code_i[..., 0, :] == 0) * width
    idx[..., :, 0] += code_i[..., :, 0] == 0
    return idx


class _SpikeMaxPoolFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        code = window_codes(x)  # (N, C, H', W')
        ctx.save_for_backward(code)
        ctx.in_shape = x.shape
        return code.clamp_max(1.0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (code,) = ctx.saved_tensors
        idx = argmax_indices(code, ctx.in_shape[-1])
        # ATen's backward reads only the input's shape and layout: a broadcast scalar stands in for the freed input.
        like_input = grad.new_zeros(()).expand(ctx.in_shape)
        return torch.ops.aten.max_pool2d_with_indices_backward(
            grad, like_input, [3, 3], [2, 2], [1, 1], [1, 1], False, idx
        )


class SpikeMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d(kernel_size=3, stride=2, padding=1)`` for binary {0, 1} input ``(N, C, H, W)``.

    Same values and gradients as the parent (module docstring has the method); a subclass, so code that inspects
    pooling layers (exporters mapping max-pool over spikes to OR) treats it the same.
    """

    def __init__(self) -> None:
        super().__init__(kernel_size=3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type != "cpu" or x.dim() != 4 or x.dtype not in _EXACT_DTYPES:
            return super().forward(x)
        return _SpikeMaxPoolFunction.apply(x)
