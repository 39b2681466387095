"""The emulated processes on torch tensors (``emulate(..., device="cuda")`` or ``"cpu"``): the arithmetic of
`hardware_sims.emulator.procs` / `arith`, written again for torch so that it runs on a GPU.

Same classes, same interface, same dtypes (int32 messages and state in fixed point, float64 in float). Where numpy's
int32 would wrap (a left shift, a sum), the value is computed in int64 and wrapped explicitly (`wrap32`), so the
result never depends on how a device treats signed overflow. Products run in float32/float64 only where every
partial sum is an integer below 2**24 / 2**53 (the same per-step check as the numpy path), so any summation order
(cuBLAS split-K, cuSPARSE) gives the exact integer; TF32 is switched off (`check_exact_matmul`). Where neither
float is exact (int64), the product runs in numpy on the host. Convolutions are im2col (``unfold``) products, never
cuDNN's algorithms (Winograd or FFT would round). Extensions run through their numpy code on the host
(`HostExtension`).

Fixed point is therefore identical to the numpy path, bit for bit (``tests/hardware_sims/emulator/test_emulator_torch.py``
compares them, and the numpy path equals Lava); float agrees up to the last bits of a sum (products summed in
another order), as the numpy path does with Lava.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from hardware_sims.emulator import arith
from hardware_sims.emulator.extensions import ExtensionEmu
from hardware_sims.emulator.procs import ConvOp
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.reference import lava_clip_truncate
from hardware_sims.plan.plan import ProcessSpec

__all__ = ["TorchInputEmu", "TorchSynapseEmu", "TorchNeuronEmu", "TorchDelayEmu", "HostExtension", "wrap32",
           "check_exact_matmul", "to_numpy"]

_I32 = 1 << 32
_I32_HALF = 1 << 31


def check_exact_matmul() -> None:
    """Float32 products must not use TF32 (a 10-bit mantissa would round integer sums)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def to_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def wrap32(x: torch.Tensor) -> torch.Tensor:
    """int64 -> the int32 numpy would hold (modulo 2**32 into [-2**31, 2**31))."""
    return (((x + _I32_HALF) & (_I32 - 1)) - _I32_HALF).to(torch.int32)


def _exact_float(bound: float):
    dtype = arith.exact_dtype(bound)
    return {np.float32: torch.float32, np.float64: torch.float64}.get(dtype)  # None: int64 (host)


class TorchInputEmu:
    """`procs.InputEmu` on a device."""

    def __init__(self, spec: ProcessSpec, fixed: bool, device: torch.device) -> None:
        self.spec, self.fixed, self.device = spec, fixed, device
        self.data: torch.Tensor | None = None

    def start(self, data: np.ndarray) -> None:
        t, b = data.shape[:2]
        host = np.asarray(data).reshape(t, b, -1).astype(np.int32 if self.fixed else np.float64)
        self.data = torch.from_numpy(host).to(self.device)

    def step(self, k: int) -> torch.Tensor:
        return self.data[k] if k < len(self.data) else torch.zeros_like(self.data[0])


