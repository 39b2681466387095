"""Lava floating point against the NIR interpreter (float64), spike for spike, samples back to back.

Each run starts one OS process per Lava process (graphs here have at most 13), so the graphs are small and few.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading

import nir
import numpy as np
import psutil
import pytest
import torch
from lava_graphs import DT, binary, conv_pool, lif_chain, recurrent, residual, two_inputs_readout, wiring

from export.interpreter import Interpreter
from export.ir.extensions import ComplementaryFusion
from hardware_sims.lava import run as run_module
from hardware_sims.lava.run import run_lava
from hardware_sims.plan import InputBindingError, LavaRunError, Plan, build_plan

T, B = 8, 3


def reference(graph, inputs):
    return Interpreter(graph, dtype=torch.float64).run({k: torch.tensor(v) for k, v in inputs.items()})


def mismatches(result, ref) -> dict[str, int | float]:
    """Per recorded node: differing spikes (spiking nodes) or the largest absolute difference (others)."""
    out = {}
    for name, lava in result.records.items():
        expected = ref.records[name].numpy()
        assert lava.shape == expected.shape, name
        out[name] = int((lava != expected).sum()) if name in ref.spikes else float(np.abs(lava - expected).max())
    return out


def assert_released(cleanup: dict) -> None:
    """No Lava process alive, no shared memory segment, no work folder left."""
    alive = [p for p in cleanup["pids"] if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    assert alive == []
    assert [n for n in cleanup["shm_names"] if os.path.exists(f"/dev/shm/{n}")] == []
    assert cleanup["pids"] and cleanup["shm_names"]  # the check saw a real run
    if "workdir" in cleanup:
        assert not os.path.exists(cleanup["workdir"])


def inputs_for(plan: Plan, rng, graded=()) -> dict[str, np.ndarray]:
    return {n: rng.random((T, B, *s)) * 1.5 if n in graded else binary(rng, T, B, s)
            for n, s in plan.input_shapes.items()}


CASES = {
    "lif_chain": (lif_chain, ()),
    "conv_pool": (conv_pool, ()),
    "residual": (residual, ()),
    "two_inputs_readout": (two_inputs_readout, ("visual",)),
    "recurrent": (recurrent, ()),
    "wiring": (wiring, ("x",)),
}


@pytest.mark.lava
@pytest.mark.parametrize("case", sorted(CASES))
def test_float_matches_interpreter_spike_for_spike(case):
    builder, graded = CASES[case]
    rng = np.random.default_rng(7)
    graph = builder(rng)
    inputs = inputs_for(build_plan(graph), rng, graded)
    handlers = list(logging.getLogger().handlers)
    result = run_lava(graph, inputs)
    ref = reference(graph, inputs)
    diff = mismatches(result, ref)
    for name in ref.spikes:  # every spiking layer is active in every sample, and not saturated
        rate = result.records[name].mean(axis=(0, *range(2, result.records[name].ndim)))
        assert np.all(rate > 0) and np.all(rate < 1), (name, rate)
    assert {n: d for n, d in diff.items() if n in ref.spikes and d} == {}
    assert all(d <= 1e-12 for n, d in diff.items() if n not in ref.spikes), diff
    for name, out in result.outputs.items():
        np.testing.assert_allclose(out, ref.outputs[name].numpy(), rtol=0, atol=1e-12)
    assert_released(result.cleanup)
    assert logging.getLogger().handlers == handlers  # Lava's per-process log handlers are gone


@pytest.mark.lava
@pytest.mark.parametrize("budget", [run_module.FILE_BUDGET_BYTES, 1], ids=["one-chunk", "chunk-per-sample"])
def test_samples_are_independent_after_the_reset(budget):
    rng = np.random.default_rng(3)
    graph = two_inputs_readout(rng, time_steps=T)
    inputs = inputs_for(build_plan(graph), rng, ("visual",))
    result = run_lava(graph, inputs, record=False, file_budget_bytes=budget)
    ref = reference(graph, inputs)
    np.testing.assert_allclose(result.outputs["logits"], ref.outputs["logits"].numpy(), atol=1e-12)
    assert np.all(np.abs(result.outputs["logits"][-1]) > 1e-3)  # the integrator ends each sample away from 0 ...
    unreset = reference(graph, {k: v.transpose(1, 0, *range(2, v.ndim)).reshape(T * B, 1, *v.shape[2:])
                                for k, v in inputs.items()}).outputs["logits"].numpy().reshape(B, T, -1)
    assert not np.allclose(unreset[1:].transpose(1, 0, 2), ref.outputs["logits"].numpy()[:, 1:])  # ... so a
    # missing reset would show in samples 1 and 2
    assert result.readout().shape == (B, 3) and result.readout_step == T - 1


def _without_delay(plan: Plan) -> Plan:
    """The plan with its alignment delay removed (its consumers read the undelayed source)."""
    (delay,) = plan.inserted_delays
    (src,) = [c.src for c in plan.inbound(delay.name)]
    connections = tuple(dataclasses.replace(c, src=src) if c.src == delay.name else c
                        for c in plan.connections if c.dst != delay.name)
    processes = {n: p for n, p in plan.processes.items() if n != delay.name}
    return dataclasses.replace(plan, processes=processes, connections=connections)


@pytest.mark.lava
def test_a_misaligned_plan_mismatches():
    rng = np.random.default_rng(7)
    graph = residual(rng)
    plan = build_plan(graph)
    inputs = inputs_for(plan, rng)
    ref = reference(graph, inputs)
    diff = mismatches(run_lava(_without_delay(plan), inputs), ref)
    assert diff["lif1"] == diff["lif2"] == 0 and diff["lif3"] > 0


@pytest.mark.lava
def test_delay_process_matches_its_reference():
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from hardware_sims.lava.procs.delay import Delay, delay_reference

    rng = np.random.default_rng(0)
    steps, n = np.array([[0, 1, 3], [2, 2, 4]]), 20
    x = rng.normal(size=(n, 2, 3))
    source, sink = Source(data=x.transpose(1, 2, 0)), Sink(shape=(2, 3), buffer=n)
    delays = [Delay(shape=(2, 3), steps=steps, period=7, live_step=2),
              Delay(shape=(2, 3), steps=0, period=7, live_step=3, mute_preroll=True)]
    source.s_out.connect(delays[0].s_in)
    delays[0].s_out.connect(delays[1].s_in)
    delays[1].s_out.connect(sink.a_in)
    try:
        sink.run(condition=RunSteps(num_steps=n), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        got = sink.data.get().transpose(2, 0, 1)
    finally:
        sink.stop()
    expected = delay_reference(delay_reference(x, steps, 7, 2), 0, 7, 3, mute_preroll=True)
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(expected) > 20


@pytest.fixture
def cleanup_spy(monkeypatch):
    seen = {}
    original = run_module._cleanup_info

    def spy(runtime):
        info = original(runtime)
        if info["pids"]:
            seen.update(info)
        return info

    monkeypatch.setattr(run_module, "_cleanup_info", spy)
    return seen


@pytest.mark.lava
def test_lava_is_stopped_when_the_run_fails(monkeypatch, cleanup_spy):
    original = run_module._run_chunk

    def failing(net, n, period, cfg):
        run_module._run_steps(net, 3, cfg)
        raise RuntimeError("simulated failure inside a Lava run")

    monkeypatch.setattr(run_module, "_run_chunk", failing)
    rng = np.random.default_rng(0)
    graph = lif_chain(rng)
    with pytest.raises(LavaRunError, match="simulated failure"):
        run_lava(graph, inputs_for(build_plan(graph), rng))
    assert_released(cleanup_spy)
    assert original is not failing


@pytest.mark.lava
def test_lava_is_stopped_on_ctrl_c(monkeypatch, cleanup_spy):
    running = threading.Event()
    original = run_module._run_chunk

    def flagged(*args):
        running.set()
        original(*args)

    def interrupt():
        if running.wait(120):
            threading.Event().wait(0.5)
            os.kill(os.getpid(), signal.SIGINT)  # this process only, as a Ctrl-C reaches the foreground job

    monkeypatch.setattr(run_module, "_run_chunk", flagged)
    rng = np.random.default_rng(0)
    graph = lif_chain(rng)
    inputs = {"x": binary(rng, 5000, 1, (8,))}  # ~10 s of Lava steps: the interrupt lands inside the run
    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_lava(graph, inputs)
    assert_released(cleanup_spy)
    assert [c for c in psutil.Process().children(recursive=True) if "resource_tracker" not in " ".join(c.cmdline())] \
        == []


def test_unbound_and_unknown_inputs_are_named():
    graph = two_inputs_readout(np.random.default_rng(0))
    with pytest.raises(InputBindingError, match=r"unbound Input node\(s\) \['visual'\]"):
        run_lava(graph, {"audio": np.zeros((T, 1, 3, 4))})
    with pytest.raises(InputBindingError, match=r"unknown name\(s\) \['video'\]"):
        run_lava(graph, {"audio": np.zeros((T, 1, 3, 4)), "visual": np.zeros((T, 1, 5)), "video": 0})
    with pytest.raises(InputBindingError, match=r"expected an array \[T, B, \*\(5,\)\]"):
        run_lava(graph, {"audio": np.zeros((T, 1, 3, 4)), "visual": np.zeros((T, 1, 6))})


def test_a_window_longer_than_the_run_is_refused():
    nodes = {"a": nir.Input(input_type=np.array([2, 3])), "b": nir.Input(input_type=np.array([2, 3])),
             "fuse": ComplementaryFusion(shape=(2, 3), window=8),
             "lif": nir.LIF(tau=np.full((2, 3), 2e-3), r=np.ones((2, 3)), v_leak=np.zeros((2, 3)),
                            v_threshold=np.ones((2, 3))), "out": nir.Output(output_type=np.array([2, 3]))}
    edges = [("a", "fuse.spatial"), ("b", "fuse.temporal"), ("fuse", "lif"), ("lif", "out")]
    graph = nir.NIRGraph(nodes, edges, metadata={"dt": DT}, type_check=False)
    x = np.zeros((4, 1, 2, 3))
    with pytest.raises(InputBindingError, match="windows of 8 steps, but the run has T = 4"):
        run_lava(graph, {"a": x, "b": x})


@pytest.mark.lava
def test_fixed_point_runs_bit_exact_against_the_numpy_lif_reference():
    from hardware_sims.fixed_point.reference import dense_fixed, lif_fixed_step

    rng = np.random.default_rng(7)
    graph = lif_chain(rng)
    inputs = inputs_for(build_plan(graph), rng)
    fixed = run_lava(graph, inputs, precision="fixed")
    floating = run_lava(graph, inputs, record=False)
    plan, q = fixed.plan, fixed.plan.quant
    assert plan.precision == "fixed"
    x = np.rint(inputs["x"] * 2.0 ** q.message_exps["x"])
    for b in range(B):  # NIR time (Lava's one step per layer is aligned away), state reset per sample
        layer_in = x[:, b]
        for fc, lif in (("fc1", "lif1"), ("fc2", "lif2")):
            w, n = q.synapses[fc], q.neurons[lif]
            u = v = np.zeros(plan.processes[lif].shape, dtype=np.int64)
            spikes = []
            for t in range(T):
                a_in = dense_fixed(w.mant, w.exp, layer_in[t], num_message_bits=24)
                u, v, s = lif_fixed_step(u, v, a_in, n.du, n.dv, n.vth_mant, n.bias_mant, n.bias_exp)
                spikes.append(s)
            layer_in = np.array(spikes, dtype=np.int64)
            np.testing.assert_array_equal(fixed.records[lif][:, b], layer_in, err_msg=f"{lif} sample {b}")
    agree = np.mean(fixed.outputs["out"] == floating.outputs["out"])
    assert agree > 0.9, agree


@pytest.mark.lava
def test_rounding_can_flip_a_spike_at_the_threshold():
    """The minimal case where Lava float and the interpreter must differ (SEMANTICS.md §4): one neuron, two spikes.

    NIR: v <- v + c((0 - v) + w s); Lava: v <- v (1 - c) + (c w) s. With c = 0.1, w = 0.3 the second step gives
    0.057 and 0.056999999999999995; a threshold of the smaller value makes only the interpreter spike.
    """
    tau, w = 10 * DT, 0.3
    c = DT / tau
    nir_v = (c * w) + c * ((0.0 - c * w) + w)  # the interpreter's formula after two input spikes
    lava_v = (c * w) * (1 - c) + w * c
    assert nir_v != lava_v and abs(nir_v - lava_v) <= 2 * np.spacing(nir_v)
    threshold = min(nir_v, lava_v)
    nodes = {"x": nir.Input(input_type=np.array([1])), "w": nir.Linear(weight=np.array([[w]])),
             "lif": nir.LIF(tau=np.array([tau]), r=np.ones(1), v_leak=np.zeros(1), v_threshold=np.array([threshold])),
             "out": nir.Output(output_type=np.array([1]))}
    graph = nir.NIRGraph(nodes, [("x", "w"), ("w", "lif"), ("lif", "out")], metadata={"dt": DT})
    x = np.zeros((3, 1, 1))
    x[:2] = 1
    lava = run_lava(graph, {"x": x}).records["lif"][:, 0, 0]
    ref = reference(graph, {"x": x}).records["lif"].numpy()[:, 0, 0]
    assert ref.tolist() == [0, float(nir_v > threshold), 0] and lava.tolist() == [0, float(lava_v > threshold), 0]
    assert (lava != ref).sum() == 1


@pytest.mark.lava
def test_third_party_exports_run():
    """snnTorch's and Norse's own exports, compared with the interpreter under NIR semantics (convention "nir")."""
    import warnings

    snn = pytest.importorskip("snntorch")
    norse = pytest.importorskip("norse.torch")
    from norse.torch.functional.lif_box import LIFBoxParameters
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    leaky = lambda n, beta: snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), init_hidden=True)  # noqa
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), leaky(8, 0.8), torch.nn.Linear(8, 4), leaky(4, 0.6))
    with torch.no_grad():  # stronger weights: both layers fire within T steps
        net[0].weight.mul_(4).abs_()
        net[2].weight.mul_(4).abs_()
    params = LIFBoxParameters(tau_mem_inv=torch.full((8,), 100.0), v_leak=torch.zeros(8), v_th=torch.full((8,), 0.8))
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), norse.LIFBoxCell(params, dt=1e-3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graphs = {"snntorch": (export_to_nir(net, torch.zeros(6)), 1e-4, ()),  # snnTorch's exporter dt
                  "norse": (norse.to_nir(model, torch.zeros(1, 6)), 1e-3, (1,))}  # Norse keeps the batch axis
    x = 1.5 * (np.random.default_rng(0).random((T, B, 6)) < 0.5)
    for library, (graph, dt, lead) in graphs.items():
        inputs = {"input": x.reshape(T, B, *lead, 6)}
        result = run_lava(graph, inputs, dt=dt)
        ref = Interpreter(graph, dt=dt, dtype=torch.float64).run({"input": torch.tensor(inputs["input"])})
        assert ref.spikes and all(s.sum() > 0 for s in ref.spikes.values()), library
        assert {n: int((result.records[n] != s.numpy()).sum()) for n, s in ref.spikes.items()} == \
            {n: 0 for n in ref.spikes}, library


@pytest.mark.lava
def test_runs_a_nir_file(tmp_path):
    from export.ir.nirfile import write_graph

    rng = np.random.default_rng(7)
    graph = conv_pool(rng)
    write_graph(tmp_path / "conv_pool.nir", graph)
    inputs = inputs_for(build_plan(graph), rng)
    result = run_lava(tmp_path / "conv_pool.nir", inputs, record=["lif"])
    assert set(result.records) == {"lif", "out"}
    ref = reference(graph, inputs)
    assert np.array_equal(result.records["lif"], ref.records["lif"].numpy())
    assert np.array_equal(result.outputs["out"], ref.outputs["out"].numpy())
