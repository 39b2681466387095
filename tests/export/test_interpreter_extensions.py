"""Extension-node evaluators of the reference interpreter against naive loops written from the definitions in
export/EXTENSIONS.md (nested Python loops over steps, heads, channels and tokens, in float64)."""

from __future__ import annotations

import itertools

import nir
import numpy as np
import pytest
import torch

from export.interpreter import Interpreter, run_graph
from export.ir.errors import GraphValidationError, InvalidNodeError
from export.ir.extensions import AttentionApply, AttentionScores, ComplementaryFusion, Gate, SpikeAttention


def port_graph(node, ports: dict[str, tuple], out_shape) -> nir.NIRGraph:
    """One Input per port, fed straight into it; one Output."""
    nodes = {p: nir.Input(np.array(s)) for p, s in ports.items()}
    nodes |= {"ext": node, "out": nir.Output(np.array(out_shape))}
    edges = [(p, f"ext.{p}") for p in ports] + [("ext", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3}, type_check=False)


def spikes(*shape, seed):
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) < 0.5).float()


def run(node, inputs: dict[str, torch.Tensor], out_shape):
    g = port_graph(node, {p: tuple(x.shape[2:]) for p, x in inputs.items()}, out_shape)
    return Interpreter(g).run(inputs).outputs["out"]


def naive_tokens(q, k, v, h, scale):
    t_, b_, c, n_ = q.shape
    d = c // h
    out = np.zeros(q.shape)
    for t, b, g, j, n in itertools.product(range(t_), range(b_), range(h), range(d), range(n_)):
        acc = 0.0
        for m in range(n_):
            for i in range(d):
                acc += q[t, b, g * d + i, n] * k[t, b, g * d + i, m] * v[t, b, g * d + j, m]
        out[t, b, g * d + j, n] = scale * acc
    return out


def naive_time(q, k, v, h, scale, w, layout):
    t_total, b_, c, n_ = q.shape
    d = c // h
    out = np.full(q.shape, np.nan)
    for k0 in range(0, t_total, w):  # each window [k0, k0 + w)
        r = np.zeros((w, b_, h, d, n_))
        for t, b, g, j, n in itertools.product(range(w), range(b_), range(h), range(d), range(n_)):
            acc = 0.0
            for s in range(w):
                for i in range(d):
                    acc += q[k0 + t, b, g * d + i, n] * k[k0 + s, b, g * d + i, n] * v[k0 + s, b, g * d + j, n]
            r[t, b, g, j, n] = scale * acc
        for t, b, g, j, n in itertools.product(range(w), range(b_), range(h), range(d), range(n_)):
            if layout == "clean":
                out[k0 + t, b, g * d + j, n] = r[t, b, g, j, n]
            else:
                f = g * w * d + t * d + j  # (h, W, d) head-major, read as (W, C)
                out[k0 + f // c, b, f % c, n] = r[t, b, g, j, n]
    assert not np.isnan(out).any()
    return out


@pytest.mark.parametrize("c, h, n", [(4, 1, 3), (4, 2, 3), (6, 3, 2), (6, 6, 4)])
def test_spike_attention_tokens(c, h, n):
    node = SpikeAttention(shape=(c, n), num_heads=h, scale=0.25, axis="tokens")
    q, k, v = (spikes(3, 2, c, n, seed=s) for s in range(3))
    got = run(node, {"q": q, "k": k, "v": v}, (c, n))
    assert torch.equal(got, torch.tensor(naive_tokens(q.numpy(), k.numpy(), v.numpy(), h, 0.25), dtype=torch.float32))


@pytest.mark.parametrize("layout", ["clean", "faithful"])
@pytest.mark.parametrize("c, h, w", [(4, 2, 3), (6, 3, 4), (8, 4, 2), (6, 6, 4), (4, 1, 4), (9, 3, 5), (6, 2, 1)])
def test_spike_attention_time_window(layout, c, h, w):
    n = 2
    node = SpikeAttention(shape=(c, n), num_heads=h, scale=0.125, axis="time", layout=layout, window=w)
    q, k, v = (spikes(2 * w, 2, c, n, seed=s) for s in range(3))  # two windows
    got = run(node, {"q": q, "k": k, "v": v}, (c, n))
    want = naive_time(q.numpy(), k.numpy(), v.numpy(), h, 0.125, w, layout)
    assert torch.equal(got, torch.tensor(want, dtype=torch.float32))


def test_faithful_differs_from_clean_when_heads_and_steps_mix():
    q, k, v = (spikes(3, 1, 4, 2, seed=s) for s in range(3))
    outs = [run(SpikeAttention(shape=(4, 2), num_heads=2, scale=1.0, axis="time", layout=lay, window=3),
                {"q": q, "k": k, "v": v}, (4, 2)) for lay in ("clean", "faithful")]
    assert not torch.equal(*outs)
    assert torch.equal(outs[0].sum(), outs[1].sum())  # a permutation of the same values


def test_spike_attention_non_binary_inputs_close_to_float64():
    g = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(4, 2, 6, 3, generator=g) for _ in range(3))
    node = SpikeAttention(shape=(6, 3), num_heads=3, scale=0.3, axis="time", layout="faithful", window=4)
    got = run(node, {"q": q, "k": k, "v": v}, (6, 3))
    want = naive_time(q.double().numpy(), k.double().numpy(), v.double().numpy(), 3, 0.3, 4, "faithful")
    assert np.allclose(got.numpy(), want, atol=1e-5)


