"""Bring your own network: snnTorch's and Norse's own graphs on the hardware backends, against the libraries' own
simulations, spike for spike.

* a constant (an upstream Linear bias) into a CubaLIF's current runs (bias source, `hardware_sims.plan.materialize`):
  snnTorch's ``Synaptic`` and Norse's ``LIFCell`` after a biased ``Linear``;
* the convention adapters (`hardware_sims.plan.neurons`): Norse's ``LIFCell`` stepping (its current jumps by the
  input: no ``dt/tau_syn`` factor) under ``convention="norse"``; what Lava cannot express is refused with the reason;
* `detect_convention` on the libraries' exports.

The libraries run in float32, the backends in float64: a spike could differ only at a last-bit tie at the threshold
(SEMANTICS.md §4); none occurs on these inputs, and each test checks that every layer fires.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from export.interpreter import Interpreter
from hardware_sims.emulator import emulate
from hardware_sims.plan import UnsupportedGraphError, build_plan
from hardware_sims.plan.conventions import detect_convention
from hardware_sims.plan.errors import ConventionError

snn = pytest.importorskip("snntorch")
norse = pytest.importorskip("norse.torch")

T, B = 20, 4
SNNTORCH_DT, NORSE_DT = 1e-4, 1e-3


def _quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


# ------------------------------------------------------------------------------------------------- the models


def snntorch_synaptic():
    """Linear(6, 8, bias) -> Synaptic with NIR's reset (to zero, same step): the graph's semantics in snnTorch."""
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(1)
    fc = torch.nn.Linear(6, 8)
    with torch.no_grad():
        fc.weight.mul_(0.6)
        fc.bias.copy_(torch.linspace(-0.1, 0.25, 8))  # a constant current: some neurons fire with no input
    cell = snn.Synaptic(alpha=torch.full((8,), 0.75), beta=torch.full((8,), 0.8), threshold=torch.ones(8),
                        init_hidden=True, reset_mechanism="zero", reset_delay=False)
    net = torch.nn.Sequential(fc, cell)
    return net, _quiet(export_to_nir, net, torch.zeros(6))


def run_snntorch(net, x: np.ndarray) -> np.ndarray:
    from snntorch import utils

    utils.reset(net)
    out = []
    with torch.no_grad():
        for t in range(x.shape[0]):
            out.append(net(torch.tensor(x[t], dtype=torch.float32)).numpy())
    return np.stack(out)


def norse_lifcell():
    """Linear(6, 8, bias) -> Norse LIFCell, Norse's export with tau as it should be (tau <- tau / dt, norse#411)."""
    from norse.torch.functional.lif import LIFParameters

    torch.manual_seed(2)
    fc = torch.nn.Linear(6, 8)
    with torch.no_grad():
        fc.weight.mul_(2.0)
        fc.bias.copy_(torch.linspace(-0.5, 1.5, 8))
    p = LIFParameters(tau_syn_inv=torch.full((8,), 200.0), tau_mem_inv=torch.full((8,), 100.0),
                      v_leak=torch.zeros(8), v_th=torch.full((8,), 0.5), v_reset=torch.zeros(8))
    model = torch.nn.Sequential(fc, norse.LIFCell(p, dt=NORSE_DT))
    graph = _quiet(norse.to_nir, model, torch.zeros(1, 6))
    cuba = graph.nodes["1"]
    cuba.tau_mem, cuba.tau_syn = cuba.tau_mem / NORSE_DT, cuba.tau_syn / NORSE_DT  # norse#411
    return model, graph


def run_norse_native(model, x: np.ndarray) -> np.ndarray:
    state, out = None, []
    with torch.no_grad():
        for t in range(x.shape[0]):
            z, state = model[1](model[0](torch.tensor(x[t], dtype=torch.float32)), state)
            out.append(z.numpy())
    return np.stack(out)


def inputs(shape, seed=0):
    return (np.random.default_rng(seed).random((T, B, *shape)) < 0.3).astype(np.float64)


