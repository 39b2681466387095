"""Activity counts (`hardware_sims.counts`): hand-built graphs with hand-computed counts (an Affine with a zero
weight, a convolution with a zero tap and a pool, a LIF, a SpikeAttention), the extension counters against a
brute-force enumeration of their products, chunk merging and JSON round trips, and identical counts from Lava and
the emulator (``lava``)."""

from __future__ import annotations

import itertools
import json

import nir
import numpy as np
import pytest
from lava_graphs import DT, binary, conv_pool, lif, residual

import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)
from export.ir.extensions import CausalFusion, CausalSpikeAttention, ComplementaryFusion, SpikeAttention
from hardware_sims.counts import ActivityCounts, MissingRecordError, count_activity, merge_all, spike_raster
from hardware_sims.counts.extensions import (
    apply_ops,
    extension_ops,
    fusion_ops,
    gate_ops,
    scores_ops,
    spike_attention_ops,
)
from hardware_sims.emulator import emulate
from hardware_sims.plan import build_plan
from hardware_sims.runs import RunResult


def fake_result(graph: nir.NIRGraph, records: dict[str, np.ndarray]) -> RunResult:
    """A result carrying hand-chosen records (counting reads only the records and the plan)."""
    plan = build_plan(graph)
    return RunResult({}, {k: np.asarray(v, dtype=np.float64) for k, v in records.items()}, dict(plan.node_latency),
                      0, plan, {"samples_per_s": 1.0})


# -------------------------------------------------------------------------------- a 2-input Affine and a LIF
W_FC = np.array([[1.0, 0.0], [2.0, 3.0]])  # input 0 drives 2 synapses, input 1 one (W[0, 1] = 0 is none)


def affine_graph() -> nir.NIRGraph:
    nodes = {"x": nir.Input(input_type=np.array([2])), "fc": nir.Affine(weight=W_FC, bias=np.zeros(2)),
             "lif": lif((2,)), "out": nir.Output(output_type=np.array([2]))}
    return nir.NIRGraph(nodes, [("x", "fc"), ("fc", "lif"), ("lif", "out")], metadata={"dt": DT})


X_SPIKES = np.array([[[1, 0], [0, 0]], [[1, 1], [0, 0]], [[0, 1], [1, 0]]])  # [T=3, B=2, 2]
LIF_SPIKES = np.array([[[0, 0], [0, 0]], [[1, 0], [0, 0]], [[0, 1], [0, 0]]])


def test_affine_and_lif_counts_by_hand():
    graph = affine_graph()
    counts = count_activity(fake_result(graph, {"x": X_SPIKES, "lif": LIF_SPIKES}), graph)
    # sample 0: step 0 input 0 (2 synapses), step 1 both (2 + 1), step 2 input 1 (1) -> 6; sample 1: step 2 -> 2
    assert counts.per_sample["synaptic_events"] == (6.0, 2.0)
    fc, neuron = counts.nodes["fc"], counts.nodes["lif"]
    assert (fc.type, fc.neurons, fc.binary_input, fc.synaptic_events, fc.dense_macs) == ("Affine", 2, True, 4.0, 0.0)
    assert fc.dense_synapses == 2 * 2 * 3  # every weight, the zero one included, every step
    assert (neuron.spikes, neuron.firing_rate) == (1.0, 1.0 / 6)
    # sample 0: steps 0 and 1 reach both neurons, step 2 only neuron 1 (W[0, 1] = 0) -> 5 active of 6;
    # sample 1: step 2 reaches both -> 2 active of 6
    assert counts.per_sample["neuron_updates_active"] == (5.0, 2.0)
    assert counts.per_sample["neuron_updates_idle"] == (1.0, 4.0)
    nb = counts.neurobench
    assert (nb.effective_acs, nb.effective_macs, nb.dense) == (4.0, 0.0, 12.0)
    assert nb.activation_sparsity == pytest.approx(1 - 2 / 12)
    assert counts.nodes["x"].type == "Input" and counts.totals["spikes"] == 1.0


def test_one_more_input_spike_adds_its_fan_out():
    graph = affine_graph()
    x = X_SPIKES.copy()
    x[0, 1] = [0, 1]  # sample 1 gets a spike on input 1 (fan-out 1) at step 0
    counts = count_activity(fake_result(graph, {"x": x, "lif": LIF_SPIKES}), graph)
    assert counts.per_sample["synaptic_events"] == (6.0, 3.0)
    assert counts.per_sample["neuron_updates_active"] == (5.0, 3.0)