@pytest.mark.parametrize("c, h, n", [(4, 2, 3), (6, 3, 2), (2, 1, 4)])
def test_attention_scores_then_apply(c, h, n):
    q, k, v = (spikes(2, 3, c, n, seed=s) for s in range(3))
    scores = run(AttentionScores(shape=(c, n), num_heads=h), {"q": q, "k": k}, (h, n, n))
    d = c // h
    want = np.zeros((2, 3, h, n, n))
    for t, b, g, i, j in itertools.product(range(2), range(3), range(h), range(n), range(n)):
        want[t, b, g, i, j] = sum(q[t, b, g * d + a, i].item() * k[t, b, g * d + a, j].item() for a in range(d))
    assert torch.equal(scores, torch.tensor(want, dtype=torch.float32))

    applied = run(AttentionApply(shape=(c, n), num_heads=h, scale=0.25), {"p": scores, "v": v}, (c, n))
    want_o = np.zeros((2, 3, c, n))
    for t, b, g, j, i in itertools.product(range(2), range(3), range(h), range(d), range(n)):
        want_o[t, b, g * d + j, i] = 0.25 * sum(want[t, b, g, i, m] * v[t, b, g * d + j, m].item() for m in range(n))
    assert torch.equal(applied, torch.tensor(want_o, dtype=torch.float32))
    # Scores then Apply is tokens attention (scale applied last in both)
    tokens = run(SpikeAttention(shape=(c, n), num_heads=h, scale=0.25, axis="tokens"), {"q": q, "k": k, "v": v},
                 (c, n))
    assert torch.equal(applied, tokens)


@pytest.mark.parametrize("c, n, w", [(2, 3, 4), (3, 5, 1), (1, 7, 3)])
def test_complementary_fusion(c, n, w):
    sp, tm = spikes(2 * w, 2, c, n, seed=1), spikes(2 * w, 2, c, n, seed=2)
    got = run(ComplementaryFusion(shape=(c, n), window=w), {"spatial": sp, "temporal": tm}, (c, n))
    want = np.zeros(got.shape, dtype=np.float32)
    s32, t32 = sp.numpy(), tm.numpy()
    for k0, b, ch, i in itertools.product(range(0, 2 * w, w), range(2), range(c), range(n)):
        t_mean = np.float32(t32[k0:k0 + w, b, ch, i].sum()) / np.float32(w)
        for t in range(k0, k0 + w):
            s_mean = np.float32(s32[t, b, ch, :].sum()) / np.float32(n)
            want[t, b, ch, i] = s_mean * t_mean  # float32: mean over m, mean over s, then the product
    assert torch.equal(got, torch.from_numpy(want))


