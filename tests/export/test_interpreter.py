"""Reference NIR interpreter: golden neuron trajectories, standard nodes against torch functionals, fan-in,
multi-input graphs, recurrence, subgraphs, errors, and determinism (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from export.interpreter import Interpreter, run_graph
from export.ir.errors import GraphValidationError, InvalidNodeError, UnknownNodeTypeError

DT = 1e-3


def graph(nodes: dict, edges: list, **metadata) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False)


def chain(*nodes, shape_in, shape_out=None, **metadata) -> nir.NIRGraph:
    """input -> n0 -> n1 -> ... -> output."""
    names = [f"n{i}" for i in range(len(nodes))]
    all_nodes = {"input": nir.Input(np.array(shape_in)), **dict(zip(names, nodes)),
                 "output": nir.Output(np.array(shape_out if shape_out is not None else shape_in))}
    seq = ["input", *names, "output"]
    return graph(all_nodes, list(zip(seq[:-1], seq[1:])), **metadata)


def run_both(g, x, **kw):
    """Run in sequence mode and step by step; both must agree bit for bit on these small shapes."""
    a = Interpreter(g, **kw).run(x)
    b = Interpreter(g, stepwise=True, **kw).run(x)
    for name in a.records:
        assert torch.equal(a.records[name], b.records[name]), name
    return a


def ones(n, v=1.0):
    return np.full(n, v, dtype=np.float64)


# ------------------------------------------------------------------------------------------ golden trajectories


def seq(values):
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1)  # [T, B=1, 1]


def test_lif_golden_strict_threshold_and_same_step_reset():
    lif = nir.LIF(tau=ones(1, 2 * DT), r=ones(1), v_leak=ones(1, 0), v_threshold=ones(1), v_reset=ones(1, 0))
    x = seq([1.5, 1.5, 0.5, 2.5, 0.0, 2.0, 2.0])
    res = run_both(chain(lif, shape_in=[1]), x, dt=DT)
    # v: 0.75, 1.125 (spike -> 0), 0.25, 1.375 (spike -> 0), 0, 1.0 (== theta: no spike), 1.5 (spike)
    assert res.outputs["output"].flatten().tolist() == [0, 1, 0, 1, 0, 0, 1]


def test_lif_golden_reset_to_value_leak_and_resistance():
    # c = dt/tau = 0.25, r = 2, v_leak = 0.5, v_reset = 0.25, theta = 1
    lif = nir.LIF(tau=ones(1, 4 * DT), r=ones(1, 2), v_leak=ones(1, 0.5), v_threshold=ones(1), v_reset=ones(1, 0.25))
    x = seq([1.0, 0.0, 0.0])
    # v0 = 0 + 0.25 * (0.5 + 2) = 0.625; v1 = 0.625 + 0.25 * (0.5 - 0.625) = 0.59375; v2 = 0.5703125
    li = nir.LI(tau=ones(1, 4 * DT), r=ones(1, 2), v_leak=ones(1, 0.5))
    assert run_both(chain(li, shape_in=[1]), x, dt=DT).outputs["output"].flatten().tolist() == [0.625, 0.59375,
                                                                                                0.5703125]
    x = seq([2.0, 0.0, 0.0])  # v0 = 0 + 0.25 * (0.5 + 4) = 1.125 -> spike, v <- 0.25; v1 = 0.3125; v2 = 0.359375
    out = run_both(chain(lif, shape_in=[1]), x, dt=DT)
    assert out.outputs["output"].flatten().tolist() == [1, 0, 0]
    li_from_reset = run_both(chain(li, shape_in=[1]), seq([0.0, 0.0]), dt=DT).outputs["output"].flatten().tolist()
    assert li_from_reset == [0.125, 0.21875]  # the same leak from v = 0, a sanity check of the coefficient


def test_if_and_integrator_golden():
    # IF: c = dt * r = 1 with dt = 0.5, r = 2; theta = 1.5 strict
    g_if = chain(nir.IF(r=ones(1, 2), v_threshold=ones(1, 1.5), v_reset=ones(1, 0)), shape_in=[1])
    assert run_both(g_if, seq([1, 1, 1, 0.5]), dt=0.5).outputs["output"].flatten().tolist() == [0, 1, 0, 0]
    # I: c = dt * r = 1.5
    g_i = chain(nir.I(r=ones(1, 3)), shape_in=[1])
    assert run_both(g_i, seq([1, 2, -1]), dt=0.5).outputs["output"].flatten().tolist() == [1.5, 4.5, 3.0]


def test_cuba_golden_current_updates_before_membrane():
    # cs = dt/tau_syn = 0.5, cm = dt/tau_mem = 0.25, w_in = 2, theta = 0.5
    kw = dict(tau_syn=ones(1, 2 * DT), tau_mem=ones(1, 4 * DT), r=ones(1), v_leak=ones(1, 0), w_in=ones(1, 2))
    x = seq([1, 0, 0, 1])
    # i: 1, 0.5, 0.25, 1.125;  v: 0.25, 0.3125, 0.296875, 0.50390625
    li = run_both(chain(nir.CubaLI(**kw), shape_in=[1]), x, dt=DT)
    assert li.outputs["output"].flatten().tolist() == [0.25, 0.3125, 0.296875, 0.50390625]
    lif = run_both(chain(nir.CubaLIF(**kw, v_threshold=ones(1, 0.5), v_reset=ones(1, 0)), shape_in=[1]), x, dt=DT)
    assert lif.outputs["output"].flatten().tolist() == [0, 0, 0, 1]


def test_snntorch_convention_golden_subtract_reset_next_step():
    beta = 0.5
    tau = np.array([1e-4 / (1 - beta)])
    lif = nir.LIF(tau=tau, r=tau / 1e-4, v_leak=ones(1, 0), v_threshold=ones(1), v_reset=ones(1, 0))
    x = seq([1.5, 1.5, 0.2, 0.0])
    # mem 1.5 (spike), 0.75 + 1.5 - 1 = 1.25 (spike: the reset is one subtraction, not a zeroing), -0.175, ...
    res = run_both(chain(lif, shape_in=[1]), x, dt=1e-4, convention="snntorch")
    assert res.outputs["output"].flatten().tolist() == [1, 1, 0, 0]
    # after a spike snnTorch subtracts thr from the decayed membrane (a residual remains); NIR resets v to 0:
    x2 = seq([3.0, 0.6])  # snnTorch: 3 (spike), 1.5 + 0.6 - 1 = 1.1 (spike); NIR: 3 -> 0, 0 + 0.5 * 1.2 = 0.6
    assert run_both(chain(lif, shape_in=[1]), x2, dt=1e-4, convention="snntorch").outputs["output"].flatten(
    ).tolist() == [1, 1]
    assert Interpreter(chain(lif, shape_in=[1]), dt=1e-4).run(x2).outputs["output"].flatten().tolist() == [1, 0]


def test_norse_convention_golden():
    lif = nir.LIF(tau=ones(1, 0.01), r=ones(1), v_leak=ones(1, 0), v_threshold=ones(1), v_reset=ones(1, 0))
    res = run_both(chain(lif, shape_in=[1]), seq([5, 5, 5, 5]), dt=1e-3, convention="norse")
    # c = 0.1: v 0.5, 0.95, 1.355 (spike -> 0), 0.5
    assert res.outputs["output"].flatten().tolist() == [0, 0, 1, 0]
    g_if = chain(nir.IF(r=ones(1), v_threshold=ones(1, 1.5), v_reset=ones(1, 0)), shape_in=[1])
    # Norse's IAF integrates v + x regardless of dt; NIR's IF integrates v + dt*r*x
    norse_if = Interpreter(g_if, dt=1e-3, convention="norse").run(seq([1, 1])).outputs["output"]
    assert norse_if.flatten().tolist() == [0, 1]
    assert Interpreter(g_if, dt=1e-3).run(seq([1, 1])).outputs["output"].flatten().tolist() == [0, 0]


def test_lif_matches_scmrl_neuron_bit_for_bit():
    """`v + 0.5 * ((0 - v) + 1 * x)` equals S-CMRL's `H = V + (X - V) / 2` in float32, bit for bit."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 16, 50, generator=gen) * 3
    theta = np.float32(1.0)
    lif = nir.LIF(tau=ones(50, 2 * DT), r=ones(50), v_leak=ones(50, 0), v_threshold=ones(50, np.nextafter(theta, -1)),
                  v_reset=ones(50, 0))
    got = Interpreter(chain(lif, shape_in=[50]), dt=DT).run(x).outputs["output"]
    v = torch.zeros(16, 50)
    want = []
    for t in range(32):
        h = v + (x[t] - v) / 2.0
        s = (h >= 1.0).float()
        want.append(s)
        v = h * (1.0 - s)
    assert torch.equal(got, torch.stack(want))