def test_graded_input_counts_macs_and_a_bias_makes_updates_active():
    nodes = dict(affine_graph().nodes)
    nodes["fc"] = nir.Affine(weight=W_FC, bias=np.array([0.0, 0.5]))  # neuron 1 gets a constant current
    graph = nir.NIRGraph(nodes, [("x", "fc"), ("fc", "lif"), ("lif", "out")], metadata={"dt": DT})
    counts = count_activity(fake_result(graph, {"x": X_SPIKES * 0.5, "lif": LIF_SPIKES}), graph)
    fc = counts.nodes["fc"]
    assert (fc.synaptic_events, fc.dense_macs, fc.binary_input) == (0.0, 4.0, False)
    assert (counts.neurobench.effective_macs, counts.neurobench.effective_acs) == (4.0, 0.0)
    # neuron 1 is active at every step; neuron 0 where input 0 reaches it (s0: steps 0, 1 + spike at 1; s1: step 2)
    assert counts.per_sample["neuron_updates_active"] == (3.0 + 2.0, 3.0 + 1.0)


# ----------------------------------------------------------------------- a convolution with a zero tap, a pool
def conv_graph() -> nir.NIRGraph:
    kernel = np.ones((1, 1, 3, 3))
    kernel[0, 0, 1, 1] = 0.0  # no synapse from a pixel to the output at its own position
    nodes = {
        "img": nir.Input(input_type=np.array([1, 3, 3])),
        "conv": nir.Conv2d(input_shape=(3, 3), weight=kernel, stride=1, padding=1, dilation=1, groups=1,
                           bias=np.zeros(1)),
        "lif": lif((1, 3, 3)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0])),
        "thr": nir.Threshold(threshold=np.full((1, 2, 2), 0.5)),
        "out": nir.Output(output_type=np.array([1, 2, 2])),
    }
    edges = [("img", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "thr"), ("thr", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT})


def image(*pixels, value=1.0) -> np.ndarray:
    x = np.zeros((1, 1, 1, 3, 3))
    for i, j in pixels:
        x[0, 0, 0, i, j] = value
    return x


def test_conv_and_pool_counts_by_hand():
    graph = conv_graph()
    records = {"img": image((1, 1), (0, 0)), "lif": image((1, 1)), "thr": np.zeros((1, 1, 1, 2, 2))}
    counts = count_activity(fake_result(graph, records), graph)
    conv, pool = counts.nodes["conv"], counts.nodes["pool"]
    # 3x3 kernel, padding 1: a centre pixel reaches 9 outputs, a corner 4; minus the zero centre tap: 8 and 3
    assert conv.synaptic_events == 8 + 3
    assert conv.dense_synapses == 4 * 4 + 4 * 6 + 9  # in-bounds taps of the 9 outputs, zero tap included
    # 2x2 windows, stride 1, over 3x3: the centre pixel is in all 4
    assert (pool.type, pool.synaptic_events, pool.dense_synapses) == ("SumPool2d", 4.0, 16.0)
    nb = counts.neurobench
    assert (nb.effective_acs, nb.missed_pooling_events, nb.dense) == (11.0, 4.0, 49.0)
    graded = count_activity(fake_result(graph, {**records, "img": image((1, 1), value=0.5)}), graph)
    assert (graded.nodes["conv"].dense_macs, graded.nodes["conv"].synaptic_events) == (8.0, 0.0)


# ---------------------------------------------------------------------------------------------- an extension
Q = np.array([[1, 0], [1, 1]])  # (C, N), one head of d = 2
K = np.array([[1, 1], [0, 1]])
V = np.array([[0, 1], [1, 0]])


def attention_graph() -> nir.NIRGraph:
    nodes = {name: nir.Input(input_type=np.array([2, 2])) for name in ("q", "k", "v")}
    nodes["att"] = SpikeAttention(shape=(2, 2), num_heads=1, scale=0.5, axis="tokens", window=0)
    nodes["out"] = nir.Output(output_type=np.array([2, 2]))
    edges = [("q", "att.q"), ("k", "att.k"), ("v", "att.v"), ("att", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT}, type_check=False)


