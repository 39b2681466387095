"""A minimal end-to-end Lava run, used by ``snnav info --check-lava`` and the install tests.

It proves that the installed lava-nc runs a real process graph on ``Loihi2SimCfg``: a spike source drives a ``Dense``
layer into ``LIF`` neurons (floating point), and the LIF output spikes are compared against an independent NumPy
evaluation of Lava's documented LIF update:

    u[t] = u[t-1] * (1 - du) + a_in[t]
    v[t] = v[t-1] * (1 - dv) + u[t] + bias
    s[t] = v[t] > vth ;  v[t] = 0 where s[t]

``Dense`` delivers the weighted spikes of step t to the LIF on step t + 1 (one step of synaptic latency), which the
NumPy reference models explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sims.lava import compat as lava_compat

lava_compat.apply()


@dataclass(frozen=True)
class LavaCheckResult:
    """Spikes from Lava and from the NumPy reference, shape (neurons, steps) each."""

    lava_spikes: np.ndarray
    reference_spikes: np.ndarray

    @property
    def agree(self) -> bool:
        return bool(np.array_equal(self.lava_spikes, self.reference_spikes))


def reference_lif(inputs: np.ndarray, weights: np.ndarray, du: float, dv: float, vth: float) -> np.ndarray:
    """NumPy evaluation of Dense -> LIF for binary ``inputs`` of shape (n_in, steps); returns spikes (n_out, steps)."""
    n_out, steps = weights.shape[0], inputs.shape[1]
    u = np.zeros(n_out)
    v = np.zeros(n_out)
    out = np.zeros((n_out, steps))
    for t in range(steps):
        a_in = weights @ inputs[:, t - 1] if t > 0 else np.zeros(n_out)  # one step of Dense latency
        u = u * (1 - du) + a_in
        v = v * (1 - dv) + u
        s = v > vth
        v[s] = 0.0
        out[:, t] = s
    return out


def run_lava_check(steps: int = 20, seed: int = 0) -> LavaCheckResult:
    """Run RingBuffer source -> Dense -> LIF -> RingBuffer sink on Loihi2SimCfg and the NumPy reference."""
    from lava.magma.core.run_conditions import RunSteps  # noqa: PLC0415  (lava: optional, heavy)
    from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: PLC0415  (lava: optional, heavy)
    from lava.proc.dense.process import Dense  # noqa: PLC0415  (lava: optional, heavy)
    from lava.proc.io.sink import RingBuffer as Sink  # noqa: PLC0415  (lava: optional, heavy)
    from lava.proc.io.source import RingBuffer as Source  # noqa: PLC0415  (lava: optional, heavy)
    from lava.proc.lif.process import LIF  # noqa: PLC0415  (lava: optional, heavy)

    rng = np.random.default_rng(seed)
    n_in, n_out = 6, 4
    inputs = (rng.random((n_in, steps)) < 0.4).astype(float)
    weights = rng.uniform(-0.5, 1.5, size=(n_out, n_in))
    du, dv, vth = 0.5, 0.25, 2.0

    source = Source(data=inputs)
    dense = Dense(weights=weights)
    lif = LIF(shape=(n_out,), du=du, dv=dv, vth=vth, bias_mant=0.0)
    sink = Sink(shape=(n_out,), buffer=steps)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    try:
        lif.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        lava_spikes = np.asarray(sink.data.get())
    finally:
        lif.stop()
    return LavaCheckResult(lava_spikes=lava_spikes, reference_spikes=reference_lif(inputs, weights, du, dv, vth))
