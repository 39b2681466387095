"""Bit-exact: Lava's fixed-point Dense -> LIF models, fed the quantizer's parameters, against the numpy reference.

One Lava network (one compile, one 30-step run) holds five synapses and four LIF populations fed by a single
graded RingBuffer, so the cases share the start-up cost:

* A  mixed-sign float weights -> positive weight exponent, bias with exponent 3, current and voltage leak;
     graded source read as binary (Lava's ``astype(bool)``, negative messages count as spikes);
* B  graded input (``num_message_bits=8``), tiny weights -> negative exponent (floor right shift of negative sums),
     negative bias, IF neuron (dv = 0);
* C  integer corner cases: weights at the mantissa limits with exponent 7, du = 0 so ``u`` wraps past 2**23, ``v``
     saturating at +-(2**23 - 1) (positive saturation spikes against vth = 131071), bias 4095 << 7 (lava #329);
* AR the synapse of A also feeds a ``LIFReset`` (the compiler's neuron) that zeroes u, v every 11 steps;
* DE excitatory (odd mantissas) and inhibitory Dense synapses and a mixed-sign ``Sparse`` synapse (75 % zeros, some
     weights rounding to zero) summed into one ``a_in``: fan-in at one state scale.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

import hardware_sims  # noqa: F401  (installs the lava compatibility fix before any lava import)
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.quantize import choose_state_exp, quantize_lif, quantize_weights
from hardware_sims.fixed_point.reference import dense_fixed, lava_clip_truncate, lif_fixed_step

pytestmark = pytest.mark.lava

T = 30
N_IN = 6
RESET_INTERVAL, RESET_OFFSET = 11, 4


def _cases(rng):
    """Synapses (name, targets, mant, exp, sign_mode, message bits); LIFs (name, du, dv, vth, bias_mant, bias_exp)."""
    syn, lif, quant = [], [], {}
    se_a = choose_state_exp(1.0, bias_max=0.05)
    wa = quantize_weights(rng.uniform(-0.3, 0.6, (4, N_IN)), state_exp=se_a)
    la = quantize_lif(dv=0.1, du=0.25, vth=1.0, bias=[0.05, -0.03, 0.0, 0.011], state_exp=se_a)
    syn.append(("A", ("A", "AR"), wa.mant, wa.exp, wa.sign_mode, 0))
    lif.append(("A", la.du, la.dv, la.vth_mant, la.bias_mant, la.bias_exp))
    lif.append(("AR", la.du, la.dv, la.vth_mant, la.bias_mant, la.bias_exp))  # a LIFReset, as the compiler uses
    wb = quantize_weights(rng.uniform(-0.02, 0.02, (3, N_IN)), state_exp=0, input_exp=2, input_max=0.75)
    lb = quantize_lif(dv=0.0, du=1.0, vth=0.03, bias=-0.0013, state_exp=0)
    syn.append(("B", ("B",), wb.mant, wb.exp, wb.sign_mode, 8))
    lif.append(("B", lb.du, lb.dv, lb.vth_mant, np.repeat(lb.bias_mant, 3), lb.bias_exp))
    wc = np.array([[254] * N_IN, [-256] * N_IN, [0] * N_IN, [2, -4, 6, -8, 10, -12]])
    syn.append(("C", ("C",), wc, 7, 1, 0))
    lif.append(("C", 0, 0, 131071, np.array([4095, -4096, 4095, -7]), 7))
    se_d = choose_state_exp(0.8)
    wd = quantize_weights(rng.uniform(0.0, 0.9, (5, N_IN)), state_exp=se_d)
    we = quantize_weights(-rng.uniform(0.0, 0.4, (5, N_IN)), state_exp=se_d)
    dense_f = rng.uniform(-0.5, 0.5, (5, N_IN)) * (rng.random((5, N_IN)) < 0.25)
    dense_f[0, :2] = [0.3, 1e-4]  # one weight too small for the exponent: it becomes 0 and leaves the matrix
    wf = quantize_weights(scipy.sparse.csr_matrix(dense_f), state_exp=se_d)
    ld = quantize_lif(dv=0.5, du=1.0, vth=0.8, bias=0.0, state_exp=se_d)
    syn += [("D", ("DE",), wd.mant, wd.exp, wd.sign_mode, 0), ("E", ("DE",), we.mant, we.exp, we.sign_mode, 0),
            ("F", ("DE",), wf.mant, wf.exp, wf.sign_mode, 0)]
    lif.append(("DE", ld.du, ld.dv, ld.vth_mant, np.zeros(5, int), ld.bias_exp))
    quant.update(A=wa, B=wb, D=wd, E=we, F=wf)
    return syn, lif, quant


def _reference(src, syn, lif):
    out = {}
    for name, du, dv, vth, bias_mant, bias_exp in lif:
        n = len(bias_mant)
        u, v = np.zeros(n, np.int64), np.zeros(n, np.int64)
        us, vs, ss = [], [], []
        for t in range(T):
            if name == "AR" and (t + 1) % RESET_INTERVAL == RESET_OFFSET:  # Lava's time_step is t + 1
                u, v = np.zeros_like(u), np.zeros_like(v)
            a_in = np.zeros(n, np.int64)
            if t > 0:  # Dense delivers step t-1's accumulation at step t
                for _, targets, mant, exp, mode, bits in syn:
                    if name in targets:
                        a_in += dense_fixed(lava_clip_truncate(mant, mode), exp, src[:, t - 1], num_message_bits=bits)
            u, v, s = lif_fixed_step(u, v, a_in, du, dv, vth, bias_mant, bias_exp)
            us.append(u), vs.append(v), ss.append(s)
        out[name] = (np.array(us), np.array(vs), np.array(ss))
    return out


@pytest.fixture(scope="module")
def lava_run():
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF, LIFReset
    from lava.proc.monitor.process import Monitor
    from lava.proc.sparse.process import Sparse
    from lava.utils.weightutils import SignMode as LavaSignMode

    rng = np.random.default_rng(7)
    src = rng.integers(-2, 4, size=(N_IN, T)) * (rng.random((N_IN, T)) < 0.6)
    syn, lif, quant = _cases(rng)
    source = RingBuffer(data=src)
    lifs = {name: LIF(shape=(len(bm),), du=du, dv=dv, vth=vth, bias_mant=bm, bias_exp=be)
            for name, du, dv, vth, bm, be in lif if name != "AR"}
    _, du, dv, vth, bm, be = next(c for c in lif if c[0] == "AR")
    lifs["AR"] = LIFReset(shape=(len(bm),), du=du, dv=dv, vth=vth, bias_mant=bm, bias_exp=be,
                          reset_interval=RESET_INTERVAL, reset_offset=RESET_OFFSET)
    denses = {}
    for name, targets, mant, exp, mode, bits in syn:
        conn = Sparse if scipy.sparse.issparse(mant) else Dense
        denses[name] = conn(weights=mant, weight_exp=exp, sign_mode=LavaSignMode(int(mode)), num_message_bits=bits)
        source.s_out.connect(denses[name].s_in)
        for target in targets:
            denses[name].a_out.connect(lifs[target].a_in)
    monitors, sinks = {}, {}  # a lava Monitor holds one probe
    for name, proc in lifs.items():
        monitors[name] = (Monitor(), Monitor())
        monitors[name][0].probe(proc.u, T), monitors[name][1].probe(proc.v, T)
        sinks[name] = Sink(shape=proc.s_out.shape, buffer=T)
        proc.s_out.connect(sinks[name].a_in)
    try:
        source.run(condition=RunSteps(num_steps=T), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        got = {name: (np.asarray(monitors[name][0].get_data()[p.name]["u"]),
                      np.asarray(monitors[name][1].get_data()[p.name]["v"]), np.asarray(sinks[name].data.get()).T)
               for name, p in lifs.items()}
        weights_after = {name: d.weights.get() for name, d in denses.items()}
    finally:
        source.stop()
    return {"src": src, "syn": syn, "lif": lif, "quant": quant, "got": got, "weights_after": weights_after}


@pytest.mark.parametrize("name", ["A", "AR", "B", "C", "DE"])
def test_u_v_spikes_bit_exact(lava_run, name):
    ref_u, ref_v, ref_s = _reference(lava_run["src"], lava_run["syn"], lava_run["lif"])[name]
    got_u, got_v, got_s = lava_run["got"][name]
    np.testing.assert_array_equal(got_u, ref_u)
    np.testing.assert_array_equal(got_v, ref_v)
    np.testing.assert_array_equal(got_s.astype(bool), ref_s)


def test_cases_exercise_what_they_claim(lava_run):
    q, got = lava_run["quant"], lava_run["got"]
    assert q["A"].exp > 0 and q["B"].exp < 0 and q["A"].sign_mode == q["B"].sign_mode == 1
    assert q["D"].sign_mode == 2 and np.any(q["D"].mant % 2 == 1) and q["E"].sign_mode == 3
    assert q["F"].sign_mode == 1 and q["F"].zeroed == 1 and q["F"].mant.nnz == q["F"].size - 1
    assert all(got[n][2].sum() > 0 for n in ("A", "B", "C", "DE"))  # every population spikes ...
    assert all((got[n][2] == 0).sum() > 0 for n in ("A", "B", "DE"))  # ... and is not saturated
    u_c, v_c, _ = got["C"]
    assert np.abs(u_c).max() > 2**22 and np.any(np.sign(u_c[1:, 0]) < 0)  # u of an excitatory row wrapped negative
    assert v_c.min() == -(2**23 - 1)  # v saturated negative
    wc = next(s[2] for s in lava_run["syn"] if s[0] == "C")
    a_in = max(np.abs(dense_fixed(wc, 7, lava_run["src"][:, t])).max() for t in range(T))
    assert a_in > lf.A_IN_MAX  # ... and matched bit for bit: Lava does not hold a_in to its declared 16 bits
    assert not np.array_equal(got["AR"][1], got["A"][1]) and np.array_equal(got["AR"][1][:3], got["A"][1][:3])
    assert np.any(lava_run["src"] < 0) and np.any(lava_run["src"] > 1)  # graded and negative messages present


def test_lava_keeps_quantized_mantissas(lava_run):
    # Lava's Dense clips and truncates its weights on the first step; the quantizer's mantissas must survive that.
    for name, w in lava_run["quant"].items():
        after = lava_run["weights_after"][name]
        if scipy.sparse.issparse(w.mant):
            after, expected = after.toarray(), w.mant.toarray()
        else:
            expected = w.mant
        np.testing.assert_array_equal(after, expected)
