"""The quantizer's conventions, exponent rules and reports; the format constants against Lava's own classes."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import hardware_sims  # noqa: F401  (lava compatibility fix before any lava import)
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.formats import SignMode
from hardware_sims.fixed_point.quantize import (
    QuantReport,
    choose_state_exp,
    format_report,
    quantize_lif,
    quantize_messages,
    quantize_weights,
)
from hardware_sims.fixed_point.reference import dense_fixed, lava_clip_truncate, lif_fixed_step

# --- constants are Lava's ------------------------------------------------------------------------------------------


def test_formats_match_lava_bit_accurate_models():
    from lava.proc.dense.models import PyDenseModelBitAcc
    from lava.proc.lif.models import PyLifModelBitAcc
    from lava.utils.weightutils import SignMode as LavaSignMode

    m = PyLifModelBitAcc({})
    assert (m.ds_offset, m.dm_offset) == (lf.DU_OFFSET, lf.DV_OFFSET)
    assert (m.uv_bitwidth, m.decay_shift, m.decay_unity) == (lf.STATE_BITS, lf.DECAY_BITS, lf.DECAY_UNITY)
    assert (m.vth_shift, m.act_shift, m.max_uv_val) == (lf.VTH_SHIFT, lf.ACT_SHIFT, lf.STATE_LIMIT)
    precision = {k: getattr(PyLifModelBitAcc, k).precision for k in ("a_in", "u", "du", "bias_mant", "bias_exp", "vth")}
    assert precision == {"a_in": lf.A_IN_BITS, "u": lf.STATE_BITS, "du": lf.DECAY_BITS,
                         "bias_mant": lf.BIAS_MANT_BITS, "bias_exp": lf.BIAS_EXP_BITS, "vth": lf.VTH_BITS}
    assert PyDenseModelBitAcc.weights.precision == lf.WEIGHT_BITS
    assert {m.name: m.value for m in LavaSignMode} == {m.name: m.value for m in SignMode}


@pytest.mark.parametrize("mode", [SignMode.MIXED, SignMode.EXCITATORY, SignMode.INHIBITORY])
@pytest.mark.parametrize("bits", [8, 6])
def test_lava_clip_truncate_matches_weightutils(mode, bits):
    from lava.utils.weightutils import SignMode as LavaSignMode
    from lava.utils.weightutils import clip_weights, truncate_weights

    w = np.random.default_rng(bits).integers(-400, 400, size=(7, 9))
    lava = truncate_weights(clip_weights(w, LavaSignMode(int(mode)), num_bits=8), LavaSignMode(int(mode)), bits)
    np.testing.assert_array_equal(lava_clip_truncate(w, mode, bits), lava)


@pytest.mark.parametrize("low,high", [(-1.0, 2.0), (0.0, 3.0), (-0.7, 0.0), (-1e-3, 1e-3)])
def test_mantissas_survive_lava_in_both_sign_modes(low, high):
    from lava.utils.weightutils import SignMode as LavaSignMode
    from lava.utils.weightutils import clip_weights, determine_sign_mode, truncate_weights

    q = quantize_weights(np.random.default_rng(1).uniform(low, high, (6, 5)), state_exp=3)
    lo, hi = lf.WEIGHT_MANT_RANGE[q.sign_mode]
    assert lo <= q.mant.min() and q.mant.max() <= hi
    for mode in (LavaSignMode(int(q.sign_mode)), determine_sign_mode(q.mant)):  # explicit, or inferred by Dense
        np.testing.assert_array_equal(truncate_weights(clip_weights(q.mant, mode, 8), mode, 8), q.mant)


# --- weights -------------------------------------------------------------------------------------------------------


def test_weight_convention_is_slayers_at_state_exp_0():
    # slayer/netx: w_mant = w * 64 at weight_exp 0; the quantizer picks the finest exponent instead (-2 here).
    q = quantize_weights(np.array([[0.5, -0.25], [0.0, 0.125]]))
    assert (q.exp, q.sign_mode, q.step) == (-2, SignMode.MIXED, 2.0**-8)
    np.testing.assert_array_equal(q.mant, [[128, -64], [0, 32]])
    assert (q.clipped, q.rounded, q.max_abs_error, q.rel_error) == (0, 0, 0.0, 0.0)
    # real input 1.0 through the synapse and the LIF's << 6 is 2**12 in u: (128 >> 2) << 6 == 0.5 * 4096
    assert dense_fixed(q.mant, q.exp, [1, 0])[0] << lf.ACT_SHIFT == 0.5 * lf.state_scale(0)


def test_exponent_is_the_finest_without_clipping():
    w = np.array([[3.9, -1.0, 0.01]])
    q = quantize_weights(w, state_exp=0)
    assert q.exp == 0 and q.clipped == 0 and q.mant[0, 0] == 250  # 3.9 * 64 = 249.6 -> even grid -> 250
    assert quantize_weights(w, state_exp=4).exp == 4  # one exponent per unit of state_exp
    # mixed sign: mantissas are even up to 254, so 255/64 needs the next (coarser) exponent ...
    assert quantize_weights(np.array([[254 / 64, -0.1]])).exp == 0
    assert quantize_weights(np.array([[255 / 64, -0.1]])).exp == 1
    # ... while an excitatory layer holds 255 at exponent 0
    assert quantize_weights(np.array([[255 / 64]])).exp == 0 and quantize_weights(np.array([[255.6 / 64]])).exp == 1


def test_clipping_is_counted_and_reported():
    w = np.array([[1.0, 2.0, 8.0, -9.0, 0.3]])
    q = quantize_weights(w, scale_hint=1.0)  # exponent for |w| <= 1: the two largest magnitudes (and 2.0) clip
    deq = q.dequantize()
    assert q.clipped == 3 and np.isclose(deq.max(), 254 * q.step) and np.isclose(deq.min(), -256 * q.step)
    assert q.max_abs_error == pytest.approx(np.abs(deq - w).max())
    assert q.rel_error == pytest.approx(np.linalg.norm(deq - w) / np.linalg.norm(w))
    huge = quantize_weights(np.array([[1e4, -1.0]]))  # beyond 254 * 2**(7 - 6): clipped at the largest exponent
    assert huge.exp == lf.WEIGHT_EXP_MAX and huge.clipped == 1


def test_small_weights_use_negative_exponents_and_report_the_shift_floor():
    q = quantize_weights(np.full((2, 3), 0.003), state_exp=0)
    assert q.exp == lf.WEIGHT_EXP_MIN and q.shift_floor_error == pytest.approx((2**8 - 1) * q.step)  # excitatory
    mixed = quantize_weights(np.array([[0.003, -0.003]]))
    assert mixed.exp == lf.WEIGHT_EXP_MIN and mixed.shift_floor_error == pytest.approx((2**8 - 2) * mixed.step)
    coarse = quantize_weights(np.full((2, 3), 3.0))
    assert coarse.exp == 0 and coarse.shift_floor_error == 0


def test_conv_target_keeps_exponent_nonnegative():
    w = np.random.default_rng(0).uniform(-0.01, 0.01, (4, 3, 3, 2))
    q = quantize_weights(w, target="conv")
    assert q.exp == 0
    np.testing.assert_array_equal(q.conv_weight(), q.mant)
    big = quantize_weights(w * 1000, target="conv")
    np.testing.assert_array_equal(big.conv_weight(), big.mant.astype(np.int64) << big.exp)
    with pytest.raises(ValueError, match="Conv cannot right-shift"):
        quantize_weights(w).conv_weight()


def test_a_out_bound_covers_every_binary_input():
    q = quantize_weights(np.random.default_rng(3).uniform(-0.5, 0.4, (3, 5)), state_exp=2)
    worst = max(np.abs(dense_fixed(q.mant, q.exp, s)).max() for s in itertools.product([0, 1], repeat=5))
    assert worst <= q.a_out_bound <= worst + 1


def test_zero_weights_and_bad_input():
    q = quantize_weights(np.zeros((2, 2)))
    assert q.exp == 0 and not q.mant.any() and q.max_abs_error == 0.0
    with pytest.raises(ValueError, match="finite"):
        quantize_weights(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="target"):
        quantize_weights(np.ones((1, 1)), target="sparse")


def test_graded_messages_and_input_exp():
    x = np.array([0.25, -0.5, 0.75])
    m = quantize_messages(x, input_exp=2)
    np.testing.assert_array_equal(m, [1, -2, 3])
    q = quantize_weights(np.array([[0.5, 0.25, -1.0]]), input_exp=2)
    a = dense_fixed(q.mant, q.exp, m, num_message_bits=8)
    assert a[0] << lf.ACT_SHIFT == pytest.approx((0.5 * 0.25 - 0.25 * 0.5 - 0.75) * lf.state_scale(0))


# --- LIF -----------------------------------------------------------------------------------------------------------


def test_lif_decay_conventions():
    q = quantize_lif(dv=0.5, du=1.0, vth=1.0)
    assert (q.du, q.dv, q.vth_mant, q.clipped) == (4095, 2048, 64, ())  # memoryless u; slayer's vThMant = theta * 64
    q = quantize_lif(dv=0.1, du=0.25, vth=1.0, state_exp=6)
    assert (q.du, q.dv, q.vth_mant) == (1023, 410, 4096)
    assert q.errors["dv"] == pytest.approx(abs(410 / 4096 - 0.1)) and q.errors["du"] == 0.0
    full = quantize_lif(dv=1.0, du=0.0, vth=1.0)  # neither full v decay nor zero u decay is representable
    assert (full.dv, full.du, full.clipped) == (4095, 0, ("dv", "du"))
    assert full.errors["dv"] == full.errors["du"] == pytest.approx(1 / 4096)


def test_lif_threshold_forms():
    assert quantize_lif(0.5, 1.0, 0.3, state_exp=0).errors["vth"] == pytest.approx(abs(19 / 64 - 0.3))
    big = quantize_lif(0.5, 1.0, 5000.0, state_exp=0)
    assert big.vth_mant == lf.VTH_MANT_MAX and big.clipped == ("vth",)
    readout = quantize_lif(0.5, 1.0, float("inf"), state_exp=3)
    assert readout.vth_mant == lf.VTH_MANT_MAX and "no threshold" in readout.notes[0]
    with pytest.raises(ValueError, match="vth must be >= 0"):
        quantize_lif(0.5, 1.0, -1.0)
    with pytest.raises(ValueError, match=r"dv must be a decay fraction"):
        quantize_lif(1.5, 1.0, 1.0)


def test_lif_bias_mantissa_and_exponent():
    q = quantize_lif(0.5, 1.0, 1.0, bias=[0.05, -0.03, 0.0], state_exp=7)
    assert q.bias_exp == 3  # 0.05 * 2**19 = 26214.4 needs 3 bits of exponent for a 13-bit mantissa
    real = q.bias_mant * 2.0**q.bias_exp / q.scale
    assert q.errors["bias"] == pytest.approx(np.abs(real - [0.05, -0.03, 0.0]).max())
    assert q.errors["bias"] <= 2**3 / 2 / q.scale  # half a mantissa step
    assert quantize_lif(0.5, 1.0, 1.0, bias=-4096 / 4096).bias_mant[0] == -4096  # the negative end, exponent 0
    sat = quantize_lif(0.5, 1.0, 1.0, bias=[1000.0, 1.0])  # 1000 * 4096 > 4095 << 7
    assert sat.bias_exp == 7 and sat.bias_mant[0] == lf.BIAS_MANT_MAX and sat.clipped == ("bias[0]",)


def test_choose_state_exp_limits():
    assert choose_state_exp(1.0) == 6  # |v| <= 16 (V_HEADROOM) fits 2**23 at 2**18 per unit; vth_mant = 4096
    assert choose_state_exp(1.0, v_max=100.0) == 4
    assert choose_state_exp(1000.0) == -3  # v range 16000 binds before the 17-bit threshold
    assert choose_state_exp(1000.0, v_max=1.0) == 1  # then the threshold mantissa binds
    assert choose_state_exp(1.0, bias_max=30.0) == 2  # at 3: 30 * 2**15 / 2**7 = 7680 > 4095
    with pytest.raises(ValueError, match="needs v_max"):
        choose_state_exp(float("inf"))


def test_fixed_lif_tracks_float_lif_within_the_reported_resolution():
    # With the dequantized parameters, float and fixed differ only by Lava's decay truncation (< 1 state unit per
    # step in u and in v) and the synapse's shift floor (< shift_floor_error per step in u). As leaky sums these
    # give |v_fixed - v_float| <= ((1 + floor * S) / du + 1) / dv state units: the report's numbers bound the error.
    rng = np.random.default_rng(5)
    se = choose_state_exp(1.0)
    w = quantize_weights(rng.uniform(-0.001, 0.002, (4, 8)), state_exp=se)
    lif = quantize_lif(dv=0.2, du=0.5, vth=float("inf"), bias=0.01, state_exp=se)
    assert w.exp < 0 and w.shift_floor_error > 0
    spikes = rng.random((60, 8)) < 0.5
    u = v = np.zeros(4, np.int64)
    uf = vf = np.zeros(4)
    dvf, duf = lif.dv / 4096, (lif.du + 1) / 4096
    bias = lif.bias_mant * 2.0**lif.bias_exp / lif.scale
    worst = 0.0
    for s in spikes:
        u, v, fired = lif_fixed_step(u, v, dense_fixed(w.mant, w.exp, s), lif.du, lif.dv, lif.vth_mant,
                                     lif.bias_mant, lif.bias_exp)
        uf = uf * (1 - duf) + w.dequantize() @ s
        vf = vf * (1 - dvf) + uf + bias
        worst = max(worst, np.abs(v / lif.scale - vf).max())
        assert not fired.any()
    bound = ((1 + w.shift_floor_error * lif.scale) / duf + 1) / dvf / lif.scale
    assert 0.1 * bound < worst <= bound


def test_lif_fixed_step_wraps_u_and_saturates_v():
    u, v, s = lif_fixed_step([0, 0], [8_000_000, -8_388_000], [140_000, -140_000], 4095, 0, 131071, 0, 0)
    np.testing.assert_array_equal(u, [140_000 * 64 - 2**24, -140_000 * 64 + 2**24])
    u, v, s = lif_fixed_step([0, 0], [8_388_000, -8_388_000], [1000, -1000], 4095, 0, 131071, 0, 0)
    assert s.tolist() == [True, False] and v.tolist() == [0, -(2**23 - 1)]  # 2**23 - 1 > 131071 << 6: spike


# --- report --------------------------------------------------------------------------------------------------------


def test_report_totals_dict_and_text():
    w = quantize_weights(np.array([[1.0, 2.0, 8.0, 0.3]]), scale_hint=1.0)
    lif = quantize_lif(1.0, 1.0, 1.0, bias=[0.1, 0.2])
    report = QuantReport((w.report("fc1.synapse"), lif.report("fc1.lif")))
    d = json.loads(json.dumps(report.to_dict()))
    assert d["totals"]["clipped"] == w.clipped + 1 == report.total_clipped  # + the lif's dv = 1
    assert d["totals"]["size"] == 4 + 3 + 2
    assert d["layers"][0]["exponents"]["weight_exp"] == w.exp and d["layers"][1]["details"]["clipped"] == ["dv"]
    text = format_report(report)
    assert "fc1.synapse" in text and "fc1.lif" in text and "total" in text
    assert report.max_abs_error == max(w.max_abs_error, lif.errors["vth"], lif.errors["bias"])


def test_sparse_weights_quantize_like_dense_ones():
    import scipy.sparse

    rng = np.random.default_rng(11)
    dense = rng.uniform(-0.4, 0.6, (6, 9)) * (rng.random((6, 9)) < 0.2)
    dense[0, 0] = 1e-6  # rounds to zero
    qs, qd = quantize_weights(scipy.sparse.csr_matrix(dense), state_exp=3), quantize_weights(dense, state_exp=3)
    assert (qs.exp, qs.sign_mode, qs.size, qs.zeroed) == (qd.exp, qd.sign_mode, np.count_nonzero(dense), 1)
    np.testing.assert_array_equal(qs.mant.toarray(), qd.mant)
    assert qs.mant.nnz == np.count_nonzero(qd.mant) and qs.max_abs_error == qd.max_abs_error
    assert qs.rel_error == pytest.approx(qd.rel_error) and qs.a_out_bound == qd.a_out_bound
    s = rng.random(9) < 0.5
    np.testing.assert_array_equal(dense_fixed(qs.mant, qs.exp, s), dense_fixed(qd.mant, qd.exp, s))


def test_lava_clip_truncate_on_sparse_matches_weightutils():
    import scipy.sparse
    from lava.utils.weightutils import SignMode as LavaSignMode
    from lava.utils.weightutils import clip_weights, truncate_weights

    w = scipy.sparse.random(8, 8, density=0.4, random_state=2, data_rvs=lambda n: np.arange(n) * 37 - 300).tocsr()
    mode = LavaSignMode.MIXED
    lava = truncate_weights(clip_weights(w, mode, num_bits=8), mode, 8)
    np.testing.assert_array_equal(lava_clip_truncate(w, SignMode.MIXED).toarray(), lava.toarray())


def test_wrap_signed_matches_lava_conv_clamp():
    from lava.proc.conv.utils import signed_clamp

    from hardware_sims.fixed_point.reference import wrap_signed

    x = np.array([0, 2**23 - 1, 2**23, -(2**23), -(2**23) - 1, 3 * 2**23 + 5, -7 * 2**22])
    np.testing.assert_array_equal(wrap_signed(x), signed_clamp(x, bits=24))
    assert wrap_signed(2**23) == -(2**23)


def test_what_fixed_point_cannot_hold_is_a_one_line_snnav_error():
    """The quantizer's refusals belong to the error family (the CLI prints them as one line) and stay ValueErrors."""
    from hardware_sims.fixed_point.errors import FixedPointError
    from snnav.errors import SnnavError, UnsupportedGraphError

    with pytest.raises(FixedPointError, match="finite") as info:
        quantize_weights(np.array([[np.nan, 1.0]]))
    assert isinstance(info.value, UnsupportedGraphError) and isinstance(info.value, SnnavError)
    assert isinstance(info.value, ValueError)
