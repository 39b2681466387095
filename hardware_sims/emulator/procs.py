"""One emulated process per plan process kind, vectorised over a batch (``[B, size]`` arrays, NIR C-order).

Each class mirrors the Lava process `hardware_sims.lava.build` makes for the kind, with the arguments
`hardware_sims.fixed_point.prepare.fixed_arguments` gives it in fixed point (or the plan's float parameters):

==========  ==========================================================================================
kind        emulated as
==========  ==========================================================================================
input       `InputEmu`: row t of the sample's data (integers ``rint(x 2**exp)`` in fixed point)
dense       `SynapseEmu`: ``W @ s`` (``s != 0`` for binary input), then `arith.synapse_shift`
sparse      the same with the CSR matrix
conv        `SynapseEmu` with a `ConvOp` (im2col products), then `arith.conv_wrap` (weight_exp ignored)
neuron      `NeuronEmu`: `arith.lif_fixed` / `arith.lif_float`, state zeroed at the live step
delay       `DelayEmu`: a ring buffer zeroed at the live step
==========  ==========================================================================================

Products run as float32/float64 BLAS where that is exact for integers (`arith.exact_dtype` on the worst-case sum),
else in int64. The one step of synapse latency is the engine's business (`engine`), not these classes'.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numpy.lib.stride_tricks import sliding_window_view

from hardware_sims.emulator import arith
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.reference import lava_clip_truncate
from hardware_sims.plan.plan import ProcessSpec

__all__ = ["InputEmu", "SynapseEmu", "ConvOp", "NeuronEmu", "DelayEmu"]


class InputEmu:
    """An Input's messages: the data of NIR step ``k`` at its k-th active step, zeros after the sample's T steps."""

    def __init__(self, spec: ProcessSpec, fixed: bool) -> None:
        self.spec, self.fixed = spec, fixed
        self.data: np.ndarray | None = None  # [T, B, size]

    def start(self, data: np.ndarray) -> None:
        t, b = data.shape[:2]
        dtype = np.int32 if self.fixed else np.float64  # the source's int32 messages (24-bit values)
        self.data = np.asarray(data).reshape(t, b, -1).astype(dtype)

    def step(self, k: int) -> np.ndarray:
        return self.data[k] if k < len(self.data) else np.zeros_like(self.data[0])


class ConvOp:
    """A 2-D cross-correlation (NIR/torch layout, symmetric padding) on ``[B, C*H*W]`` rows, as im2col products."""

    def __init__(self, weight: np.ndarray, in_shape, out_shape, stride, padding, dilation, groups: int) -> None:
        self.weight = np.asarray(weight)
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.stride, self.padding, self.dilation = tuple(stride), tuple(padding), tuple(dilation)
        self.groups = int(groups)
        self._cache: dict = {}

    def bound(self) -> float:
        """Largest ``sum |w|`` over one output element's kernel."""
        return float(np.abs(self.weight).reshape(len(self.weight), -1).sum(1).max(initial=0.0))

    def _weights(self, dtype) -> list[np.ndarray]:
        if dtype not in self._cache:
            cog = self.weight.shape[0] // self.groups
            self._cache[dtype] = [self.weight[g * cog:(g + 1) * cog].reshape(cog, -1).T.astype(dtype)
                                  for g in range(self.groups)]
        return self._cache[dtype]

    def __call__(self, x: np.ndarray, dtype) -> np.ndarray:
        b = x.shape[0]
        c, h, w = self.in_shape
        co, ho, wo = self.out_shape
        kh, kw = self.weight.shape[2:]
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        xp = np.pad(x.reshape(b, c, h, w).astype(dtype, copy=False), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        win = sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(2, 3))
        win = win[:, :, ::sh, ::sw, ::dh, ::dw][:, :, :ho, :wo]  # [B, C, Ho, Wo, kh, kw]
        cig = self.weight.shape[1]
        if cig == 1 and self.weight.shape[0] == self.groups:  # depthwise (pools): one kernel per channel
            k = self.weight[:, 0].astype(dtype)
            out = np.zeros((b, c, ho, wo), dtype=dtype)
            for i in range(kh):
                for j in range(kw):
                    out += win[..., i, j] * k[:, i, j][None, :, None, None]
            return out.reshape(b, -1)
        parts = []
        for g, wg in enumerate(self._weights(dtype)):
            cols = win[:, g * cig:(g + 1) * cig].transpose(0, 2, 3, 1, 4, 5).reshape(b * ho * wo, -1)
            parts.append((cols @ wg).reshape(b, ho, wo, -1))
        out = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        return out.transpose(0, 3, 1, 2).reshape(b, co * ho * wo)


