"""Lava process for ``snnav.Gate`` (a tensor times a scalar computed in the graph, per step, latency 0)::

    O[c, n] = X[c, n] * G[0]

Fixed point: ``acc = X * G`` exactly (exponent ``e_x + e_gate``), the factor is ``gain``. Default formats: ``x``
binary spikes, ``gate`` a 24-bit graded message with exponent 0 (pass the real ones). No state Vars.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from export.ir.extensions import Gate
from hardware_sims.extensions import semantics
from hardware_sims.extensions.ports import OUT_BITS, PortFormat
from hardware_sims.lava.procs.base import ExtensionModel, ExtensionProcess

__all__ = ["GateProcess", "PyGateModelFloat", "PyGateModelFixed"]


class GateProcess(ExtensionProcess):
    """``snnav.Gate``: InPorts ``x`` ``(C, N)``, ``gate`` ``(1,)``; OutPort ``s_out`` ``(C, N)``.

    Args:
        shape: ``(C, N)``.
        in_formats, out_exp, out_bits, gain, name: as for
            :class:`~hardware_sims.lava.procs.spike_attention.SpikeAttentionProcess` (the factor is `gain`).
    """

    PORTS = Gate.PORTS

    def __init__(self, *, shape, in_formats: dict[str, PortFormat] | None = None, out_exp: int | None = None,
                 out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None, **kwargs) -> None:
        sem = semantics.gate(shape=shape, in_formats=in_formats, out_exp=out_exp, out_bits=out_bits, gain=gain,
                             name=name)
        super().__init__(**sem.params, name=name, **kwargs)
        self._build(dict(sem.in_shapes), sem.out_shape, 0)


@implements(proc=GateProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGateModelFloat(ExtensionModel):
    """float64 ``X * G[0]`` (then ``* gain`` when not 1)."""

    PORTS = Gate.PORTS
    x: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    gate: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def evaluate(self, x: np.ndarray, gate: np.ndarray) -> np.ndarray:
        return semantics.gate_float(self.proc_params, x, gate)


@implements(proc=GateProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyGateModelFixed(ExtensionModel):
    """Exact int64 ``X * G[0]``, then one multiply-and-rounding-shift by ``gain``, saturated."""

    PORTS = Gate.PORTS
    x: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    gate: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def evaluate(self, x: np.ndarray, gate: np.ndarray) -> np.ndarray:
        return semantics.gate_fixed(self.proc_params, x, gate)
