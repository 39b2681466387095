"""snnav's ``Delay`` Lava process: a ring buffer of k steps with a periodic reset, float and fixed-point models.

Per step (``time_step`` counts from 1; ``phase = (time_step - 1) % period`` is the step within a sample)::

    if phase == live_step:  buffer <- 0                        # the sample's first live input arrives now
    buffer[slot] <- x          slot = (time_step - 1) % depth  # depth = max(steps) + 1
    y[i] = buffer[(slot - steps[i]) % depth][i]                # the input of steps[i] steps ago (0 before the reset)
    if mute_preroll and phase < live_step:  y <- 0

Zero latency: ``steps = 0`` passes the input of the same step through. The Lava backend inserts one of these where
paths of different depth meet (alignment, merged with any NIR ``Delay`` on the path) and, with ``steps = 0`` and
``mute_preroll``, as the gate of a recurrent source (`hardware_sims/plan/SEMANTICS.md`). The reset makes
samples that run back to back independent without pausing the run: whatever the buffer held from the previous
sample or the pre-roll is gone when the sample's NIR step 0 arrives, so the first ``steps[i]`` outputs are zeros as
NIR's ``Delay`` defines.

The float model carries float64 messages; the fixed-point model (``fixed_pt``) carries int32 messages of up to 24
bits unchanged (a delay does no arithmetic), so it is bit-exact for whatever format its input uses.
"""

# No `from __future__ import annotations`: Lava's model search re-executes the modules of this folder.
import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

import hardware_sims  # noqa: F401  (installs the lava compatibility fixes before any lava import)

__all__ = ["Delay", "PyDelayModelFloat", "PyDelayModelFixed", "delay_reference"]


class Delay(AbstractProcess):
    """A per-element delay line with a periodic reset (module docstring). InPort ``s_in``, OutPort ``s_out``.

    Args:
        shape: shape of the messages.
        steps: delay in steps, an int or an int array broadcasting to `shape` (>= 0).
        period: steps per sample (the reset repeats every `period` steps).
        live_step: step within a sample at which the buffer is cleared (the sample's first live input).
        mute_preroll: send zeros while ``phase < live_step``.
        name: Lava process name.
    """

    def __init__(self, *, shape, steps=1, period: int = 1, live_step: int = 0, mute_preroll: bool = False,
                 name=None, **kwargs) -> None:
        shape = tuple(int(d) for d in shape)
        steps = np.broadcast_to(np.asarray(steps, dtype=np.int64), shape).copy()
        if steps.size and steps.min() < 0:
            raise ValueError(f"Delay {name!r}: steps must be >= 0, found {int(steps.min())}")
        if int(period) < 1 or not 0 <= int(live_step) < int(period):
            raise ValueError(f"Delay {name!r}: expected period >= 1 and 0 <= live_step < period, found "
                             f"period={period}, live_step={live_step}")
        depth = int(steps.max()) + 1 if steps.size else 1
        super().__init__(shape=shape, steps=steps, period=int(period), live_step=int(live_step),
                         mute_preroll=bool(mute_preroll), depth=depth, name=name, **kwargs)
        self.s_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.buffer = Var(shape=(depth, *shape), init=0)


class _DelayModel(PyLoihiProcessModel):
    """The run loop shared by both models."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self._steps = np.asarray(proc_params["steps"], dtype=np.int64)
        self._uniform = bool(self._steps.size == 0 or np.all(self._steps == self._steps.flat[0]))
        self._depth = int(proc_params["depth"])
        self._period = int(proc_params["period"])
        self._live = int(proc_params["live_step"])
        self._mute = bool(proc_params["mute_preroll"])

    def run_spk(self) -> None:
        x = self.s_in.recv()
        phase = (self.time_step - 1) % self._period
        if phase == self._live:
            self.buffer[:] = 0
        slot = (self.time_step - 1) % self._depth
        self.buffer[slot] = x
        if self._uniform:
            k = int(self._steps.flat[0]) if self._steps.size else 0
            out = self.buffer[(slot - k) % self._depth].copy()
        else:
            index = ((slot - self._steps) % self._depth)[None]
            out = np.take_along_axis(self.buffer, index, axis=0)[0]
        if self._mute and phase < self._live:
            out = np.zeros_like(out)
        self.s_out.send(out)


@implements(proc=Delay, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDelayModelFloat(_DelayModel):
    """float64 messages."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    buffer: np.ndarray = LavaPyType(np.ndarray, float)


@implements(proc=Delay, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
class PyDelayModelFixed(_DelayModel):
    """int32 messages (up to 24 bits), passed through unchanged."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)


def delay_reference(x: np.ndarray, steps, period: int, live_step: int, mute_preroll: bool = False) -> np.ndarray:
    """What the process sends for inputs ``x`` of shape ``[n_steps, *shape]`` (time_step 1 is ``x[0]``), in numpy."""
    x = np.asarray(x)
    steps = np.broadcast_to(np.asarray(steps, dtype=np.int64), x.shape[1:])
    out = np.zeros_like(x)
    for s in range(x.shape[0]):
        phase = s % period
        if mute_preroll and phase < live_step:
            continue
        start = s - phase + live_step if phase >= live_step else s - phase - period + live_step  # last reset step
        src = s - steps
        ok = src >= max(start, 0)
        out[s] = np.where(ok, np.take_along_axis(x, np.clip(src, 0, None)[None], axis=0)[0], 0)
    return out