class _Conv:
    """`procs.ConvOp` as im2col products on a device (exact in float32/float64 under the synapse's bound)."""

    def __init__(self, weight: np.ndarray, in_shape, out_shape, stride, padding, dilation, groups: int,
                 device: torch.device) -> None:
        self.weight_np = np.asarray(weight)
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.stride, self.padding, self.dilation = tuple(stride), tuple(padding), tuple(dilation)
        self.groups, self.device = int(groups), device
        self.depthwise = self.weight_np.shape[1] == 1 and self.weight_np.shape[0] == self.groups
        self._cache: dict = {}

    def bound(self) -> float:
        return float(np.abs(self.weight_np).reshape(len(self.weight_np), -1).sum(1).max(initial=0.0))

    def _weight(self, dtype) -> torch.Tensor:
        if dtype not in self._cache:
            w = torch.from_numpy(self.weight_np.astype(np.float64)).to(self.device, dtype)
            cog = w.shape[0] // self.groups
            self._cache[dtype] = w if self.depthwise else w.reshape(self.groups, cog, -1)  # (g, cog, cig*kh*kw)
        return self._cache[dtype]

    def __call__(self, x: torch.Tensor, dtype) -> torch.Tensor:
        b = x.shape[0]
        c, h, w = self.in_shape
        co, ho, wo = self.out_shape
        kh, kw = self.weight_np.shape[2:]
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        xp = F.pad(x.reshape(b, c, h, w).to(dtype), (pw, pw, ph, ph))
        k = self._weight(dtype)
        if self.depthwise:  # pools: one kernel per channel, a sum of shifted products
            out = torch.zeros((b, c, ho, wo), dtype=dtype, device=self.device)
            for i in range(kh):
                for j in range(kw):
                    win = xp[:, :, i * dh: i * dh + sh * (ho - 1) + 1: sh, j * dw: j * dw + sw * (wo - 1) + 1: sw]
                    out += win * k[:, 0, i, j].reshape(1, c, 1, 1)
            return out.reshape(b, -1)
        cols = F.unfold(xp, (kh, kw), dilation=(dh, dw), stride=(sh, sw))  # (B, C*kh*kw, L)
        if cols.shape[-1] != ho * wo:
            raise ValueError(f"conv output {cols.shape[-1]} positions, expected {ho}x{wo}")
        cig = c // self.groups
        span = cig * kh * kw
        cols = cols.reshape(b, self.groups, span, ho * wo).transpose(0, 1)  # (g, B, span, L)
        out = torch.matmul(k.unsqueeze(1), cols)  # (g, B, cog, L)
        return out.transpose(0, 1).reshape(b, co * ho * wo)