def test_leaky_membrane_matches_scmrl_bit_for_bit():
    """The membrane itself (LI shares LIF's update): every float32 bit of V + (X - V)/2, over many steps."""
    x = torch.randn(64, 8, 50, generator=torch.Generator().manual_seed(1)) * 3
    li = nir.LI(tau=ones(50, 2 * DT), r=ones(50), v_leak=ones(50, 0))
    got = Interpreter(chain(li, shape_in=[50]), dt=DT).run(x).outputs["output"]
    v, want = torch.zeros(8, 50), []
    for t in range(64):
        v = v + (x[t] - v) / 2.0
        want.append(v)
    assert torch.equal(got, torch.stack(want))
    naive = torch.zeros(8, 50)  # the one-rounding form 0.5 v + 0.5 x differs: the test can tell them apart
    differs = False
    for t in range(64):
        naive = 0.5 * naive + 0.5 * x[t]
        differs |= not torch.equal(naive, want[t])
    assert differs


# ------------------------------------------------------------------------------------------------ stateless nodes


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bias", [True, False])
def test_affine_and_linear_match_torch(bias):
    w, b = rand(4, 6, seed=1), rand(4, seed=2)
    node = nir.Affine(weight=w.numpy(), bias=b.numpy()) if bias else nir.Linear(weight=w.numpy())
    x = rand(5, 3, 6)
    got = run_both(chain(node, shape_in=[6], shape_out=[4]), x, dt=DT).outputs["output"]
    assert torch.equal(got, F.linear(x, w, b if bias else None))


