"""Float -> Loihi fixed point: weights, LIF parameters and a report of every clip and rounding (pure numpy).

Conventions (constants and their sources in :mod:`hardware_sims.fixed_point.formats`; Lava lines in brackets):

* A neuron population has one ``state_exp``; real ``u``/``v`` times ``S = 2**(12 + state_exp)`` is the integer state.
  ``state_exp = 0`` is Lava/slayer's convention (``vth_mant = theta * 64``, ``w_mant = w * 64``).
* A synapse into that population delivers ``(sum_j mant_ij * m_j) << exp`` (``>>`` floors when ``exp < 0``)
  [dense/models.py ``run_spk``], and the LIF adds it ``<< 6`` to ``u`` [lif/models.py ``act_shift``]. Its input
  messages are ``m = x * 2**input_exp`` (binary spikes: ``input_exp = 0``). Hence one mantissa unit is worth
  ``2**(exp - 6 - state_exp + input_exp)`` real, and every synapse into a population is quantized against that
  population's ``state_exp`` -- the one scale that keeps all fan-in consistent. The synapse's integer output
  ``a_out`` stands for ``a_out * 2**-(6 + state_exp)`` real (:attr:`QuantWeights.a_out_exp`), so a synapse into a
  graded extension port whose messages carry ``E`` fractional bits (``extensions.ports.PortFormat.exp``) is
  quantized with ``state_exp = E - 6``.
* Decays: ``dv_fx = rint(dv * 4096)``, ``du_fx = rint(du * 4096) - 1`` (``ds_offset = 1``: ``du = 1`` -> 4095);
  threshold ``vth_mant = rint(vth * S / 2**6)`` (spike iff ``v > vth_mant << 6``); bias
  ``b * S = bias_mant << bias_exp``.
* Exponent rules: the weight exponent is the smallest in range whose rounded mantissas need no clipping (finest
  step); if none, the largest (least clipping), and the clipped weights are counted. With ``weight_bits < 8``
  (Loihi's numWeightBits) the mantissas lie on the coarser grid Lava's ``truncate_weights`` keeps
  (:func:`hardware_sims.fixed_point.formats.weight_mant_grid`), the rules otherwise unchanged. The bias exponent likewise in
  0..7. Rounding is to nearest (``np.rint``, ties to even) on the grid of representable mantissas.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from hardware_sims.fixed_point import formats as lf
from hardware_sims.fixed_point.errors import FixedPointError
from hardware_sims.fixed_point.formats import SignMode
from hardware_sims.fixed_point.reference import sign_mode_of

__all__ = [
    "QuantWeights", "QuantLIF", "LayerReport", "QuantReport", "quantize_weights", "quantize_lif",
    "choose_state_exp", "quantize_messages", "format_report",
]

STATE_EXP_MIN, STATE_EXP_MAX = -lf.STATE_FRAC_BITS, lf.STATE_BITS - 1 - lf.STATE_FRAC_BITS  # 1 real unit fits in v
V_HEADROOM = 16.0
"""Default |v| range a spiking population must hold without saturating, in multiples of its threshold.

