"""Property tests: quantize -> dequantize is within half a step unless clipped; counts, exponents and formats hold."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.quantize import quantize_lif, quantize_weights
from hardware_sims.fixed_point.reference import dense_fixed, lava_clip_truncate, lif_fixed_step

FAST = settings(max_examples=60, deadline=None)

weights = hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=6),
                     elements=st.floats(-1.0, 1.0, allow_nan=False, width=32))


@FAST
@given(w=weights, magnitude=st.integers(-12, 10), state_exp=st.integers(-4, 8), input_exp=st.integers(0, 3),
       hint=st.none() | st.floats(1e-3, 1e3))
def test_dequantize_error_and_clip_counts(w, magnitude, state_exp, input_exp, hint):
    w = w * 2.0**magnitude
    q = quantize_weights(w, state_exp=state_exp, input_exp=input_exp, scale_hint=hint)
    lo, hi = lf.WEIGHT_MANT_RANGE[q.sign_mode]
    spacing = lf.WEIGHT_MANT_STEP[q.sign_mode]
    ratio = w / q.step
    assume(not np.any(np.isclose(np.abs(ratio / spacing) % 1.0, 0.5)))  # rounding ties: either neighbour is right
    # independent count: a weight clips iff it lies more than half a step outside [lo, hi]
    clipped = (ratio > hi + spacing / 2) | (ratio < lo - spacing / 2)
    assert q.clipped == int(clipped.sum())
    err = np.abs(q.dequantize() - w)
    assert np.all(err[~clipped] <= spacing * q.step / 2 * (1 + 1e-12))
    assert q.max_abs_error == (err.max() if err.size else 0.0)
    assert q.rounded == int(np.count_nonzero(~clipped & (err > 0)))
    norm = np.linalg.norm(w)
    assert np.isclose(q.rel_error, np.linalg.norm(q.dequantize() - w) / norm if norm else 0.0)


@FAST
@given(w=weights, magnitude=st.integers(-12, 10), state_exp=st.integers(-4, 8))
def test_exponent_is_finest_unclipped_else_largest(w, magnitude, state_exp):
    w = w * 2.0**magnitude
    q = quantize_weights(w, state_exp=state_exp)
    if not np.any(w):
        assert q.exp == 0
    elif q.clipped:
        assert q.exp == lf.WEIGHT_EXP_MAX
    elif q.exp > lf.WEIGHT_EXP_MIN:  # one exponent finer (half the step) would clip
        spacing = lf.WEIGHT_MANT_STEP[q.sign_mode]
        lo, hi = lf.WEIGHT_MANT_RANGE[q.sign_mode]
        finer = spacing * np.rint(w / (q.step / 2) / spacing)
        assert finer.max() > hi or finer.min() < lo


@FAST
@given(w=weights, magnitude=st.integers(-12, 10), state_exp=st.integers(-4, 8))
def test_mantissas_are_in_lavas_format(w, magnitude, state_exp):
    q = quantize_weights(w * 2.0**magnitude, state_exp=state_exp)
    lo, hi = lf.WEIGHT_MANT_RANGE[q.sign_mode]
    assert q.mant.dtype == np.int32 and np.all((q.mant >= lo) & (q.mant <= hi))
    assert np.all(q.mant % lf.WEIGHT_MANT_STEP[q.sign_mode] == 0)
    np.testing.assert_array_equal(lava_clip_truncate(q.mant, q.sign_mode), q.mant)
    np.testing.assert_array_equal(lava_clip_truncate(q.mant), q.mant)  # the sign mode Lava would infer
    assert lf.WEIGHT_EXP_MIN <= q.exp <= lf.WEIGHT_EXP_MAX


@FAST
@given(w=weights, state_exp=st.integers(-2, 8), s=st.data())
def test_shift_floor_error_bounds_the_dense_output(w, state_exp, s):
    q = quantize_weights(w.reshape(w.shape[0], -1) * 0.01, state_exp=state_exp)
    x = s.draw(hnp.arrays(np.int64, q.mant.shape[1], elements=st.integers(0, 1)))
    exact = q.mant.astype(np.int64) @ x * 2.0**q.exp  # a_out before Lava's integer shift
    got = dense_fixed(q.mant, q.exp, x)
    drop = (exact - got) * 2.0**(-q.exp) * q.step  # in real units
    assert np.all(drop >= 0) and np.all(drop <= q.shift_floor_error + 1e-15)
    assert np.all(np.abs(got) <= q.a_out_bound)


@FAST
@given(dv=st.floats(0, 1), du=st.floats(1 / 4096, 1), vth=st.floats(0, 100), state_exp=st.integers(-4, 6),
       bias=hnp.arrays(np.float64, st.integers(1, 5), elements=st.floats(-50, 50)))
def test_lif_parameters_round_to_nearest(dv, du, vth, state_exp, bias):
    q = quantize_lif(dv, du, vth, bias, state_exp=state_exp)
    assert 0 <= q.du <= lf.DECAY_MAX and 0 <= q.dv <= lf.DECAY_MAX
    assert abs((q.du + 1) / 4096 - du) <= 0.5 / 4096 + 1e-15
    assert "dv" in q.clipped or abs(q.dv / 4096 - dv) <= 0.5 / 4096 + 1e-15
    assert "vth" in q.clipped or q.errors["vth"] <= 2**lf.VTH_SHIFT / 2 / q.scale + 1e-12
    assert lf.BIAS_EXP_MIN <= q.bias_exp <= lf.BIAS_EXP_MAX
    assert np.all((q.bias_mant >= lf.BIAS_MANT_MIN) & (q.bias_mant <= lf.BIAS_MANT_MAX))
    clipped_bias = [c for c in q.clipped if c.startswith("bias")]
    if not clipped_bias:
        assert q.errors["bias"] <= 2.0**q.bias_exp / 2 / q.scale + 1e-12
        if q.bias_exp > 0:  # exponent minimal: one less would overflow the 13-bit mantissa
            finer = np.rint(bias * q.scale / 2 ** (q.bias_exp - 1))
            assert finer.max() > lf.BIAS_MANT_MAX or finer.min() < lf.BIAS_MANT_MIN
    else:
        assert q.bias_exp == lf.BIAS_EXP_MAX


@FAST
@given(u=st.integers(-(2**23), 2**23 - 1), v=st.integers(-(2**23) + 1, 2**23 - 1), a=st.integers(-(2**15), 2**15 - 1),
       du=st.integers(0, 4095), dv=st.integers(0, 4095), vth=st.integers(0, 2**17 - 1))
def test_lif_step_keeps_24_bit_state(u, v, a, du, dv, vth):
    u2, v2, s = lif_fixed_step(np.array([u]), np.array([v]), np.array([a]), du, dv, vth, 0, 0)
    assert -(2**23) < u2[0] <= 2**23 and lf.V_MIN <= v2[0] <= lf.V_MAX
    assert not s[0] or v2[0] == 0


def test_a_weight_rounding_to_zero_does_not_leave_a_mantissa_lava_would_clip():
    # Mixed-sign floats whose positive weight rounds to 0: Lava infers the inhibitory mode from the mantissas, in
    # which -256 (a valid mixed-mode mantissa) would be clipped to -255. Found by hypothesis.
    q = quantize_weights(np.array([-1.0, 0.00390625]))
    np.testing.assert_array_equal(lava_clip_truncate(q.mant), q.mant)
    np.testing.assert_array_equal(lava_clip_truncate(q.mant, q.sign_mode), q.mant)


def test_sparse_weights_with_unsorted_indices_keep_their_places():
    # A CSR matrix whose column indices are not sorted (as the planner builds token linears): the mantissas must stay
    # on their own entries (scipy's astype sorts the indices, which once moved the values under them).
    import scipy.sparse as sp

    w = sp.csr_matrix((np.array([0.5, -0.25, 1.0]), np.array([2, 0, 1]), np.array([0, 2, 3])), shape=(2, 3))
    assert not w.has_sorted_indices
    q = quantize_weights(w)
    np.testing.assert_allclose(q.dequantize().toarray() if hasattr(q.dequantize(), "toarray") else q.dequantize(),
                               w.toarray(), atol=q.step / 2)
