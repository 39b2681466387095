"""Lava process for ``snnav.AttentionApply`` (per-head scores applied to values, per step, latency 0)::

    O[g*d+j, n] = scale * sum_m P[g, n, m] V[g*d+j, m]

Fixed point: ``acc`` is the exact integer sum (exponent ``e_p + e_v``), the factor is ``scale * gain``. No state Vars.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from export.ir.extensions import AttentionApply
from hardware_sims.extensions import semantics
from hardware_sims.extensions.ports import OUT_BITS, PortFormat
from hardware_sims.lava.procs.base import ExtensionModel, ExtensionProcess

__all__ = ["AttentionApplyProcess", "PyAttentionApplyModelFloat", "PyAttentionApplyModelFixed"]


class AttentionApplyProcess(ExtensionProcess):
    """``snnav.AttentionApply``: InPorts ``p`` ``(h, N, N)``, ``v`` ``(C, N)``; OutPort ``s_out`` ``(C, N)``.

    Args:
        shape: ``(C, N)``.
        num_heads: heads h (divides C).
        scale: the node's constant factor, applied last.
        in_formats, out_exp, out_bits, gain, name: as for
            :class:`~hardware_sims.lava.procs.spike_attention.SpikeAttentionProcess`.
    """

    PORTS = AttentionApply.PORTS

    def __init__(self, *, shape, num_heads: int, scale: float, in_formats: dict[str, PortFormat] | None = None,
                 out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None,
                 **kwargs) -> None:
        sem = semantics.attention_apply(shape=shape, num_heads=num_heads, scale=scale, in_formats=in_formats,
                                        out_exp=out_exp, out_bits=out_bits, gain=gain, name=name)
        super().__init__(**sem.params, name=name, **kwargs)
        self._build(dict(sem.in_shapes), sem.out_shape, 0)


@implements(proc=AttentionApplyProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyAttentionApplyModelFloat(ExtensionModel):
    """float64 ``sum_m P V``, ``* scale``, then ``* gain`` (when not 1)."""

    PORTS = AttentionApply.PORTS
    p: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    v: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def evaluate(self, p: np.ndarray, v: np.ndarray) -> np.ndarray:
        return semantics.apply_float(self.proc_params, p, v)


@implements(proc=AttentionApplyProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyAttentionApplyModelFixed(ExtensionModel):
    """Exact int64 ``sum_m P V``, then one multiply-and-rounding-shift by ``scale * gain``, saturated."""

    PORTS = AttentionApply.PORTS
    p: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    v: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def evaluate(self, p: np.ndarray, v: np.ndarray) -> np.ndarray:
        return semantics.apply_fixed(self.proc_params, p, v)