16 (one state bit coarser than 8) was chosen by ``scripts/quantization_study.py`` on the default S-CMRL exports:
fixed-point accuracy against float -6.0 pp at 8 and -1.3 pp at 16 (the main job's model), -3.6 / -0.6 pp (the H100-
trained one), -0.6 / +0.1 pp (the export of the first AV-Digits default); 4 and 32 were worse everywhere
(``results/quantization_study.md``)."""


@dataclass(frozen=True)
class LayerReport:
    """What quantizing one layer cost. Errors are in real (float) units of the quantity quantized."""

    name: str
    kind: str  # "synapse" | "neuron"
    size: int  # number of values quantized
    clipped: int  # values outside the representable range (saturated)
    rounded: int  # values changed by rounding only
    max_abs_error: float
    rel_error: float  # ||q - x||_2 / ||x||_2 (weights, bias); 0 when x is all zero
    exponents: dict = field(default_factory=dict)  # e.g. {"weight_exp": -3, "state_exp": 6}
    details: dict = field(default_factory=dict)  # kind-specific numbers (step, bounds, per-parameter errors)
    notes: tuple = ()

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "notes": list(self.notes)}


@dataclass(frozen=True)
class QuantReport:
    """Per-layer reports and their totals."""

    layers: tuple = ()

    @property
    def total_size(self) -> int:
        return sum(r.size for r in self.layers)

    @property
    def total_clipped(self) -> int:
        return sum(r.clipped for r in self.layers)

    @property
    def total_rounded(self) -> int:
        return sum(r.rounded for r in self.layers)

    @property
    def max_abs_error(self) -> float:
        return max((r.max_abs_error for r in self.layers), default=0.0)

    def to_dict(self) -> dict:
        return {
            "layers": [r.to_dict() for r in self.layers],
            "totals": {"size": self.total_size, "clipped": self.total_clipped, "rounded": self.total_rounded,
                       "max_abs_error": self.max_abs_error},
        }


@dataclass(frozen=True)
class QuantWeights:
    """One synapse layer in Lava's format: pass ``weights=mant, weight_exp=exp, sign_mode=SignMode(int(sign_mode))``.

    ``mant`` is invariant under Lava's ``clip_weights``/``truncate_weights`` for ``sign_mode`` and for the mode Lava
    infers from ``mant`` itself. ``a_out_bound`` is the worst-case ``|a_out|`` of one step (all inputs at their
    maximum); ``shift_floor_error`` the most (real) one step's ``>> -exp`` can drop (0 when ``exp >= 0``).
    """

    mant: np.ndarray
    exp: int
    sign_mode: SignMode
    state_exp: int
    input_exp: int
    size: int  # weights quantized (a sparse matrix's stored entries)
    clipped: int
    rounded: int
    zeroed: int  # nonzero weights that rounded to 0 (lost synapses)
    max_abs_error: float
    rel_error: float
    a_out_bound: int
    shift_floor_error: float
    num_weight_bits: int = lf.WEIGHT_BITS  # Lava's ``num_weight_bits``: mantissas multiples of 2**(8 - bits + mixed)

    @property
    def step(self) -> float:
        """Real value of one mantissa unit."""
        return 2.0 ** (self.exp - lf.WEIGHT_FRAC_BITS - self.state_exp + self.input_exp)

    @property
    def a_out_exp(self) -> int:
        """Fractional bits of the synapse's output: ``a_out`` stands for ``a_out * 2**-a_out_exp`` real."""
        return lf.ACT_SHIFT + self.state_exp

    def dequantize(self) -> np.ndarray:
        """The real weights the integers stand for (``mant * step``)."""
        return self.mant * self.step

    def conv_weight(self) -> np.ndarray:
        """Integer weights for Lava's fixed-point ``Conv``, which ignores ``weight_exp``: ``mant << exp`` (exp >= 0)."""
        if self.exp < 0:
            raise FixedPointError(f"Lava's fixed-point Conv cannot right-shift (weight_exp={self.exp}); quantize conv "
                             "weights with target='conv' so the exponent is >= 0")
        return self.mant.astype(np.int64) << self.exp

    def report(self, name: str) -> LayerReport:
        notes = ()
        if self.a_out_bound > lf.A_IN_MAX:
            notes = (f"worst-case a_out {self.a_out_bound} exceeds the 16-bit a_in of Loihi (Lava does not clip)",)
        return LayerReport(
            name, "synapse", self.size, self.clipped, self.rounded, self.max_abs_error, self.rel_error,
            {"weight_exp": self.exp, "state_exp": self.state_exp, "input_exp": self.input_exp},
            {"step": self.step, "sign_mode": self.sign_mode.name, "zeroed": self.zeroed,
             "num_weight_bits": self.num_weight_bits,
             "a_out_bound": self.a_out_bound, "shift_floor_error": self.shift_floor_error}, notes)


