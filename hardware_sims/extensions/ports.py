"""Fixed-point formats and integer arithmetic of snnav's extension processes (pure numpy, no Lava).

Formats. A graded message is a signed integer ``m`` standing for the real value ``m * 2**-exp``. Binary spikes are the
format ``PortFormat(exp=0, max_abs=1)``. Every extension output is saturated to ``out_bits`` signed bits (default
:data:`OUT_BITS` = 24, the graded-spike/state width of Lava's bit-accurate Loihi models, e.g. ``ProdNeuron.s_out`` and
``LIF.u/v``: ``precision=24``).

Arithmetic. Each extension computes an exact integer accumulator ``acc`` (sums of products of input integers, int64)
whose real value is ``acc * 2**-acc_exp`` (``acc_exp`` = sum of the exponents of the multiplied ports). A constant
factor ``f`` (``scale``, ``1/(N*T)``, times an optional output ``gain``) is applied last, as a dyadic number
``f ~= mant * 2**-shift`` (:func:`to_dyadic`), followed by one rounding shift into the output format:

    out = saturate(round_shift(acc * mant, acc_exp + shift - out_exp), out_bits)

``round_shift(y, n) = floor(y / 2**n + 1/2)`` for ``n > 0`` (add half an LSB, arithmetic shift right: ties round
towards +inf), ``y << -n`` for ``n <= 0`` (exact). A power-of-two ``f`` (S-CMRL's 0.25) has ``mant = 1`` and costs
only the shift; with the default ``out_exp`` (:func:`default_out_exp`) it is lossless. Error against the float model
(same inputs, no saturation): at most ``2**-(out_exp+1)`` from the rounding plus ``|acc_real| * |f - mant*2**-shift|``
from the factor (zero for dyadic ``f`` with a mantissa below ``2**MANT_BITS``; else relative error at most
``2**-MANT_BITS``).

Exactness. :class:`FixedPlan` checks, when a process is built, that the worst-case ``|acc * mant|`` (from the ports'
``max_abs``) fits in int64, so every product and sum is exact.
"""

# No `from __future__ import annotations` here: Lava's model search re-executes every module of this folder
# outside sys.modules, where dataclasses cannot resolve string annotations.
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

__all__ = [
    "OUT_BITS",
    "MANT_BITS",
    "GUARD_BITS",
    "PortFormat",
    "SPIKE",
    "graded",
    "Dyadic",
    "to_dyadic",
    "round_shift",
    "saturate",
    "requantize",
    "default_out_exp",
    "FixedPlan",
    "make_plan",
]

OUT_BITS = 24
"""Default message width of extension outputs: signed 24-bit graded spikes, range [-2**23, 2**23 - 1]."""

MANT_BITS = 16
"""Largest mantissa magnitude of a constant factor: ``|mant| < 2**MANT_BITS`` (inexact factors are rounded to it)."""

GUARD_BITS = 8
"""Extra fractional output bits of the default ``out_exp`` when the factor is not an exact dyadic number."""

_INT64_LIMIT = 2**63


@dataclass(frozen=True)
class PortFormat:
    """Fixed-point format of one input port: real value = ``m * 2**-exp``, with ``|m| <= max_abs``.

    `max_abs` is a promise by whoever drives the port (binary spikes: 1; the sum of k spike sources: k; a 24-bit
    graded message: 2**23); it bounds the accumulator for the int64 exactness check and is not enforced at run time.
    """

    exp: int = 0
    max_abs: int = 1

    def __post_init__(self):
        if not isinstance(self.exp, (int, np.integer)) or not isinstance(self.max_abs, (int, np.integer)):
            raise TypeError(f"PortFormat needs integer exp and max_abs, got exp={self.exp!r}, max_abs={self.max_abs!r}")
        if self.max_abs < 1:
            raise ValueError(f"PortFormat.max_abs must be >= 1, got {self.max_abs}")
        object.__setattr__(self, "exp", int(self.exp))
        object.__setattr__(self, "max_abs", int(self.max_abs))


