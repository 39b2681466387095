"""The quantizer's study knobs (``quantize_plan(weight_bits=..., v_headroom=...)``): at their defaults they give the
default quantization bit for bit; fewer weight bits give fewer weight levels, on a grid Lava leaves unchanged; a
larger headroom lowers the state exponent (coarser thresholds); Lava runs the reduced weights as the emulator does.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from lava_graphs import conv_pool, lif_chain, residual
from test_emulator import case_inputs, small_model_case

import hardware_sims  # noqa: F401  (lava compatibility fixes before any lava import)
from hardware_sims.emulator import emulate
from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.plan_quantizer import quantize_plan
from hardware_sims.fixed_point.prepare import prepare_fixed
from hardware_sims.fixed_point.quantize import quantize_weights
from hardware_sims.fixed_point.reference import lava_clip_truncate
from hardware_sims.plan import build_plan


def _dense(m) -> np.ndarray:
    return m.toarray() if sp.issparse(m) else np.asarray(m)


def _levels(m) -> int:
    return len(np.unique(m.data if sp.issparse(m) else np.asarray(m)))


def assert_same_quantization(a, b) -> None:
    """Two fixed plans carry the same integers everywhere."""
    qa, qb = a.quant, b.quant
    assert set(qa.synapses) == set(qb.synapses) and set(qa.neurons) == set(qb.neurons)
    for name, wa in qa.synapses.items():
        wb = qb.synapses[name]
        assert (wa.exp, wa.sign_mode, wa.state_exp, wa.input_exp, wa.num_weight_bits) == \
            (wb.exp, wb.sign_mode, wb.state_exp, wb.input_exp, wb.num_weight_bits), name
        np.testing.assert_array_equal(_dense(wa.mant), _dense(wb.mant), err_msg=name)
    for name, na in qa.neurons.items():
        nb = qb.neurons[name]
        assert (na.du, na.dv, na.vth_mant, na.bias_exp, na.state_exp) == \
            (nb.du, nb.dv, nb.vth_mant, nb.bias_exp, nb.state_exp), name
        np.testing.assert_array_equal(na.bias_mant, nb.bias_mant, err_msg=name)
    assert dict(qa.state_exps) == dict(qb.state_exps)
    assert dict(qa.message_exps) == dict(qb.message_exps)
    assert dict(qa.port_formats) == dict(qb.port_formats)
    assert qa.report.to_dict() == qb.report.to_dict()


@pytest.fixture(scope="module")
def model_plan():
    graph, inputs = small_model_case("scmrl")
    return build_plan(graph), inputs


def test_knobs_at_their_defaults_reproduce_the_default_quantization(model_plan):
    plan, inputs = model_plan
    default, _, _ = prepare_fixed(plan, {})
    explicit, _, _ = prepare_fixed(plan, {}, weight_bits=lf.WEIGHT_BITS, v_headroom=16.0)
    assert_same_quantization(default, explicit)
    assert all(w.num_weight_bits == 8 for w in default.quant.synapses.values())
    a = emulate(plan, inputs, precision="fixed")
    b = emulate(plan, inputs, precision="fixed", quant_options={"weight_bits": 8, "v_headroom": 16.0})
    for node in a.records:
        np.testing.assert_array_equal(a.records[node], b.records[node], err_msg=node)


def test_fewer_weight_bits_give_fewer_levels_on_lavas_grid(model_plan):
    plan, _ = model_plan
    most = {}
    for bits in (8, 6, 4, 3, 2):
        fixed, _, _ = prepare_fixed(plan, {}, weight_bits=bits)
        for name, w in fixed.quant.synapses.items():
            assert _levels(w.mant) <= 2**bits, (name, bits)
            lo, hi, step = lf.weight_mant_grid(w.sign_mode, bits)
            m = w.mant.data if sp.issparse(w.mant) else np.asarray(w.mant)
            assert np.all((m % step == 0) & (m >= lo) & (m <= hi)), (name, bits)
            if not sp.issparse(w.mant):  # Lava's clip + truncate with num_weight_bits leave them as they are
                np.testing.assert_array_equal(lava_clip_truncate(w.mant, w.sign_mode, bits), w.mant)
        most[bits] = max(_levels(w.mant) for w in fixed.quant.synapses.values())
    assert most[8] > most[6] > most[4] > most[3] > most[2], most


def test_weight_bits_grid_and_errors():
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (20, 30))
    errs = [quantize_weights(w, weight_bits=b).rel_error for b in (8, 6, 4, 2)]
    assert errs == sorted(errs) and errs[0] < 0.01 < errs[-1]
    for mode in lf.SignMode:
        if mode != lf.SignMode.NULL:
            assert lf.weight_mant_grid(mode)[:2] == lf.WEIGHT_MANT_RANGE[mode]
            assert lf.weight_mant_grid(mode)[2] == lf.WEIGHT_MANT_STEP[mode]
    for bad in (0, 9):
        with pytest.raises(ValueError, match="num_weight_bits"):
            quantize_plan(build_plan(lif_chain(rng)), weight_bits=bad)


def test_headroom_scales_thresholds(model_plan):
    plan, _ = model_plan
    spiking = [p.name for p in plan.of_kind("neuron") if p.spiking]
    base, _, _ = prepare_fixed(plan, {})
    wide, _, _ = prepare_fixed(plan, {}, v_headroom=16.0 * 2**3)
    for name in spiking:
        assert wide.quant.state_exps[name] <= base.quant.state_exps[name] - 2, name
        assert wide.quant.neurons[name].vth_mant < base.quant.neurons[name].vth_mant, name


@pytest.mark.lava
@pytest.mark.parametrize("builder", [lif_chain, conv_pool, residual])
def test_lava_runs_reduced_weight_bits_as_the_emulator(builder):
    from hardware_sims.lava.run import run_lava

    rng = np.random.default_rng(4)
    plan = build_plan(builder(rng))
    inputs = case_inputs(plan, rng)
    options = {"weight_bits": 3, "v_headroom": 32.0}
    lava = run_lava(plan, inputs, precision="fixed", quant_options=options)
    emu = emulate(plan, inputs, precision="fixed", quant_options=options)
    assert set(lava.records) == set(emu.records)
    for node in lava.records:
        np.testing.assert_array_equal(lava.records[node], emu.records[node], err_msg=node)
    default = emulate(plan, inputs, precision="fixed")
    assert any(not np.array_equal(default.records[n], emu.records[n]) for n in emu.records)
