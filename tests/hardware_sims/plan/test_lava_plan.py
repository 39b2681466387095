"""The Lava plan without Lava: latencies, inserted delays, folded factors, refusals (fast; imports no Lava)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import ClassVar

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from lava_graphs import DT, conv_pool, lif, lif_chain, recurrent, residual, wiring

from export.ir.errors import GraphValidationError
from export.ir.extensions import ComplementaryFusion
from hardware_sims.plan import LatencyError, UnsupportedGraphError, build_plan, register_extension
from hardware_sims.plan.linear import apply_op, linear_op, scaled

SYNAPSES = ("dense", "sparse", "conv")


def weights(plan, name) -> np.ndarray:
    w = plan.processes[name].params["weights"]
    return w.toarray() if hasattr(w, "toarray") else np.asarray(w)


def arrivals_aligned(plan) -> None:
    """Every path into a neuron delivers NIR step 0 at the neuron's live step (recurrent paths one step later)."""

    def arrival(proc: str) -> int:
        spec = plan.processes[proc]
        if spec.kind in ("input", "neuron", "extension"):
            return spec.latency
        (src,) = [c.src for c in plan.inbound(proc)]
        if spec.kind in SYNAPSES:
            return arrival(src) + 1
        steps = np.unique(spec.params["steps"])
        assert steps.size == 1
        return arrival(src) + int(steps[0]) - (1 if spec.role == "gate" else 0)

    for spec in plan.of_kind("neuron"):
        for c in plan.inbound(spec.name):
            assert arrival(c.src) == spec.live_step, (c, plan.summary())


def test_chain_latencies_and_steps_per_sample():
    plan = build_plan(lif_chain(np.random.default_rng(0)))
    assert plan.node_latency == {"x": 0, "lif1": 1, "lif2": 2}
    assert [p.kind for p in plan.processes.values()] == ["input", "neuron", "neuron", "dense", "dense"]
    assert plan.max_latency == 2 and plan.steps_per_sample(8) == 10
    assert plan.inserted_delays == []
    assert plan.readouts["out"].terms[0].proc == "lif2" and plan.readouts["out"].terms[0].latency == 2
    arrivals_aligned(plan)


def test_residual_gets_one_delay_on_the_shallow_path():
    plan = build_plan(residual(np.random.default_rng(0)))
    assert plan.node_latency["lif3"] == 3
    (delay,) = plan.inserted_delays
    assert delay.node == "lif1" and np.all(delay.params["steps"] == 1) and delay.live_step == 1
    into = sorted(c.src for c in plan.inbound("lif3"))
    assert into == ["fc3", "fc3<-delay1:lif1"]  # one synapse process per source path
    arrivals_aligned(plan)