@dataclass(frozen=True)
class QuantLIF:
    """One LIF population in Lava's ``PyLifModelBitAcc`` format (pass the fields of the same names to ``LIF``)."""

    du: int
    dv: int
    vth_mant: int
    bias_mant: np.ndarray
    bias_exp: int
    state_exp: int
    errors: dict  # real-unit errors: du, dv (decay fractions), vth, bias (max abs), bias_rel
    clipped: tuple  # names of saturated parameters, e.g. ("dv", "bias[3]")
    rounded: int
    notes: tuple = ()

    @property
    def scale(self) -> int:
        """Integer state units per real unit: ``2**(12 + state_exp)``."""
        return lf.state_scale(self.state_exp)

    def report(self, name: str) -> LayerReport:
        size = 3 + int(self.bias_mant.size)
        err = self.errors
        return LayerReport(
            name, "neuron", size, len(self.clipped), self.rounded, max(err["vth"], err["bias"]),
            max(err["vth_rel"], err["bias_rel"]), {"state_exp": self.state_exp, "bias_exp": self.bias_exp},
            {"errors": dict(err), "du": self.du, "dv": self.dv, "vth_mant": self.vth_mant,
             "v_max_real": lf.V_MAX / self.scale, "a_in_unit": 2.0**lf.ACT_SHIFT / self.scale,
             "clipped": list(self.clipped)}, self.notes)


def _errors(x: np.ndarray, q: np.ndarray) -> tuple[float, float]:
    err = np.abs(q - x)
    norm = float(np.linalg.norm(x))
    return (float(err.max()) if err.size else 0.0), (float(np.linalg.norm(q - x)) / norm if norm > 0 else 0.0)


def _row_extremes(w) -> tuple[np.ndarray, np.ndarray]:
    """Per output row: the sum of the positive and of the negative entries (dense ``(out, ...)`` or scipy sparse)."""
    if hasattr(w, "tocsr"):
        pos, neg = w.tocsr(copy=True), w.tocsr(copy=True)
        pos.data, neg.data = np.clip(pos.data, 0, None), np.clip(neg.data, None, 0)
        return np.asarray(pos.sum(1)).ravel(), np.asarray(neg.sum(1)).ravel()
    rows = np.asarray(w).reshape(np.shape(w)[0], -1) if np.ndim(w) else np.reshape(w, (1, 1))
    return np.clip(rows, 0, None).sum(1), np.clip(rows, None, 0).sum(1)


