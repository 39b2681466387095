"""Lava's fixed-point arithmetic on a batch: the integer semantics of the bit-accurate models, exactly.

Every function takes int64 arrays with a leading batch axis (any shape broadcasts) holding the values Lava holds in
int32, and reproduces Lava's int32 arithmetic, wrap-arounds included, with explicit `wrap32` where numpy's int32
would wrap in Lava (lava-nc 0.10.0 sources in brackets, paths relative to the ``lava`` package):

* messages travel through int32 channels (``magma/compiler/channels/pypychannel.py``: ``self._array[idx][:] =
  data``), so whatever a process sends is wrapped to int32; an InPort sums its connections in int32
  (``magma/core/model/py/ports.py`` ``PyInPortVectorDense.recv``): `port_sum`;
* Dense/Sparse (``proc/dense/models.py``, ``proc/sparse/models.py`` ``run_spk``): binary input ``W[:, s].sum(1)``
  (an exact int64 sum), graded input ``W.dot(s)`` in int32; then ``<< weight_exp`` (``>>`` when negative):
  `synapse_shift`;
* Conv (``proc/conv/models.py``, ``utils.conv``): a float64 convolution cast to int32, then ``signed_clamp(x, 24)``
  (a wrap modulo 2**24; ``weight_exp`` is not applied): `conv_wrap`;
* LIF (``proc/lif/models.py`` ``AbstractPyLifModelFixed.subthr_dynamics``, ``PyLifResetModelBitAcc``): `lif_fixed`,
  and the float model `lif_float`.

``hardware_sims.fixed_point.reference`` is the same arithmetic one sample at a time in plain int64 (valid while nothing
exceeds int32); the tests compare the two, and compare `lif_fixed` with Lava's own model code in the int32 corners.
"""

from __future__ import annotations

import numpy as np

from hardware_sims.fixed_point import formats as lf

__all__ = ["wrap32", "wrap_bits", "port_sum", "synapse_shift", "conv_wrap", "effective_bias", "lif_fixed",
           "lif_float", "exact_dtype"]

_I32 = np.int64(1) << 32
_I32_HALF = np.int64(1) << 31


def wrap32(x: np.ndarray) -> np.ndarray:
    """What numpy's int32 holds for the int64 value `x`: ``x`` modulo ``2**32`` into ``[-2**31, 2**31)``."""
    return ((np.asarray(x, dtype=np.int64) + _I32_HALF) & (_I32 - 1)) - _I32_HALF


