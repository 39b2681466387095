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

(Cuba: Lava's ``u`` holds ``cm r i``. A constant input into a Cuba neuron (an upstream bias ``b``) enters ``i``, so its
effect on v grows with the current's time constant: Lava's LIF has no bias on ``u``, so the lowering gives such a
neuron a **bias source**, a one-neuron ``LIFReset`` with ``bias = 1 > vth = 0.5`` that spikes at every step, and a
synapse ``gain * b`` from it into the neuron's ``a_in``: ``u`` then receives ``gain * b`` every step, exactly the
constant part of ``gain * x``. ``bias_gain`` is None for these types.) Lava's ``du``, ``dv`` and ``vth`` are one scalar per process: per-neuron values must be
uniform. ``v_reset`` must be 0 (Lava resets to 0). Lava's spike test is ``v > vth``, NIR's ``v > v_threshold``: the
same strict comparison, no adjustment.

Conventions (``convention=``, as the interpreter's, ``export/interpreter/neurons.py``): how the producing library
steps the same parameters. Where Lava's LIF can express the library's stepping, the table above changes:

* ``"norse"`` (Norse 1.1.0): ``LIFCell`` (exported as CubaLIF with ``w_in = r = 1``) jumps its current by the input
  (``i <- i + w_in x``), then drives v with it and decays it: ``u`` then holds ``cm r i`` with ``gain = cm r w_in``
  (no ``cs``), ``du = cs``. ``IAFCell`` (IF) adds ``r x`` without dt: ``gain = r``. LIF and LI step as NIR.
  Norse's cells start a sample at ``v = v_leak`` (IF: ``v_reset``); Lava's ``LIFReset`` starts at 0, so a nonzero
  ``v_leak`` is refused.
* ``"snntorch"`` (snnTorch 1.0.0): the scaling is NIR's when dt is snnTorch's 1e-4 (``r = tau/dt``, ``w_in =
  tau_syn/dt``: checked); but its spiking neurons (``Leaky``, ``Synaptic``, ``RLeaky`` with their defaults
  ``reset_mechanism="subtract"``, ``reset_delay=True``) subtract the threshold one step after a spike and keep the
  membrane, while Lava's LIF sets v to 0 in the step of the spike: not expressible, refused with the reason.
  Non-spiking types step as NIR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import nir
import numpy as np

from hardware_sims.plan.errors import UnsupportedGraphError

__all__ = ["NeuronParams", "NEURON_TYPES", "CONVENTIONS", "DEFAULT_DT", "neuron_params", "needs_dt"]

CONVENTIONS: tuple[str, ...] = ("nir", "snntorch", "norse")
DEFAULT_DT: dict[str, float] = {"snntorch": 1e-4, "norse": 1e-3}
"""The dt a library's exporter assumed (its graphs carry none): used when neither the graph nor the caller gives one."""
_GAIN_RTOL = 1e-4  # float32 rounding of tau, r, w_in in snnTorch's exporter (as the interpreter's check)


@dataclass(frozen=True)
class NeuronParams:
    """Lava LIF parameters of one NIR neuron node (float), see the module table.

    Attributes:
        nir_type: the NIR class name.
        shape: NIR shape of the population.
        gain: factor on the summed input, folded into every synapse into the neuron (broadcasts to `shape`).
        du, dv, vth: Lava's scalars.
        bias: constant added to v every step, before upstream constants (broadcasts to `shape`).
        bias_gain: factor on an upstream constant input added to v; None for Cuba neurons, whose upstream constant
            enters the current u (the lowering adds a bias source, ``gain * constant`` into ``a_in``).
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

    def bias_mant(self, upstream: np.ndarray | None) -> np.ndarray:
        """``bias + bias_gain * upstream`` over `shape` (float64); a Cuba neuron's upstream constant is not here."""
        total = np.broadcast_to(self.bias, self.shape).astype(np.float64)
        if upstream is not None and np.any(upstream) and self.bias_gain is not None:
            total = total + self.bias_gain * np.broadcast_to(upstream, self.shape)
        return total

    def current_bias(self, upstream: np.ndarray | None) -> np.ndarray | None:
        """What a bias source must add to ``u`` every step (``gain * upstream`` over `shape`), or None."""
        if self.bias_gain is not None or upstream is None or not np.any(upstream):
            return None
        return (np.broadcast_to(self.gain, self.shape) * np.broadcast_to(upstream, self.shape)).astype(np.float64)


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


def _cuba(node: nir.CubaLI | nir.CubaLIF, name: str, dt: float, convention: str = "nir") -> NeuronParams:
    spiking = isinstance(node, nir.CubaLIF)
    if spiking:
        _zero_reset(node, name)
    cs, cm = dt / _f64(node.tau_syn), dt / _f64(node.tau_mem)
    # NIR: i <- i + cs (w_in x - i); Norse's LIFCell: i <- i + w_in x, then v, then i <- (1 - cs) i
    gain = cm * _f64(node.r) * (1.0 if convention == "norse" else cs) * _f64(node.w_in)
    vth = _uniform(node.v_threshold, "v_threshold", name) if spiking else np.inf
    shape = _shape(node.tau_syn, node.tau_mem, node.r, node.v_leak, node.w_in)
    return NeuronParams(type(node).__name__, shape, gain, _uniform(cs, "dt/tau_syn", name),
                        _uniform(cm, "dt/tau_mem", name), vth, cm * _f64(node.v_leak), None,
                        "s_out" if spiking else "v")


def _norse_if(node: nir.IF, name: str, dt: float) -> NeuronParams:
    _zero_reset(node, name)
    gain = _f64(node.r)  # Norse's IAFCell: v <- v + r x, dt not used
    return NeuronParams("IF", _shape(node.r, node.v_threshold), gain, 1.0, 0.0,
                        _uniform(node.v_threshold, "v_threshold", name), np.zeros(()), gain, "s_out")


def _check_convention(node: Any, name: str, dt: float, convention: str) -> None:
    """Refuse what Lava's LIF cannot express of the library's stepping (module docstring)."""
    kind = type(node).__name__
    if convention == "norse":
        v_leak = getattr(node, "v_leak", None)
        if v_leak is not None and np.any(_f64(v_leak) != 0):
            raise UnsupportedGraphError(
                f"node {name!r} ({kind}): convention 'norse' starts every sample at v = v_leak as Norse's cells do, "
                "but Lava's LIFReset starts at v = 0; not expressible with nonzero v_leak. Use convention='nir' or "
                "export with v_leak = 0"
            )
    elif convention == "snntorch":
        for tau_field, gain_field in (("tau", "r"), ("tau_syn", "w_in"), ("tau_mem", "r")):
            if not hasattr(node, tau_field) or isinstance(node, (nir.LI, nir.CubaLI)):
                continue
            tau, g = _f64(getattr(node, tau_field)), _f64(getattr(node, gain_field))
            with np.errstate(invalid="ignore", divide="ignore"):
                gain = g * dt / tau
            if not np.all((np.isinf(tau) & np.isinf(g)) | np.isclose(gain, 1.0, rtol=_GAIN_RTOL, atol=0.0)):
                raise UnsupportedGraphError(
                    f"node {name!r} ({kind}): convention 'snntorch' needs {gain_field} = {tau_field}/dt as "
                    f"snnTorch exports it, found {gain_field}*dt/{tau_field} in [{np.nanmin(gain):.6g}, "
                    f"{np.nanmax(gain):.6g}] with dt={dt}; pass snnTorch's dt (1e-4) or use convention='nir'"
                )
        if isinstance(node, (nir.LIF, nir.CubaLIF)):
            raise UnsupportedGraphError(
                f"node {name!r} ({kind}): convention 'snntorch' reproduces snnTorch's Leaky/Synaptic/RLeaky, which "
                "(defaults reset_mechanism='subtract', reset_delay=True) subtract the threshold one step after a "
                "spike and keep the membrane above it; Lava's LIF sets v to 0 in the step of the spike, so this is "
                "not expressible on Loihi. Use convention='nir' (it equals snnTorch with reset_mechanism='zero', "
                "reset_delay=False, and snnTorch's own import_from_nir)"
            )


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


def neuron_params(node: Any, name: str, dt: float, convention: str = "nir") -> NeuronParams:
    """The Lava LIF parameters of a NIR neuron node (see the module table) under `convention`.

    Raises:
        UnsupportedGraphError: non-uniform decay/threshold, nonzero v_reset, a convention's stepping Lava cannot
            express (module docstring).
        ValueError: an unknown convention.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown convention {convention!r}; expected one of {list(CONVENTIONS)}")
    if convention != "nir":
        _check_convention(node, name, dt, convention)
        if convention == "norse" and isinstance(node, nir.IF):
            return _norse_if(node, name, dt)
        if convention == "norse" and isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            return _cuba(node, name, dt, convention)
    for cls in type(node).__mro__:
        if cls in _BUILDERS:
            return _BUILDERS[cls](node, name, dt)
    raise TypeError(f"node {name!r}: {type(node).__name__} is not a neuron type")