SPIKE = PortFormat(exp=0, max_abs=1)
"""Binary spikes (0/1), the default format of every port but ``Gate.gate``."""


def graded(exp: int, bits: int = OUT_BITS) -> PortFormat:
    """Format of a signed ``bits``-bit graded message with exponent ``exp`` (``max_abs = 2**(bits-1)``)."""
    return PortFormat(exp=exp, max_abs=2 ** (bits - 1))


@dataclass(frozen=True)
class Dyadic:
    """A constant factor as ``mant * 2**-shift`` (shift may be negative); `exact` when equal to the float given."""

    mant: int
    shift: int
    exact: bool

    @property
    def value(self) -> float:
        return math.ldexp(self.mant, -self.shift)


def to_dyadic(factor: float, mant_bits: int = MANT_BITS) -> Dyadic:
    """The dyadic form of `factor`: exact when ``factor = m * 2**-s`` with odd ``|m| < 2**mant_bits``.

    Otherwise the mantissa is normalised to ``2**(mant_bits-1) <= |mant| < 2**mant_bits`` and rounded half away
    from zero (relative error ``<= 2**-mant_bits``). 0.25 -> ``(1, 2)``, 0.75 -> ``(3, 2)``, 48.0 -> ``(3, -4)``.

    Raises:
        ValueError: `factor` is not finite.
    """
    if not math.isfinite(factor):
        raise ValueError(f"a fixed-point factor must be finite, got {factor!r}")
    if factor == 0:
        return Dyadic(0, 0, True)
    frac = Fraction(factor)  # exact: a float is an integer over a power of two
    num, den = frac.numerator, frac.denominator
    zeros = (num & -num).bit_length() - 1  # trailing zero bits of the numerator
    odd, shift = num >> zeros, den.bit_length() - 1 - zeros
    if abs(odd) < 2**mant_bits:
        return Dyadic(int(odd), int(shift), True)
    shift = mant_bits - 1 - math.floor(math.log2(abs(factor)))
    scaled = Fraction(factor) * Fraction(2) ** shift
    mant = int(math.floor(abs(scaled) + Fraction(1, 2))) * (1 if factor > 0 else -1)
    if abs(mant) >= 2**mant_bits:  # rounding carried into a new bit
        mant, shift = mant // 2 if mant > 0 else -((-mant) // 2), shift - 1
    return Dyadic(mant, shift, Fraction(mant) / Fraction(2) ** shift == Fraction(factor))


def round_shift(y: np.ndarray, n: int) -> np.ndarray:
    """``floor(y / 2**n + 1/2)`` for ``n > 0`` (ties towards +inf); ``y * 2**-n`` exactly for ``n <= 0``. int64."""
    y = np.asarray(y, dtype=np.int64)
    if n > 0:
        return (y + np.int64(1 << (n - 1))) >> np.int64(n)
    if n < 0:
        return y << np.int64(-n)
    return y


