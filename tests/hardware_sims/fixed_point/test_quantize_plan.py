"""quantize_plan: one state scale per fan-in group, message exponents along the plan, extension port formats."""

from __future__ import annotations

import dataclasses

import nir
import numpy as np
import pytest
import scipy.sparse

import hardware_sims  # noqa: F401
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.plan_quantizer import quantize_plan
from hardware_sims.fixed_point.quantize import choose_state_exp
from hardware_sims.fixed_point.reference import dense_fixed
from hardware_sims.plan.lowering import build_plan
from hardware_sims.plan.plan import Connection, Plan, ProcessSpec

RNG = np.random.default_rng(0)


def _spec(name, kind, shape, graded_in=False, **params):
    return ProcessSpec(name, kind, name, "node", tuple(shape), None, 0, 0, graded_in, params)


def _neuron(name, n, vth, dv=0.5, bias=0.0, read="s_out"):
    return _spec(name, "neuron", (n,), True, nir_type="LIF", du=1.0, dv=dv, vth=vth, bias=np.full(n, bias), read=read)


def _dense(name, n_out, n_in, scale=1.0, graded_in=False):
    return _spec(name, "dense", (n_out,), graded_in, weights=RNG.uniform(-scale, scale, (n_out, n_in)))


def _plan(specs, edges):
    conns = tuple(Connection(s, d, p) for s, d, p in edges)
    return Plan({s.name: s for s in specs}, conns, {"x": "x"}, {"x": (4,)}, (), {}, {}, 2, 1e-3)


def test_small_nir_graph_end_to_end():
    w1 = RNG.uniform(-1, 1, (5, 4))
    lif = nir.LIF(tau=np.full(5, 2e-3), r=np.ones(5), v_leak=np.zeros(5), v_threshold=np.ones(5), v_reset=np.zeros(5))
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([4])), "fc": nir.Affine(weight=w1, bias=np.full(5, 0.1)),
               "lif": lif, "fc2": nir.Linear(weight=RNG.uniform(-1, 1, (3, 5))),
               "li": nir.LI(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3)),
               "output": nir.Output(output_type=np.array([3]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "li"), ("li", "output")],
        metadata={"dt": 1e-3})
    plan = build_plan(graph)
    fixed, report = quantize_plan(plan, input_exp=6)
    q = fixed.quant
    assert fixed.precision == "fixed" and plan.precision == "float" and q.report is report
    assert q.state_exps["fc"] == q.state_exps["lif"] == choose_state_exp(1.0, bias_max=0.05)  # bias = dt/tau * 0.1
    assert q.state_exps["fc2"] == q.state_exps["li"] == choose_state_exp(np.inf, v_max=64.0)
    assert q.message_exps["input"] == 6 and q.synapses["fc"].input_exp == 6 and q.synapses["fc2"].input_exp == 0
    assert q.read_exp("li", "v") == 12 + q.state_exps["li"] and q.read_exp("fc2", "a_out") == 6 + q.state_exps["li"]
    assert q.neurons["lif"].vth_mant == 2 ** (6 + q.state_exps["lif"]) and q.neurons["lif"].bias_mant.shape == (5,)
    assert [r.name for r in report.layers] == ["lif", "li", "fc", "fc2"]
    # the scale contract: a real input x through fc arrives in lif's u as x * w * 2**(12 + state_exp)
    x = np.array([0.5, -0.25, 1.0, 0.0])
    a = dense_fixed(q.synapses["fc"].mant, q.synapses["fc"].exp, np.rint(x * 2**6), num_message_bits=8)
    real = (a << lf.ACT_SHIFT) / 2.0 ** q.read_exp("lif", "v")
    np.testing.assert_allclose(real, plan.processes["fc"].params["weights"] @ x, atol=4 * q.synapses["fc"].step)
    with pytest.raises(ValueError, match="float plan"):
        quantize_plan(fixed)