def spikes_of(result, node):
    return result.records[node].reshape(T, B, -1)


def assert_fires(ref):
    assert 0.02 < ref.mean() < 0.9, ref.mean()


# ------------------------------------------------------------------------------------------- bias into current


def test_a_bias_into_a_cubalif_current_gets_a_bias_source():
    _, graph = snntorch_synaptic()
    plan = build_plan(graph, dt=SNNTORCH_DT)
    bias = [p for p in plan.processes.values() if p.role == "bias"]
    assert sorted(p.kind for p in bias) == ["dense", "neuron"]
    src = next(p for p in bias if p.kind == "neuron")
    syn = next(p for p in bias if p.kind == "dense")
    assert src.latency == syn.live_step == plan.processes["1"].live_step - 1
    # what u receives every step: the neuron's input gain times the Linear's bias
    c = {k: np.asarray(getattr(graph.nodes["1"], k), dtype=np.float64) for k in ("tau_mem", "tau_syn", "r", "w_in")}
    gain = (SNNTORCH_DT / c["tau_mem"]) * c["r"] * (SNNTORCH_DT / c["tau_syn"]) * c["w_in"]
    bias = np.asarray(graph.nodes["0"].bias, dtype=np.float64)
    np.testing.assert_allclose(syn.params["weights"][:, 0], gain * bias, rtol=1e-12)


@pytest.mark.parametrize("precision", ["float", "fixed"])
def test_biased_cubalif_on_the_emulator_equals_the_interpreter(precision):
    _, graph = snntorch_synaptic()
    x = inputs((6,))
    ref = Interpreter(graph, dt=SNNTORCH_DT, dtype=torch.float64).run({"input": torch.tensor(x)}).spikes["1"].numpy()
    assert_fires(ref)
    got = spikes_of(emulate(graph, {"input": x}, dt=SNNTORCH_DT, precision=precision), "1")
    wrong = int((got != ref).sum())
    assert wrong == 0 if precision == "float" else wrong <= 0.02 * ref.size


@pytest.mark.lava
def test_snntorch_synaptic_after_a_biased_linear_equals_snntorch():
    from hardware_sims.lava.run import run_lava

    net, graph = snntorch_synaptic()
    x = inputs((6,))
    ref = run_snntorch(net, x)
    assert_fires(ref)
    for result in (emulate(graph, {"input": x}, dt=SNNTORCH_DT, precision="float"),
                   run_lava(graph, {"input": x}, dt=SNNTORCH_DT)):
        assert int((spikes_of(result, "1") != ref).sum()) == 0, result.backend


@pytest.mark.lava
def test_norse_lifcell_graph_with_bias_equals_norses_import():
    """Under NIR's convention: Norse's own simulation of the NIR graph (norse.torch.from_nir: LIBox synapse +
    LIFBox) equals the emulator and Lava."""
    from export.interop import run_imported, to_norse
    from hardware_sims.lava.run import run_lava

    _, graph = norse_lifcell()
    graph.metadata = {"dt": NORSE_DT}
    x = inputs((1, 6))
    ref = run_imported(_quiet(to_norse, graph), torch.tensor(x, dtype=torch.float32)).output.numpy()
    ref = ref.reshape(T, B, -1)
    assert_fires(ref)
    for result in (emulate(graph, {"input": x}, precision="float"), run_lava(graph, {"input": x})):
        assert int((spikes_of(result, "1") != ref).sum()) == 0, result.backend


@pytest.mark.lava
def test_biased_cubalif_fixed_point_lava_equals_the_emulator():
    from hardware_sims.lava.run import run_lava

    _, graph = snntorch_synaptic()
    x = inputs((6,))
    lava = run_lava(graph, {"input": x}, dt=SNNTORCH_DT, precision="fixed", record_state=["1"])
    emu = emulate(graph, {"input": x}, dt=SNNTORCH_DT, precision="fixed", record_state=["1"])
    assert lava.records["1"].sum() > 0
    for name in ("1", "1#v", "1#u"):
        np.testing.assert_array_equal(lava.records[name], emu.records[name], err_msg=name)


