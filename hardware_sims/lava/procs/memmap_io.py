"""Lava processes that stream a run's inputs and records through memory-mapped ``.npy`` files.

Why not Lava's ``RingBuffer`` source/sink and ``Read``: their data live in Lava Vars, and ``Var.get``/``Var.set``
move an array one element per channel message (``lava/magma/runtime/runtime.py`` ``get_var``/``set_var``), which
takes minutes for a few million recorded values. These processes map a file that the caller reads or writes
directly: the Lava runtime forks its processes, and a shared file mapping needs no messages at all.

* `MemmapSource`: sends ``data[(time_step - 1) % n_steps]`` of an ``[n_steps, *shape]`` file (graded values).
* `MemmapSink`: writes what its InPort receives at ``time_step`` to row ``(time_step - 1) % n_steps``.
* `RecordRows`: not a process: what a process records about itself (snnav's neurons and extension processes write
  what they send, and a neuron its ``v`` and ``u``, from inside their own step). A sink is one more Lava process
  that the runtime service steps and waits for at every time step, and a reader of a Var (a RefPort) adds a
  post-management phase to *every* step of *every* process; records kept by the recorded process itself cost
  neither. On the main job's S-CMRL with every node recorded, fixed point: 187 OS processes and 187 ms per Lava
  step with sinks and a reader, 136 and 141 ms with records kept by the processes (``results/bench_lava.md``).

The caller owns the files (creates them with ``numpy.lib.format.open_memmap`` before the run, reads them after a
pause, deletes them). Sinks and records store float64, which holds every 24-bit fixed-point value exactly.
"""

# No `from __future__ import annotations`: Lava's model search re-executes the modules of this folder.
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

import hardware_sims  # noqa: F401  (installs the lava compatibility fixes before any lava import)

__all__ = ["MemmapSource", "MemmapSink", "RecordRows"]


class MemmapSource(AbstractProcess):
    """Sends row ``(time_step - 1) % n_steps`` of the ``[n_steps, *shape]`` ``.npy`` file at `path` on ``s_out``."""

    def __init__(self, *, shape, path: str, n_steps: int, name=None, **kwargs) -> None:
        shape = tuple(int(d) for d in shape)
        super().__init__(shape=shape, path=str(path), n_steps=int(n_steps), name=name, **kwargs)
        self.s_out = OutPort(shape=shape)


class MemmapSink(AbstractProcess):
    """Writes what InPort ``a_in`` receives into row ``(time_step - 1) % n_steps`` of the file at `path`."""

    def __init__(self, *, shape, path: str, n_steps: int, name=None, **kwargs) -> None:
        shape = tuple(int(d) for d in shape)
        super().__init__(shape=shape, path=str(path), n_steps=int(n_steps), name=name, **kwargs)
        self.a_in = InPort(shape=shape)


class RecordRows:
    """The records a process model keeps of itself: ``records`` maps a name ("s_out", "v", "u") to the path of a
    ``[n_rows, *shape]`` float64 ``.npy`` file; `write` stores a value in row ``(time_step - 1) % n_rows``.

    A file is opened on first use, in the Lava process (after the fork). Names without a file are not recorded.
    """

    def __init__(self, records) -> None:
        self._paths = dict(records or {})
        self._rows: dict = {}

    def __bool__(self) -> bool:
        return bool(self._paths)

    def write(self, name: str, time_step: int, value) -> None:
        path = self._paths.get(name)
        if path is None:
            return
        rows = self._rows.get(name)
        if rows is None:
            rows = self._rows[name] = np.load(path, mmap_mode="r+")
        rows[(time_step - 1) % rows.shape[0]] = np.reshape(value, rows.shape[1:])


class _Mapped(PyLoihiProcessModel):
    """Opens the process's file on first use (in the Lava process, after the fork)."""

    _mode = "r"

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._file = None

    def _rows(self) -> np.ndarray:
        if self._file is None:
            self._file = np.load(self.proc_params["path"], mmap_mode=self._mode)
        return self._file

    def _row(self) -> int:
        return (self.time_step - 1) % self.proc_params["n_steps"]


class _SourceModel(_Mapped):
    def run_spk(self) -> None:
        self.s_out.send(np.asarray(self._rows()[self._row()]))


@implements(proc=MemmapSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyMemmapSourceFloat(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)


@implements(proc=MemmapSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyMemmapSourceFixed(_SourceModel):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)


@implements(proc=MemmapSink, protocol=LoihiProtocol)
@requires(CPU)
class PyMemmapSink(_Mapped):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    _mode = "r+"

    def run_spk(self) -> None:
        self._rows()[self._row()] = self.a_in.recv()