def saturate(y: np.ndarray, bits: int = OUT_BITS) -> np.ndarray:
    """Clip to the signed ``bits``-bit range ``[-2**(bits-1), 2**(bits-1) - 1]``; int64 in, int64 out."""
    return np.clip(y, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def requantize(acc: np.ndarray, acc_exp: int, factor: Dyadic, out_exp: int, out_bits: int = OUT_BITS) -> np.ndarray:
    """``saturate(round_shift(acc * factor.mant, acc_exp + factor.shift - out_exp), out_bits)`` as int64."""
    y = np.asarray(acc, dtype=np.int64) * np.int64(factor.mant)
    return saturate(round_shift(y, acc_exp + factor.shift - out_exp), out_bits)


def default_out_exp(acc_exp: int, factor: Dyadic) -> int:
    """Lossless ``acc_exp + shift`` for an exact factor; else ``GUARD_BITS`` fractional bits below ``|factor|``."""
    if factor.exact or factor.mant == 0:
        return acc_exp + factor.shift
    return acc_exp + factor.shift - (MANT_BITS - 1) + GUARD_BITS


@dataclass(frozen=True)
class FixedPlan:
    """Everything the fixed-point model of a process needs beyond its node parameters.

    Attributes:
        in_formats: format of each input port, by port name.
        acc_exp: exponent of the integer accumulator (sum of the multiplied ports' exponents).
        factor: the constant applied last (``scale * gain``, ``gain / (N*T)``, ``gain``) as a dyadic number.
        out_exp: output exponent: the output message ``m`` means ``m * 2**-out_exp``.
        out_bits: output saturation width (signed).
        acc_max: worst-case ``|acc|`` from the ports' ``max_abs``.
    """

    in_formats: dict
    acc_exp: int
    factor: Dyadic
    out_exp: int
    out_bits: int
    acc_max: int

    @property
    def shift(self) -> int:
        """Right shift of ``acc * mant`` into the output format (negative: left shift)."""
        return self.acc_exp + self.factor.shift - self.out_exp

    def requantize(self, acc: np.ndarray) -> np.ndarray:
        """The accumulator in the output format (int64, saturated)."""
        return requantize(acc, self.acc_exp, self.factor, self.out_exp, self.out_bits)


def make_plan(
    what: str,
    ports: tuple[str, ...],
    in_formats: dict | None,
    product_ports: tuple[str, ...],
    terms: int,
    factor: float,
    out_exp: int | None,
    out_bits: int,
    defaults: dict | None = None,
) -> FixedPlan:
    """Build and check a :class:`FixedPlan`.

    Args:
        what: process description for error messages.
        ports: the process's input ports.
        in_formats: user formats by port (missing ports: `defaults`, else :data:`SPIKE`).
        product_ports: the ports multiplied together in every term of the accumulator.
        terms: number of products summed into one accumulator element.
        factor: the real constant applied last.
        out_exp: output exponent, or None for :func:`default_out_exp`.
        out_bits: output width, 2..32 (messages travel as int32).

    Raises:
        ValueError: unknown port names, a bad width, or an accumulator that could overflow int64.
    """
    given = dict(in_formats or {})
    unknown = sorted(set(given) - set(ports))
    if unknown:
        raise ValueError(f"{what}: in_formats names unknown ports {unknown}; the ports are {list(ports)}")
    formats = {p: given.get(p, (defaults or {}).get(p, SPIKE)) for p in ports}
    for p, f in formats.items():
        if not isinstance(f, PortFormat):
            raise TypeError(f"{what}: in_formats[{p!r}] must be a PortFormat, got {type(f).__name__}")
    if not 2 <= int(out_bits) <= 32:
        raise ValueError(f"{what}: out_bits must be in [2, 32] (messages are int32), got {out_bits}")
    acc_exp = sum(formats[p].exp for p in product_ports)
    acc_max = terms * math.prod(formats[p].max_abs for p in product_ports)
    dy = to_dyadic(float(factor))
    exp = default_out_exp(acc_exp, dy) if out_exp is None else int(out_exp)
    plan = FixedPlan(formats, acc_exp, dy, exp, int(out_bits), acc_max)
    worst = acc_max * abs(dy.mant)
    if plan.shift > 0:
        worst += 1 << (plan.shift - 1)
    else:
        worst <<= -plan.shift
    if worst >= _INT64_LIMIT:
        raise ValueError(
            f"{what}: the worst-case fixed-point accumulator |acc * mant| = {worst:.3e} (from the ports' max_abs "
            f"{ {p: formats[p].max_abs for p in product_ports} }, {terms} terms, factor mantissa {dy.mant}, "
            f"shift {plan.shift}) does not fit in int64. Declare tighter max_abs or a larger out_exp shift."
        )
    return plan
