"""Lava processes of the RUNNING (causal) extension nodes: ``snnav.CausalSpikeAttention`` and ``snnav.CausalFusion``.

Both are per step (latency 0) with a state over the steps since the sample's reset (``export/EXTENSIONS.md``):

    CausalSpikeAttention   KV[g, i, j, n] += K_t[g*d+i, n] V_t[g*d+j, n];  O_t[g*d+j, n] = scale sum_i Q_t[g*d+i, n] KV
    CausalFusion           Sum[c, n] += Tm_t[c, n];  O_t[c, n] = (sum_m S_t[c, m] / N) (Sum[c, n] / (t + 1))

State Vars: ``steps_seen (1,)`` and ``kv (h, d, d, N)`` / ``total (C, N)`` (float64, or int64 in fixed point, where
the sums are exact). At ``steps_seen = 0`` the state is overwritten, so ``reset()`` (called by the backend at the
process's live step of every sample) sets only ``steps_seen``. The arithmetic is
``hardware_sims.extensions.semantics`` (shared with the emulator).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from export.ir.extensions import CausalFusion, CausalSpikeAttention
from hardware_sims.extensions import semantics
from hardware_sims.extensions.ports import OUT_BITS, PortFormat
from hardware_sims.lava.procs.base import ExtensionModel, ExtensionProcess

__all__ = ["CausalSpikeAttentionProcess", "CausalFusionProcess", "PyCausalSpikeAttentionModelFloat",
           "PyCausalSpikeAttentionModelFixed", "PyCausalFusionModelFloat", "PyCausalFusionModelFixed"]


class CausalSpikeAttentionProcess(ExtensionProcess):
    """``snnav.CausalSpikeAttention``: InPorts ``q``, ``k``, ``v`` ``(C, N)``; OutPort ``s_out`` ``(C, N)``; state
    ``steps_seen``, ``kv``. Arguments as :class:`~hardware_sims.lava.procs.spike_attention.SpikeAttentionProcess`
    (no axis, layout or window)."""

    PORTS = CausalSpikeAttention.PORTS

    def __init__(self, *, shape, num_heads: int, scale: float, in_formats: dict[str, PortFormat] | None = None,
                 out_exp: int | None = None, out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None,
                 **kwargs) -> None:
        sem = semantics.causal_spike_attention(shape=shape, num_heads=num_heads, scale=scale, in_formats=in_formats,
                                               out_exp=out_exp, out_bits=out_bits, gain=gain, name=name)
        super().__init__(**sem.params, state_vars=tuple(sem.state), name=name, **kwargs)
        self._build(dict(sem.in_shapes), sem.out_shape, 0, state=dict(sem.state))


class CausalFusionProcess(ExtensionProcess):
    """``snnav.CausalFusion``: InPorts ``spatial``, ``temporal`` ``(C, N)``; OutPort ``s_out`` ``(C, N)``; state
    ``steps_seen``, ``total``. Fixed point: the factor at step t is ``gain / (N (t+1))``."""

    PORTS = CausalFusion.PORTS

    def __init__(self, *, shape, in_formats: dict[str, PortFormat] | None = None, out_exp: int | None = None,
                 out_bits: int = OUT_BITS, gain: float = 1.0, name: str | None = None, **kwargs) -> None:
        sem = semantics.causal_fusion(shape=shape, in_formats=in_formats, out_exp=out_exp, out_bits=out_bits,
                                      gain=gain, name=name)
        super().__init__(**sem.params, state_vars=tuple(sem.state), name=name, **kwargs)
        self._build(dict(sem.in_shapes), sem.out_shape, 0, state=dict(sem.state))


@implements(proc=CausalSpikeAttentionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyCausalSpikeAttentionModelFloat(ExtensionModel):
    """float64 running ``KV``; ``scale * sum_i Q_t KV`` (then ``* gain`` when not 1)."""

    PORTS = CausalSpikeAttention.PORTS
    q: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    k: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    v: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int32)
    kv: np.ndarray = LavaPyType(np.ndarray, float)

    def evaluate(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        return semantics.causal_attention_float(self.proc_params, {"steps_seen": self.steps_seen, "kv": self.kv},
                                                q, k, v)


@implements(proc=CausalSpikeAttentionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyCausalSpikeAttentionModelFixed(ExtensionModel):
    """Exact int64 running ``KV`` and ``sum_i Q_t KV``, one multiply-and-rounding-shift by ``scale * gain``."""

    PORTS = CausalSpikeAttention.PORTS
    q: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    k: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    v: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int32)
    kv: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def evaluate(self, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        return semantics.causal_attention_fixed(self.proc_params, {"steps_seen": self.steps_seen, "kv": self.kv},
                                                q, k, v)


@implements(proc=CausalFusionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyCausalFusionModelFloat(ExtensionModel):
    """float64: token mean, running sum / (t + 1), product (then ``* gain`` when not 1)."""

    PORTS = CausalFusion.PORTS
    spatial: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    temporal: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int32)
    total: np.ndarray = LavaPyType(np.ndarray, float)

    def evaluate(self, spatial: np.ndarray, temporal: np.ndarray) -> np.ndarray:
        return semantics.causal_fusion_float(self.proc_params, {"steps_seen": self.steps_seen, "total": self.total},
                                             spatial, temporal)


@implements(proc=CausalFusionProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyCausalFusionModelFixed(ExtensionModel):
    """Exact int64 ``(sum_m S_t) * Sum_t``, one multiply-and-rounding-shift by ``gain / (N (t+1))``, saturated."""

    PORTS = CausalFusion.PORTS
    spatial: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    temporal: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    steps_seen: np.ndarray = LavaPyType(np.ndarray, np.int32)
    total: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def evaluate(self, spatial: np.ndarray, temporal: np.ndarray) -> np.ndarray:
        return semantics.causal_fusion_fixed(self.proc_params, {"steps_seen": self.steps_seen, "total": self.total},
                                             spatial, temporal)
