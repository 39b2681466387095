"""snnav's neuron process: Lava's ``LIFReset`` and its own float and bit-accurate models, keeping its own records.

`RecordedLIFReset` is ``lava.proc.lif.process.LIFReset`` (same constructor, same Vars and ports) with one more process
parameter, ``records``: name -> path of a ``[n_rows, *shape]`` float64 ``.npy`` file, for any of

* ``"s_out"``: the spikes the neuron sends at the step (what a sink on ``s_out`` would receive);
* ``"v"``, ``"u"``: the membrane and the current at the end of the step (what a RefPort read after the step, in the
  post-management phase, would return).

Its models are Lava's ``PyLifResetModelFloat`` and ``PyLifResetModelBitAcc`` themselves: the step is theirs, not a
copy; the subclasses only store the spikes Lava's step passes to ``reset_voltage`` (the vector it then sends) and
the state after Lava's step (`hardware_sims.lava.procs.memmap_io.RecordRows`). Without ``records`` nothing is
written and the neuron steps exactly as Lava's own. Why records kept by the neuron itself: see ``memmap_io``.
"""

# No `from __future__ import annotations`: Lava's model search re-executes the modules of this folder.
from lava.magma.core.decorator import implements
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import PyLifResetModelBitAcc, PyLifResetModelFloat
from lava.proc.lif.process import LIFReset

import hardware_sims  # noqa: F401  (installs the lava compatibility fixes before any lava import)
from hardware_sims.lava.procs.memmap_io import RecordRows

__all__ = ["RecordedLIFReset", "PyRecordedLifResetModelFloat", "PyRecordedLifResetModelBitAcc", "RECORDABLE"]

RECORDABLE = ("s_out", "v", "u")
"""What a `RecordedLIFReset` can record of itself."""


class RecordedLIFReset(LIFReset):
    """``LIFReset`` with ``records={name: path}`` (names from `RECORDABLE`; module docstring)."""

    def __init__(self, *, records=None, **kwargs) -> None:
        unknown = sorted(set(records or {}) - set(RECORDABLE))
        if unknown:
            raise ValueError(f"RecordedLIFReset {kwargs.get('name')!r}: cannot record {unknown}; it records "
                             f"{list(RECORDABLE)}")
        super().__init__(**kwargs)  # Lava's LIFReset takes no further keywords: the parameter is added after it
        self.proc_params["records"] = dict(records or {})

    def __del__(self):
        # A refused `records` never reached AbstractProcess.__init__ (no runtime to stop).
        if "_runtime" in vars(self):
            super().__del__()


class _Recorded:
    """Mixin over one of Lava's LIFReset models: Lava's step, then the records."""

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        self._records = RecordRows(proc_params.get("records"))

    def reset_voltage(self, spike_vector) -> None:
        # Lava's run_spk calls this with the spike vector it sends next, once per step
        self._records.write("s_out", self.time_step, spike_vector)
        super().reset_voltage(spike_vector)

    def run_spk(self) -> None:
        super().run_spk()
        if self._records:
            self._records.write("v", self.time_step, self.v)
            self._records.write("u", self.time_step, self.u)


@implements(proc=RecordedLIFReset, protocol=LoihiProtocol)
class PyRecordedLifResetModelFloat(_Recorded, PyLifResetModelFloat):
    """Lava's float LIFReset model (tags ``floating_pt``, CPU: inherited) with records."""

    implements_process = None  # Lava's `implements` refuses a subclass of a model of another process without this


@implements(proc=RecordedLIFReset, protocol=LoihiProtocol)
class PyRecordedLifResetModelBitAcc(_Recorded, PyLifResetModelBitAcc):
    """Lava's bit-accurate LIFReset model (tags ``bit_accurate_loihi``, ``fixed_pt``, CPU: inherited) with records."""

    implements_process = None  # as above