def wrap_bits(x: np.ndarray, bits: int) -> np.ndarray:
    """Lava's ``proc/conv/utils.signed_clamp``: wrap into ``[-2**(bits-1), 2**(bits-1))``."""
    base = np.int64(1) << bits
    return ((np.asarray(x, dtype=np.int64) + base // 2) & (base - 1)) - base // 2


def port_sum(terms: list[np.ndarray], shape: tuple[int, ...], fixed: bool) -> np.ndarray:
    """What an InPort's ``recv`` returns: ``zeros + m1 + m2 + ...`` in connection order (int32 in fixed point:
    the messages are int32 arrays and numpy's int32 sum wraps as Lava's does)."""
    if not terms:
        return np.zeros(shape, dtype=np.int32 if fixed else np.float64)
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


def synapse_shift(acc: np.ndarray, weight_exp: int, graded: bool) -> np.ndarray:
    """A Dense/Sparse accumulation (exact, int64) as sent: ``acc << weight_exp`` (``>>`` if negative), int32.

    Graded input: Lava's ``W.dot(s)`` is int32, so the sum wraps before the shift; binary input: the int64 sum.
    """
    acc = np.asarray(acc, dtype=np.int64)
    if graded:
        acc = wrap32(acc)
    acc = acc << np.int64(weight_exp) if weight_exp > 0 else acc >> np.int64(-weight_exp)
    return acc.astype(np.int32)  # the int32 channel (a modular cast)


def conv_wrap(acc: np.ndarray) -> np.ndarray:
    """Lava's fixed Conv output: the (exact) float64 sum cast to int32 (out of range: ``-2**31``, as x86 converts),
    then wrapped to 24 bits (int32 result)."""
    acc = np.asarray(acc, dtype=np.int64)
    out = wrap_bits(acc, lf.CONV_ACC_BITS)
    inside = (acc >= -_I32_HALF) & (acc < _I32_HALF)
    out = out if inside.all() else np.where(inside, out, wrap_bits(-_I32_HALF, lf.CONV_ACC_BITS))
    return out.astype(np.int32)


def effective_bias(bias_mant: np.ndarray, bias_exp) -> np.ndarray:
    """``AbstractPyLifModelFixed.scale_bias``: ``bias_mant << bias_exp`` (``>>`` when negative), int32."""
    mant = np.asarray(bias_mant, dtype=np.int64)
    exp = np.asarray(bias_exp, dtype=np.int64)
    return wrap32(np.where(exp >= 0, mant << np.maximum(exp, 0), mant >> np.maximum(-exp, 0))).astype(np.int32)


def _decay(x: np.ndarray, factor: int) -> np.ndarray:
    """``int32(sign(p) * (|p| >> 12))`` with ``p = int64(x) * factor``: the product rounded toward zero."""
    prod = x.astype(np.int64) * np.int64(factor)
    return ((prod + ((prod >> 63) & (lf.DECAY_UNITY - 1))) >> lf.DECAY_BITS).astype(np.int32)


def lif_fixed(u: np.ndarray, v: np.ndarray, a_in: np.ndarray, du: int, dv: int, vth: int,
              bias: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of ``PyLifResetModelBitAcc`` (after its reset check), in Lava's int32 arithmetic.

    Args:
        u, v: state; a_in: the int32 sum the InPort received; du, dv, vth: the integer parameters;
        bias: `effective_bias` (broadcasts to `u`).

    Returns:
        ``(u, v, s)``: new int32 state (``v`` reset where it spiked) and the bool spikes.
    """
    u, v = np.asarray(u, dtype=np.int32), np.asarray(v, dtype=np.int32)
    m = lf.STATE_LIMIT
    cur = np.asarray(a_in, dtype=np.int32) << np.int32(lf.ACT_SHIFT)  # int32: wraps as Lava's left_shift
    fu = lf.DECAY_UNITY - (int(du) + lf.DU_OFFSET)
    if fu:
        cur = cur + _decay(u, fu)
    if cur.size and (cur.max() > m or cur.min() <= -m):  # Lava's two np.where, on the int32 sum
        cur = np.where(cur > m, cur - np.int32(2 * m), np.where(cur <= -m, cur + np.int32(2 * m), cur))
    u = cur
    fv = lf.DECAY_UNITY - (int(dv) + lf.DV_OFFSET)
    v = (v if fv == lf.DECAY_UNITY else _decay(v, fv)) + u + np.asarray(bias, dtype=np.int32)
    np.clip(v, lf.V_MIN, lf.V_MAX, out=v)
    s = v > (int(vth) << lf.VTH_SHIFT)
    v[s] = 0
    return u, v, s


def lif_float(u: np.ndarray, v: np.ndarray, a_in: np.ndarray, du: float, dv: float, vth: float,
              bias: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of ``PyLifResetModelFloat``, in its order of operations (``u = u(1-du); u += a; v = v(1-dv) + u +
    bias``; spike ``v > vth``; ``v = 0`` where it spiked)."""
    u = u * (1 - du)
    u = u + a_in
    v = v * (1 - dv) + u + bias
    s = v > vth
    return u, np.where(s, 0.0, v), s


def exact_dtype(bound: float) -> type:
    """The float type whose matrix products are exact for integer sums bounded by `bound` (every partial sum is an
    integer below the mantissa range), or int64 when neither is."""
    if bound < 2**24:
        return np.float32
    if bound < 2**53:
        return np.float64
    return np.int64