def quantize_weights(w, *, state_exp: int = 0, input_exp: int = 0, scale_hint: float | None = None,
                     target: str = "dense", input_max: float = 1.0, signed_input: bool = False,
                     weight_bits: int = lf.WEIGHT_BITS, exp: int | None = None) -> QuantWeights:
    """Quantize one synapse layer's real weights to 8-bit mantissas and a per-layer exponent.

    Args:
        w: real weights: ``(out, in)`` array or scipy sparse matrix (Dense/Sparse), ``(C_out, ...)`` for Conv.
            Sparse input gives a sparse ``mant`` with the same structure, minus entries that round to zero.
        state_exp: the ``state_exp`` of the neuron population this synapse feeds.
        input_exp: messages arriving are ``x * 2**input_exp`` (0 for binary spikes).
        scale_hint: real magnitude the exponent must represent without clipping; default ``max|w|``. Larger shares
            an exponent across synapses, smaller trades clipped outliers for resolution.
        target: ``"dense"`` (exponent in [-8, 7]) or ``"conv"`` (Lava's Conv ignores ``weight_exp``: exponent >= 0,
            use :meth:`QuantWeights.conv_weight`).
        input_max: largest real ``|input message|`` (1 for spikes); with `signed_input` it sets ``a_out_bound``.
        signed_input: messages may be negative (graded); the bound then uses ``sum |w|`` per row.
        weight_bits: Loihi's ``numWeightBits`` (Lava's ``num_weight_bits``, 1..8): the mantissas keep this many bits
            (sign included for mixed-sign weights), i.e. they are multiples of ``2**(8 - weight_bits + mixed)`` in the
            same 8-bit range (`fixed_point.formats.weight_mant_grid`), as Lava's ``truncate_weights`` leaves them. 8 (the
            default) is Lava's default and gives the same result as before the option existed; fewer bits trade
            weight resolution for synaptic memory (the quantization study, ``scripts/quantization_study.py``).
        exp: the weight exponent to use instead of choosing one (a pinned setting, e.g. the one quantization-aware
            fine-tuning trained against, ``graph.metadata["quantizer"]["weight_exps"]``); weights outside its range
            saturate and are counted as clipped. Must lie in the target's range.

    Returns:
        The mantissas, exponent, sign mode and error counts (see :class:`QuantWeights`).
    """
    sparse = hasattr(w, "tocsr")
    w = w.tocsr().astype(np.float64) if sparse else np.asarray(w, dtype=np.float64)
    x = w.data if sparse else w  # the values to quantize (a sparse matrix's implicit zeros are exact)
    if not np.all(np.isfinite(x)):
        raise FixedPointError("weights must be finite; found NaN or inf -- check the exported graph's weights")
    if target not in ("dense", "conv"):
        raise FixedPointError(f"target must be 'dense' or 'conv', got {target!r}")
    mode = sign_mode_of(x)  # Lava's rule, on the float weights
    # Lava infers the sign mode from the mantissas when none is given; if rounding leaves mixed-sign weights all on
    # one side (a tiny weight of the other sign rounds to 0), redo the quantization in the mode Lava would infer, so
    # the mantissas are valid under both (e.g. -256 is a mixed-mode mantissa but outside the inhibitory range).
    exp_min = 0 if target == "conv" else lf.WEIGHT_EXP_MIN
    if exp is not None and not exp_min <= int(exp) <= lf.WEIGHT_EXP_MAX:
        raise FixedPointError(f"weight exponent {exp} is outside [{exp_min}, {lf.WEIGHT_EXP_MAX}] (target {target!r})")
    pinned = exp
    for _ in range(2):
        lo, hi, q = lf.weight_mant_grid(mode, weight_bits)

        def mant_at(values, e):
            return q * np.rint(np.asarray(values) / (q * 2.0 ** (e - lf.WEIGHT_FRAC_BITS - state_exp + input_exp)))

        if scale_hint is not None:
            probes = np.array([abs(scale_hint) if hi > 0 else 0.0, -abs(scale_hint) if lo < 0 else 0.0])
        else:
            probes = np.array([x.max(initial=0.0), x.min(initial=0.0)])
        fits = [e for e in range(exp_min, lf.WEIGHT_EXP_MAX + 1)
                if np.all((mant_at(probes, e) >= lo) & (mant_at(probes, e) <= hi))]
        exp = max(0, exp_min) if not np.any(probes) else (fits[0] if fits else lf.WEIGHT_EXP_MAX)
        exp = int(pinned) if pinned is not None else exp
        raw = mant_at(x, exp)
        mant_values = np.clip(raw, lo, hi).astype(np.int32)
        step = 2.0 ** (exp - lf.WEIGHT_FRAC_BITS - state_exp + input_exp)
        clipped = int(np.count_nonzero(mant_values != raw))
        rounded = int(np.count_nonzero((mant_values == raw) & (mant_values * step != x)))
        max_err, rel_err = _errors(x, mant_values * step)
        zeroed = int(np.count_nonzero((mant_values == 0) & (x != 0)))
        inferred = sign_mode_of(mant_values.astype(np.float64))
        if inferred == mode or not np.any(mant_values):
            break
        mode = inferred
    if sparse:
        # Built from w's own arrays: w.astype() may sort unsorted column indices and move .data under the values.
        mant = type(w)((mant_values.copy(), w.indices.copy(), w.indptr.copy()), shape=w.shape)
        mant.eliminate_zeros()  # as Lava's truncate_weights does
    else:
        mant = mant_values
    pos, neg = _row_extremes(mant)
    m_max = int(np.rint(abs(input_max) * 2.0**input_exp))
    worst = int(((pos - neg) if signed_input else np.maximum(pos, -neg)).max(initial=0)) * m_max
    a_out_bound = worst << exp if exp >= 0 else -(-worst >> -exp)  # ceil for the right shift
    floor_err = max(0.0, 2.0**-exp - q) * step  # a sum of multiples of q loses <= 2**-exp - q
    return QuantWeights(mant, exp, mode, state_exp, input_exp, int(x.size), clipped, rounded, zeroed, max_err,
                        rel_err, a_out_bound, floor_err, int(weight_bits))