def test_spike_attention_counts_by_hand():
    graph = attention_graph()
    one = lambda a: a.reshape(1, 1, 2, 2)  # noqa: E731
    counts = count_activity(fake_result(graph, {"q": one(Q), "k": one(K), "v": one(V),
                                                 "att": np.zeros((1, 1, 2, 2))}), graph)
    att = counts.nodes["att"]
    # Q K^T: channel 0 pairs 1 x 2 tokens, channel 1 2 x 1 -> 4. S = [[1, 2], [0, 1]];
    # S V: key token 0: 1 nonzero score x 1 nonzero v; token 1: 2 x 1 -> 3, of which the score 2 times a spike is a
    # MAC (an AC needs two spikes) -> 6 ACs, 1 MAC.
    assert (att.type, att.ext_acs, att.ext_macs, att.binary_input) == ("snnav.SpikeAttention", 6.0, 1.0, True)
    assert (counts.neurobench.missed_ext_acs, counts.neurobench.missed_ext_macs) == (6.0, 1.0)
    graded = count_activity(fake_result(graph, {"q": one(Q), "k": one(K), "v": one(V) * 0.5,
                                                "att": np.zeros((1, 1, 2, 2))}), graph)
    # V graded: every score x V product has a graded operand -> the 3 of S V are MACs, the 4 of Q K^T stay ACs
    assert (graded.nodes["att"].ext_acs, graded.nodes["att"].ext_macs) == (4.0, 3.0)


def test_fusion_and_gate_counts_by_hand():
    node = ComplementaryFusion(shape=(1, 2), window=2)
    s = np.array([[1, 1], [0, 1]], dtype=float).reshape(2, 1, 1, 2)  # S_0 = [1, 1], S_1 = [0, 1]
    tm = np.array([[1, 0], [1, 1]], dtype=float).reshape(2, 1, 1, 2)
    acs, macs = fusion_ops(node, {"spatial": s, "temporal": tm})
    # sums: 3 + 3 nonzero terms (ACs); a = (2, 1) per step, b = (2, 1) per token: 4 products, only 1 x 1 is an AC
    assert (acs.tolist(), macs.tolist()) == ([7.0], [3.0])
    x = np.array([[1, 0.5], [0, 2]]).reshape(1, 1, 2, 2)
    acs, macs = gate_ops(None, {"x": x, "gate": np.full((1, 1, 1), 0.5)})
    # the gate (0.5) is graded: all three nonzero products x * gate are MACs
    assert (acs.tolist(), macs.tolist()) == ([0.0], [3.0])


# ------------------------------------------------------------------------------ counters vs brute force
def _kind(a: float, b: float) -> str | None:
    if a == 0 or b == 0:
        return None
    return "ac" if abs(a) == 1 and abs(b) == 1 else "mac"


def _tally(pairs) -> tuple[int, int]:
    kinds = [_kind(a, b) for a, b in pairs]
    return kinds.count("ac"), kinds.count("mac")


def brute_tokens(q, k, v, h):
    """Every product of the kernels' order for one step: (Q, K) per channel and token pair, then (S, V)."""
    c, n = q.shape
    d = c // h
    pairs = [(q[g * d + i, a], k[g * d + i, b]) for g in range(h) for i in range(d) for a in range(n)
             for b in range(n)]
    s = np.array([[[sum(q[g * d + i, a] * k[g * d + i, b] for i in range(d)) for b in range(n)] for a in range(n)]
                  for g in range(h)])
    pairs += [(s[g, a, m], v[g * d + j, m]) for g in range(h) for a in range(n) for m in range(n) for j in range(d)]
    return _tally(pairs)


def brute_time(q, k, v, h):
    """One window ``[W, C, N]``: per token and head the (t, s) step scores, then scores x V_s."""
    w, c, n = q.shape
    d = c // h
    pairs = []
    for g, tok in itertools.product(range(h), range(n)):
        ch = range(g * d, (g + 1) * d)
        pairs += [(q[t, i, tok], k[s, i, tok]) for i in ch for t in range(w) for s in range(w)]
        sc = np.array([[sum(q[t, i, tok] * k[s, i, tok] for i in ch) for s in range(w)] for t in range(w)])
        pairs += [(sc[t, s], v[s, j, tok]) for t in range(w) for s in range(w) for j in ch]
    return _tally(pairs)


