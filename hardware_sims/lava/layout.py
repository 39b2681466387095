"""The one place where NIR's ``(C, H, W)`` layout meets Lava's ``(X, Y, C)`` = ``(W, H, C)``.

Every Lava port the backend creates carries its tensor in NIR layout (C-order, the NIR shape), except the two ports
of Lava's ``Conv`` process, which are ``(W, H, C)``. Connections convert with Lava's virtual ports (applied by the
receiving port, ``lava/magma/core/process/ports/ports.py`` ``TransposePort``/``ReshapePort``): a transpose
``(2, 1, 0)`` between ``(C, H, W)`` and ``(W, H, C)`` (its own inverse) and a reshape where a NIR ``Flatten`` sits
between two processes. Lava's ``Conv`` computes a true convolution (``scipy.signal.convolve2d``, kernel flipped)
with a ``(C_out, W, H, C_in)`` kernel; NIR's Conv2d is torch's cross-correlation with ``(C_out, C_in, H, W)``:
`conv_weight_to_lava` flips and transposes. Pairs (stride, padding, dilation) go from ``(h, w)`` to ``(x, y)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["NIR", "XYC", "to_xyc_shape", "conv_weight_to_lava", "xy_pair", "adapt", "CHW_TO_XYC"]

NIR = "nir"
XYC = "xyc"
CHW_TO_XYC = (2, 1, 0)
"""Axis permutation (C, H, W) -> (W, H, C); it is its own inverse."""


def to_xyc_shape(chw: tuple[int, ...]) -> tuple[int, int, int]:
    """``(C, H, W)`` -> ``(W, H, C)``."""
    c, h, w = chw
    return (int(w), int(h), int(c))


def conv_weight_to_lava(weight: np.ndarray) -> np.ndarray:
    """NIR/torch cross-correlation kernel ``(C_out, C_in/g, kh, kw)`` -> Lava convolution kernel ``(C_out, kw, kh,
    C_in/g)``: flipped in both spatial axes (Lava convolves) and transposed to (X, Y) order."""
    return np.ascontiguousarray(np.asarray(weight)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))


def xy_pair(hw: tuple[int, int]) -> tuple[int, int]:
    """A NIR ``(h, w)`` pair (stride, padding, dilation) in Lava's ``(x, y)`` order."""
    return (int(hw[1]), int(hw[0]))


def adapt(port: Any, src_layout: str, src_shape: tuple[int, ...], dst_layout: str,
          dst_shape: tuple[int, ...]) -> Any:
    """The (virtual) port to connect `port` through so that it feeds a destination of another layout/shape.

    Args:
        port: a Lava OutPort whose messages are the tensor in `src_layout`.
        src_layout: `NIR` or `XYC`; src_shape: the NIR shape of the tensor it carries.
        dst_layout: `NIR` or `XYC`; dst_shape: the NIR shape the destination port expects (same size; a Dense
            expects ``(in_size,)``).

    Returns:
        `port` itself, or a chain of TransposePort/ReshapePort on it.
    """
    src_shape, dst_shape = tuple(src_shape), tuple(dst_shape)
    if int(np.prod(src_shape)) != int(np.prod(dst_shape)):
        raise ValueError(f"cannot connect a tensor of NIR shape {src_shape} to a port of NIR shape {dst_shape}")
    if src_layout == XYC:
        port = port.transpose(CHW_TO_XYC)  # (W, H, C) -> (C, H, W)
    if dst_shape != src_shape:
        port = port.reshape(dst_shape)
    if dst_layout == XYC:
        port = port.transpose(CHW_TO_XYC)  # (C, H, W) -> (W, H, C)
    return port