def _check_fraction(name: str, x: float) -> float:
    x = float(x)
    if not 0.0 <= x <= 1.0:
        raise FixedPointError(f"{name} must be a decay fraction in [0, 1] (dt/tau), got {x}")
    return x


def quantize_lif(dv: float, du: float, vth: float, bias=0.0, *, state_exp: int = 0) -> QuantLIF:
    """Quantize a Lava LIF population (``u' = u(1-du) + a_in``; ``v' = v(1-dv) + u' + bias``; spike ``v' > vth``).

    Args:
        dv: voltage decay fraction in [0, 1]; ``rint(dv * 4096)``, 1.0 saturates to 4095 (``dm_offset = 0``).
        du: current decay fraction in [0, 1]; ``rint(du * 4096) - 1`` (``ds_offset = 1``): 1.0 -> 4095 (``u = a_in``),
            0.0 saturates to 0 (decay 1/4096).
        vth: threshold in real units (``>= 0``; ``inf`` for a readout that must not spike -> 131071).
        bias: real bias, scalar or per neuron, added to ``v`` every step.
        state_exp: the population's state exponent (see :func:`choose_state_exp`).

    Returns:
        The integer parameters, one ``bias_exp`` for the population, and errors in real units.
    """
    dv, du = _check_fraction("dv", dv), _check_fraction("du", du)
    vth = float(vth)
    if math.isnan(vth) or vth < 0:
        raise FixedPointError(f"vth must be >= 0 (Loihi's threshold is unsigned 17-bit), got {vth}")
    bias = np.atleast_1d(np.asarray(bias, dtype=np.float64))
    if not np.all(np.isfinite(bias)):
        raise FixedPointError("bias must be finite")
    scale, clipped, notes = lf.state_scale(state_exp), [], []
    dv_raw = int(np.rint(dv * lf.DECAY_UNITY)) - lf.DV_OFFSET
    du_raw = int(np.rint(du * lf.DECAY_UNITY)) - lf.DU_OFFSET
    dv_fx, du_fx = int(np.clip(dv_raw, 0, lf.DECAY_MAX)), int(np.clip(du_raw, 0, lf.DECAY_MAX))
    clipped += [n for n, raw, fx in (("dv", dv_raw, dv_fx), ("du", du_raw, du_fx)) if raw != fx]
    err = {"dv": abs((dv_fx + lf.DV_OFFSET) / lf.DECAY_UNITY - dv),
           "du": abs((du_fx + lf.DU_OFFSET) / lf.DECAY_UNITY - du)}
    if math.isinf(vth):
        vth_mant, err["vth"], err["vth_rel"] = lf.VTH_MANT_MAX, 0.0, 0.0
        notes.append(f"no threshold: spikes only if v > {(lf.VTH_MANT_MAX << lf.VTH_SHIFT) / scale:g} (real)")
    else:
        vth_raw = int(np.rint(vth * scale / 2**lf.VTH_SHIFT))
        vth_mant = min(vth_raw, lf.VTH_MANT_MAX)
        clipped += ["vth"] if vth_raw != vth_mant else []
        err["vth"] = abs(vth_mant * 2**lf.VTH_SHIFT / scale - vth)
        err["vth_rel"] = err["vth"] / vth if vth > 0 else 0.0
    b_int = bias * scale
    fits = [e for e in range(lf.BIAS_EXP_MIN, lf.BIAS_EXP_MAX + 1)
            if np.all(np.abs(np.rint(b_int / 2**e)) <= np.where(b_int < 0, -lf.BIAS_MANT_MIN, lf.BIAS_MANT_MAX))]
    bias_exp = fits[0] if fits else lf.BIAS_EXP_MAX
    raw = np.rint(b_int / 2**bias_exp)
    bias_mant = np.clip(raw, lf.BIAS_MANT_MIN, lf.BIAS_MANT_MAX).astype(np.int32)
    clipped += [f"bias[{i}]" for i in np.flatnonzero(bias_mant != raw)]
    err["bias"], err["bias_rel"] = _errors(bias, bias_mant * 2.0**bias_exp / scale)
    rounded = int(np.count_nonzero((bias_mant == raw) & (bias_mant * 2.0**bias_exp != b_int)))
    rounded += sum(1 for n in ("dv", "du", "vth") if n not in clipped and err[n] > 0)
    return QuantLIF(du_fx, dv_fx, vth_mant, bias_mant, bias_exp, state_exp, err, tuple(clipped), rounded, tuple(notes))