def test_stepwise_matches_per_step_matmul_and_sequence_matches_multistep():
    """Why `stepwise` exists: in float32 a BLAS matmul over T*B rows may round differently from one over B rows
    (on the machine this was written on, 784 -> 500 with T=10, B=2 differs by up to 5e-5). Each mode equals the
    computation it is meant to be compared with, bit for bit."""
    w, b, x = rand(500, 784, seed=1), rand(500, seed=2), rand(10, 2, 784, seed=3)
    g = chain(nir.Affine(weight=w.numpy(), bias=b.numpy()), shape_in=[784], shape_out=[500])
    per_step = torch.stack([F.linear(x[t], w, b) for t in range(10)])  # snnTorch / Norse
    assert torch.equal(Interpreter(g, stepwise=True).run(x).outputs["output"], per_step)
    assert torch.equal(Interpreter(g).run(x).outputs["output"], F.linear(x, w, b))  # multi-step torch models


def test_float64_compute():
    lif = nir.LIF(tau=ones(1, 3 * DT), r=ones(1), v_leak=ones(1, 0), v_threshold=ones(1), v_reset=ones(1, 0))
    x = torch.tensor([1.5, 1.5, 1.5], dtype=torch.float64).reshape(3, 1, 1)
    res = Interpreter(chain(lif, shape_in=[1]), dt=DT, dtype=torch.float64).run(x)
    li = Interpreter(chain(nir.LI(tau=ones(1, 3 * DT), r=ones(1), v_leak=ones(1, 0)), shape_in=[1]), dt=DT,
                     dtype=torch.float64).run(x).outputs["output"]
    c = 1.0 / 3.0  # float64 coefficient: v0 = 0.5, v1 = 0.5 + (1.5 - 0.5) / 3, ...
    v0 = 0.0 + c * ((0.0 - 0.0) + 1.5)
    v1 = v0 + c * ((0.0 - v0) + 1.5)
    assert li.dtype == torch.float64 and li.flatten().tolist()[:2] == [v0, v1]
    assert res.outputs["output"].dtype == torch.float64 and res.outputs["output"].flatten().tolist() == [0, 0, 1]