class SynapseEmu:
    """A Dense, Sparse or Conv process: `step` returns what Lava sends one step later (``a_buff``)."""

    def __init__(self, spec: ProcessSpec, fixed: bool, args: dict | None) -> None:
        self.spec, self.fixed, self.graded = spec, fixed, bool(spec.graded_in)
        p = spec.params
        self.conv: ConvOp | None = None
        self.matrix = None
        self.weight_exp = 0
        if spec.kind == "conv":
            weight = np.asarray(args["weight"] if fixed else p["weight"])
            self.conv = ConvOp(weight, spec.in_shape, spec.shape, p["stride"], p["padding"], p["dilation"],
                               p["groups"])
            self.row_bound = self.conv.bound()
        else:
            if fixed:  # what Lava's bit-accurate model does to its weights on the first step
                mode = args.get("sign_mode")
                mode = None if not mode else int(getattr(mode, "value", mode))  # Lava: ``sign_mode or determine``
                w = lava_clip_truncate(args["weights"], mode, args.get("num_weight_bits", 8))
                self.weight_exp = int(args["weight_exp"])
            else:
                w = p["weights"]
            self.matrix = w.tocsr() if sp.issparse(w) else np.asarray(w)
            absw = abs(self.matrix)
            self.row_bound = float(np.asarray(absw.sum(axis=1)).max(initial=0.0))
        self._mats: dict = {}
        self.bound = 0.0

    def _matrix(self, dtype):
        if dtype not in self._mats:
            m = self.matrix.astype(dtype)
            self._mats[dtype] = m if sp.issparse(m) else np.ascontiguousarray(m.T)
        return self._mats[dtype]

    def _dtype(self, x: np.ndarray):
        """The product's dtype, and `bound`: the largest ``|sum|`` this step's messages can give."""
        if not self.fixed:
            return np.float64
        peak = max(abs(int(x.max(initial=0))), abs(int(x.min(initial=0)))) if self.graded else 1
        self.bound = self.row_bound * peak
        return arith.exact_dtype(self.bound)

    def step(self, x: np.ndarray) -> np.ndarray:
        """``x``: ``[B, in_size]`` messages received this step -> ``[B, out_size]`` sent next step."""
        if not self.graded:
            x = x != 0  # Lava's ``s_in.astype(bool)`` for binary input
        dtype = self._dtype(x)
        if self.conv is not None:
            acc = self.conv(x, dtype)
        else:
            m = self._matrix(dtype)
            xd = x.astype(dtype, copy=False)
            acc = (m @ xd.T).T if sp.issparse(m) else xd @ m
        if not self.fixed:
            return np.asarray(acc, dtype=np.float64)
        if self.conv is not None:
            if dtype is not np.int64 and self.bound < 2 ** (lf.CONV_ACC_BITS - 1):
                return acc.astype(np.int32)  # exact and inside 24 bits: the wrap changes nothing
            return arith.conv_wrap(np.asarray(acc).astype(np.int64))
        if dtype is not np.int64 and self.bound < 2**31:  # exact int32 sums: shift in int32 as Lava does
            acc = np.asarray(acc).astype(np.int32)
            e = self.weight_exp
            return acc << np.int32(e) if e > 0 else acc >> np.int32(-e)
        return arith.synapse_shift(np.asarray(acc).astype(np.int64), self.weight_exp, self.graded)


class NeuronEmu:
    """A ``LIFReset`` population: u and v zeroed at the live step, then Lava's LIF step every step."""

    def __init__(self, spec: ProcessSpec, fixed: bool, args: dict | None) -> None:
        self.spec, self.fixed = spec, fixed
        size = math.prod(spec.shape)
        p = spec.params
        if fixed:
            self.du, self.dv, self.vth = int(args["du"]), int(args["dv"]), int(args["vth"])
            mant = np.broadcast_to(np.asarray(args["bias_mant"]).reshape(-1), (size,))
            self.bias = arith.effective_bias(mant, args["bias_exp"])
        else:
            self.du, self.dv, self.vth = float(p["du"]), float(p["dv"]), float(p["vth"])
            self.bias = np.broadcast_to(np.asarray(p["bias"], dtype=np.float64).reshape(-1), (size,))
        self.size = size
        self.u = self.v = None

    def start(self, batch: int) -> None:
        dtype = np.int32 if self.fixed else np.float64  # Lava's u, v Vars
        self.u = np.zeros((batch, self.size), dtype=dtype)
        self.v = np.zeros((batch, self.size), dtype=dtype)

    def step(self, a_in: np.ndarray) -> np.ndarray:
        fn = arith.lif_fixed if self.fixed else arith.lif_float
        self.u, self.v, s = fn(self.u, self.v, a_in, self.du, self.dv, self.vth, self.bias)
        return s.astype(np.int32 if self.fixed else np.float64)


class DelayEmu:
    """snnav's ``Delay``: output ``steps[i]`` steps after the input, zeros before the live step's input."""

    def __init__(self, spec: ProcessSpec, fixed: bool) -> None:
        self.spec, self.fixed = spec, fixed
        steps = np.asarray(spec.params["steps"], dtype=np.int64).reshape(-1)
        self.steps = steps
        self.uniform = bool(steps.size == 0 or np.all(steps == steps[0]))
        self.depth = int(steps.max()) + 1 if steps.size else 1
        self.buffer = None
        self.k = 0

    def start(self, batch: int) -> None:
        size = self.steps.size
        self.buffer = np.zeros((self.depth, batch, size), dtype=np.int32 if self.fixed else np.float64)
        self.k = 0

    def step(self, x: np.ndarray) -> np.ndarray:
        slot = self.k % self.depth
        self.buffer[slot] = x
        self.k += 1
        if self.uniform:
            lag = int(self.steps[0]) if self.steps.size else 0
            return self.buffer[(slot - lag) % self.depth].copy()
        rows = (slot - self.steps) % self.depth
        return self.buffer[rows, :, np.arange(self.steps.size)].T.copy()
