"""One netx layer's integers: weights at exponent 0 and the CUBA neuron on netx's fixed bias grid (``quant=
"slayer"`` or ``"fit"``), through the shared quantizer (`hardware_sims.fixed_point.quantize`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.quantize import (
    STATE_EXP_MAX,
    STATE_EXP_MIN,
    QuantLIF,
    QuantWeights,
    choose_state_exp,
    quantize_lif,
    quantize_weights,
)
from hardware_sims.netx.limits import NetxExportError

__all__ = ['quantize_layer', 'check_dense_signs']

def quantize_layer(w, neuron: dict, *, ie: int, quant: str, graded: bool, name: str) -> tuple[QuantWeights,
                                                                                               QuantLIF, int]:
    """Weights at exponent 0 and the neuron on netx's bias grid, at the layer's state_exp."""
    vth, bias = float(neuron["vth"]), np.asarray(neuron.get("bias", 0.0), dtype=np.float64)
    bias_max = float(np.abs(bias).max(initial=0.0))

    if hasattr(w, "tocsr"):  # canonical CSR: quantize_weights rebuilds the matrix with w.astype, which sorts indices
        w = w.tocsr(copy=True)
        w.sum_duplicates()

    def weights(se: int) -> QuantWeights:
        return quantize_weights(w, state_exp=se, input_exp=ie, target="conv", signed_input=graded)

    if quant == "slayer":
        se = ie
        q = weights(se)
        if q.exp != 0:
            raise NetxExportError(
                f"layer {name!r}: weights up to {np.abs(q.dequantize()).max():.4g} (real, folded) exceed netx's 8-bit "
                f"range at state_exp {se} (slayer's w * 64 in [-256, 254]); they would need weight exponent {q.exp}, "
                "which netx cannot store. Pass quant='fit' (a coarser state scale for this layer)")
    elif quant == "fit":
        top = choose_state_exp(vth, bias_max=0.0)
        ok_bias = [s for s in range(STATE_EXP_MIN, STATE_EXP_MAX + 1)
                   if np.rint(bias_max * lf.state_scale(s) / 2**lf.NETX_BIAS_EXP) <= lf.BIAS_MANT_MAX]
        top = min(top, max(ok_bias, default=STATE_EXP_MIN))
        se = next((s for s in range(top, STATE_EXP_MIN - 1, -1) if weights(s).exp == 0), STATE_EXP_MIN)
        q = weights(se)
        if q.exp != 0:
            raise NetxExportError(f"layer {name!r}: weights up to {np.abs(q.dequantize()).max():.4g} (real, folded) "
                                  f"do not fit 8 bits at any state scale (state_exp >= {STATE_EXP_MIN})")
    else:
        raise ValueError(f"quant must be 'slayer' or 'fit', found {quant!r}")
    n = quantize_lif(float(neuron["dv"]), float(neuron["du"]), vth, bias, state_exp=se)
    if "vth" in n.clipped:
        raise NetxExportError(f"layer {name!r}: threshold {vth:g} needs vThMant > {lf.VTH_MANT_MAX} at state_exp {se}"
                              " (17 bits); use quant='fit' or rescale the layer")
    raw = np.rint(bias * lf.state_scale(se) / 2**lf.NETX_BIAS_EXP)  # netx: bias_exp = 6 for every CUBA neuron
    mant = np.clip(raw, lf.BIAS_MANT_MIN, lf.BIAS_MANT_MAX).astype(np.int32)
    real = mant * 2.0**lf.NETX_BIAS_EXP / lf.state_scale(se)
    err = np.abs(real - bias)
    norm = float(np.linalg.norm(bias))
    errors = {**n.errors, "bias": float(err.max(initial=0.0)),
              "bias_rel": float(np.linalg.norm(real - bias)) / norm if norm > 0 else 0.0}
    clipped = tuple(c for c in n.clipped if not c.startswith("bias")) + tuple(
        f"bias[{i}]" for i in np.flatnonzero(mant.reshape(-1) != raw.reshape(-1)))
    n = dataclasses.replace(n, bias_mant=mant.reshape(bias.shape or (1,)), bias_exp=lf.NETX_BIAS_EXP, errors=errors,
                            clipped=clipped)
    return q, n, se


def check_dense_signs(mant, name: str) -> None:
    """netx cannot load a dense matrix without a positive weight exactly (see NETX.md, 'weights')."""
    values = mant.data if hasattr(mant, "tocsr") else np.asarray(mant)
    if values.size == 0 or not np.any(values):
        raise NetxExportError(f"layer {name!r}: all weights quantize to 0; netx's optimize_weight_bits divides by the "
                              "largest weight and fails on an all-zero matrix")
    if values.max() <= 0:
        raise NetxExportError(
            f"layer {name!r}: every weight is <= 0 (inhibitory); netx shifts such a matrix to a minimum of -256, "
            "which Lava's inhibitory clip turns into -255 and truncates (weights change). Not written")
