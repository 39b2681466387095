"""Loihi fixed-point formats, as consumed by Lava's bit-accurate process models — one cited place for every constant.

Sources (paths relative to the installed ``lava`` package, lava-nc 0.10.0):

* ``[LIF]`` ``proc/lif/models.py``: ``AbstractPyLifModelFixed`` (``__init__``, ``scale_bias``, ``subthr_dynamics``)
  and ``PyLifModelBitAcc`` (class docstring "Precisions of state variables", ``scale_threshold``).
* ``[DENSE]`` ``proc/dense/models.py``: ``AbstractPyDenseModelBitAcc.run_spk`` (clip, truncate, ``<< weight_exp``).
* ``[WU]`` ``utils/weightutils.py``: ``SignMode``, ``clip_weights``, ``truncate_weights``.
* ``[CONV]`` ``proc/conv/models.py``: ``PyConvModelFixed`` (24-bit ``signed_clamp``; ``weight_exp`` is NOT applied).
* ``[SLAYER]`` lava-dl 0.6.0 ``lib/dl/slayer/neuron/cuba.py`` (``w_scale=scale``, ``s_scale=scale * (1 << 6)``,
  default ``scale=1 << 6``) and ``neuron/base.py`` (``quantize_8bit``: step ``2/w_scale``, clamp [-256, 254]).
* ``[NETX]`` lava-dl 0.6.0 ``lib/dl/netx/hdf5.py`` (``du=iDecay-1``, ``dv=vDecay``, ``vth=vThMant``, ``bias_exp=6``).
* ``[B2L]`` brian2_loihi ``loihi_synapses.py`` (Michaelis et al., Front. Neuroinform. 2022, a Loihi 1 emulator matched
  against the chip): "w_exp: Weight exponent which scales the weights by 2^(6 + w_exp). The weight exponent can be
  between -8 and 7."
* ``[PROBE]`` measured here on lava-nc 0.10.0 (see ``tests/hardware_sims/lava/test_quantize_lava.py``).

Real <-> integer convention used by snnav (docs/deployment.md §3.4): a neuron population has a *state exponent*
``state_exp``; one real unit of ``u``/``v`` is ``2**(STATE_FRAC_BITS + state_exp)`` integer units. ``state_exp = 0``
is Lava/slayer's convention (``s_scale = 2**12``, ``vth_mant = theta * 2**6``, ``w_mant = w * 2**6``).
"""

from __future__ import annotations

import enum

# --- synapse weights -------------------------------------------------------------------------------------------------


class SignMode(enum.IntEnum):
    """Weight sign mode; values equal ``lava.utils.weightutils.SignMode`` [WU]: ``lava.SignMode(int(m))`` converts."""

    NULL = 0
    MIXED = 1
    EXCITATORY = 2
    INHIBITORY = 3


WEIGHT_BITS = 8
"""Weight magnitude bits: Dense calls ``clip_weights(..., num_bits=8)``; ``num_weight_bits`` defaults to 8 [DENSE]."""

WEIGHT_MANT_RANGE = {
    SignMode.MIXED: (-(2**WEIGHT_BITS), 2**WEIGHT_BITS - 2),
    SignMode.EXCITATORY: (0, 2**WEIGHT_BITS - 1),
    SignMode.INHIBITORY: (-(2**WEIGHT_BITS - 1), 0),
}
"""Weight mantissas Lava's clip+truncate leave unchanged [WU]: clip to [-256, 255] (mixed) / [0, 255] (excitatory) /
[-255, 0] (inhibitory, clipped after negation), then ``num_truncate_bits = 8 - num_weight_bits + is_mixed`` LSBs are
floored away, so mixed mantissas are even: [-256, 254]."""

WEIGHT_MANT_STEP = {SignMode.MIXED: 2, SignMode.EXCITATORY: 1, SignMode.INHIBITORY: 1}
"""Spacing of representable mantissas at ``num_weight_bits = 8``: mixed sign loses the LSB [WU ``truncate_weights``]."""



def weight_mant_grid(sign_mode: SignMode, num_weight_bits: int = WEIGHT_BITS) -> tuple[int, int, int]:
    """``(lo, hi, step)``: the mantissas Lava's clip+truncate leave unchanged with ``num_weight_bits`` [WU]: multiples
    of ``step = 2**(8 - num_weight_bits + is_mixed)`` in the clip range (Loihi's ``numWeightBits``: fewer bits floor
    more LSBs away). At 8 bits: `WEIGHT_MANT_RANGE` and `WEIGHT_MANT_STEP`."""
    bits = int(num_weight_bits)
    if not 1 <= bits <= WEIGHT_BITS:
        raise ValueError(f"num_weight_bits must be in [1, {WEIGHT_BITS}], got {num_weight_bits}")
    mode = SignMode(sign_mode)
    step = 2 ** (WEIGHT_BITS - bits + int(mode == SignMode.MIXED))
    top = (2**WEIGHT_BITS - 1) // step * step  # the largest multiple of step that the clip keeps
    if mode == SignMode.MIXED:
        return -(2**WEIGHT_BITS), top, step
    if mode == SignMode.INHIBITORY:
        return -top, 0, step
    return 0, top, step


WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -8, 7
"""Weight exponent range of Loihi's synapse [B2L]. Lava's Dense accepts any int (``a_accum << weight_exp``, right
shift when negative) [DENSE]; snnav stays inside the hardware range."""

CONV_ACC_BITS = 24
"""Lava's fixed-point Conv wraps its output modulo 2**24 (``utils.signed_clamp(x, bits=24)``) and ignores
``weight_exp`` and the 8-bit clip [CONV]: a conv's exponent must be folded into its integer weights."""

# --- neuron (CUBA LIF) -----------------------------------------------------------------------------------------------

DECAY_BITS = 12
"""``du``/``dv`` are unsigned 12-bit (0..4095); decays are MSB-aligned by ``decay_shift = 12`` [LIF]."""
DECAY_UNITY = 2**DECAY_BITS  # 4096, ``decay_unity`` [LIF]
DECAY_MAX = DECAY_UNITY - 1  # 4095 [LIF docstring]
DU_OFFSET = 1
"""``ds_offset = 1`` [LIF]: ``u' = u * (4096 - (du + 1)) >> 12`` so ``du = 4095`` is a full decay (memoryless u)."""
DV_OFFSET = 0
"""``dm_offset = 0`` [LIF]: ``v' = v * (4096 - dv) >> 12``; a full voltage decay (4096) is not representable."""

STATE_BITS = 24
"""``u``, ``v`` are 24-bit ([LIF] ``uv_bitwidth = 24``): ``u`` wraps past +-2**23, ``v`` saturates at +-(2**23 - 1)."""
STATE_LIMIT = 2 ** (STATE_BITS - 1)  # ``max_uv_val`` [LIF]
V_MAX = STATE_LIMIT - 1
V_MIN = -(STATE_LIMIT - 1)

ACT_SHIFT = 6
"""Synaptic input is left-shifted by 6 before it is added to ``u`` (``act_shift = 6``) [LIF]."""
VTH_SHIFT = 6
"""The threshold is left-shifted by 6: spike iff ``v > vth << 6`` (``vth_shift = 6``) [LIF]."""
VTH_BITS = 17
VTH_MANT_MAX = 2**VTH_BITS - 1
"""``vth``: unsigned 17-bit, 0..131071 [LIF docstring]."""

BIAS_MANT_BITS = 13
BIAS_MANT_MIN, BIAS_MANT_MAX = -(2 ** (BIAS_MANT_BITS - 1)), 2 ** (BIAS_MANT_BITS - 1) - 1
"""``bias_mant``: signed 13-bit, -4096..4095 [LIF docstring]."""
BIAS_EXP_BITS = 3
BIAS_EXP_MIN, BIAS_EXP_MAX = 0, 2**BIAS_EXP_BITS - 1
"""``bias_exp``: unsigned 3-bit, 0..7 [LIF docstring]; the model also right-shifts negative exponents
(``scale_bias``), which the hardware format cannot hold, so snnav never emits them."""
NETX_BIAS_EXP = 6
"""netx always builds LIFs with ``bias_exp=6`` [NETX]."""

A_IN_BITS = 16
A_IN_MIN, A_IN_MAX = -(2 ** (A_IN_BITS - 1)), 2 ** (A_IN_BITS - 1) - 1
"""``a_in`` is declared signed 16-bit [LIF] and the Dense output 16-bit [DENSE], but Lava does not enforce it: an
``a_buff`` of 65024 reaches ``u`` unchanged [PROBE]. snnav reports a possible overflow instead of modelling one."""

# --- scale conventions -----------------------------------------------------------------------------------------------

WEIGHT_FRAC_BITS = 6
"""slayer's weight scale ``w_scale = 1 << 6``: ``w_mant = w * 64`` at ``weight_exp = 0`` [SLAYER]."""
STATE_FRAC_BITS = 12
"""slayer's state scale ``s_scale = w_scale << 6 = 2**12`` [SLAYER]: with ``a_in << 6`` [LIF], a real input of 1.0
becomes 2**12 in ``u``/``v``, and ``vth_mant = theta * 2**6`` becomes ``theta * 2**12`` after ``<< 6``."""
assert WEIGHT_FRAC_BITS + ACT_SHIFT == STATE_FRAC_BITS  # the two conventions above are one and the same


def state_scale(state_exp: int) -> int:
    """Integer units of ``u``/``v`` per real unit for a population with exponent ``state_exp``: 2**(12 + state_exp)."""
    return 2 ** (STATE_FRAC_BITS + state_exp)