def test_affine_with_leading_weight_dims():
    w, b = rand(2, 4, 6, seed=1), rand(2, 4, seed=2)
    x = rand(3, 5, 2, 6)
    got = run_both(chain(nir.Affine(weight=w.numpy(), bias=b.numpy()), shape_in=[2, 6], shape_out=[2, 4]), x,
                   dt=DT).outputs["output"]
    want = torch.einsum("goi,tbgi->tbgo", w, x) + b
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_scale_and_threshold():
    s = np.array([[2.0], [-0.5]])
    x = rand(4, 3, 2, 5)
    got = run_both(chain(nir.Scale(scale=s), shape_in=[2, 5]), x, dt=DT).outputs["output"]
    assert torch.equal(got, x * torch.tensor(s, dtype=torch.float32))
    x = torch.tensor([0.5, 0.50001, 0.49, 1.0]).reshape(4, 1, 1)
    got = Interpreter(chain(nir.Threshold(threshold=np.array([0.5])), shape_in=[1])).run(x).spikes["n0"]
    assert got.flatten().tolist() == [0, 1, 0, 1]  # strict: 0.5 does not pass 0.5


@pytest.mark.parametrize(
    "stride, padding, dilation, groups",
    [(1, 0, 1, 1), (2, 1, 1, 1), (1, "same", 2, 1), (1, "valid", 1, 2), (np.array([2]), np.array([2]), 1, 1)],
)
def test_conv1d_matches_torch(stride, padding, dilation, groups):
    w, b = rand(4, 4 // groups, 3, seed=1), rand(4, seed=2)
    node = nir.Conv1d(input_shape=None, weight=w.numpy(), stride=stride, padding=padding, dilation=dilation,
                      groups=groups, bias=b.numpy())
    x = rand(3, 2, 4, 9)
    g = graph({"input": nir.Input(np.array([4, 9])), "conv": node, "output": nir.Output(np.array([4, 9]))},
              [("input", "conv"), ("conv", "output")])
    got = run_both(g, x, dt=DT).outputs["output"]
    s, d = int(np.asarray(stride).flat[0]), int(np.asarray(dilation).flat[0])
    p = padding if isinstance(padding, str) else int(np.asarray(padding).flat[0])
    want = F.conv1d(x.reshape(6, 4, 9), w, b, stride=s, padding=p, dilation=d, groups=groups)
    assert torch.equal(got, want.reshape(3, 2, *want.shape[1:]))


@pytest.mark.parametrize(
    "stride, padding, dilation, groups",
    [(1, 1, 1, 1), ((2, 1), (1, 0), 1, 1), (1, "same", (1, 2), 1), (2, "valid", 1, 2), (np.array([1, 2]),
                                                                                         np.array([2, 1]), 2, 1)],
)
def test_conv2d_matches_torch(stride, padding, dilation, groups):
    w, b = rand(4, 4 // groups, 3, 2, seed=1), rand(4, seed=2)  # non-square kernel on purpose
    node = nir.Conv2d(input_shape=(7, 8), weight=w.numpy(), stride=stride, padding=padding, dilation=dilation,
                      groups=groups, bias=b.numpy())
    x = rand(3, 2, 4, 7, 8)
    g = graph({"input": nir.Input(np.array([4, 7, 8])), "conv": node, "output": nir.Output(np.array([4, 7, 8]))},
              [("input", "conv"), ("conv", "output")])
    got = run_both(g, x, dt=DT).outputs["output"]
    pair = lambda v: v if isinstance(v, str) else tuple(int(a) for a in np.broadcast_to(np.asarray(v), (2,)))  # noqa
    want = F.conv2d(x.reshape(6, 4, 7, 8), w, b, stride=pair(stride), padding=pair(padding),
                    dilation=pair(dilation), groups=groups)
    assert torch.equal(got, want.reshape(3, 2, *want.shape[1:]))


def test_conv_same_with_stride_is_refused():
    node = nir.Conv2d(input_shape=None, weight=np.ones((1, 1, 3, 3)), stride=2, padding="same", dilation=1,
                      groups=1, bias=np.zeros(1))
    with pytest.raises(InvalidNodeError, match="same"):
        Interpreter(chain(node, shape_in=[1, 5, 5]))


def naive_sum_pool(x, k, s, p):
    """Direct loops over the zero-padded window."""
    t, b, c, h, w = x.shape
    xp = F.pad(x, (p[1], p[1], p[0], p[0]))
    ho, wo = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    out = torch.zeros(t, b, c, ho, wo, dtype=torch.float64)
    for i in range(ho):
        for j in range(wo):
            out[..., i, j] = xp[..., i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].double().sum((-1, -2))
    return out


@pytest.mark.parametrize("k, s, p", [((3, 3), (2, 2), (1, 1)), ((2, 3), (1, 2), (0, 1)), ((2, 2), (2, 2), (2, 0))])
def test_sumpool_is_a_true_sum_with_zero_padding(k, s, p):
    x = rand(2, 3, 2, 7, 6)  # negative values too: nirtorch's LPPool2d(norm_type=1) would sum |x|
    node = nir.SumPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
    got = run_both(chain(node, shape_in=[2, 7, 6]), x, dt=DT).outputs["output"]
    want = naive_sum_pool(x, k, s, p)
    assert torch.allclose(got.double(), want, atol=1e-5)
    spikes = (x > 0).float()
    exact = Interpreter(chain(node, shape_in=[2, 7, 6])).run(spikes).outputs["output"]
    assert torch.equal(exact.double(), naive_sum_pool(spikes, k, s, p))  # binary input: integer counts, exact
    lp = F.lp_pool2d(x.reshape(6, 2, 7, 6), 1, k, s)  # what nirtorch does (no padding, |x|)
    lp = lp.reshape(2, 3, *lp.shape[1:])
    assert not (lp.shape == got.shape and torch.allclose(lp, got))


@pytest.mark.parametrize("k, s, p", [((2, 2), None, (0, 0)), ((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (2, 2))])
def test_avgpool_matches_torch(k, s, p):
    x = rand(2, 3, 2, 7, 6)
    s = s or k
    node = nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array(p))
    got = run_both(chain(node, shape_in=[2, 7, 6]), x, dt=DT).outputs["output"]
    if 2 * p[0] <= k[0]:
        want = torch.nn.AvgPool2d(k, s, p)(x.reshape(6, 2, 7, 6))
        assert torch.equal(got, want.reshape(2, 3, *want.shape[1:]))
    else:  # torch refuses this padding; the definition still holds
        assert torch.allclose(got.double(), naive_sum_pool(x, k, s, p) / (k[0] * k[1]), atol=1e-6)


@pytest.mark.parametrize("start, end", [(0, -1), (1, 2), (0, 1), (-2, -1)])
def test_flatten_dims_exclude_batch(start, end):
    x = rand(2, 3, 4, 5, 6)
    node = nir.Flatten(input_type={"input": np.array([4, 5, 6])}, start_dim=start, end_dim=end)
    got = Interpreter(chain(node, shape_in=[4, 5, 6])).run(x).outputs["output"]
    want = torch.stack([torch.stack([torch.flatten(x[t, b], start, end) for b in range(3)]) for t in range(2)])
    assert torch.equal(got, want)


def test_delay_per_element_integer_steps():
    x = rand(6, 2, 3)
    node = nir.Delay(delay=np.array([0.0, 1e-3, 3e-3]))  # 0, 1, 3 steps at dt = 1e-3
    got = run_both(chain(node, shape_in=[3]), x, dt=1e-3).outputs["output"]
    want = torch.zeros_like(x)
    for e, d in enumerate([0, 1, 3]):
        want[d:, :, e] = x[: 6 - d, :, e]
    assert torch.equal(got, want)


# ------------------------------------------------------------------------------ fan-in, multi-input, records


def test_fan_in_is_summed_and_multi_input():
    wa, wv = rand(3, 4, seed=1), rand(3, 2, seed=2)
    lif = nir.LIF(tau=ones(3, 2 * DT), r=ones(3), v_leak=ones(3, 0), v_threshold=ones(3, 0.3), v_reset=ones(3, 0))
    g = graph(
        {"audio": nir.Input(np.array([4])), "visual": nir.Input(np.array([2])),
         "fa": nir.Linear(weight=wa.numpy()), "fv": nir.Linear(weight=wv.numpy()), "lif": lif,
         "logits": nir.Output(np.array([3]))},
        [("audio", "fa"), ("visual", "fv"), ("fa", "lif"), ("fv", "lif"), ("lif", "logits"), ("fa", "logits")],
        dt=DT,
    )
    a, v = rand(5, 2, 4, seed=3), rand(5, 2, 2, seed=4)
    res = run_both(g, {"audio": a, "visual": v})  # dt from metadata
    cur = F.linear(a, wa) + F.linear(v, wv)
    vm, spikes = torch.zeros(2, 3), []
    for t in range(5):
        vm = vm + 0.5 * ((0 - vm) + cur[t])
        spikes.append((vm > 0.3).float())
        vm = torch.where(vm > 0.3, torch.zeros(()), vm)
    assert torch.equal(res.spikes["lif"], torch.stack(spikes))
    assert torch.equal(res.outputs["logits"], res.spikes["lif"] + res.records["fa"])
    assert set(res.spikes) == {"lif"} and set(res.records) == set(g.nodes)
    only = Interpreter(g).run({"audio": a, "visual": v}, record=["lif"])
    assert set(only.records) == {"lif"} and torch.equal(only.outputs["logits"], res.outputs["logits"])
    assert Interpreter(g).run({"audio": a, "visual": v}, record=False).records == {}


BIG = 2.0**24  # 2^24 + 1 rounds to 2^24 in float32: sums of (BIG, -BIG, 1) depend on their order


def test_fan_in_sums_in_edge_order():
    g = graph({"a": nir.Input(np.array([1])), "b": nir.Input(np.array([1])), "c": nir.Input(np.array([1])),
               "out": nir.Output(np.array([1]))},
              [("a", "out"), ("b", "out"), ("c", "out")])
    xs = {"a": torch.full((1, 1, 1), BIG), "b": torch.full((1, 1, 1), -BIG), "c": torch.ones(1, 1, 1)}
    assert Interpreter(g).run(xs).outputs["out"].item() == 1.0  # (BIG - BIG) + 1; c first would give 0
    g.edges[:] = [("c", "out"), ("a", "out"), ("b", "out")]
    assert Interpreter(g).run(xs).outputs["out"].item() == 0.0  # (1 + BIG) - BIG


@pytest.mark.parametrize("convention", ["nir", "snntorch"])
def test_fan_in_feed_forward_terms_before_recurrent(convention):
    """I_1 = (a + b) + rec = (BIG - BIG) + 1 = 1 fires; the recurrent term first would give 0."""
    tau = np.array([1e-4])  # c = dt/tau = 1 (snnTorch: beta = 0, gain r*dt/tau = 1)
    lif = nir.LIF(tau=tau, r=ones(1), v_leak=ones(1, 0), v_threshold=ones(1, 0.4), v_reset=ones(1, 0))
    g = graph({"a": nir.Input(np.array([1])), "b": nir.Input(np.array([1])), "lif": lif,
               "rec": nir.Linear(weight=np.ones((1, 1))), "out": nir.Output(np.array([1]))},
              [("rec", "lif"), ("a", "lif"), ("b", "lif"), ("lif", "rec"), ("lif", "out")])  # recurrent edge first
    xs = {"a": torch.tensor([1.0, BIG]).reshape(2, 1, 1), "b": torch.tensor([0.0, -BIG]).reshape(2, 1, 1)}
    out = Interpreter(g, dt=1e-4, convention=convention).run(xs).outputs["out"]
    assert out.flatten().tolist() == [1.0, 1.0]


def test_input_errors():
    g = chain(nir.Scale(scale=ones(3)), shape_in=[3])
    with pytest.raises(ValueError, match=r"\[T, B, \*\(3,\)\]"):
        Interpreter(g).run(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="expected inputs"):
        Interpreter(g).run({"audio": torch.zeros(2, 1, 3)})
    with pytest.raises(ValueError, match="no such node"):
        Interpreter(g).run(torch.zeros(2, 1, 3), record=["nope"])


def test_dt_required_from_argument_or_metadata():
    lif = nir.LIF(tau=ones(1, 2e-4), r=ones(1), v_leak=ones(1, 0), v_threshold=ones(1), v_reset=ones(1, 0))
    with pytest.raises(GraphValidationError, match="pass Interpreter\\(graph, dt="):
        Interpreter(chain(lif, shape_in=[1]))
    x = seq([1.5, 1.5])
    from_meta = Interpreter(chain(lif, shape_in=[1], dt=1e-4)).run(x).outputs["output"]
    from_arg = Interpreter(chain(lif, shape_in=[1], dt=5.0), dt=1e-4).run(x).outputs["output"]  # argument wins
    assert torch.equal(from_meta, from_arg) and from_meta.flatten().tolist() == [0, 1]
    with pytest.raises(GraphValidationError, match="positive"):
        Interpreter(chain(lif, shape_in=[1]), dt=-1.0)


def test_unknown_node_type_and_bad_edges():
    @dataclass(eq=False)
    class Mystery(nir.NIRNode):
        level: int = 0

    g = graph({"input": nir.Input(np.array([1])), "m": Mystery(), "output": nir.Output(np.array([1]))},
              [("input", "m"), ("m", "output")])
    with pytest.raises(UnknownNodeTypeError, match="Mystery"):
        Interpreter(g)
    g = graph({"input": nir.Input(np.array([1])), "output": nir.Output(np.array([1]))}, [("input", "outptu")])
    with pytest.raises(GraphValidationError, match="no node named 'outptu'"):
        Interpreter(g)
    g = graph({"input": nir.Input(np.array([1])), "s": nir.Scale(scale=ones(1)), "output": nir.Output(np.array([1]))},
              [("input", "s.x"), ("s", "output")])
    with pytest.raises(GraphValidationError, match="Scale has no named ports"):
        Interpreter(g)


def test_run_graph_reads_a_path(tmp_path):
    g = chain(nir.Affine(weight=rand(2, 3).numpy(), bias=np.zeros(2, dtype=np.float32)), shape_in=[3],
              shape_out=[2], dt=DT)
    path = tmp_path / "g.nir"
    nir.write(path, g)
    x = rand(2, 2, 3)
    assert torch.equal(run_graph(path, x).outputs["output"], run_graph(g, x, record=False).outputs["output"])


# ---------------------------------------------------------------------------------- recurrence and subgraphs


def rleaky_nodes(w_in, w_rec, b_rec, theta=0.5):
    n = w_rec.shape[0]
    lif = nir.LIF(tau=ones(n, 2 * DT), r=ones(n), v_leak=ones(n, 0), v_threshold=ones(n, theta), v_reset=ones(n, 0))
    return nir.Linear(weight=w_in.numpy()), lif, nir.Affine(weight=w_rec.numpy(), bias=b_rec.numpy())


def rleaky_reference(x, w_in, w_rec, b_rec, theta=0.5):
    """I_t = W_in x_t + (W_rec z_{t-1} + b), z_{-1} = 0: the synapse (and its bias) acts at t = 0 too."""
    n = w_rec.shape[0]
    v, z, out = torch.zeros(x.shape[1], n), torch.zeros(x.shape[1], n), []
    for t in range(x.shape[0]):
        cur = F.linear(x[t], w_in) + F.linear(z, w_rec, b_rec)
        v = v + 0.5 * ((0 - v) + cur)
        z = (v > theta).float()
        v = torch.where(v > theta, torch.zeros(()), v)
        out.append(z)
    return torch.stack(out)


@pytest.fixture
def recurrent_weights():
    return rand(4, 3, seed=1), rand(4, 4, seed=2), rand(4, seed=3) * 0.5


def test_flat_recurrent_graph_delays_the_edge_leaving_the_neuron(recurrent_weights):
    w_in, w_rec, b_rec = recurrent_weights
    fc, lif, rec = rleaky_nodes(w_in, w_rec, b_rec)
    # edge order puts the recurrent edge first: the fan-in order still adds the feed-forward term first
    g = graph({"input": nir.Input(np.array([3])), "fc": fc, "1.lif": lif, "1.w_rec": rec,
               "output": nir.Output(np.array([4]))},
              [("1.w_rec", "1.lif"), ("input", "fc"), ("fc", "1.lif"), ("1.lif", "1.w_rec"), ("1.lif", "output")],
              dt=DT)
    interp = Interpreter(g)
    assert interp.recurrent_edges == [("1.lif", "1.w_rec")]
    x = rand(12, 2, 3, seed=4) * 2
    assert torch.equal(interp.run(x).spikes["1.lif"], rleaky_reference(x, w_in, w_rec, b_rec))


def test_nested_subgraph_like_snntorch_rleaky(recurrent_weights):
    w_in, w_rec, b_rec = recurrent_weights
    fc, lif, rec = rleaky_nodes(w_in, w_rec, b_rec)
    sub = graph({"input": nir.Input(np.array([4])), "lif": lif, "w_rec": rec, "output": nir.Output(np.array([4]))},
                [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    probe = nir.Scale(scale=ones(4, 2.0))
    g = graph({"input": nir.Input(np.array([3])), "fc": fc, "R": sub, "probe": probe, "out": nir.Output(np.array([4])),
               "out2": nir.Output(np.array([4]))},
              [("input", "fc"), ("fc", "R"), ("R", "out"), ("R.lif", "probe"), ("probe", "out2")], dt=DT)
    interp = Interpreter(g)
    assert interp.recurrent_edges == [("R.lif", "R.w_rec")]
    x = rand(12, 2, 3, seed=4) * 2
    res = interp.run(x)
    want = rleaky_reference(x, w_in, w_rec, b_rec)
    assert torch.equal(res.spikes["R.lif"], want)
    assert torch.equal(res.outputs["out"], want) and torch.equal(res.outputs["out2"], 2 * want)


def test_edge_into_a_node_inside_a_subgraph():
    sub = graph({"input": nir.Input(np.array([2])), "a": nir.Scale(scale=ones(2, 3.0)), "b": nir.Scale(scale=ones(2)),
                 "output": nir.Output(np.array([2]))},
                [("input", "a"), ("a", "b"), ("b", "output")])
    g = graph({"x": nir.Input(np.array([2])), "y": nir.Input(np.array([2])), "G": sub, "o": nir.Output(np.array([2]))},
              [("x", "G"), ("y", "G.b"), ("G", "o")])
    x, y = rand(2, 1, 2, seed=1), rand(2, 1, 2, seed=2)
    assert torch.allclose(Interpreter(g).run({"x": x, "y": y}).outputs["o"], 3 * x + y)


def test_cycle_errors():
    loop = graph({"input": nir.Input(np.array([2])), "a": nir.Scale(scale=ones(2)), "b": nir.Scale(scale=ones(2)),
                  "output": nir.Output(np.array([2]))},
                 [("input", "a"), ("a", "b"), ("b", "a"), ("b", "output")])
    with pytest.raises(GraphValidationError, match="algebraic loop"):
        Interpreter(loop)


# --------------------------------------------------------------------------------------- determinism property


@st.composite
def random_graphs(draw):
    """A random DAG of Affine/Scale/LIF/Threshold/Delay layers with skip (fan-in) edges, plus optional recurrence."""
    n = draw(st.integers(2, 4))
    depth = draw(st.integers(1, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    nodes = {"input": nir.Input(np.array([n]))}
    edges, names = [], ["input"]
    for k in range(depth):
        kind = draw(st.sampled_from(["affine", "scale", "lif", "threshold", "delay", "cuba"]))
        name = f"{kind}{k}"
        if kind == "affine":
            nodes[name] = nir.Affine(weight=rng.normal(size=(n, n)).astype(np.float32), bias=rng.normal(size=n))
        elif kind == "scale":
            nodes[name] = nir.Scale(scale=rng.normal(size=n))
        elif kind == "lif":
            nodes[name] = nir.LIF(tau=rng.uniform(1e-3, 1e-2, n), r=rng.uniform(0.5, 2, n), v_leak=rng.normal(size=n),
                                  v_threshold=rng.uniform(0.1, 1, n), v_reset=rng.normal(size=n) * 0.1)
        elif kind == "cuba":
            nodes[name] = nir.CubaLIF(tau_syn=rng.uniform(1e-3, 1e-2, n), tau_mem=rng.uniform(1e-3, 1e-2, n),
                                      r=ones(n), v_leak=ones(n, 0), v_threshold=ones(n, 0.5), w_in=ones(n, 2))
        elif kind == "threshold":
            nodes[name] = nir.Threshold(threshold=rng.normal(size=n))
        else:
            nodes[name] = nir.Delay(delay=np.full(n, 2e-3))
        for src in {names[-1], draw(st.sampled_from(names))}:
            edges.append((src, name))
        names.append(name)
    if draw(st.booleans()) and any(k.startswith("lif") for k in names):
        lif = next(k for k in names if k.startswith("lif"))
        nodes["rec"] = nir.Linear(weight=rng.normal(size=(n, n)))
        edges += [(lif, "rec"), ("rec", lif)]
    nodes["output"] = nir.Output(np.array([n]))
    edges.append((names[-1], "output"))
    return graph(nodes, edges, dt=1e-3), n


@settings(max_examples=25, deadline=None)
@given(random_graphs(), st.integers(0, 2**31), st.integers(1, 6), st.integers(1, 3))
def test_same_input_gives_bit_identical_output(gn, seed, steps, batch):
    g, n = gn
    x = torch.randn(steps, batch, n, generator=torch.Generator().manual_seed(seed)) * 2
    first = Interpreter(g).run(x)
    again = Interpreter(g).run(x.clone())
    assert first.records.keys() == again.records.keys()
    for name in first.records:
        assert torch.equal(first.records[name], again.records[name]), name
