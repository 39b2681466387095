"""Neuron state (membrane ``v`` and current ``u``) recorded with ``record_state`` by `emulate` and `run_lava`: the
same NIR-step alignment, identical integers in fixed point (equal up to float rounding in float) on sampled nodes and
steps -- small graphs (a CubaLIF with a decaying current among them) and, slow, a model export.
"""

from __future__ import annotations

import nir
import numpy as np
import pytest
from lava_graphs import DT, lif, lif_chain, recurrent, residual, two_inputs_readout
from test_emulator import case_inputs, small_model_case

import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)
from hardware_sims.emulator import emulate, with_membrane_readouts
from hardware_sims.plan import Plan, build_plan

T, B = 8, 3


def cuba_chain(rng) -> nir.NIRGraph:
    """Input(6) -> Linear -> CubaLIF (u decays: tau_syn = 3 dt) -> Linear -> LIF -> Output."""
    full = lambda shape, v: np.full(shape, float(v))  # noqa: E731
    nodes = {
        "x": nir.Input(input_type=np.array([6])),
        "w1": nir.Linear(weight=rng.normal(0.6, 0.5, (7, 6))),
        "cuba": nir.CubaLIF(tau_syn=full(7, 3e-3), tau_mem=full(7, 2e-3), r=full(7, 1.0), v_leak=full(7, 0.0),
                            v_threshold=full(7, 1.0), w_in=full(7, 1.0)),
        "w2": nir.Linear(weight=rng.normal(0.5, 0.8, (4, 7))),
        "lif": lif((4,), th=0.8),
        "out": nir.Output(output_type=np.array([4])),
    }
    edges = [("x", "w1"), ("w1", "cuba"), ("cuba", "w2"), ("w2", "lif"), ("lif", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


GRAPHS = {"lif_chain": (lif_chain, ()), "residual": (residual, ()), "recurrent": (recurrent, ()),
          "two_inputs_readout": (two_inputs_readout, ("visual",)), "cuba_chain": (cuba_chain, ())}


def _case(name: str):
    builder, graded = GRAPHS[name]
    rng = np.random.default_rng(3)
    plan = build_plan(builder(rng))
    neurons = [p.node for p in plan.of_kind("neuron")]
    return plan, case_inputs(plan, rng, graded), neurons


def _integers(plan: Plan, result, node: str, var: str) -> np.ndarray:
    """A fixed-point state record as the integers Lava holds (records are exact multiples of 2**-read_exp)."""
    ints = result.records[f"{node}#{var}"] * 2.0 ** result.plan.quant.read_exp(node, var)
    assert np.array_equal(ints, np.rint(ints)), f"{node}#{var} is not an integer record"
    return ints.astype(np.int64)


# ------------------------------------------------------------------------------------------------ without Lava


@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_recorded_state_follows_lavas_lif_update(precision):
    """Row t of ``#u``/``#v`` is the state at the end of NIR step t: ``v_t = v_{t-1} (1 - dv) + u_t + bias``
    (rounded toward zero in fixed point), reset to 0 exactly where the neuron spiked; a CubaLIF's current decays."""
    plan, inputs, neurons = _case("cuba_chain")
    result = emulate(plan, inputs, precision=precision, record_state=neurons)
    assert {f"{n}#{v}" for n in neurons for v in "uv"} <= set(result.records)
    for node in neurons:
        spikes = result.records[node] != 0
        if precision == "fixed":
            u, v = _integers(plan, result, node, "u"), _integers(plan, result, node, "v")
            p = result.plan.quant.neurons[node]
            pre = np.zeros_like(v[0])
            for t in range(T):
                decayed = pre * (4096 - p.dv)
                decayed = np.sign(decayed) * (np.abs(decayed) >> 12)
                want = np.clip(decayed + u[t] + (p.bias_mant.astype(np.int64) << p.bias_exp).reshape(-1), -2**23 + 1,
                               2**23 - 1)
                np.testing.assert_array_equal(np.where(spikes[t], 0, want), v[t], err_msg=f"{node} step {t}")
                assert np.all(want[spikes[t]] > p.vth_mant << 6)
                pre = v[t]
        else:
            u, v = result.records[f"{node}#u"], result.records[f"{node}#v"]
            spec = plan.processes[node]
            pre = np.zeros_like(v[0])
            for t in range(T):
                want = pre * (1 - spec.params["dv"]) + u[t] + spec.params["bias"]
                np.testing.assert_allclose(np.where(spikes[t], 0, want), v[t], atol=1e-12, err_msg=f"{node} {t}")
                pre = v[t]
        assert np.any(spikes) and np.any(u != 0)
    cu = result.records["cuba#u"]
    assert np.any((cu[1:] != 0) & (cu[:-1] != 0))  # the current carries over between steps


def test_record_state_v_equals_the_membrane_readouts():
    plan, inputs, neurons = _case("lif_chain")
    with_v = emulate(with_membrane_readouts(plan), inputs, precision="fixed")
    state = emulate(plan, inputs, precision="fixed", record_state=neurons[:1], record=False)
    assert set(state.records) == {*plan.outputs, f"{neurons[0]}#v", f"{neurons[0]}#u"}
    np.testing.assert_array_equal(state.records[f"{neurons[0]}#v"], with_v.records[f"{neurons[0]}#v"])


def test_record_state_names_only_neurons():
    plan, inputs, _ = _case("lif_chain")
    with pytest.raises(ValueError, match="not neuron nodes"):
        emulate(plan, inputs, record_state=["fc1"])


# ----------------------------------------------------------------------------------------------------- Lava


def _sampled_state_agrees(plan, inputs, neurons, precision, rng, n_nodes: int, n_steps: int) -> int:
    """`run_lava` and `emulate` with ``record_state`` on `n_nodes` sampled neurons: identical ``u``, ``v`` integers
    (float: equal to 1e-9) at `n_steps` sampled steps of every sample. Returns the values compared."""
    nodes = [str(n) for n in rng.choice(neurons, size=min(n_nodes, len(neurons)), replace=False)]
    from hardware_sims.lava.run import run_lava

    lava = run_lava(plan, inputs, precision=precision, record=False, record_state=nodes)
    emu = emulate(plan, inputs, precision=precision, record=False, record_state=nodes)
    steps = next(iter(inputs.values())).shape[0]
    rows = np.sort(rng.choice(steps, size=min(n_steps, steps), replace=False))
    compared = 0
    for node in nodes:
        for var in ("u", "v"):
            if precision == "fixed":
                a, b = _integers(plan, lava, node, var)[rows], _integers(plan, emu, node, var)[rows]
                np.testing.assert_array_equal(a, b, err_msg=f"{node}#{var}")
            else:
                a, b = lava.records[f"{node}#{var}"][rows], emu.records[f"{node}#{var}"][rows]
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-9, err_msg=f"{node}#{var}")
            compared += a.size
        assert np.any(emu.records[f"{node}#v"] != 0), node
    return compared


@pytest.mark.lava
@pytest.mark.parametrize("precision", ["fixed", "float"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_state_equals_lava_on_small_graphs(name, precision):
    plan, inputs, neurons = _case(name)
    assert _sampled_state_agrees(plan, inputs, neurons, precision, np.random.default_rng(len(name)), 3, 5) > 0


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_state_equals_lava_on_a_model_export(precision):
    """S-CMRL's small randomized export: u and v of 4 sampled neuron layers at 3 sampled steps, 2 samples."""
    graph, inputs = small_model_case("scmrl")
    plan = build_plan(graph)
    neurons = [p.node for p in plan.of_kind("neuron") if p.spiking]
    assert _sampled_state_agrees(plan, inputs, neurons, precision, np.random.default_rng(0), 4, 3) > 0