# ------------------------------------------------------------------------------------------------ conventions


@pytest.mark.lava
def test_norse_convention_equals_norses_lifcell():
    from hardware_sims.lava.run import run_lava

    model, graph = norse_lifcell()
    x = inputs((1, 6))
    ref = run_norse_native(model, x).reshape(T, B, -1)
    assert_fires(ref)
    nir_way = spikes_of(emulate(graph, {"input": x}, precision="float", dt=NORSE_DT), "1")
    assert int((nir_way != ref).sum()) > 0  # the convention matters on this graph
    for result in (emulate(graph, {"input": x}, precision="float", convention="norse"),
                   run_lava(graph, {"input": x}, convention="norse")):
        assert result.plan.convention == "norse"
        assert int((spikes_of(result, "1") != ref).sum()) == 0, result.backend


def test_norse_convention_folds_no_synaptic_factor():
    _, graph = norse_lifcell()
    nir_plan, norse_plan = build_plan(graph, dt=NORSE_DT), build_plan(graph, convention="norse")
    assert norse_plan.dt == NORSE_DT  # Norse's exporter dt when the graph has none
    cs = NORSE_DT / float(graph.nodes["1"].tau_syn.mean())
    np.testing.assert_allclose(norse_plan.processes["0"].params["weights"] * cs,
                               nir_plan.processes["0"].params["weights"], rtol=1e-6)
    assert norse_plan.processes["1"].params["du"] == pytest.approx(cs)


def test_norse_convention_refuses_a_nonzero_v_leak():
    _, graph = norse_lifcell()
    graph.nodes["1"].v_leak = torch.full((8,), 0.1)
    with pytest.raises(UnsupportedGraphError, match=r"node '1' \(CubaLIF\): convention 'norse' starts every sample "
                                                    r"at v = v_leak"):
        build_plan(graph, convention="norse")


def test_snntorch_convention_refuses_the_subtractive_reset():
    _, graph = snntorch_synaptic()
    with pytest.raises(UnsupportedGraphError, match=r"node '1' \(CubaLIF\).*subtract the threshold one step after"):
        build_plan(graph, convention="snntorch")


def test_snntorch_convention_checks_snntorchs_scaling():
    _, graph = snntorch_synaptic()
    with pytest.raises(UnsupportedGraphError, match=r"needs w_in = tau_syn/dt"):
        build_plan(graph, dt=1e-3, convention="snntorch")


def test_an_unknown_convention_is_refused():
    _, graph = snntorch_synaptic()
    with pytest.raises(ConventionError, match="unknown convention 'lava'"):
        build_plan(graph, dt=SNNTORCH_DT, convention="lava")


def test_the_producer_is_detected_from_the_parameters():
    _, snn_graph = snntorch_synaptic()
    _, norse_graph = norse_lifcell()
    assert detect_convention(snn_graph)[0] == "snntorch"
    assert detect_convention(norse_graph)[0] == "norse"
    norse_graph.metadata = {"dt": NORSE_DT}
    assert detect_convention(norse_graph)[0] == "nir"
    with pytest.raises(UnsupportedGraphError, match="subtract"):  # detected, then refused: the reset
        build_plan(snn_graph, convention="auto")
    plan = build_plan(norse_lifcell()[1], convention="auto")
    assert plan.convention == "norse" and "w_in = r = 1" in plan.convention_note


def test_a_graph_with_a_bias_source_is_counted():
    from hardware_sims.counts import count_activity

    _, graph = snntorch_synaptic()
    x = inputs((6,))
    result = emulate(graph, {"input": x}, dt=SNNTORCH_DT, precision="float")
    counts = count_activity(result, graph)
    assert set(counts.nodes) == {"input", "0", "1"}  # the bias source is the compiler's, not a node
    assert counts.totals["spikes"] > 0
