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

from export.extensions import AttentionApply
from hardware_sims.lava_procs.base import ExtensionModel, ExtensionProcess, as_f64, as_i64, fixed_output
from hardware_sims.lava_procs.fixed import OUT_BITS, PortFormat, make_plan
from hardware_sims.lava_procs.kernels import attention_apply_acc, attention_apply_float

__all__ = ["AttentionApplyProcess", "PyAttentionApplyModelFloat", "PyAttentionApplyModelFixed"]


class AttentionApplyProcess(ExtensionProcess):
    """``snnav.AttentionApply``: InPorts ``p`` ``(h, N, N)``, ``v`` ``(C, N)``; OutPort ``s_out`` ``(C, N)``.

    Args:
        shape: ``(C, N)``.
        num_heads: heads h (divides C).
        scale: the node's constant factor, applied last.
        in_formats, out_exp, out_bits, gain, name: as for
            :class:`~hardware_sims.lava_procs.spike_attention.SpikeAttentionProcess`.
    """

    PORTS = AttentionApply.PORTS

    def __init__(self, *, shape, num_heads: int, scale: float, in_formats: dict[str, PortFormat] | None = None,
                 out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None,
                 **kwargs) -> None:
        node = AttentionApply(shape=tuple(shape), num_heads=num_heads, scale=scale)
        c, n = node.shape
        plan = make_plan(f"AttentionApplyProcess {name or ''}".strip(), self.PORTS, in_formats, self.PORTS, n,
                         node.scale * gain, out_exp, out_bits)
        super().__init__(shape=node.shape, num_heads=node.num_heads, scale=node.scale, window=0, plan=plan,
                         gain=float(gain), name=name, **kwargs)
        self._build({"p": (node.num_heads, n, n), "v": node.shape}, node.shape, 0)


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
        pp = self.proc_params
        return attention_apply_float(*as_f64(p, v), pp["num_heads"], pp["scale"], pp["gain"])


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
        acc = attention_apply_acc(*as_i64(p, v), self.proc_params["num_heads"])
        return fixed_output(self.proc_params["plan"], acc)