def test_a_synapse_shared_by_two_populations_puts_them_in_one_group():
    specs = [_spec("x", "input", (4,)), _dense("s1", 3, 4), _dense("s2", 3, 4), _neuron("n1", 3, vth=1.0),
             _neuron("n2", 3, vth=100.0), _neuron("n3", 3, vth=1.0), _spec("d", "delay", (3,), steps=np.ones(3))]
    edges = [("x", "s1", "s_in"), ("x", "s2", "s_in"), ("s1", "n1", "a_in"), ("s1", "d", "a_in"),
             ("d", "n2", "a_in"), ("s2", "n2", "a_in"), ("s2", "n3", "a_in")]  # s1 reaches n2 through a delay
    q = quantize_plan(_plan(specs, edges))[0].quant
    expected = min(choose_state_exp(1.0), choose_state_exp(100.0))
    assert {q.state_exps[n] for n in ("s1", "s2", "n1", "n2", "n3")} == {expected}
    assert quantize_plan(_plan(specs, edges), state_exp=0)[0].quant.neurons["n1"].vth_mant == 64  # slayer's
    alone = quantize_plan(_plan([specs[0], specs[1], specs[3]], [edges[0], edges[2]]))[0].quant
    assert alone.state_exps["n1"] == choose_state_exp(1.0) > expected


def test_spikes_straight_into_a_neuron_fix_its_scale():
    specs = [_spec("x", "input", (4,)), _dense("s", 4, 4), _neuron("n", 4, vth=1.0), _neuron("t", 4, vth=1.5, dv=1.0)]
    edges = [("x", "s", "s_in"), ("s", "n", "a_in"), ("n", "t", "a_in")]
    q, report = quantize_plan(_plan(specs, edges))
    t = q.quant.neurons["t"]
    assert q.quant.state_exps["t"] == -lf.ACT_SHIFT and t.scale == 2**6  # a spike is a_in = 1 -> u = 64 = 1.0
    assert t.vth_mant == 2 and t.errors["vth"] == 0.5  # thresholds on the integer grid: the report shows the cost
    assert "dv" in t.clipped and {r.name: r for r in report.layers}["t"].max_abs_error == 0.5


def _extension_plan():
    specs = [_spec("x", "input", (4,)), _dense("s", 4, 4), _neuron("n", 4, vth=1.0),
             _spec("g", "sparse", (4,), False, weights=scipy.sparse.diags(np.full(4, 0.25)).tocsr()),
             _spec("e", "extension", (4,), True, node=None, type_name="snnav.Gate", window=0),
             _dense("s2", 3, 4, graded_in=True), _neuron("m", 3, vth=1.0)]
    edges = [("x", "s", "s_in"), ("s", "n", "a_in"), ("n", "g", "s_in"), ("g", "e", "x"), ("n", "e", "gate"),
             ("e", "s2", "s_in"), ("s2", "m", "a_in")]
    return _plan(specs, edges)


def test_extension_ports_and_graded_outputs():
    seen = {}

    def out_exp(name, formats):
        seen[name] = formats
        return 9

    q = quantize_plan(_extension_plan(), source_exps=out_exp)[0].quant
    g = q.synapses["g"]
    assert seen["e"] == {"x": (lf.ACT_SHIFT + 6, g.a_out_bound), "gate": (0, 1)}  # gain synapse a_out; spikes
    assert q.port_formats == {("e", "x"): seen["e"]["x"], ("e", "gate"): (0, 1)}
    assert g.state_exp == 6 and np.all(g.dequantize().toarray() == np.diag(np.full(4, 0.25)))
    assert q.message_exps["e"] == 9 and q.synapses["s2"].input_exp == 9
    assert quantize_plan(_extension_plan(), source_exps={"e": 9})[0].quant.synapses["s2"].input_exp == 9
    with pytest.raises(ValueError, match="source_exps"):
        quantize_plan(_extension_plan())


def test_mixed_exponents_into_one_port_are_refused():
    plan = _extension_plan()
    conns = plan.connections + (Connection("n", "e", "x"),)  # spikes (exp 0) beside the gain synapse's a_out
    with pytest.raises(ValueError, match="different exponents"):
        quantize_plan(dataclasses.replace(plan, connections=conns), source_exps={"e": 9})
