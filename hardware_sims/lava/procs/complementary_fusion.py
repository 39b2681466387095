"""Lava process for ``snnav.ComplementaryFusion`` (cross-modal fusion, WINDOW of W steps, latency W)::

    O_t[c, n] = (1/N sum_m S_t[c, m]) * (1/W sum_s Tm_s[c, n])

Float order: the mean over tokens m, the mean over the window's steps s, the product. Fixed point: ``acc =
(sum_m S_t[c, m]) * (sum_s Tm_s[c, n])`` exactly (exponent ``e_spatial + e_temporal``), the factor is
``gain / (N * W)`` (a pure shift when N*W is a power of two). State Vars: ``steps_seen``, ``spatial_buf``,
``temporal_buf``, ``out_buf``.
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from export.ir.extensions import ComplementaryFusion
from hardware_sims.extensions import semantics
from hardware_sims.extensions.ports import OUT_BITS, PortFormat
from hardware_sims.lava.procs.base import ExtensionModel, ExtensionProcess

__all__ = ["ComplementaryFusionProcess", "PyComplementaryFusionModelFloat", "PyComplementaryFusionModelFixed"]


class ComplementaryFusionProcess(ExtensionProcess):
    """``snnav.ComplementaryFusion``: InPorts ``spatial``, ``temporal`` ``(C, N)``; OutPort ``s_out`` ``(C, N)``.

    Args:
        shape: ``(C, N)``.
        window: W > 0, the steps of one window (and the latency).
        in_formats, out_exp, out_bits, gain, name: as for
            :class:`~hardware_sims.lava.procs.spike_attention.SpikeAttentionProcess` (the factor is
            ``gain / (N * W)``).
    """

    PORTS = ComplementaryFusion.PORTS

    def __init__(self, *, shape, window: int, in_formats: dict[str, PortFormat] | None = None,
                 out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None,
                 **kwargs) -> None:
        sem = semantics.complementary_fusion(shape=shape, window=window, in_formats=in_formats, out_exp=out_exp,
                                             out_bits=out_bits, gain=gain, name=name)
        super().__init__(**sem.params, name=name, **kwargs)
        self._build(dict(sem.in_shapes), sem.out_shape, sem.window)


@implements(proc=ComplementaryFusionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyComplementaryFusionModelFloat(ExtensionModel):
    """float64: token mean, step mean, product (then ``* gain`` when not 1)."""

    PORTS = ComplementaryFusion.PORTS
    spatial: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    temporal: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int32)
    spatial_buf: np.ndarray = LavaPyType(np.ndarray, float)
    temporal_buf: np.ndarray = LavaPyType(np.ndarray, float)
    out_buf: np.ndarray = LavaPyType(np.ndarray, float)

    def evaluate(self, spatial: np.ndarray, temporal: np.ndarray) -> np.ndarray:
        return semantics.fusion_float(self.proc_params, spatial, temporal)


@implements(proc=ComplementaryFusionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyComplementaryFusionModelFixed(ExtensionModel):
    """Exact int64 product of the token sum and the step sum, then one multiply-and-rounding-shift by
    ``gain / (N * W)``, saturated."""

    PORTS = ComplementaryFusion.PORTS
    spatial: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    temporal: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int32)
    spatial_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    temporal_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    out_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)

    def evaluate(self, spatial: np.ndarray, temporal: np.ndarray) -> np.ndarray:
        return semantics.fusion_fixed(self.proc_params, spatial, temporal)
