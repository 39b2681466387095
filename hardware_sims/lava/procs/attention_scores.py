"""Lava process for ``snnav.AttentionScores`` (per-head ``Q K^T``, per step, latency 0)::

    S[g, n, m] = sum_i Q[g*d+i, n] K[g*d+i, m]          (output (h, N, N))

Fixed point: ``acc`` is the exact integer sum (exponent ``e_q + e_k``), the factor is ``gain`` (1 by default, so the
default output is the lossless integer sum). No state Vars.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from export.ir.extensions import AttentionScores
from hardware_sims.extensions import semantics
from hardware_sims.extensions.ports import OUT_BITS, PortFormat
from hardware_sims.lava.procs.base import ExtensionModel, ExtensionProcess

__all__ = ["AttentionScoresProcess", "PyAttentionScoresModelFloat", "PyAttentionScoresModelFixed"]


class AttentionScoresProcess(ExtensionProcess):
    """``snnav.AttentionScores``: InPorts ``q``, ``k`` ``(C, N)``; OutPort ``s_out`` ``(h, N, N)``.

    Args:
        shape: ``(C, N)``.
        num_heads: heads h (divides C).
        in_formats, out_exp, out_bits, gain, name: as for
            :class:`~hardware_sims.lava.procs.spike_attention.SpikeAttentionProcess` (the factor is `gain`).
    """

    PORTS = AttentionScores.PORTS

    def __init__(self, *, shape, num_heads: int, in_formats: dict[str, PortFormat] | None = None,
                 out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None,
                 **kwargs) -> None:
        sem = semantics.attention_scores(shape=shape, num_heads=num_heads, in_formats=in_formats, out_exp=out_exp,
                                         out_bits=out_bits, gain=gain, name=name)
        super().__init__(**sem.params, name=name, **kwargs)
        self._build(dict(sem.in_shapes), sem.out_shape, 0)


@implements(proc=AttentionScoresProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyAttentionScoresModelFloat(ExtensionModel):
    """float64 ``sum_i Q K`` (then ``* gain`` when not 1)."""

    PORTS = AttentionScores.PORTS
    q: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    k: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def evaluate(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        return semantics.scores_float(self.proc_params, q, k)


@implements(proc=AttentionScoresProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyAttentionScoresModelFixed(ExtensionModel):
    """Exact int64 ``sum_i Q K``, then one multiply-and-rounding-shift by ``gain``, saturated."""

    PORTS = AttentionScores.PORTS
    q: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    k: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)

    def evaluate(self, q: np.ndarray, k: np.ndarray) -> np.ndarray:
        return semantics.scores_fixed(self.proc_params, q, k)