@pytest.mark.parametrize("seed", range(3))
def test_attention_counters_equal_brute_force(seed):
    rng = np.random.default_rng(seed)
    steps, batch, c, n, h = 4, 2, 4, 3, 2
    values = np.array([0, 0, 0, 1, 1, -1, 0.5, 2.0])
    q, k, v = (rng.choice(values, size=(steps, batch, c, n)) for _ in range(3))
    tokens = SpikeAttention(shape=(c, n), num_heads=h, scale=0.5, axis="tokens", window=0)
    acs, macs = spike_attention_ops(tokens, {"q": q, "k": k, "v": v})
    ref = np.array([[brute_tokens(q[t, b], k[t, b], v[t, b], h) for t in range(steps)] for b in range(batch)])
    assert acs.tolist() == ref[..., 0].sum(axis=1).tolist() and macs.tolist() == ref[..., 1].sum(axis=1).tolist()
    a1, m1 = scores_ops(q, k, h)
    a2, m2 = apply_ops(np.einsum("tbgin,tbgim->tbgnm", *(x.reshape(steps, batch, h, c // h, n) for x in (q, k))),
                       v, h)
    assert (a1 + a2).tolist() == acs.tolist() and (m1 + m2).tolist() == macs.tolist()
    timed = SpikeAttention(shape=(c, n), num_heads=h, scale=0.5, axis="time", layout="faithful", window=2)
    acs, macs = spike_attention_ops(timed, {"q": q, "k": k, "v": v})
    ref = np.array([[brute_time(q[w:w + 2, b], k[w:w + 2, b], v[w:w + 2, b], h) for w in (0, 2)]
                    for b in range(batch)])
    assert acs.tolist() == ref[..., 0].sum(axis=1).tolist() and macs.tolist() == ref[..., 1].sum(axis=1).tolist()


@pytest.mark.parametrize("seed", range(2))
def test_running_node_counters_equal_brute_force(seed):
    """CausalSpikeAttention: per step, token and head the pairs (K_t[i], V_t[j]) of the KV update, then (Q_t[i],
    KV_t[i, j]); CausalFusion: one add per nonzero term of the token sum and the running sum, then the pairs
    (a_t[c], Sum_t[c, n])."""
    rng = np.random.default_rng(seed)
    steps, batch, c, n, h = 3, 2, 4, 3, 2
    d = c // h
    values = np.array([0, 0, 0, 1, 1, -1, 0.5, 2.0])
    q, k, v = (rng.choice(values, size=(steps, batch, c, n)) for _ in range(3))
    acs, macs = extension_ops(CausalSpikeAttention(shape=(c, n), num_heads=h, scale=0.25), {"q": q, "k": k, "v": v})
    for b in range(batch):
        pairs = []
        for g, tok in itertools.product(range(h), range(n)):
            kv = np.zeros((d, d))
            for t in range(steps):
                ch = range(g * d, (g + 1) * d)
                pairs += [(k[t, b, i, tok], v[t, b, j, tok]) for i in ch for j in ch]
                kv += np.outer([k[t, b, i, tok] for i in ch], [v[t, b, j, tok] for j in ch])
                pairs += [(q[t, b, g * d + i, tok], kv[i, j]) for i in range(d) for j in range(d)]
        assert (acs[b], macs[b]) == _tally(pairs)
    s, tm = (rng.choice(values, size=(steps, batch, c, n)) for _ in range(2))
    acs, macs = extension_ops(CausalFusion(shape=(c, n)), {"spatial": s, "temporal": tm})
    for b in range(batch):
        adds = int((s[:, b] != 0).sum() + (tm[:, b] != 0).sum())
        total = np.cumsum(tm[:, b], axis=0)
        pairs = [(s[t, b, ch].sum(), total[t, ch, tok]) for t in range(steps) for ch in range(c) for tok in range(n)]
        ac, mac = _tally(pairs)
        assert (acs[b], macs[b]) == (adds + ac, mac)


def test_unknown_extension_type_is_refused():
    class Other:
        type_name = "acme.Thing"

    with pytest.raises(ValueError, match="register_extension_counter"):
        extension_ops(Other(), {})


# ------------------------------------------------------------------- runs, chunks, records, NeuroBench's view
def test_counting_needs_every_record():
    graph = affine_graph()
    result = emulate(graph, {"x": X_SPIKES.astype(float)}, precision="fixed", record=False)
    with pytest.raises(MissingRecordError, match="record=True"):
        count_activity(result, graph)


def test_chunks_merge_to_the_whole_run_and_round_trip_json():
    rng = np.random.default_rng(5)
    graph = conv_pool(rng)
    x = {"img": binary(rng, 6, 4, (2, 8, 7))}
    whole = count_activity(emulate(graph, x, precision="fixed"), graph)
    parts = [count_activity(emulate(graph, {"img": x["img"][:, b:b + 2]}, precision="fixed"), graph)
             for b in (0, 2)]
    merged = merge_all(parts)
    assert merged.per_sample == whole.per_sample and merged.run == whole.run
    for name, node in whole.nodes.items():
        assert merged.nodes[name].to_dict() == pytest.approx(node.to_dict())
    assert vars(merged.neurobench) == pytest.approx(vars(whole.neurobench))
    data = json.loads(json.dumps(whole.to_dict()))
    assert ActivityCounts.from_dict(data) == whole
    assert data["totals"]["synaptic_events"] == pytest.approx(sum(data["per_sample"]["synaptic_events"]) / 4)
    data["per_sample"]["spikes"] = data["per_sample"]["spikes"][:3]
    with pytest.raises(ValueError, match="per_sample"):
        ActivityCounts.from_dict(data)
    other = count_activity(emulate(graph, {"img": x["img"][:, :2]}, precision="float"), graph)
    with pytest.raises(ValueError, match="different runs"):
        whole.merge(other)


def test_neurobench_sees_the_scaled_residual_the_hardware_sends_spikes():
    rng = np.random.default_rng(1)
    graph = residual(rng)
    result = emulate(graph, {"x": binary(rng, 8, 3, (6,))}, precision="float")
    counts = count_activity(result, graph)
    fc3 = counts.nodes["fc3"]  # fed by lif2 and Scale(0.5)(lif1): two spike paths on the hardware
    assert fc3.synaptic_events > 0 and fc3.dense_macs == 0 and fc3.binary_input
    assert counts.neurobench.effective_macs > 0  # NeuroBench sees lif2 + 0.5 lif1: graded
    plan_only = count_activity(result)  # without the graph: types guessed, the same hardware counts
    assert (plan_only.nodes["fc1"].type, counts.nodes["fc1"].type) == ("Linear", "Affine")
    assert plan_only.per_sample == counts.per_sample


def test_spike_raster_lists_step_and_neuron():
    graph = affine_graph()
    result = fake_result(graph, {"x": X_SPIKES, "lif": LIF_SPIKES})
    assert spike_raster(result, sample=0) == {"lif": [(1, 0), (2, 1)]}
    assert spike_raster(result, sample=0, nodes=["x"], max_neurons=1) == {"x": [(0, 0), (1, 0)]}
    with pytest.raises(MissingRecordError):
        spike_raster(result, nodes=["fc"])
    with pytest.raises(IndexError):
        spike_raster(result, sample=2)


# -------------------------------------------------------------------------------- Lava and the emulator agree
def av_graph(rng) -> nir.NIRGraph:
    """Graded image -> Conv2d -> LIF -> SumPool2d + Threshold -> tokens (4, 4) -> q, k, v LIFs -> SpikeAttention and
    ComplementaryFusion (window 4, fed graded attention output) -> LIF -> Affine readout -> I."""
    c, n = 4, 4
    nodes = {
        "img": nir.Input(input_type=np.array([1, 4, 4])),
        "conv": nir.Conv2d(input_shape=(4, 4), weight=rng.normal(0.3, 0.5, (4, 1, 3, 3)), stride=1, padding=1,
                           dilation=1, groups=1, bias=rng.normal(0, 0.1, 4)),
        "lif0": lif((4, 4, 4)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "thr": nir.Threshold(threshold=np.full((4, 2, 2), 0.5)),
        "flat": nir.Flatten(input_type={"input": np.array([4, 2, 2])}, start_dim=1, end_dim=-1),
        "wq": nir.Linear(weight=rng.normal(0.4, 1.0, (n, n))), "wk": nir.Linear(weight=rng.normal(0.9, 1.0, (n, n))),
        "wv": nir.Linear(weight=rng.normal(0.4, 1.0, (n, n))),
        "q": lif((c, n)), "k": lif((c, n)), "v": lif((c, n)),
        "att": SpikeAttention(shape=(c, n), num_heads=2, scale=0.25, axis="tokens", window=0),
        "fuse": ComplementaryFusion(shape=(c, n), window=4),
        "l1": lif((c, n), th=0.05),
        "f2": nir.Flatten(input_type={"input": np.array([c, n])}, start_dim=0, end_dim=-1),
        "head": nir.Affine(weight=rng.normal(0, 1, (3, c * n)), bias=rng.normal(0, 0.1, 3)),
        "acc": nir.I(r=np.full(3, 1.0 / (4 * DT))),
        "out": nir.Output(output_type=np.array([3])),
    }
    edges = [("img", "conv"), ("conv", "lif0"), ("lif0", "pool"), ("pool", "thr"), ("thr", "flat"),
             ("flat", "wq"), ("flat", "wk"), ("flat", "wv"), ("wq", "q"), ("wk", "k"), ("wv", "v"),
             ("q", "att.q"), ("k", "att.k"), ("v", "att.v"), ("q", "fuse.spatial"), ("att", "fuse.temporal"),
             ("att", "l1"), ("fuse", "l1"), ("l1", "f2"), ("f2", "head"), ("head", "acc"), ("acc", "out")]
    return nir.NIRGraph(nodes, edges, metadata={"dt": DT, "readout_step": 3}, type_check=False)


@pytest.mark.lava
@pytest.mark.parametrize("precision", ["fixed", "float"])
def test_lava_and_the_emulator_give_identical_counts(precision):
    from hardware_sims.lava.run import run_lava

    rng = np.random.default_rng(3)
    graph = av_graph(rng)
    plan = build_plan(graph)
    x = {"img": rng.random((4, 2, 1, 4, 4)) * 1.5}
    lava = count_activity(run_lava(plan, x, precision=precision), graph).to_dict()
    emu = count_activity(emulate(plan, x, precision=precision), graph).to_dict()
    assert (lava["run"].pop("backend"), emu["run"].pop("backend")) == ("lava", "emulator")
    assert lava == emu
    nodes = emu["nodes"]
    assert all(nodes[n]["spikes"] > 0 for n in ("lif0", "thr", "q", "k", "v", "l1"))
    assert nodes["conv"]["dense_macs"] > 0 and nodes["head"]["synaptic_events"] > 0
    assert nodes["att"]["ext_acs"] > 0 and nodes["fuse"]["ext_macs"] > 0


@pytest.mark.parametrize("make", [conv_pool, residual])
def test_a_reused_counter_and_the_shortcuts_count_what_the_full_computation_counts(make):
    """`ActivityCounter` over chunks of one quantized plan equals a fresh `count_activity` per chunk, and the active
    updates (reach computed only for elements without a bias, by im2col for convolutions) equal the full
    computation: every element's reach through the synapse matrices, or its bias, or its spike."""
    from hardware_sims.counts import ActivityCounter
    from hardware_sims.counts.activity import _neuron_bias
    from hardware_sims.counts.signals import PlanSignals, reaches
    from hardware_sims.plan.plan import SYNAPSE_KINDS

    rng = np.random.default_rng(3)
    graph = make(rng)
    name, node = next((k, n) for k, n in graph.nodes.items() if isinstance(n, nir.Input))
    x = binary(rng, 5, 6, tuple(np.asarray(node.output_type["output"]).tolist()))
    counter = ActivityCounter(graph)
    plan = None
    for b in (0, 3):
        res = emulate(plan or graph, {name: x[:, b:b + 3]}, precision="fixed")
        plan = res.plan
        assert counter(res) == count_activity(res, graph)
        sig = PlanSignals(res.plan, res.records, 5, 3)
        counts = count_activity(res, graph)
        for spec in res.plan.of_kind("neuron"):
            if spec.role == "bias":
                continue
            got = np.zeros((5, 3, int(np.prod(spec.shape))), dtype=bool)
            for conn in sig.inbound[spec.name]:
                src = res.plan.processes[conn.src]
                if src.kind not in SYNAPSE_KINDS:
                    got |= (sig.delivered(conn) != 0).reshape(got.shape)
                    continue
                off = spec.live_step - src.latency
                xin = sig.value(sig.inbound[conn.src][0].src, off, off + 5)
                got |= reaches(sig.synapses_of(conn.src), xin != 0).reshape(got.shape)
            got |= _neuron_bias(res.plan, spec)[None, None, :]
            if spec.spiking:
                got |= np.asarray(res.records[spec.name]).reshape(got.shape) != 0
            assert counts.nodes[spec.node].neuron_updates_active == got.sum(axis=(0, 2)).mean()
