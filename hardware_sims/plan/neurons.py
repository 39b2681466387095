"""NIR neuron nodes as Lava ``LIF`` parameters (floating point), with the factors folded into the synapses.

Lava's float LIF (``lava/proc/lif/models.py``, ``AbstractPyLifModelFloat``) computes every step::

    u <- u * (1 - du) + a_in
    v <- v * (1 - dv) + u + bias_mant
    s  = v > vth ;  v <- 0 where s

NIR's forward-Euler neurons (``export/interp_neurons.py``, convention "nir"; x is the summed fan-in, c = dt/tau)::

    LIF       v <- v + c ((v_leak - v) + r x);   z = v > v_th;  v <- v_reset where z
    IF        v <- v + dt r x;                    z = v > v_th;  v <- v_reset where z
    LI        v <- v + c ((v_leak - v) + r x)     (output v)
    I         v <- v + dt r x                     (output v)
    Threshold z = x > theta                       (memoryless)
    CubaLIF   i <- i + cs (w_in x - i);  v <- v + cm ((v_leak - v) + r i);  z, reset as LIF (i is not reset)
    CubaLI    CubaLIF without threshold (output v)

Mapping (``du = 1`` makes ``u = a_in``, no current memory): every synapse into the neuron carries ``gain * x``, the
neuron gets ``dv``, ``vth`` and a constant ``bias_mant = bias + bias_gain * b`` where ``b`` is the constant part of x
(an upstream Affine/Conv bias, which NIR's fan-in semantics puts inside x):

=========  ===================  ======  ======  ============  ============  ==============  =========
NIR        gain                 du      dv      bias          bias_gain     vth             read
=========  ===================  ======  ======  ============  ============  ==============  =========
LIF        c r                  1       c       c v_leak      c r           v_threshold     spikes
IF         dt r                 1       0       0             dt r          v_threshold     spikes
LI         c r                  1       c       c v_leak      c r           +inf            v
I          dt r                 1       0       0             dt r          +inf            v
Threshold  1                    1       1       0             1             threshold       spikes
CubaLIF    cm r cs w_in         cs      cm      cm v_leak     (none)        v_threshold     spikes
CubaLI     cm r cs w_in         cs      cm      cm v_leak     (none)        +inf            v
=========  ===================  ======  ======  ============  ============  ==============  =========

(Cuba: Lava's ``u`` holds ``cm r i``; a constant input into a Cuba neuron would have to enter ``u``, which Lava has no
bias for, so it is refused.) Lava's ``du``, ``dv`` and ``vth`` are one scalar per process: per-neuron values must be
uniform. ``v_reset`` must be 0 (Lava resets to 0). Lava's spike test is ``v > vth``, NIR's ``v > v_threshold``: the
same strict comparison, no adjustment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import nir
import numpy as np

from hardware_sims.plan.errors import UnsupportedGraphError

__all__ = ["NeuronParams", "NEURON_TYPES", "neuron_params", "needs_dt"]


@dataclass(frozen=True)
class NeuronParams:
    """Lava LIF parameters of one NIR neuron node (float), see the module table.

    Attributes:
        nir_type: the NIR class name.
        shape: NIR shape of the population.
        gain: factor on the summed input, folded into every synapse into the neuron (broadcasts to `shape`).
        du, dv, vth: Lava's scalars.
        bias: constant added to v every step, before upstream constants (broadcasts to `shape`).
        bias_gain: factor on an upstream constant input; None where none is allowed (Cuba neurons).
        read: "s_out" (spikes) or "v" (the membrane is the node's output).
    """

    nir_type: str
    shape: tuple[int, ...]
    gain: np.ndarray
    du: float
    dv: float
    vth: float
    bias: np.ndarray
    bias_gain: np.ndarray | None
    read: str

    @property
    def spiking(self) -> bool:
        return self.read == "s_out"

    def bias_mant(self, upstream: np.ndarray | None, name: str) -> np.ndarray:
        """``bias + bias_gain * upstream`` over `shape` (float64)."""
        total = np.broadcast_to(self.bias, self.shape).astype(np.float64)
        if upstream is not None and np.any(upstream):
            if self.bias_gain is None:
                raise UnsupportedGraphError(
                    f"node {name!r} ({self.nir_type}) receives a constant input (an upstream bias); Lava's LIF adds "
                    "constants to v, but this neuron needs them in its current u. Export the layer without bias"
                )
            total = total + self.bias_gain * np.broadcast_to(upstream, self.shape)
        return total


def _f64(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _uniform(value: Any, what: str, name: str) -> float:
    arr = _f64(value)
    flat = arr.reshape(-1)
    if flat.size == 0 or not np.all(flat == flat[0]):
        raise UnsupportedGraphError(
            f"node {name!r}: Lava's LIF has one {what} per process; expected a uniform {what}, found values in "
            f"[{flat.min():g}, {flat.max():g}]. Split the layer or make {what} uniform"
        )
    return float(flat[0])


def _zero_reset(node: Any, name: str) -> None:
    v_reset = getattr(node, "v_reset", None)
    if v_reset is not None and np.any(_f64(v_reset) != 0):
        raise UnsupportedGraphError(
            f"node {name!r}: v_reset must be 0 (Lava's LIF resets v to 0), found nonzero v_reset; re-export with "
            "v_reset = 0 or shift v_leak and v_threshold"
        )


def _shape(*arrays: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in np.broadcast_shapes(*(np.shape(a) for a in arrays)))


def _lif(node: nir.LIF, name: str, dt: float) -> NeuronParams:
    _zero_reset(node, name)
    c = dt / _f64(node.tau)
    r = _f64(node.r)
    dv = _uniform(c, "dt/tau", name)
    return NeuronParams("LIF", _shape(node.tau, node.r, node.v_leak, node.v_threshold), c * r, 1.0, dv,
                        _uniform(node.v_threshold, "v_threshold", name), c * _f64(node.v_leak), c * r, "s_out")


def _if(node: nir.IF, name: str, dt: float) -> NeuronParams:
    _zero_reset(node, name)
    gain = dt * _f64(node.r)
    return NeuronParams("IF", _shape(node.r, node.v_threshold), gain, 1.0, 0.0,
                        _uniform(node.v_threshold, "v_threshold", name), np.zeros(()), gain, "s_out")


def _li(node: nir.LI, name: str, dt: float) -> NeuronParams:
    c = dt / _f64(node.tau)
    r = _f64(node.r)
    return NeuronParams("LI", _shape(node.tau, node.r, node.v_leak), c * r, 1.0, _uniform(c, "dt/tau", name),
                        np.inf, c * _f64(node.v_leak), c * r, "v")


def _i(node: nir.I, name: str, dt: float) -> NeuronParams:
    gain = dt * _f64(node.r)
    return NeuronParams("I", _shape(node.r), gain, 1.0, 0.0, np.inf, np.zeros(()), gain, "v")


def _threshold(node: nir.Threshold, name: str, dt: float) -> NeuronParams:
    return NeuronParams("Threshold", _shape(node.threshold), np.ones(()), 1.0, 1.0,
                        _uniform(node.threshold, "threshold", name), np.zeros(()), np.ones(()), "s_out")


def _cuba(node: nir.CubaLI | nir.CubaLIF, name: str, dt: float) -> NeuronParams:
    spiking = isinstance(node, nir.CubaLIF)
    if spiking:
        _zero_reset(node, name)
    cs, cm = dt / _f64(node.tau_syn), dt / _f64(node.tau_mem)
    gain = cm * _f64(node.r) * cs * _f64(node.w_in)
    vth = _uniform(node.v_threshold, "v_threshold", name) if spiking else np.inf
    shape = _shape(node.tau_syn, node.tau_mem, node.r, node.v_leak, node.w_in)
    return NeuronParams(type(node).__name__, shape, gain, _uniform(cs, "dt/tau_syn", name),
                        _uniform(cm, "dt/tau_mem", name), vth, cm * _f64(node.v_leak), None,
                        "s_out" if spiking else "v")


_BUILDERS: dict[type, Callable[[Any, str, float], NeuronParams]] = {
    nir.LIF: _lif,
    nir.IF: _if,
    nir.LI: _li,
    nir.I: _i,
    nir.Threshold: _threshold,
    nir.CubaLIF: _cuba,
    nir.CubaLI: _cuba,
}
NEURON_TYPES: tuple[type, ...] = tuple(_BUILDERS)


def needs_dt(node: Any) -> bool:
    """True for the neuron types whose discretisation uses dt (all but Threshold)."""
    return isinstance(node, NEURON_TYPES) and not isinstance(node, nir.Threshold)


def neuron_params(node: Any, name: str, dt: float) -> NeuronParams:
    """The Lava LIF parameters of a NIR neuron node (see the module table).

    Raises:
        UnsupportedGraphError: non-uniform decay/threshold, nonzero v_reset.
    """
    for cls in type(node).__mro__:
        if cls in _BUILDERS:
            return _BUILDERS[cls](node, name, dt)
    raise TypeError(f"node {name!r}: {type(node).__name__} is not a neuron type")
