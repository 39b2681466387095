"""Pinned quantizer settings: a weight exponent given instead of chosen, and the settings a graph carries in
``metadata["quantizer"]`` (written by quantization-aware fine-tuning) used by ``prepare_fixed``."""

from __future__ import annotations

import numpy as np
import pytest

from hardware_sims.fixed_point.prepare import quantizer_settings
from hardware_sims.fixed_point.quantize import quantize_weights


def test_a_pinned_exponent_is_used_and_its_clipping_counted():
    w = np.array([[0.5, -0.25], [0.125, 0.9]])
    chosen = quantize_weights(w, state_exp=6)
    same = quantize_weights(w, state_exp=6, exp=chosen.exp)
    assert np.array_equal(same.mant, chosen.mant) and same.clipped == 0
    finer = quantize_weights(w, state_exp=6, exp=chosen.exp - 1)
    assert finer.exp == chosen.exp - 1 and finer.clipped > 0  # the largest weight no longer fits
    with pytest.raises(ValueError, match="outside"):
        quantize_weights(w, exp=-1, target="conv")


def test_quantizer_settings_from_metadata():
    meta = {"quantizer": {"weight_bits": 6, "v_headroom": 16.0, "weight_exps": {"a": 2, "b<-c": -3}}}
    assert quantizer_settings(meta) == {"weight_bits": 6, "v_headroom": 16.0, "weight_exps": {"a": 2, "b<-c": -3}}
    assert quantizer_settings({}) == {} and quantizer_settings(None) == {}
    with pytest.raises(ValueError, match="unknown keys"):
        quantizer_settings({"quantizer": {"weight_bit": 6}})
