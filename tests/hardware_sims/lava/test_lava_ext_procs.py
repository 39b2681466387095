"""snnav's extension processes for Lava (hardware_sims/lava/procs) against the definitions in export/EXTENSIONS.md.

References are written here from the math: nested Python loops over heads, channels, tokens and steps, on Python
ints (exact, for the fixed-point models) or floats, plus the fixed-point rounding written with `Fraction`s. The fast
tests check the numpy kernels and fixed-point helpers the Lava models call (many shapes, no Lava); the `lava` tests
run every process, both models, on Loihi2SimCfg with RingBuffer sources and sinks: values, latency (0 or W), fan-in
into a port, and the reset between samples.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import nir
import numpy as np
import pytest
import torch

from export.interpreter import Interpreter
from export.ir.extensions import AttentionApply, AttentionScores, ComplementaryFusion, Gate, SpikeAttention
from hardware_sims.extensions import kernels as kn
from hardware_sims.extensions import ports as fx
from hardware_sims.extensions.ports import SPIKE, PortFormat


# ------------------------------------------------------------------------ references from EXTENSIONS.md (loops)
def ref_tokens_acc(q, k, v, h):
    """``sum_m sum_i Q[g*d+i, n] K[g*d+i, m] V[g*d+j, m]`` (no scale) on Python scalars."""
    c, n_ = q.shape
    d = c // h
    q, k, v = q.tolist(), k.tolist(), v.tolist()
    out = np.empty((c, n_), dtype=object)
    for g, j, n in itertools.product(range(h), range(d), range(n_)):
        out[g * d + j, n] = sum(q[g * d + i][n] * k[g * d + i][m] * v[g * d + j][m]
                                for m in range(n_) for i in range(d))
    return out


def ref_time_r(q, k, v, h):
    """``R[t][g][j][n] = sum_s sum_i Q_t[g*d+i, n] K_s[g*d+i, n] V_s[g*d+j, n]`` for one window ``(W, C, N)``."""
    w, c, n_ = q.shape
    d = c // h
    q, k, v = q.tolist(), k.tolist(), v.tolist()
    r = np.empty((w, h, d, n_), dtype=object)
    for t, g, j, n in itertools.product(range(w), range(h), range(d), range(n_)):
        r[t, g, j, n] = sum(q[t][g * d + i][n] * k[s][g * d + i][n] * v[s][g * d + j][n]
                            for s in range(w) for i in range(d))
    return r


def ref_layout(r, layout):
    """clean: ``O_t[g*d+j, n] = R[t, g, j, n]``; faithful: ``O_{f // C}[f % C, n] = R[t, g, j, n]``, f = g*W*d+t*d+j."""
    w, h, d, n_ = r.shape
    c = h * d
    out = np.empty((w, c, n_), dtype=object)
    for t, g, j, n in itertools.product(range(w), range(h), range(d), range(n_)):
        if layout == "clean":
            out[t, g * d + j, n] = r[t, g, j, n]
        else:
            f = g * w * d + t * d + j
            out[f // c, f % c, n] = r[t, g, j, n]
    return out


def ref_scores(q, k, h):
    c, n_ = q.shape
    d = c // h
    q, k = q.tolist(), k.tolist()
    out = np.empty((h, n_, n_), dtype=object)
    for g, n, m in itertools.product(range(h), range(n_), range(n_)):
        out[g, n, m] = sum(q[g * d + i][n] * k[g * d + i][m] for i in range(d))
    return out


def ref_apply_acc(p, v, h):
    c, n_ = v.shape
    d = c // h
    p, v = p.tolist(), v.tolist()
    out = np.empty((c, n_), dtype=object)
    for g, j, n in itertools.product(range(h), range(d), range(n_)):
        out[g * d + j, n] = sum(p[g][n][m] * v[g * d + j][m] for m in range(n_))
    return out


def ref_fusion_float(s, tm):
    """``O_t[c, n] = (1/N sum_m S_t[c, m]) * (1/W sum_s Tm_s[c, n])``: token mean, step mean, product."""
    w, c, n_ = s.shape
    s, tm = s.tolist(), tm.tolist()
    out = np.empty((w, c, n_), dtype=object)
    for t, ch, n in itertools.product(range(w), range(c), range(n_)):
        out[t, ch, n] = (sum(s[t][ch][m] for m in range(n_)) / n_) * (sum(tm[u][ch][n] for u in range(w)) / w)
    return out


def ref_fusion_acc(s, tm):
    w, c, n_ = s.shape
    s, tm = s.tolist(), tm.tolist()
    out = np.empty((w, c, n_), dtype=object)
    for t, ch, n in itertools.product(range(w), range(c), range(n_)):
        out[t, ch, n] = sum(s[t][ch][m] for m in range(n_)) * sum(tm[u][ch][n] for u in range(w))
    return out


def ref_requantize(acc, acc_exp, mant, shift, out_exp, bits):
    """``clamp(floor(acc * mant * 2**-(acc_exp + shift - out_exp) + 1/2))`` on exact rationals."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def one(a):
        x = Fraction(int(a) * mant) / Fraction(2) ** (acc_exp + shift - out_exp)
        return min(hi, max(lo, math.floor(x + Fraction(1, 2))))

    return np.vectorize(one, otypes=[object])(acc).astype(np.int64)


# ------------------------------------------------------------------------------- fixed-point helpers (no Lava)
@pytest.mark.parametrize("factor, mant, shift", [(0.25, 1, 2), (0.75, 3, 2), (1.0, 1, 0), (48.0, 3, -4),
                                                 (-0.125, -1, 3), (0.0, 0, 0), (1 / 64, 1, 6)])
def test_to_dyadic_is_exact_for_dyadic_factors(factor, mant, shift):
    dy = fx.to_dyadic(factor)
    assert (dy.mant, dy.shift, dy.exact) == (mant, shift, True)
    assert dy.value == factor


@pytest.mark.parametrize("factor", [0.1, 0.3, 1 / 3, 1 / 9, 1 / 144, -2.7, 1e-7, 12345.678, 0.99999999])
def test_to_dyadic_rounds_inexact_factors_to_16_bits(factor):
    dy = fx.to_dyadic(factor)
    assert not dy.exact
    assert 2**15 <= abs(dy.mant) < 2**16
    assert abs(dy.value - factor) <= abs(factor) * 2.0**-16


def test_round_shift_is_floor_plus_half_and_exact_left_shift():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.integers(-(2**40), 2**40, 2000), np.arange(-40, 41), [-(2**50), 2**50 - 1]])
    for n in (1, 2, 3, 7, 20):
        got = fx.round_shift(y, n)
        want = [math.floor(Fraction(int(a), 2**n) + Fraction(1, 2)) for a in y]
        assert got.tolist() == want
    ties = fx.round_shift(np.array([-6, -2, 2, 6]), 2)  # -1.5, -0.5, 0.5, 1.5 -> towards +inf
    assert ties.tolist() == [-1, 0, 1, 2]
    assert fx.round_shift(np.array([-3, 5]), -4).tolist() == [-48, 80]
    assert fx.round_shift(np.array([-3, 5]), 0).tolist() == [-3, 5]


def test_saturate_to_signed_width():
    y = np.array([-(2**30), -(2**23) - 1, -(2**23), 0, 2**23 - 1, 2**23, 2**30])
    assert fx.saturate(y).tolist() == [-(2**23), -(2**23), -(2**23), 0, 2**23 - 1, 2**23 - 1, 2**23 - 1]
    assert fx.saturate(np.array([-9, 9]), 4).tolist() == [-8, 7]


@pytest.mark.parametrize("factor, out_exp, bits", [(0.25, None, 24), (0.3, None, 24), (1 / 9, 5, 24), (-1.7, 2, 10),
                                                   (0.25, 0, 24), (3.0, 4, 12)])
def test_requantize_matches_exact_rational_rounding(factor, out_exp, bits):
    rng = np.random.default_rng(1)
    acc = rng.integers(-(2**20), 2**20, 3000)
    plan = fx.make_plan("t", ("a", "b"), {"a": PortFormat(3, 2**10), "b": PortFormat(1, 2**9)}, ("a", "b"), 4,
                        factor, out_exp, bits)
    want = ref_requantize(acc, 4, plan.factor.mant, plan.factor.shift, plan.out_exp, bits)
    assert np.array_equal(plan.requantize(acc), want)


def test_default_out_exp_is_lossless_for_dyadic_factors():
    plan = fx.make_plan("t", ("q", "k", "v"), None, ("q", "k", "v"), 10, 0.25, None, 24)
    assert (plan.acc_exp, plan.factor.mant, plan.out_exp, plan.shift) == (0, 1, 2, 0)
    acc = np.arange(-50, 50)
    assert np.array_equal(plan.requantize(acc) * 2.0**-plan.out_exp, acc * 0.25)
    inexact = fx.make_plan("t", ("a",), {"a": PortFormat(2, 5)}, ("a",), 1, 0.3, None, 24)
    assert inexact.out_exp == 2 - math.floor(math.log2(0.3)) + fx.GUARD_BITS


def test_make_plan_refuses_unknown_ports_and_int64_overflow():
    with pytest.raises(ValueError, match="unknown ports"):
        fx.make_plan("t", ("q", "k"), {"z": SPIKE}, ("q", "k"), 1, 1.0, None, 24)
    with pytest.raises(ValueError, match="int64"):
        fx.make_plan("t", ("q", "k", "v"), {p: fx.graded(0) for p in "qkv"}, ("q", "k", "v"), 64, 0.25, None, 24)
    with pytest.raises(ValueError, match="out_bits"):
        fx.make_plan("t", ("q",), None, ("q",), 1, 1.0, None, 40)
    with pytest.raises(ValueError, match="finite"):
        fx.to_dyadic(float("inf"))


# ---------------------------------------------------------------------------------- kernels (no Lava), shapes
def spikes(rng, *shape):
    return (rng.random(shape) < 0.5).astype(np.int64)


TOKEN_SHAPES = [(2, 1, 1), (4, 3, 2), (6, 5, 3), (8, 4, 8), (6, 2, 1)]  # (C, N, h)
TIME_SHAPES = [(4, 3, 2, 2), (6, 2, 3, 2), (8, 3, 8, 3), (6, 4, 6, 1), (4, 2, 1, 4), (2, 2, 2, 1)]  # (C, N, h, W)


@pytest.mark.parametrize("c, n, h", TOKEN_SHAPES)
def test_token_kernels_match_the_definitions(c, n, h):
    rng = np.random.default_rng(c * 100 + n * 10 + h)
    q, k, v = spikes(rng, c, n), spikes(rng, c, n), spikes(rng, c, n)
    p = rng.integers(-7, 8, (h, n, n))
    acc = ref_tokens_acc(q, k, v, h)
    assert np.array_equal(kn.attention_tokens_acc(q, k, v, h), acc.astype(np.int64))
    assert np.array_equal(kn.attention_tokens_float(q * 1.0, k * 1.0, v * 1.0, h, 0.25), (acc * 0.25).astype(float))
    assert np.array_equal(kn.attention_scores_acc(q, k, h), ref_scores(q, k, h).astype(np.int64))
    assert np.array_equal(kn.attention_apply_acc(p, v, h), ref_apply_acc(p, v, h).astype(np.int64))
    x, g = rng.integers(-50, 50, (c, n)), rng.integers(-9, 9, (1,))
    assert np.array_equal(kn.gate_acc(x, g), x * int(g[0]))


@pytest.mark.parametrize("c, n, h, w", TIME_SHAPES)
@pytest.mark.parametrize("layout", ["clean", "faithful"])
def test_time_kernels_match_the_definitions(c, n, h, w, layout):
    rng = np.random.default_rng(c * 1000 + n * 100 + h * 10 + w)
    q, k, v = spikes(rng, w, c, n), spikes(rng, w, c, n), spikes(rng, w, c, n)
    want = ref_layout(ref_time_r(q, k, v, h), layout)
    got_acc = kn.time_layout(kn.attention_time_acc(q, k, v, h), layout)
    assert np.array_equal(got_acc, want.astype(np.int64))
    got = kn.attention_time_float(q * 1.0, k * 1.0, v * 1.0, h, 0.25, layout)
    assert np.array_equal(got, (want * 0.25).astype(float))
    s, tm = rng.integers(-20, 21, (w, c, n)) / 4.0, rng.integers(0, 16, (w, c, n)) / 8.0
    assert np.allclose(kn.fusion_float(s, tm), ref_fusion_float(s, tm).astype(float), rtol=1e-15, atol=0)


def test_faithful_layout_spec_example():
    # EXTENSIONS.md: h = 2, T = 2, d = 1: O_0 = (R[0,0], R[1,0]), O_1 = (R[0,1], R[1,1]) (indices [t, g])
    r = np.array([[10, 11], [20, 21]]).reshape(2, 2, 1, 1)  # R[t, g] = 10*(t+1) + g
    out = kn.time_layout(r, "faithful")[..., 0]
    assert out.tolist() == [[10, 20], [11, 21]]


def port_graph(node, ports: dict[str, tuple], out_shape) -> nir.NIRGraph:
    nodes = {p: nir.Input(np.array(s)) for p, s in ports.items()}
    nodes |= {"ext": node, "out": nir.Output(np.array(out_shape))}
    edges = [(p, f"ext.{p}") for p in ports] + [("ext", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"dt": 1e-3}, type_check=False)


def interp(node, inputs: dict[str, np.ndarray], out_shape) -> np.ndarray:
    """The torch reference interpreter on ``[T, *shape]`` inputs (batch of 1), float64, as ``[T, *out_shape]``."""
    g = port_graph(node, {p: x.shape[1:] for p, x in inputs.items()}, out_shape)
    feed = {p: torch.tensor(x, dtype=torch.float64)[:, None] for p, x in inputs.items()}
    return Interpreter(g, dtype=torch.float64).run(feed).outputs["out"][:, 0].numpy()


@pytest.mark.parametrize("c, n, h, w", TIME_SHAPES[:4])
def test_kernels_agree_with_the_torch_interpreter(c, n, h, w):
    rng = np.random.default_rng(7)
    steps = 2 * w
    q, k, v = (spikes(rng, steps, c, n) * 1.0 for _ in range(3))
    for layout in ("clean", "faithful"):
        node = SpikeAttention(shape=(c, n), num_heads=h, scale=0.25, axis="time", layout=layout, window=w)
        want = interp(node, {"q": q, "k": k, "v": v}, (c, n))
        got = np.concatenate([kn.attention_time_float(q[i:i + w], k[i:i + w], v[i:i + w], h, 0.25, layout)
                              for i in range(0, steps, w)])
        assert np.array_equal(got, want)
    node = SpikeAttention(shape=(c, n), num_heads=h, scale=0.25, axis="tokens")
    want = interp(node, {"q": q, "k": k, "v": v}, (c, n))
    assert np.array_equal(np.stack([kn.attention_tokens_float(*x, h, 0.25) for x in zip(q, k, v)]), want)
    want = interp(AttentionScores(shape=(c, n), num_heads=h), {"q": q, "k": k}, (h, n, n))
    assert np.array_equal(np.stack([kn.attention_scores_float(a, b, h) for a, b in zip(q, k)]), want)
    p = rng.integers(-8, 9, (steps, h, n, n)) / 2.0
    want = interp(AttentionApply(shape=(c, n), num_heads=h, scale=0.25), {"p": p, "v": v}, (c, n))
    assert np.array_equal(np.stack([kn.attention_apply_float(a, b, h, 0.25) for a, b in zip(p, v)]), want)
    s, tm = rng.integers(-20, 21, (steps, c, n)) / 4.0, rng.integers(0, 16, (steps, c, n)) / 8.0
    want = interp(ComplementaryFusion(shape=(c, n), window=w), {"spatial": s, "temporal": tm}, (c, n))
    got = np.concatenate([kn.fusion_float(s[i:i + w], tm[i:i + w]) for i in range(0, steps, w)])
    assert np.allclose(got, want, rtol=1e-15, atol=0)
    x, g = rng.integers(-20, 21, (steps, c, n)) / 4.0, rng.integers(-9, 9, (steps, 1)) / 8.0
    want = interp(Gate(shape=(c, n)), {"x": x, "gate": g}, (c, n))
    assert np.array_equal(np.stack([kn.gate_float(a, b) for a, b in zip(x, g)]), want)


def test_window_step_has_latency_w_and_resets_with_steps_seen_only():
    rng = np.random.default_rng(3)
    w, shape, windows = 3, (2, 4), 4
    xs = rng.integers(-9, 10, (w * windows, *shape))

    def compute(buf):
        return buf.cumsum(axis=0) * 10  # output of window step t depends on steps <= t of the window

    def stream(state, inputs):
        return np.stack([kn.window_step(state.steps_seen, state.in_bufs, state.out_buf, [x], compute) for x in inputs])

    state = kn.WindowState(w, [shape], shape, np.int64)
    out = stream(state, np.concatenate([xs, np.zeros((w, *shape), np.int64)]))
    want = np.concatenate([np.zeros((w, *shape), np.int64)] + [compute(xs[i:i + w]) for i in range(0, len(xs), w)])
    assert np.array_equal(out, want)
    assert 0 < int(state.steps_seen[0]) and w <= int(state.steps_seen[0]) < 2 * w
    # A partial sample leaves a phase and a stale out_buf; steps_seen = 0 alone restores the fresh behaviour.
    stream(state, xs[:w + 1])
    assert np.any(state.out_buf)
    state.steps_seen[0] = 0
    again = stream(state, np.concatenate([xs, np.zeros((w, *shape), np.int64)]))
    assert np.array_equal(again, want)


# ------------------------------------------------------------------------------------------ Lava: all processes
T_IN, L_MAX = 6, 3  # input steps (a multiple of every window below), largest latency
STEPS = T_IN + L_MAX
C, N = 6, 3
SOURCES = {  # name: (shape, low, high (inclusive), exponent)
    "q": ((C, N), 0, 1, 0), "k": ((C, N), 0, 1, 0), "v": ((C, N), 0, 1, 0),
    "p": ((2, N, N), -30, 30, 1), "sp": ((C, N), -20, 20, 2), "tm": ((C, N), -5, 5, 0), "g": ((1,), -64, 64, 5),
}
# name: (node, {port: [sources]}, fixed-point keyword arguments)
CASES = {
    "tokens": (SpikeAttention(shape=(C, N), num_heads=2, scale=0.25, axis="tokens"),
               {"q": ["q"], "k": ["k"], "v": ["v"]}, {"gain": 0.5}),
    "time_clean": (SpikeAttention(shape=(C, N), num_heads=3, scale=0.25, axis="time", layout="clean", window=2),
                   {"q": ["q"], "k": ["k"], "v": ["v"]}, {}),
    "time_faithful": (SpikeAttention(shape=(C, N), num_heads=3, scale=0.3, axis="time", layout="faithful", window=2),
                      {"q": ["q"], "k": ["k"], "v": ["v"]}, {}),  # h = 3 > W = 2; 0.3 is not dyadic
    "scores": (AttentionScores(shape=(C, N), num_heads=3), {"q": ["q"], "k": ["k", "v"]},  # fan-in: k + v
               {"in_formats": {"k": PortFormat(0, 2)}}),
    "apply": (AttentionApply(shape=(C, N), num_heads=2, scale=0.25), {"p": ["p"], "v": ["v"]},
              {"in_formats": {"p": PortFormat(1, 30)}, "out_bits": 6}),  # saturates
    "fusion": (ComplementaryFusion(shape=(C, N), window=3), {"spatial": ["sp"], "temporal": ["tm", "k"]},
               {"in_formats": {"spatial": PortFormat(2, 20), "temporal": PortFormat(0, 6)}}),  # 1/(N W) = 1/9
    "gate": (Gate(shape=(C, N)), {"x": ["sp"], "gate": ["g"]},
             {"in_formats": {"x": PortFormat(2, 20), "gate": PortFormat(5, 64)}, "out_exp": 3}),  # rounds
}


def test_builders_cover_every_extension_with_ports_shapes_latency_and_state_vars():
    from export.ir.errors import InvalidNodeError
    from export.ir.extensions import EXTENSIONS
    from hardware_sims.lava.procs.builders import EXTENSION_BUILDERS, build_extension
    from hardware_sims.lava.procs.spike_attention import SpikeAttentionProcess

    assert set(EXTENSION_BUILDERS) == set(EXTENSIONS)
    for case, (node, _, kwargs) in CASES.items():
        process, in_ports, out_port, latency = build_extension(node, case, **kwargs)
        assert list(in_ports) == list(node.PORTS) and process.name == case
        assert {p: tuple(ip.shape) for p, ip in in_ports.items()} == {
            p: tuple(int(x) for x in s) for p, s in node.input_type.items()}
        assert out_port is process.s_out and tuple(out_port.shape) == tuple(node.output_type["output"])
        assert latency == node.window == process.latency
        want_vars = ("steps_seen", *(f"{p}_buf" for p in node.PORTS), "out_buf") if node.window else ()
        assert process.state_var_names == want_vars
        process.reset(full=True)  # before any run: nothing to reset, no error
    assert build_extension(CASES["time_clean"][0], "x").process.out_exp == 2  # lossless for 0.25 on spikes
    with pytest.raises(InvalidNodeError):
        SpikeAttentionProcess(shape=(4, 2), num_heads=3, scale=0.25)  # 3 does not divide 4
    with pytest.raises(TypeError, match="not an snnav extension"):
        build_extension(nir.Threshold(np.ones(2)), "thr")


def sample_ints(seed: int) -> dict[str, np.ndarray]:
    """Integer messages ``[STEPS, *shape]`` per source, zero after T_IN (the run's flush)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, lo, hi, _) in SOURCES.items():
        x = rng.integers(lo, hi + 1, (STEPS, *shape)) if hi > 1 else spikes(rng, STEPS, *shape)
        x[T_IN:] = 0
        out[name] = x
    return out


def port_inputs(case: str, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Fan-in: the sources of each port summed."""
    return {port: sum(data[s] for s in srcs) for port, srcs in CASES[case][1].items()}


def reference(case: str, ports: dict[str, np.ndarray], fixed_plan=None) -> np.ndarray:
    """Unshifted outputs ``[STEPS, *out]`` from the loops above: floats, or fixed-point ints if a plan is given."""
    node = CASES[case][0]
    gain = CASES[case][2].get("gain", 1.0)

    def finish(acc, factor):
        if fixed_plan is None:
            return (acc * factor * gain if gain != 1.0 else acc * factor).astype(float)
        pl = fixed_plan
        return ref_requantize(acc, pl.acc_exp, pl.factor.mant, pl.factor.shift, pl.out_exp, pl.out_bits)

    w = node.window
    if w:
        outs = []
        for i in range(0, STEPS, w):  # the last window may run past STEPS: padded with zeros
            win = {p: np.concatenate([x[i:i + w], np.zeros((max(0, i + w - STEPS), *x.shape[1:]), x.dtype)])
                   for p, x in ports.items()}
            if isinstance(node, SpikeAttention):
                outs.append(finish(ref_layout(ref_time_r(win["q"], win["k"], win["v"], node.num_heads),
                                              node.layout), node.scale))
            elif fixed_plan is None:
                outs.append(ref_fusion_float(win["spatial"], win["temporal"]).astype(float) * gain)
            else:
                outs.append(finish(ref_fusion_acc(win["spatial"], win["temporal"]), None))
        return np.concatenate(outs)[:STEPS]
    rows = []
    for t in range(STEPS):
        x = {p: a[t] for p, a in ports.items()}
        if isinstance(node, SpikeAttention):
            rows.append(finish(ref_tokens_acc(x["q"], x["k"], x["v"], node.num_heads), node.scale))
        elif isinstance(node, AttentionScores):
            rows.append(finish(ref_scores(x["q"], x["k"], node.num_heads), 1))
        elif isinstance(node, AttentionApply):
            rows.append(finish(ref_apply_acc(x["p"], x["v"], node.num_heads), node.scale))
        else:
            rows.append(finish(np.vectorize(lambda a: a * x["gate"].tolist()[0], otypes=[object])(
                x["x"].astype(object)), 1))
    return np.stack(rows)


def shifted(y: np.ndarray, lag: int) -> np.ndarray:
    """What a process of latency `lag` emits at steps 0..STEPS-1 for unshifted outputs `y`."""
    return np.concatenate([np.zeros((lag, *y.shape[1:]), y.dtype), y[:STEPS - lag]])


def run_lava(select_tag: str, seeds: tuple[int, int], full_reset: bool):
    """Build every case from EXTENSION_BUILDERS, run sample 0, reset, run sample 1. Returns outputs and processes."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    from hardware_sims.lava.procs.builders import EXTENSION_BUILDERS

    fixed = select_tag == "fixed_pt"

    def messages(data):  # RingBuffer data [*shape, steps]: ints (fixed) or their real values (float)
        return {s: np.moveaxis(x if fixed else x * 2.0 ** -SOURCES[s][3], 0, -1) for s, x in data.items()}

    samples = [sample_ints(s) for s in seeds]
    sources = {s: Source(data=x) for s, x in messages(samples[0]).items()}
    built, sinks = {}, {}
    for case, (node, port_srcs, kwargs) in CASES.items():
        b = EXTENSION_BUILDERS[node.type_name](node, case, **kwargs)
        assert set(b.in_ports) == set(node.PORTS) and b.latency == node.window
        for port, srcs in port_srcs.items():
            for s in srcs:
                sources[s].s_out.connect(b.in_ports[port])
        sinks[case] = Sink(shape=tuple(b.out_port.shape), buffer=STEPS)
        b.out_port.connect(sinks[case].a_in)
        built[case] = b
    outs = []
    anchor = built["tokens"].process  # every case shares a source with it: one connected network
    try:
        for i, data in enumerate(samples):
            if i:
                for b in built.values():
                    b.process.reset(full=full_reset)
                if full_reset:  # the buffers really are zero
                    assert not np.any(built["fusion"].process.out_buf.get())
                    assert not np.any(built["time_faithful"].process.q_buf.get())
                for s, x in messages(data).items():
                    sources[s].data.set(x)
            anchor.run(condition=RunSteps(num_steps=STEPS), run_cfg=Loihi2SimCfg(select_tag=select_tag))
            outs.append({c: np.moveaxis(np.asarray(sk.data.get()), -1, 0) for c, sk in sinks.items()})
    finally:
        anchor.stop()
    return samples, outs, {c: b.process for c, b in built.items()}


def float_inputs(case: str, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return port_inputs(case, {s: x * 2.0 ** -SOURCES[s][3] for s, x in data.items()})


def assert_latency(got: np.ndarray, ref: np.ndarray, lag: int, case: str, exact: bool = False) -> None:
    """`got` is `ref` delayed by exactly `lag` steps, and not by one step more or less."""
    if exact:
        assert np.array_equal(got, shifted(ref, lag)), case
    else:
        np.testing.assert_allclose(got, shifted(ref, lag), rtol=1e-12, atol=1e-12, err_msg=case)
    for other in (lag - 1, lag + 1):
        if 0 <= other < STEPS:
            assert not np.allclose(got, shifted(ref, other)), f"{case}: output also matches a shift of {other}"


@pytest.mark.lava
def test_float_processes_on_loihi2simcfg():
    samples, outs, procs = run_lava("floating_pt", seeds=(11, 12), full_reset=False)
    for data, out in zip(samples, outs):
        for case, (node, _, _) in CASES.items():
            ref = reference(case, float_inputs(case, data))
            assert np.any(ref), case
            assert_latency(out[case], ref, node.window, case)
    # and the torch interpreter agrees on the per-step / windowed values (sample 1, first T_IN steps)
    data, out = samples[1], outs[1]
    for case in ("time_faithful", "fusion", "apply"):
        node = CASES[case][0]
        x = {p: a[:T_IN] for p, a in float_inputs(case, data).items()}
        want = interp(node, x, tuple(procs[case].s_out.shape))
        np.testing.assert_allclose(out[case][node.window:node.window + T_IN], want, rtol=1e-12, atol=0)


@pytest.mark.lava
def test_fixed_point_processes_are_bit_exact_on_loihi2simcfg():
    samples, outs, procs = run_lava("fixed_pt", seeds=(21, 22), full_reset=True)
    saturated = rounded = 0
    for data, out in zip(samples, outs):
        for case, (node, _, _) in CASES.items():
            plan = procs[case].plan
            ref_int = reference(case, port_inputs(case, data), fixed_plan=plan)
            got = out[case]
            assert np.array_equal(got, np.round(got)), case
            assert_latency(got, ref_int.astype(float), node.window, case, exact=True)
            # agreement with the float definition within the documented quantization
            real = reference(case, float_inputs(case, data))
            lim = 2 ** (plan.out_bits - 1)
            inside = (ref_int > -lim) & (ref_int < lim - 1)
            factor = plan.factor.value
            want_factor = real_factor(case)
            acc_real = np.abs(real / want_factor)
            bound = 2.0 ** -(plan.out_exp + 1) + acc_real * abs(factor - want_factor) + 1e-12 * (1 + np.abs(real))
            err = np.abs(ref_int * 2.0 ** -plan.out_exp - real)
            assert np.all(err[inside] <= bound[inside]), case
            assert np.all((np.sign(real) * ref_int)[~inside] >= lim - 1), case  # saturated the right way
            saturated += int((~inside).sum())
            rounded += int((err[inside] > 0).sum())
    assert saturated > 0 and rounded > 0  # the test exercises saturation and rounding


def real_factor(case: str) -> float:
    """The real constant of a case: scale * gain, 1/(N*W) for the fusion, 1 for scores and gate."""
    node, _, kwargs = CASES[case]
    if isinstance(node, ComplementaryFusion):
        return 1.0 / (node.shape[1] * node.window)
    return getattr(node, "scale", 1.0) * kwargs.get("gain", 1.0)
