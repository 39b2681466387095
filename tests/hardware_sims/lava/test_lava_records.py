"""The records snnav's Lava neuron keeps of itself equal what Lava's own probes see.

`RecordedLIFReset` writes its spikes, ``v`` and ``u`` from inside its step (no sink process, no RefPort phase). Here it
runs beside Lava's plain ``LIFReset`` with the same parameters and the same synaptic input, whose spikes go to Lava's
``RingBuffer`` sink and whose ``v`` and ``u`` Lava's ``Monitor`` reads after every step (a RefPort in the
post-management phase: what snnav's backend used before). Float and bit-accurate fixed point.
"""

from __future__ import annotations

import numpy as np
import pytest

import hardware_sims  # noqa: F401  (Lava's compatibility fixes, before any Lava import)

pytestmark = pytest.mark.lava


def _case(precision: str, rng: np.random.Generator, n: int):
    if precision == "fixed":
        x = rng.integers(0, 2, size=(3, n))
        w = rng.integers(-40, 120, size=(4, 3))
        params = {"du": 410, "dv": 820, "vth": 60, "bias_mant": rng.integers(-5, 40, size=4), "bias_exp": 6}
    else:
        x = (rng.random((3, n)) < 0.6).astype(float)
        w = rng.normal(0.5, 0.5, size=(4, 3))
        params = {"du": 0.2, "dv": 0.3, "vth": 1.0, "bias_mant": rng.normal(0.1, 0.1, size=4)}
    return x, w, params


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_a_neuron_records_what_lavas_sink_and_monitor_see(tmp_path, precision):
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIFReset
    from lava.proc.monitor.process import Monitor

    from hardware_sims.lava.procs.neuron import RECORDABLE, RecordedLIFReset

    n, shape = 16, (4,)
    x, w, params = _case(precision, np.random.default_rng(3), n)
    paths = {name: str(tmp_path / f"{name}.npy") for name in RECORDABLE}
    files = {name: np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, *shape))
             for name, path in paths.items()}
    source, dense = Source(data=x), Dense(weights=w)
    recorded = RecordedLIFReset(shape=shape, reset_interval=6, reset_offset=3, records=paths, **params)
    plain = LIFReset(shape=shape, reset_interval=6, reset_offset=3, **params)
    sink = Sink(shape=shape, buffer=n)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(recorded.a_in)
    dense.a_out.connect(plain.a_in)
    plain.s_out.connect(sink.a_in)
    monitors = {name: Monitor() for name in ("v", "u")}
    for name, monitor in monitors.items():
        monitor.probe(getattr(plain, name), n)
    try:
        sink.run(condition=RunSteps(num_steps=n),
                 run_cfg=Loihi2SimCfg(select_tag="fixed_pt" if precision == "fixed" else "floating_pt"))
        want = {"s_out": sink.data.get().T}
        for name, monitor in monitors.items():
            want[name] = monitor.get_data()[plain.name][name]
    finally:
        sink.stop()
    for name in RECORDABLE:
        np.testing.assert_array_equal(np.asarray(files[name]), np.asarray(want[name], dtype=np.float64), err_msg=name)
    assert 0 < np.count_nonzero(want["s_out"]) < want["s_out"].size  # some spikes, not all
    assert np.count_nonzero(want["v"]) > n  # the state moves (and the periodic reset zeroes it)


def test_an_unknown_record_is_refused(tmp_path):
    from hardware_sims.lava.procs.neuron import RecordedLIFReset

    with pytest.raises(ValueError, match=r"cannot record \['a_out'\]"):
        RecordedLIFReset(shape=(2,), records={"a_out": str(tmp_path / "a.npy")}, name="n1")
