"""NIR's linear nodes as numpy operators: the synapse layers of the Lava backend.

Every linear node (Affine, Linear, Conv1d, Conv2d, SumPool2d, AvgPool2d) becomes a `LinearOp` over one sample in NIR
layout (C-order flattening of the NIR shape):

* ``kind="matrix"``: ``y = M @ x`` with ``M`` a ``(out_size, in_size)`` scipy CSR matrix. Affine/Linear (a 2-D weight
  acting on the last axis, ``kron(I, W)``; a ``[..., out, in]`` weight block-diagonal over its leading axes) and
  Conv1d (a banded matrix: snnav's decision, because Lava's ``Conv`` runs one scipy ``convolve2d`` per pair of
  channels and is slow for token tensors; see SEMANTICS.md). Becomes a Lava ``Dense``, or ``Sparse`` when at least
  `SPARSE_MIN_ZEROS` of the entries are zero.
* ``kind="conv"``: a 2-D cross-correlation (`ConvGeometry`, torch layout) that becomes a Lava ``Conv``; SumPool2d is
  the same with a ones kernel and ``groups = C``, AvgPool2d with ``1/(kh*kw)``. A Conv2d whose padding is not
  symmetric (``padding="same"`` with an even kernel) falls back to a matrix.

The node's own bias is not part of the operator: Lava synapses have no bias, so the lowering carries it as a constant
to the consuming neuron (`hardware_sims.plan.lowering`). `scaled` folds factors into the weights: a row
factor (per output element: the consumer's input gain, a Scale after the layer) and a column factor (per input
element: a Scale before it). A conv keeps its kernel form only if both factors are constant per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp

from hardware_sims.plan.errors import UnsupportedGraphError

__all__ = ["SPARSE_MIN_ZEROS", "ConvGeometry", "LinearOp", "linear_op", "op_matrix", "apply_op", "scaled"]

SPARSE_MIN_ZEROS = 0.9
"""A matrix with at least this fraction of zero entries becomes a Lava ``Sparse`` instead of a ``Dense``."""


@dataclass(frozen=True)
class ConvGeometry:
    """A 2-D cross-correlation as torch computes it (NIR's Conv2d semantics).

    Attributes:
        weight: ``(C_out, C_in / groups, kh, kw)`` float64.
        stride, dilation: ``(sh, sw)``, ``(dh, dw)``.
        padding: ``(top, bottom, left, right)`` zero padding.
        groups: channel groups.
    """

    weight: np.ndarray
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def symmetric(self) -> bool:
        """True when Lava's ``Conv`` (one padding per axis) can express the padding."""
        top, bottom, left, right = self.padding
        return top == bottom and left == right


@dataclass(frozen=True)
class LinearOp:
    """One synapse layer over one sample, NIR layout. Exactly one of `matrix` / `conv` is set."""

    node: str
    kind: str  # "matrix" | "conv"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    matrix: sp.csr_matrix | None = None
    conv: ConvGeometry | None = None

    @property
    def in_size(self) -> int:
        return math.prod(self.in_shape)

    @property
    def out_size(self) -> int:
        return math.prod(self.out_shape)


def _f64(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _pair(value: Any, what: str, name: str) -> tuple[int, int]:
    arr = np.atleast_1d(np.asarray(value)).astype(np.int64)
    if arr.size == 1:
        arr = np.repeat(arr, 2)
    if arr.shape != (2,):
        raise UnsupportedGraphError(f"node {name!r}: {what} must be an int or 2 ints, found {value!r}")
    return int(arr[0]), int(arr[1])


def _padding(value: Any, kernel: tuple[int, int], dilation: tuple[int, int], stride: tuple[int, int], name: str):
    """``(top, bottom, left, right)`` from NIR's int / pair / 'same' / 'valid'."""
    if isinstance(value, (str, bytes, np.str_)):
        mode = value.decode() if isinstance(value, bytes) else str(value)
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode != "same" or stride != (1, 1):
            raise UnsupportedGraphError(
                f"node {name!r}: padding {mode!r} with stride {stride}; expected integers, 'valid', or 'same' with "
                "stride 1 (torch's rule). Export explicit integer padding"
            )
        pads = []
        for k, d in zip(kernel, dilation):
            total = d * (k - 1)
            pads += [total // 2, total - total // 2]  # torch puts the extra zero at the end
        return tuple(pads)
    ph, pw = _pair(value, "padding", name)
    return (ph, ph, pw, pw)


def _conv_out_shape(in_shape: tuple[int, ...], geom: ConvGeometry, name: str) -> tuple[int, int, int]:
    _, h, w = in_shape
    kh, kw = geom.weight.shape[2:]
    top, bottom, left, right = geom.padding
    ho = (h + top + bottom - geom.dilation[0] * (kh - 1) - 1) // geom.stride[0] + 1
    wo = (w + left + right - geom.dilation[1] * (kw - 1) - 1) // geom.stride[1] + 1
    if ho < 1 or wo < 1:
        raise UnsupportedGraphError(f"node {name!r}: input {in_shape} is smaller than the kernel; output {ho}x{wo}")
    return (geom.weight.shape[0], int(ho), int(wo))


def _affine(name: str, node: nir.Affine | nir.Linear, in_shape: tuple[int, ...]) -> LinearOp:
    w = _f64(node.weight)
    if w.ndim < 2 or in_shape[-1:] != (w.shape[-1],):
        raise UnsupportedGraphError(
            f"node {name!r}: weight {w.shape} must be [..., out, in] with in = the input's last axis; input {in_shape}"
        )
    lead = tuple(in_shape[:-1])
    if w.ndim == 2:
        blocks = [sp.csr_matrix(w)] * math.prod(lead)
    elif tuple(w.shape[:-2]) == lead:
        blocks = [sp.csr_matrix(w[idx]) for idx in np.ndindex(*lead)]
    else:
        raise UnsupportedGraphError(
            f"node {name!r}: a weight {w.shape} with leading axes needs an input whose leading axes equal them; "
            f"found input {in_shape}. Broadcast the weight before export"
        )
    matrix = sp.block_diag(blocks, format="csr") if len(blocks) != 1 else blocks[0]
    return LinearOp(name, "matrix", in_shape, (*lead, w.shape[-2]), matrix=sp.csr_matrix(matrix))


def _conv_geometry(name: str, node: Any, nd: int) -> ConvGeometry:
    weight = _f64(node.weight)
    if nd == 1:
        weight = weight[:, :, None, :]  # (C_out, C_in/g, 1, k): a conv over a height-1 image
        stride = (1, int(np.atleast_1d(node.stride)[0]))
        dilation = (1, int(np.atleast_1d(node.dilation)[0]))
        pad = node.padding
        if not isinstance(pad, (str, bytes, np.str_)):
            pad = (0, int(np.atleast_1d(pad)[0]))
        padding = _padding(pad, weight.shape[2:], dilation, stride, name)
    else:
        stride, dilation = _pair(node.stride, "stride", name), _pair(node.dilation, "dilation", name)
        padding = _padding(node.padding, weight.shape[2:], dilation, stride, name)
    return ConvGeometry(weight, stride, padding, dilation, int(np.asarray(node.groups)))


def _pool_geometry(name: str, node: Any, channels: int, average: bool) -> ConvGeometry:
    kh, kw = _pair(node.kernel_size, "kernel_size", name)
    value = 1.0 / (kh * kw) if average else 1.0  # AvgPool2d counts padded zeros (torch's count_include_pad=True)
    ph, pw = _pair(node.padding, "padding", name)
    weight = np.full((channels, 1, kh, kw), value)
    return ConvGeometry(weight, _pair(node.stride, "stride", name), (ph, ph, pw, pw), (1, 1), channels)


def linear_op(name: str, node: Any, in_shape: tuple[int, ...]) -> LinearOp:
    """The `LinearOp` of a NIR linear node fed a tensor of NIR shape `in_shape` (bias excluded).

    Raises:
        UnsupportedGraphError: shapes that do not fit, or a weight layout the backend does not map.
    """
    in_shape = tuple(int(d) for d in in_shape)
    if isinstance(node, (nir.Affine, nir.Linear)):
        return _affine(name, node, in_shape)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        nd = 1 if isinstance(node, nir.Conv1d) else 2
        if len(in_shape) != nd + 1:
            raise UnsupportedGraphError(f"node {name!r}: Conv{nd}d expects a (C, {'N' if nd == 1 else 'H, W'}) "
                                        f"input, found shape {in_shape}")
        geom = _conv_geometry(name, node, nd)
        image = in_shape if nd == 2 else (in_shape[0], 1, in_shape[1])
        if geom.weight.shape[1] * geom.groups != image[0]:
            expected = geom.weight.shape[1] * geom.groups
            raise UnsupportedGraphError(f"node {name!r}: weight {geom.weight.shape} with groups={geom.groups} "
                                        f"expects {expected} input channels, found {image[0]}")
        out = _conv_out_shape(image, geom, name)
        op = LinearOp(name, "conv", image, out, conv=geom)
        if nd == 1 or not geom.symmetric:
            matrix = op_matrix(op)
            return LinearOp(name, "matrix", in_shape, out if nd == 2 else (out[0], out[2]), matrix=matrix)
        return op
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        if len(in_shape) != 3:
            raise UnsupportedGraphError(f"node {name!r}: {type(node).__name__} expects (C, H, W), found {in_shape}")
        geom = _pool_geometry(name, node, in_shape[0], isinstance(node, nir.AvgPool2d))
        return LinearOp(name, "conv", in_shape, _conv_out_shape(in_shape, geom, name), conv=geom)
    raise TypeError(f"node {name!r}: {type(node).__name__} is not a linear node")


def node_bias(node: Any, out_shape: tuple[int, ...]) -> np.ndarray | None:
    """The node's bias broadcast to its NIR output shape (per channel for convolutions), or None."""
    bias = getattr(node, "bias", None)
    if bias is None:
        return None
    bias = _f64(bias)
    if not np.any(bias):
        return None
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        bias = bias.reshape((-1,) + (1,) * (len(out_shape) - 1))
    return np.broadcast_to(bias, out_shape).copy()


def _conv_matrix(geom: ConvGeometry, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> sp.csr_matrix:
    """The cross-correlation as a ``(C_out*Ho*Wo, C_in*H*W)`` matrix (C-order indices)."""
    c_in, h, w = in_shape
    c_out, ho, wo = out_shape
    _, cig, kh, kw = geom.weight.shape
    cog = c_out // geom.groups
    co, ci_l, a, b, i, j = np.meshgrid(np.arange(c_out), np.arange(cig), np.arange(kh), np.arange(kw),
                                       np.arange(ho), np.arange(wo), indexing="ij", sparse=True)
    ci = (co // cog) * cig + ci_l
    y = i * geom.stride[0] - geom.padding[0] + a * geom.dilation[0]
    x = j * geom.stride[1] - geom.padding[2] + b * geom.dilation[1]
    full = np.broadcast_shapes(co.shape, ci_l.shape, a.shape, b.shape, i.shape, j.shape)
    valid = np.broadcast_to((y >= 0) & (y < h) & (x >= 0) & (x < w), full)
    rows = np.broadcast_to((co * ho + i) * wo + j, full)[valid]
    cols = np.broadcast_to((ci * h + y) * w + x, full)[valid]
    vals = np.broadcast_to(geom.weight[co, ci_l, a, b], full)[valid]
    return sp.csr_matrix((vals, (rows, cols)), shape=(c_out * ho * wo, c_in * h * w))


def op_matrix(op: LinearOp) -> sp.csr_matrix:
    """The operator as a ``(out_size, in_size)`` CSR matrix in NIR (C-order) indexing."""
    if op.kind == "matrix":
        return op.matrix
    return _conv_matrix(op.conv, op.in_shape, op.out_shape)


def apply_op(op: LinearOp, x: np.ndarray) -> np.ndarray:
    """``op(x)`` for one sample ``x`` of shape `op.in_shape` (used to carry a constant bias through a layer)."""
    x = np.broadcast_to(_f64(x), op.in_shape)
    return np.asarray(op_matrix(op) @ x.reshape(-1)).reshape(op.out_shape)


def _per_channel(factor: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """Per-channel values of a factor broadcast to (C, H, W), or None if it varies within a channel."""
    full = np.broadcast_to(_f64(factor), shape).reshape(shape[0], -1)
    return full[:, 0].copy() if np.all(full == full[:, :1]) else None


def scaled(op: LinearOp, row: np.ndarray | None = None, col: np.ndarray | None = None) -> LinearOp:
    """``diag(row) @ op @ diag(col)``: `row` broadcasts to `op.out_shape`, `col` to `op.in_shape` (None = 1)."""
    if row is None and col is None:
        return op
    if op.kind == "conv":
        rows = np.ones(op.out_shape[0]) if row is None else _per_channel(row, op.out_shape)
        cols = np.ones(op.in_shape[0]) if col is None else _per_channel(col, op.in_shape)
        if rows is not None and cols is not None:
            g = op.conv
            cog, cig = op.out_shape[0] // g.groups, g.weight.shape[1]
            ci = (np.arange(op.out_shape[0])[:, None] // cog) * cig + np.arange(cig)[None, :]  # (C_out, C_in/g)
            weight = g.weight * rows[:, None, None, None] * cols[ci][:, :, None, None]
            return replace(op, conv=replace(g, weight=weight))
        op = LinearOp(op.node, "matrix", op.in_shape, op.out_shape, matrix=op_matrix(op))
    matrix = op.matrix
    if row is not None:
        matrix = sp.diags(np.broadcast_to(_f64(row), op.out_shape).reshape(-1)) @ matrix
    if col is not None:
        matrix = matrix @ sp.diags(np.broadcast_to(_f64(col), op.in_shape).reshape(-1))
    return replace(op, matrix=sp.csr_matrix(matrix))
