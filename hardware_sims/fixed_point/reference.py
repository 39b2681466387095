"""NumPy reference of Lava's bit-accurate Dense and LIF models, written from lava-nc 0.10.0's source (no lava import).

Mirrors, operation for operation:

* ``lava.utils.weightutils.determine_sign_mode`` / ``clip_weights`` / ``truncate_weights``
  (:func:`sign_mode_of`, :func:`lava_clip_truncate`), which ``PyDenseModelBitAcc.run_spk`` applies on its first step;
* ``AbstractPyDenseModelBitAcc.run_spk``: ``a_accum = W[:, s.astype(bool)].sum(1)`` (or ``W @ s`` for graded input),
  then ``<< weight_exp`` / ``>> -weight_exp`` (:func:`dense_fixed`);
* ``proc/conv/utils.signed_clamp`` (:func:`wrap_signed`), the 24-bit wrap of the fixed-point Conv output;
* ``AbstractPyLifModelFixed.scale_bias`` / ``subthr_dynamics`` and ``PyLifModelBitAcc.spiking_activation`` /
  ``reset_voltage`` (:func:`lif_fixed_step`).

``tests/hardware_sims/lava/test_quantize_lava.py`` runs the real Lava models beside these functions and compares ``u``,
``v`` and spikes bit for bit.
"""

from __future__ import annotations

import numpy as np

from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.formats import SignMode

__all__ = ["sign_mode_of", "lava_clip_truncate", "dense_fixed", "lif_fixed_step", "wrap_signed"]


def sign_mode_of(w) -> SignMode:
    """Lava's ``determine_sign_mode``: excitatory if all >= 0, inhibitory if all <= 0, else mixed."""
    w = np.asarray(w)
    if w.size == 0 or np.min(w) >= 0:
        return SignMode.EXCITATORY
    return SignMode.INHIBITORY if np.max(w) <= 0 else SignMode.MIXED


def lava_clip_truncate(weights, sign_mode: SignMode | None = None, num_weight_bits: int = lf.WEIGHT_BITS):
    """What Lava's bit-accurate Dense/Sparse do to their weights on the first step: ``clip_weights``, then
    ``truncate_weights`` (array or scipy sparse; a sparse result drops the entries that became zero, as Lava's does)."""
    if hasattr(weights, "tocsr"):
        out = weights.tocsr().astype(np.int32)
        mode = sign_mode if sign_mode is not None else sign_mode_of(out.data)
        out.data = lava_clip_truncate(out.data, mode, num_weight_bits)
        out.eliminate_zeros()
        return out
    w = np.asarray(weights).astype(np.int32)
    mode = SignMode(sign_mode) if sign_mode is not None else sign_mode_of(w)
    mixed, inhib = int(mode == SignMode.MIXED), mode == SignMode.INHIBITORY
    w = -w if inhib else w
    w = np.clip(w, -(2**lf.WEIGHT_BITS) * mixed, 2**lf.WEIGHT_BITS - 1)
    shift = lf.WEIGHT_BITS - num_weight_bits + mixed
    w = (w >> shift) << shift
    return -w if inhib else w


def dense_fixed(weights_mant, weight_exp: int, s, *, num_message_bits: int = 0) -> np.ndarray:
    """One step of Lava's bit-accurate Dense accumulation: ``(W @ s) << weight_exp`` (arithmetic ``>>`` if < 0).

    ``weights_mant`` (array or scipy sparse) must already be in Lava's format (see :func:`lava_clip_truncate`).
    With ``num_message_bits = 0`` the input is read as ``s != 0`` (Lava's ``astype(bool)``), else as graded
    integers. Lava delivers the result one step later (``a_buff``).
    """
    s = (np.asarray(s) != 0 if num_message_bits == 0 else np.asarray(s)).astype(np.int64)
    w = weights_mant.astype(np.int64) if hasattr(weights_mant, "tocsr") else np.asarray(weights_mant, dtype=np.int64)
    acc = np.asarray(w @ s).astype(np.int64)  # scipy sparse (Lava's Sparse) or dense
    return acc << weight_exp if weight_exp > 0 else acc >> -weight_exp


def _decay(x: np.ndarray, factor: int) -> np.ndarray:
    prod = x.astype(np.int64) * factor
    return np.sign(prod) * (np.abs(prod) >> lf.DECAY_BITS)  # rounds toward zero, as Lava does


def lif_fixed_step(u, v, a_in, du: int, dv: int, vth_mant: int, bias_mant, bias_exp):
    """One step of ``PyLifModelBitAcc`` (``AbstractPyLifModelFixed.subthr_dynamics`` + ``spiking_activation``).

    Integer arithmetic in int64; valid while ``|a_in| < 2**24`` (beyond, Lava's int32 ``a_in << 6`` would wrap).

    Returns:
        ``(u, v, s)``: new int64 current and voltage and the bool spike vector (``v`` already reset).
    """
    u, a_in = np.asarray(u, dtype=np.int64), np.asarray(a_in, dtype=np.int64)
    bias_mant, bias_exp = np.asarray(bias_mant, dtype=np.int64), np.asarray(bias_exp, dtype=np.int64)
    bias = np.where(bias_exp >= 0, bias_mant << np.maximum(bias_exp, 0), bias_mant >> np.maximum(-bias_exp, 0))
    cur = _decay(u, lf.DECAY_UNITY - (du + lf.DU_OFFSET)) + (a_in << lf.ACT_SHIFT)
    m = lf.STATE_LIMIT  # u wraps exactly as Lava writes it (two np.where on the unwrapped value)
    wrapped = np.where(cur > m, cur - 2 * m, cur)
    u_new = np.where(wrapped <= -m, cur + 2 * m, wrapped)
    v_new = np.clip(_decay(np.asarray(v), lf.DECAY_UNITY - (dv + lf.DV_OFFSET)) + u_new + bias, lf.V_MIN, lf.V_MAX)
    s = v_new > (np.int64(vth_mant) << lf.VTH_SHIFT)
    return u_new, np.where(s, 0, v_new), s


def wrap_signed(x, bits: int = lf.CONV_ACC_BITS) -> np.ndarray:
    """Lava's ``proc/conv/utils.signed_clamp``: wrap into ``[-2**(bits-1), 2**(bits-1))`` (the fixed-point Conv
    output, 24 bits); a wrap, not a saturation."""
    base = np.int64(1) << bits
    return (np.asarray(x, dtype=np.int64) + base // 2) % base - base // 2