def choose_state_exp(vth: float, *, v_max: float | None = None, bias_max: float = 0.0) -> int:
    """The finest state scale a population can use: the largest ``state_exp`` such that

    * the threshold mantissa fits 17 bits (``rint(vth * 2**(6 + state_exp)) <= 131071``, finite ``vth``),
    * ``|v| <= v_max`` fits the 24-bit saturating ``v`` (default ``v_max = 8 * vth``; required when ``vth`` is inf),
    * the largest ``|bias|`` fits a 13-bit mantissa with ``bias_exp <= 7``.

    A larger ``state_exp`` refines the input resolution ``2**-(6 + state_exp)`` and the threshold grid.
    """
    finite = math.isfinite(vth)
    if v_max is None:
        if not finite:
            raise FixedPointError("a population without threshold (vth=inf, a readout) needs v_max: the largest |v| "
                             "it must hold without saturating")
        v_max = V_HEADROOM * max(vth, 1.0 / 2**lf.STATE_FRAC_BITS)
    for se in range(STATE_EXP_MAX, STATE_EXP_MIN - 1, -1):
        s = 2.0 ** (lf.STATE_FRAC_BITS + se)
        ok = (not finite or np.rint(vth * s / 2**lf.VTH_SHIFT) <= lf.VTH_MANT_MAX) and abs(v_max) * s <= lf.V_MAX
        if ok and np.rint(abs(bias_max) * s / 2**lf.BIAS_EXP_MAX) <= lf.BIAS_MANT_MAX:
            return se
    return STATE_EXP_MIN


def quantize_messages(x, input_exp: int = 0) -> np.ndarray:
    """Graded real messages (e.g. a RingBuffer's data) to Lava's fixed-point ints: ``rint(x * 2**input_exp)``."""
    return np.rint(np.asarray(x, dtype=np.float64) * 2.0**input_exp).astype(np.int32)


def format_report(report: QuantReport) -> str:
    """A plain-text table of a :class:`QuantReport`, one row per layer, then totals and notes."""
    head = f"{'layer':<28} {'kind':<8} {'size':>9} {'clipped':>8} {'rounded':>9} {'max|err|':>10} {'rel err':>9}  exps"
    lines = [head, "-" * len(head)]
    for r in report.layers:
        exps = " ".join(f"{k}={v}" for k, v in r.exponents.items())
        lines.append(f"{r.name:<28} {r.kind:<8} {r.size:>9} {r.clipped:>8} {r.rounded:>9} {r.max_abs_error:>10.3g} "
                     f"{r.rel_error:>9.3g}  {exps}")
    lines += ["-" * len(head), f"{'total':<28} {'':<8} {report.total_size:>9} {report.total_clipped:>8} "
              f"{report.total_rounded:>9} {report.max_abs_error:>10.3g}"]
    lines += [f"note [{r.name}]: {n}" for r in report.layers for n in r.notes]
    return "\n".join(lines)