def test_gate_and_fan_in_into_a_port():
    x1, x2 = spikes(3, 2, 2, 3, seed=1), spikes(3, 2, 2, 3, seed=2)
    gate = torch.rand(3, 2, 1, generator=torch.Generator().manual_seed(3))
    nodes = {"x1": nir.Input(np.array([2, 3])), "x2": nir.Input(np.array([2, 3])), "g": nir.Input(np.array([1])),
             "gate": Gate(shape=(2, 3)), "out": nir.Output(np.array([2, 3]))}
    edges = [("x1", "gate.x"), ("x2", "gate.x"), ("g", "gate.gate"), ("gate", "out")]
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={}, type_check=False)
    got = Interpreter(g).run({"x1": x1, "x2": x2, "g": gate}).outputs["out"]
    want = (x1 + x2) * gate[..., None]
    assert torch.equal(got, want)


def test_window_errors():
    node = ComplementaryFusion(shape=(2, 3), window=4)
    g = port_graph(node, {"spatial": (2, 3), "temporal": (2, 3)}, (2, 3))
    x = spikes(6, 1, 2, 3, seed=0)
    with pytest.raises(InvalidNodeError, match="multiple of 4"):
        Interpreter(g).run({"spatial": x, "temporal": x})
    with pytest.raises(GraphValidationError, match="stepwise=True"):
        Interpreter(g, stepwise=True)
    lif = nir.LIF(tau=np.full(6, 2e-3), r=np.ones(6), v_leak=np.zeros(6), v_threshold=np.ones(6), v_reset=np.zeros(6))
    g.nodes |= {"lif": lif, "rec": nir.Linear(weight=np.eye(6)), "flat": nir.Flatten(input_type=None)}
    g.edges += [("ext", "flat"), ("flat", "lif"), ("lif", "rec"), ("rec", "lif")]
    with pytest.raises(GraphValidationError, match="cycle.*WINDOW node\\(s\\) \\['ext'\\]"):
        Interpreter(g)


def test_unfed_and_unknown_ports():
    node = Gate(shape=(2, 3))
    g = nir.NIRGraph(nodes={"x": nir.Input(np.array([2, 3])), "gate": node, "out": nir.Output(np.array([2, 3]))},
                     edges=[("x", "gate.x"), ("gate", "out")], metadata={}, type_check=False)
    with pytest.raises(GraphValidationError, match="port\\(s\\) \\['gate'\\]"):
        Interpreter(g)
    g.edges.append(("x", "gate.y"))
    with pytest.raises(GraphValidationError, match="has ports \\['x', 'gate'\\], not 'y'"):
        Interpreter(g)


def test_attention_block_through_snnav_file(tmp_path):
    """q/k/v neurons -> SpikeAttention(time) -> LIF, written and read back with snnav's nirfile."""
    from export.ir.nirfile import make_graph, write_graph

    c, n, t = 4, 3, 4
    lif = lambda th: nir.LIF(tau=np.full((c, n), 2e-3), r=np.ones((c, n)), v_leak=np.zeros((c, n)),  # noqa: E731
                             v_threshold=np.full((c, n), th), v_reset=np.zeros((c, n)))
    nodes = {"x": nir.Input(np.array([c, n])), "q": lif(0.5), "k": lif(0.7), "v": lif(0.3),
             "attn": SpikeAttention(shape=(c, n), num_heads=2, scale=0.25, axis="time", layout="faithful", window=t),
             "attn_lif": lif(0.5), "out": nir.Output(np.array([c, n]))}
    edges = [("x", "q"), ("x", "k"), ("x", "v"), ("q", "attn.q"), ("k", "attn.k"), ("v", "attn.v"),
             ("attn", "attn_lif"), ("attn_lif", "out")]
    g = make_graph(nodes, edges, {"dt": 1e-3})
    path = tmp_path / "attn.nir"
    write_graph(path, g)
    x = torch.rand(t, 2, c, n, generator=torch.Generator().manual_seed(0)) * 3
    res = run_graph(path, x)
    q, k, v = (res.spikes[name].numpy() for name in "qkv")
    want_attn = naive_time(q, k, v, 2, 0.25, t, "faithful")
    assert torch.equal(res.records["attn"], torch.tensor(want_attn, dtype=torch.float32))
    assert torch.equal(res.outputs["out"], Interpreter(g).run(x).outputs["out"])