class TorchSynapseEmu:
    """`procs.SynapseEmu` on a device: `step` returns what Lava sends one step later."""

    def __init__(self, spec: ProcessSpec, fixed: bool, args: dict | None, device: torch.device) -> None:
        self.spec, self.fixed, self.graded, self.device = spec, fixed, bool(spec.graded_in), device
        p = spec.params
        self.conv: _Conv | None = None
        self.weight_exp = 0
        if spec.kind == "conv":
            weight = np.asarray(args["weight"] if fixed else p["weight"])
            self.conv = _Conv(weight, spec.in_shape, spec.shape, p["stride"], p["padding"], p["dilation"],
                              p["groups"], device)
            self.row_bound = self.conv.bound()
            self.matrix = None
        else:
            if fixed:
                mode = args.get("sign_mode")
                mode = None if not mode else int(getattr(mode, "value", mode))
                w = lava_clip_truncate(args["weights"], mode, args.get("num_weight_bits", 8))
                self.weight_exp = int(args["weight_exp"])
            else:
                w = p["weights"]
            self.matrix = w.tocsr() if sp.issparse(w) else np.asarray(w)
            self.row_bound = float(np.asarray(abs(self.matrix).sum(axis=1)).max(initial=0.0))
        self._mats: dict = {}
        self.bound = 0.0

    def _matrix(self, dtype) -> torch.Tensor:
        """``(in, out)`` dense or ``(out, in)`` sparse CSR weights in `dtype` on the device."""
        if dtype not in self._mats:
            if sp.issparse(self.matrix):
                m = self.matrix.astype(np.float64)
                with warnings.catch_warnings():  # "sparse CSR support is in beta"
                    warnings.simplefilter("ignore", UserWarning)
                    self._mats[dtype] = torch.sparse_csr_tensor(
                        torch.from_numpy(m.indptr.astype(np.int64)), torch.from_numpy(m.indices.astype(np.int64)),
                        torch.from_numpy(m.data), size=m.shape, dtype=dtype, device=self.device,
                        check_invariants=False)
            else:
                self._mats[dtype] = torch.from_numpy(np.ascontiguousarray(self.matrix.T, dtype=np.float64)).to(
                    self.device, dtype)
        return self._mats[dtype]

    def _host(self, x: torch.Tensor) -> torch.Tensor:
        """The exact int64 product on the host (sums beyond float64's integers)."""
        xh = to_numpy(x).astype(np.int64)
        if self.conv is not None:

            c = self.conv
            acc = ConvOp(c.weight_np, c.in_shape, c.out_shape, c.stride, c.padding, c.dilation, c.groups)(xh, np.int64)
        else:
            m = self.matrix.astype(np.int64)
            acc = (m @ xh.T).T if sp.issparse(m) else xh @ m.T
        return torch.from_numpy(np.asarray(acc, dtype=np.int64)).to(self.device)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[B, in_size]`` messages received this step -> ``[B, out_size]`` sent next step."""
        if not self.graded:
            x = x != 0
        if self.fixed:
            peak = int(x.to(torch.int64).abs().max()) if self.graded and x.numel() else 1  # |-2**31| in int64
            self.bound = self.row_bound * peak
            dtype = _exact_float(self.bound)
        else:
            dtype = torch.float64
        if dtype is None:
            acc = self._host(x)
        elif self.conv is not None:
            acc = self.conv(x, dtype)
        else:
            m = self._matrix(dtype)
            xd = x.to(dtype)
            acc = (m @ xd.T).T if m.layout == torch.sparse_csr else xd @ m
        if not self.fixed:
            return acc.to(torch.float64)
        acc = acc.to(torch.int64)  # exact integers
        if self.conv is not None:
            if dtype is not None and self.bound < 2 ** (lf.CONV_ACC_BITS - 1):
                return acc.to(torch.int32)  # inside 24 bits: the wrap changes nothing
            return _conv_wrap(acc)
        if dtype is not None and self.bound < 2**31:  # Lava's int32 sum, shifted in int32
            e = self.weight_exp
            return wrap32(acc << e) if e > 0 else (acc >> -e).to(torch.int32)
        if self.graded:
            acc = wrap32(acc).to(torch.int64)
        e = self.weight_exp
        return wrap32(acc << e if e > 0 else acc >> -e)


def _wrap_bits(x: torch.Tensor, bits: int) -> torch.Tensor:
    base = 1 << bits
    return ((x + base // 2) & (base - 1)) - base // 2


def _conv_wrap(acc: torch.Tensor) -> torch.Tensor:
    """`arith.conv_wrap`: out of int32 -> ``-2**31`` (x86's conversion), then the 24-bit wrap."""
    out = _wrap_bits(acc, lf.CONV_ACC_BITS)
    inside = (acc >= -_I32_HALF) & (acc < _I32_HALF)
    out = torch.where(inside, out, torch.full_like(out, int(arith.wrap_bits(-_I32_HALF, lf.CONV_ACC_BITS))))
    return out.to(torch.int32)


def _decay(x: torch.Tensor, factor: int) -> torch.Tensor:
    """``int32(sign(p) (|p| >> 12))``, ``p = int64(x) factor``: rounded toward zero (`arith._decay`)."""
    prod = x.to(torch.int64) * factor
    return (prod + ((prod >> 63) & (lf.DECAY_UNITY - 1))) >> lf.DECAY_BITS


class TorchNeuronEmu:
    """`procs.NeuronEmu` on a device: ``LIFReset``'s step, int32 semantics computed in int64 and wrapped."""

    def __init__(self, spec: ProcessSpec, fixed: bool, args: dict | None, device: torch.device) -> None:
        self.spec, self.fixed, self.device = spec, fixed, device
        self.size = math.prod(spec.shape)
        p = spec.params
        if fixed:
            self.du, self.dv, self.vth = int(args["du"]), int(args["dv"]), int(args["vth"])
            mant = np.broadcast_to(np.asarray(args["bias_mant"]).reshape(-1), (self.size,))
            bias = arith.effective_bias(mant, args["bias_exp"]).astype(np.int64)
        else:
            self.du, self.dv, self.vth = float(p["du"]), float(p["dv"]), float(p["vth"])
            bias = np.broadcast_to(np.asarray(p["bias"], dtype=np.float64).reshape(-1), (self.size,))
        self.bias = torch.from_numpy(np.array(bias)).to(device)  # a writable copy
        self.has_bias = bool(np.any(bias))
        self.u = self.v = None

    def start(self, batch: int) -> None:
        dtype = torch.int32 if self.fixed else torch.float64
        self.u = torch.zeros((batch, self.size), dtype=dtype, device=self.device)
        self.v = torch.zeros((batch, self.size), dtype=dtype, device=self.device)

    def step(self, a_in: torch.Tensor) -> torch.Tensor:
        if not self.fixed:  # PyLifResetModelFloat, in its order of operations
            u = self.u * (1 - self.du) + a_in
            v = self.v * (1 - self.dv) + u + self.bias
            s = v > self.vth
            self.u, self.v = u, torch.where(s, torch.zeros_like(v), v)
            return s.to(torch.float64)
        m = lf.STATE_LIMIT
        cur = wrap32(a_in.to(torch.int64) << lf.ACT_SHIFT).to(torch.int64)
        fu = lf.DECAY_UNITY - (self.du + lf.DU_OFFSET)
        if fu:
            cur = wrap32(cur + _decay(self.u, fu)).to(torch.int64)
        cur = torch.where(cur > m, cur - 2 * m, torch.where(cur <= -m, cur + 2 * m, cur))
        fv = lf.DECAY_UNITY - (self.dv + lf.DV_OFFSET)
        v = self.v.to(torch.int64) if fv == lf.DECAY_UNITY else _decay(self.v, fv)
        v = v + cur
        if self.has_bias:
            v = v + self.bias
        v = wrap32(v).clamp_(lf.V_MIN, lf.V_MAX)
        s = v > (self.vth << lf.VTH_SHIFT)
        self.u, self.v = cur.to(torch.int32), v.masked_fill_(s, 0)
        return s.to(torch.int32)


class TorchDelayEmu:
    """`procs.DelayEmu` on a device."""

    def __init__(self, spec: ProcessSpec, fixed: bool, device: torch.device) -> None:
        self.spec, self.fixed, self.device = spec, fixed, device
        steps = np.asarray(spec.params["steps"], dtype=np.int64).reshape(-1)
        self.steps = steps
        self.uniform = bool(steps.size == 0 or np.all(steps == steps[0]))
        self.depth = int(steps.max()) + 1 if steps.size else 1
        self._steps_t = torch.from_numpy(steps).to(device)
        self._cols = torch.arange(steps.size, device=device)
        self.buffer = None
        self.k = 0

    def start(self, batch: int) -> None:
        dtype = torch.int32 if self.fixed else torch.float64
        self.buffer = torch.zeros((self.depth, batch, self.steps.size), dtype=dtype, device=self.device)
        self.k = 0

    def step(self, x: torch.Tensor) -> torch.Tensor:
        slot = self.k % self.depth
        self.buffer[slot] = x
        self.k += 1
        if self.uniform:
            lag = int(self.steps[0]) if self.steps.size else 0
            return self.buffer[(slot - lag) % self.depth].clone()
        rows = (slot - self._steps_t) % self.depth
        return self.buffer[rows, :, self._cols].T.clone()


class HostExtension:
    """An `ExtensionEmu` (numpy, on the host) fed from and returning device tensors."""

    def __init__(self, spec: ProcessSpec, fixed: bool, args: dict | None, device: torch.device) -> None:
        self.inner = ExtensionEmu(spec, fixed, args)
        self.spec, self.fixed, self.device = spec, fixed, device
        self.ports, self.in_shapes = self.inner.ports, self.inner.in_shapes

    def start(self, batch: int) -> None:
        self.inner.start(batch)

    def step(self, received: dict) -> torch.Tensor:
        out = self.inner.step({p: to_numpy(x) for p, x in received.items()})
        return torch.from_numpy(np.ascontiguousarray(out)).to(self.device)
