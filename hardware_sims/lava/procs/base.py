"""Shared machinery of the extension processes: the process base class and the per-step / window model bases.

Every extension process has one InPort per port of its extension node (same names), one OutPort ``s_out`` (graded),
and, for WINDOW nodes, the state Vars of :class:`~hardware_sims.extensions.kernels.WindowState`:

* ``steps_seen`` ``(1,)``: steps received since the last reset;
* ``<port>_buf`` ``(W, *port_shape)`` per port: the current window's inputs;
* ``out_buf`` ``(W, *out_shape)``: the previous window's outputs, emitted one per step.

The models differ only in ``evaluate`` (float64 vs int64 accumulator + requantization, see ``hardware_sims.extensions.ports``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from hardware_sims.extensions.kernels import window_step
from hardware_sims.extensions.ports import FixedPlan
from hardware_sims.lava.procs.memmap_io import RecordRows

__all__ = ["ExtensionProcess", "ExtensionModel", "as_f64", "as_i64", "fixed_output"]


class ExtensionProcess(AbstractProcess):
    """Base of the snnav extension processes (not instantiated itself).

    Process parameters (``proc_params``) common to all: ``plan`` (:class:`FixedPlan`, used by the fixed-point model),
    ``gain`` (float output gain, 1 by default), ``window`` (0 for per-step processes), ``bias`` (``{port: array}``,
    empty by default), and ``records`` (empty; the backend's build sets ``{"s_out": path}`` when it records the
    output: the model stores what it sends, `hardware_sims.lava.procs.memmap_io.RecordRows`). Subclasses call :meth:`_build` from ``__init__``.

    **Port bias.** ``bias={port: constant}`` (broadcast to the port's shape) is added to what the port receives at
    every step, before the node's computation, with no latency: a constant term of the port's input (NIR: an
    upstream Affine/Conv bias, which fan-in semantics puts inside the port's value), which Lava synapses cannot
    carry. Units are the port's messages: real values for the float model, integer mantissas in the port's
    format (``in_formats[port].exp``) for the fixed-point model, whose ``in_formats[port].max_abs`` must then cover
    the received sum plus ``|bias|``. The constant also acts before the process's live step (its pre-roll), like a
    neuron's ``bias_mant``; what it produces there is discarded by the consumers' reset at their live step.
    """

    PORTS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, bias: dict | None = None, **kwargs) -> None:
        """`bias`: optional ``{port: constant}`` added to what the port receives, every step (see `_build`)."""
        unknown = sorted(set(bias or {}) - set(self.PORTS))
        if unknown:
            raise ValueError(f"{type(self).__name__}: bias names unknown ports {unknown}; the ports are "
                             f"{list(self.PORTS)}")
        super().__init__(bias=dict(bias or {}), records={}, **kwargs)

    def __del__(self):
        # A constructor that refused its parameters never reached AbstractProcess.__init__ (no runtime to stop).
        if "_runtime" in vars(self):
            super().__del__()

    def _build(self, in_shapes: dict[str, tuple[int, ...]], out_shape: tuple[int, ...], window: int,
               window_vars: bool | None = None, state: dict[str, tuple[int, ...]] | None = None) -> None:
        """Ports, the window state Vars when `window_vars` (default: when ``window > 0``), and for a RUNNING process
        ``steps_seen`` and one Var per entry of `state` (name -> shape).

        A model class serves one process class, and Lava requires every Var a model declares to exist on the
        process: SpikeAttention's model serves both axes, so its per-step (tokens) process gets the window Vars with
        a zero-length window axis (no memory, never read).
        """
        for port in self.PORTS:
            setattr(self, port, InPort(shape=tuple(in_shapes[port])))
        bias = {}
        for port, b in self.proc_params["bias"].items():
            b = np.asarray(b)
            try:
                bias[port] = np.broadcast_to(b, tuple(in_shapes[port])).copy()
            except ValueError:
                raise ValueError(f"{type(self).__name__}: bias of port {port!r} has shape {b.shape}, which does not "
                                 f"broadcast to the port's shape {tuple(in_shapes[port])}") from None
        self.proc_params.overwrite("bias", bias)
        self.s_out = OutPort(shape=tuple(out_shape))
        if window or window_vars:
            self.steps_seen = Var(shape=(1,), init=np.zeros(1, dtype=np.int32))
            for port in self.PORTS:
                shape = (window, *in_shapes[port])
                setattr(self, f"{port}_buf", Var(shape=shape, init=np.zeros(shape)))
            self.out_buf = Var(shape=(window, *out_shape), init=np.zeros((window, *out_shape)))
        if state:  # a RUNNING process: steps_seen and its state arrays (int64 in fixed point: exact sums)
            self.steps_seen = Var(shape=(1,), init=np.zeros(1, dtype=np.int32))
            for var, shape in state.items():
                setattr(self, var, Var(shape=tuple(shape), init=np.zeros(tuple(shape))))

    # Read-only views of the parameters (properties: Lava's post-init scans attributes with getattr).
    @property
    def latency(self) -> int:
        """Steps between an input and the output it produces: 0 per step, W for a WINDOW process."""
        return int(self.proc_params["window"])

    @property
    def plan(self) -> FixedPlan:
        """The fixed-point plan (input formats, factor, output format)."""
        return self.proc_params["plan"]

    @property
    def out_exp(self) -> int:
        """Exponent of the fixed-point output: a message ``m`` means ``m * 2**-out_exp``."""
        return self.plan.out_exp

    @property
    def state_var_names(self) -> tuple[str, ...]:
        """Names of the state Vars (empty for per-step processes)."""
        running = tuple(self.proc_params.get("state_vars") or ())
        if running:
            return ("steps_seen", *running)
        if not self.latency:
            return ()
        return ("steps_seen", *(f"{p}_buf" for p in self.PORTS), "out_buf")

    def reset(self, full: bool = False) -> None:
        """Reset the state between samples with ``Var.set`` (no-op for per-step processes).

        ``steps_seen <- 0`` is sufficient: the first window after it emits zeros and rewrites every buffer slot
        before reading it (see :func:`~hardware_sims.extensions.kernels.window_step`); a RUNNING process overwrites
        its state at the first step after it. ``full=True`` also zeroes
        ``<port>_buf`` and ``out_buf`` (slower: Lava's ``Var.set`` sends arrays element by element). Before the
        first run there is no runtime and nothing to reset.
        """
        if not self.state_var_names or self.runtime is None:
            return
        for name in self.state_var_names if full else ("steps_seen",):
            var = getattr(self, name)
            var.set(np.zeros(var.shape))


class ExtensionModel(PyLoihiProcessModel):
    """Run loop of every extension model: per step (window 0) or windowed (window W).

    Per step (zero latency): receives every port at step t and sends ``evaluate(*inputs)`` at step t.
    Window (latency W): :func:`window_step` buffers window k's inputs and emits window k-1's outputs (zeros for the
    first window after a reset); ``evaluate`` gets the ``(W, *port_shape)`` buffers and returns ``(W, *out_shape)``.
    Subclasses define ``evaluate``: float models in float64, fixed models as an int64 accumulator requantized by
    :func:`fixed_output`.
    """

    PORTS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, proc_params) -> None:
        super().__init__(proc_params)
        # {"s_out": path} when the backend's build records the output
        self._records = RecordRows(proc_params.get("records"))

    def run_spk(self) -> None:
        bias = self.proc_params["bias"]
        inputs = [getattr(self, port).recv() for port in self.PORTS]
        if bias:  # constants of the ports (an upstream bias): received + bias, in the port's message units
            inputs = [x + bias[port] if port in bias else x for port, x in zip(self.PORTS, inputs)]
        if self.proc_params["window"]:
            bufs = [getattr(self, f"{port}_buf") for port in self.PORTS]
            out = window_step(self.steps_seen, bufs, self.out_buf, inputs, self.evaluate)
        else:
            out = self.evaluate(*inputs)
        self._records.write("s_out", self.time_step, out)
        self.s_out.send(out)

    def evaluate(self, *inputs: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def as_f64(*xs: np.ndarray) -> list[np.ndarray]:
    """Inputs of a float model as float64 arrays."""
    return [np.asarray(x, dtype=np.float64) for x in xs]


def as_i64(*xs: np.ndarray) -> list[np.ndarray]:
    """Inputs of a fixed-point model as int64 arrays (exact products and sums)."""
    return [np.asarray(x, dtype=np.int64) for x in xs]


def fixed_output(plan: FixedPlan, acc: np.ndarray) -> np.ndarray:
    """The int64 accumulator as int32 messages of the plan's output format (rounded, saturated)."""
    return plan.requantize(acc).astype(np.int32)
