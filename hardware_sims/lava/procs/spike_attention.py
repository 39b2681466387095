"""Lava process for ``snnav.SpikeAttention`` (spiking self-attention ``scale * Q K^T V`` per head, no softmax).

``axis="tokens"`` (per step, latency 0)::

    O[g*d+j, n] = scale * sum_m (sum_i Q[g*d+i, n] K[g*d+i, m]) V[g*d+j, m]

``axis="time"`` (WINDOW, latency W), per token n and head g over the window's steps t, s::

    R[t, g, j, n] = scale * sum_s (sum_i Q_t[g*d+i, n] K_s[g*d+i, n]) V_s[g*d+j, n]

laid out clean (``O_t[g*d+j, n] = R[t, g, j, n]``) or faithful (``(h, W, d)`` head-major read as ``(W, C)``).
Fixed point: ``acc`` is the double sum of ``Q K V`` integer products (exponent ``e_q + e_k + e_v``), the factor is
``scale * gain``. State Vars (time axis): ``steps_seen``, ``q_buf``, ``k_buf``, ``v_buf``, ``out_buf``.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from export.ir.extensions import SpikeAttention
from hardware_sims.extensions import semantics
from hardware_sims.extensions.ports import OUT_BITS, PortFormat
from hardware_sims.lava.procs.base import ExtensionModel, ExtensionProcess

__all__ = ["SpikeAttentionProcess", "PySpikeAttentionModelFloat", "PySpikeAttentionModelFixed"]


class SpikeAttentionProcess(ExtensionProcess):
    """``snnav.SpikeAttention``: InPorts ``q``, ``k``, ``v`` ``(C, N)``; OutPort ``s_out`` ``(C, N)``.

    Args:
        shape: ``(C, N)``.
        num_heads: heads h (divides C).
        scale: the node's constant factor, applied last.
        axis: ``"tokens"`` (per step) or ``"time"`` (WINDOW of `window` steps).
        layout: ``"clean"`` or ``"faithful"`` (time axis only).
        window: 0 for tokens, W > 0 for time.
        in_formats: fixed-point :class:`PortFormat` per port (default: binary spikes).
        out_exp: fixed-point output exponent (default: lossless for a dyadic ``scale * gain``, see ``hardware_sims.extensions.ports``).
        out_bits: fixed-point output width (signed, saturating), default 24.
        gain: extra factor multiplied after ``scale`` (e.g. a consumer's input weight folded in), default 1.
        name: Lava process name.
    """

    PORTS = SpikeAttention.PORTS

    def __init__(self, *, shape, num_heads: int, scale: float, axis: str = "tokens", layout: str = "clean",
                 window: int = 0, in_formats: dict[str, PortFormat] | None = None, out_exp: int | None = None,
                 out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None, **kwargs) -> None:
        sem = semantics.spike_attention(shape=shape, num_heads=num_heads, scale=scale, axis=axis, layout=layout,
                                        window=window, in_formats=in_formats, out_exp=out_exp, out_bits=out_bits,
                                        gain=gain, name=name)
        super().__init__(**sem.params, name=name, **kwargs)
        self._build(dict(sem.in_shapes), sem.out_shape, sem.window, window_vars=True)


@implements(proc=SpikeAttentionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeAttentionModelFloat(ExtensionModel):
    """float64: the sums of products, ``* scale``, then ``* gain`` (when not 1); time axis: then the head layout."""

    PORTS = SpikeAttention.PORTS
    q: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    k: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    v: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int32)
    q_buf: np.ndarray = LavaPyType(np.ndarray, float)
    k_buf: np.ndarray = LavaPyType(np.ndarray, float)
    v_buf: np.ndarray = LavaPyType(np.ndarray, float)
    out_buf: np.ndarray = LavaPyType(np.ndarray, float)

    def evaluate(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        return semantics.spike_attention_float(self.proc_params, q, k, v)


@implements(proc=SpikeAttentionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PySpikeAttentionModelFixed(ExtensionModel):
    """Exact int64 ``sum Q K V``, then one multiply-and-rounding-shift by ``scale * gain``, saturated to out_bits."""

    PORTS = SpikeAttention.PORTS
    q: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    k: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    v: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int32)
    q_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    k_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    out_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def evaluate(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        return semantics.spike_attention_fixed(self.proc_params, q, k, v)
