"""The RUNNING (causal) extension processes' shared semantics against loops written from export/EXTENSIONS.md:
CausalSpikeAttention exact (float and fixed point), CausalFusion within its rounding bound in fixed point, the
reset by ``steps_seen`` alone, and the refusal past the proven horizon."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hardware_sims.extensions import semantics as S


def _spikes(rng, steps, c, n):
    return (rng.random((steps, c, n)) < 0.5).astype(np.int64)


def test_causal_attention_equals_the_spec_loop_float_and_fixed():
    rng = np.random.default_rng(0)
    steps, c, n, h = 5, 6, 3, 2
    d = c // h
    q, k, v = (_spikes(rng, steps, c, n) for _ in range(3))
    sem = S.causal_spike_attention(shape=(c, n), num_heads=h, scale=0.25)
    fl, fx = S.new_state(sem, False), S.new_state(sem, True)
    for t in range(steps):
        ref = np.zeros((c, n))
        for g in range(h):
            for j in range(d):
                for tok in range(n):
                    ref[g * d + j, tok] = 0.25 * sum(q[t, g * d + i, tok] * k[s, g * d + i, tok] * v[s, g * d + j, tok]
                                                     for s in range(t + 1) for i in range(d))
        np.testing.assert_array_equal(sem.float_fn(sem.params, fl, q[t], k[t], v[t]), ref)
        out = sem.fixed_fn(sem.params, fx, q[t], k[t], v[t])  # 0.25 on spikes: lossless, out_exp = 2
        np.testing.assert_array_equal(out * 2.0 ** -sem.plan.out_exp, ref)


@pytest.mark.parametrize("n", [4, 3])  # 1/(N (t+1)) exact for some steps only / never
def test_causal_fusion_fixed_point_is_within_its_rounding_bound(n):
    rng = np.random.default_rng(1)
    steps, c = 7, 5
    s, tm = _spikes(rng, steps, c, n), _spikes(rng, steps, c, n)
    sem = S.causal_fusion(shape=(c, n))
    fl, fx = S.new_state(sem, False), S.new_state(sem, True)
    exp = sem.plan.out_exp
    for t in range(steps):
        exact = [[Fraction(int(s[t, ch].sum()), n) * Fraction(int(tm[:t + 1, ch, tok].sum()), t + 1)
                  for tok in range(n)] for ch in range(c)]
        got_float = sem.float_fn(sem.params, fl, s[t], tm[t])
        got_fixed = sem.fixed_fn(sem.params, fx, s[t], tm[t])
        for ch in range(c):
            for tok in range(n):
                assert abs(Fraction(float(got_float[ch, tok])) - exact[ch][tok]) < Fraction(1, 2**40)
                err = abs(Fraction(int(got_fixed[ch, tok]), 2**exp) - exact[ch][tok])
                assert err <= Fraction(1, 2 ** (exp + 1)) + exact[ch][tok] * Fraction(1, 2**15)


def test_reset_by_steps_seen_alone_restarts_the_running_state():
    rng = np.random.default_rng(2)
    c, n = 4, 3
    sem = S.causal_fusion(shape=(c, n))
    state = S.new_state(sem, True)
    first = [sem.fixed_fn(sem.params, state, *(_spikes(rng, 1, c, n)[0] for _ in range(2))) for _ in range(3)]
    assert state["total"].any()
    state["steps_seen"][0] = 0  # what ExtensionProcess.reset() sets
    xs = [(_spikes(rng, 1, c, n)[0], _spikes(rng, 1, c, n)[0]) for _ in range(3)]
    again = [sem.fixed_fn(sem.params, state, *x) for x in xs]
    fresh_state = S.new_state(sem, True)
    fresh = [sem.fixed_fn(sem.params, fresh_state, *x) for x in xs]
    assert all(np.array_equal(a, b) for a, b in zip(again, fresh)) and len(first) == 3


def test_fixed_point_refuses_to_run_past_the_proven_horizon():
    sem = S.causal_spike_attention(shape=(2, 2), num_heads=1, scale=0.25)
    state = S.new_state(sem, True)
    state["steps_seen"][0] = S.RUNNING_HORIZON
    x = np.ones((2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="RUNNING_HORIZON"):
        sem.fixed_fn(sem.params, state, x, x, x)