def _delay_graph(steps: int) -> nir.NIRGraph:
    rng = np.random.default_rng(1)
    w = lambda o, i: rng.normal(0.5, 0.5, size=(o, i))  # noqa: E731
    nodes = {"x": nir.Input(input_type=np.array([3])), "fa": nir.Linear(weight=w(4, 3)), "l1": lif((4,)),
             "fb": nir.Linear(weight=w(4, 4)), "l2": lif((4,)), "fc": nir.Linear(weight=w(4, 4)),
             "d": nir.Delay(delay=np.full(4, steps * DT)), "fd": nir.Linear(weight=w(4, 4)), "l3": lif((4,)),
             "out": nir.Output(output_type=np.array([4]))}
    edges = [("x", "fa"), ("fa", "l1"), ("l1", "fb"), ("fb", "l2"), ("l2", "fc"), ("fc", "l3"), ("l1", "d"),
             ("d", "fd"), ("fd", "l3"), ("l3", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


@pytest.mark.parametrize("nir_delay", [0, 1, 3])
def test_nir_delay_merges_with_the_alignment_delay(nir_delay):
    plan = build_plan(_delay_graph(nir_delay))
    assert plan.node_latency["l3"] == 3  # a NIR Delay costs no Lava latency
    (delay,) = plan.inserted_delays
    assert np.all(delay.params["steps"] == 1 + nir_delay)  # alignment 1 + the node's own delay
    assert delay.latency == 2 and delay.live_step == 1


def test_factors_fold_into_weights_and_bias():
    graph = lif_chain(np.random.default_rng(0))
    plan = build_plan(graph)
    n1, n2 = graph.nodes["lif1"], graph.nodes["lif2"]
    c1, c2 = DT / n1.tau[0], DT / n2.tau[0]  # 0.5, 0.2
    np.testing.assert_allclose(weights(plan, "fc1"), graph.nodes["fc1"].weight * c1 * n1.r[0], rtol=1e-15)
    np.testing.assert_allclose(weights(plan, "fc2"), graph.nodes["fc2"].weight * c2 * n2.r[0], rtol=1e-15)
    l1, l2 = plan.processes["lif1"].params, plan.processes["lif2"].params
    np.testing.assert_allclose(l1["bias"], c1 * n1.r[0] * graph.nodes["fc1"].bias, rtol=1e-15)
    np.testing.assert_allclose(l2["bias"], c2 * n2.v_leak, rtol=1e-15)
    assert (l1["du"], l1["dv"], l1["vth"], l1["read"]) == (1.0, c1, 1.0, "s_out")
    assert (l2["dv"], l2["vth"]) == (c2, 0.7)
    res = build_plan(residual(np.random.default_rng(0)))  # Scale(0.5) before fc3 folds into its columns
    np.testing.assert_allclose(weights(res, "fc3<-delay1:lif1"), 0.5 * weights(res, "fc3"), rtol=1e-15)


def test_conv_and_pool_fold_per_channel():
    graph = conv_pool(np.random.default_rng(0))
    plan = build_plan(graph)
    conv, pool, thr = plan.processes["conv"], plan.processes["pool"], plan.processes["thr"]
    assert conv.kind == pool.kind == "conv" and thr.kind == "neuron"
    np.testing.assert_allclose(conv.params["weight"], 0.5 * graph.nodes["conv"].weight, rtol=1e-15)
    np.testing.assert_array_equal(pool.params["weight"], np.ones((3, 1, 3, 3)))
    assert pool.params["groups"] == 3 and pool.params["padding"] == (1, 1) and pool.params["stride"] == (2, 2)
    assert (thr.params["du"], thr.params["dv"], thr.params["vth"]) == (1.0, 1.0, 0.5)
    # a factor that varies inside a channel cannot live in a kernel: the layer becomes a matrix
    graph.nodes["lif"] = nir.LIF(tau=np.full((3, 8, 7), 2e-3), r=np.linspace(0.5, 1.5, 168).reshape(3, 8, 7),
                                 v_leak=np.zeros((3, 8, 7)), v_threshold=np.ones((3, 8, 7)))
    spec = build_plan(graph).processes["conv"]
    assert spec.kind in ("dense", "sparse")
    assert weights(build_plan(graph), "conv").shape == (168, 112)


def test_gain_synapse_only_where_no_layer_holds_the_factor():
    plan = build_plan(wiring(np.random.default_rng(0)))
    gain = plan.processes["gain:l0<-x"]
    assert gain.kind == "sparse" and gain.role == "gain" and plan.node_latency["l0"] == 1
    np.testing.assert_allclose(weights(plan, gain.name), 0.5 * np.eye(32))
    nodes = {"x": nir.Input(input_type=np.array([4])), "thr": nir.Threshold(threshold=np.full(4, 0.5)),
             "out": nir.Output(output_type=np.array([4]))}
    direct = build_plan(nir.NIRGraph(nodes, [("x", "thr"), ("thr", "out")], metadata={}))
    assert [c.src for c in direct.inbound("thr")] == ["x"] and direct.node_latency["thr"] == 0


def test_recurrent_source_is_gated_and_aligned():
    plan = build_plan(recurrent(np.random.default_rng(0)))
    gate = plan.processes["gate:lif"]
    assert gate.kind == "delay" and gate.role == "gate" and gate.params["mute_preroll"] and gate.live_step == 1
    assert sorted(c.src for c in plan.inbound("lif")) == ["w_in", "w_rec"]
    assert [c.src for c in plan.inbound("w_rec")] == ["gate:lif"]
    assert plan.node_latency["lif"] == 1 and not plan.inserted_delays
    arrivals_aligned(plan)


def test_loop_with_two_layers_cannot_align():
    rng = np.random.default_rng(0)
    nodes = {"x": nir.Input(input_type=np.array([3])), "w": nir.Linear(weight=rng.normal(size=(3, 3))),
             "l": lif((3,)), "a": nir.Linear(weight=rng.normal(size=(3, 3))),
             "b": nir.Linear(weight=rng.normal(size=(3, 3))), "out": nir.Output(output_type=np.array([3]))}
    edges = [("x", "w"), ("w", "l"), ("l", "a"), ("a", "b"), ("b", "l"), ("l", "out")]
    with pytest.raises(LatencyError, match="cannot be aligned"):
        build_plan(nir.NIRGraph(nodes, edges, metadata={"dt": DT}))


@dataclass(eq=False)
class Mystery(nir.NIRNode):
    """A node type no backend knows."""

    PORTS: ClassVar[tuple] = ()

    def __post_init__(self):
        self.input_type = {"input": np.array([3])}
        self.output_type = {"output": np.array([3])}


def test_unsupported_nodes_are_listed_with_what_is_supported():
    nodes = {"x": nir.Input(input_type=np.array([3])), "m1": Mystery(), "m2": Mystery(), "l": lif((3,)),
             "out": nir.Output(output_type=np.array([3]))}
    edges = [("x", "m1"), ("m1", "m2"), ("m2", "l"), ("l", "out")]
    with pytest.raises(UnsupportedGraphError) as err:
        build_plan(nir.NIRGraph(nodes, edges, metadata={"dt": DT}, type_check=False))
    message = str(err.value)
    assert "'m1' (Mystery)" in message and "'m2' (Mystery)" in message
    assert "LIF" in message and "Conv2d" in message and "SumPool2d" in message


def _chain(neuron, first=None) -> nir.NIRGraph:
    nodes = {"x": nir.Input(input_type=np.array([3])), "w": first or nir.Linear(weight=np.eye(3)), "n": neuron,
             "w2": nir.Linear(weight=np.eye(3)), "l": lif((3,)), "out": nir.Output(output_type=np.array([3]))}
    edges = [("x", "w"), ("w", "n"), ("n", "w2"), ("w2", "l"), ("l", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


@pytest.mark.parametrize("neuron, first, match", [
    (nir.LIF(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.full(3, .1)),
     None, "v_reset must be 0"),
    (nir.LIF(tau=np.array([2e-3, 3e-3, 2e-3]), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)), None,
     "uniform dt/tau"),
    (nir.LI(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3)), None, "read out but not forwarded"),
    (nir.Delay(delay=np.full(3, DT)), nir.Affine(weight=np.eye(3), bias=np.ones(3)), "Delay whose input contains"),
])
def test_lava_semantics_that_cannot_be_mapped_are_refused(neuron, first, match):
    with pytest.raises(UnsupportedGraphError, match=match):
        build_plan(_chain(neuron, first))


def test_missing_dt_is_an_error_naming_the_nodes():
    graph = lif_chain(np.random.default_rng(0))
    graph.metadata = {}
    with pytest.raises(GraphValidationError, match=r"\['lif1', 'lif2'\] need dt"):
        build_plan(graph)
    assert build_plan(graph, dt=DT).dt == DT


@pytest.fixture
def fake_fusion_builder():
    register_extension(ComplementaryFusion.type_name, lambda node, name, **kw: None)  # never built here
    yield
    register_extension(ComplementaryFusion.type_name, None)


def test_window_extension_adds_its_window_to_the_latency(fake_fusion_builder):
    rng = np.random.default_rng(0)
    nodes = {"x": nir.Input(input_type=np.array([2, 3])), "wa": nir.Conv1d(
        input_shape=3, weight=rng.normal(size=(2, 2, 1)), stride=1, padding=0, dilation=1, groups=1,
        bias=np.zeros(2)), "la": lif((2, 3)), "fuse": ComplementaryFusion(shape=(2, 3), window=4),
        "wb": nir.Conv1d(input_shape=3, weight=rng.normal(size=(2, 2, 1)), stride=1, padding=0, dilation=1, groups=1,
                         bias=np.zeros(2)), "lb": lif((2, 3)), "out": nir.Output(output_type=np.array([2, 3]))}
    edges = [("x", "wa"), ("wa", "la"), ("la", "fuse.spatial"), ("x", "fuse.temporal"), ("fuse", "wb"),
             ("wb", "lb"), ("lb", "out")]
    plan = build_plan(nir.NIRGraph(nodes, edges, metadata={"dt": DT}, type_check=False))
    fuse = plan.processes["fuse"]
    assert (fuse.live_step, fuse.latency) == (1, 5) and plan.windows == {"fuse": 4}
    assert plan.node_latency["lb"] == 6
    (delay,) = plan.inserted_delays  # the temporal port's input is aligned with the spatial one
    assert delay.node == "x" and np.all(delay.params["steps"] == 1)
    assert plan.processes["wa"].kind in ("dense", "sparse")  # Conv1d is a (banded) matrix


@st.composite
def layered_graphs(draw):
    """Random layered DAGs of LIF layers with skip connections (fan-in of different depth)."""
    depth = draw(st.integers(2, 5))
    skips = draw(st.lists(st.tuples(st.integers(0, depth - 1), st.integers(1, depth)), max_size=4))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    nodes, edges = {"x": nir.Input(input_type=np.array([3]))}, []
    for i in range(depth + 1):
        nodes[f"l{i}"] = lif((3,))
    for i in range(depth + 1):  # l_i fed by x (i = 0) or l_{i-1}, through its own layer
        nodes[f"w{i}"] = nir.Linear(weight=rng.normal(size=(3, 3)))
        edges += [("x" if i == 0 else f"l{i - 1}", f"w{i}"), (f"w{i}", f"l{i}")]
    for j, (a, b) in enumerate(skips):
        if a < b:
            nodes[f"s{j}"] = nir.Linear(weight=rng.normal(size=(3, 3)))
            edges += [(f"l{a}", f"s{j}"), (f"s{j}", f"l{b}")]
    nodes["out"] = nir.Output(output_type=np.array([3]))
    edges.append((f"l{depth}", "out"))
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT}), depth


