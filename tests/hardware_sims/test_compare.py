"""hardware_sims.compare: where two backends part, and what fixed point did at that neuron."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from lava_graphs import DT, binary, conv_pool, lif_chain

from hardware_sims.compare import Trace, compare_traces, quantization_at, trace_of
from hardware_sims.emulator import emulate
from hardware_sims.fixed_point import formats as lf

T, B = 12, 3


def _inputs(graph, rng):
    shape = tuple(int(s) for s in next(n for n in graph.nodes.values() if isinstance(n, nir.Input)).input_type["input"])
    name = next(k for k, n in graph.nodes.items() if isinstance(n, nir.Input))
    return {name: binary(rng, T, B, shape)}


def _neurons(graph):
    return [k for k, n in graph.nodes.items() if isinstance(n, (nir.LIF, nir.CubaLIF))]


def _run(graph, xs, precision, name, runner=emulate, **kw):
    return trace_of(runner(graph, xs, precision=precision, record_state=_neurons(graph), **kw), name)


@pytest.mark.lava
def test_lava_fixed_equals_the_emulator_and_float_parts_at_a_named_node():
    from hardware_sims.lava.run import run_lava

    rng = np.random.default_rng(7)
    graph = conv_pool(rng)
    xs = _inputs(graph, rng)
    traces = [_run(graph, xs, "float", "emulator-float"), _run(graph, xs, "fixed", "emulator-fixed"),
              _run(graph, xs, "fixed", "lava-fixed", runner=run_lava)]
    comparison = compare_traces(graph, traces)
    same = comparison.pair("emulator-fixed", "lava-fixed")
    assert same.agree and same.first is None and same.spike_mismatches == 0
    assert all(d.mismatches == 0 for d in same.nodes) and {d.node for d in same.nodes} >= {"lif", "thr", "out"}
    for fixed in ("emulator-fixed", "lava-fixed"):
        parted = comparison.pair("emulator-float", fixed)
        assert not parted.agree and parted.first.node == "lif" and parted.first.kind == "spikes"
        first = parted.first
        values = first.values
        assert values["emulator-float"]["out"] != values[fixed]["out"]  # they part here ...
        assert {"v", "u"} <= set(values[fixed]) and {"v", "u"} <= set(values["emulator-float"])
        for trace in traces[:2]:  # ... and nowhere before: no spike of any node differs at an earlier step
            rec = trace.records["lif"]
            assert rec.shape == (T, B, 3, 8, 7)
        assert all(d.first_step is None or d.first_step >= first.step for d in parted.nodes)
        assert [q.parameter for q in first.quantization][:2] == ["weights conv", "dv"]
    assert comparison.pair("emulator-fixed", "lava-fixed").first is None  # identical twins, both directions


@pytest.mark.parametrize("bits", [8, 3])
def test_the_quantization_at_the_divergent_neuron_is_the_quantizers(bits):
    rng = np.random.default_rng(3)
    graph = lif_chain(rng)
    xs = _inputs(graph, rng)
    fixed = _run(graph, xs, "fixed", "fixed", quant_options={"weight_bits": bits})
    comparison = compare_traces(graph, [_run(graph, xs, "float", "float"), fixed])
    (pair,) = comparison.pairs
    first = pair.first
    assert first.node in ("lif1", "lif2") and first.kind == "spikes"
    found = {q.parameter: q for q in first.quantization}
    plan = fixed.plan
    syn = next(p for p in plan.processes.values() if p.kind == "dense" and p.node == ("fc1" if first.node == "lif1"
                                                                                      else "fc2"))
    w = found[f"weights {syn.name}"]
    q = plan.quant.synapses[syn.name]
    real = np.asarray(syn.params["weights"])[first.neuron]
    deq = q.dequantize()[first.neuron]
    assert w.count == real.size and w.rounded == int(np.count_nonzero(deq != real)) and w.clipped == 0
    assert w.error == pytest.approx(np.abs(deq - real).max()) and w.fixed_value in deq and w.float_value in real
    assert f"{bits}-bit mantissas" in w.note
    neuron = next(p for p in plan.processes.values() if p.kind == "neuron" and p.node == first.node)
    lif = plan.quant.neurons[neuron.name]
    assert found["vth"].fixed_value == lif.vth_mant * 2**lf.VTH_SHIFT / lif.scale
    assert found["u"].fixed_value == fixed.records[f"{first.node}#u"][first.step, first.sample].ravel()[first.neuron]
    v = found["v before the reset"]  # against the float run's: the difference that flipped the spike
    assert v.fixed_value == first.values["fixed"]["v_pre"] and v.float_value == first.values["float"]["v_pre"]
    assert v.error == pytest.approx(abs(v.fixed_value - v.float_value)) and v.status == "differs"
    for values in first.values.values():  # the membrane before the reset explains each side's spike
        assert (values["v_pre"] > values["vth"]) == bool(values["out"])
        if not values["out"]:
            assert values["v_pre"] == pytest.approx(values["v"], abs=1e-9)
    if bits == 3:  # 3-bit weights: coarse enough that some weights of the neuron land far from their float value
        assert w.error > 0.05 and w.rounded == w.count


def test_over_quantized_weights_part_earlier_and_more_than_8_bit():
    rng = np.random.default_rng(3)
    graph = lif_chain(rng)
    xs = _inputs(graph, rng)
    ref = _run(graph, xs, "float", "float")
    pairs = {bits: compare_traces(graph, [ref, _run(graph, xs, "fixed", f"fixed{bits}",
                                                    quant_options={"weight_bits": bits})]).pairs[0]
             for bits in (8, 2)}
    assert pairs[2].spike_mismatches > pairs[8].spike_mismatches
    assert pairs[2].nodes[0].rate >= pairs[8].nodes[0].rate  # ranked first: the most divergent node


def test_a_clipped_decay_is_named_at_the_neuron():
    """A CubaLIF whose current never decays (tau_syn huge): du = dt/tau_syn rounds to -1 -> clipped to 0."""
    rng = np.random.default_rng(0)
    nodes = {"x": nir.Input(input_type=np.array([4])),
             "fc": nir.Linear(weight=rng.normal(0.3, 0.3, size=(5, 4))),
             "cuba": nir.CubaLIF(tau_syn=np.full(5, 1e6), tau_mem=np.full(5, 2e-3), r=np.ones(5),
                                 v_leak=np.zeros(5), v_threshold=np.ones(5), w_in=np.ones(5)),
             "out": nir.Output(output_type=np.array([5]))}
    graph = nir.NIRGraph(nodes, [("x", "fc"), ("fc", "cuba"), ("cuba", "out")], metadata={"dt": DT})
    xs = {"x": binary(rng, T, B, (4,))}
    fixed = _run(graph, xs, "fixed", "fixed")
    found = {q.parameter: q for q in quantization_at(fixed, "cuba", 2, step=3, sample=0)}
    assert found["du"].status == "clipped" and found["du"].clipped == 1
    assert found["du"].fixed_value == 1 / lf.DECAY_UNITY and found["du"].float_value < 1e-6
    assert found["v"].status == "no reference" and "input x" not in found  # binary input: nothing rounded
    assert quantization_at(_run(graph, xs, "float", "float"), "cuba", 2) == ()  # a float trace: nothing quantized


def test_identical_traces_agree_and_bad_input_is_refused():
    rng = np.random.default_rng(1)
    graph = lif_chain(rng)
    xs = _inputs(graph, rng)
    a = _run(graph, xs, "float", "a")
    comparison = compare_traces(graph, [a, Trace("b", a.records, a.plan, a.predictions)])
    assert comparison.pairs[0].agree and comparison.pairs[0].prediction_agreement == 1.0
    assert comparison.order.index("lif1") < comparison.order.index("lif2")
    with pytest.raises(ValueError, match="at least two traces"):
        compare_traces(graph, [a])
    short = Trace("c", {k: v[:, :1] for k, v in a.records.items()})
    with pytest.raises(ValueError, match="cannot be compared"):
        compare_traces(graph, [a, short])