@settings(max_examples=25, deadline=None)
@given(layered_graphs())
def test_every_fan_in_is_aligned(case):
    graph, depth = case
    plan = build_plan(graph)
    assert plan.node_latency[f"l{depth}"] == depth + 1  # the longest path sets the latency
    arrivals_aligned(plan)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kw, shape", [
    (dict(weight=(4, 2, 3, 3), stride=2, padding=1, groups=2), (4, 7, 6)),
    (dict(weight=(3, 4, 2, 2), stride=1, padding="same", groups=1), (4, 5, 5)),
    (dict(weight=(3, 4, 3, 3), stride=1, padding=0, dilation=2, groups=1), (4, 9, 8)),
])
def test_conv_operator_matches_torch(kw, shape):
    rng = np.random.default_rng(0)
    w = rng.normal(size=kw.pop("weight"))
    node = nir.Conv2d(input_shape=shape[1:], weight=w, bias=np.zeros(w.shape[0]), dilation=kw.pop("dilation", 1),
                      **kw)
    op = linear_op("c", node, shape)
    x = rng.normal(size=shape)
    ref = F.conv2d(torch.tensor(x)[None], torch.tensor(w), stride=node.stride, padding=node.padding,
                   dilation=node.dilation, groups=node.groups)[0].numpy()
    np.testing.assert_allclose(apply_op(op, x), ref, atol=1e-12)
    row, col = rng.normal(size=(op.out_shape[0], 1, 1)), rng.normal(size=(shape[0], 1, 1))
    np.testing.assert_allclose(apply_op(scaled(op, row, col), x), row * apply_op(op, col * x), atol=1e-12)


def test_plan_needs_neither_lava_nor_torch():
    code = textwrap.dedent("""
        import sys, numpy as np, nir
        from hardware_sims.plan import build_plan
        nodes = {"x": nir.Input(input_type=np.array([2])), "w": nir.Linear(weight=np.eye(2)),
                 "l": nir.LIF(tau=np.full(2, 2e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
                 "o": nir.Output(output_type=np.array([2]))}
        build_plan(nir.NIRGraph(nodes, [("x", "w"), ("w", "l"), ("l", "o")], metadata={"dt": 1e-3}))
        print(sorted({"lava.magma", "lava.proc", "torch"} & set(sys.modules)))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
